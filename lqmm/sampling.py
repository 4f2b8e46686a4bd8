"""Random draws shared by lqmm's primitives: one draw for many arrays.

Threefry programs are slow to compile on XLA:CPU (about a second each), so drawing the noise of
every modality or every parameter in one call, then splitting it (`draw_split`), keeps compile
times low. Keys follow lqmm's convention: typed keys from `jax.random.key(seed)`, passed by the
caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def draw_split(sampler: Callable, key: jax.Array, arrays: Sequence, dtype) -> list[jax.Array]:
  """Calls `sampler(key, (total,), dtype)` once and splits the draw into `arrays`' shapes.

  Threefry programs are slow to compile on XLA:CPU (about a second each), so drawing for every
  modality or every parameter in one call keeps compile times low.

  Args:
    sampler: e.g. `jax.random.normal` or `functools.partial(jax.random.uniform, minval=-1)`.
    key: PRNG key.
    arrays: arrays or `jax.ShapeDtypeStruct`s giving the shape and dtype of each piece.
    dtype: the dtype of the single draw.

  Returns:
    One array per entry of `arrays`, with its shape and cast to its dtype.
  """
  sizes = [math.prod(jnp.shape(x)) for x in arrays]
  flat = sampler(key, (sum(sizes),), dtype)
  pieces = jnp.split(flat, np.cumsum(sizes)[:-1])
  return [piece.reshape(jnp.shape(x)).astype(jnp.result_type(x))
          for piece, x in zip(pieces, arrays)]
