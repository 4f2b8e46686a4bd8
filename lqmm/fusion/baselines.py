"""Baseline late and intermediate fusion: sum, mean over present modalities, concatenation.

`fuse(x, mask, reduction=...)` sums or averages the present modalities' outputs. The sum is a
`FusionRule` (`combine`, `RULE`: commutative, associative, identity 0); the mean is not
associative as a binary rule, so it is one step over all modalities. A missing modality
contributes 0 (and does not count towards the mean); an all-missing row returns 0. `concat`
joins per-modality features of different widths for feature-level fusion, writing zeros for
missing modalities (the input of a deep mask-weighted fusion layer).

References:
  Baltrušaitis, Ahuja, Morency. "Multimodal Machine Learning: A Survey and Taxonomy." TPAMI 2019
    (early/late fusion baselines).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm.fusion import base

__all__ = ['REDUCTIONS', 'RULE', 'combine', 'concat', 'fuse']


#: The reductions `fuse` offers.
REDUCTIONS = ('mean', 'sum')


def combine(a: jax.Array, b: jax.Array) -> jax.Array:
  """The sum `a + b` of two modalities' outputs `[..., K]` (broadcasting leading dims).

  Raises:
    ValueError: a or b is rank 0 or holds NaN or infinity, leading dims do not broadcast, or
      the concrete sum overflowed the dtype. TypeError: a or b is not floating-point.

  Example:
    >>> import jax.numpy as jnp
    >>> combine(jnp.array([1., 2.]), jnp.array([3., 4.]))
    Array([4., 6.], dtype=float32)
  """
  a, b = checks.as_pair(a, b, 'a', 'b',
                        validate=lambda x, name: checks.as_floats(x, name, '[..., K]'))
  fused = a + b
  checks.check_fused(fused, 'a and b', quantity='sum', remedy='bound the outputs')
  return fused


#: The sum as a `FusionRule` (the mean is not associative as a binary rule).
RULE = base.FusionRule(combine=combine, identity_like=jnp.zeros_like)


def fuse(x: jax.Array, mask: jax.Array | None = None, *, reduction: str = 'mean') -> jax.Array:
  """Mean or sum of `x [M, ..., K]` over the present modalities; all-missing rows give 0.

  Args:
    x: stacked per-modality outputs `[M, ..., K]` (logits, probabilities or features).
    mask: optional bool `[M, ...]`, True = present.
    reduction: `'mean'` (over the present modalities) or `'sum'`.

  Returns:
    `[..., K]`.

  Raises:
    KeyError: an unknown `reduction`.
    ValueError: `x` has fewer than 2 dims, `mask` has the wrong shape, or the concrete sum
      overflowed the dtype (outputs summing beyond about 3e38 in float32: fuse in float64
      with `jax.enable_x64`, or bound them). The mean divides before it sums, so it does not
      overflow on finite inputs. Under `jax.jit` the overflow check is skipped.

  Example:
    >>> import jax.numpy as jnp
    >>> x, mask = jnp.array([[[2.]], [[4.]]]), jnp.array([[True], [False]])
    >>> fuse(x, mask), fuse(x, reduction='sum')
    (Array([[2.]], dtype=float32), Array([[6.]], dtype=float32))
  """
  checks.lookup(dict.fromkeys(REDUCTIONS), reduction, 'reduction')
  checks.check_stacked(x, 'x')
  x = base.apply_mask(RULE, x, mask)
  checks.check_finite(x, 'x (its present modalities)')
  x = checks.upcast(x)
  if reduction == 'sum':
    fused = base.tree_reduce(jnp.add, x)
    checks.check_fused(fused, 'x', quantity='sum', remedy='bound the outputs')
    return fused
  present = jnp.ones(x.shape[:-1], bool) if mask is None else mask
  count = jnp.sum(present, axis=0, dtype=x.dtype)[..., None]
  # A division, not a multiplication by 1 / count: XLA may contract a product into the sum's
  # fused multiply-add in one compilation and not another, so results would depend on the shapes
  # a program was compiled for (seeds vmapped together, shards).
  return base.tree_reduce(jnp.add, x / jnp.maximum(count, 1)[None])


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
  if isinstance(features, (jax.Array, np.ndarray)):
    checks.check_rank_at_least(features, 2, 'features', '[M, ..., D] or M arrays [..., D_m]')
    features = list(features)
  if len(features) == 0:  # pylint: disable=g-explicit-length-test
    raise ValueError('features must hold at least one modality; got an empty sequence.')
  for index, feature in enumerate(features):
    checks.as_floats(feature, f'features[{index}]', '[..., D_m]')
  leading = {jnp.shape(feature)[:-1] for feature in features}
  if len(leading) > 1:
    raise ValueError(f'All features must share their leading dims; got shapes '
                     f'{[jnp.shape(feature) for feature in features]}.')
  if mask is not None:
    checks.check_mask(mask, (len(features),) + tuple(jnp.shape(features[0])[:-1]))
    features = [jnp.where(mask[index][..., None], feature, 0)
                for index, feature in enumerate(features)]
  return jnp.concatenate([checks.upcast(feature) for feature in features], axis=-1)
