"""Generate reference masks from the original missing-view mask generators.

Runs, unmodified, COMPLETER's `get_mask.py` (XLearning-SCU/2021-CVPR-Completer), DCP's
`utils/get_mask.py` (XLearning-SCU/2022-TPAMI-DCP) and CPM-Nets' `util/get_sn.py`
(hanmenghan/CPM_Nets), each right after `np.random.seed(seed)`, on a grid of sizes, view
counts, rates and seeds, and writes `data/legacy_mask_vectors.npz` for
`tests/missing/test_legacy.py`. Two shims, for today's NumPy and scikit-learn (both documented
in PROVENANCE_legacy_masks.md): `np.int` (removed in NumPy 1.24) is set to `int`, and
CPM-Nets' `OneHotEncoder(n_values=V)` (removed in scikit-learn 0.22) is given as
`OneHotEncoder(categories=[range(V)])`, which encodes the same columns.

Usage (in a separate Python environment with numpy and scikit-learn):
  python tests/reference/generate_legacy_mask_vectors.py \
      --completer-file .../get_mask.py --dcp-file .../utils/get_mask.py \
      --cpm-file .../util/get_sn.py --out tests/reference/data/legacy_mask_vectors.npz
"""

import argparse
import hashlib
import importlib.util
import pathlib
import signal

import numpy as np
import sklearn.preprocessing

GRID = [(num_samples, num_views) for num_samples in (300, 2000) for num_views in (2, 3, 6)]
RATES = {'completer': (0.0, 0.1, 0.3, 0.5, 0.7, 1.0),
         'dcp': (0.0, 0.1, 0.3, 0.5, 0.7, 1.0),
         'cpm': (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)}
SEEDS = (0, 1, 7)


def _one_hot_encoder(n_values=None, **kwargs):
  """scikit-learn < 0.22's `OneHotEncoder(n_values=V)`: V fixed columns."""
  if n_values is not None:
    kwargs['categories'] = [list(range(n_values))]
  return sklearn.preprocessing.OneHotEncoder(**kwargs)


def _load(path: pathlib.Path, name: str):
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  module.OneHotEncoder = _one_hot_encoder if name == 'cpm' else module.OneHotEncoder
  return module


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  for name in ('completer', 'dcp', 'cpm'):
    parser.add_argument(f'--{name}-file', required=True, type=pathlib.Path)
  parser.add_argument('--out', required=True, type=pathlib.Path)
  args = parser.parse_args()
  np.int = int  # removed in NumPy 1.24; the originals use it as a dtype
  functions = {'completer': _load(args.completer_file, 'completer').get_mask,
               'dcp': _load(args.dcp_file, 'dcp').get_mask,
               'cpm': _load(args.cpm_file, 'cpm').get_sn}
  out = {}
  for name, function in functions.items():
    path = getattr(args, f'{name}_file')
    out[f'sha256/{name}'] = np.array(hashlib.sha256(path.read_bytes()).hexdigest())
    for num_samples, num_views in GRID:
      for rate in RATES[name]:
        if name == 'cpm' and rate > (num_views - 1) / num_views:
          continue
        for seed in SEEDS:
          np.random.seed(seed)
          signal.alarm(60)  # the originals retry until within 0.005; never hang here
          key = f'{name}/{num_samples}/{num_views}/{rate}/{seed}'
          try:
            mask = np.asarray(function(num_views, num_samples, rate))
          except ValueError as error:  # too few samples: a kept view never drawn
            out[f'failed/{key}'] = np.array(str(error))
          else:
            out[key] = mask.astype(bool)
          signal.alarm(0)
  np.savez_compressed(args.out, **out)
  print(f'{len(out)} entries written to {args.out}')


if __name__ == '__main__':
  main()
