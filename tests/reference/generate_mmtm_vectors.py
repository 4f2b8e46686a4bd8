"""Generate reference test vectors from the original PyTorch MMTM implementations.

MMTM = Vaezi Joze, Shaban, Iuzzolino, Koishida, "MMTM: Multimodal Transfer Module for CNN
Fusion", CVPR 2020.  Two original codebases are run, both unmodified:

* the authors' code, https://github.com/haamoon/mmtm: ``mmtm.py::MMTM`` (the module that
  ``MMTNet`` inserts between an inflated-ResNet RGB stream, channels-first ``[B, C, T, H, W]``,
  and an HCN skeleton stream, ``[B, C, T, J]`` or flat ``[B, C]``);
* the greedy learner's copy, https://github.com/nyukat/greedy_multimodal_learning:
  ``src/balanced_mmtm.py::MMTM_mitigate`` in its default mode (no curation, cross-modal flow
  on), as ``MMTM_MVCNN`` uses it between two ResNet-18 streams ``[B, C, H, W]``.

Both gate with ``sigmoid``; neither codebase contains a ``2 * sigmoid`` gate.  The pre-sigmoid
excitations are stored too, so that any other gate form can be checked against the same
original joint layer.  Everything runs in float64 on CPU on inputs and weights drawn from a
seeded numpy generator; the upstream code is imported from ``--mmtm-dir`` and
``--greedy-dir`` (repository roots) and is never copied here.

Stubs and patches (all documented in PROVENANCE_mmtm.md):

1. ``mmtm.py`` imports ``transform_input`` from ``models.auxiliary.resnet.resnet`` (the MFAS
   submodule, unused by ``MMTM``): every ``models.*`` module is served as an empty placeholder
   (``original_code.stub_packages``, ahead of any other finder).
2. ``src/balanced_mmtm.py`` and the ``src`` package it imports need ``gin``, ``argh``,
   ``torchvision`` and ``matplotlib``: each that is not installed is a placeholder
   (``original_code.install``), ``gin`` a stub whose ``configurable`` is the identity
   decorator.
3. ``MMTM_mitigate.__init__`` calls ``.to("cuda:0")`` on its running averages: while it runs,
   ``torch.Tensor.to`` returns the tensor itself for ``"cuda..."`` device strings.
4. ``mmtm.py``'s ``init_weights`` prints every Linear and its weight: that stdout is discarded
   (``contextlib.redirect_stdout``).  Every parameter is overwritten from the RNG afterwards.
5. Intermediate values (the squeeze, the joint ReLU output, the sigmoid's input and output) are
   read with forward hooks on the originals' own submodules; the hooks return nothing, so no
   value changes.

Usage (``original_code.py``, the helpers shared with the other generators and the benchmark
runners, is imported from this script's folder)::

    python generate_mmtm_vectors.py --mmtm-dir mmtm --greedy-dir greedy_multimodal_learning \
        --out data/mmtm_vectors.npz
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

SEED = 20200607

# Upstream files whose code is executed, with their sha256 at the commits used.  A mismatch
# only warns.
UPSTREAM = {
    "mmtm": ("haamoon/mmtm", "1c81cfefad5532cfb39193b8af3840ac3346e897", {
        "mmtm.py": "ead3eedc2567fffc7a9f17a82e8c6647514143b950e8e4baf115f00e582b98a5",
    }),
    "greedy": ("nyukat/greedy_multimodal_learning", "a190e03755bd8d0883b2c5c0cd7921d2561ce2ee", {
        "src/balanced_mmtm.py": "4960fa99c9acb4d3699c2dcbd371ccb26cb241b094b009b32f121a6dc06099be",
        "src/__init__.py": "535a1c5d3a8fa8dc8693595ced396d5b305e44ea684bb775a719864d4dd86b8b",
        "src/utils.py": "13c03fa0d060e5e10f490bc5ed9151db6c9fc07b8302d8af1a1090c9c3b7fb24",
    }),
}

# (prefix, checkout, visual shape, skeleton shape, ratio); shapes are channels-first, as the
# originals take them.  int(2 * (6 + 5) / 4) = 5 and int(2 * (6 + 5) / 3) = 7 both truncate;
# int(2 * (4 + 3) / 4) = 3 truncates too.
CASES = (
    ("haamoon_5d4d", "mmtm", (3, 6, 4, 3, 2), (3, 5, 4, 3), 4),
    ("haamoon_5d2d", "mmtm", (3, 6, 4, 3, 2), (3, 5), 3),
    ("greedy_4d4d", "greedy", (3, 4, 3, 2), (3, 3, 2, 2), 4),
)

# Packages the greedy learner's `src` imports at module level but that the MMTM never uses.
_OPTIONAL_TOPLEVEL = ("torchvision", "matplotlib", "argh")

# Gain on the excitation layers' weights, so that the gates spread over (0, 1).
EXCITE_GAIN = 2.0


def t64(a, grad: bool = False) -> torch.Tensor:
  return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def npy(t: torch.Tensor) -> np.ndarray:
  return t.detach().cpu().numpy().astype(np.float64)


# --------------------------------------------------------------------------
# patches 1-3 and the two imports
# --------------------------------------------------------------------------
def _gin_stub() -> tuple[types.ModuleType, types.ModuleType]:
  gin = types.ModuleType("gin")

  def configurable(*args, **kwargs):
    if len(args) == 1 and callable(args[0]) and not kwargs:
      return args[0]
    return lambda function: function

  gin.configurable = configurable
  config = types.ModuleType("gin.config")
  config._CONFIG = {}             # pylint: disable=protected-access
  config._OPERATIVE_CONFIG = {}   # pylint: disable=protected-access
  gin.config = config
  return gin, config


def install_stubs() -> list[str]:
  """Patches 1 and 2; returns what was stubbed (stored as ``meta_stubbed``)."""
  stubbed = [f"{name} (placeholder)" for name in
             original_code.stub_packages(("models",), only_missing=False, first=True)]
  stubbed += [f"{name} (placeholder)" for name in original_code.install(_OPTIONAL_TOPLEVEL)]
  if importlib.util.find_spec("gin") is None:
    gin, config = _gin_stub()
    sys.modules["gin"] = gin
    sys.modules["gin.config"] = config
    stubbed.append("gin (identity-configurable stub)")
  return stubbed


@contextlib.contextmanager
def _cuda_strings_stay_on_cpu():
  """Patch 3: ``Tensor.to("cuda:N")`` returns the tensor itself while active."""
  original = torch.Tensor.to

  def to(self, *args, **kwargs):
    if args and isinstance(args[0], str) and args[0].startswith("cuda"):
      return self
    return original(self, *args, **kwargs)

  torch.Tensor.to = to
  try:
    yield
  finally:
    torch.Tensor.to = original


def load_upstream(mmtm_dir: pathlib.Path, greedy_dir: pathlib.Path) -> dict:
  """The two original classes: ``{"mmtm": MMTM, "greedy": MMTM_mitigate}``."""
  haamoon = original_code.load_file("haamoon_mmtm", mmtm_dir / "mmtm.py")
  if str(greedy_dir) not in sys.path:
    sys.path.insert(0, str(greedy_dir))   # for the checkout's `src` package
  greedy = importlib.import_module("src.balanced_mmtm")
  return {"mmtm": haamoon.MMTM, "greedy": greedy.MMTM_mitigate}


def build(cls, dim_visual: int, dim_skeleton: int, ratio: int) -> nn.Module:
  """An original module, built with its own ``__init__`` (patches 3 and 4)."""
  with contextlib.redirect_stdout(io.StringIO()), _cuda_strings_stay_on_cpu():
    return cls(dim_visual, dim_skeleton, ratio)


# --------------------------------------------------------------------------
# weights, inputs, hooks
# --------------------------------------------------------------------------
def set_parameters(rng, module: nn.Module, squeeze: np.ndarray) -> dict:
  """Overwrites every parameter from `rng` (in `named_parameters` order); returns them.

  `*.weight`: N(0,1) / sqrt(fan_in), times `EXCITE_GAIN` for the excitation layers
  (`fc_visual`, `fc_skeleton`); `fc_visual.bias`, `fc_skeleton.bias`: 0.3 N(0,1).
  `fc_squeeze.bias` is placed from the batch so that every joint unit is active for some
  samples and zeroed by the ReLU for others: for unit j with pre-activations
  `a_bj = (W s_b)_j` over the batch, `bias_j = -(max_b a_bj + min_b a_bj) / 2 + u_j (max_b a_bj
  - min_b a_bj) / 2` with `u_j ~ U(-0.5, 0.5)`, so the sample with the largest `a_bj` is active
  and the one with the smallest is not.

  Args:
    rng: the generator.
    module: an original MMTM.
    squeeze: `[B, C_visual + C_skeleton]`, the channel means of the batch (numpy).
  """
  values = {}
  with torch.no_grad():
    for name, parameter in module.named_parameters():
      if name == "fc_squeeze.bias":
        pre_activation = squeeze @ values["fc_squeeze.weight"].T      # [B, dim_out]
        high, low = pre_activation.max(0), pre_activation.min(0)
        value = -(high + low) / 2 + rng.uniform(-0.5, 0.5, parameter.shape) * (high - low) / 2
      elif name.endswith("bias"):
        value = 0.3 * rng.normal(0.0, 1.0, parameter.shape)
      else:
        gain = 1.0 if name.startswith("fc_squeeze") else EXCITE_GAIN
        value = gain * rng.normal(0.0, 1.0, parameter.shape) / np.sqrt(parameter.shape[1])
      parameter.copy_(t64(value))
      values[name] = value
  return values


def draw_map(rng, shape) -> np.ndarray:
  """A channels-first map: a per-(sample, channel) offset N(0,1) plus N(0,1) noise, so that
  the channel means (the squeeze) spread as much as the entries."""
  offset = rng.normal(0.0, 1.0, shape[:2] + (1,) * (len(shape) - 2))
  return offset + rng.normal(0.0, 1.0, shape)


def attach_hooks(module: nn.Module, captured: dict) -> list:
  """Patch 5: records the squeeze (input of ``fc_squeeze``), the joint ReLU output and every
  sigmoid call's input and output (visual first, then skeleton, in both originals)."""
  captured.update(squeeze=[], hidden=[], logits=[], gates=[])

  def squeeze_hook(unused_module, inputs):
    captured["squeeze"].append(inputs[0])

  def relu_hook(unused_module, unused_inputs, output):
    captured["hidden"].append(output)

  def sigmoid_hook(unused_module, inputs, output):
    captured["logits"].append(inputs[0])
    captured["gates"].append(output)

  # A hook that returned a value would replace the input or output: these return None.
  return [module.fc_squeeze.register_forward_pre_hook(squeeze_hook),
          module.relu.register_forward_hook(relu_hook),
          module.sigmoid.register_forward_hook(sigmoid_hook)]


# --------------------------------------------------------------------------
# one case
# --------------------------------------------------------------------------
def run_case(rng, pre: str, kind: str, cls, visual_shape, skeleton_shape, ratio, out) -> None:
  dim_visual, dim_skeleton = visual_shape[1], skeleton_shape[1]
  module = build(cls, dim_visual, dim_skeleton, ratio)
  dim_out = module.fc_squeeze.out_features
  assert dim_out == int(2 * (dim_visual + dim_skeleton) / ratio)
  visual_np, skeleton_np = draw_map(rng, visual_shape), draw_map(rng, skeleton_shape)
  channel_means = np.concatenate([x.reshape(x.shape[:2] + (-1,)).mean(-1)
                                  for x in (visual_np, skeleton_np)], 1)
  for name, value in set_parameters(rng, module, channel_means).items():
    out[f"{pre}__{name}"] = value
  cot_visual = rng.normal(0.0, 1.0, visual_shape)
  cot_skeleton = rng.normal(0.0, 1.0, skeleton_shape)

  captured = {}
  hooks = attach_hooks(module, captured)
  visual, skeleton = t64(visual_np, grad=True), t64(skeleton_np, grad=True)
  if kind == "mmtm":
    out_visual, out_skeleton = module(visual, skeleton)
  else:  # the default mode, with the gates and squeezes returned as well
    out_visual, out_skeleton, scales, squeezes = module(
        visual, skeleton, return_scale=True, return_squeezed_mps=True)
  for hook in hooks:
    hook.remove()
  assert [len(captured[k]) for k in ("squeeze", "hidden", "logits", "gates")] == [1, 1, 2, 2]
  if kind == "greedy":  # the returned gates and squeezes are the hooked ones
    assert all(torch.equal(a, b) for a, b in zip(scales, captured["gates"]))
    assert torch.equal(torch.cat(squeezes, 1), captured["squeeze"][0])

  objective = (out_visual * t64(cot_visual)).sum() + (out_skeleton * t64(cot_skeleton)).sum()
  names = [name for name, _ in module.named_parameters()]
  grads = torch.autograd.grad(objective, [visual, skeleton] + list(module.parameters()))

  out[f"{pre}_config"] = np.array([dim_visual, dim_skeleton, ratio, dim_out], dtype=np.int64)
  out[f"{pre}_visual"], out[f"{pre}_skeleton"] = visual_np, skeleton_np
  out[f"{pre}_cot_visual"], out[f"{pre}_cot_skeleton"] = cot_visual, cot_skeleton
  out[f"{pre}_squeeze"] = npy(captured["squeeze"][0])
  out[f"{pre}_hidden"] = npy(captured["hidden"][0])
  out[f"{pre}_logit_visual"], out[f"{pre}_logit_skeleton"] = map(npy, captured["logits"])
  out[f"{pre}_gate_visual"], out[f"{pre}_gate_skeleton"] = map(npy, captured["gates"])
  out[f"{pre}_out_visual"], out[f"{pre}_out_skeleton"] = npy(out_visual), npy(out_skeleton)
  out[f"{pre}_objective"] = np.float64(objective.item())
  out[f"{pre}_grad_visual"], out[f"{pre}_grad_skeleton"] = npy(grads[0]), npy(grads[1])
  for name, grad in zip(names, grads[2:]):
    out[f"{pre}_grad__{name}"] = npy(grad)

  hidden, gates = out[f"{pre}_hidden"], np.concatenate(
      [out[f"{pre}_gate_visual"], out[f"{pre}_gate_skeleton"]], 1)
  active = (hidden > 0).sum(0)
  assert np.all((active > 0) & (active < hidden.shape[0])), active
  print(f"{pre}: dim_out {dim_out}, ReLU zeros {np.mean(hidden == 0):.2f}, "
        f"gates in [{gates.min():.3f}, {gates.max():.3f}]")


def main(argv=None) -> None:
  parser = original_code.argument_parser(__doc__, {
      "mmtm": "checkout of haamoon/mmtm (repository root, holding mmtm.py)",
      "greedy": "checkout of nyukat/greedy_multimodal_learning (repository root)"})
  args = parser.parse_args(argv)
  dirs = {"mmtm": args.mmtm_dir.resolve(), "greedy": args.greedy_dir.resolve()}

  stubbed = install_stubs()                                          # patches 1, 2
  torch.set_default_dtype(torch.float64)
  torch.set_num_threads(1)
  torch.manual_seed(0)
  classes = load_upstream(dirs["mmtm"], dirs["greedy"])

  rng = np.random.default_rng(SEED)
  out: dict[str, np.ndarray] = {}
  for pre, kind, visual_shape, skeleton_shape, ratio in CASES:
    run_case(rng, pre, kind, classes[kind], visual_shape, skeleton_shape, ratio, out)

  files, digests = [], []
  for key, (repo, commit, pinned) in UPSTREAM.items():
    for name, digest in original_code.check_sha256(dirs[key], pinned).items():
      files.append(f"{repo}@{commit}:{name}")
      digests.append(digest)
  out["meta_files"] = np.array(files)
  out["meta_sha256"] = np.array(digests)
  out["meta_stubbed"] = np.array(stubbed)
  out["meta_versions"] = np.array([f"torch {torch.__version__}", f"numpy {np.__version__}",
                                   f"python {sys.version.split()[0]}"])
  original_code.save_vectors(args.out, out)


if __name__ == "__main__":
  main()
