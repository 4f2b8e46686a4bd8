"""Sample-level modality valuation (Shapley values) and re-sampling that enhances weak modalities.

**Subsets.** A subset S of the M modalities is indexed by its bitmask `s = sum_{m in S} 2^m`:
row `s` of `subset_masks(M)` has modality m present iff bit m of `s` is set. Row 0 is the empty
set and row `2^M - 1` the full set; for M = 2 the rows are `{}, {0}, {1}, {0, 1}`. Every function
here takes per-subset inputs stacked in this order on axis 0.

**Shapley values.** For a value function `v` given on every subset (per sample),

    phi_m = sum_{S not containing m} |S|! (M - |S| - 1)! / M! * (v(S + {m}) - v(S)),

computed for all samples at once as one `[M, 2^M]` matrix product. They satisfy efficiency
(`sum_m phi_m = v(all) - v({})`), symmetry and the null-player property.

**The original's value function.** Wei et al. evaluate the trained fusion model on each subset by
zeroing the absent modalities' features at the fusion head, and score a subset by whether its
prediction (argmax) is correct. The code scores a correct full prediction 2 and a correct
uni-modal one 1 (M = 2), i.e. `v(S) = |S| * 1[argmax = y]` with `v({}) = 0`, which
`correctness_values` computes (`size_weighted=False` gives the plain 0/1 correctness that
GeWu-Lab/BalanceBenchmark's M-modal port uses). For M = 2 the contributions take the values
`{-0.5, 0, 0.5, 1, 1.5}`.

**Sample-level re-sampling.** After each epoch (from the end of warm-up), every training sample is
appended again `r_m` times for every modality m whose contribution is low, and in those copies only
modality m is kept (the others are zeroed at the fusion input), so the copies train modality m:

    r_m = 3 if phi_m < -0.1,  2 if -0.1 <= phi_m < 0.4,  1 if 0.4 <= phi_m < 1,  0 otherwise.

The original tests open intervals (`0.4 < phi < 1` etc.), so a contribution exactly at a threshold
gets no copy; `faithful=True` reproduces that. With the default value function both agree (of its
contributions only 1.0 sits on a threshold, and it gets no copy either way). `expand_sample_level`
lays the copies out in the original's order: the B originals, then for each sample its copies
modality by modality.

**Modality-level re-sampling** (M = 2). The mean contributions `c_m` (estimated on a random
`part_ratio` fraction of the training set drawn with replacement) give gaps `g_m = 1 - c_m` and a
discrepancy `d = alpha * |g_0 - g_1| * 2 / 3` (`func='linear'`; `'tanh'` applies `tanh`,
`'square'` uses `alpha * (|g_0 - g_1| * 2 / 3)^1.5`). `floor(d * N)` samples drawn uniformly with
replacement are appended with only the weaker modality (larger gap; modality 1 on a tie) kept.

References:
  Wei, Feng, Wang, Hu. "Enhancing Multimodal Cooperation via Sample-level Modality Valuation."
    CVPR 2024.
  Shapley. "A Value for n-person Games." Contributions to the Theory of Games II, 1953.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks

#: Default contribution thresholds of the sample-level method (3, 2, 1 copies below each).
SAMPLE_LEVEL_THRESHOLDS = (-0.1, 0.4, 1.0)
_MAX_MODALITIES = 16


class Resampled(NamedTuple):
  """A re-sampled training set: row j is sample `indices[j]` with modalities `mask[:, j]`.

  Attributes:
    indices: int32 `[N]` indices into the original training set.
    mask: bool `[M, N]` modalities kept in each row (all for the originals, one for a copy).
    valid: bool `[N]` False for padding rows (only when a static `total_size` was requested).
  """
  indices: jax.Array
  mask: jax.Array
  valid: jax.Array


def _check_num_modalities(num_modalities: int) -> None:
  if not 1 <= num_modalities <= _MAX_MODALITIES:
    raise ValueError(f'num_modalities must lie in [1, {_MAX_MODALITIES}]; got {num_modalities}.')


@functools.lru_cache(maxsize=None)
def _subset_masks_numpy(num_modalities: int) -> np.ndarray:
  subsets = np.arange(2**num_modalities)[:, None]
  masks = (subsets >> np.arange(num_modalities)[None, :]) & 1 == 1
  masks.setflags(write=False)  # cached: shared by every caller
  return masks


def subset_masks(num_modalities: int) -> jax.Array:
  """Presence masks of all `2^M` modality subsets in bitmask order, bool `[2^M, M]`.

  Args:
    num_modalities: M, in `[1, 16]`.

  Returns:
    bool `[2^M, M]`; row `s` holds modality m iff bit m of `s` is set.

  Raises:
    ValueError: M outside `[1, 16]`.

  Example:
    >>> subset_masks(2).astype(int).tolist()
    [[0, 0], [1, 0], [0, 1], [1, 1]]
  """
  _check_num_modalities(num_modalities)
  return jnp.asarray(_subset_masks_numpy(num_modalities))


@functools.lru_cache(maxsize=None)
def _shapley_matrix(num_modalities: int) -> np.ndarray:
  """`W [M, 2^M]` with `phi = W @ v`."""
  masks = _subset_masks_numpy(num_modalities)
  sizes = masks.sum(axis=1)
  factorial = math.factorial
  matrix = np.zeros((num_modalities, 2**num_modalities))
  for modality in range(num_modalities):
    for subset in range(2**num_modalities):
      if masks[subset, modality]:
        continue
      size = sizes[subset]
      weight = factorial(size) * factorial(num_modalities - size - 1) / factorial(num_modalities)
      matrix[modality, subset | (1 << modality)] += weight
      matrix[modality, subset] -= weight
  matrix.setflags(write=False)  # cached: shared by every caller
  return matrix


def _num_modalities_from_subsets(count: int, name: str) -> int:
  num_modalities = count.bit_length() - 1
  if count < 2 or 2**num_modalities != count or num_modalities > _MAX_MODALITIES:
    raise ValueError(f'{name} must have 2^M rows (one per modality subset, bitmask order) with '
                     f'1 <= M <= {_MAX_MODALITIES}; got {count} rows.')
  return num_modalities


def shapley_values(subset_values: jax.Array) -> jax.Array:
  """Exact Shapley value of every modality for every sample, `[M, ...]`.

  Args:
    subset_values: `[2^M, ...]` the value of each modality subset (bitmask order, row 0 = the
      empty set) for each sample.

  Returns:
    `[M, ...]` Shapley values; they sum over M to `v(all) - v({})`.

  Raises:
    ValueError: the number of rows is not a power of two `>= 2`.

  Example:
    >>> import jax.numpy as jnp
    >>> # v({}) = 0, v({0}) = 1, v({1}) = 0, v({0, 1}) = 2 (the original's scores).
    >>> shapley_values(jnp.array([0.0, 1.0, 0.0, 2.0]))
    Array([1.5, 0.5], dtype=float32)
  """
  checks.check_rank_at_least(subset_values, 1, 'subset_values', '[2^M, ...]')
  checks.check_floating(subset_values, 'subset_values')
  num_modalities = _num_modalities_from_subsets(jnp.shape(subset_values)[0], 'subset_values')
  values = checks.upcast(subset_values)
  matrix = jnp.asarray(_shapley_matrix(num_modalities), values.dtype)
  return jnp.tensordot(matrix, values, axes=1, precision=jax.lax.Precision.HIGHEST)


def correctness_values(subset_logits: jax.Array, labels: jax.Array, *,
                       size_weighted: bool = True, dtype=jnp.float32) -> jax.Array:
  """The original's value function `v(S) = |S| * 1[argmax_k logits_S = y]`, `[2^M, ...]`.

  Args:
    subset_logits: `[2^M, ..., K]` logits (or probabilities) of the model evaluated on each subset
      (bitmask order); row 0 (the empty set) is ignored and may hold anything.
    labels: int `[...]` class indices.
    size_weighted: multiply the correctness by `|S|` (the original); False gives 0/1 correctness.
    dtype: the floating dtype of the result.

  Returns:
    `[2^M, ...]` values, 0 for the empty set.

  Raises:
    ValueError: the subset count is not a power of two or the label shape does not match.

  Example:
    >>> import jax.numpy as jnp
    >>> logits = jnp.array([[[0.0, 0.0]], [[2.0, 0.0]], [[0.0, 2.0]], [[1.0, 0.0]]])
    >>> correctness_values(logits, jnp.array([0]))[:, 0]
    Array([0., 1., 0., 2.], dtype=float32)
  """
  checks.check_rank_at_least(subset_logits, 2, 'subset_logits', '[2^M, ..., K]')
  num_modalities = _num_modalities_from_subsets(jnp.shape(subset_logits)[0], 'subset_logits')
  checks.check_labels(labels, jnp.shape(subset_logits)[-1], jnp.shape(subset_logits)[1:-1])
  correct = jnp.argmax(subset_logits, axis=-1) == labels[None]
  sizes = _subset_masks_numpy(num_modalities).sum(axis=1)
  if not size_weighted:
    sizes = np.minimum(sizes, 1)
  sizes = jnp.asarray(sizes, dtype).reshape((-1,) + (1,) * (jnp.ndim(subset_logits) - 2))
  return jnp.where(correct, sizes, jnp.zeros((), dtype))


def lowest_contributor(contributions: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Index of the modality with the lowest contribution per sample, int32 `[...]`.

  Args:
    contributions: `[M, ...]` e.g. Shapley values.
    mask: optional bool `[M, ...]`; missing modalities are never chosen (a sample with none
      returns 0). Ties go to the lowest index.

  Returns:
    int32 `[...]`.

  Raises:
    ValueError: `mask` does not have the shape of `contributions`.
    TypeError: `mask` is not bool, or `contributions` is neither floating nor integer.

  Example:
    >>> import jax.numpy as jnp
    >>> lowest_contributor(jnp.array([[1.5, 0.0], [0.5, 1.0]])).tolist()
    [1, 0]
  """
  checks.check_rank_at_least(contributions, 1, 'contributions', '[M, ...]')
  contributions = jnp.asarray(contributions)
  if mask is not None:
    checks.check_mask(mask, jnp.shape(contributions))
    dtype = contributions.dtype
    if jnp.issubdtype(dtype, jnp.floating):
      fill = jnp.asarray(jnp.inf, dtype)
    elif jnp.issubdtype(dtype, jnp.integer):
      fill = jnp.asarray(jnp.iinfo(dtype).max, dtype)
    else:
      raise TypeError(f'contributions must be a floating or integer array; got dtype {dtype}.')
    contributions = jnp.where(mask, contributions, fill)
  return jnp.argmin(contributions, axis=0).astype(jnp.int32)


def sample_level_repeats(contributions: jax.Array, *,
                         thresholds: tuple[float, ...] = SAMPLE_LEVEL_THRESHOLDS,
                         faithful: bool = False) -> jax.Array:
  """Number of enhancement copies of each sample for each modality, int32 `[M, B]`.

  With thresholds `t_1 < ... < t_L`, a contribution below `t_1` gets L copies, one in
  `[t_l, t_{l+1})` gets `L - l`, and one at or above `t_L` none (3, 2, 1, 0 by default).

  Args:
    contributions: `[M, B]` per-sample contributions (`shapley_values`).
    thresholds: increasing thresholds (the original's `(-0.1, 0.4, 1.0)`).
    faithful: a contribution exactly equal to a threshold gets no copy, as in the original's
      open-interval tests.

  Returns:
    int32 `[M, B]`.

  Raises:
    ValueError: `thresholds` empty or not increasing, or `contributions` not 2-D.

  Example:
    >>> import jax.numpy as jnp
    >>> sample_level_repeats(jnp.array([[-0.5, 0.0, 0.5, 1.0, 1.5]])).tolist()
    [[3, 2, 1, 0, 0]]
  """
  if jnp.ndim(contributions) != 2:
    raise ValueError(f'contributions must have shape [M, B]; got shape {jnp.shape(contributions)}.')
  checks.check_floating(contributions, 'contributions')
  limits = np.asarray(thresholds, dtype=np.float64)
  if limits.ndim != 1 or not limits.size or np.any(np.diff(limits) <= 0):
    raise ValueError(f'thresholds must be a non-empty increasing sequence; got {thresholds!r}.')
  values = checks.upcast(contributions)
  limits = jnp.asarray(limits, values.dtype).reshape((1, 1, -1))
  repeats = jnp.sum(values[..., None] < limits, axis=-1).astype(jnp.int32)
  if faithful:
    repeats = jnp.where(jnp.any(values[..., None] == limits, axis=-1), 0, repeats)
  return repeats


def expand_sample_level(repeats: jax.Array, *, total_size: int | None = None) -> Resampled:
  """Lays out the re-sampled training set of the sample-level method.

  Rows `0..B-1` are the original samples with every modality; then, for each sample i in order
  and each modality m in order, `repeats[m, i]` copies of sample i keeping only modality m.

  Args:
    repeats: int `[M, B]` copies per modality and sample (`sample_level_repeats`).
    total_size: static number of rows. Required under `jax.jit`; rows past
      `B + sum(repeats)` are padding (`valid` False, index 0, nothing kept), and copies past
      `total_size` are cut. Defaults to the exact size (needs concrete `repeats`).

  Returns:
    `Resampled(indices [N], mask [M, N], valid [N])`.

  Raises:
    ValueError: `repeats` not 2-D integer with B >= 1, `total_size` missing for traced `repeats`,
      or `total_size < B`.

  Example:
    >>> import jax.numpy as jnp
    >>> out = expand_sample_level(jnp.array([[1, 0], [0, 2]]))
    >>> out.indices.tolist(), out.mask.astype(int).tolist()
    ([0, 1, 0, 1, 1], [[1, 1, 1, 0, 0], [1, 1, 0, 1, 1]])
  """
  if jnp.ndim(repeats) != 2 or not jnp.issubdtype(jnp.result_type(repeats), jnp.integer):
    raise ValueError(f'repeats must be an integer array [M, B]; got shape {jnp.shape(repeats)} '
                     f'and dtype {jnp.result_type(repeats)}.')
  num_modalities, num_samples = jnp.shape(repeats)
  if num_modalities < 1 or num_samples < 1:
    raise ValueError(f'repeats must have M >= 1 modalities and B >= 1 samples; got shape '
                     f'{jnp.shape(repeats)}.')
  if total_size is not None and int(total_size) < num_samples:
    raise ValueError(f'total_size must be at least B = {num_samples} (the originals come first); '
                     f'got {total_size}.')
  if total_size is None:
    if not checks.is_concrete(repeats):
      raise ValueError('total_size must be given when repeats is traced (under jax.jit).')
    total_size = num_samples + int(np.sum(np.maximum(np.asarray(repeats), 0)))
  return _expand_sample_level(jnp.asarray(repeats, jnp.int32), int(total_size))


@functools.partial(jax.jit, static_argnums=1)
def _expand_sample_level(repeats: jax.Array, total_size: int) -> Resampled:
  num_modalities, num_samples = jnp.shape(repeats)
  flat = jnp.maximum(jnp.asarray(repeats, jnp.int32).T.reshape(-1), 0)  # order: (sample, modality)
  ends = jnp.cumsum(flat)
  positions = jnp.arange(total_size, dtype=jnp.int32) - num_samples
  slot = jnp.searchsorted(ends, positions, side='right').astype(jnp.int32)
  is_copy = (positions >= 0) & (positions < ends[-1])
  is_original = positions < 0
  copy_sample = jnp.minimum(slot, flat.shape[0] - 1) // num_modalities
  copy_modality = jnp.minimum(slot, flat.shape[0] - 1) % num_modalities
  indices = jnp.where(is_original, jnp.arange(total_size, dtype=jnp.int32),
                      jnp.where(is_copy, copy_sample, 0)).astype(jnp.int32)
  modality_ids = jnp.arange(num_modalities, dtype=jnp.int32)[:, None]
  mask = is_original[None, :] | (is_copy[None, :] & (modality_ids == copy_modality[None, :]))
  return Resampled(indices, mask, is_original | is_copy)


_DISCREPANCY = {
    'linear': lambda gap, alpha: gap * 2 / 3 * alpha,
    'tanh': lambda gap, alpha: jnp.tanh(gap * 2 / 3 * alpha),
    'square': lambda gap, alpha: (gap * 2 / 3)**1.5 * alpha,
}


def modality_level_discrepancy(mean_contributions: jax.Array, *, alpha: float = 1.0,
                               func: str = 'linear') -> tuple[jax.Array, jax.Array]:
  """Fraction of the training set to re-sample and the modality to enhance (M = 2).

  Args:
    mean_contributions: `[2]` mean contributions of the two modalities (over a random part of
      the training set).
    alpha: the re-sampling strength (the original's `--alpha`, 1 by default).
    func: `'linear'`, `'tanh'` or `'square'`.

  Returns:
    `(fraction, modality)`: the re-sampled count is `floor(fraction * N)`; `modality` (int32) is
    the one with the larger gap `1 - c_m` (1 on a tie).

  Raises:
    ValueError: `mean_contributions` does not have shape `[2]`. KeyError: unknown `func`.

  Example:
    >>> import jax.numpy as jnp
    >>> fraction, modality = modality_level_discrepancy(jnp.array([1.0, 0.25]))
    >>> round(float(fraction), 4), int(modality)
    (0.5, 1)
  """
  if jnp.shape(mean_contributions) != (2,):
    raise ValueError('mean_contributions must have shape [2] (the modality-level method is '
                     f'bimodal); got shape {jnp.shape(mean_contributions)}.')
  checks.check_floating(mean_contributions, 'mean_contributions')
  discrepancy = checks.lookup(_DISCREPANCY, func, 'func')
  gaps = 1 - checks.upcast(mean_contributions)
  fraction = discrepancy(jnp.abs(gaps[0] - gaps[1]), alpha)
  modality = jnp.where(gaps[0] > gaps[1], 0, 1).astype(jnp.int32)
  return fraction, modality


def modality_level_resample(contributions: jax.Array, *, key: jax.Array, alpha: float = 1.0,
                            part_ratio: float = 0.2, func: str = 'linear') -> Resampled:
  """The modality-level method's re-sampled training set (M = 2, eager only).

  Estimates the mean contributions on `int(part_ratio * N)` samples drawn with replacement, then
  appends `floor(fraction * N)` samples drawn uniformly with replacement, keeping only the weaker
  modality (`modality_level_discrepancy`).

  Args:
    contributions: `[2, N]` per-sample contributions on the training set.
    key: typed PRNG key.
    alpha: re-sampling strength.
    part_ratio: fraction of the training set used to estimate the mean contributions.
    func: `'linear'`, `'tanh'` or `'square'`.

  Returns:
    `Resampled` with `N + floor(fraction * N)` rows (all valid).

  Raises:
    ValueError: `contributions` is not `[2, N]` or traced, or `part_ratio` not in `(0, 1]`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> contributions = jnp.array([[1.5] * 10, [0.5] * 10])
    >>> out = modality_level_resample(contributions, key=jax.random.key(0))
    >>> out.indices.shape, out.mask[:, 10:].astype(int).tolist()
    ((16,), [[0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
  """
  if jnp.ndim(contributions) != 2 or jnp.shape(contributions)[0] != 2:
    raise ValueError(f'contributions must have shape [2, N]; got shape {jnp.shape(contributions)}.')
  if not checks.is_concrete(contributions):
    raise ValueError('modality_level_resample draws a data-dependent number of rows and runs '
                     'eagerly; contributions must be concrete.')
  if not 0 < part_ratio <= 1:
    raise ValueError(f'part_ratio must lie in (0, 1]; got {part_ratio!r}.')
  num_samples = jnp.shape(contributions)[1]
  checks.check_key(key)
  part_key, draw_key = jax.random.split(key)
  part_size = max(int(num_samples * part_ratio), 1)
  part = jax.random.randint(part_key, (part_size,), 0, num_samples)
  fraction, modality = modality_level_discrepancy(jnp.mean(contributions[:, part], axis=1),
                                                  alpha=alpha, func=func)
  count = int(float(fraction) * num_samples)
  extra = jax.random.randint(draw_key, (count,), 0, num_samples).astype(jnp.int32)
  indices = jnp.concatenate([jnp.arange(num_samples, dtype=jnp.int32), extra])
  copies = jnp.broadcast_to(jnp.arange(2)[:, None] == modality, (2, count))
  mask = jnp.concatenate([jnp.ones((2, num_samples), bool), copies], axis=1)
  return Resampled(indices, mask, jnp.ones((num_samples + count,), bool))
