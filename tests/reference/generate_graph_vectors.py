"""Reference vectors for lqmm.cluster.graph_consensus (IMSC_AGL, PIC) from the NumPy transcription.

MATLAB and Octave do not run here, so `tests/reference/transcribed/graph.py` (a float64,
line-by-line transcription of the survey toolbox's `IMSC_AGL/IMSAGL.m`, `PIC/PIC.m` and their
helpers, every MATLAB-semantics decision tagged [MATLAB-SEM]) is the reference. See
PROVENANCE_imvc.md ("Graph consensus").

    .venv/bin/python tests/reference/generate_graph_vectors.py \
        --out tests/reference/data/graph_vectors.npz
"""

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from transcribed import graph as graph_ref  # noqa: E402

#: (N, view dims, missing per view, IMSC_AGL parameters, PIC k). The tests run their own toy
#: problems at the same shapes (one compilation), hence IMSC_AGL's kNN k = 15, not the survey's 5.
CASES = [
    (45, (5, 7, 4), (8, 10, 6),
     dict(lam1=0.1, lam2=1000.0, lam3=100.0, mu=0.01, rho=1.1, max_iter=15), 13),
    (45, (5, 7, 4), (7, 9, 10),
     dict(lam1=1.0, lam2=0.5, lam3=10.0, mu=0.1, rho=1.3, max_iter=15), 5),
]


def _problem(rng, num_samples, dims, missing):
  """Non-negative block-structured views `[d, N]` (the MATLAB layout) and a 0/1 mask `[N, V]`
  that leaves every sample a view."""
  labels = rng.integers(0, 3, num_samples)
  views, masks = [], []
  for index, dim in enumerate(dims):
    centres = rng.uniform(0, 1, (3, dim))
    views.append((centres[labels] + 0.3 * rng.uniform(0, 1, (num_samples, dim))).T)
    mask = np.ones(num_samples, int)
    mask[rng.choice(num_samples, missing[index], replace=False)] = 0
    masks.append(mask)
  mask = np.stack(masks, 1)
  mask[mask.sum(1) == 0, 0] = 1
  return views, mask


def _imsc_agl(prefix, views, mask, params, out):
  num_clusters, knn = 3, 15
  out[prefix + 'knn'] = knn
  xs, g, z_ini, inv_xx, f_ini = graph_ref.imsc_agl_prepare(views, mask, num_clusters, knn)
  out[prefix + 'z_ini'] = np.stack([_pad(z, mask[:, v]) for v, z in enumerate(z_ini)])
  out[prefix + 'f_ini'] = np.stack(f_ini)
  for faithful in (True, False):
    result = graph_ref.imsc_agl(xs, g, z_ini, f_ini, inv_xx, num_clusters,
                                u_overwrite=faithful, **params)
    mode = prefix + ('faithful_' if faithful else 'intent_')
    out[mode + 'trace'] = np.asarray(result['obj'])
    out[mode + 'embedding'] = result['U']
    out[mode + 'embeddings'] = np.stack(result['F'])
    for name in ('Z', 'W', 'S'):
      out[mode + name.lower()] = np.stack([_pad(m, mask[:, v])
                                           for v, m in enumerate(result[name])])
    for v, e in enumerate(result['E']):
      full = np.zeros((mask.shape[0], e.shape[0]))
      full[mask[:, v] == 1] = e.T                   # lqmm's layout: samples as rows
      out[mode + f'e{v}'] = full
  for name, value in params.items():
    out[prefix + name] = value


def _pad(matrix, present):
  """An `[n_v, n_v]` matrix over the present samples placed in `[N, N]` (zeros elsewhere)."""
  rows = np.flatnonzero(present == 1)
  full = np.zeros((present.size, present.size))
  full[np.ix_(rows, rows)] = matrix
  return full


def _pic(prefix, views, mask, k, out):
  num_clusters, beta = 3, 0.1
  data = graph_ref.pic_preprocess(views, mask)
  raw = [graph_ref.construct_s_png(d, k, 0)[0] for d in data]
  graphs = graph_ref.s_completion(raw, mask, 1)
  embedding, weights, fused = graph_ref.pic_fusion(graphs, num_clusters, beta)
  # pic_fusion's own decompositions, repeated (same LAPACK call on the same matrices): the
  # row sums of U are sign-dependent, so the tests pass these through.
  affinities, vectors, values = [], [], []
  for s in graphs:
    degree = s.sum(1)
    with np.errstate(divide='ignore'):
      scale = 1 / np.sqrt(degree)
    scale[np.isinf(scale)] = 0
    affinity = (scale[:, None] * s) * scale[None, :]
    affinity[~np.isfinite(affinity)] = 0
    left, singular, _ = np.linalg.svd(affinity)
    affinities.append(affinity)
    vectors.append(left)
    values.append(singular)
  out.update({prefix + 'pic_k': k, prefix + 'pic_beta': beta,
              prefix + 'pic_raw': np.stack([np.nan_to_num(w) for w in raw]),
              prefix + 'pic_graphs': np.stack(graphs),
              prefix + 'pic_affinities': np.stack(affinities),
              prefix + 'pic_vectors': np.stack(vectors), prefix + 'pic_values': np.stack(values),
              prefix + 'pic_weights': weights, prefix + 'pic_fused': fused,
              prefix + 'pic_embedding': embedding,
              prefix + 'pic_top': np.linalg.svd(fused)[0][:, :num_clusters]})


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--out', required=True)
  args = parser.parse_args()
  rng = np.random.default_rng(20261208)
  out = {}
  for case, (num_samples, dims, missing, params, pic_k) in enumerate(CASES):
    views, mask = _problem(rng, num_samples, dims, missing)
    prefix = f'case{case}_'
    out[prefix + 'num_views'] = len(dims)
    out[prefix + 'mask'] = mask.astype(bool)
    for v, x in enumerate(views):
      out[prefix + f'x{v}'] = x.T                     # lqmm's layout: samples as rows
    _imsc_agl(prefix, views, mask, params, out)
    _pic(prefix, views, mask, pic_k, out)
  np.savez_compressed(args.out, **out)
  print('wrote', args.out, len(out), 'arrays')


if __name__ == '__main__':
  main()
