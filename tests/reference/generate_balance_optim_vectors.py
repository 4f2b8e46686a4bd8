"""Generate reference test vectors from the original PyTorch code of three
gradient-rebalancing methods for imbalanced multimodal learning.

* OGM / OGM-GE (Peng et al., "Balanced Multimodal Learning via On-the-fly
  Gradient Modulation", CVPR 2022), https://github.com/GeWu-Lab/OGM-GE_CVPR2022:
  ``main.py::train_epoch`` is run unmodified on a tiny stand-in model.
* AGM (Li et al., "Boosting Multi-modal Model Performance with Adaptive
  Gradient Modulation", ICCV 2023), https://github.com/lihong2303/AGM_ICCV2023:
  ``run/CREMAD_main.py::train`` (M = 2) and ``run/URFunny_main.py::train``
  (M = 3) are run unmodified with the original ``GradMod`` wrappers
  (``model/CREMAD_net.py``, ``model/URFunny_net.py``) around tiny networks.
* Greedy learner / balanced multi-modal learning (Wu et al., ICML 2022),
  https://github.com/nyukat/greedy_multimodal_learning:
  ``src/callbacks.py::Bias_Mitigation_Strong`` (conditional learning speed,
  re-balancing schedule) and ``src/balanced_mmtm.py::MMTM_mitigate.forward``
  (normal / curation / cross-modal-flow-off modes) are run unmodified.

Everything runs in float64 on CPU (``torch.set_default_dtype(torch.float64)``)
on inputs drawn from ``numpy.random.default_rng(SEED)``.  The upstream code is
imported from the checkouts given by ``--ogm-dir``, ``--agm-dir`` and
``--greedy-dir`` (repository roots) and is never copied here.

Observation technique: values that the upstream functions compute but do not
return (scores, ratios, coefficients, running states, raw gradients before
modulation, ...) are read out of the *running* upstream frames with
``sys.settrace`` at fixed upstream source lines (located by their text, see
``_TRACE_POINTS``).  The tracer only reads locals; the single exception is that
it calls ``retain_grad()`` on intermediate AGM output tensors so that their
gradients can be stored (this does not change any value).

Stubs and patches (documented in PROVENANCE_balance_optim.md):

1. Third-party packages imported at module level but unused by the code paths
   exercised (torchvision, PIL, librosa, tqdm, pandas, argh, tensorboard, ...)
   are replaced by empty placeholder modules, *only if not installed*
   (``original_code.install``; ``original_code.py`` beside this script holds
   the helpers shared with the other generators and the benchmark runners).
   ``gin`` (if missing) is replaced by a stub whose ``configurable`` is the
   identity decorator; ``torch.utils.tensorboard`` (if tensorboard is missing)
   by a stub with a placeholder ``SummaryWriter``.
2. ``torch.Tensor.cuda`` is the identity; ``torch.Tensor.to`` maps
   ``"cuda:N"`` device strings to CPU (``MMTM_mitigate.__init__`` calls
   ``.to("cuda:0")``).
3. ``torch.Tensor.normal_`` is wrapped (while OGM-GE runs) to record the
   ``std`` argument; the call itself is unchanged.
4. Models are tiny stand-ins with the attribute and parameter names the
   upstream code looks up (see the per-method sections below); the AGM
   ``GradMod`` wrappers are the original classes.  For M = 3 the original
   ``GradMod.__init__`` is run while ``URFunny_net.Later_Fusion_Model`` is
   temporarily bound to the tiny network class (to avoid building three
   8-layer 768-d transformers).
5. Optimisers / schedulers / writers / loggers are recording or no-op stubs;
   the optimiser does not change parameters, so every step sees the same
   weights.

Usage::

    python generate_balance_optim_vectors.py --ogm-dir OGM-GE_CVPR2022 \
        --agm-dir AGM_ICCV2023 --greedy-dir greedy_multimodal_learning \
        --out data/balance_optim_vectors.npz
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import math
import pathlib
import sys
import types

import numpy as np
import torch
import torch.nn as nn

import original_code  # beside this script, so first on sys.path when it runs

SEED = 20240717

# Upstream files whose code is executed (or whose classes are instantiated),
# with their sha256 at the commits used.  A mismatch only warns.
UPSTREAM = {
    "ogm": ("GeWu-Lab/OGM-GE_CVPR2022", "343dc1d95c9bda88f105c0da8d24f185e0e98b54", {
        "main.py": "d78bfd47265ff4564d68f20243f2cbea30986f366d57c58023164bd45948b392",
        "models/fusion_modules.py": "fb799f6fa2f6743fa3edc0511753618902fede6a090f78dfb45e97688cdcf946",
    }),
    "agm": ("lihong2303/AGM_ICCV2023", "5a65542c70b1c7c15c5df291e77fa9cf2bbb9549", {
        "run/CREMAD_main.py": "5e5de57d9b09f2cd124dfdc32e9fa34fbb8a80308bea85d79f66eed72b5a41f1",
        "run/URFunny_main.py": "3c25b256b92964a96a68e4c4f0d213436c723c972711ec5031d53aa7728b84d9",
        "model/CREMAD_net.py": "7ec39ceb698205881039f2f5c72fac94b50d5977f6f5de9cdaa42af4788730d9",
        "model/URFunny_net.py": "d792223113548db98668fd08499d746c84752972cba7b582f3760052b264c4ed",
    }),
    "greedy": ("nyukat/greedy_multimodal_learning", "a190e03755bd8d0883b2c5c0cd7921d2561ce2ee", {
        "src/callbacks.py": "234ca0b06cc3f921946eaa204493cef6221cda6d9bf70ad3d37af8d61e6fee77",
        "src/balanced_mmtm.py": "4960fa99c9acb4d3699c2dcbd371ccb26cb241b094b009b32f121a6dc06099be",
    }),
}

_OPTIONAL_TOPLEVEL = ("torchvision", "PIL", "tqdm", "librosa", "cv2", "h5py",
                      "pandas", "argh", "tensorboard", "transformers",
                      "torchaudio", "skimage", "sklearn", "matplotlib")

# Source lines (exact stripped text) at which upstream locals are read.
_TRACE_POINTS = {
    "ogm_raw": "if args.modulation == 'Normal':",
    "ogm_coef": "if args.modulation_starts <= epoch <= args.modulation_ends: # bug fixed",
    "agm2_coef": 'if cfgs.methods=="AGM" and cfgs.modulation_starts <= epoch <= cfgs.modulation_ends:',
    "agm2_clip": "grad_max = torch.max(model.net.fusion_module.fc_out.weight.grad)",
    "agm2_fwd": "m_a = self.m_a_o(self.m_a(total_out,pad_visual_out,pad_audio_out))",
    "agm3_coef": 'if cfgs.methods == "AGM" and cfgs.modulation_starts <= epoch <= cfgs.modulation_ends:',
    "agm3_clip": "grad_max = torch.max(model.net.head.fc.weight.grad)",
    "agm3_fwd": "m_a_out = self.m_a_o(self.m_a(total_out,",
    "greedy_bdr": "BDR_0 = np.log10(self.M_bypass_modal_0/self.M_main_modal_0)",
}


# --------------------------------------------------------------------------
# patch 1: stub importer
# --------------------------------------------------------------------------
def _gin_stub():
    gin = types.ModuleType("gin")

    def configurable(*args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return lambda f: f

    gin.configurable = configurable
    gin.parse_config_files_and_bindings = lambda *a, **k: None
    cfg = types.ModuleType("gin.config")
    cfg._CONFIG = {}
    cfg._OPERATIVE_CONFIG = {}
    gin.config = cfg
    return gin, cfg


def install_stubs() -> list[str]:
    """Patch 1; returns what was stubbed (stored as ``meta_stubbed``)."""
    missing = original_code.install(_OPTIONAL_TOPLEVEL)
    if importlib.util.find_spec("gin") is None:
        gin, cfg = _gin_stub()
        sys.modules["gin"] = gin
        sys.modules["gin.config"] = cfg
        missing.append("gin (identity-configurable stub)")
    if "tensorboard" in missing:  # original_code.install stubbed torch.utils.tensorboard
        missing.append("torch.utils.tensorboard (SummaryWriter placeholder)")
    return missing


def _purge(names):
    for key in list(sys.modules):
        if key.split(".")[0] in names:
            del sys.modules[key]


@contextlib.contextmanager
def _repo_on_path(root: pathlib.Path, toplevel):
    _purge(toplevel)
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def t64(x, grad=False):
    t = torch.tensor(np.asarray(x), dtype=torch.float64)
    if grad:
        t.requires_grad_(True)
    return t


def npy(t):
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy().astype(np.float64) if t.is_floating_point() \
            else t.detach().cpu().numpy()
    return np.asarray(t, dtype=np.float64)


def f32exact(a):
    """Round to float32 and back: the upstream loops call ``.float()`` on inputs."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _line_of(func_or_code, text):
    code = getattr(func_or_code, "__code__", func_or_code)
    lines, start = __import__("inspect").getsourcelines(code)
    hits = [start + i for i, ln in enumerate(lines) if ln.strip() == text.strip()
            or ln.strip().startswith(text.strip())]
    assert len(hits) == 1, (code.co_name, text, hits)
    return hits[0]


class LineTracer:
    """Call ``callback(frame)`` whenever execution reaches ``(code, line)``."""

    def __init__(self):
        self.points = {}

    def add(self, func, text, callback):
        code = getattr(func, "__code__", func)
        self.points.setdefault(code, {})[_line_of(code, text)] = callback

    def _local(self, frame, event, arg):
        if event == "line":
            cb = self.points[frame.f_code].get(frame.f_lineno)
            if cb is not None:
                cb(frame)
        return self._local

    def _global(self, frame, event, arg):
        if frame.f_code in self.points:
            return self._local
        return None

    def __enter__(self):
        self._old = sys.gettrace()
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc):
        sys.settrace(self._old)


class RecOptim:
    """Optimiser stand-in: zero_grad -> None grads; step records the grads."""

    def __init__(self, named):
        self.named = list(named)
        self.records = []
        self.on_step = None
        self.param_groups = [{"lr": 0.0}]       # read by upstream log lines only

    def zero_grad(self, *a, **k):
        for _, p in self.named:
            p.grad = None

    def step(self, *a, **k):
        self.records.append({n: (None if p.grad is None else npy(p.grad).copy())
                             for n, p in self.named})
        if self.on_step is not None:
            self.on_step()


class _Nop:
    def __getattr__(self, name):
        return lambda *a, **k: None


def _quiet_logger():
    lg = logging.getLogger("balance_optim_ref")
    lg.handlers.clear()
    lg.addHandler(logging.NullHandler())
    lg.propagate = False
    return lg


# ==========================================================================
# 1. OGM / OGM-GE
# ==========================================================================
OGM_DIN, OGM_D = 3, 4


class _OgmEnc(nn.Module):
    """Encoder with a 4-D ('conv') weight, a 2-D weight and a 1-D bias, so that
    the ``len(parms.grad.size()) == 4`` filter is exercised."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Parameter(torch.zeros(OGM_D, OGM_DIN, 1, 1))
        self.lin = nn.Parameter(torch.zeros(OGM_D, OGM_D))
        self.bias = nn.Parameter(torch.zeros(OGM_D))

    def forward(self, x):
        h = torch.tanh(x @ self.conv.view(OGM_D, OGM_DIN).t())
        return h @ self.lin.t() + self.bias


class _OgmAV(nn.Module):
    def __init__(self, fusion_module):
        super().__init__()
        self.audio_net = _OgmEnc()
        self.visual_net = _OgmEnc()
        self.fusion_module = fusion_module
        self.queue = []

    def forward(self, spec, image):          # spec/image are ignored dummies
        xa, xv = self.queue.pop(0)
        return self.fusion_module(self.audio_net(xa), self.visual_net(xv))


class _DataParallelLike(nn.Module):
    """``model.module.*`` access and 'module.'-prefixed parameter names, as
    with the ``torch.nn.DataParallel`` wrapper used upstream."""

    def __init__(self, m):
        super().__init__()
        self.module = m

    def forward(self, *a):
        return self.module(*a)


OGM_SCALARS = ("alpha", "score_a", "score_v", "ratio_a", "ratio_v", "coeff_a", "coeff_v")
OGM_GRAD_PARAMS = ("module.audio_net.conv", "module.visual_net.conv",
                   "module.audio_net.lin", "module.audio_net.bias")

OGM_CASES = [
    # name, fusion, B, K, alpha, regime
    ("v_dom", "concat", 8, 6, 0.8, "v_dom"),
    ("a_dom", "concat", 8, 6, 0.8, "a_dom"),
    ("tie", "concat", 8, 6, 0.8, "tie"),
    ("rand", "concat", 16, 10, 0.1, "rand"),
    ("k31", "concat", 12, 31, 0.5, "a_dom_strong"),
    ("sum_v_dom", "sum", 8, 6, 0.8, "v_dom"),
    ("sum_rand", "sum", 8, 6, 0.3, "a_dom"),
]


def _ogm_params(rng, model, fusion, regime):
    m = model.module
    with torch.no_grad():
        for enc in (m.audio_net, m.visual_net):
            enc.conv.copy_(t64(rng.normal(0, 1.0, enc.conv.shape)))
            enc.lin.copy_(t64(rng.normal(0, 0.7, enc.lin.shape)))
            enc.bias.copy_(t64(rng.normal(0, 0.3, enc.bias.shape)))
        sa, sv = {"v_dom": (0.3, 3.0), "a_dom": (3.0, 0.3), "tie": (1.0, 1.0),
                  "rand": (1.0, 1.0), "a_dom_strong": (6.0, 0.2)}[regime]
        if fusion == "concat":
            fc = m.fusion_module.fc_out
            w = rng.normal(0, 1.0, fc.weight.shape)
            w[:, :OGM_D] *= sa
            w[:, OGM_D:] *= sv
            if regime == "tie":
                w[:, OGM_D:] = w[:, :OGM_D]
                m.visual_net.load_state_dict(m.audio_net.state_dict())
            fc.weight.copy_(t64(w))
            fc.bias.copy_(t64(rng.normal(0, 0.5, fc.bias.shape)))
        else:
            fm = m.fusion_module
            fm.fc_x.weight.copy_(t64(rng.normal(0, 1.0, fm.fc_x.weight.shape) * sa))
            fm.fc_y.weight.copy_(t64(rng.normal(0, 1.0, fm.fc_y.weight.shape) * sv))
            fm.fc_x.bias.copy_(t64(rng.normal(0, 0.5, fm.fc_x.bias.shape)))
            fm.fc_y.bias.copy_(t64(rng.normal(0, 0.5, fm.fc_y.bias.shape)))


def _ogm_make(up, fusion, k):
    if fusion == "concat":
        fm = up.fusion.ConcatFusion(input_dim=2 * OGM_D, output_dim=k)
    else:
        fm = up.fusion.SumFusion(input_dim=OGM_D, output_dim=k)
    return _DataParallelLike(_OgmAV(fm))


def _ogm_run(up, model, xa, xv, labels, args, epoch, seed=0):
    """Run the original train_epoch on one batch; return traced values."""
    b = len(labels)
    model.module.queue = [(t64(xa), t64(xv))]
    loader = [(torch.zeros(b, 1), torch.zeros(b, 1), torch.as_tensor(labels, dtype=torch.int64))]
    opt = RecOptim(model.named_parameters())
    rec = {}

    def at_raw(frame):
        rec["raw"] = {n: npy(p.grad).copy() for n, p in model.named_parameters()}

    def at_coef(frame):
        loc = frame.f_locals
        for key in ("a", "v", "out", "out_a", "out_v", "score_a", "score_v",
                    "ratio_a", "ratio_v", "coeff_a", "coeff_v", "loss", "loss_a", "loss_v"):
            rec[key] = npy(loc[key]).copy()

    stds = []
    orig_normal = torch.Tensor.normal_

    def normal_rec(self, mean=0, std=1, *a, **k):
        stds.append(float(std))
        return orig_normal(self, mean, std, *a, **k)

    tracer = LineTracer()
    tracer.add(up.main.train_epoch, _TRACE_POINTS["ogm_raw"], at_raw)
    tracer.add(up.main.train_epoch, _TRACE_POINTS["ogm_coef"], at_coef)
    torch.manual_seed(seed)
    torch.Tensor.normal_ = normal_rec                               # patch 3
    try:
        with tracer, contextlib.redirect_stdout(None):
            up.main.train_epoch(args, epoch, model, torch.device("cpu"), loader, opt, _Nop())
    finally:
        torch.Tensor.normal_ = orig_normal
    rec["final"] = opt.records[-1]
    rec["stds"] = stds
    return rec


def gen_ogm(up, rng, out):
    for name, fusion, b, k, alpha, regime in OGM_CASES:
        pre = f"ogm_{name}"
        model = _ogm_make(up, fusion, k)
        _ogm_params(rng, model, fusion, regime)
        xa = rng.normal(0, 1.0, (b, OGM_DIN))
        xv = xa.copy() if regime == "tie" else rng.normal(0, 1.0, (b, OGM_DIN))
        labels = rng.integers(0, k, b)
        args = types.SimpleNamespace(fusion_method=fusion, modulation="OGM", alpha=alpha,
                                     modulation_starts=0, modulation_ends=50,
                                     use_tensorboard=False)
        rec = _ogm_run(up, model, xa, xv, labels, args, epoch=0)
        out[f"{pre}_a"] = rec["a"]
        out[f"{pre}_v"] = rec["v"]
        if fusion == "concat":
            out[f"{pre}_w"] = npy(model.module.fusion_module.fc_out.weight)
            out[f"{pre}_b"] = npy(model.module.fusion_module.fc_out.bias)
        else:
            fm = model.module.fusion_module
            out[f"{pre}_wx"], out[f"{pre}_bx"] = npy(fm.fc_x.weight), npy(fm.fc_x.bias)
            out[f"{pre}_wy"], out[f"{pre}_by"] = npy(fm.fc_y.weight), npy(fm.fc_y.bias)
        out[f"{pre}_labels"] = labels.astype(np.int64)
        out[f"{pre}_out_a"] = rec["out_a"]
        out[f"{pre}_out_v"] = rec["out_v"]
        out[f"{pre}_scalars"] = np.array([alpha] + [float(rec[k]) for k in OGM_SCALARS[1:]])
        if regime == "tie":
            assert float(rec["ratio_v"]) == 1.0 and float(rec["coeff_v"]) == 1.0
        # gradients: raw (after loss.backward) and after OGM modulation, for the
        # 4-D 'conv' weights (modulated) and a 2-D / 1-D weight (never modulated)
        if name in ("v_dom", "a_dom", "tie"):
            out[f"{pre}_graw"] = np.concatenate([rec["raw"][n].ravel() for n in OGM_GRAD_PARAMS])
            out[f"{pre}_gmod"] = np.concatenate([rec["final"][n].ravel()
                                                 for n in OGM_GRAD_PARAMS])
        for n in rec["raw"]:                       # only 4-D audio/visual weights change
            if not n.endswith(".conv"):
                np.testing.assert_array_equal(rec["final"][n], rec["raw"][n])

    # ---- OGM-GE: std of the unscaled grad used for the noise -------------
    model = _ogm_make(up, "concat", 6)
    _ogm_params(rng, model, "concat", "v_dom")
    b = 8
    xa, xv = rng.normal(0, 1.0, (b, OGM_DIN)), rng.normal(0, 1.0, (b, OGM_DIN))
    labels = rng.integers(0, 6, b)
    args = types.SimpleNamespace(fusion_method="concat", modulation="OGM_GE", alpha=0.8,
                                 modulation_starts=0, modulation_ends=50, use_tensorboard=False)
    rec = _ogm_run(up, model, xa, xv, labels, args, epoch=0, seed=1234)
    pre = "ogmge"
    out[f"{pre}_xa"], out[f"{pre}_xv"] = xa, xv
    out[f"{pre}_labels"] = labels.astype(np.int64)
    out[f"{pre}_coeff_a"] = np.float64(rec["coeff_a"])
    out[f"{pre}_coeff_v"] = np.float64(rec["coeff_v"])
    mod_names = ["module.audio_net.conv", "module.visual_net.conv"]
    assert len(rec["stds"]) == 2, rec["stds"]
    out[f"{pre}_std_used"] = np.asarray(rec["stds"])           # [audio conv, visual conv]
    out[f"{pre}_graw_audio_conv"] = rec["raw"]["module.audio_net.conv"]
    out[f"{pre}_graw_visual_conv"] = rec["raw"]["module.visual_net.conv"]
    out[f"{pre}_gfinal_audio_conv"] = rec["final"]["module.audio_net.conv"]
    out[f"{pre}_gfinal_visual_conv"] = rec["final"]["module.visual_net.conv"]
    # consistency: std is torch's unbiased std of the *unscaled* grad + 1e-8,
    # and final = coeff*raw + N(0, std) noise drawn in parameter order.
    torch.manual_seed(1234)
    for i, (n, c) in enumerate(zip(mod_names, ("coeff_a", "coeff_v"))):
        raw = rec["raw"][n]
        assert rec["stds"][i] == torch.tensor(raw).std().item() + 1e-8
        noise = torch.zeros(raw.shape).normal_(0, rec["stds"][i]).numpy()
        np.testing.assert_allclose(rec["final"][n], raw * float(rec[c]) + noise,
                                   rtol=1e-13, atol=1e-16)
    # non-4-D parameters and the fusion head are left untouched
    for n, _ in model.named_parameters():
        if not n.endswith(".conv"):
            np.testing.assert_array_equal(rec["final"][n], rec["raw"][n])

    # ---- modulation window (inclusive on both ends) ----------------------
    starts, ends = 2, 4
    epochs = np.arange(0, 7)
    flags = []
    for ep in epochs:
        model = _ogm_make(up, "concat", 6)
        _ogm_params(np.random.default_rng(7), model, "concat", "v_dom")
        r7 = np.random.default_rng(8)
        xa, xv = r7.normal(0, 1.0, (8, OGM_DIN)), r7.normal(0, 1.0, (8, OGM_DIN))
        labels = r7.integers(0, 6, 8)
        args = types.SimpleNamespace(fusion_method="concat", modulation="OGM", alpha=0.8,
                                     modulation_starts=starts, modulation_ends=ends,
                                     use_tensorboard=False)
        rec = _ogm_run(up, model, xa, xv, labels, args, epoch=int(ep))
        n = "module.visual_net.conv"
        flags.append(not np.array_equal(rec["final"][n], rec["raw"][n]))
    out["ogm_window_starts_ends"] = np.array([starts, ends], dtype=np.int64)
    out["ogm_window_epochs"] = epochs.astype(np.int64)
    out["ogm_window_modulated"] = np.array(flags)


# ==========================================================================
# 2. AGM
# ==========================================================================
AGM2_B, AGM2_K, AGM2_C, AGM2_FA, AGM2_T, AGM2_FV = 8, 6, 4, 5, 3, 4


class _AgmAudioNet(nn.Module):
    """(B,1,Fa) -> (B,C,1,1): tanh(x W^T + b), weight stored 4-D."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(AGM2_C, AGM2_FA, 1, 1))
        self.bias = nn.Parameter(torch.zeros(AGM2_C))

    def forward(self, x):
        x = x.double().reshape(x.shape[0], -1)
        h = torch.tanh(x @ self.weight.view(AGM2_C, AGM2_FA).t() + self.bias)
        return h.view(x.shape[0], AGM2_C, 1, 1)


class _AgmVisualNet(nn.Module):
    """(B,T,Fv) -> (B*T,C,1,1): per-frame tanh(x W^T + b)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(AGM2_C, AGM2_FV))
        self.bias = nn.Parameter(torch.zeros(AGM2_C))

    def forward(self, x):
        x = x.double()
        h = torch.tanh(x @ self.weight.t() + self.bias)
        return h.reshape(-1, AGM2_C, 1, 1)


def _agm2_model(up, rng, scale_a, scale_v):
    cfgs = types.SimpleNamespace(dataset="CREMAD", fusion="concat", fusion_type="late_fusion",
                                 mode="train")
    model = up.cremad_net.GradMod(cfgs)          # original wrapper + AVClassifier
    net = model.net
    net.audio_net = _AgmAudioNet()
    net.visual_net = _AgmVisualNet()
    net.fusion_module = up.cremad_net.ConcatFusion(input_dim=2 * AGM2_C, output_dim=AGM2_K)
    with torch.no_grad():
        net.audio_net.weight.copy_(t64(rng.normal(0, 1.0, net.audio_net.weight.shape)))
        net.audio_net.bias.copy_(t64(rng.normal(0, 0.5, (AGM2_C,))))
        net.visual_net.weight.copy_(t64(rng.normal(0, 1.0, net.visual_net.weight.shape)))
        net.visual_net.bias.copy_(t64(rng.normal(0, 0.5, (AGM2_C,))))
        w = rng.normal(0, 1.0, (AGM2_K, 2 * AGM2_C))
        w[:, :AGM2_C] *= scale_a
        w[:, AGM2_C:] *= scale_v
        net.fusion_module.fc_out.weight.copy_(t64(w))
        net.fusion_module.fc_out.bias.copy_(t64(rng.normal(0, 0.5, (AGM2_K,))))
    return model


class _TinyURNet(nn.Module):
    """Stand-in for URFunny ``Later_Fusion_Model``: per-modality
    mean_t tanh(x W^T + b), concatenated [audio, vision, text], then the
    original one-layer ``MLP`` head (``head.fc``)."""

    B, K, C, T, F = 8, 2, 3, 3, 4

    def __init__(self, cfgs=None, mlp_cls=None):
        super().__init__()
        self.mode = "classify"
        self.audio_encoder = nn.Linear(self.F, self.C)
        self.visual_encoder = nn.Linear(self.F, self.C)
        self.text_encoder = nn.Linear(self.F, self.C)
        self.head = _TinyURNet.mlp_cls(3 * self.C, 16, self.K, one_layer=True)

    def forward(self, vision, audio, text, feature_length,
                pad_audio=False, pad_visual=False, pad_text=False):
        if pad_audio:
            audio = torch.zeros_like(audio)
        if pad_visual:
            vision = torch.zeros_like(vision)
        if pad_text:
            text = torch.zeros_like(text)
        enc = [torch.tanh(e(x.double())).mean(1) for e, x in
               ((self.audio_encoder, audio), (self.visual_encoder, vision),
                (self.text_encoder, text))]
        encoded = torch.cat(enc, dim=1)
        out = self.head(encoded)
        if self.mode == "feature":
            return out, encoded
        return out


def _agm3_model(up, rng, scales):
    cfgs = types.SimpleNamespace(fusion_type="late_fusion", mode="train")
    _TinyURNet.mlp_cls = up.module_base.MLP
    orig = up.urfunny_net.Later_Fusion_Model
    up.urfunny_net.Later_Fusion_Model = _TinyURNet               # patch 4
    try:
        model = up.urfunny_net.GradMod(cfgs)
    finally:
        up.urfunny_net.Later_Fusion_Model = orig
    net, c = model.net, _TinyURNet.C
    with torch.no_grad():
        for e in (net.audio_encoder, net.visual_encoder, net.text_encoder):
            e.weight.copy_(t64(rng.normal(0, 1.0, e.weight.shape)))
            e.bias.copy_(t64(rng.normal(0, 0.5, e.bias.shape)))
        w = rng.normal(0, 1.0, net.head.fc.weight.shape)
        for i, s in enumerate(scales):                   # [audio, vision, text] blocks
            w[:, i * c:(i + 1) * c] *= s
        net.head.fc.weight.copy_(t64(w))
        net.head.fc.bias.copy_(t64(rng.normal(0, 0.5, net.head.fc.bias.shape)))
    return model


def _agm_trace(up, model, train_fn, fwd_fn, keys_coef, keys_fwd, texts):
    """Install tracer points in ``train`` and ``GradMod.forward``."""
    steps = []
    cur = {}

    def at_fwd(frame):
        loc = frame.f_locals
        cur["fwd"] = {k: loc[k] for k in keys_fwd}
        for k in keys_fwd:
            if loc[k].requires_grad:
                loc[k].retain_grad()

    def at_coef(frame):
        loc = frame.f_locals
        cur["coef"] = {k: (npy(loc[k]).copy() if isinstance(loc[k], torch.Tensor)
                           else np.float64(loc[k])) for k in keys_coef}

    def at_clip(frame):
        fc = frame.f_locals["model"].net
        w = fc.fusion_module.fc_out.weight if hasattr(fc, "fusion_module") else fc.head.fc.weight
        cur["preclip"] = npy(w.grad).copy()

    tracer = LineTracer()
    tracer.add(fwd_fn, texts[0], at_fwd)
    tracer.add(train_fn, texts[1], at_coef)
    tracer.add(train_fn, texts[2], at_clip)

    def on_step():
        rec = dict(cur)
        rec["fwd_grad"] = {k: (np.full(tuple(v.shape), np.nan) if v.grad is None
                               else npy(v.grad).copy()) for k, v in cur["fwd"].items()}
        rec["fwd"] = {k: npy(v).copy() for k, v in cur["fwd"].items()}
        rec["scales"] = np.array([float(getattr(model, s)) for s in
                                  ("scale_a", "scale_v", "scale_t") if hasattr(model, s)])
        steps.append(rec)
        cur.clear()

    return tracer, steps, on_step


AGM2_TRACE = ("iteration", "score_audio", "score_visual", "ratio_a", "ratio_v",
              "optimal_ratio_a", "optimal_ratio_v", "coeff_a", "coeff_v",
              "train_score_a", "train_score_v")
AGM2_OUTS = ("total_out", "pad_visual_out", "pad_audio_out", "zero_padding_out")
AGM3_TRACE = ("iteration", "score_audio", "score_visual", "score_text", "mean_score",
              "ratio_a", "ratio_v", "ratio_t", "optimal_mean_score", "optimal_ratio_a",
              "optimal_ratio_v", "optimal_ratio_t", "coeff_a", "coeff_v", "coeff_t",
              "train_score_a", "train_score_v", "train_score_t")
AGM3_OUTS = ("total_out", "pad_audio_out", "pad_visual_out", "pad_text_out",
             "pad_visual_audio_out", "pad_visual_text_out", "pad_audio_text_out",
             "zero_padding_out")


def _agm_store(out, pre, steps, opt, model, fc_name, trace_keys, outs_keys, mono_keys,
               alpha, window, epochs, nsteps, states, last):
    out[f"{pre}_config"] = np.array([alpha, window[0], window[1]], dtype=np.float64)
    out[f"{pre}_epoch"] = np.repeat(np.array(epochs, dtype=np.int64), nsteps)
    out[f"{pre}_outs"] = np.stack([np.stack([s["fwd"][k] for k in outs_keys]) for s in steps])
    out[f"{pre}_outs_grad"] = np.stack([np.stack([s["fwd_grad"][k] for k in outs_keys])
                                        for s in steps])
    out[f"{pre}_mono"] = np.stack([np.stack([s["coef"][k] for k in mono_keys]) for s in steps])
    out[f"{pre}_trace"] = np.array([[float(s["coef"][k]) for k in trace_keys] for s in steps])
    out[f"{pre}_state_in"] = np.array(states, dtype=np.float64)
    out[f"{pre}_state_out"] = np.array(last, dtype=np.float64)
    out[f"{pre}_scales"] = np.stack([s["scales"] for s in steps])
    out[f"{pre}_fcgrad_preclip"] = np.stack([s["preclip"] for s in steps])
    out[f"{pre}_fcgrad_final"] = np.stack([r[fc_name] for r in opt.records])
    out[f"{pre}_clipped"] = np.array([not np.array_equal(a, b) for a, b in
                                      zip(out[f"{pre}_fcgrad_preclip"],
                                          out[f"{pre}_fcgrad_final"])])
    names = [n for n, _ in model.named_parameters()]
    out[f"{pre}_pgrad_final"] = np.stack([np.concatenate([r[n].ravel() for n in names])
                                          for r in opt.records])
    return names


def gen_agm2(up, rng, out):
    """CREMA-D (M = 2) ``train`` with AGM.  Modulation window [0, end]; epochs
    after ``end`` run outside the window (the hook scales stay stale)."""
    cases = [
        # name, alpha, (scale_a, scale_v), n_steps per epoch, epochs, window end
        ("cremad_a", 1.0, (2.5, 0.4), 3, (1, 2), 1),
        ("cremad_b", 0.5, (0.3, 3.0), 3, (1, 2), 2),
        ("cremad_c", 1.0, (12.0, 1.0), 2, (1,), 1),      # extreme audio logits
    ]
    for name, alpha, (sa, sv), nsteps, epochs, mod_end in cases:
        pre = f"agm_{name}"
        model = _agm2_model(up, rng, sa, sv)
        batches = []
        for _ in range(nsteps):
            spec = f32exact(rng.normal(0, 1.0, (AGM2_B, AGM2_FA)))
            img = f32exact(rng.normal(0, 1.0, (AGM2_B, AGM2_T, AGM2_FV)))
            lab = rng.integers(0, AGM2_K, AGM2_B)
            batches.append((spec, img, lab))
        loader = [(torch.arange(AGM2_B), torch.tensor(s, dtype=torch.float32),
                   torch.tensor(i, dtype=torch.float32), torch.as_tensor(l, dtype=torch.int64))
                  for s, i, l in batches]
        cfgs = types.SimpleNamespace(dataset="CREMAD", modality="Multimodal",
                                     fusion_type="late_fusion", methods="AGM", alpha=alpha,
                                     modulation_starts=0, modulation_ends=mod_end,
                                     use_mgpu=False, EPOCHS=max(epochs))
        opt = RecOptim(model.named_parameters())
        mono = ("out_a", "out_v")
        tracer, steps, on_step = _agm_trace(
            up, model, up.cremad_main.train, up.cremad_net.GradMod.forward,
            AGM2_TRACE + mono, AGM2_OUTS,
            (_TRACE_POINTS["agm2_fwd"], _TRACE_POINTS["agm2_coef"], _TRACE_POINTS["agm2_clip"]))
        opt.on_step = on_step
        last = (0.0, 0.0)                          # (a, v) as train() takes/returns them
        states = []
        with tracer:
            for ep in epochs:
                states.append(last)
                last = up.cremad_main.train(
                    model, loader, opt, _Nop(), _quiet_logger(), cfgs, ep,
                    torch.device("cpu"), _Nop(), *last, 1.0, 1.0)
        assert len(steps) == nsteps * len(epochs)
        out[f"{pre}_spec"] = np.stack([b[0] for b in batches])
        out[f"{pre}_image"] = np.stack([b[1] for b in batches])
        out[f"{pre}_labels"] = np.stack([b[2] for b in batches]).astype(np.int64)
        net = model.net
        out[f"{pre}_p_audio"] = np.concatenate(
            [npy(net.audio_net.weight).reshape(AGM2_C, AGM2_FA), npy(net.audio_net.bias)[:, None]], 1)
        out[f"{pre}_p_visual"] = np.concatenate(
            [npy(net.visual_net.weight), npy(net.visual_net.bias)[:, None]], 1)
        out[f"{pre}_p_fc"] = np.concatenate(
            [npy(net.fusion_module.fc_out.weight), npy(net.fusion_module.fc_out.bias)[:, None]], 1)
        names = _agm_store(out, pre, steps, opt, model, "net.fusion_module.fc_out.weight",
                           AGM2_TRACE, AGM2_OUTS, mono, alpha, (0, mod_end), epochs, nsteps,
                           states, last)
        out["agm_cremad_pgrad_names"] = np.array(names)
        # the hooked mono-modal outputs sum to total_out (up to rounding)
        np.testing.assert_allclose(out[f"{pre}_mono"].sum(1), out[f"{pre}_outs"][:, 0],
                                   rtol=0, atol=1e-13)
        lab = np.tile(out[f"{pre}_labels"], (len(epochs), 1))         # per step
        ncl = []
        for mi in range(2):
            o_m = out[f"{pre}_mono"][:, mi]
            z = o_m - o_m.max(-1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
            p_true = np.exp(np.take_along_axis(logp, lab[..., None], -1)[..., 0])
            ncl.append((p_true < 1e-8).sum(-1))
        out[f"{pre}_n_clamped"] = np.stack(ncl, 1).astype(np.int64)


def gen_agm3(up, rng, out):
    """UR-Funny (M = 3) ``train`` with AGM, two epochs, window [0, 1]."""
    name, alpha, scales, nsteps, epochs, mod_end = "urfunny", 1.0, (2.0, 0.5, 1.0), 3, (1, 2), 1
    pre = f"agm_{name}"
    tn = _TinyURNet
    model = _agm3_model(up, rng, scales)
    batches = []
    for _ in range(nsteps):
        v = f32exact(rng.normal(0, 1.0, (tn.B, tn.T, tn.F)))
        a = f32exact(rng.normal(0, 1.0, (tn.B, tn.T, tn.F)))
        t = f32exact(rng.normal(0, 1.0, (tn.B, tn.T, tn.F)))
        lab = rng.integers(0, tn.K, tn.B)
        batches.append((v, a, t, lab))
    loader = [([torch.tensor(v, dtype=torch.float32), torch.tensor(a, dtype=torch.float32),
                torch.tensor(t, dtype=torch.float32)], [None, None, None],
               torch.arange(tn.B), torch.as_tensor(l, dtype=torch.int64).reshape(-1, 1))
              for v, a, t, l in batches]
    cfgs = types.SimpleNamespace(modality="Multimodal", fusion_type="late_fusion", methods="AGM",
                                 alpha=alpha, modulation_starts=0, modulation_ends=mod_end,
                                 use_mgpu=False, EPOCHS=max(epochs))
    opt = RecOptim(model.named_parameters())
    mono = ("m_a_out", "m_v_out", "m_t_out")
    tracer, steps, on_step = _agm_trace(
        up, model, up.urfunny_main.train, up.urfunny_net.GradMod.forward,
        AGM3_TRACE + mono, AGM3_OUTS,
        (_TRACE_POINTS["agm3_fwd"], _TRACE_POINTS["agm3_coef"], _TRACE_POINTS["agm3_clip"]))
    opt.on_step = on_step
    last = (0.0, 0.0, 0.0)       # (v, a, t) -- the order train() takes and returns
    states = []
    with tracer:
        for ep in epochs:
            states.append(last)
            last = up.urfunny_main.train(model, loader, opt, _Nop(), cfgs, torch.device("cpu"),
                                         _quiet_logger(), ep, _Nop(), *last, 1.0, 1.0, 1.0)
    assert len(steps) == nsteps * len(epochs)
    out[f"{pre}_inputs"] = np.stack([np.stack(b[:3]) for b in batches])   # [n, (v,a,t), B,T,F]
    out[f"{pre}_labels"] = np.stack([b[3] for b in batches]).astype(np.int64)
    net = model.net
    out[f"{pre}_p_enc"] = np.stack([np.concatenate([npy(e.weight), npy(e.bias)[:, None]], 1)
                                    for e in (net.audio_encoder, net.visual_encoder,
                                              net.text_encoder)])
    out[f"{pre}_p_fc"] = np.concatenate([npy(net.head.fc.weight), npy(net.head.fc.bias)[:, None]], 1)
    names = _agm_store(out, pre, steps, opt, model, "net.head.fc.weight", AGM3_TRACE, AGM3_OUTS,
                       mono, alpha, (0, mod_end), epochs, nsteps, states, last)
    out[f"{pre}_pgrad_names"] = np.array(names)
    np.testing.assert_allclose(out[f"{pre}_mono"].sum(1), out[f"{pre}_outs"][:, 0],
                               rtol=0, atol=1e-13)


# ==========================================================================
# 3. Greedy learner
# ==========================================================================
class _GreedyModel(nn.Module):
    """Parameter names as in MMTM_MVCNN: net_view_{0,1}.* branches and
    mmtm2.fc_{squeeze,visual,skeleton}.* (an original MMTM_mitigate)."""

    def __init__(self, mmtm_cls):
        super().__init__()
        self.net_view_0 = nn.ModuleDict({"conv1": nn.Conv2d(1, 1, 2), "fc": nn.Linear(2, 2)})
        self.net_view_1 = nn.ModuleDict({"conv1": nn.Conv2d(1, 1, 2), "fc": nn.Linear(2, 2)})
        self.mmtm2 = mmtm_cls(2, 2, 4)       # dim 4 -> squeeze width int(2*4/4) = 2


# per step: (epoch, grad scales for groups main0, main1, bypass0, bypass1)
_GREEDY_STEPS = [
    (1, (1.0, 1.0, 1.0, 1.0)),        # locked: BDR computed, no curation
    (1, (1.0, 2.0, 1.0, 1.0)),
    (2, (1.0, 1.0, 8.0, 0.3)),        # unlocked; BDR_0 >> BDR_1 -> caring 0
    (2, (1.0, 1.0, 1.0, 1.0)),        # 5 curation steps (no BDR computed)
    (2, (1.0, 1.0, 1.0, 1.0)),
    (2, (1.0, 1.0, 1.0, 1.0)),
    (2, (1.0, 1.0, 1.0, 1.0)),
    (2, (1.0, 1.0, 1.0, 1.0)),
    (3, (1.0, 1.0, 0.05, 40.0)),      # BDR_1 >> BDR_0 -> caring 1
    (3, (1.0, 1.0, 1.0, 1.0)),
    (3, (1.0, 1.0, 1.0, 1.0)),
    (3, (1.0, 1.0, 1.0, 1.0)),
    (3, (1.0, 1.0, 1.0, 1.0)),
    (3, (1.0, 1.0, 1.0, 1.0)),
    (3, (2.0, 1.0, 1.0, 1.0)),
]
GREEDY_STATE = ("epoch", "bdr_computed", "curation_mode_in", "d_bdr", "curation_mode",
                "caring_modality", "curation_step", "M_main_0", "M_main_1", "M_bypass_0",
                "M_bypass_1")


def _greedy_group(name):
    if "mmtm" in name:
        if "visual" in name:
            return 2
        if "skeleton" in name:
            return 3
        return 4                     # shared squeeze layer -> both bypasses
    if "net_view_0" in name:
        return 0
    if "net_view_1" in name:
        return 1
    return 5


def _q(a, bits=12):
    """Dyadic rounding (exact in float64; keeps the npz compressible)."""
    return np.round(np.asarray(a) * 2.0 ** bits) / 2.0 ** bits


def _greedy_sequence(up, rng, steps, symmetric):
    model = _GreedyModel(up.mmtm.MMTM_mitigate)
    named = list(model.named_parameters())
    clb = up.callbacks.Bias_Mitigation_Strong(epsilon=0.01, curation_windowsize=5,
                                              branchnames=["net_view_0", "net_view_1"],
                                              starting_epoch=2,
                                              MMTMnames=["visual", "skeleton"])
    clb.set_model(model, ignore=False)
    pyt = types.SimpleNamespace(curation_mode=False, caring_modality=None)
    clb.set_model_pytoune(pyt)
    clb.on_train_begin({})
    bdr_locals = {}

    def at_bdr(frame):
        loc = frame.f_locals
        bdr_locals.update({k: list(loc[k]) for k in ("wn_main", "wn_bypass", "gn_main",
                                                      "gn_bypass")})

    tracer = LineTracer()
    tracer.add(up.callbacks.Bias_Mitigation_Strong.compute_BDR, _TRACE_POINTS["greedy_bdr"],
               at_bdr)
    W, G, state, sums = [], [], [], []
    cur_epoch = 0
    for step, (epoch, gsc) in enumerate(steps, start=1):
        if epoch != cur_epoch:
            clb.on_epoch_begin(epoch, {})
            cur_epoch = epoch
        vals = {}
        with torch.no_grad():
            for n, p in named:
                grp = _greedy_group(n)
                twin = (n.replace("net_view_1", "net_view_0").replace("skeleton", "visual")
                        if symmetric else n)
                if twin in vals:
                    w, g = vals[twin]
                else:
                    sc = gsc[grp] if grp < 4 else math.sqrt(gsc[2] * gsc[3])
                    w = _q(rng.normal(0, 1.0, p.shape))
                    g = _q(rng.normal(0, 0.1 * sc, p.shape), 16)
                vals[n] = (w, g)
                p.copy_(t64(w))
                p.grad = t64(g)
        W.append(np.concatenate([vals[n][0].ravel() for n, _ in named]))
        G.append(np.concatenate([vals[n][1].ravel() for n, _ in named]))
        bdr_locals.clear()
        mode_in = pyt.curation_mode
        with tracer:
            clb.on_backward_end(step)
        computed = bool(bdr_locals)
        state.append([epoch, float(computed), float(mode_in),
                      float(clb.d_BDR) if hasattr(clb, "d_BDR") else np.nan,
                      float(pyt.curation_mode),
                      -1.0 if pyt.caring_modality is None else float(pyt.caring_modality),
                      float(getattr(clb, "curation_step", -1)),
                      clb.M_main_modal_0, clb.M_main_modal_1, clb.M_bypass_modal_0,
                      clb.M_bypass_modal_1])
        sums.append(np.array([bdr_locals["wn_main"] + bdr_locals["wn_bypass"],
                              bdr_locals["gn_main"] + bdr_locals["gn_bypass"]])
                    if computed else np.full((2, 4), np.nan))
    return named, np.stack(W), np.stack(G), np.array(state), np.stack(sums)


def gen_greedy(up, rng, out):
    # ---------------- conditional learning speed + schedule ----------------
    named, W, G, state, sums = _greedy_sequence(up, rng, _GREEDY_STEPS, symmetric=False)
    pre = "greedy_bdr"
    out["greedy_param_names"] = np.array([n for n, _ in named])
    out["greedy_param_sizes"] = np.array([p.numel() for _, p in named], dtype=np.int64)
    out["greedy_param_group"] = np.array([_greedy_group(n) for n, _ in named], dtype=np.int64)
    out["greedy_config"] = np.array([0.01, 5, 2], dtype=np.float64)  # epsilon, window, start
    out[f"{pre}_w"], out[f"{pre}_g"] = W, G
    out[f"{pre}_state"] = state
    out[f"{pre}_sqnorm_sums"] = sums
    cm, car = state[:, 4], state[:, 5]
    assert {0.0, 1.0} <= set(car[cm == 1].tolist()), state
    # symmetric branches: d_BDR == 0 exactly -> never curated
    sym_steps = [(1, (1.0,) * 4), (2, (1.0,) * 4), (2, (1.0, 1.0, 3.0, 3.0)), (2, (1.0,) * 4)]
    _, W2, G2, state2, sums2 = _greedy_sequence(up, rng, sym_steps, symmetric=True)
    assert np.all(state2[:, 3] == 0.0) and np.all(state2[:, 4] == 0.0), state2
    out["greedy_sym_w"], out["greedy_sym_g"] = W2, G2
    out["greedy_sym_state"] = state2
    out["greedy_sym_sqnorm_sums"] = sums2

    # ---------------- MMTM_mitigate forward in all modes ----------------
    C, Bm = 3, 4
    mmtm = up.mmtm.MMTM_mitigate(C, C, 2)            # dim_out = int(2*6/2) = 6
    with torch.no_grad():
        for p in mmtm.parameters():
            p.copy_(t64(_q(rng.normal(0, 0.8, p.shape))))
    pre = "greedy_mmtm"
    out[f"{pre}_p_squeeze"] = np.concatenate([npy(mmtm.fc_squeeze.weight),
                                              npy(mmtm.fc_squeeze.bias)[:, None]], 1)
    out[f"{pre}_p_visual"] = np.concatenate([npy(mmtm.fc_visual.weight),
                                             npy(mmtm.fc_visual.bias)[:, None]], 1)
    out[f"{pre}_p_skeleton"] = np.concatenate([npy(mmtm.fc_skeleton.weight),
                                               npy(mmtm.fc_skeleton.bias)[:, None]], 1)
    avg_sq = [_q(rng.normal(0, 1.0, C)), _q(rng.normal(0, 1.0, C))]
    out[f"{pre}_avg_squeeze"] = np.stack(avg_sq)
    calls = [  # (curation_mode, caring_modality, turnoff_cross_modal_flow)
        (False, 0, False), (False, None, False), (True, 0, False), (True, 1, False),
        (False, 0, True), (True, 0, False)]
    X, O, Wt, Gr, RA = [], [], [], [], []
    for cur, caring, off in calls:
        x = t64(_q(rng.normal(0, 1.0, (Bm, C, 2, 2))), grad=True)
        y = t64(_q(rng.normal(0, 1.0, (Bm, C, 2, 2))), grad=True)
        w1, w2 = _q(rng.normal(0, 1.0, (Bm, C, 2, 2))), _q(rng.normal(0, 1.0, (Bm, C, 2, 2)))
        ov, os_, _, _ = mmtm(x, y, return_scale=False, return_squeezed_mps=False,
                             turnoff_cross_modal_flow=off,
                             average_squeezemaps=[t64(a) for a in avg_sq] if off else None,
                             curation_mode=cur, caring_modality=caring)
        loss = (ov * t64(w1)).sum() + (os_ * t64(w2)).sum()
        g1, g2 = torch.autograd.grad(loss, (x, y))
        X.append(np.stack([npy(x), npy(y)]))
        O.append(np.stack([npy(ov), npy(os_)]))
        Wt.append(np.stack([w1, w2]))
        Gr.append(np.stack([npy(g1), npy(g2)]))
        RA.append(np.stack([npy(mmtm.running_avg_weight_visual),
                            npy(mmtm.running_avg_weight_skeleton)]))
    out[f"{pre}_calls"] = np.array([[int(c), -1 if k is None else k, int(o)]
                                    for c, k, o in calls], dtype=np.int64)
    out[f"{pre}_x"], out[f"{pre}_out"] = np.stack(X), np.stack(O)
    out[f"{pre}_wloss"], out[f"{pre}_grad"] = np.stack(Wt), np.stack(Gr)
    out[f"{pre}_running_avg"] = np.stack(RA)
    assert mmtm.step == len(calls)


# ==========================================================================
def load_upstream(ogm_dir, agm_dir, greedy_dir):
    ns = types.SimpleNamespace()
    with _repo_on_path(ogm_dir, ("main", "models", "utils", "dataset")):
        ns.ogm = types.SimpleNamespace(main=importlib.import_module("main"),
                                       fusion=importlib.import_module("models.fusion_modules"))
    with _repo_on_path(agm_dir, ("main", "model", "utils", "run", "tasks", "dataloader")):
        ns.agm = types.SimpleNamespace(
            cremad_main=importlib.import_module("run.CREMAD_main"),
            cremad_net=importlib.import_module("model.CREMAD_net"),
            urfunny_main=importlib.import_module("run.URFunny_main"),
            urfunny_net=importlib.import_module("model.URFunny_net"),
            module_base=importlib.import_module("model.utils.module_base"))
    with _repo_on_path(greedy_dir, ("src", "train", "eval")):
        ns.greedy = types.SimpleNamespace(callbacks=importlib.import_module("src.callbacks"),
                                          mmtm=importlib.import_module("src.balanced_mmtm"))
    return ns


def main(argv=None) -> None:
    parser = original_code.argument_parser(__doc__, {
        "ogm": "checkout of OGM-GE_CVPR2022 (repository root)",
        "agm": "checkout of AGM_ICCV2023 (repository root)",
        "greedy": "checkout of greedy_multimodal_learning (repository root)"})
    args = parser.parse_args(argv)
    dirs = {"ogm": args.ogm_dir.resolve(), "agm": args.agm_dir.resolve(),
            "greedy": args.greedy_dir.resolve()}

    stubbed = install_stubs()
    torch.Tensor.cuda = lambda self, *a, **k: self                    # patch 2
    _orig_to = torch.Tensor.to

    def _to(self, *a, **k):
        if a and isinstance(a[0], str) and a[0].startswith("cuda"):
            return self
        return _orig_to(self, *a, **k)

    torch.Tensor.to = _to                                             # patch 2
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    up = load_upstream(dirs["ogm"], dirs["agm"], dirs["greedy"])

    files, shas = [], []
    for key, (repo, commit, pinned) in UPSTREAM.items():
        for rel, digest in original_code.check_sha256(dirs[key], pinned).items():
            files.append(f"{repo}@{commit}:{rel}")
            shas.append(digest)

    rng = np.random.default_rng(SEED)
    out: dict[str, np.ndarray] = {}
    gen_ogm(up.ogm, rng, out)
    gen_agm2(up.agm, rng, out)
    gen_agm3(up.agm, rng, out)
    gen_greedy(up.greedy, rng, out)
    out["meta_files"] = np.array(files)
    out["meta_sha256"] = np.array(shas)
    out["meta_stubbed"] = np.array(stubbed)
    out["meta_versions"] = np.array([f"torch {torch.__version__}", f"numpy {np.__version__}",
                                     f"python {sys.version.split()[0]}"])
    original_code.save_vectors(args.out, out)


if __name__ == "__main__":
    main()
