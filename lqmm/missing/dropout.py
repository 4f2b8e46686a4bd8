"""Modality dropout (whole modalities per sample) and pathway dropout (a fusion layer's inputs).

**Modality dropout** turns a presence mask into a sparser one: every present (modality, sample)
entry is dropped independently with probability `rate` (a scalar or one rate per modality). With
`keep_at_least_one=True`, a sample whose present modalities were all dropped gets one of them back,
chosen uniformly among its present modalities. For a sample with `n` present modalities and rates
`p_j`, the marginal probability that present modality m is dropped is therefore

    P(drop m) = p_m - (prod_j p_j) / n        (= p - p^n / n for a common rate p),

slightly below `rate`; `rate = 1` keeps exactly one modality per sample, uniformly chosen. Entries
that are already missing stay missing, and a sample with no present modality stays empty.

**Pathway dropout** drops a modality's *contribution* to a fusion layer (e.g. its projected
features before they are summed or concatenated) during training and rescales the survivors by
`1 / (1 - rate)`, so the expected fused input is unchanged; at evaluation it is the identity.

Both draw all their randomness in one call (one compiled generator, see `lqmm.sampling`) and take
a keyword-only typed key (`jax.random.key(seed)`).

References:
  Neverova, Wolf, Taylor, Nebout. "ModDrop: Adaptive Multi-modal Gesture Recognition." TPAMI 2016.
  Srivastava, Hinton, Krizhevsky, Sutskever, Salakhutdinov. "Dropout: A Simple Way to Prevent
    Neural Networks from Overfitting." JMLR 2014.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks

__all__ = ['modality_dropout', 'pathway_dropout']


def _check_rate(rate, num_modalities: int, name: str, *, upper_open: bool) -> jax.Array:
  rate = jnp.asarray(rate)
  if jnp.ndim(rate) not in (0, 1) or (jnp.ndim(rate) == 1 and jnp.shape(rate)[0] != num_modalities):
    raise ValueError(f'{name} must be a scalar or have shape [M] = ({num_modalities},); got shape '
                     f'{jnp.shape(rate)}.')
  if checks.is_concrete(rate):
    values = np.asarray(rate, dtype=np.float64)
    high_ok = np.all(values < 1) if upper_open else np.all(values <= 1)
    if not (np.all(values >= 0) and high_ok):
      interval = '[0, 1)' if upper_open else '[0, 1]'
      raise ValueError(f'{name} must lie in {interval}; got {rate!r}.')
  return rate


def modality_dropout(mask_or_shape: jax.Array | Sequence[int], *, rate, key: jax.Array,
                     keep_at_least_one: bool = True) -> jax.Array:
  """Drops whole modalities per sample, `bool [M, B]` (True = present).

  Args:
    mask_or_shape: a bool presence mask `[M, B]` (only present entries can be dropped) or the
      shape `(M, B)` of an all-present mask.
    rate: drop probability in `[0, 1]`, a scalar or `[M]` (one per modality); may be traced.
    key: typed PRNG key.
    keep_at_least_one: give a sample whose present modalities were all dropped one of them back
      (uniformly chosen); see the module docstring for the resulting marginal rate.

  Returns:
    bool `[M, B]`, a subset of the input mask.

  Raises:
    ValueError: a concrete `rate` outside `[0, 1]`, a rate of the wrong shape, or a mask/shape
      that is not 2-D. TypeError: `key` is not a typed PRNG key.

  Example:
    >>> import jax
    >>> mask = modality_dropout((3, 1000), rate=0.5, key=jax.random.key(0))
    >>> mask.shape, bool(mask.any(axis=0).all())
    ((3, 1000), True)
  """
  checks.check_key(key)
  if hasattr(mask_or_shape, 'dtype'):
    mask = mask_or_shape
    if jnp.ndim(mask) != 2:
      raise ValueError(f'mask_or_shape must be a bool mask [M, B] or a shape (M, B); got an array '
                       f'of shape {jnp.shape(mask)}.')
    checks.check_mask(mask, jnp.shape(mask), 'mask_or_shape')
  else:
    shape = tuple(int(size) for size in mask_or_shape)
    if len(shape) != 2 or min(shape) < 1:
      raise ValueError(f'mask_or_shape must be a bool mask [M, B] or a shape (M, B) with M, B >= '
                       f'1; got {tuple(mask_or_shape)}.')
    mask = jnp.ones(shape, bool)
  rate = _check_rate(rate, jnp.shape(mask)[0], 'rate', upper_open=False)
  return _modality_dropout(mask, jnp.asarray(rate, jnp.float32), key, keep_at_least_one)


@functools.partial(jax.jit, static_argnums=3)
def _modality_dropout(mask: jax.Array, rate: jax.Array, key: jax.Array,
                      keep_at_least_one: bool) -> jax.Array:
  num_modalities = jnp.shape(mask)[0]
  if jnp.ndim(rate) == 1:
    rate = rate[:, None]
  draws = jax.random.uniform(key, (2,) + jnp.shape(mask))
  kept = mask & (draws[0] >= rate)
  if not keep_at_least_one:
    return kept
  # Re-enable the present modality with the largest score where everything present was dropped.
  scores = jnp.where(mask, draws[1], -1.0)
  chosen = jnp.arange(num_modalities)[:, None] == jnp.argmax(scores, axis=0)[None, :]
  emptied = jnp.any(mask, axis=0) & ~jnp.any(kept, axis=0)
  return kept | (chosen & mask & emptied[None, :])


def pathway_dropout(contributions: jax.Array, *, rate, key: jax.Array | None,
                    deterministic: bool = False) -> jax.Array:
  """Drops each modality's contribution to a fusion layer per sample, with `1 / (1 - rate)` rescale.

  Args:
    contributions: `[M, B, ...]` per-modality inputs of a fusion layer.
    rate: drop probability in `[0, 1)`, a scalar or `[M]`.
    key: typed PRNG key (may be None when `deterministic`).
    deterministic: evaluation mode: return `contributions` unchanged.

  Returns:
    `[M, B, ...]` with dropped (modality, sample) slices zeroed and the rest divided by
    `1 - rate`; the expectation over the draw equals `contributions`.

  Raises:
    ValueError: a concrete `rate` outside `[0, 1)` or of the wrong shape; `contributions` of rank
      below 2 or (concrete) holding NaN or infinity (a dropped NaN would stay NaN, as
      `0 * NaN` is NaN). TypeError: `contributions` is not floating-point, or `key` is not a
      typed PRNG key in training mode.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> out = pathway_dropout(jnp.ones((2, 4, 3)), rate=0.5, key=jax.random.key(0))
    >>> sorted(set(out.ravel().tolist())) in ([0.0, 2.0], [2.0], [0.0])
    True
  """
  checks.check_rank_at_least(contributions, 2, 'contributions', '[M, B, ...]')
  checks.check_floating(contributions, 'contributions')
  checks.check_finite(contributions, 'contributions')
  num_modalities = jnp.shape(contributions)[0]
  rate = _check_rate(rate, num_modalities, 'rate', upper_open=True)
  if deterministic:
    return contributions
  checks.check_key(key)
  return _pathway_dropout(contributions, jnp.asarray(rate, jnp.result_type(contributions)), key)


@jax.jit
def _pathway_dropout(contributions: jax.Array, rate: jax.Array, key: jax.Array) -> jax.Array:
  dtype = jnp.result_type(contributions)
  if jnp.ndim(rate) == 1:
    rate = rate[:, None]
  keep = jax.random.uniform(key, jnp.shape(contributions)[:2], dtype) >= rate
  scale = jnp.where(keep, 1 / (1 - rate), jnp.zeros((), dtype)).astype(dtype)
  scale = scale.reshape(jnp.shape(scale) + (1,) * (jnp.ndim(contributions) - 2))
  return contributions * scale
