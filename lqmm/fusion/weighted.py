"""Decision-level weighted late fusion and its uncertainty-awareness diagnostic.

The survey's Eq. 11 writes dynamic late fusion as a per-sample weighted sum of the modalities'
decisions,

    f(x) = sum_m w_m(x) f_m(x_m),

where `w_m(x)` is computed per sample (from energy, entropy, a learned confidence...); `fuse`
takes the weights as given. A missing modality gets weight 0 (the identity of the sum), so an
all-missing row fuses to 0.

The survey's Eq. 12, from the generalisation bound of QMF, says the fused model generalises
better when each modality's weight is negatively correlated with that modality's loss: the
empirical covariance

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

from lqmm import checks

__all__ = ['check_fused', 'finish_weights', 'fuse', 'weight_loss_covariance', 'weighted_sum']


def _check_weights(weights, batch_shape, name: str = 'weights') -> jax.Array:
  if tuple(jnp.shape(weights)) != tuple(batch_shape):
    raise ValueError(f'{name} must have shape {tuple(batch_shape)} ([M, ...], one weight per '
                     f'modality and sample); got shape {tuple(jnp.shape(weights))}.')
  checks.check_floating(weights, name)
  checks.check_finite(weights, name)
  return checks.upcast(weights)


def finish_weights(weights: jax.Array, mask: jax.Array | None, *,
                   stop_gradient: bool) -> jax.Array:
  """Optionally stops gradients through per-sample weights `[M, ...]` and zeroes missing ones.

  Args:
    weights: `[M, ...]` per-modality, per-sample weights.
    mask: optional bool `[M, ...]`, True = present.
    stop_gradient: treat the weights as constants in the backward pass.

  Returns:
    `[M, ...]` weights, 0 where a modality is missing.

  Raises:
    ValueError: `weights` is rank 0 or holds NaN or infinity, or `mask` has the wrong shape.
    TypeError: `weights` is not floating-point.
  """
  weights = checks.as_floats(weights, 'weights', '[M, ...]')
  if stop_gradient:
    weights = jax.lax.stop_gradient(weights)
  if mask is None:
    return weights
  checks.check_mask(mask, jnp.shape(weights))
  return jnp.where(mask, weights, 0)


def weighted_sum(x: jax.Array, weights: jax.Array, *, normalize: bool = False) -> jax.Array:
  """Eq. 11 without a mask: `sum_m w_m x_m`, optionally divided by `sum_m w_m`.

  The core that `energy.fuse` and `entropy.fuse` share (their weights are already 0 where a
  modality is missing); `fuse` takes a mask and checks the result for overflow.

  Args:
    x: per-modality decisions `[M, ..., K]`, at least float32.
    weights: per-sample weights `[M, ...]`, 0 for missing modalities.
    normalize: divide by `sum_m w_m` (a convex combination); rows whose weights sum to 0 then
      return 0.

  Returns:
    The fused decision `[..., K]`.

  Raises:
    ValueError: `x` has fewer than 2 dims, `weights` is not `x.shape[:-1]`, or either holds
      NaN or infinity. TypeError: non-floating inputs.
  """
  x = checks.as_floats(x, 'x', '[M, ..., K]', rank=2)
  return _weighted_sum(x, _check_weights(weights, jnp.shape(x)[:-1]), normalize=normalize)


def _weighted_sum(x: jax.Array, weights: jax.Array, *, normalize: bool) -> jax.Array:
  """`weighted_sum` of validated inputs."""
  fused = jnp.sum(weights[..., None] * x, axis=0)
  if not normalize:
    return fused
  total = jnp.sum(weights, axis=0)[..., None]
  return jnp.where(total != 0, fused / jnp.where(total != 0, total, 1), 0)


def fuse(x: jax.Array, mask: jax.Array | None = None, *, weights: jax.Array,
         normalize: bool = False) -> jax.Array:
  """Eq. 11: `sum_m w_m f_m` over the present modalities; a missing modality has weight 0.

  Args:
    x: per-modality decisions `[M, ..., K]` (logits or probabilities).
    mask: optional bool `[M, ...]`, True = present. All-missing rows return 0 (the identity
      of the sum).
    weights: per-sample weights `[M, ...]`.
    normalize: divide by `sum_m w_m` over present modalities (a convex combination). Rows whose
      weights sum to 0 then return 0.

  Returns:
    The fused decision `[..., K]`.

  Raises:
    ValueError: shapes do not match, concrete inputs hold NaN or infinity, or the concrete
      weighted sum overflowed the dtype (terms `w_m f_m` beyond about 3e38 in float32: fuse in
      float64 with `jax.enable_x64`, or bound the weights and decisions). The overflow check
      needs concrete values; under `jax.jit` it is skipped (turn on `lqmm.debug`).

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[[1., 0.]], [[0., 2.]]])  # [M=2, B=1, K=2]
    >>> fuse(x, weights=jnp.array([[3.], [1.]]), normalize=True)
    Array([[0.75, 0.5 ]], dtype=float32)
  """
  x = checks.as_floats(x, 'x', '[M, ..., K]', rank=2)
  weights = _check_weights(weights, jnp.shape(x)[:-1])
  if mask is not None:
    checks.check_mask(mask, jnp.shape(x)[:-1])
    weights = jnp.where(mask, weights, 0)
  fused = _weighted_sum(x, weights.astype(x.dtype), normalize=normalize)
  check_fused(fused, 'x and weights')
  return fused


def check_fused(fused: jax.Array, name: str) -> None:
  """Raises when a concrete weighted sum overflowed its dtype (shared with energy, entropy)."""
  checks.check_fused(fused, name, quantity='weighted sum of the modalities\' outputs',
                     remedy='bound the weights and the outputs')


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
  checks.check_mask(present, jnp.shape(weights))
  count = jnp.sum(present, axis=1, dtype=weights.dtype)
  safe = jnp.maximum(count, 1)
  mean_w = jnp.sum(jnp.where(present, weights, 0), axis=1) / safe
  mean_l = jnp.sum(jnp.where(present, losses, 0), axis=1) / safe
  products = jnp.where(present, (weights - mean_w[:, None]) * (losses - mean_l[:, None]), 0)
  return jnp.where(count > 1, jnp.sum(products, axis=1) / safe, 0)
