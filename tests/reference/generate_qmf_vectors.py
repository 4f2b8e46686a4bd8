"""Generate reference test vectors from the original PyTorch QMF implementation.

QMF = Quality-aware Multimodal Fusion (Zhang et al., "Provable Dynamic Fusion
for Low-Quality Multimodal Data", ICML 2023), https://github.com/QingyangZhang/QMF.
The vectors feed parity tests of the JAX reimplementation.  Everything is run
in float64 on CPU, on inputs drawn from a seeded numpy generator; the upstream
code is imported from ``--qmf-dir`` (a checkout of the repository root, i.e.
the directory that contains ``RGBD-scene-recognition/`` and
``text-image-classification/``) and is never copied here.

Upstream objects that are called:

* ``RGBD-scene-recognition/models/QMF.py``: ``QMF.forward`` (energy
  confidences, no detach in the fusion).
* ``text-image-classification/src/models/late_fusion.py``:
  ``MultimodalLateFusionClf.forward`` with ``args.df = True`` (same confidences
  written as ``log(sum(exp))/10``, detached in the fusion).
* ``RGBD-scene-recognition/utils/crl_utils.py``: ``History``.
* ``RGBD-scene-recognition/train_QMF_nyud2.py``: ``rank_loss`` and
  ``model_forward_train`` (one full training-step loss + history update).
* ``text-image-classification/train_qmf.py``: ``rank_loss`` and
  ``model_forward(..., mode='train')``.

Stubs and patches (all documented in PROVENANCE_qmf.md):

1. Third-party packages that the upstream modules import at module level but
   that play no part in the functions used (torchvision, PIL, tqdm,
   pytorch_pretrained_bert, ...) are replaced by empty placeholder modules
   *only if they are not installed* (``original_code.install``).
2. ``torch.Tensor.cuda`` is made the identity (upstream calls ``.cuda()``).
3. Models are built with ``cls.__new__`` + ``nn.Module.__init__`` and given
   identity encoders / empty classifier heads, so that the *original*
   ``forward`` receives the per-modality logits directly (the RGB-D one is
   ``original_code.identity_qmf``).  Nothing inside ``forward`` is changed.
4. Temperatures other than the hard-coded one (``0.1*`` resp. ``/ 10``, i.e.
   T = 10) are obtained by recompiling the original ``forward`` source with that
   single literal replaced (asserted to occur exactly twice).  T = 10 uses the
   unmodified method.
5. ``*_m64`` outputs: ``History.get_target_margin`` casts target and margin to
   float32 (``.float()``); for the ``_m64`` variant ``torch.Tensor.float`` is
   made the identity while it runs, so the margin stays float64.  Outputs
   without the suffix keep the original float32 rounding.
6. M = 3 fusion (upstream is strictly bimodal) is formed from original calls
   by linearity: ``forward(z0, z1)[0] + forward(z2, zeros)[0]``; the all-zero
   second modality contributes exactly 0.

Usage (``original_code.py``, the helpers shared with the other generators and
the benchmark runners, is imported from this script's folder)::

    python generate_qmf_vectors.py --qmf-dir /path/to/QMF \
        --out data/qmf_vectors.npz
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import pathlib
import sys
import textwrap
import types

import numpy as np
import torch
import torch.nn as nn

import original_code  # beside this script, so first on sys.path when it runs

SEED = 20240612
FUSE_B = 64
FUSE_KS = (2, 10)
FUSE_MS = (2, 3)
TEMPS_NODETACH = (10.0, 1.0, 0.5)   # RGBD QMF.forward (no detach)
TEMPS_DETACH = (10.0,)              # text-image late fusion (detached conf)
RANK_B = 32
RANK_N = 80                         # size of the (fake) training set
STEP_K = 10
STEP_LAMB = 0.1                     # train_QMF_nyud2.py default --lamb

# Upstream files whose code is executed, with their sha256 at the commit used
# (fe6c4c6ef7cb23f0a89594ee413d485f1854268b).  A mismatch only warns.
UPSTREAM_FILES = {
    "RGBD-scene-recognition/models/QMF.py":
        "7f0b0202814ae2b8d82c135fc679442d0c2ae218037f39cc00cb72c5014f42ee",
    "RGBD-scene-recognition/utils/crl_utils.py":
        "4747ee337ee7fcb42d3d408870ceb76c87c491c8cf62ba6d24be937e0a5e5cab",
    "RGBD-scene-recognition/train_QMF_nyud2.py":
        "c00da2e2f2345ee16f22244110847e8f6b37c48018c5383672bb57ac1383da35",
    "text-image-classification/src/models/late_fusion.py":
        "fe40937691018115b8291fbf83e85a4547e9d9d0913a7be3b43586d036a3e3e8",
    "text-image-classification/src/utils/utils.py":
        "b17ba4538bb6d8194526269f6da3ade5b9f75a646eb7b631f3c9760544016a99",
    "text-image-classification/train_qmf.py":
        "8fc5dac478fea6d48b0d50262476f630d4069980715d742cdd8b62070f058551",
}

# Packages imported at module level by the upstream files but not needed by
# the functions exercised here.
_OPTIONAL_TOPLEVEL = ("torchvision", "PIL", "tqdm", "pytorch_pretrained_bert",
                      "transformers", "torchaudio", "torchmetrics")


def load_upstream(qmf_dir: pathlib.Path):
    rgbd = qmf_dir / "RGBD-scene-recognition"
    ti = qmf_dir / "text-image-classification"
    for p in (str(rgbd), str(ti)):
        if p not in sys.path:
            sys.path.insert(0, p)
    ns = types.SimpleNamespace()
    ns.QMF = importlib.import_module("models.QMF").QMF
    ns.History = importlib.import_module("utils.crl_utils").History
    ns.train_rgbd = importlib.import_module("train_QMF_nyud2")
    ns.LateFusion = importlib.import_module("src.models.late_fusion").MultimodalLateFusionClf
    ns.train_ti = importlib.import_module("train_qmf")
    ns.History_ti = importlib.import_module("src.utils.utils").History
    return ns


# --------------------------------------------------------------------------
# model construction (patch 3) and temperature recompilation (patch 4)
# --------------------------------------------------------------------------
class _PassFirst(nn.Module):
    """Returns its first argument; holds one unused parameter so that
    ``next(model.parameters())`` works in text-image ``model_forward``."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x, *rest):
        return x


def _with_temperature(func, old: str, new: str):
    src = textwrap.dedent(inspect.getsource(func))
    assert src.count(old) == 2, (func, old, src.count(old))
    src = src.replace(old, new)
    glb = dict(func.__globals__)
    exec(compile(src, f"<{func.__qualname__} with {new}>", "exec"), glb)
    return glb[func.__name__]


def make_rgbd_model(up, temperature: float):
    model = original_code.identity_qmf(up.QMF)
    if temperature != 10.0:
        fwd = _with_temperature(up.QMF.forward, "-0.1*", f"-{1.0 / temperature!r}*")
        model.forward = types.MethodType(fwd, model)
    return model


def make_ti_model(up, temperature: float):
    model = up.LateFusion.__new__(up.LateFusion)
    nn.Module.__init__(model)
    model.args = types.SimpleNamespace(df=True)
    model.txtclf = _PassFirst()
    model.imgclf = _PassFirst()
    if temperature != 10.0:
        fwd = _with_temperature(up.LateFusion.forward, "/ 10", f"/ {temperature!r}")
        model.forward = types.MethodType(fwd, model)
    return model


def fuse(variant: str, model, zs):
    """Return (fused [B,K], conf list of [B]) using the original forward."""
    if variant == "rgbd":
        # forward(rgb, depth) -> fused, rgb_out, depth_out, rgb_conf, depth_conf
        def call(a, b):
            f, _, _, ca, cb = model(a, b)
            return f, ca, cb
    else:
        # forward(txt, mask, segment, img) -> fused, txt_out, img_out, txt_conf, img_conf
        def call(a, b):
            f, _, _, ca, cb = model(a, None, None, b)
            return f, ca, cb
    fused, c0, c1 = call(zs[0], zs[1])
    confs = [c0.reshape(-1), c1.reshape(-1)]
    if len(zs) == 3:
        f2, c2, _ = call(zs[2], torch.zeros_like(zs[2]))
        fused = fused + f2
        confs.append(c2.reshape(-1))
    return fused, confs


# --------------------------------------------------------------------------
# input generators
# --------------------------------------------------------------------------
def fusion_logits(rng, m, b, k):
    """Logits [m,b,k]; each (modality, sample) row uses one regime:
    0 N(0,1); 1 N(0,5^2); 2 N(-20,1) (negative log-sum-exp -> negative
    confidence); 3 zeros with one class at +25; 4 constant row U(-3,3);
    5 N(40,3^2) (large log-sum-exp)."""
    z = np.empty((m, b, k))
    regime = rng.integers(0, 6, size=(m, b))
    regime[:, :6] = (np.arange(6)[None, :] + np.arange(m)[:, None]) % 6
    for v in range(m):
        for i in range(b):
            r = regime[v, i]
            if r == 0:
                row = rng.normal(0.0, 1.0, k)
            elif r == 1:
                row = rng.normal(0.0, 5.0, k)
            elif r == 2:
                row = rng.normal(-20.0, 1.0, k)
            elif r == 3:
                row = np.zeros(k)
                row[rng.integers(k)] = 25.0
            elif r == 4:
                row = np.full(k, rng.uniform(-3.0, 3.0))
            else:
                row = rng.normal(40.0, 3.0, k)
            z[v, i] = row
    return z


def rank_case(rng, kind):
    """(history_correctness [N], conf [B], idx [B]) for one rank-loss case."""
    n, b = RANK_N, RANK_B
    idx = rng.permutation(n)[:b]
    if kind == "rand":
        hist = rng.uniform(0.0, 10.0, n)
        # exact ties between consecutive pairs (i, i+1), incl. the wrap pair
        for i in (3, 10, 17, b - 1):
            hist[idx[(i + 1) % b]] = hist[idx[i]]
        conf = rng.normal(0.4, 0.6, b)
        conf[21] = conf[20]          # confidence tie with distinct history
        conf[5] = conf[6]
    elif kind == "partial":          # epoch 0 in progress: unseen samples are 0
        hist = np.zeros(n)
        seen = rng.permutation(n)[: n // 2]
        hist[seen] = rng.uniform(0.0, 3.0, seen.size)
        conf = rng.normal(0.4, 0.6, b)
    elif kind == "empty":            # very first batch: all-zero history
        hist = np.zeros(n)
        conf = rng.normal(0.4, 0.6, b)
    elif kind == "const":            # all history entries equal (non-zero)
        hist = np.full(n, 2.5)
        conf = rng.normal(0.4, 0.6, b)
    elif kind == "kink":
        # dyadic values: normalised history in {0, .25, .5, .75, 1} and
        # conf multiples of 1/8 make every hinge argument exactly 0 or +-k/8.
        hist = rng.integers(0, 5, n).astype(float)
        hist[0], hist[1] = 0.0, 4.0
        idx = np.concatenate([[0, 1], rng.permutation(np.arange(2, n))[: b - 2]])
        c = (hist[idx] - 0.0) / 4.0
        conf = rng.integers(-8, 9, b) / 8.0
        # force exact kinks on every third pair: conf_i - conf_j == c_i - c_j
        for i in range(0, b - 1, 3):
            conf[i] = conf[i + 1] + (c[i] - c[i + 1])
    else:
        raise ValueError(kind)
    return hist, conf, idx


def step_case(rng, kind, k):
    b, n = RANK_B, RANK_N
    idx = rng.permutation(n)[:b]
    labels = rng.integers(0, k, b)
    logits = rng.normal(0.0, 2.0, (2, b, k))
    logits[1, :4] += 6.0 * np.eye(k)[labels[:4]]      # a few confident rows
    logits[0, 4:8] = rng.normal(-15.0, 1.0, (4, k))   # negative confidence
    if kind == "mid":
        hist_corr = rng.uniform(0.0, 20.0, (2, n))
        hist_corr[:, idx[5]] = hist_corr[:, idx[4]]   # tie pair
        hist_conf = rng.normal(0.4, 0.5, (2, n))
    elif kind == "first":
        hist_corr = np.zeros((2, n))
        hist_conf = np.zeros((2, n))
    else:
        raise ValueError(kind)
    return logits, labels, idx, hist_corr, hist_conf


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def t64(x, grad=False):
    return torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=grad)


def npy(x):
    return x.detach().cpu().numpy().astype(np.float64)


def make_history(cls, corr, conf):
    h = cls(len(corr))
    h.correctness[:] = corr
    h.confidence[:] = conf
    return h


def main(argv=None) -> None:
    parser = original_code.argument_parser(
        __doc__, {"qmf": "checkout of the QMF repository root"})
    args = parser.parse_args(argv)

    stubbed = original_code.install(_OPTIONAL_TOPLEVEL)  # patch 1
    print(f"stubbed modules: {stubbed}")
    torch.Tensor.cuda = lambda self, *a, **k: self          # patch 2
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    up = load_upstream(args.qmf_dir.resolve())
    rng = np.random.default_rng(SEED)
    out: dict[str, np.ndarray] = {}

    # ---------------- (a) energy confidences and fusion ----------------
    # One logit draw [3,B,K] per K; M=2 uses modalities 0 and 1.  The gradient
    # w.r.t. modality m does not involve the other modalities, so one [3,B,K]
    # gradient array serves both M (asserted bit-for-bit below).
    for k in FUSE_KS:
        pre = f"fuse_K{k}"
        z = fusion_logits(rng, max(FUSE_MS), FUSE_B, k)
        w = rng.normal(0.0, 1.0, (FUSE_B, k))
        out[f"{pre}_logits"] = z
        out[f"{pre}_w"] = w
        for variant, temps in (("rgbd", TEMPS_NODETACH), ("ti", TEMPS_DETACH)):
            for temp in temps:
                model = (make_rgbd_model if variant == "rgbd" else make_ti_model)(up, temp)
                tag = f"{variant}_T{temp:g}".replace(".", "p")
                per_m = {}
                for m in FUSE_MS:
                    zs = [t64(z[v], grad=True) for v in range(m)]
                    fused, confs = fuse(variant, model, zs)
                    grads = torch.autograd.grad((fused * t64(w)).sum(), zs)
                    per_m[m] = (np.stack([npy(c) for c in confs]), npy(fused),
                                np.stack([npy(g) for g in grads]))
                    out[f"{pre}_M{m}_{tag}_fused"] = per_m[m][1]
                full = per_m[max(FUSE_MS)]
                for m in FUSE_MS:
                    np.testing.assert_array_equal(per_m[m][0], full[0][:m])
                    np.testing.assert_array_equal(per_m[m][2], full[2][:m])
                out[f"{pre}_{tag}_conf"] = full[0]
                out[f"{pre}_{tag}_grad"] = full[2]
        # both originals compute the same confidence at T=10 (up to rounding)
        np.testing.assert_allclose(out[f"{pre}_rgbd_T10_conf"],
                                   out[f"{pre}_ti_T10_conf"], rtol=1e-14, atol=1e-14)
        for m in FUSE_MS:
            np.testing.assert_allclose(out[f"{pre}_M{m}_rgbd_T10_fused"],
                                       out[f"{pre}_M{m}_ti_T10_fused"], rtol=1e-13, atol=1e-12)

    # ---------------- (b) ranking loss ----------------
    for kind in ("rand", "partial", "empty", "const", "kink"):
        pre = f"rank_{kind}"
        hist, conf, idx = rank_case(rng, kind)
        out[f"{pre}_history"] = hist
        out[f"{pre}_conf"] = conf
        out[f"{pre}_idx"] = idx.astype(np.int64)
        results = {}
        for suffix, ctx in (("", contextlib.nullcontext),
                            ("_m64", original_code.float_is_identity)):  # patch 5
            with ctx(), np.errstate(invalid="ignore", divide="ignore"):
                h = make_history(up.History, hist, np.zeros_like(hist))
                x = t64(conf, grad=True)
                loss = up.train_rgbd.rank_loss(x.reshape(-1, 1), torch.from_numpy(idx), h)
                (g,) = torch.autograd.grad(loss, x)
                target, margin = h.get_target_margin(torch.from_numpy(idx),
                                                     torch.roll(torch.from_numpy(idx), -1))
                # text-image rank_loss ([B,1] confidences) on an identical history
                h2 = make_history(up.History_ti, hist, np.zeros_like(hist))
                x2 = t64(conf.reshape(-1, 1), grad=True)
                loss2 = up.train_ti.rank_loss(x2, torch.from_numpy(idx), h2)
                (g2,) = torch.autograd.grad(loss2, x2)
            np.testing.assert_array_equal(npy(loss), npy(loss2))
            np.testing.assert_array_equal(npy(g), npy(g2).reshape(-1))
            results[suffix] = (npy(loss), npy(g), npy(target), npy(margin))
        # the float32 margin cast changes only the loss value, never the grad
        np.testing.assert_array_equal(results[""][1], results["_m64"][1])
        out[f"{pre}_loss"] = results[""][0]
        out[f"{pre}_loss_m64"] = results["_m64"][0]
        out[f"{pre}_grad"] = results[""][1]
        out[f"{pre}_target"] = results[""][2]
        out[f"{pre}_margin"] = results["_m64"][3]
        out[f"{pre}_margin_f32"] = results[""][3]

    # ---------------- (c) one full training step ----------------
    ce = nn.CrossEntropyLoss()
    for kind in ("mid", "first"):
        pre = f"step_{kind}"
        logits, labels, idx, hcorr, hconf = step_case(rng, kind, STEP_K)
        out[f"{pre}_logits"] = logits
        out[f"{pre}_labels"] = labels.astype(np.int64)
        out[f"{pre}_idx"] = idx.astype(np.int64)
        out[f"{pre}_hist_correctness"] = hcorr
        out[f"{pre}_hist_confidence"] = hconf
        out[f"{pre}_lamb"] = np.float64(STEP_LAMB)
        for variant in ("rgbd", "ti"):
            res = {}
            for suffix, ctx in (("", contextlib.nullcontext),
                                ("_m64", original_code.float_is_identity)):  # patch 5
                with ctx(), np.errstate(invalid="ignore", divide="ignore"):
                    za, zb = t64(logits[0], grad=True), t64(logits[1], grad=True)
                    tgt = torch.from_numpy(labels)
                    tidx = torch.from_numpy(idx)
                    if variant == "rgbd":
                        # modality 0 = rgb, modality 1 = depth
                        ha = make_history(up.History, hcorr[0], hconf[0])
                        hb = make_history(up.History, hcorr[1], hconf[1])
                        model = make_rgbd_model(up, 10.0)
                        targs = types.SimpleNamespace(lamb=STEP_LAMB)
                        batch = {"A": za, "B": zb, "label": tgt, "idx": tidx}
                        loss, fused_l, _, _, _ = up.train_rgbd.model_forward_train(
                            0, model, targs, batch, hb, ha)
                        # components (rank is evaluated on the pre-update history)
                        hpa = make_history(up.History, hcorr[0], hconf[0])
                        hpb = make_history(up.History, hcorr[1], hconf[1])
                        fz, _, _, ca, cb = model(za, zb)
                        ranks = [up.train_rgbd.rank_loss(ca, tidx, hpa),
                                 up.train_rgbd.rank_loss(cb, tidx, hpb)]
                    else:
                        # modality 0 = txt, modality 1 = img
                        ha = make_history(up.History_ti, hcorr[0], hconf[0])
                        hb = make_history(up.History_ti, hcorr[1], hconf[1])
                        model = make_ti_model(up, 10.0)
                        targs = types.SimpleNamespace(freeze_img=0, freeze_txt=0,
                                                      model="latefusion")
                        batch = (za, torch.zeros(1), torch.zeros(1), zb, tgt, tidx)
                        loss, fused_l, _ = up.train_ti.model_forward(
                            0, model, targs, ce, batch, ha, hb, mode="train")
                        # components (rank is evaluated on the post-update history)
                        fz, _, _, ca, cb = model(za, None, None, zb)
                        ranks = [up.train_ti.rank_loss(ca, tidx, ha),
                                 up.train_ti.rank_loss(cb, tidx, hb)]
                    ga, gb = torch.autograd.grad(loss, [za, zb])
                    ces = [ce(fz, tgt), ce(za, tgt), ce(zb, tgt)]
                res[suffix] = dict(
                    loss=npy(loss), grad=np.stack([npy(ga), npy(gb)]),
                    corr=np.stack([ha.correctness.copy(), hb.correctness.copy()]),
                    conf=np.stack([ha.confidence.copy(), hb.confidence.copy()]),
                    ce=np.array([c.item() for c in ces]),
                    rank=np.array([r.item() for r in ranks]))
            r0, r1 = res[""], res["_m64"]
            np.testing.assert_array_equal(r0["grad"], r1["grad"])
            np.testing.assert_array_equal(r0["corr"], r1["corr"])
            tag = f"{pre}_{variant}"
            out[f"{tag}_loss"] = r0["loss"]
            out[f"{tag}_loss_m64"] = r1["loss"]
            out[f"{tag}_grad"] = r0["grad"]
            out[f"{tag}_ce"] = r0["ce"]
            out[f"{tag}_rank_m64"] = r1["rank"]
            out[f"{tag}_hist_correctness_post"] = r0["corr"]
            out[f"{tag}_hist_confidence_post"] = r0["conf"]

    digests = original_code.check_sha256(
        args.qmf_dir, {name: UPSTREAM_FILES[name] for name in sorted(UPSTREAM_FILES)})
    out["meta_files"] = np.array(list(digests))
    out["meta_sha256"] = np.array(list(digests.values()))
    original_code.save_vectors(args.out, out)


if __name__ == "__main__":
    main()
