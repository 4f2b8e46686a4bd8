"""Baseline late and intermediate fusion: sum, mean over present modalities, concatenation.

`SUM` is a `FusionRule` (commutative, associative, identity 0). `mean` averages the present
modalities' outputs (not associative as a binary rule, so it is one step over all modalities);
an all-missing row returns 0. `concat` joins per-modality features of different widths, writing
zeros for missing modalities (the input of a deep mask-weighted fusion layer).

References:
  Baltrušaitis, Ahuja, Morency. "Multimodal Machine Learning: A Survey and Taxonomy." TPAMI 2019
    (early/late fusion baselines).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from lqmm import _checks
from lqmm.fusion import base


def _add(a: jax.Array, b: jax.Array) -> jax.Array:
  _checks.check_broadcastable(a, b, 'a', 'b')
  return _checks.upcast(a) + _checks.upcast(b)


SUM = base.FusionRule(combine=_add, identity_like=jnp.zeros_like)


def mean(x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Mean of `x [M, ..., K]` over the present modalities; all-missing rows give 0.

  Args:
    x: stacked per-modality outputs `[M, ..., K]` (logits, probabilities or features).
    mask: optional bool `[M, ...]`, True = present.

  Returns:
    `[..., K]`.

  Raises:
    ValueError: `x` has fewer than 2 dims or `mask` has the wrong shape.

  Example:
    >>> import jax.numpy as jnp
    >>> mean(jnp.array([[[2.]], [[4.]]]), jnp.array([[True], [False]]))
    Array([[2.]], dtype=float32)
  """
  x = _checks.upcast(base.apply_mask(SUM, x, mask))
  present = jnp.ones(x.shape[:-1], bool) if mask is None else mask
  count = jnp.sum(present, axis=0, dtype=x.dtype)[..., None]
  return jnp.sum(x, axis=0) / jnp.maximum(count, 1)


def concat(features: Sequence[jax.Array], mask: jax.Array | None = None) -> jax.Array:
  """Concatenates per-modality features `[..., D_m]`, zeroing missing modalities.

  Args:
    features: M arrays `[..., D_m]` with the same leading dims (widths may differ), in the
      config's modality order.
    mask: optional bool `[M, ...]`, True = present.

  Returns:
    `[..., sum_m D_m]`.

  Raises:
    ValueError: `features` is empty, leading dims differ, or `mask` has the wrong shape.

  Example:
    >>> import jax.numpy as jnp
    >>> concat([jnp.ones((1, 2)), jnp.ones((1, 1))], jnp.array([[True], [False]]))
    Array([[1., 1., 0.]], dtype=float32)
  """
  if not features:
    raise ValueError('features must hold at least one modality; got an empty sequence.')
  leading = {jnp.shape(feature)[:-1] for feature in features}
  if len(leading) > 1:
    raise ValueError(f'All features must share their leading dims; got shapes '
                     f'{[jnp.shape(feature) for feature in features]}.')
  if mask is not None:
    _checks.check_mask(mask, (len(features),) + tuple(jnp.shape(features[0])[:-1]))
    features = [jnp.where(mask[index][..., None], feature, 0)
                for index, feature in enumerate(features)]
  return jnp.concatenate([_checks.upcast(feature) for feature in features], axis=-1)
