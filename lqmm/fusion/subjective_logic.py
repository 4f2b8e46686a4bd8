"""Subjective-logic belief fusion and trust discounting on Dirichlet opinions.

An opinion over K classes is a Dirichlet `Dir(alpha)` with evidence `e = alpha - 1 >= 0`, beliefs
`b = e / S` and uncertainty `u = K / S` (`S = sum_k alpha_k`), as in `dempster_shafer`. Besides the
reduced Dempster rule, subjective logic defines:

- cumulative belief fusion (independent sources observing different evidence): evidence adds,
  `e = e1 + e2`. Commutative and associative (`combine`, `RULE`); identity zero evidence
  (`alpha = 1`), which is what a missing modality contributes.
- averaging belief fusion (dependent sources observing the same evidence): evidence averages,
  `e = (e1 + e2) / 2` for two sources and `e = mean_m e_m` for M. Commutative and idempotent but
  not associative, so `fuse(..., method='averaging')` averages over the present modalities in
  one step; a missing modality does not count, and an all-missing row is vacuous (`alpha = 1`).
- trust discounting by a trust degree `t` in [0, 1]: `b' = t b`, `u' = 1 - t (1 - u)`, i.e.
  `e' = e t K / ((1 - t) S + t K)`. `t = 1` keeps the opinion, `t = 0` makes it vacuous.

References:
  Jøsang. "Subjective Logic: A Formalism for Reasoning Under Uncertainty." Springer 2016,
    chapters 12 (belief fusion) and 14 (trust discounting).
  Han, Zhang, Fu, Zhou. "Trusted Multi-View Classification with Dynamic Evidential Fusion."
    TPAMI 2022 (averaging fusion of opinions as a baseline).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lqmm import checks
from lqmm.fusion import base
from lqmm.fusion import dempster_shafer

__all__ = ['METHODS', 'RULE', 'combine', 'discount', 'fuse']

#: The fusion operators `fuse` offers.
METHODS = ('cumulative', 'averaging')


def combine(alpha_a: jax.Array, alpha_b: jax.Array) -> jax.Array:
  """Cumulative belief fusion of two opinions: evidence adds.

  Args:
    alpha_a: Dirichlet parameters `[..., K]`, `alpha >= 1`.
    alpha_b: Dirichlet parameters `[..., K]`, broadcastable with `alpha_a`.

  Returns:
    `alpha_a + alpha_b - 1`, `[..., K]`.

  Raises:
    ValueError: the class axes differ, leading dims do not broadcast, concrete inputs hold
      NaN, infinity or `alpha < 1`, or the concrete sum overflowed the dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> combine(jnp.array([2., 1., 4.]), jnp.array([3., 1., 1.]))
    Array([4., 1., 4.], dtype=float32)
  """
  alpha_a, alpha_b = checks.as_pair(alpha_a, alpha_b, 'alpha_a', 'alpha_b',
                                    validate=checks.as_dirichlet)
  fused = alpha_a + alpha_b - 1
  checks.check_fused(fused, 'alpha_a and alpha_b')
  return fused


#: Cumulative belief fusion as a `FusionRule` (averaging fusion is not associative).
RULE = base.FusionRule(combine=combine, identity_like=dempster_shafer.identity_like)


def fuse(alpha: jax.Array, mask: jax.Array | None = None, *,
         method: str = 'cumulative') -> jax.Array:
  """Cumulative or averaging belief fusion of M opinions `[M, ..., K]`, in one step.

  `'cumulative'` gives `1 + sum_m e_m` and `'averaging'` gives `1 + mean_m e_m`, both over the
  present modalities (for two modalities, the averaging belief fusion operator of subjective
  logic).

  Args:
    alpha: Dirichlet parameters `[M, ..., K]`, modality axis first, `alpha >= 1`.
    mask: optional bool `[M, ...]`, True = present; all-missing rows return `alpha = 1`.
    method: `'cumulative'` (independent sources) or `'averaging'` (dependent sources).

  Returns:
    Fused Dirichlet parameters `[..., K]`.

  Raises:
    KeyError: an unknown `method`.
    ValueError: `alpha` has fewer than 2 dims, `mask` has the wrong shape, concrete `alpha`
      holds NaN, infinity or values below 1, or the cumulative evidence overflowed the dtype
      (a sum of M evidences above about 3e38 in float32: fuse in float64 with
      `jax.enable_x64`, or bound the evidence). The averaging result never exceeds the largest
      evidence, so it does not overflow. The overflow check needs concrete values; under
      `jax.jit` it is skipped (turn on `lqmm.debug` or test `jnp.isfinite`).

  Example:
    >>> import jax.numpy as jnp
    >>> alpha = jnp.array([[3., 1.], [1., 5.]])
    >>> fuse(alpha), fuse(alpha, method='averaging')
    (Array([3., 5.], dtype=float32), Array([2., 3.], dtype=float32))
  """
  checks.lookup(dict.fromkeys(METHODS), method, 'method')
  checks.check_stacked(alpha, 'alpha')
  alpha = checks.as_dirichlet(alpha, 'alpha', '[M, ..., K]', rank=2)
  present = jnp.ones(alpha.shape[:-1], bool) if mask is None else mask
  checks.check_mask(present, jnp.shape(alpha)[:-1])
  evidence = jnp.where(present[..., None], alpha - 1, 0)
  if method == 'cumulative':
    fused = 1 + base.tree_reduce(jnp.add, evidence)
    checks.check_fused(fused, 'alpha')
    return fused
  count = jnp.sum(present, axis=0, dtype=alpha.dtype)[..., None]
  # Dividing before summing keeps every partial sum below the largest evidence.
  # A division, not a multiplication by 1 / count (see baselines.fuse).
  return 1 + base.tree_reduce(jnp.add, evidence / jnp.maximum(count, 1)[None])


def discount(alpha: jax.Array, trust: jax.Array) -> jax.Array:
  """Discounts an opinion by a trust degree: beliefs scale by `trust`, the rest is uncertainty.

  Args:
    alpha: Dirichlet parameters `[..., K]`, `alpha >= 1`.
    trust: trust degrees `[...]` in [0, 1] (broadcast against `alpha`'s leading dims).

  Returns:
    Discounted Dirichlet parameters `[..., K]`, with `opinion(result)` equal to
    `(trust * b, 1 - trust * (1 - u))`.

  Raises:
    ValueError: concrete `trust` lies outside [0, 1] or concrete `alpha` is invalid.

  Example:
    >>> import jax.numpy as jnp
    >>> discount(jnp.array([5., 1.]), jnp.array(0.5))
    Array([2., 1.], dtype=float32)
  """
  alpha = checks.as_dirichlet(alpha)
  trust = checks.upcast(jnp.asarray(trust, alpha.dtype))
  checks.check_finite(trust, 'trust')
  checks.check_scalar(trust, 'trust', low=0, high=1)
  num_classes = jnp.shape(alpha)[-1]
  strength = jnp.sum(alpha, axis=-1)
  scale = trust * num_classes / ((1 - trust) * strength + trust * num_classes)
  return 1 + (alpha - 1) * scale[..., None]
