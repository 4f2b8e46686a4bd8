"""Reference vectors for lqmm.cluster.anchor_graph (FIMVC-VIA) from the NumPy transcription.

MATLAB and Octave do not run here, so `tests/reference/transcribed/anchor.py` (a float64,
line-by-line transcription of the authors' `missingalgo_qp.m` and its helpers, MATLAB-semantics
decisions tagged [MATLAB-SEM]) is the reference. See PROVENANCE_imvc.md ("Anchor graphs").

    .venv/bin/python tests/reference/generate_anchor_vectors.py \
        --out tests/reference/data/anchor_vectors.npz
"""

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from transcribed import anchor as anchor_ref  # noqa: E402

#: (N, view dims, missing per view, m, lam, anchor rows: None = the original's first m).
#: Case 0: every d_v >= m (exact block updates); case 1: a view with d_v < m, other anchors.
CASES = [
    (60, (9, 7, 8), (12, 15, 10), 6, 1.0, None),
    (60, (9, 4, 8), (10, 14, 16), 6, 0.1, (3, 17, 25, 33, 41, 58)),
]


def _problem(rng, num_samples, dims, missing, protect):
  """Block-structured views `[d, N]` (MATLAB layout) with NaN columns for missing samples, and
  the 0-based present indices per view; every sample keeps a view, the `protect` rows keep all."""
  labels = rng.integers(0, 3, num_samples)
  views, index = [], []
  masks = []
  for v, dim in enumerate(dims):
    centres = rng.normal(0, 1, (3, dim))
    views.append((centres[labels] + 0.5 * rng.normal(0, 1, (num_samples, dim))).T)
    mask = np.ones(num_samples, int)
    candidates = np.setdiff1d(np.arange(num_samples), protect)
    mask[rng.choice(candidates, missing[v], replace=False)] = 0
    masks.append(mask)
  mask = np.stack(masks, 1)
  mask[mask.sum(1) == 0, 0] = 1
  for v, x in enumerate(views):
    x[:, mask[:, v] == 0] = np.nan
    index.append(np.flatnonzero(mask[:, v]))
  return views, index, mask


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--out', required=True)
  args = parser.parse_args()
  rng = np.random.default_rng(20261207)
  out = {}
  for case, (num_samples, dims, missing, m, lam, rows) in enumerate(CASES):
    # The initial anchors' samples keep every view (a missing one makes X_v^T Z rank-deficient
    # and its polar factor depends on the SVD routine).
    anchor_rows = np.arange(m) if rows is None else np.asarray(rows)
    views, index, mask = _problem(rng, num_samples, dims, missing, anchor_rows)
    xs, ind = anchor_ref.findindex(views, index)
    z_init = np.zeros((m, num_samples))
    z_init[np.arange(m), anchor_rows] = 1
    result = anchor_ref.missingalgo_qp(xs, 3, lam, m, ind,
                                       z_init=None if rows is None else z_init)
    prefix = f'case{case}_'
    out[prefix + 'mask'] = mask.astype(bool)
    for v, x in enumerate(views):
      out[prefix + f'x{v}'] = np.nan_to_num(x.T, nan=7.0)   # samples as rows; junk in missing
      out[prefix + f'anchors{v}'] = result['A'][v].T
    out.update({prefix + 'num_views': len(dims), prefix + 'num_anchors': m,
                prefix + 'lam': lam, prefix + 'anchor_rows': anchor_rows,
                prefix + 'trace': result['obj'], prefix + 'iterations': result['iter'],
                prefix + 'graph': result['Z'].T, prefix + 'view_weights': result['alpha'],
                prefix + 'embedding': result['UU']})
    print(f'case {case}: {result["iter"]} iterations, objective {result["obj"][-1]:.6g}')
  np.savez_compressed(args.out, **out)
  print('wrote', args.out, len(out), 'arrays')


if __name__ == '__main__':
  main()
