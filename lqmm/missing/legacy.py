"""Bit-exact replays of the published missing-view mask generators (NumPy's legacy stream).

Incomplete multi-view papers draw their masks with NumPy's global legacy generator right after
`np.random.seed(seed)`, and "missing rate" means something different in each family:

- `'completer'` (COMPLETER, Lin et al., CVPR 2021, `get_mask.py`): the rate `eta` is spread
  over the views, a share `eta / V` of the (sample, view) entries is missing (within 0.005), and
  every sample keeps at least one view.
- `'dcp'` (DCP, Lin et al., TPAMI 2022, `utils/get_mask.py`): `eta` is the share of incomplete
  samples: `N - int(N (1 - eta))` rows are drawn incomplete, with half of their entries
  present, then the rows are shuffled. With two views each such row keeps exactly one view, so
  the share of incomplete samples is eta; with three or more, some drawn rows come out
  complete, and the realised share is below eta (0.4675 at eta = 0.5, V = 3, N = 2000).
- `'cpm'` (CPM-Nets, Zhang et al., NeurIPS 2019, `util/get_sn.py`): `eta` is the share of
  missing entries (within 0.005), at least one view kept per sample.

All three build a mask from a one-hot "kept view" per sample plus uniform draws `randint(0,
100) < int(100 p)`, retried until the realised share of present entries is within 0.005 of the
target. `legacy_mask` reimplements that algorithm on a `numpy.random.RandomState(seed)`, which
is the stream `np.random.seed(seed)` starts, so the result equals the original routine called
right after `np.random.seed(seed)` (checked against masks generated from the original files,
`tests/reference/PROVENANCE_legacy_masks.md`). These are compatibility modes: NumPy, not JAX,
and not jit-able; the mask is bool `[N, V]`, True = present.
"""

from __future__ import annotations

import numpy as np

from lqmm import checks

__all__ = ['PROTOCOLS', 'legacy_mask']

#: Protocol name -> what its rate means.
PROTOCOLS = {
    'completer': 'eta / V of the (sample, view) entries missing (COMPLETER get_mask)',
    'dcp': 'a share eta of the samples incomplete (DCP get_mask)',
    'cpm': 'a share eta of the (sample, view) entries missing (CPM-Nets get_sn)',
}

#: The originals retry until the realised share of present entries is this close to the target.
_TOLERANCE = 0.005


def _one_hot(rng: np.random.RandomState, num_samples: int, num_views: int, *,
             fixed_width: bool) -> np.ndarray:
  """One kept view per sample: `OneHotEncoder().fit_transform(randint(0, V, (N, 1)))`.

  The encoder's columns are the categories that occur (CPM-Nets fixes them to V with
  `n_values`); when a view never occurs the originals' shapes stop matching.
  """
  kept = rng.randint(0, num_views, size=(num_samples, 1))[:, 0]
  if not fixed_width and np.unique(kept).size != num_views:
    raise ValueError(f'num_samples={num_samples} is too small for this replay: no sample drew '
                     f'view {sorted(set(range(num_views)) - set(kept.tolist()))} to keep, where '
                     'the original routine fails or returns fewer columns; use more samples.')
  return np.eye(num_views, dtype=np.int64)[kept]


def _mixed(rng: np.random.RandomState, num_samples: int, num_views: int, present: float, *,
           fixed_width: bool) -> np.ndarray:
  """The shared core: an int mask `[N, V]` with a share `present` of ones, one kept per row."""
  if present <= 1 / num_views:
    return _one_hot(rng, num_samples, num_views, fixed_width=fixed_width)
  if present == 1:
    return np.ones((num_samples, num_views), np.int64)  # randint(1, 2) draws nothing
  entries = num_views * num_samples
  error = 1.0
  while error >= _TOLERANCE:
    kept = _one_hot(rng, num_samples, num_views, fixed_width=fixed_width)
    extra = entries * present - num_samples
    ratio = extra / entries
    draw = (rng.randint(0, 100, size=(num_samples, num_views)) < int(ratio * 100)).astype(
        np.int64)
    overlap = np.sum(((draw + kept) > 1).astype(np.int64))
    ratio = extra / (1 - overlap / extra) / entries
    draw = (rng.randint(0, 100, size=(num_samples, num_views)) < int(ratio * 100)).astype(
        np.int64)
    mask = ((draw + kept) > 0).astype(np.int64)
    error = abs(present - np.sum(mask) / entries)
  return mask


def legacy_mask(protocol: str, num_samples: int, num_views: int, rate: float, *,
                seed: int) -> np.ndarray:
  """The mask a published generator draws right after `np.random.seed(seed)`, bool `[N, V]`.

  Args:
    protocol: `'completer'`, `'dcp'` or `'cpm'` (see `PROTOCOLS` for what `rate` means).
    num_samples: N >= 1.
    num_views: V >= 2.
    rate: the protocol's missing rate: in `[0, 1]` for `'completer'` and `'dcp'`, in
      `[0, (V - 1) / V]` for `'cpm'` (at least one view per sample).
    seed: the `np.random.seed` argument, an integer in `[0, 2**32)`.

  Returns:
    numpy bool `[N, V]`, True = present; every row keeps at least one view.

  Raises:
    KeyError: an unknown protocol. TypeError: non-integer sizes or seed.
    ValueError: sizes or seed out of range, a rate outside the protocol's range or NaN, or too
      few samples for every view to be drawn once (where the original breaks).

  Example:
    >>> mask = legacy_mask('cpm', 1000, 3, 0.3, seed=0)
    >>> mask.shape, bool(mask.any(axis=1).all()), bool(abs(1 - mask.mean() - 0.3) < 0.005)
    ((1000, 3), True, True)
  """
  checks.lookup(PROTOCOLS, protocol, 'protocol')
  num_samples = checks.check_integer(num_samples, 'num_samples', minimum=1)
  num_views = checks.check_integer(num_views, 'num_views', minimum=2)
  seed = checks.check_integer(seed, 'seed', minimum=0)
  if seed >= 2**32:
    raise ValueError(f'seed must be < 2**32 (a numpy legacy seed); got {seed}.')
  high = (num_views - 1) / num_views if protocol == 'cpm' else 1.0
  checks.check_scalar(rate, 'rate', low=0, high=high)
  rate = float(rate)
  rng = np.random.RandomState(seed)
  if protocol == 'completer':
    mask = _mixed(rng, num_samples, num_views, 1.0 - rate / num_views, fixed_width=False)
  elif protocol == 'cpm':
    mask = _mixed(rng, num_samples, num_views, 1 - rate, fixed_width=True)
  else:
    complete = int(num_samples * (1 - rate))
    incomplete = num_samples - complete
    mask = np.ones((complete, num_views), np.int64)
    if incomplete:
      drawn = _mixed(rng, incomplete, num_views, 1.0 - 0.5, fixed_width=False)
      mask = np.concatenate([drawn, mask], axis=0)
    mask = mask[rng.choice(num_samples, size=num_samples, replace=False)]
  return mask.astype(bool)
