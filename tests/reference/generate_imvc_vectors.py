"""Reference vectors for lqmm.cluster's solvers, from NumPy transcriptions of the MATLAB originals.

MATLAB and Octave do not run here, so each original's main loop was transcribed line by line into
NumPy (`tests/reference/transcribed/`, float64, every MATLAB-semantics decision tagged
[MATLAB-SEM]); these runs of the transcriptions on small seeded problems, from initial factors
passed in as arrays, are the reference. See PROVENANCE_imvc.md.

    /work/torch-venv/bin/python tests/reference/generate_imvc_vectors.py \
        --out tests/reference/data/imvc_vectors.npz
"""

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from transcribed import daimc as daimc_ref  # noqa: E402
from transcribed import mic as mic_ref  # noqa: E402
from transcribed import opimc as opimc_ref  # noqa: E402
from transcribed import graph as graph_ref  # noqa: E402


def _problem(rng, num_samples, dims, missing):
  """Non-negative views `[d, N]` (the MATLAB layout) with a block structure, and 0/1 masks."""
  labels = rng.integers(0, 3, num_samples)
  views, masks = [], []
  for index, dim in enumerate(dims):
    centres = rng.uniform(0, 1, (3, dim))
    x = centres[labels] + 0.3 * rng.uniform(0, 1, (num_samples, dim))
    mask = np.ones(num_samples)
    mask[rng.choice(num_samples, missing[index], replace=False)] = 0
    views.append(x.T)
    masks.append(mask)
  # Every sample keeps a view.
  stacked = np.stack(masks, 1)
  stacked[stacked.sum(1) == 0, 0] = 1
  return views, [stacked[:, v] for v in range(len(dims))], labels


def daimc_cases(rng):
  out = {}
  for case, (num_samples, dims, missing, alpha, beta) in enumerate([
      (60, (7, 5, 9), (10, 12, 5), 1e-1, 1e1),
      (80, (12, 6), (20, 25), 1e-4, 1e4),
      (50, (4, 8, 6, 5), (10, 10, 10, 10), 10.0, 1.0)]):
    views, masks, _ = _problem(rng, num_samples, dims, missing)
    views, masks = daimc_ref.preprocess(views, masks)
    rank = 3
    labels = [rng.integers(0, rank, num_samples) for _ in dims]
    centres = [rng.uniform(0, 1, (rank, dim)) for dim in dims]
    bases, consensus, regressions = daimc_ref.newinit_from_kmeans(
        daimc_ref.newinit_fill(views, masks), labels, centres, rank)
    final_bases, final_consensus, final_regressions, trace = daimc_ref.daimc(
        views, masks, bases, consensus, regressions, alpha, beta, max_iter=8)
    prefix = f'daimc{case}_'
    out[prefix + 'alpha'], out[prefix + 'beta'] = alpha, beta
    out[prefix + 'mask'] = np.stack(masks, 1).astype(bool)
    for v in range(len(dims)):
      out[prefix + f'x{v}'] = views[v].T          # lqmm's layout: samples as rows
      out[prefix + f'kmeans_labels{v}'] = labels[v]
      out[prefix + f'kmeans_centres{v}'] = centres[v]
      out[prefix + f'init_basis{v}'] = bases[v]
      out[prefix + f'init_regression{v}'] = regressions[v]
      out[prefix + f'basis{v}'] = final_bases[v]
      out[prefix + f'regression{v}'] = final_regressions[v]
    out[prefix + 'init_consensus'] = consensus
    out[prefix + 'consensus'] = final_consensus
    out[prefix + 'trace'] = trace
    out[prefix + 'num_views'] = len(dims)
  return out


def mic_cases(rng):
  out = {}
  for case, (num_samples, dims, missing, alpha, beta, rounds, max_iter) in enumerate([
      (50, (6, 8), (8, 7), 1e-2, 1e-2, 6, 10),
      (70, (5, 9, 4), (10, 15, 12), 0.1, 1.0, 5, 20)]):
    views, masks, _ = _problem(rng, num_samples, dims, missing)
    views = [x.T for x in views]                     # MIC's layout: samples as rows
    filled, weights = mic_ref.fill_and_weight(views, masks, 'ratio')
    rank = 3
    # Plain NMF (Cai's NMF.m) from drawn factors, on the first view.
    basis, coefficients = mic_ref.draw_nmf_random_init(rng, dims[0], num_samples, rank)
    nmf_basis, nmf_coefficients = mic_ref.nmf_cai(filled[0].T, rank, basis, coefficients,
                                                  max_iter=max_iter)
    init_coefficients = [rng.uniform(0.05, 1, (num_samples, rank)) for _ in dims]
    init_bases = [rng.uniform(0.05, 1, (dim, rank)) for dim in dims]
    final_coefficients, final_bases, _, logs, _ = mic_ref.mic(
        filled, weights, init_coefficients, init_bases, [alpha] * len(dims),
        [beta] * len(dims), rounds, max_iter=max_iter)
    prefix = f'mic{case}_'
    out.update({prefix + 'alpha': alpha, prefix + 'beta': beta, prefix + 'rounds': rounds,
                prefix + 'max_iter': max_iter, prefix + 'num_views': len(dims),
                prefix + 'mask': np.stack(masks, 1).astype(bool), prefix + 'logs': logs,
                prefix + 'consensus': mic_ref.consensus(final_coefficients, weights,
                                                        [alpha] * len(dims)),
                prefix + 'nmf_init_basis': basis, prefix + 'nmf_init_coefficients': coefficients,
                prefix + 'nmf_basis': nmf_basis, prefix + 'nmf_coefficients': nmf_coefficients})
    for v in range(len(dims)):
      out[prefix + f'x{v}'] = views[v]
      out[prefix + f'weights{v}'] = weights[v]
      out[prefix + f'init_coefficients{v}'] = init_coefficients[v]
      out[prefix + f'init_basis{v}'] = init_bases[v]
      out[prefix + f'coefficients{v}'] = final_coefficients[v]
      out[prefix + f'basis{v}'] = final_bases[v]
  return out


def opimc_cases(rng):
  out = {}
  for case, (num_samples, dims, missing, alpha, block, zero_missing) in enumerate([
      (95, (5, 7), (10, 10), 10.0, 30, True),
      (64, (6, 4, 8), (10, 12, 9), 1.0, 16, False)]):
    views, masks, _ = _problem(rng, num_samples, dims, missing)
    order = rng.permutation(num_samples)
    rank = 3
    first_bases = [rng.random((dim, rank)) for dim in dims]
    first_indicator = rng.random((block, rank))
    labels, bases, losses = opimc_ref.opimc(
        [x[:, order] for x in views], [m[order] for m in masks], rank, alpha, block,
        first_bases, first_indicator, zero_missing=zero_missing)
    in_order = np.zeros(num_samples, int)
    in_order[order] = labels
    prefix = f'opimc{case}_'
    out.update({prefix + 'alpha': alpha, prefix + 'block': block, prefix + 'num_views': len(dims),
                prefix + 'faithful': not zero_missing, prefix + 'order': order,
                prefix + 'mask': np.stack(masks, 1).astype(bool), prefix + 'labels': in_order,
                prefix + 'losses': losses[0], prefix + 'first_indicator': first_indicator})
    for v in range(len(dims)):
      out[prefix + f'x{v}'] = views[v].T
      out[prefix + f'first_basis{v}'] = first_bases[v]
      out[prefix + f'basis{v}'] = bases[v]
  return out


def lfimvc_cases(rng):
  out = {}
  for case, (num_samples, dims, missing, lam) in enumerate([
      (60, (5, 7, 6), (10, 12, 8), 2.0 ** -3), (80, (8, 4), (20, 15), 2.0 ** 3)]):
    views, masks, _ = _problem(rng, num_samples, dims, missing)
    mask = np.stack(masks, 1)
    kernels = np.stack([x.T @ x for x in views])
    rank = 3
    initial = graph_ref.lfimvc_init_hp(kernels, mask, rank)
    result = graph_ref.lfimvc(initial, rank, lam)
    prefix = f'lfimvc{case}_'
    out.update({prefix + 'lam': lam, prefix + 'mask': mask.astype(bool),
                prefix + 'kernels': kernels, prefix + 'initial': initial,
                prefix + 'objective': np.asarray(result['obj']),
                prefix + 'consensus': result['Hstar'], prefix + 'partitions': result['HP']})
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--out', required=True)
  args = parser.parse_args()
  rng = np.random.default_rng(20261207)
  out = daimc_cases(rng)
  out.update(mic_cases(rng))
  out.update(opimc_cases(rng))
  out.update(lfimvc_cases(rng))
  np.savez_compressed(args.out, **out)
  print('wrote', args.out, len(out), 'arrays')


if __name__ == '__main__':
  main()
