"""Missing-modality protocols: presence masks drawn at a given rate.

**What "rate" means.** `rate` is the fraction of (sample, modality) entries that are missing:
`random_mask` removes exactly `round(rate * M * B)` of the `M * B` entries. It first protects
one uniformly chosen modality per sample, then removes a uniform random subset of the other
entries, so every sample keeps at least one modality and `rate` can be at most `(M - 1) / M`.
(Masks with many missing entries in one sample are slightly less likely than under a uniform
draw over all valid masks; the count and the per-modality rates are exact in expectation.) This
is the "missing rate" of the incomplete multi-view literature (e.g. 30% per view in CDIMC-net's
folds corresponds to `rate = 0.3`); it differs from the fraction of *incomplete samples*, which
is larger.

Masks are bool with True = present, laid out `[M, B]` for the fusion primitives; `as_dict` and
`stack_masks` convert to and from the `{name: bool [B]}` layout of batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from lqmm import checks
from lqmm.fusion import base as fusion_base

__all__ = ['apply_to_batch', 'as_dict', 'random_mask', 'stack_masks']


def _check_rate(rate, num_modalities: int) -> None:
  if num_modalities < 1:
    raise ValueError(f'num_modalities must be >= 1; got {num_modalities}.')
  if checks.is_concrete(rate):
    limit = (num_modalities - 1) / num_modalities
    if not 0 <= float(rate) <= limit + 1e-9:
      raise ValueError(
          f'rate must lie in [0, (M - 1) / M] = [0, {limit:.4g}] for M = {num_modalities} '
          'modalities (every sample keeps at least one); '
          f'got {rate!r}.')


def random_mask(num_modalities: int, num_samples: int, rate, *, key: jax.Array,
                available: jax.Array | None = None) -> jax.Array:
  """Draws a presence mask with exactly `round(rate * M * B)` missing entries.

  One modality per sample is drawn uniformly and protected; the missing entries are a uniform
  random subset of the remaining entries. `rate` may be traced (the count is computed with
  ranks, not a static top-k), so a sweep over rates does not retrace.

  With `available` (data that is already incomplete), only available entries are counted and
  removed: exactly `round(rate * n_available)` of them, never the last available modality of a
  sample; the result is a subset of `available`.

  Args:
    num_modalities: M (static).
    num_samples: B (static).
    rate: fraction of missing entries in `[0, (M - 1) / M]`. A traced rate outside the range
      is clipped: at most every unprotected entry is removed.
    key: PRNG key.
    available: optional bool `[M, B]` of entries that exist; every sample needs at least one.

  Returns:
    bool `[M, B]`, True = present; every column has at least one True.

  Raises:
    ValueError: a concrete `rate` outside `[0, (M - 1) / M]`, M < 1, a negative `num_samples`,
      `available` of the wrong shape, or a concrete `available` with a sample that has no
      modality.

  Example:
    >>> import jax
    >>> mask = random_mask(3, 4, 0.5, key=jax.random.key(0))
    >>> int((~mask).sum()), bool(mask.any(axis=0).all())
    (6, True)
  """
  if key is None:
    raise TypeError('key must be a PRNG key, e.g. jax.random.key(0); got None.')
  _check_rate(rate, num_modalities)
  if num_samples < 0:
    raise ValueError(f'num_samples must be >= 0; got {num_samples}.')
  shape = (num_modalities, num_samples)
  if available is None:
    available = jnp.ones(shape, bool)
  else:
    checks.check_mask(available, shape, 'available')
    if checks.is_concrete(available) and not bool(jnp.all(jnp.any(available, axis=0))):
      empty = int(jnp.argmin(jnp.any(available, axis=0)))
      raise ValueError(f'available must keep at least one modality per sample; sample {empty} '
                       'has none.')
  keep_key, drop_key = jax.random.split(key)
  # Protect one available modality per sample: the available entry with the largest score.
  keep_scores = jnp.where(available, jax.random.uniform(keep_key, shape), -1.0)
  protected = jnp.arange(num_modalities)[:, None] == jnp.argmax(keep_scores, axis=0)[None, :]
  droppable = available & ~protected
  scores = jnp.where(droppable, jax.random.uniform(drop_key, shape), jnp.inf).reshape(-1)
  rank = jnp.argsort(jnp.argsort(scores)).reshape(shape)
  total = jnp.sum(available).astype(jnp.float32)
  num_missing = jnp.round(jnp.asarray(rate, jnp.float32) * total)
  num_missing = jnp.clip(num_missing, 0, jnp.sum(droppable).astype(jnp.float32))
  num_missing = num_missing.astype(rank.dtype)
  return available & (rank >= num_missing)


def as_dict(mask: jax.Array, order: Sequence[str]) -> dict[str, jax.Array]:
  """Splits a `[M, ...]` mask into `{order[m]: mask[m]}`.

  Raises:
    ValueError: `mask` has no dimension or its number of rows differs from `len(order)`.
    TypeError: `mask` is not a bool array.
  """
  checks.check_rank_at_least(mask, 1, 'mask', '[M, ...]')
  checks.check_mask(mask, jnp.shape(mask), 'mask')
  if jnp.shape(mask)[0] != len(order):
    raise ValueError(f'mask has {jnp.shape(mask)[0]} rows but order names {len(order)} '
                     f'modalities: {tuple(order)}.')
  return {name: mask[index] for index, name in enumerate(order)}


def stack_masks(masks: Mapping[str, jax.Array], order: Sequence[str]) -> jax.Array:
  """Stacks `{name: bool [...]}` into bool `[M, ...]` in the explicit `order` (the inverse of
  `as_dict`; `lqmm.fusion.stack_modalities` for masks).

  Raises:
    KeyError: a name in `order` is not in `masks`.
    ValueError: `order` is empty or two masks' shapes differ.
    TypeError: a mask is not bool (Python bools and nested lists of them are fine).
  """
  masks = {name: jnp.asarray(value) for name, value in masks.items()}
  for name in order:
    if name in masks:
      checks.check_mask(masks[name], jnp.shape(masks[name]), f'masks[{name!r}]')
  present = [name for name in order if name in masks]
  for name in present[1:]:
    if jnp.shape(masks[name]) != jnp.shape(masks[present[0]]):
      raise ValueError(f'masks[{name!r}] has shape {jnp.shape(masks[name])} but '
                       f'masks[{present[0]!r}] has shape {jnp.shape(masks[present[0]])}; every '
                       'mask must have the same shape to stack.')
  return fusion_base.stack_modalities(masks, order, 'masks')


def apply_to_batch(batch: Mapping, rate, *, key: jax.Array, order: Sequence[str],
                   fill_value: float = 0.0) -> dict:
  """Makes modalities of a batch missing at `rate`, on top of the batch's own mask.

  Entries the batch already marks missing stay missing and are not counted; `rate` applies to
  the present entries (see `random_mask`'s `available`), and every sample keeps at least one
  modality. Missing inputs are overwritten with `fill_value`, so no information leaks through
  a value the model is told is absent.

  Args:
    batch: `{'inputs': {name: [B, ...]}, 'mask': {name: bool [B]}, ...}` (`'mask'` optional).
    rate: fraction of the present entries to remove, see `random_mask`.
    key: PRNG key.
    order: the modality names (all must be in `batch['inputs']`).
    fill_value: the value written into missing inputs.

  Returns:
    A new batch dict with updated `'inputs'` and `'mask'`; other keys are passed through.

  Input values are not checked: NaN or infinite inputs pass through (or are overwritten where
  the entry becomes missing); they are the model's to check.

  Raises:
    KeyError: a name in `order` is not in the batch.
    ValueError: an input has no batch axis, the inputs' batch sizes differ, a mask is not `[B]`
      of that batch size, or see `random_mask`.
    TypeError: a mask of the batch is not bool.
  """
  inputs = batch['inputs']
  unknown = [name for name in order if name not in inputs]
  if unknown:
    raise KeyError(f'Unknown modality {unknown[0]!r} in order; batch has {sorted(inputs)}.')
  for name in order:
    checks.check_rank_at_least(inputs[name], 1, f'inputs[{name!r}]', '[B, ...]')
  num_samples = jnp.shape(inputs[order[0]])[0]
  for name in order[1:]:
    if jnp.shape(inputs[name])[0] != num_samples:
      raise ValueError(f'inputs[{name!r}] has batch size {jnp.shape(inputs[name])[0]} but '
                       f'inputs[{order[0]!r}] has {num_samples}; every input needs the same '
                       'batch size B (first axis).')
  old = batch.get('mask', {})
  for name in order:
    if name in old:
      value = jnp.asarray(old[name])
      checks.check_mask(value, jnp.shape(value), f"batch['mask'][{name!r}]")
      if jnp.shape(value) not in ((), (num_samples,)):
        raise ValueError(f"batch['mask'][{name!r}] must have shape [B] = ({num_samples},), the "
                         f"batch size of inputs; got shape {jnp.shape(value)}.")
  available = jnp.stack([jnp.broadcast_to(jnp.asarray(old.get(name, True), bool), (num_samples,))
                         for name in order])
  mask = as_dict(random_mask(len(order), num_samples, rate, key=key, available=available), order)
  new_inputs = dict(inputs)
  for name in order:
    x = inputs[name]
    present = mask[name].reshape((num_samples,) + (1,) * (jnp.ndim(x) - 1))
    new_inputs[name] = jnp.where(present, x, jnp.asarray(fill_value, x.dtype))
  return {**batch, 'inputs': new_inputs, 'mask': {**old, **mask}}
