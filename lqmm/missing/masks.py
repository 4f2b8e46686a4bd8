"""Missing-modality protocols: presence masks drawn at a given rate.

**What "rate" means.** `rate` is the fraction of (sample, modality) entries that are missing:
`random_mask` removes exactly `round(rate * M * B)` of the `M * B` entries, chosen uniformly at
random among those that keep at least one modality per sample. Since every sample keeps one
modality, `rate` can be at most `(M - 1) / M`. This is the "missing rate" of the incomplete
multi-view literature (e.g. 30% per view in CDIMC-net's folds corresponds to `rate = 0.3`); it
differs from the fraction of *incomplete samples*, which is larger.

Masks are bool with True = present, laid out `[M, B]` for the fusion primitives; `as_dict` and
`stack_masks` convert to and from the `{name: bool [B]}` layout of batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from lqmm import _checks


def _check_rate(rate, num_modalities: int) -> None:
  if num_modalities < 1:
    raise ValueError(f'num_modalities must be >= 1; got {num_modalities}.')
  if _checks.is_concrete(rate):
    limit = (num_modalities - 1) / num_modalities
    if not 0 <= float(rate) <= limit + 1e-9:
      raise ValueError(
          f'rate must lie in [0, (M - 1) / M] = [0, {limit:.4g}] for M = {num_modalities} '
          'modalities (every sample keeps at least one); '
          f'got {rate!r}.')


def random_mask(num_modalities: int, num_samples: int, rate, *, key: jax.Array) -> jax.Array:
  """Draws a presence mask with exactly `round(rate * M * B)` missing entries.

  One modality per sample is drawn uniformly and protected; the missing entries are a uniform
  random subset of the remaining `(M - 1) * B` entries. `rate` may be traced (the count is
  computed with ranks, not a static top-k), so a sweep over rates does not retrace.

  Args:
    num_modalities: M (static).
    num_samples: B (static).
    rate: fraction of missing entries in `[0, (M - 1) / M]`.
    key: PRNG key.

  Returns:
    bool `[M, B]`, True = present; every column has at least one True.

  Raises:
    ValueError: a concrete `rate` outside `[0, (M - 1) / M]`, or M < 1.

  Example:
    >>> import jax
    >>> mask = random_mask(3, 4, 0.5, key=jax.random.key(0))
    >>> int((~mask).sum()), bool(mask.any(axis=0).all())
    (6, True)
  """
  if key is None:
    raise TypeError('key must be a PRNG key, e.g. jax.random.key(0); got None.')
  _check_rate(rate, num_modalities)
  keep_key, drop_key = jax.random.split(key)
  kept = jax.random.randint(keep_key, (num_samples,), 0, num_modalities)
  protected = jnp.arange(num_modalities)[:, None] == kept[None, :]
  scores = jax.random.uniform(drop_key, (num_modalities, num_samples))
  scores = jnp.where(protected, jnp.inf, scores).reshape(-1)
  rank = jnp.argsort(jnp.argsort(scores)).reshape(num_modalities, num_samples)
  num_missing = jnp.round(jnp.asarray(rate, jnp.float32) * num_modalities * num_samples)
  return rank >= num_missing.astype(rank.dtype)


def as_dict(mask: jax.Array, order: Sequence[str]) -> dict[str, jax.Array]:
  """Splits a `[M, ...]` mask into `{order[m]: mask[m]}`."""
  if jnp.shape(mask)[0] != len(order):
    raise ValueError(f'mask has {jnp.shape(mask)[0]} rows but order names {len(order)} '
                     f'modalities: {tuple(order)}.')
  return {name: mask[index] for index, name in enumerate(order)}


def stack_masks(masks: Mapping[str, jax.Array], order: Sequence[str]) -> jax.Array:
  """Stacks `{name: bool [...]}` into bool `[M, ...]` in the explicit `order`."""
  missing = [name for name in order if name not in masks]
  if missing:
    raise KeyError(f'masks has no modality {missing[0]!r}; it has {sorted(masks)}.')
  return jnp.stack([jnp.asarray(masks[name], bool) for name in order])


def apply_to_batch(batch: Mapping, rate, *, key: jax.Array, order: Sequence[str],
                   fill_value: float = 0.0) -> dict:
  """Makes modalities of a batch missing at `rate`, and-ing with the batch's existing mask.

  Missing inputs are overwritten with `fill_value`, so no information leaks through a value
  the model is told is absent.

  Args:
    batch: `{'inputs': {name: [B, ...]}, 'mask': {name: bool [B]}, ...}`.
    rate: fraction of missing entries, see `random_mask`.
    key: PRNG key.
    order: the modality names (all must be in `batch['inputs']`).
    fill_value: the value written into missing inputs.

  Returns:
    A new batch dict with updated `'inputs'` and `'mask'`; other keys are passed through.
  """
  inputs = batch['inputs']
  unknown = [name for name in order if name not in inputs]
  if unknown:
    raise KeyError(f'Unknown modality {unknown[0]!r} in order; batch has {sorted(inputs)}.')
  num_samples = jnp.shape(inputs[order[0]])[0]
  drawn = as_dict(random_mask(len(order), num_samples, rate, key=key), order)
  old = batch.get('mask', {})
  mask = {name: drawn[name] & jnp.asarray(old.get(name, True), bool) for name in order}
  new_inputs = dict(inputs)
  for name in order:
    x = inputs[name]
    present = mask[name].reshape((num_samples,) + (1,) * (jnp.ndim(x) - 1))
    new_inputs[name] = jnp.where(present, x, jnp.asarray(fill_value, x.dtype))
  return {**batch, 'inputs': new_inputs, 'mask': {**old, **mask}}
