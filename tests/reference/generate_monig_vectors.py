"""Generate reference test vectors from the original PyTorch MoNIG implementation.

The vectors are used by parity tests of `lqmm.fusion.nig`.  They come from running the
original code of https://github.com/MaHuanAAA/MoNIG (Ma et al., "Trustworthy Multimodal
Regression with Mixture of Normal-inverse Gamma Distributions", NeurIPS 2021) in float64 on
CPU.  The upstream files are imported from ``--monig-dir`` (a checkout, or an extracted
archive, of the repository root); nothing of them is copied here.

Original functions exercised:

* ``src/utils.py::moe_nig``         -- the binary NIG fusion that ``src/train.py`` calls
  (weights the means by ``nu``).
* ``src/models.py::MOEModel.moe_nig`` -- a second binary fusion defined on the model classes
  (weights the means by ``nu + 2 alpha``); it is never called by the training or evaluation
  code, and is recorded only so the difference is pinned down.
* ``src/utils.py::criterion_nig``   -- NIG negative log-likelihood plus the evidence
  regulariser, batch-averaged.
* ``src/models.py::MOEModel.split`` -- the softplus map from raw head outputs to NIG
  parameters.

Stubs / patches: none.  ``src/utils.py`` and ``src/models.py`` import unchanged with torch
2.13 (importing ``src/dataset.py`` calls the deprecated ``torch.set_default_tensor_type``,
which only sets the default dtype to float32; the generator resets it to float64 afterwards).
The smallest working ``MOEModel`` is built from a ``types.SimpleNamespace`` of
hyper-parameters (all input widths 1, one head, dropout 0); its weights are never used.

torch is imported inside ``main`` only, so that ``pytest --doctest-modules`` can import this
file in an environment without torch. So is ``original_code`` (the helpers shared with the other
generators and the benchmark runners), which the script imports from its own folder.

Usage::

    python generate_monig_vectors.py --monig-dir /path/to/MoNIG \\
        --out data/monig_vectors.npz

See ``PROVENANCE_monig.md`` for the list of keys.
"""

from __future__ import annotations

import importlib
import pathlib
import sys
import types

import numpy as np

SEED = 20211021
PAIR_B = 64
FOLD_MS = (2, 3, 4)
FOLD_B = 64
LOSS_B = 32
#: (key tag, value of ``hyp_params.risk``); 0.01 is the original default (``main.py --risk``).
RISKS = (('r0', 0.0), ('r0p01', 0.01), ('r1', 1.0))
FIELDS = ('mu', 'nu', 'alpha', 'beta')
#: sha256 of the upstream files at commit 2be09edc0893e97e80eb6a6db18c2f70977b1734.
EXPECTED_SHA256 = {
    'src/utils.py': 'c5c8fc6ccb9f8152181f0bbaa6124cc6b052400b064902b1ef2bc14b7bdd982f',
    'src/models.py': '1845086ec45b3535cbf67b3f21c8cdc3893cdb071ece90dbd9a01c328571bf8c',
}


def load_monig(monig_dir: pathlib.Path):
  """Imports the original ``src.utils`` and ``src.models`` from ``monig_dir``.

  The upstream repository has no ``__init__.py`` files; ``src`` and ``modules`` are imported as
  namespace packages with ``monig_dir`` first on ``sys.path``.
  """
  monig_dir = monig_dir.resolve()
  for name in ('src', 'modules'):
    if name in sys.modules:
      raise RuntimeError(f'a module named {name!r} is already imported; run in a fresh process')
  sys.path.insert(0, str(monig_dir))
  utils = importlib.import_module('src.utils')
  models = importlib.import_module('src.models')
  for module in (utils, models):
    if not pathlib.Path(module.__file__).resolve().is_relative_to(monig_dir):
      raise RuntimeError(f'{module.__name__} was imported from {module.__file__}, '
                         f'not from {monig_dir}')
  return utils, models


def tiny_hyp_params():
  """The smallest hyper-parameter namespace that ``MOEModel.__init__`` accepts."""
  return types.SimpleNamespace(
      orig_d_l=1, orig_d_a=1, orig_d_v=1, lonly=True, aonly=True, vonly=True, num_heads=1,
      layers=1, attn_dropout=0.0, attn_dropout_a=0.0, attn_dropout_v=0.0, relu_dropout=0.0,
      res_dropout=0.0, out_dropout=0.0, embed_dropout=0.0, attn_mask=False, output_dim=1)


def log_uniform(rng: np.random.Generator, low: float, high: float, size) -> np.ndarray:
  return 10.0**rng.uniform(np.log10(low), np.log10(high), size=size)


def nig_params(rng: np.random.Generator, m: int, b: int) -> dict[str, np.ndarray]:
  """NIG parameters, each field ``[m, b]``, spanning several magnitudes.

  Per (modality, sample), ``nu`` is drawn from one of four regimes: tiny log-uniform in
  [1e-9, 1e-6] (nu near 0), small [1e-3, 1e-1], moderate [0.1, 10], large [10, 1e4].
  ``alpha - 1`` is log-uniform in [1e-4, 1e2], ``beta`` log-uniform in [1e-4, 1e3], and
  ``mu`` is standard normal times 10**U(-1, 2).  Rows 0-4 are fixed edge cases:
  0: every modality has tiny nu; 1: all means equal; 2: all modalities identical;
  3: modality 0 tiny nu, the others large; 4: every alpha - 1 = 1e-4.
  """
  bounds = ((1e-9, 1e-6), (1e-3, 1e-1), (1e-1, 1e1), (1e1, 1e4))
  regime = rng.integers(0, len(bounds), size=(m, b))
  nu = np.empty((m, b))
  for r, (low, high) in enumerate(bounds):
    nu[regime == r] = log_uniform(rng, low, high, int((regime == r).sum()))
  alpha = 1.0 + log_uniform(rng, 1e-4, 1e2, (m, b))
  beta = log_uniform(rng, 1e-4, 1e3, (m, b))
  mu = rng.standard_normal((m, b)) * 10.0**rng.uniform(-1.0, 2.0, size=(m, b))
  nu[:, 0] = log_uniform(rng, 1e-9, 1e-6, m)
  mu[:, 1] = mu[0, 1]
  for field in (mu, nu, alpha, beta):
    field[:, 2] = field[0, 2]
  nu[0, 3] = 1e-8
  nu[1:, 3] = log_uniform(rng, 1e1, 1e4, m - 1)
  alpha[:, 4] = 1.0 + 1e-4
  return {'mu': mu, 'nu': nu, 'alpha': alpha, 'beta': beta}


def main(argv=None) -> None:
  import torch  # pylint: disable=import-outside-toplevel
  # Beside this script, so first on sys.path when it runs.
  import original_code  # pylint: disable=import-outside-toplevel

  parser = original_code.argument_parser(
      __doc__, {'monig': 'root of a MoNIG checkout (contains src/utils.py, src/models.py)'},
      out_default=pathlib.Path(__file__).resolve().parent / 'data' / 'monig_vectors.npz')
  args = parser.parse_args(argv)

  hashes = original_code.check_sha256(args.monig_dir, EXPECTED_SHA256)

  utils, models = load_monig(args.monig_dir)
  torch.set_default_dtype(torch.float64)  # src/dataset.py set it to float32 at import.
  torch.manual_seed(0)  # only the (unused) weights of the model object depend on it.
  model = models.MOEModel(tiny_hyp_params())
  model.eval()
  rng = np.random.default_rng(SEED)
  out: dict[str, np.ndarray] = {}

  def column(x: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
    """``[B]`` -> ``[B, 1]`` float64 tensor (``output_dim == 1`` in the original)."""
    return torch.tensor(x[:, None], dtype=torch.float64, requires_grad=requires_grad)

  def fold(fuse, params: dict[str, list]):
    """Left fold in the original order: ((p0 (+) p1) (+) p2) (+) ..."""
    acc = tuple(params[f][0] for f in FIELDS)
    for i in range(1, len(params['mu'])):
      acc = fuse(*acc, *(params[f][i] for f in FIELDS))
    return acc

  def as_tensors(p: dict[str, np.ndarray], requires_grad: bool = False) -> dict[str, list]:
    return {f: [column(row, requires_grad) for row in p[f]] for f in FIELDS}

  def squeeze(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()[:, 0].copy()

  # (a) Binary fusion, B = 64, and the gradient of a weighted sum of its outputs.
  p = nig_params(rng, 2, PAIR_B)
  w = rng.standard_normal((4, PAIR_B))
  for f in FIELDS:
    out[f'pair_{f}'] = p[f]
  t = as_tensors(p, requires_grad=True)
  fused = fold(utils.moe_nig, t)
  objective = sum((column(w[i]) * fused[i]).sum() for i in range(4))
  objective.backward()
  for i, f in enumerate(FIELDS):
    out[f'pair_fused_{f}'] = squeeze(fused[i])
    out[f'pair_grad_{f}'] = np.stack([squeeze(x.grad) for x in t[f]])
  out['pair_grad_w'] = w
  with torch.no_grad():
    fused_model = fold(model.moe_nig, as_tensors(p))
  for i, f in enumerate(FIELDS):
    out[f'pair_modelfused_{f}'] = squeeze(fused_model[i])

  # (b) M-fold fusion in the original order, B = 64; gradient for M = 3.
  for m in FOLD_MS:
    p = nig_params(rng, m, FOLD_B)
    for f in FIELDS:
      out[f'fold_M{m}_{f}'] = p[f]
    t = as_tensors(p, requires_grad=(m == 3))
    fused = fold(utils.moe_nig, t)
    for i, f in enumerate(FIELDS):
      out[f'fold_M{m}_fused_{f}'] = squeeze(fused[i])
    if m == 3:
      w = rng.standard_normal((4, FOLD_B))
      sum((column(w[i]) * fused[i]).sum() for i in range(4)).backward()
      out['fold_M3_grad_w'] = w
      for f in FIELDS:
        out[f'fold_M3_grad_{f}'] = np.stack([squeeze(x.grad) for x in t[f]])
    with torch.no_grad():
      fused_model = fold(model.moe_nig, as_tensors(p))
    for i, f in enumerate(FIELDS):
      out[f'fold_M{m}_modelfused_{f}'] = squeeze(fused_model[i])

  # (c) criterion_nig, B = 32.
  p = {f: v[0] for f, v in nig_params(rng, 1, LOSS_B).items()}
  y = p['mu'] + rng.standard_normal(LOSS_B) * 10.0**rng.uniform(-2.0, 1.0, size=LOSS_B)
  exact = np.zeros(LOSS_B, bool)
  exact[[5, 6]] = True  # the regulariser's |mu - y| is not differentiable here
  y[exact] = p['mu'][exact]
  for f in FIELDS:
    out[f'loss_{f}'] = p[f]
  out['loss_y'] = y
  out['loss_y_equals_mu'] = exact
  out['loss_risks'] = np.array([r for _, r in RISKS])
  for tag, risk in RISKS:
    hyp = types.SimpleNamespace(risk=risk)
    # Per-sample values: with [1, B] inputs the builtin sum over the first axis and len(u) == 1
    # leave the B per-sample terms unreduced.
    row = {f: torch.tensor(p[f][None, :], requires_grad=True) for f in FIELDS}
    y_row = torch.tensor(y[None, :], requires_grad=True)
    per_sample = utils.criterion_nig(*(row[f] for f in FIELDS), y_row, hyp)
    per_sample.sum().backward()
    out[f'loss_{tag}_per_sample'] = per_sample.detach().numpy().copy()
    for f in FIELDS:
      out[f'loss_{tag}_grad_{f}'] = row[f].grad.numpy()[0].copy()
    out[f'loss_{tag}_grad_y'] = y_row.grad.numpy()[0].copy()
    # The training call: [B, 1] inputs, result [1] = batch mean.
    with torch.no_grad():
      mean = utils.criterion_nig(*(column(p[f]) for f in FIELDS), column(y), hyp)
    out[f'loss_{tag}_mean'] = mean.numpy().reshape(()).copy()
    # Self-checks of the reduction.
    singles = [float(utils.criterion_nig(*(torch.tensor([[p[f][i]]]) for f in FIELDS),
                                         torch.tensor([[y[i]]]), hyp)) for i in range(LOSS_B)]
    np.testing.assert_allclose(out[f'loss_{tag}_per_sample'], singles, rtol=1e-13, atol=0)
    np.testing.assert_allclose(out[f'loss_{tag}_mean'], np.mean(singles), rtol=1e-12, atol=0)

  # (d) The MOE training objective of src/train.py (composed here from the original functions):
  # sum over modalities (l, a, v) of criterion_nig + criterion_nig of their left-folded fusion.
  p = nig_params(rng, 3, LOSS_B)
  y = p['mu'][0] + rng.standard_normal(LOSS_B) * 10.0**rng.uniform(-1.0, 1.0, size=LOSS_B)
  hyp = types.SimpleNamespace(risk=0.01)
  t = as_tensors(p, requires_grad=True)
  y_t = column(y)
  fused = fold(utils.moe_nig, t)
  total = sum(utils.criterion_nig(*(t[f][i] for f in FIELDS), y_t, hyp) for i in range(3))
  total = total + utils.criterion_nig(*fused, y_t, hyp)
  total.sum().backward()
  for f in FIELDS:
    out[f'objective_M3_{f}'] = p[f]
    out[f'objective_M3_grad_{f}'] = np.stack([squeeze(x.grad) for x in t[f]])
  out['objective_M3_y'] = y
  out['objective_M3_risk'] = np.float64(0.01)
  out['objective_M3_total'] = total.detach().numpy().reshape(()).copy()

  # (e) MOEModel.split: raw head outputs -> (mu, nu, alpha, beta).
  raw = rng.uniform(-30.0, 30.0, size=(4, LOSS_B))
  raw[:, :4] = np.array([0.0, 20.0, 20.5, -20.0])  # torch softplus switches to x above 20
  with torch.no_grad():
    split = model.split(*(column(r) for r in raw))
  out['split_raw'] = raw
  for i, f in enumerate(FIELDS):
    out[f'split_{f}'] = squeeze(split[i])

  for rel, digest in hashes.items():
    out[f'meta_sha256_{pathlib.PurePosixPath(rel).stem}'] = np.array(digest)
  out['meta_seed'] = np.int64(SEED)

  for key, value in out.items():
    if value.dtype.kind == 'f' and not np.all(np.isfinite(value)):
      raise RuntimeError(f'{key} has non-finite values')
  original_code.save_vectors(args.out, out)


if __name__ == '__main__':
  main()
