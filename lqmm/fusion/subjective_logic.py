"""Subjective-logic belief fusion and trust discounting on Dirichlet opinions.

An opinion over K classes is a Dirichlet `Dir(alpha)` with evidence `e = alpha - 1 >= 0`, beliefs
`b = e / S` and uncertainty `u = K / S` (`S = sum_k alpha_k`), as in `dempster_shafer`. Besides the
reduced Dempster rule, subjective logic defines:

- cumulative belief fusion (independent sources observing different evidence): evidence adds,
  `e = e1 + e2`. Commutative and associative; identity zero evidence (`alpha = 1`).
- averaging belief fusion (dependent sources observing the same evidence): evidence averages,
  `e = (e1 + e2) / 2` for two sources and `e = mean_m e_m` for M. Commutative and idempotent but
  not associative, so `fuse_averaging` averages over the present modalities in one step; a
  missing modality does not count, and an all-missing row is vacuous.
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

from lqmm import _checks
from lqmm.fusion import base
from lqmm.fusion import dempster_shafer


def _present_evidence(alpha, mask) -> tuple[jax.Array, jax.Array]:
  """Evidence `[M, ..., K]` with missing modalities zeroed, and the present count `[..., 1]`."""
  alpha = dempster_shafer._check_alpha(alpha, 'alpha', '[M, ..., K]', rank=2)
  present = jnp.ones(alpha.shape[:-1], bool) if mask is None else mask
  _checks.check_mask(present, jnp.shape(alpha)[:-1])
  evidence = jnp.where(present[..., None], alpha - 1, 0)
  return evidence, jnp.sum(present, axis=0, dtype=alpha.dtype)[..., None]


def combine_cumulative(alpha_a: jax.Array, alpha_b: jax.Array) -> jax.Array:
  """Cumulative belief fusion of two opinions: evidence adds.

  Args:
    alpha_a: Dirichlet parameters `[..., K]`, `alpha >= 1`.
    alpha_b: Dirichlet parameters `[..., K]`, broadcastable with `alpha_a`.

  Returns:
    `alpha_a + alpha_b - 1`, `[..., K]`.

  Raises:
    ValueError: the class axes differ, leading dims do not broadcast, or concrete inputs hold
      NaN, infinity or `alpha < 1`.

  Example:
    >>> import jax.numpy as jnp
    >>> combine_cumulative(jnp.array([3., 1.]), jnp.array([1., 2.]))
    Array([3., 2.], dtype=float32)
  """
  alpha_a, alpha_b = dempster_shafer._check_pair(alpha_a, alpha_b)
  return alpha_a + alpha_b - 1


CUMULATIVE = base.FusionRule(combine=combine_cumulative,
                             identity_like=dempster_shafer.identity_like)


def fuse_cumulative(alpha: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Cumulative fusion of M opinions `[M, ..., K]`: `1 + sum_m e_m` over present modalities.

  Args:
    alpha: Dirichlet parameters `[M, ..., K]`, `alpha >= 1`.
    mask: optional bool `[M, ...]`, True = present; all-missing rows return `alpha = 1`.

  Returns:
    Fused Dirichlet parameters `[..., K]`.

  Raises:
    ValueError: as for `combine_cumulative`, or `mask` has the wrong shape.
  """
  evidence, _ = _present_evidence(alpha, mask)
  return 1 + jnp.sum(evidence, axis=0)


def fuse_averaging(alpha: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Averaging fusion of M opinions `[M, ..., K]`: `1 + mean_m e_m` over present modalities.

  For two modalities this is the averaging belief fusion operator of subjective logic.

  Args:
    alpha: Dirichlet parameters `[M, ..., K]`, `alpha >= 1`.
    mask: optional bool `[M, ...]`, True = present; all-missing rows return `alpha = 1`.

  Returns:
    Fused Dirichlet parameters `[..., K]`.

  Raises:
    ValueError: as for `fuse_cumulative`.

  Example:
    >>> import jax.numpy as jnp
    >>> fuse_averaging(jnp.array([[3., 1.], [1., 5.]]))
    Array([2., 3.], dtype=float32)
  """
  evidence, count = _present_evidence(alpha, mask)
  return 1 + jnp.sum(evidence, axis=0) / jnp.maximum(count, 1)


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
  alpha = dempster_shafer._check_alpha(alpha, 'alpha', '[..., K]')
  trust = _checks.upcast(jnp.asarray(trust, alpha.dtype))
  _checks.check_finite(trust, 'trust')
  if _checks.is_concrete(trust) and (jnp.any(trust < 0) or jnp.any(trust > 1)):
    raise ValueError(f'trust must lie in [0, 1]; got values in [{float(jnp.min(trust))}, '
                     f'{float(jnp.max(trust))}].')
  num_classes = jnp.shape(alpha)[-1]
  strength = jnp.sum(alpha, axis=-1)
  scale = trust * num_classes / ((1 - trust) * strength + trust * num_classes)
  return 1 + (alpha - 1) * scale[..., None]
