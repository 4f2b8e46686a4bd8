"""Generate reference test vectors from the original PyTorch DynMM and AdaMML implementations.

DynMM = Xue, Marculescu, "Dynamic Multimodal Fusion", CVPR Workshops (MULA) 2023,
https://github.com/zihuixue/DynMM.  AdaMML = Panda, Chen, Fan, Sun, Saenko, Oliva, Feris,
"AdaMML: Adaptive Multi-Modal Learning for Efficient Video Recognition", ICCV 2021,
https://github.com/IBM/AdaMML.  The vectors feed parity tests of the JAX dynamic-gating code.
Everything runs in float64 on CPU, on inputs drawn from one seeded numpy generator; the upstream
code is imported from ``--dynmm-dir`` and ``--adamml-dir`` (repository roots) and is never
copied here.

Upstream objects that are called (all unmodified):

* DynMM ``ModalityDynMM/multimedia/imdb_dyn.py``: ``DiffSoftmax``, ``DynMMNet.forward`` (E = 2).
* DynMM ``ModalityDynMM/affect/affect_dyn.py``: ``DiffSoftmax``, ``DynMMNetV2.forward`` (E = 2),
  ``DynMMNet.forward2`` (E = 3).
* DynMM ``FusionDynMM/src/models/model_skip_mod_globalgate.py``: ``DiffSoftmax``,
  ``SkipGateESANet.__init__`` (for its FLOP tables) and ``SkipGateESANet.forward``.
* DynMM ``FusionDynMM/src/models/rgb_depth_fusion.py``: ``SqueezeAndExciteReweigh.forward``
  (the per-layer gate of the non-global variant, ``F.gumbel_softmax``).
* DynMM ``FusionDynMM/src/utils.py``: ``ExpDecayTemp``, ``get_temp``.
* DynMM ``FusionDynMM/train.py``: ``train_one_epoch`` (the FLOP loss with budget, one batch).
* AdaMML ``models/policy_net.py``: ``PolicyNet.__init__``, ``wrapper_gumbel_softmax``,
  ``forward`` (causality ``None`` and ``'lstm'``), ``decay_temperature``.
* AdaMML ``models/adamml.py``: ``AdaMML.__init__``, ``forward``, ``decay_temperature``.
* AdaMML ``models/joint_resnet_mobilenetv2.py``: ``JointResNetMobileNetV2.forward`` (logit
  fusion, ``learnable_lf_weights`` on and off).
* AdaMML ``utils/utils.py``: ``compute_policy_loss`` (``'blockdrop'`` and ``'mean'``).

Stubs and patches (all documented in PROVENANCE_dynamic.md):

1. Third-party packages imported at module level but unused by the code exercised (pandas, cv2,
   matplotlib, torchvision, ignite, scipy) are placeholders when not installed
   (``original_code.install``); tensorflow and PIL, whose attributes are read at import time
   (``tf.compat.v1.disable_eager_execution()``, ``Image.BILINEAR`` as a default argument), are
   modules whose attributes are ``Placeholder`` instances; a missing ``tqdm`` is a pass-through
   iterator stub (``tqdm(it)`` iterates ``it``), because ``train_one_epoch`` loops over
   ``tqdm(enumerate(loader))``.
   MultiBench's own packages, imported by the modality-level DynMM files (``datasets``,
   ``unimodals``, ``fusions``, ``training_structures``), are always placeholders.
2. ``.cuda()`` is the identity (``original_code.cuda_to_cpu``): ``SkipGateESANet.__init__``
   moves its FLOP tables to the GPU.
3. Fixed Gumbel noise: ``F.gumbel_softmax`` draws its noise as
   ``-torch.empty_like(logits).exponential_().log()``.  While a call runs,
   ``torch.Tensor.exponential_`` fills the tensor with ``-log(U)`` for a stored uniform array
   ``U`` instead of sampling, so the Gumbel noise is exactly ``g = -log(-log(U))``.
4. Networks are shells: built with ``cls.__new__`` + ``nn.Module.__init__`` (or their real
   ``__init__``, then submodules replaced), with stub encoders, heads and gates that return given
   tensors, so that the original ``forward`` bodies run on given gate logits and branch outputs.
   The FusionDynMM encoder stages are stand-ins ``x -> tanh(1x1 conv(x, W_k))``; the AdaMML policy
   LSTM hidden size is 4 instead of the hard-coded 256 (weights stored); ``AdaMML.data_layer`` (the
   video reshaping) is replaced by one that returns the given per-segment inputs.
5. Inline code is re-expressed only where it is trivial and documented: DynMM modality-level
   ``loss = loss1 + lossw * loss2`` (``Supervised_Learning.train``) is not run; its two inputs are.

Usage (``original_code.py``, the helpers shared with the other generators, is imported from this
script's folder)::

    python generate_dynamic_vectors.py --dynmm-dir DynMM --adamml-dir AdaMML

(``--out`` defaults to ``data/dynamic_vectors.npz`` beside this script.)
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import pathlib
import sys
import types

import numpy as np
import torch
from torch import nn

import original_code  # beside this script, so first on sys.path when it runs

SEED = 20230406

# Upstream files whose code is executed, with their sha256 at the commits used.  A mismatch only
# warns.
UPSTREAM = {
    "dynmm": ("zihuixue/DynMM", "cbab632cd943195fd7ddaffb43d2d0a5388a9068", {
        "ModalityDynMM/multimedia/imdb_dyn.py":
            "a50cb7fe6ab283a7620477e31be1ab8dca5bbf3d6c652ae9888972062c11e23d",
        "ModalityDynMM/affect/affect_dyn.py":
            "3b9cee366c5458e95a9e9ac51ee7a6ee13a47e1c59fe3b5ad6a121b7983d4e8e",
        "FusionDynMM/src/models/model_skip_mod_globalgate.py":
            "44a09dc81f9f62c09ea62f8a503f2619016426454996159362c9958335addd3c",
        "FusionDynMM/src/models/rgb_depth_fusion.py":
            "be2c9d76d090de48bc69283797e07d47023d17ed4cb971ef08020d77e81658ce",
        "FusionDynMM/src/utils.py":
            "a659040e7dcebda8c1ffebd92785df16f8d00cf9b4b61187e82e78fc9bbf3f47",
        "FusionDynMM/train.py":
            "3efd69105700a0e1292bfa0bf7a150ed1e41555b3f598ea04331f70a9c8b28b7",
    }),
    "adamml": ("IBM/AdaMML", "be50c02188e6b31ca3a25f285b1b538c137d3d5c", {
        "models/policy_net.py": "7b964a4b81eaa598f4ed6a99d502a27ddb8a778dedbb1a564b233143046a8445",
        "models/adamml.py": "72c0f82c80c2f60c836c3e21108316d17290c280a84c1d2b0b3ec495effd20e4",
        "models/joint_resnet_mobilenetv2.py":
            "74bae92f36d44d9a3c4bb225924f956979cee5e80c35c7e57014b4b073fc2172",
        "utils/utils.py": "f5ef06a2567bcc035c6ebeeb354fff81c4c0918e08c3b46586d9936f28feaabf",
    }),
}

# Third-party packages imported at module level by the files above (or by the modules they
# import) but never used by the code exercised.
_OPTIONAL_TOPLEVEL = ("pandas", "cv2", "matplotlib", "torchvision", "ignite", "scipy")
# Ones whose attributes are used at import time (tf.compat.v1..., Image.BILINEAR as a default).
_INSTANCE_TOPLEVEL = ("tensorflow", "PIL")
# MultiBench's packages, imported by the modality-level DynMM scripts (not in either repository).
_MULTIBENCH = ("datasets", "unimodals", "fusions", "training_structures", "eval_scripts")

DS_TAUS = (1.0, 0.3, 0.001)        # DiffSoftmax temperatures (0.001 = DynMM's --end-temp)
DS_B = 8
MOD_B, MOD_C = 8, 5                # modality-level: batch, output width
MOD_LAMBDA = 0.1                   # imdb_dyn.py --reg default
FUS_B, FUS_C, FUS_HW = 6, 3, 3    # fusion-level: batch, channels, input H = W
TEMP_EPOCHS = (0, 1, 2, 5, 10, 50, 100, 250, 499, 500, 501, 750)
TEMP_CONFIGS = ((1.0, 0.001, 500), (0.1, 0.001, 500), (1.0, 0.001, 0))
LAYER_B = 8
ADA_TEMPS = (5.0, 5.0 * 0.965 ** 10, 0.5, 0.05)
ADA_N, ADA_S, ADA_C = 8, 5, 6
FWD_N, FWD_C = 6, 4                # AdaMML forward-combination batch and classes
ADA_F, ADA_H = 4, 4                # policy feature width, patched LSTM hidden size
ADA_DECAYS = 50


def t64(a, grad: bool = False) -> torch.Tensor:
  return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def npy(t) -> np.ndarray:
  return t.detach().cpu().numpy().astype(np.float64) if torch.is_tensor(t) else np.asarray(
      t, dtype=np.float64)


# --------------------------------------------------------------------------
# patches 1 and 3, imports
# --------------------------------------------------------------------------
def _tqdm_stub() -> types.ModuleType:
  module = types.ModuleType("tqdm")

  class tqdm:  # pylint: disable=invalid-name
    """Iterates its iterable; a no-op progress bar otherwise."""

    def __init__(self, iterable=None, *unused_args, **unused_kwargs):
      self.iterable = iterable

    def __iter__(self):
      return iter(self.iterable)

    def __enter__(self):
      return self

    def __exit__(self, *unused):
      return False

    def update(self, *unused_args):
      pass

  module.tqdm = tqdm
  return module


class _InstanceStubModule(types.ModuleType):
  """A module whose every public attribute is a `Placeholder` instance (so attribute chains such
  as ``tf.compat.v1.disable_eager_execution()`` resolve at import time)."""

  def __getattr__(self, name):
    if name.startswith("__"):
      raise AttributeError(name)
    return original_code.Placeholder()


def install_stubs() -> list[str]:
  stubbed = [f"{name} (placeholder)" for name in
             original_code.stub_packages(_MULTIBENCH, only_missing=False, first=True)]
  stubbed += [f"{name} (placeholder)" for name in original_code.install(_OPTIONAL_TOPLEVEL)]
  if importlib.util.find_spec("tqdm") is None:
    sys.modules["tqdm"] = _tqdm_stub()
    stubbed.append("tqdm (pass-through iterator stub)")
  for name in _INSTANCE_TOPLEVEL:
    if importlib.util.find_spec(name) is None:
      sys.modules[name] = _InstanceStubModule(name)
      stubbed.append(f"{name} (placeholder-instance module)")
  return stubbed


@contextlib.contextmanager
def fixed_exponential(uniforms):
  """Patch 3: each ``Tensor.exponential_()`` call takes the next array U of `uniforms` and fills
  the tensor with ``-log(U)`` (an Exp(1) draw), so gumbel_softmax's noise is -log(-log U)."""
  queue = list(uniforms)
  original = torch.Tensor.exponential_

  def exponential_(self, *unused_args, **unused_kwargs):
    u = np.asarray(queue.pop(0), dtype=np.float64)
    if tuple(u.shape) != tuple(self.shape):
      raise ValueError(f"noise shape {u.shape} != {tuple(self.shape)}")
    with torch.no_grad():
      self.copy_(torch.from_numpy(-np.log(u)))
    return self

  torch.Tensor.exponential_ = exponential_
  try:
    yield
  finally:
    torch.Tensor.exponential_ = original
  if queue:
    raise RuntimeError(f"{len(queue)} noise arrays were not used")


def load_upstream(dynmm: pathlib.Path, adamml: pathlib.Path) -> types.SimpleNamespace:
  up = types.SimpleNamespace()
  modality_dir = dynmm / "ModalityDynMM"
  up.imdb = original_code.load_file("dynmm_imdb_dyn", modality_dir / "multimedia/imdb_dyn.py")
  up.affect = original_code.load_file("dynmm_affect_dyn", modality_dir / "affect/affect_dyn.py")
  fusion_root = str(dynmm / "FusionDynMM")
  sys.path.insert(0, fusion_root)                 # FusionDynMM's own `src` package
  up.globalgate = importlib.import_module("src.models.model_skip_mod_globalgate")
  up.rgbd_fusion = importlib.import_module("src.models.rgb_depth_fusion")
  up.futils = importlib.import_module("src.utils")
  up.train = original_code.load_file("dynmm_train", dynmm / "FusionDynMM/train.py")
  sys.path.remove(fusion_root)
  sys.path.insert(0, str(adamml))                 # AdaMML's `models` and `utils` packages
  up.policy = importlib.import_module("models.policy_net")
  up.adamml = importlib.import_module("models.adamml")
  up.joint = importlib.import_module("models.joint_resnet_mobilenetv2")
  up.autils = importlib.import_module("utils.utils")
  return up


# --------------------------------------------------------------------------
# stub modules (patch 4)
# --------------------------------------------------------------------------
class Returns(nn.Module):
  """A gate that ignores its input and returns the given tensor."""

  def __init__(self, value):
    super().__init__()
    self.value = value

  def forward(self, *unused_args, **unused_kwargs):
    return self.value


class Pick(nn.Module):
  """`inputs -> reshape(inputs[i...], [B, -1])`, following the index path `path`."""

  def __init__(self, *path):
    super().__init__()
    self.path = path

  def forward(self, inputs):
    for i in self.path:
      inputs = inputs[i]
    return inputs.reshape(inputs.shape[0], -1)


class StubEncoder(nn.Module):
  """Stand-in for an ESANet ResNet: identity first conv, stage k = tanh(1x1 conv with W_k)."""

  def __init__(self, weights):
    super().__init__()
    self.weights = weights  # [4, C_out, C_in] tensor

  def forward_first_conv(self, x):
    return x

  def _stage(self, k, x):
    return torch.tanh(torch.einsum("oc,bchw->bohw", self.weights[k], x))

  def forward_layer1(self, x):
    return self._stage(0, x)

  def forward_layer2(self, x):
    return self._stage(1, x)

  def forward_layer3(self, x):
    return self._stage(2, x)

  def forward_layer4(self, x):
    return self._stage(3, x)


class ConcatDecoder(nn.Module):
  """`decoder(enc_outs=[out, skip3, skip2, skip1])` -> the four maps flattened and concatenated."""

  def forward(self, enc_outs):
    return torch.cat([t.flatten(1) for t in enc_outs], dim=1)


class GlobalGateStub(nn.Module):
  """``GlobalGate`` with its conv trunk removed: the original ``DiffSoftmax`` on given logits,
  with the temperature and hard flag that ``SkipGateESANet.forward`` passes."""

  def __init__(self, diff_softmax, logits):
    super().__init__()
    self.diff_softmax = diff_softmax
    self.logits = logits

  def forward(self, rgb, depth, temp=1.0, hard=False):
    del rgb, depth
    y = self.diff_softmax(self.logits[:, :, None, None], tau=temp, hard=hard, dim=1)
    return y.squeeze(-1).squeeze(-1)


class FlattenNet(nn.Module):
  """A unimodal net of the AdaMML main network: `x [N, C, 1, 1] -> x.flatten(1)` (its logits)."""

  def forward(self, x):
    return x.flatten(1)


class JointFeatures(nn.Module):
  """The policy's joint MobileNet: `features(per-modality inputs) -> inputs[0]` (given features)."""

  def __init__(self, feature_dim):
    super().__init__()
    self.last_channels = feature_dim

  def features(self, multi_modalities):
    return multi_modalities[0]


class PolicyStub(nn.Module):
  """A policy net that returns given decisions [S, M, N]."""

  def __init__(self, modality, decisions):
    super().__init__()
    self.modality = modality
    self.decisions = decisions

  def forward(self, p_x):
    del p_x
    return self.decisions, None


# --------------------------------------------------------------------------
# DynMM
# --------------------------------------------------------------------------
def logits_with_ties(rng, b, e, scale=2.0):
  """[b, e] N(0, scale^2) logits; row 0 has an exact two-way tie for the maximum (torch's argmax
  takes the first index), and rows 1.. cycle the argmax through every branch."""
  z = rng.normal(0.0, scale, (b, e))
  for i in range(1, b):
    z[i, (i - 1) % e] = z[i].max() + rng.uniform(0.2, 1.0)
  z[0, 1] = z[0, 0] = z[0].max() + 0.5
  return z


def diff_softmax_vectors(rng, up, out):
  out["dynmm_ds_taus"] = np.array(DS_TAUS)
  copies = (up.imdb.DiffSoftmax, up.affect.DiffSoftmax, up.globalgate.DiffSoftmax)
  for e in (2, 3, 5):
    pre = f"dynmm_ds_E{e}"
    z = logits_with_ties(rng, DS_B, e)
    cot = rng.normal(0.0, 1.0, (DS_B, e))
    out[f"{pre}_logits"], out[f"{pre}_cot"] = z, cot
    kinds = {}
    for kind, hard in (("soft", False), ("hard", True)):
      values, grads = [], []
      for tau in DS_TAUS:
        per_copy = []
        for fn in copies:
          x = t64(z, grad=True)
          y = fn(x, tau=tau, hard=hard)
          (g,) = torch.autograd.grad((y * t64(cot)).sum(), x)
          per_copy.append((npy(y), npy(g)))
        for y, g in per_copy[1:]:
          np.testing.assert_array_equal(y, per_copy[0][0])
          np.testing.assert_array_equal(g, per_copy[0][1])
        values.append(per_copy[0][0])
        grads.append(per_copy[0][1])
      kinds[kind] = (np.stack(values), np.stack(grads))
    # straight-through: the hard gradient is the soft one
    np.testing.assert_array_equal(kinds["hard"][1], kinds["soft"][1])
    assert (kinds["hard"][0].argmax(-1)[:, 0] == 0).all()  # tie row: first index
    out[f"{pre}_out"] = np.stack([kinds["soft"][0], kinds["hard"][0]])
    out[f"{pre}_grad"] = kinds["soft"][1]


def modality_level_vectors(rng, up, out):
  out["dynmm_mod_lambda"] = np.float64(MOD_LAMBDA)
  for e in (2, 3):
    pre = f"dynmm_mod_E{e}"
    z = logits_with_ties(rng, MOD_B, e)
    preds = rng.normal(0.0, 1.0, (e, MOD_B, MOD_C))
    cot = rng.normal(0.0, 1.0, (MOD_B, MOD_C))
    out[f"{pre}_gate_logits"], out[f"{pre}_preds"], out[f"{pre}_cot"] = z, preds, cot
    stacked = {key: [] for key in ("weight", "output", "loss2", "grad_logits", "grad_preds")}
    for hard in (False, True):
      results = []
      variants = ("imdb", "affect_v2") if e == 2 else ("affect_forward2",)
      for variant in variants:
        zt = t64(z, grad=True)
        pt = [t64(p, grad=True) for p in preds]
        if variant == "imdb":
          net = up.imdb.DynMMNet.__new__(up.imdb.DynMMNet)
          nn.Module.__init__(net)
          net.branch_num = 2
          net.text_encoder, net.text_head, net.branch3 = nn.Identity(), nn.Identity(), Pick(1)
          inputs = pt                                     # forward(inputs): gate(cat(inputs))
        elif variant == "affect_v2":
          net = up.affect.DynMMNetV2.__new__(up.affect.DynMMNetV2)
          nn.Module.__init__(net)
          net.branch_num = 2
          net.text_encoder, net.text_head, net.branch2 = Pick(0), nn.Identity(), Pick(0, 0)
          # packed inputs [[visual, audio, text], [lengths...]]; text (index 2) feeds branch 1,
          # branch 2 (late fusion) reads visual here.
          seq = [pt[1][:, None, :], torch.zeros(MOD_B, 1, MOD_C), pt[0][:, None, :]]
          inputs = [seq, [torch.ones(MOD_B)] * 3]
        else:
          net = up.affect.DynMMNet.__new__(up.affect.DynMMNet)
          nn.Module.__init__(net)
          net.branch_num = 3
          net.encoders = nn.ModuleList([Pick(0) for _ in range(3)])
          net.heads = nn.ModuleList([nn.Identity() for _ in range(3)])
          inputs = [[p[:, None, :] for p in pt], [torch.ones(MOD_B)] * 3]
        net.gate = Returns(zt)
        net.temp, net.hard_gate, net.store_weight, net.infer_mode = 1.0, hard, False, 0
        output, loss2 = net.forward2(inputs) if variant == "affect_forward2" else net(inputs)
        objective = (output * t64(cot)).sum() + MOD_LAMBDA * loss2
        grads = torch.autograd.grad(objective, [zt] + pt)
        weight = up.imdb.DiffSoftmax(t64(z), tau=1.0, hard=hard)
        results.append((npy(output), npy(loss2), npy(grads[0]),
                        np.stack([npy(g) for g in grads[1:]]), npy(weight)))
      for r in results[1:]:
        for a, b in zip(r, results[0]):
          np.testing.assert_array_equal(a, b)
      output, loss2, g_logits, g_preds, weight = results[0]
      for key, value in (("weight", weight), ("output", output), ("loss2", loss2),
                         ("grad_logits", g_logits), ("grad_preds", g_preds)):
        stacked[key].append(value)
    for key, values in stacked.items():              # leading axis: (soft, hard)
      out[f"{pre}_{key}"] = np.stack(values)


def build_globalgate_shell(up, encoder: str):
  """A real ``SkipGateESANet`` (its ``__init__`` sets the FLOP tables), then stubbed (patch 4)."""
  block = "NonBottleneck1D" if encoder == "resnet34" else "BasicBlock"
  with contextlib.redirect_stdout(io.StringIO()):
    net = up.globalgate.SkipGateESANet(encoder_rgb=encoder, encoder_depth=encoder,
                                       encoder_block=block, fuse_depth_in_rgb_encoder="add",
                                       pretrained_on_imagenet=False)
  for name in list(net._modules):  # pylint: disable=protected-access
    delattr(net, name)
  net.fuse_depth_in_rgb_encoder = "add"
  net.skip_layer1, net.skip_layer2, net.skip_layer3 = nn.Identity(), nn.Identity(), nn.Identity()
  net.context_module = nn.Identity()
  net.decoder = ConcatDecoder()
  return net


def set_fusion_inputs(net, up, w_rgb, w_depth, logits):
  net.encoder_rgb = StubEncoder(w_rgb)
  net.encoder_depth = StubEncoder(w_depth)
  net.gate_layer = GlobalGateStub(up.globalgate.DiffSoftmax, logits)


def fusion_level_vectors(rng, up, out):
  nets = {name: build_globalgate_shell(up, enc)
          for name, enc in (("r34", "resnet34"), ("r50", "resnet50"))}
  for name, net in nets.items():
    out[f"dynmm_fus_depth_enc_flop_{name}"] = npy(net.depth_enc_flop)
    out[f"dynmm_fus_total_flop_{name}"] = npy(net.total_flop)
  out["dynmm_fus_flop_r34"] = npy(nets["r34"].flop)
  b, c, hw = FUS_B, FUS_C, FUS_HW
  rgb = rng.normal(0.0, 1.0, (b, c, hw, hw))
  depth = rng.normal(0.0, 1.0, (b, c, hw, hw))
  w_rgb = rng.normal(0.0, 1.0, (4, c, c)) / np.sqrt(c) * 1.5
  w_depth = rng.normal(0.0, 1.0, (4, c, c)) / np.sqrt(c) * 1.5
  logits = logits_with_ties(rng, b, 5)
  cot = rng.normal(0.0, 1.0, (b, 4 * c * ((hw + 1) // 2) ** 2))
  for key, value in (("rgb", rgb), ("depth", depth), ("W_rgb", w_rgb), ("W_depth", w_depth),
                     ("gate_logits", logits), ("cot", cot)):
    out[f"dynmm_fus_{key}"] = value

  # (i) forward: decoder inputs and FLOP loss, soft (tau in {1, 0.2}) and hard
  modes = (("soft_t1", 1.0, False), ("soft_t0p2", 0.2, False), ("hard", 0.01, True))
  out["dynmm_fus_mode_tau"] = np.array([m[1] for m in modes])
  out["dynmm_fus_mode_hard"] = np.array([m[2] for m in modes], dtype=np.float64)
  stacked = {key: [] for key in ("weight", "out", "grad_out_logits", "loss_flop",
                                 "grad_flop_logits")}
  for tag, tau, hard in modes:
    per_net = {}
    for name, net in nets.items():
      zt = t64(logits, grad=True)
      set_fusion_inputs(net, up, t64(w_rgb), t64(w_depth), zt)
      net.temp, net.hard_gate, net.baseline, net.ini_stage = tau, hard, False, False
      net.save_weight_info = False
      net.train()
      y, loss_flop = net(t64(rgb), t64(depth))
      g_y, = torch.autograd.grad((y * t64(cot)).sum(), zt)
      zt2 = t64(logits, grad=True)
      net.gate_layer.logits = zt2
      _, loss_flop2 = net(t64(rgb), t64(depth))
      g_flop, = torch.autograd.grad(loss_flop2, zt2)
      with torch.no_grad():
        y_test, weight = net(t64(rgb), t64(depth), test=True, return_weight=True)
      np.testing.assert_array_equal(npy(y_test), npy(y))
      per_net[name] = (npy(y), npy(loss_flop), npy(g_y), npy(g_flop), npy(weight))
    np.testing.assert_array_equal(per_net["r34"][0], per_net["r50"][0])
    np.testing.assert_array_equal(per_net["r34"][2], per_net["r50"][2])
    np.testing.assert_array_equal(per_net["r34"][4], per_net["r50"][4])
    stacked["weight"].append(per_net["r34"][4])
    stacked["out"].append(per_net["r34"][0])
    stacked["grad_out_logits"].append(per_net["r34"][2])
    stacked["loss_flop"].append([per_net[name][1] for name in nets])
    stacked["grad_flop_logits"].append(np.stack([per_net[name][3] for name in nets]))
  for key, values in stacked.items():               # leading axis: mode
    out[f"dynmm_fus_{key}"] = np.stack(values)

  # (ii) one original training step: total = seg + ratio * max(0, loss_flop - budget)
  class Scheduler:
    def step(self, *unused):
      pass

    def get_lr(self):
      return [0.0]

  class Optimizer:
    def zero_grad(self):
      pass

    def step(self):
      pass

  def seg_loss(pred_scales, target_scales):
    del target_scales
    return [(pred_scales * t64(cot)).sum()]

  soft_flop_r50 = float(out["dynmm_fus_loss_flop"][0, 1])
  # (net, mode, ratio, budget)
  cases = (("r34", "soft_t1", 0.5, 0.0),
           ("r50", "soft_t1", 0.5, 0.8 * soft_flop_r50),
           ("r50", "soft_t1", 0.5, 1.2 * soft_flop_r50),
           ("r34", "hard", 1e-4, 0.0),
           ("r34", "soft_t0p2", 0.0, 0.0))
  totals, flops, grads, params = [], [], [], []
  for name, tag, ratio, budget in cases:
    tau, hard = {m[0]: m[1:] for m in modes}[tag]
    net = nets[name]
    zt = t64(logits, grad=True)
    set_fusion_inputs(net, up, t64(w_rgb), t64(w_depth), zt)
    net.temp, net.hard_gate = tau, hard
    sample = {"image": t64(rgb), "depth": t64(depth), "label": torch.zeros(1), "label_down": {}}
    with contextlib.redirect_stdout(io.StringIO()):
      logs = up.train.train_one_epoch(
          net, [sample], torch.device("cpu"), Optimizer(), seg_loss, 0, Scheduler(), "rgbd", [],
          loss_flop_ratio=ratio, flop_budget=budget, debug_mode=False)
    totals.append(logs["loss_train_total"])
    flops.append(logs["loss_flop"])
    grads.append(npy(zt.grad))
    params.append((0.0 if name == "r34" else 1.0, {"soft_t1": 0.0, "soft_t0p2": 1.0,
                                                   "hard": 2.0}[tag], ratio, budget))
  out["dynmm_fus_step_cases"] = np.array(params)
  out["dynmm_fus_step_total"] = np.array(totals, dtype=np.float64)
  out["dynmm_fus_step_loss_flop"] = np.array(flops, dtype=np.float64)
  out["dynmm_fus_step_grad_logits"] = np.stack(grads)


def temperature_vectors(up, out):
  out["dynmm_temp_epochs"] = np.array(TEMP_EPOCHS, dtype=np.int64)
  out["dynmm_temp_configs"] = np.array(TEMP_CONFIGS, dtype=np.float64)
  exp_t, lin_t = [], []
  for start, end, length in TEMP_CONFIGS:
    sched = up.futils.ExpDecayTemp(start_t=start, end_t=end, time_len=length)
    exp_t.append([sched.get_t(e) for e in TEMP_EPOCHS])
    lin_t.append([up.futils.get_temp(0, e, length, start, end) for e in TEMP_EPOCHS])
  out["dynmm_temp_exp"] = np.array(exp_t, dtype=np.float64)
  out["dynmm_temp_linear"] = np.array(lin_t, dtype=np.float64)


def per_layer_gate_vectors(rng, up, out):
  b = LAYER_B
  s = rng.normal(0.0, 1.5, b)
  prev = rng.uniform(0.0, 1.0, b)
  prev[:2] = (0.0, 1.0)
  cot = rng.normal(0.0, 1.0, (b, 2))
  out["dynmm_layer_s"], out["dynmm_layer_prev"], out["dynmm_layer_cot"] = s, prev, cot
  cases = [(temp, hard, test, has_prev) for temp in (1.0, 0.5) for hard, test in
           ((False, False), (True, False), (False, True)) for has_prev in (False, True)]
  outs, grads_s, grads_p, noise = [], [], [], []
  for temp, hard, test, has_prev in cases:
    gate = up.rgbd_fusion.SqueezeAndExciteReweigh.__new__(up.rgbd_fusion.SqueezeAndExciteReweigh)
    nn.Module.__init__(gate)
    st, pt = t64(s, grad=True), t64(prev, grad=True)
    gate.temp, gate.se, gate.act = temp, Returns(st), nn.Sigmoid()
    u = rng.uniform(0.0, 1.0, (b, 2))
    noise.append(u)
    with fixed_exponential([u]):
      dummy = torch.zeros(b, 1, 1, 1)             # rgb, depth: only read by the stubbed `se`
      w = gate(dummy, dummy, hard=hard, prev_weight=pt if has_prev else None, random=False,
               test=test)
    g_s, g_p = torch.autograd.grad((w.view(b, 2) * t64(cot)).sum(), [st, pt], allow_unused=True)
    outs.append(npy(w.view(b, 2)))
    grads_s.append(npy(g_s))
    grads_p.append(npy(g_p) if g_p is not None else np.zeros(b))
  out["dynmm_layer_cases"] = np.array(cases, dtype=np.float64)
  out["dynmm_layer_u"] = np.stack(noise)
  out["dynmm_layer_out"] = np.stack(outs)
  out["dynmm_layer_grad_s"] = np.stack(grads_s)
  out["dynmm_layer_grad_prev"] = np.stack(grads_p)


# --------------------------------------------------------------------------
# AdaMML
# --------------------------------------------------------------------------
def make_policy(up, modality, causality):
  """The real ``PolicyNet.__init__`` on a stub joint net; LSTM hidden size ADA_H (patch 4)."""
  policy = up.policy.PolicyNet(JointFeatures(ADA_F), modality, causality_modeling=causality)
  m = len(modality)
  if causality is not None:
    policy.lstm = nn.LSTMCell(ADA_F + 2 * m, ADA_H)
    policy.fcs = nn.ModuleList([nn.Linear(ADA_H, 2) for _ in range(m)])
  return policy


def set_params(rng, module):
  """Overwrites every parameter with N(0,1)/sqrt(fan_in) (biases 0.3 N(0,1)); returns them."""
  values = {}
  with torch.no_grad():
    for name, parameter in module.named_parameters():
      if name.rsplit(".", 1)[-1].startswith("bias"):
        value = 0.3 * rng.normal(0.0, 1.0, parameter.shape)
      else:
        value = rng.normal(0.0, 1.0, parameter.shape) / np.sqrt(parameter.shape[-1]) * 1.5
      parameter.copy_(t64(value))
      values[name] = value
  return values


def gumbel_vectors(rng, up, out):
  policy = make_policy(up, ["rgb", "sound"], None)
  assert policy.temperature == 5.0
  r = 2 * ADA_N
  z = rng.normal(0.0, 1.5, (r, 2))
  cot = rng.normal(0.0, 1.0, r)
  u = rng.uniform(0.0, 1.0, (len(ADA_TEMPS), r, 2))
  decisions, grads = [], []
  for k, tau in enumerate(ADA_TEMPS):
    policy.set_temperature(tau)
    zt = t64(z, grad=True)
    with fixed_exponential([u[k]]):
      d = policy.wrapper_gumbel_softmax(zt)
    (g,) = torch.autograd.grad((d * t64(cot)).sum(), zt)
    decisions.append(npy(d))
    grads.append(npy(g))
  out["adamml_gumbel_taus"] = np.array(ADA_TEMPS)
  out["adamml_gumbel_logits"], out["adamml_gumbel_cot"], out["adamml_gumbel_u"] = z, cot, u
  out["adamml_gumbel_decisions"] = np.stack(decisions)
  out["adamml_gumbel_grad_logits"] = np.stack(grads)


def policy_forward_vectors(rng, up, out):
  modality = ["rgb", "sound"]
  m, s, n = len(modality), ADA_S, ADA_N
  feats = rng.normal(0.0, 1.0, (s, n, ADA_F))
  out["adamml_policy_features"] = feats
  for causality in (None, "lstm"):
    tag = "lstm" if causality else "none"
    policy = make_policy(up, modality, causality)
    policy.set_temperature(ADA_TEMPS[1])
    params = set_params(rng, nn.ModuleDict({"fcs": policy.fcs} | (
        {"lstm": policy.lstm} if causality else {})))
    calls = 1 if causality is None else s
    rows = m * s * n if causality is None else m * n
    u = rng.uniform(0.0, 1.0, (calls, rows, 2))
    cot = rng.normal(0.0, 1.0, (s, m, n))
    ft = t64(feats, grad=True)
    x = [ft, torch.zeros(s, n, 1)]            # x[m][segment] -> joint_net.features -> x[0][i]
    with fixed_exponential(list(u)):
      decisions, all_logits = policy(x)
    (g,) = torch.autograd.grad((decisions * t64(cot)).sum(), ft)
    pre = f"adamml_policy_{tag}"
    for name, value in params.items():
      out[f"{pre}_param_{name.replace('.', '_')}"] = value
    out[f"{pre}_u"], out[f"{pre}_cot"] = u, cot
    out[f"{pre}_decisions"] = npy(decisions)
    out[f"{pre}_logits"] = npy(all_logits)
    out[f"{pre}_grad_features"] = npy(g)
  out["adamml_policy_tau"] = np.float64(ADA_TEMPS[1])


def policy_loss_vectors(rng, up, out):
  k = 6
  for m, weights in ((2, (1.0, 0.05)), (3, (0.5, 0.05, 0.8))):
    pre = f"adamml_ploss_M{m}"
    sel = (rng.uniform(0.0, 1.0, (ADA_N, ADA_S, m)) < 0.6).astype(np.float64)
    sel[0] = 0.0                                  # a video that uses no modality at all
    sel[1, 2] = 0.0                               # one segment with no modality
    soft = rng.uniform(0.0, 1.0, (ADA_N, ADA_S, m))
    logits = rng.normal(0.0, 1.0, (ADA_N, k))
    targets = rng.integers(0, k, ADA_N)
    correct = rng.uniform(size=ADA_N) < 0.5
    logits[correct, targets[correct]] = logits[correct].max(-1) + 1.0
    out[f"{pre}_selection"], out[f"{pre}_selection_soft"] = sel, soft
    out[f"{pre}_cls_logits"], out[f"{pre}_targets"] = logits, targets.astype(np.int64)
    out[f"{pre}_cost_weights"] = np.array(weights)
    out["adamml_ploss_gamma"] = np.float64(10.0)
    losses, grads = [], []
    for penalty in ("blockdrop", "mean"):
      for tag, selection in (("hard", sel), ("soft", soft)):
        st = t64(selection, grad=True)
        # as train_adamml does: torch.tensor(cost_weights), torch.tensor(gammas)
        loss = up.autils.compute_policy_loss(penalty, st, torch.tensor(list(weights)),
                                             torch.tensor(10.0), t64(logits),
                                             torch.from_numpy(targets))
        (g,) = torch.autograd.grad(loss, st)
        losses.append(npy(loss))
        grads.append(npy(g))
    # [penalty (blockdrop, mean), selection (hard, soft)]
    out[f"{pre}_loss"] = np.stack(losses).reshape(2, 2)
    out[f"{pre}_grad"] = np.stack(grads).reshape((2, 2) + sel.shape)


def temperature_decay_vectors(up, out):
  policy = make_policy(up, ["rgb", "sound"], "lstm")
  main = nn.Module()
  main.modality = ["rgb", "sound"]
  model = up.adamml.AdaMML(policy, main, num_frames=8, num_segments=ADA_S,
                           modality=["rgb", "sound"], rng_policy=False, rng_threshold=0.5,
                           num_classes=ADA_C)
  temps = [policy.temperature]
  with contextlib.redirect_stdout(io.StringIO()):
    for _ in range(ADA_DECAYS):
      model.decay_temperature()
      temps.append(policy.temperature)
  out["adamml_temperature"] = np.array(temps, dtype=np.float64)
  out["adamml_decay_ratio"] = np.float64(model.decay_ratio)


def forward_combination_vectors(rng, up, out):
  s, n, c = ADA_S, FWD_N, FWD_C
  for m, lf in ((2, (0.6,)), (3, (0.3, 0.5))):
    pre = f"adamml_fwd_M{m}"
    modality = ["rgb", "sound", "flow"][:m]
    logits = rng.normal(0.0, 2.0, (m, s, n, c))
    dec = (rng.uniform(0.0, 1.0, (s, m, n)) < 0.6).astype(np.float64)
    dec[:, :, 0] = 0.0                            # sample 0: no modality in any segment
    dec[1, :, 1] = 0.0                            # sample 1: no modality in segment 1
    dec[:, :, 2] = 1.0                            # sample 2: every modality everywhere
    cot = rng.normal(0.0, 1.0, (n, c))
    out[f"{pre}_logits"], out[f"{pre}_decisions"], out[f"{pre}_cot"] = logits, dec, cot
    out[f"{pre}_lf_weights"] = np.array(lf)
    stacked = {key: [] for key in ("final", "grad_logits", "grad_decisions")}
    for use_lf in (False, True):
      main = up.joint.JointResNetMobileNetV2.__new__(up.joint.JointResNetMobileNetV2)
      nn.Module.__init__(main)
      main.fusion_point, main.modality = "logits", modality
      main.nets = nn.ModuleList([FlattenNet() for _ in range(m)])
      main.learnable_lf_weights = use_lf
      main.lf_weights = nn.Parameter(t64(lf)) if use_lf else None
      dt = t64(dec, grad=True)
      model = up.adamml.AdaMML(PolicyStub(modality, dt), main, num_frames=8, num_segments=s,
                               modality=modality, rng_policy=False, rng_threshold=0.5,
                               num_classes=c)
      lt = t64(logits, grad=True)
      m_x = [lt[i][..., None, None] for i in range(m)]  # [S, N, C, 1, 1] per modality
      model.data_layer = lambda x, num_segments, _m_x=m_x: (None, _m_x, num_segments)
      final, decisions = model([torch.zeros(n, 1, 1, 1)] * m)
      wrt = [lt, dt] + ([main.lf_weights] if use_lf else [])
      grads = torch.autograd.grad((final * t64(cot)).sum(), wrt)
      np.testing.assert_array_equal(npy(decisions), dec.transpose(2, 0, 1))
      if use_lf:
        out[f"{pre}_grad_lf_weights"] = npy(grads[2])
      stacked["final"].append(npy(final))
      stacked["grad_logits"].append(npy(grads[0]))
      stacked["grad_decisions"].append(npy(grads[1]))
    for key, values in stacked.items():              # leading axis: (mean, lf)
      out[f"{pre}_{key}"] = np.stack(values)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def main(argv=None) -> None:
  parser = original_code.argument_parser(__doc__, {
      "dynmm": "checkout of the DynMM repository root",
      "adamml": "checkout of the AdaMML repository root"},
      out_default=pathlib.Path(__file__).resolve().parent / "data" / "dynamic_vectors.npz")
  args = parser.parse_args(argv)
  torch.set_num_threads(1)
  torch.set_default_dtype(torch.float64)
  torch.manual_seed(0)
  stubbed = install_stubs()                       # patch 1
  original_code.cuda_to_cpu()                     # patch 2
  up = load_upstream(args.dynmm_dir.resolve(), args.adamml_dir.resolve())
  rng = np.random.default_rng(SEED)
  out: dict[str, np.ndarray] = {}

  diff_softmax_vectors(rng, up, out)
  modality_level_vectors(rng, up, out)
  fusion_level_vectors(rng, up, out)
  temperature_vectors(up, out)
  per_layer_gate_vectors(rng, up, out)
  gumbel_vectors(rng, up, out)
  policy_forward_vectors(rng, up, out)
  policy_loss_vectors(rng, up, out)
  temperature_decay_vectors(up, out)
  forward_combination_vectors(rng, up, out)

  files, digests, commits = [], [], []
  for key, root in (("dynmm", args.dynmm_dir), ("adamml", args.adamml_dir)):
    repo, commit, pinned = UPSTREAM[key]
    for name, digest in original_code.check_sha256(root, pinned).items():
      files.append(f"{repo}:{name}")
      digests.append(digest)
    commits.append(f"{repo}@{commit}")
  out["meta_files"] = np.array(files)
  out["meta_sha256"] = np.array(digests)
  out["meta_commits"] = np.array(commits)
  out["meta_stubbed"] = np.array(stubbed)
  original_code.save_vectors(args.out, out)


if __name__ == "__main__":
  main()
