"""Input validation shared by lqmm's primitives.

Shape checks run at trace time, so they also fire under `jax.jit`. Value checks (NaN, negative
evidence, label range) need concrete values: they run on concrete arrays and are skipped for
tracers, where a Python error is impossible. To get value checks inside a jitted function, call the
primitive once eagerly, or wrap the call in `jax.experimental.checkify`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
  """True when `x` holds concrete values (not a tracer inside a transformation)."""
  return not isinstance(x, jax.core.Tracer)


def check_rank_at_least(x, rank: int, name: str, layout: str) -> None:
  """Raises ValueError when `x` has fewer than `rank` dimensions."""
  if jnp.ndim(x) < rank:
    raise ValueError(
        f'{name} must have at least {rank} dimension(s) laid out as {layout}; '
        f'got shape {jnp.shape(x)}.')


def check_floating(x, name: str) -> None:
  """Raises TypeError when `x` is not a floating-point array."""
  if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
    raise TypeError(f'{name} must be a floating-point array; got dtype {jnp.result_type(x)}.')


def check_finite(x, name: str) -> None:
  """Raises ValueError when a concrete `x` holds NaN or infinity."""
  if not is_concrete(x):
    return
  values = np.asarray(x)
  if not np.all(np.isfinite(values)):
    bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
    raise ValueError(f'{name} holds {bad} NaN or infinite value(s); expected finite values.')


def check_dirichlet(alpha, name: str) -> None:
  """Raises when concrete Dirichlet parameters are NaN, infinite or below 1.

  lqmm's evidential rules take alpha = evidence + 1 with evidence >= 0, so alpha >= 1.
  """
  check_floating(alpha, name)
  if not is_concrete(alpha):
    return
  check_finite(alpha, name)
  values = np.asarray(alpha)
  if np.any(values < 1):
    raise ValueError(
        f'{name} must be Dirichlet parameters alpha = evidence + 1 >= 1 (non-negative '
        f'evidence); got minimum {values.min()!r}, i.e. negative evidence {values.min() - 1!r}.')


def check_mask(mask, expected_shape: Sequence[int], name: str = 'mask') -> None:
  """Raises when `mask` is not a bool array of `expected_shape`."""
  if tuple(jnp.shape(mask)) != tuple(expected_shape):
    raise ValueError(
        f'{name} must have shape {tuple(expected_shape)} (modality axis first, then the batch '
        f'dims of the input); got shape {tuple(jnp.shape(mask))}.')
  if jnp.result_type(mask) != jnp.bool_:
    raise TypeError(f'{name} must be a bool array (True = present); got dtype '
                    f'{jnp.result_type(mask)}.')


def check_labels(labels, num_classes: int, batch_shape: Sequence[int], name: str = 'labels'):
  """Raises when labels are not integers of `batch_shape` within [0, num_classes)."""
  if tuple(jnp.shape(labels)) != tuple(batch_shape):
    raise ValueError(f'{name} must have shape {tuple(batch_shape)} (the batch dims of alpha); '
                     f'got shape {tuple(jnp.shape(labels))}.')
  if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
    raise TypeError(f'{name} must be integer class indices; got dtype {jnp.result_type(labels)}.')
  if is_concrete(labels) and np.size(labels):
    values = np.asarray(labels)
    if values.min() < 0 or values.max() >= num_classes:
      raise ValueError(f'{name} must lie in [0, {num_classes}); got values in '
                       f'[{values.min()}, {values.max()}].')


def check_key(key, name: str = 'key') -> None:
  """Raises unless `key` is one typed PRNG key from `jax.random.key(seed)`."""
  if key is None or not isinstance(key, jax.Array) or not jnp.issubdtype(
      key.dtype, jax.dtypes.prng_key):
    received = 'None' if key is None else f'{type(key).__name__} of dtype {jnp.result_type(key)}'
    raise TypeError(f'{name} must be a typed PRNG key from jax.random.key(seed); got {received}.')
  if key.shape:
    raise ValueError(f'{name} must be a single key (shape ()); got shape {key.shape}.')


def check_order(order: Sequence[str], available, name: str, kind: str = 'modality') -> None:
  """Raises KeyError naming the first entry of `order` missing from `available` (a mapping).

  `name` is how the message calls `available` (e.g. 'dims', 'shapes', 'inputs').
  """
  missing = [entry for entry in order if entry not in available]
  if not missing:
    return
  if name == 'inputs':
    raise KeyError(f'inputs has no {kind} {missing[0]!r}; it has {sorted(available)}.')
  raise KeyError(f'Unknown {kind} {missing[0]!r} in order; {name} has {sorted(available)}.')


def upcast(x) -> jax.Array:
  """Casts floating `x` to at least float32 (bfloat16/float16 encoders, float32+ fusion math)."""
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.floating) and jnp.dtype(x.dtype).itemsize < 4:
    return x.astype(jnp.float32)
  return x


def check_broadcastable(a, b, name_a: str, name_b: str) -> None:
  """Raises ValueError when the batch dims (all but the last) of `a` and `b` do not broadcast."""
  try:
    np.broadcast_shapes(jnp.shape(a)[:-1], jnp.shape(b)[:-1])
  except ValueError:
    raise ValueError(f'{name_a} and {name_b} must have broadcastable leading dims; got shapes '
                     f'{jnp.shape(a)} and {jnp.shape(b)}.') from None


def lookup(table: dict, name: str, what: str):
  """Returns `table[name]` or raises KeyError listing the valid names."""
  try:
    return table[name]
  except KeyError:
    raise KeyError(f'Unknown {what} {name!r}; valid names: {", ".join(sorted(table))}.') from None
