"""Generate reference test vectors from the original PyTorch READ implementation.

READ = REliable fusion and robust ADaptation (Yang et al., "Test-time Adaptation against
Multi-modal Reliability Bias", ICLR 2024), https://github.com/XLearning-SCU/2024-ICLR-READ.
The vectors feed parity tests of the JAX reimplementation of READ's test-time objective and
of its parameter selection.  Everything is run in float64 on CPU, on inputs drawn from a
seeded numpy generator; the upstream code is imported from ``--read-dir`` (a checkout of the
repository root, the directory that contains ``TTA/`` and ``models/``) and is never copied here.

Upstream objects that are called, unmodified:

* ``TTA/READ.py``: ``forward_and_adapt`` (the test-time loss is written inline there: the
  confidence term ``loss_ra``, the balance term ``loss_bal`` and ``loss = loss_ra - 1 *
  loss_bal``; the function also runs the backward pass and the optimizer step), the
  ``READ`` wrapper module (``forward``: one adaptation step per batch), ``configure_model``
  and ``collect_params``.
* ``models/cav_mae.py``: ``CAVMAEFT`` (only constructed, at tiny width, to list the real
  parameter names that ``configure_model`` / ``collect_params`` select from).

Stubs and patches (all documented in PROVENANCE_read.md):

1. ``torch.cuda.amp.autocast`` and ``GradScaler``, which ``READ.py`` uses, disable
   themselves without CUDA (autocast warns and does nothing; the scaler is created disabled,
   so ``scale(loss)`` is ``loss`` and ``step(opt)`` is ``opt.step()``).  The loss is
   therefore evaluated in float64, not in the float16 of the upstream GPU runs.
2. The network is replaced by a shell: ``model.module.forward_eval(a=..., v=..., mode=...)``
   returns ``(logits, None)``.  For the loss cases the logits are a leaf tensor, the optimizer
   is ``SGD(lr=0)`` (the step leaves them unchanged, asserted), and d loss / d logits is read
   from ``logits.grad`` after the original ``forward_and_adapt`` has run ``backward``.  For
   the continual-adaptation case the shell is a linear head on ``cat(a, v)`` adapted with the
   Adam call of ``run_read.py`` (lr 1e-4, betas (0.9, 0.999), weight decay 0).
3. Hyper-parameters other than the hard-coded ones (``gamma = math.exp(-1)`` and the balance
   weight ``1`` in ``loss = loss_ra - 1 * loss_bal``) are obtained by recompiling the original
   ``forward_and_adapt`` source with only those literals replaced (each asserted to occur
   exactly once).  The default setting runs the unmodified function.
4. ``timm`` (imported by ``models/cav_mae.py``) is served by placeholder modules, with
   ``to_2tuple`` and a parameter-naming stand-in for ``timm``'s ``Mlp`` (``fc1``, ``fc2``)
   set on them, so that ``CAVMAEFT`` can be built at width 8 for its parameter names.  No
   forward pass of it is run.

Usage (``original_code.py``, the helpers shared with the other generators and the benchmark
runners, is imported from this script's folder)::

    python generate_read_vectors.py --read-dir /path/to/2024-ICLR-READ \\
        --out data/read_vectors.npz
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import textwrap
import types

import numpy as np
import torch
import torch.nn as nn

import original_code  # beside this script, so first on sys.path when it runs

SEED = 20240615
B = 16
K = 10
GAMMA_DEFAULT = math.exp(-1)
# Loss settings: name -> (gamma, balance weight); None keeps the upstream literal.
SETTINGS = {
    "default": (None, None),        # gamma = e^-1, weight 1: the unmodified function
    "g0p5": (0.5, None),
    "bal0": (None, 0.0),            # the confidence term alone
    "g0p2_bal2": (0.2, 2.0),
}
CASES = ("mixed", "confident", "uncertain", "tie")
STEP_BATCHES = 3
STEP_DA, STEP_DV = 4, 4
STEP_LR = 1e-4                       # hard-coded in run_read.py (its --lr is unused)
MOCK_DEPTHS = (11, 9)                # modality_specific_depth: 1 resp. 3 fusion blocks

# Upstream files whose code is executed, with their sha256 at the commit used
# (2f11912fe6959535928ba5754ce4d5a2cb2661b7).  A mismatch only warns.
UPSTREAM_FILES = {
    "TTA/READ.py": "7df113a35fd97882f0bc560add41aeeb4bccba97a55eff6e0ef419285ecccb3e",
    "models/cav_mae.py": "7298297b419febfd842c5266683df6377311133b45d92fa39ad9ff68db0c7956",
    "models/pos_embed.py": None,
}


# --------------------------------------------------------------------------
# upstream loading (patch 4 for timm)
# --------------------------------------------------------------------------
class _MlpNames(nn.Module):
  """Stand-in for timm's ``Mlp`` with its parameter names (fc1, act, fc2); never run."""

  def __init__(self, in_features, hidden_features=None, out_features=None,
               act_layer=nn.GELU, drop=0.0):
    super().__init__()
    del drop
    hidden_features = hidden_features or in_features
    out_features = out_features or in_features
    self.fc1 = nn.Linear(in_features, hidden_features)
    self.act = act_layer()
    self.fc2 = nn.Linear(hidden_features, out_features)


def load_upstream(read_dir):
  ns = types.SimpleNamespace()
  ns.READ = original_code.load_file("read_tta_READ", read_dir / "TTA" / "READ.py")
  original_code.stub_packages(("timm",), only_missing=False, first=True)
  import timm.models.layers  # pylint: disable=import-outside-toplevel
  import timm.models.vision_transformer  # pylint: disable=import-outside-toplevel
  timm.models.layers.to_2tuple = lambda x: (x, x)
  timm.models.vision_transformer.Mlp = _MlpNames
  package = types.ModuleType("read_models")
  package.__path__ = [str(read_dir / "models")]
  sys.modules["read_models"] = package
  torch_home = os.environ.get("TORCH_HOME")
  ns.cav_mae = original_code.load_file("read_models.cav_mae", read_dir / "models" / "cav_mae.py",
                                       package="read_models")
  if torch_home is None:  # cav_mae.py sets TORCH_HOME at import; undo that side effect
    os.environ.pop("TORCH_HOME", None)
  else:
    os.environ["TORCH_HOME"] = torch_home
  return ns


def _with_literals(func, replacements):
  """``func`` recompiled with each (old, new) literal replaced; old must occur exactly once."""
  src = textwrap.dedent(inspect.getsource(func))
  for old, new in replacements:
    assert src.count(old) == 1, (old, src.count(old))
    src = src.replace(old, new)
  glb = dict(inspect.unwrap(func).__globals__)  # the decorator's wrapper has torch's globals
  exec(compile(src, f"<{func.__qualname__} with {replacements}>", "exec"), glb)  # pylint: disable=exec-used
  return glb[func.__name__]


def forward_and_adapt_for(up, setting):
  gamma, weight = SETTINGS[setting]
  replacements = []
  if gamma is not None:
    replacements.append(("gamma = math.exp(-1)", f"gamma = {gamma!r}"))
  if weight is not None:
    replacements.append(("loss = loss_ra - 1 * loss_bal",
                         f"loss = loss_ra - {weight!r} * loss_bal"))
  if not replacements:
    return up.READ.forward_and_adapt
  return _with_literals(up.READ.forward_and_adapt, replacements)


# --------------------------------------------------------------------------
# shells for the network (patch 2)
# --------------------------------------------------------------------------
class _LogitsShell(nn.Module):
  """``forward_eval`` returns fixed logits (a leaf tensor) and ignores its inputs."""

  def __init__(self, logits):
    super().__init__()
    self.logits = nn.Parameter(logits)

  def forward_eval(self, a, v, mode):
    del a, v
    assert mode == "multimodal"
    return self.logits, None


class _LinearShell(nn.Module):
  """``forward_eval(a, v) = head(cat(a, v))``: a linear late head on the two modalities."""

  def __init__(self, weight, bias):
    super().__init__()
    self.head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
      self.head.weight.copy_(weight)
      self.head.bias.copy_(bias)

  def forward_eval(self, a, v, mode):
    assert mode == "multimodal"
    return self.head(torch.cat([a, v], dim=-1)), None


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------
def _row(rng, p_max, k):
  """Logits [k] whose softmax maximum is p_max at a random class (unique argmax)."""
  spread = 0.3 if p_max < 0.2 else 1.0
  while True:
    others = rng.normal(0.0, spread, k - 1)
    top = math.log(p_max / (1.0 - p_max)) + np.log(np.exp(others).sum())
    if top > others.max() + 1e-3:
      break
  row = np.insert(others, rng.integers(k), top)
  return row + rng.uniform(-3.0, 3.0)  # softmax is shift-invariant


def loss_logits(rng, case):
  """Logits [B, K] for one case; the softmax maxima are drawn per case."""
  if case == "mixed":   # both sides of e^-1 (0.368), 0.5 and 0.2
    targets = np.array([0.11, 0.15, 0.19, 0.22, 0.27, 0.31, 0.35, 0.36,
                        0.38, 0.40, 0.45, 0.55, 0.70, 0.85, 0.97, 0.999])
    targets = rng.permutation(targets)
  elif case == "confident":
    targets = rng.uniform(0.45, 0.995, B)
  elif case == "uncertain":
    targets = rng.uniform(0.105, 0.30, B)
  elif case == "tie":
    targets = rng.uniform(0.12, 0.9, B)
  else:
    raise ValueError(case)
  z = np.stack([_row(rng, p, K) for p in targets])
  if case == "tie":  # exact two-way ties for the maximum in every even row
    for i in range(0, B, 2):
      top = int(np.argmax(z[i]))
      other = (top + 1 + int(rng.integers(K - 1))) % K
      z[i, other] = z[i, top]
  return z


def softmax_max(z):
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return (e / e.sum(axis=-1, keepdims=True)).max(axis=-1)


# --------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------
def run_loss(up, setting, logits):
  """(loss_ra, loss_bal, grad [B,K], argmax index torch used) via ``forward_and_adapt``."""
  shell = _LogitsShell(torch.from_numpy(logits.copy()))
  model = types.SimpleNamespace(module=shell)
  optimizer = torch.optim.SGD([shell.logits], lr=0.0)
  read = up.READ.READ(model, optimizer, torch.device("cpu"),
                      types.SimpleNamespace(testmode="multimodal"))
  fn = forward_and_adapt_for(up, setting)
  with torch.no_grad():  # as in run_read.py; forward_and_adapt re-enables grad itself
    (before, after), (loss_ra, loss_bal) = fn(
        (torch.zeros(1), torch.zeros(1)), model, optimizer, read.args, read.scaler)
  assert before is shell.logits and after is shell.logits
  np.testing.assert_array_equal(shell.logits.detach().numpy(), logits)
  index = shell.logits.detach().softmax(dim=-1).max(dim=-1)[1].numpy()
  return loss_ra, loss_bal, shell.logits.grad.numpy().copy(), index


def run_steps(up, rng):
  """Continual adaptation of a linear head over STEP_BATCHES batches with ``READ.forward``."""
  d = STEP_DA + STEP_DV
  w0 = rng.normal(0.0, 1.2, (K, d))
  b0 = rng.normal(0.0, 0.5, K)
  a = rng.normal(0.0, 1.0, (STEP_BATCHES, B, STEP_DA))
  v = rng.normal(0.0, 1.0, (STEP_BATCHES, B, STEP_DV))
  shell = _LinearShell(torch.from_numpy(w0), torch.from_numpy(b0))
  model = types.SimpleNamespace(module=shell)
  params = [shell.head.weight, shell.head.bias]
  optimizer = torch.optim.Adam([{"params": params, "lr": STEP_LR}],  # as run_read.py:147-149
                               weight_decay=0., betas=(0.9, 0.999))
  read = up.READ.READ(model, optimizer, torch.device("cpu"),
                      types.SimpleNamespace(testmode="multimodal"))
  read.eval()
  out = {k: [] for k in ("before", "after", "loss_ra", "loss_bal", "w", "b")}
  with torch.no_grad():
    for t in range(STEP_BATCHES):
      (before, after), (loss_ra, loss_bal) = read(
          (torch.from_numpy(a[t]), torch.from_numpy(v[t])), adapt_flag=True)
      out["before"].append(before.detach().numpy().copy())
      out["after"].append(after.numpy().copy())
      out["loss_ra"].append(loss_ra)
      out["loss_bal"].append(loss_bal)
      out["w"].append(shell.head.weight.detach().numpy().copy())
      out["b"].append(shell.head.bias.detach().numpy().copy())
  res = {"step_a": a, "step_v": v, "step_w0": w0, "step_b0": b0,
         "step_lr": np.float64(STEP_LR), "step_betas": np.array([0.9, 0.999]),
         "step_eps": np.float64(optimizer.param_groups[0]["eps"])}
  for key, value in out.items():
    res[f"step_{key}"] = np.array(value) if key not in ("w", "b") else np.stack(value)
  res["step_outputs_before"] = res.pop("step_before")
  res["step_outputs_after"] = res.pop("step_after")
  res["step_w_after"] = res.pop("step_w")
  res["step_b_after"] = res.pop("step_b")
  return res


def run_selection(up, depth):
  """Parameter names of a width-8 ``CAVMAEFT`` in ``DataParallel``, and what READ selects."""
  torch.manual_seed(0)  # only the names are recorded; the seed keeps the run deterministic
  net = up.cav_mae.CAVMAEFT(label_dim=K, img_size=16, audio_length=16, patch_size=16,
                            embed_dim=8, modality_specific_depth=depth, num_heads=2)
  unwrapped_params, _ = up.READ.collect_params(net)
  wrapped = torch.nn.DataParallel(net)  # run_read.py:116-124 wraps the model
  wrapped = up.READ.configure_model(wrapped)
  _, selected = up.READ.collect_params(wrapped)
  names = [name for name, _ in wrapped.named_parameters()]
  requires_grad = [p.requires_grad for _, p in wrapped.named_parameters()]
  return {
      f"select_d{depth}_names": np.array(names),
      f"select_d{depth}_selected": np.array([n in selected for n in names]),
      f"select_d{depth}_requires_grad": np.array(requires_grad),
      f"select_d{depth}_collect_order": np.array(selected),
      f"select_d{depth}_unwrapped_count": np.int64(len(unwrapped_params)),
  }


def main():
  parser = original_code.argument_parser(
      __doc__, {"read": "checkout of XLearning-SCU/2024-ICLR-READ (contains TTA/, models/)"})
  args = parser.parse_args()
  torch.set_default_dtype(torch.float64)
  up = load_upstream(args.read_dir)
  rng = np.random.default_rng(SEED)
  out = {}

  # (a) the test-time loss and its gradient w.r.t. the logits
  for setting, (gamma, weight) in SETTINGS.items():
    out[f"setting_{setting}_gamma"] = np.float64(GAMMA_DEFAULT if gamma is None else gamma)
    out[f"setting_{setting}_bal_weight"] = np.float64(1.0 if weight is None else weight)
  for case in CASES:
    logits = loss_logits(rng, case)
    out[f"loss_{case}_logits"] = logits
    out[f"loss_{case}_pmax"] = softmax_max(logits)
    for setting in SETTINGS:
      loss_ra, loss_bal, grad, index = run_loss(up, setting, logits)
      weight = float(out[f"setting_{setting}_bal_weight"])
      tag = f"loss_{case}_{setting}"
      out[f"{tag}_ra"] = np.float64(loss_ra)
      out[f"{tag}_bal"] = np.float64(loss_bal)
      out[f"{tag}_loss"] = np.float64(loss_ra - weight * loss_bal)
      out[f"{tag}_grad"] = grad
      if setting == "default":
        out[f"loss_{case}_torch_argmax"] = index.astype(np.int64)

  # (b) one READ step per batch, continual over STEP_BATCHES batches
  out.update(run_steps(up, rng))

  # (c) parameter selection on the real CAVMAEFT's names
  for depth in MOCK_DEPTHS:
    out.update(run_selection(up, depth))

  digests = original_code.check_sha256(args.read_dir, UPSTREAM_FILES)
  out["meta_files"] = np.array(list(digests))
  out["meta_sha256"] = np.array(list(digests.values()))
  original_code.save_vectors(args.out, out)


if __name__ == "__main__":
  main()
