"""Reference Gaussians from UIMC's imputation (`UIMC/select_k_neighbors.py`, `get_samples`).

Runs the original `get_samples` on a small seeded data set and recovers, for every missing
(row, view) it fills, the mean and the covariance (+ regularization) of the Gaussian it draws
from. Two shims expose them without changing the algorithm:

- `np.random.default_rng()` (unseeded in the original) returns a generator whose `normal(size=
  (n, d))` is `[I_d; 0]`, so the n draws `Z @ L.T + mean` are `L.T`'s rows plus the mean, then
  the mean itself: the mean and `L L^T = cov + r I` are read off exactly.
- `process_data` (the StandardScaler applied after imputation) is the identity, so the draws
  come back unscaled.

`util.py` also imports torchvision and pandas, unused by the imputation; they are stubbed.

Usage (the separate torch environment: torch, numpy, scipy, scikit-learn):
  python tests/reference/generate_uimc_vectors.py --uimc-dir <UIMC repo>/UIMC \
      --out tests/reference/data/uimc_vectors.npz
"""

import argparse
import hashlib
import pathlib
import sys
import types

import numpy as np

NUM_ROWS, WIDTHS, NUM_CLASSES, NUM_DRAWS, K = 90, (2, 3, 4), 3, 6, 3


class _BasisGenerator:
  """`normal(size=(n, d))` -> `[I_d; 0]` (n > d)."""

  def normal(self, size):
    n, d = size
    out = np.zeros((n, d))
    out[:d] = np.eye(d)
    return out


def _stub_modules():
  """torchvision and pandas: imported by `util.py`, unused by the imputation."""
  pandas = types.ModuleType('pandas')
  vision = types.ModuleType('torchvision')
  transforms = types.ModuleType('torchvision.transforms')
  transforms.Compose = lambda steps: None
  transforms.ToTensor = lambda: None
  vision.transforms = transforms
  sys.modules.update({'pandas': pandas, 'torchvision': vision,
                      'torchvision.transforms': transforms})


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--uimc-dir', required=True, type=pathlib.Path)
  parser.add_argument('--out', required=True, type=pathlib.Path)
  args = parser.parse_args()
  _stub_modules()
  sys.path.insert(0, str(args.uimc_dir))
  import select_k_neighbors  # pylint: disable=g-import-not-at-top
  select_k_neighbors.process_data = lambda x, n_view: x
  np.random.default_rng = lambda *unused: _BasisGenerator()

  rng = np.random.RandomState(0)
  labels = rng.randint(0, NUM_CLASSES, size=(NUM_ROWS, 1)).astype(np.int32)
  x = [rng.normal(size=(NUM_ROWS, width)) + labels for width in WIDTHS]
  mask = np.ones((NUM_ROWS, len(WIDTHS)), np.float32)
  keep = rng.randint(0, len(WIDTHS), NUM_ROWS)
  drop = rng.uniform(size=mask.shape) < 0.35
  drop[np.arange(NUM_ROWS), keep] = False
  mask[drop] = 0
  order = rng.permutation(NUM_ROWS)
  train_index, test_index = np.sort(order[:60]), np.sort(order[60:])
  x_train, _, x_test, _, _ = select_k_neighbors.get_samples(
      x=x, y=labels, sn=mask, train_index=train_index, test_index=test_index,
      n_sample=NUM_DRAWS, k=K)

  def read_off(block):
    mean = block[len(block[0])] if len(block) > len(block[0]) else block[-1]
    factor = block[:len(block[0])] - mean
    return mean, factor.T @ factor

  out = {'x/' + str(v): x[v] for v in range(len(WIDTHS))}
  out.update(labels=labels[:, 0], mask=mask.astype(bool), train_index=train_index,
             test_index=test_index, num_draws=NUM_DRAWS, k=K)
  # Training side: complete rows first, then each incomplete row's NUM_DRAWS copies.
  sn_train = mask[train_index]
  complete = int(np.sum(sn_train.sum(1) == len(WIDTHS)))
  incomplete = np.where(sn_train.sum(1) < len(WIDTHS))[0]
  for view in range(len(WIDTHS)):
    means, covs, rows = [], [], []
    for number, row in enumerate(incomplete):
      if sn_train[row, view]:
        continue
      start = complete + number * NUM_DRAWS
      mean, cov = read_off(x_train[view][start:start + NUM_DRAWS])
      means.append(mean)
      covs.append(cov)
      rows.append(row)
    out[f'train/{view}/rows'] = np.asarray(rows, np.int64)
    out[f'train/{view}/mean'] = np.asarray(means)
    out[f'train/{view}/cov'] = np.asarray(covs)
  # Test side: complete test rows' copies first, then incomplete test rows in test_index order.
  sn_test = mask[test_index]
  complete = int(np.sum(sn_test.sum(1) == len(WIDTHS)))
  incomplete = np.where(sn_test.sum(1) < len(WIDTHS))[0]
  for view in range(len(WIDTHS)):
    means, covs, rows = [], [], []
    for number, row in enumerate(incomplete):
      if sn_test[row, view]:
        continue
      start = (complete + number) * NUM_DRAWS
      mean, cov = read_off(x_test[view][start:start + NUM_DRAWS])
      means.append(mean)
      covs.append(cov)
      rows.append(row)
    out[f'test/{view}/rows'] = np.asarray(rows, np.int64)
    out[f'test/{view}/mean'] = np.asarray(means)
    out[f'test/{view}/cov'] = np.asarray(covs)
  source = (args.uimc_dir / 'select_k_neighbors.py').read_bytes()
  out['sha256'] = hashlib.sha256(source).hexdigest()
  args.out.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(args.out, **out)
  print(f'wrote {args.out}: {sum(len(out[f"test/{v}/rows"]) for v in range(3))} test and '
        f'{sum(len(out[f"train/{v}/rows"]) for v in range(3))} train Gaussians')


if __name__ == '__main__':
  main()
