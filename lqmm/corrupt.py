"""Degradations that make multimodal data low-quality.

Every function is pure: it takes the modality dict of a batch (`{name: [B, ...]}`), a
keyword-only typed PRNG `key` and numeric strengths that may be traced, and returns a new dict.
They jit (modality names are static) and vmap over keys or strengths, e.g. to evaluate a grid of
noise levels in one call::

    noisy = jax.vmap(lambda s: corrupt.gaussian_noise(inputs, s, key=key))(jnp.array([0., .5, 1.]))

Random draws are made once per call for all corrupted modalities together, laid out in sorted
name order, so a result does not depend on dict order (and XLA compiles one random-number
generator per call instead of one per modality).

References:
  Zhang et al. "Multimodal Fusion on Low-quality Data: A Comprehensive Survey" (the taxonomy).
  Han et al. "Trusted Multi-View Classification." ICLR 2021 (Gaussian noise on test views).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from lqmm import checks
from lqmm import sampling

__all__ = ['gaussian_noise', 'per_sample_quality', 'salt_and_pepper']

Inputs = Mapping[str, jax.Array]


def _select(inputs: Inputs, modalities: Sequence[str] | str | None) -> tuple[str, ...]:
  """Validates and returns the names to corrupt (all of them when None)."""
  if not inputs:
    raise ValueError('inputs must map at least one modality name to an array; got {}.')
  if modalities is None:
    return tuple(sorted(inputs))
  if isinstance(modalities, str):
    modalities = (modalities,)
  for name in modalities:
    if name not in inputs:
      raise KeyError(f'Unknown modality {name!r} in modalities; inputs has: '
                     f'{", ".join(sorted(inputs))}.')
  return tuple(modalities)


def _draw(sampler, key: jax.Array, arrays: Sequence[jax.Array]) -> list[jax.Array]:
  """One `sampler` draw for all `arrays`: float64 when any array is float64, else float32."""
  wide = any(jnp.result_type(x) == jnp.float64 for x in arrays)
  return sampling.draw_split(sampler, key, arrays, jnp.float64 if wide else jnp.float32)


def _check_values(inputs: Inputs, chosen: Sequence[str], *, floating: bool = True) -> None:
  """The corrupted modalities hold a batch axis and finite (floating, where required) values."""
  for name in chosen:
    checks.check_rank_at_least(inputs[name], 1, f'inputs[{name!r}]', '[B, ...]')
    if floating:
      checks.check_floating(inputs[name], f'inputs[{name!r}]')
    if jnp.issubdtype(jnp.result_type(inputs[name]), jnp.inexact):
      checks.check_finite(inputs[name], f'inputs[{name!r}]')


def _check_key(key) -> None:
  if key is None:
    raise TypeError('key must be a PRNG key, e.g. jax.random.key(0); got None.')


def _check_nonnegative(value, name: str) -> None:
  checks.check_scalar(value, name, low=0)


def gaussian_noise(inputs: Inputs, std, *, key: jax.Array,
                   modalities: Sequence[str] | str | None = None) -> dict[str, jax.Array]:
  """Adds i.i.d. Gaussian noise `N(0, std^2)` to the chosen modalities.

  Args:
    inputs: `{name: float [B, ...]}`.
    std: noise standard deviation (scalar, >= 0, may be traced).
    key: PRNG key.
    modalities: names to corrupt; None corrupts every modality.

  Returns:
    A new dict; untouched modalities are passed through.

  Raises:
    KeyError: an unknown modality name. ValueError: a negative, NaN or infinite concrete `std`,
      or a corrupted modality without a batch axis or with NaN or infinite values.
    TypeError: a corrupted modality is not floating-point (scale integer data first).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> out = gaussian_noise({'a': jnp.zeros((2, 3))}, 0.0, key=jax.random.key(0))
    >>> out['a'].sum()
    Array(0., dtype=float32)
  """
  _check_key(key)
  _check_nonnegative(std, 'std')
  chosen = sorted(_select(inputs, modalities))
  _check_values(inputs, chosen)
  noises = _draw(jax.random.normal, key, [inputs[name] for name in chosen])
  out = dict(inputs)
  for name, noise in zip(chosen, noises):
    x = inputs[name]
    out[name] = x + jnp.asarray(std, x.dtype) * noise
  return out


def salt_and_pepper(inputs: Inputs, amount, *, key: jax.Array,
                    modalities: Sequence[str] | str | None = None,
                    low: float = 0.0, high: float = 1.0) -> dict[str, jax.Array]:
  """Sets a fraction `amount` of the entries of each chosen modality to `low` or `high`.

  Each entry is hit independently with probability `amount`; a hit entry becomes `low`
  ("pepper") or `high` ("salt") with equal probability.

  Args:
    inputs: `{name: [B, ...]}`.
    amount: probability in `[0, 1]` (may be traced).
    key: PRNG key.
    modalities: names to corrupt; None corrupts every modality.
    low: the pepper value (the data's minimum; 0 after min-max scaling).
    high: the salt value (the data's maximum; 1 after min-max scaling).

  Returns:
    A new dict.

  Raises:
    KeyError: an unknown modality. ValueError: a concrete `amount` outside `[0, 1]` or NaN, or
      a corrupted modality without a batch axis or with NaN or infinite values (integer data,
      e.g. uint8 images, is fine).
  """
  _check_key(key)
  checks.check_scalar(amount, 'amount', low=0, high=1)
  chosen = sorted(_select(inputs, modalities))
  _check_values(inputs, chosen, floating=False)
  arrays = [inputs[name] for name in chosen]
  draws = _draw(jax.random.uniform, key, [jax.ShapeDtypeStruct(jnp.shape(x), jnp.float32)
                                          for x in arrays])
  out = dict(inputs)
  for name, x, draw in zip(chosen, arrays, draws):
    # One uniform per entry: below amount / 2 is pepper, in [amount / 2, amount) is salt.
    hit = draw < amount
    salt = draw >= jnp.asarray(amount, jnp.float32) / 2
    replacement = jnp.where(salt, jnp.asarray(high, x.dtype), jnp.asarray(low, x.dtype))
    out[name] = jnp.where(hit, replacement, x)
  return out


def per_sample_quality(inputs: Inputs, std, *, key: jax.Array,
                       order: Sequence[str]) -> tuple[dict[str, jax.Array], jax.Array]:
  """Degrades one uniformly chosen modality per sample with Gaussian noise of `std`.

  This is per-sample quality variation: every sample has exactly one low-quality modality, and
  which one varies across samples, so a fusion rule must weigh modalities per sample.

  Args:
    inputs: `{name: float [B, ...]}`; all modalities share the batch size B.
    std: noise standard deviation for the degraded modality (>= 0, may be traced).
    key: PRNG key.
    order: the modality names in the order of the returned indicator's rows.

  Returns:
    `(corrupted inputs, degraded bool [M, B])`, `degraded[m, b]` True where sample b's modality
    `order[m]` was degraded (exactly one True per column).

  Raises:
    KeyError: a name in `order` is not in `inputs`. ValueError: batch sizes differ, `std` is
      negative, NaN or infinite, or a modality has no batch axis or NaN or infinite values.
  """
  _check_key(key)
  _check_nonnegative(std, 'std')
  chosen = _select(inputs, order)
  _check_values(inputs, chosen)
  sizes = {name: jnp.shape(inputs[name])[0] for name in chosen}
  if len(set(sizes.values())) != 1:
    raise ValueError(f'All modalities must share the batch size; got {sizes}.')
  batch = next(iter(sizes.values()))
  pick_key, noise_key = jax.random.split(key)
  picked = jax.random.randint(pick_key, (batch,), 0, len(chosen))
  degraded = picked[None, :] == jnp.arange(len(chosen))[:, None]
  noisy = gaussian_noise(inputs, std, key=noise_key, modalities=chosen)
  out = dict(inputs)
  for index, name in enumerate(chosen):
    x = inputs[name]
    row = degraded[index].reshape((batch,) + (1,) * (jnp.ndim(x) - 1))
    out[name] = jnp.where(row, noisy[name], x)
  return out, degraded
