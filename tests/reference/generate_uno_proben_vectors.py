"""Generate reference vectors from the original UNO(-IC) and ProbEn fusion code.

Two upstream implementations are exercised, both imported at run time from a
checkout given on the command line (nothing of their code is copied here):

* UNO / UNO-IC (Tian et al., ICRA 2020), https://github.com/GT-RIPL/UNO-IC
  - ``segmentation/ptsemseg/core/core.py``: ``likelihood_flattening``
    (entropy-based logit scaling), ``prior_recbalancing`` (softmax + imbalance
    calibration) and ``fusion`` (Noisy-Or / SoftmaxMultiply / SoftmaxAverage).
  - ``segmentation/ptsemseg/models/deeplab.py``: ``DeepLab.forward`` supplies the
    per-pixel entropy that feeds ``likelihood_flattening``.  Its convolutional
    layers are replaced by identities (see STUBS below) so that ``forward``
    receives the logits directly and only its own post-processing
    (clamped softmax, ``mutualinfo_entropy``) runs.
  - ``classification/rebalancing.py``: ``prior_recbalancing`` (the
    classification variant of the calibration, with optional target prior).
* ProbEn (Chen et al., ECCV 2022),
  https://github.com/Jamie725/Multimodal-Object-Detection-via-Probabilistic-Ensembling
  - ``demo/FLIR/demo_probEn.py``: ``bayesian_fusion`` (binary) and
    ``bayesian_fusion_multiclass`` (3 foreground classes + background).

STUBS (installed in ``sys.modules`` before the originals are imported; none of
them is called while generating, each callable raises if it ever is):

* ``matplotlib`` (``use`` is a no-op, ``matplotlib.pyplot`` empty),
  ``mpl_toolkits.axes_grid1.make_axes_locatable``, ``tqdm``,
  ``pandas.DataFrame`` -- imported at module level by ``ptsemseg/utils/utils.py``
  for plotting / spreadsheet helpers.
* ``torchvision`` with empty ``torchvision.models`` and ``torchvision.ops``
  (``boxes`` sub-module, ``nms``) -- imported by ``ptsemseg/models/__init__.py``
  and friends, and by ``demo_probEn.py``.
* ``detectron2.{config,data,data.datasets,structures,evaluation,layers.nms,
  utils.opt}`` names and ``cv2`` -- imported at module level by
  ``demo_probEn.py`` for dataset registration, NMS, evaluation and image I/O.
* ``DeepLab`` instance: built with ``DeepLab.__new__`` + ``nn.Module.__init__``
  (skipping the ResNet/ASPP/decoder construction) and given
  ``backbone = (x -> (x, None))``, ``aspp = identity``,
  ``decoder = ((x, llf) -> x)``.  The bilinear resize to the input size is then
  the identity (checked), so ``DeepLab.forward(logits)`` returns the logits and
  the original entropy map (``original_code.identity_deeplab``, shared with
  ``benchmarks/_run_original_fusion.py``).

Intermediate values that the originals compute but do not return (UNO's
``DR`` scale, ProbEn's normalised 4-way posterior ``score_norm``) are read from
the function's local variables at return time with ``sys.setprofile``; this only
observes, it does not alter the computation.

Everything runs in float64 on CPU (``torch.set_default_dtype(torch.float64)``)
with inputs from ``numpy.random.default_rng(SEED)``.

Usage::

    python generate_uno_proben_vectors.py --uno-dir /path/to/UNO-IC \
        --proben-dir /path/to/Multimodal-Object-Detection-via-Probabilistic-Ensembling \
        --out data/uno_proben_vectors.npz

See ``PROVENANCE_uno_proben.md`` for the list of keys.
"""

from __future__ import annotations

import contextlib
import pathlib
import sys
import types

import numpy as np
import torch

import original_code  # beside this script, so first on sys.path when it runs

SEED = 20240611
MS = (2, 3)
KS = (2, 10)
B = 64
UNO_MODALITIES = ("rgb", "d", "rgbd")  # the only keys the original fusion knows
UNO_BETA = 0.4  # value used in the upstream training config
N_TRAIN = 256  # samples per modality for the entropy statistics
PROBEN_KS = (2, 4)  # binary function; multiclass function is fixed to 3 fg + bg


# --------------------------------------------------------------------------- stubs
def _unused(name):
    def _f(*args, **kwargs):
        raise RuntimeError(f"stub {name} was called; it should not be needed")

    _f.__name__ = name.rsplit(".", 1)[-1]
    return _f


def _stub(name, **attrs):
    mod = sys.modules.get(name)
    if mod is None or not getattr(mod, "__lqmm_stub__", False):
        mod = types.ModuleType(name)
        mod.__lqmm_stub__ = True
        mod.__path__ = []  # allow sub-modules
        sys.modules[name] = mod
    for k, v in attrs.items():
        setattr(mod, k, v)
    if "." in name:
        parent, child = name.rsplit(".", 1)
        setattr(_stub(parent), child, mod)
    return mod


def install_stubs():
    # plotting / IO helpers imported by ptsemseg/utils/utils.py
    _stub("matplotlib", use=lambda *a, **k: None)
    _stub("matplotlib.pyplot")
    _stub("mpl_toolkits.axes_grid1", make_axes_locatable=_unused("make_axes_locatable"))
    _stub("tqdm", tqdm=_unused("tqdm.tqdm"))
    _stub("pandas", DataFrame=_unused("pandas.DataFrame"))
    # torchvision (ptsemseg.models.*, demo_probEn.py)
    _stub("torchvision.models")
    _stub("torchvision.ops.boxes")
    _stub("torchvision.ops", nms=_unused("torchvision.ops.nms"))
    # detectron2 + cv2 (demo_probEn.py)
    _stub("detectron2.config", get_cfg=_unused("get_cfg"))
    _stub("detectron2.data", DatasetCatalog=_unused("DatasetCatalog"),
          MetadataCatalog=_unused("MetadataCatalog"))
    _stub("detectron2.data.datasets", register_coco_instances=_unused("register_coco_instances"))
    _stub("detectron2.structures", Instances=_unused("Instances"), Boxes=_unused("Boxes"))
    _stub("detectron2.evaluation", FLIREvaluator=_unused("FLIREvaluator"))
    _stub("detectron2.layers.nms", batched_nms=_unused("batched_nms"))
    _stub("detectron2.utils.opt", config_parser=_unused("config_parser"))
    _stub("cv2", imread=_unused("cv2.imread"))


# ------------------------------------------------------------------------- loading
def load_uno(uno_dir: pathlib.Path):
    seg = uno_dir / "segmentation"
    sys.path.insert(0, str(seg))
    import ptsemseg.core as core  # noqa: E402
    from ptsemseg.models.deeplab import DeepLab  # noqa: E402

    cls_rebal = original_code.load_file("uno_cls_rebalancing",
                                        uno_dir / "classification" / "rebalancing.py")
    return core, DeepLab, cls_rebal


def load_proben(proben_dir: pathlib.Path):
    return original_code.load_file("proben_demo_probEn",
                                   proben_dir / "demo" / "FLIR" / "demo_probEn.py")


@contextlib.contextmanager
def capture_locals(func, sink: list):
    """Append ``func``'s local variables at each return to ``sink``."""
    code = func.__code__
    prev = sys.getprofile()

    def prof(frame, event, arg):
        if event == "return" and frame.f_code is code:
            sink.append(dict(frame.f_locals))

    sys.setprofile(prof)
    try:
        yield sink
    finally:
        sys.setprofile(prev)


# ---------------------------------------------------------------------- UNO inputs
def uno_logits(rng, m, b, k):
    """Logits [m, b, k]; per (modality, sample) one regime:
    0 near-uniform (0.05*N), 1 0.5*N, 2 2*N, 3 6*N, 4 N + 12 on one class,
    5 N + 30 on one class (some softmax entries < 1e-9: exercises the clamp)."""
    x = rng.standard_normal((m, b, k))
    regime = rng.integers(0, 6, size=(m, b))
    regime[:, :6] = np.arange(6)
    scale = np.array([0.05, 0.5, 2.0, 6.0, 1.0, 1.0])[regime]
    x = x * scale[..., None]
    hot = rng.integers(0, k, size=(m, b))
    bump = np.where(regime == 4, 12.0, np.where(regime == 5, 30.0, 0.0))
    np.put_along_axis(x, hot[..., None],
                      np.take_along_axis(x, hot[..., None], -1) + bump[..., None], -1)
    return x


def uno_prior(rng, k, zero_last=False):
    """Imbalanced label prior; ``zero_last`` makes the last class absent from the
    (synthetic) training labels, so the original maps 1/prior = inf to 0."""
    p = rng.dirichlet(np.full(k, 0.7))
    p = np.maximum(p, 1e-3)
    if zero_last:
        p[-1] = 0.0
    return p / p.sum()


def t(x):
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def run_uno(core, net, logits4, names, stats, beta, prior4, fusion_name, requires_grad=False):
    """Full original pipeline as in segmentation/validate.py:
    model forward -> likelihood_flattening -> prior_recbalancing -> fusion."""
    cfg = {
        "models": {n: {} for n in names},
        "uncertainty": stats is not None,
        "imbalance": {"beta": beta},
        "fusion": fusion_name,
    }
    mean, ent = {}, {}
    for i, n in enumerate(names):
        mean[n], ent[n] = net(logits4[i])
        if stats is not None:
            mean[n] = core.likelihood_flattening(mean[n], cfg, ent[n], stats, modality=n)
    probs = core.prior_recbalancing(mean, cfg, prior=prior4)
    return core.fusion(probs, cfg), probs, ent


def entropy_stats_from(net, rng, names, k):
    """Mimic ``extract.py``: mean / population std of the per-image spatial mean
    entropy over a (here synthetic) set of logits, one entry per modality."""
    stats = {}
    for n in names[:2]:
        x = rng.standard_normal((N_TRAIN, k)) * 4.0
        with torch.no_grad():
            _, e = net(t(x)[:, :, None, None])
        per_img = e.mean((1, 2)).numpy()
        stats[n + "_mean"] = np.float64(np.mean(per_img))
        stats[n + "_std"] = np.float64(np.std(per_img))
    if "rgbd" in names:
        # Present in upstream entropy.pkl, but ignored by likelihood_flattening
        # (every non-'rgb' modality uses the 'd' statistics).  NaN proves it.
        stats["rgbd_mean"] = np.float64(np.nan)
        stats["rgbd_std"] = np.float64(np.nan)
    return stats


def gen_uno(core, DeepLab, cls_rebal, rng, out):
    net = original_code.identity_deeplab(DeepLab)  # see STUBS

    for M in MS:
        names = UNO_MODALITIES[:M]
        for K in KS:
            p = f"uno_M{M}_K{K}"
            x = uno_logits(rng, M, B, K)
            stats = entropy_stats_from(net, rng, names, K)
            prior = uno_prior(rng, K)
            prior4 = t(prior)[None, :, None, None]  # validate.py: (1, n_class, 1, 1)
            w = rng.standard_normal((B, K))
            x4 = [t(x[i])[:, :, None, None] for i in range(M)]

            # --- entropy from the original model forward, DR from flattening
            ents, drs, flats = [], [], []
            cfg_u = {"uncertainty": True}
            for i, n in enumerate(names):
                with torch.no_grad():
                    mean_i, ent_i = net(x4[i])
                assert torch.equal(mean_i, x4[i]), "identity DeepLab must return the logits"
                loc = []
                with capture_locals(core.likelihood_flattening, loc):
                    fl = core.likelihood_flattening(mean_i, cfg_u, ent_i, stats, modality=n)
                ents.append(ent_i.mean((1, 2)).numpy())
                drs.append(loc[-1]["DR"].reshape(B).numpy())
                flats.append(fl[:, :, 0, 0].numpy())
                same = core.likelihood_flattening(mean_i, {"uncertainty": False}, ent_i, stats, n)
                assert same is mean_i
            used_mu = np.array([stats["rgb_mean"] if n == "rgb" else stats["d_mean"] for n in names])
            used_sd = np.array([stats["rgb_std"] if n == "rgb" else stats["d_std"] for n in names])

            out[p + "_logits"] = x
            out[p + "_entropy"] = np.stack(ents)
            out[p + "_stats_mean"] = used_mu
            out[p + "_stats_std"] = used_sd
            out[p + "_dr"] = np.stack(drs)
            # likelihood_flattening's output is exactly logits * dr[..., None]
            assert np.array_equal(np.stack(flats), x * np.stack(drs)[..., None])
            out[p + "_prior"] = prior
            out[p + "_beta"] = np.float64(UNO_BETA)
            out[p + "_w"] = w

            with torch.no_grad():
                for key, fname in (("noisyor", "Noisy-Or"), ("softmax_multiply", "SoftmaxMultiply")):
                    f, _, _ = run_uno(core, net, x4, names, None, None, prior4, fname)
                    out[f"{p}_{key}"] = f[:, :, 0, 0].numpy()
                f, probs, _ = run_uno(core, net, x4, names, None, UNO_BETA, prior4, "Noisy-Or")
                out[p + "_ic_probs"] = np.stack([probs[n][:, :, 0, 0].numpy() for n in names])
                out[p + "_ic_noisyor"] = f[:, :, 0, 0].numpy()

            for key, beta in (("uno", None), ("uno_ic", UNO_BETA)):
                xs = [xi.clone().requires_grad_(True) for xi in x4]
                f, _, _ = run_uno(core, net, xs, names, stats, beta, prior4, "Noisy-Or")
                (f[:, :, 0, 0] * t(w)).sum().backward()
                out[f"{p}_{key}"] = f[:, :, 0, 0].detach().numpy()
                out[f"{p}_{key}_grad"] = np.stack([xi.grad[:, :, 0, 0].numpy() for xi in xs])

            if M == 2 and K == 10:
                # zero prior entry: forward only (the gradient of 0**beta is NaN)
                pz = uno_prior(rng, K, zero_last=True)
                with torch.no_grad():
                    f, _, _ = run_uno(core, net, x4, names, stats, UNO_BETA,
                                          t(pz)[None, :, None, None], "Noisy-Or")
                out[p + "_zeroprior_prior"] = pz
                out[p + "_zeroprior_uno_ic"] = f[:, :, 0, 0].numpy()

            n_scaled = int((np.stack(drs) < 1).sum())
            print(f"{p}: {n_scaled}/{M * B} rows scaled (DR<1); stats mu={used_mu}, sd={used_sd}")

    # --- a small spatial case: entropy is averaged over H, W before scaling
    M, K, Bs, H, W = 2, 10, 4, 2, 3
    names = UNO_MODALITIES[:M]
    p = f"uno_spatial_M{M}_K{K}"
    x = uno_logits(rng, M, Bs * H * W, K).reshape(M, Bs, H, W, K).transpose(0, 1, 4, 2, 3).copy()
    stats = entropy_stats_from(net, rng, names, K)
    prior = uno_prior(rng, K)
    prior4 = t(prior)[None, :, None, None]
    x4 = [t(x[i]) for i in range(M)]
    with torch.no_grad():
        emap = np.stack([net(xi)[1].numpy() for xi in x4])
        drs = []
        for i, n in enumerate(names):
            loc = []
            mean_i, ent_i = net(x4[i])
            with capture_locals(core.likelihood_flattening, loc):
                core.likelihood_flattening(mean_i, {"uncertainty": True}, ent_i, stats, modality=n)
            drs.append(loc[-1]["DR"].reshape(Bs).numpy())
        f_uno, _, _ = run_uno(core, net, x4, names, stats, None, prior4, "Noisy-Or")
        f_ic, _, _ = run_uno(core, net, x4, names, stats, UNO_BETA, prior4, "Noisy-Or")
    out[p + "_logits"] = x
    out[p + "_entropy_map"] = emap
    out[p + "_stats_mean"] = np.array([stats["rgb_mean"], stats["d_mean"]])
    out[p + "_stats_std"] = np.array([stats["rgb_std"], stats["d_std"]])
    out[p + "_dr"] = np.stack(drs)
    out[p + "_prior"] = prior
    out[p + "_beta"] = np.float64(UNO_BETA)
    out[p + "_uno"] = f_uno.numpy()
    out[p + "_uno_ic"] = f_ic.numpy()

    # --- classification/rebalancing.py (single model, optional target prior)
    K = 10
    p = f"ic_cls_K{K}"
    x = uno_logits(rng, 1, B, K)[0]
    s_prior = uno_prior(rng, K)
    t_prior = rng.dirichlet(np.full(K, 5.0))
    w = rng.standard_normal((B, K))
    out[p + "_logits"] = x
    out[p + "_s_prior"] = s_prior
    out[p + "_t_prior"] = t_prior
    out[p + "_beta"] = np.float64(UNO_BETA)
    out[p + "_w"] = w
    xl = t(x).requires_grad_(True)
    o = cls_rebal.prior_recbalancing(xl, UNO_BETA, t(s_prior))
    (o * t(w)).sum().backward()
    out[p + "_out"] = o.detach().numpy()
    out[p + "_grad"] = xl.grad.numpy()
    with torch.no_grad():
        out[p + "_out_tprior"] = cls_rebal.prior_recbalancing(
            t(x), UNO_BETA, t(s_prior), t(t_prior)[None, :]).numpy()


# ------------------------------------------------------------------- ProbEn inputs
def proben_logits(rng, m, b, k):
    """Detector-head logits [m, b, k] laid out as detectron2 does (background
    LAST).  Regimes per (modality, sample): 0 N, 1 3N, 2 background +6,
    3 one foreground +8, 4 near-uniform 0.1N, 5 one foreground +20 (background
    ~1e-9, exercises the cancellation in 1 - sum(fg))."""
    x = rng.standard_normal((m, b, k))
    regime = rng.integers(0, 6, size=(m, b))
    regime[:, :6] = np.arange(6)
    x = x * np.array([1.0, 3.0, 1.0, 1.0, 0.1, 1.0])[regime][..., None]
    x[..., -1] += np.where(regime == 2, 6.0, 0.0)
    hot = rng.integers(0, k - 1, size=(m, b))
    bump = np.where(regime == 3, 8.0, np.where(regime == 5, 20.0, 0.0))
    np.put_along_axis(x, hot[..., None],
                      np.take_along_axis(x, hot[..., None], -1) + bump[..., None], -1)
    return x


def softmax(x):
    z = np.exp(x - x.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def gen_proben(pe, rng, out):
    for M in MS:
        for K in PROBEN_KS:
            p = f"proben_M{M}_K{K}"
            logits = proben_logits(rng, M, B, K)
            fg = softmax(logits)[..., :-1]  # detectron2: softmax over K, drop background column
            if K == 2:
                s = fg[..., 0]  # [M, B]
                fused = np.array([pe.bayesian_fusion(s[:, i]) for i in range(B)])
                out[p + "_fg_prob"] = s
                out[p + "_fused_fg"] = fused
            else:
                scores, cls, norm = [], [], []
                for i in range(B):
                    loc = []
                    pred_class = int(np.argmax(fg[-1, i]))  # unused by the original
                    with capture_locals(pe.bayesian_fusion_multiclass, loc):
                        sc, c = pe.bayesian_fusion_multiclass(np.asarray(fg[:, i, :]), pred_class)
                    scores.append(sc)
                    cls.append(c)
                    norm.append(loc[-1]["score_norm"])
                out[p + "_fg_probs"] = fg
                out[p + "_fused"] = np.stack(norm)
                out[p + "_out_score"] = np.array(scores, dtype=np.float64)
                out[p + "_out_class"] = np.array(cls, dtype=np.int64)
                print(f"{p}: background wins in {int((np.array(cls) == K - 1).sum())}/{B} rows")


def main():
    parser = original_code.argument_parser(__doc__, {
        "uno": "UNO-IC checkout (contains segmentation/ and classification/)",
        "proben": "ProbEn checkout (contains demo/FLIR/demo_probEn.py)",
    }, out_default=pathlib.Path(__file__).parent / "data" / "uno_proben_vectors.npz")
    args = parser.parse_args()

    torch.set_default_dtype(torch.float64)
    install_stubs()
    core, DeepLab, cls_rebal = load_uno(args.uno_dir.resolve())
    pe = load_proben(args.proben_dir.resolve())

    rng = np.random.default_rng(SEED)
    out = {}
    gen_uno(core, DeepLab, cls_rebal, rng, out)
    gen_proben(pe, rng, out)

    for k, v in out.items():
        v = np.asarray(v)
        if v.dtype.kind == "f":
            assert np.all(np.isfinite(v)), k
    original_code.save_vectors(args.out, out)


if __name__ == "__main__":
    main()
