"""Decision-level weighted late fusion and its uncertainty-awareness diagnostic.

The survey's Eq. 11 writes dynamic late fusion as a per-sample weighted sum of the modalities'
decisions,

    f(x) = sum_m w_m(x) f_m(x_m),

where `w_m(x)` is computed per sample (from energy, entropy, a learned confidence...). Its Eq. 12,
from the generalisation bound of QMF, says the fused model generalises better when each
modality's weight is negatively correlated with that modality's loss: the empirical covariance

    Cov(w_m, l_m) = mean_i (w_mi - mean w_m)(l_mi - mean l_m)

should be negative (the weight drops where the modality errs). `weight_loss_covariance` reports it
per modality; the benchmark harness reports it for every fusion method and condition.

References:
  Zhang, Wu, Zhang, Liu, Hu, Zhang, Bian, Fu, Zhou. "Provable Dynamic Fusion for Low-Quality
    Multimodal Data." ICML 2023 (Theorem 2 and its covariance condition).
  Zhang, Wang, Zhang, et al. "Multimodal Fusion on Low-quality Data: A Comprehensive Survey."
    2024 (Eqs. 11 and 12).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lqmm import _checks


def _check_weights(weights, batch_shape, name: str = 'weights') -> jax.Array:
  if tuple(jnp.shape(weights)) != tuple(batch_shape):
    raise ValueError(f'{name} must have shape {tuple(batch_shape)} ([M, ...], one weight per '
                     f'modality and sample); got shape {tuple(jnp.shape(weights))}.')
  _checks.check_floating(weights, name)
  _checks.check_finite(weights, name)
  return _checks.upcast(weights)


def finish_weights(weights: jax.Array, mask: jax.Array | None, *,
                   stop_gradient: bool) -> jax.Array:
  """Optionally stops gradients through per-sample weights `[M, ...]` and zeroes missing ones.

  Args:
    weights: `[M, ...]` per-modality, per-sample weights.
    mask: optional bool `[M, ...]`, True = present.
    stop_gradient: treat the weights as constants in the backward pass.

  Returns:
    `[M, ...]` weights, 0 where a modality is missing.
  """
  if stop_gradient:
    weights = jax.lax.stop_gradient(weights)
  if mask is None:
    return weights
  _checks.check_mask(mask, jnp.shape(weights))
  return jnp.where(mask, weights, 0)


def weighted_sum(outputs: jax.Array, weights: jax.Array, mask: jax.Array | None = None, *,
                 normalize: bool = False) -> jax.Array:
  """Eq. 11: `sum_m w_m f_m` over the present modalities.

  Args:
    outputs: per-modality decisions `[M, ..., K]` (logits or probabilities).
    weights: per-sample weights `[M, ...]`.
    mask: optional bool `[M, ...]`, True = present (a missing modality has weight 0).
    normalize: divide by `sum_m w_m` over present modalities (a convex combination). Rows whose
      weights sum to 0 then return 0.

  Returns:
    The fused decision `[..., K]`.

  Raises:
    ValueError: shapes do not match or concrete inputs hold NaN or infinity.

  Example:
    >>> import jax.numpy as jnp
    >>> outputs = jnp.array([[[1., 0.]], [[0., 2.]]])  # [M=2, B=1, K=2]
    >>> weighted_sum(outputs, jnp.array([[3.], [1.]]), normalize=True)
    Array([[0.75, 0.5 ]], dtype=float32)
  """
  _checks.check_rank_at_least(outputs, 2, 'outputs', '[M, ..., K]')
  _checks.check_finite(outputs, 'outputs')
  outputs = _checks.upcast(outputs)
  weights = _check_weights(weights, jnp.shape(outputs)[:-1])
  if mask is not None:
    _checks.check_mask(mask, jnp.shape(outputs)[:-1])
    weights = jnp.where(mask, weights, 0)
  fused = jnp.sum(weights[..., None] * outputs, axis=0)
  if not normalize:
    return fused
  total = jnp.sum(weights, axis=0)[..., None]
  return jnp.where(total != 0, fused / jnp.where(total != 0, total, 1), 0)


def weight_loss_covariance(weights: jax.Array, losses: jax.Array,
                           mask: jax.Array | None = None) -> jax.Array:
  """Eq. 12 diagnostic: per-modality covariance between fusion weight and loss over samples.

  Negative values mean the weights are uncertainty-aware (they fall where the modality's loss
  rises).

  Args:
    weights: `[M, B]` per-sample fusion weights.
    losses: `[M, B]` per-sample unimodal losses (e.g. each modality's cross-entropy).
    mask: optional bool `[M, B]`; only present samples enter modality m's covariance.

  Returns:
    `[M]` covariances (population normalisation, `1/n`); NaN-free, 0 for a modality with fewer
    than two present samples.

  Raises:
    ValueError: the shapes are not `[M, B]` and equal.

  Example:
    >>> import jax.numpy as jnp
    >>> weights = jnp.array([[1., 2., 3.]])
    >>> weight_loss_covariance(weights, jnp.array([[3., 2., 1.]]))
    Array([-0.6666667], dtype=float32)
  """
  if jnp.ndim(weights) != 2:
    raise ValueError(f'weights must have shape [M, B]; got shape {jnp.shape(weights)}.')
  weights = _check_weights(weights, jnp.shape(weights))
  losses = _check_weights(losses, jnp.shape(weights), 'losses')
  present = jnp.ones(weights.shape, bool) if mask is None else mask
  _checks.check_mask(present, jnp.shape(weights))
  count = jnp.sum(present, axis=1, dtype=weights.dtype)
  safe = jnp.maximum(count, 1)
  mean_w = jnp.sum(jnp.where(present, weights, 0), axis=1) / safe
  mean_l = jnp.sum(jnp.where(present, losses, 0), axis=1) / safe
  products = jnp.where(present, (weights - mean_w[:, None]) * (losses - mean_l[:, None]), 0)
  return jnp.where(count > 1, jnp.sum(products, axis=1) / safe, 0)
