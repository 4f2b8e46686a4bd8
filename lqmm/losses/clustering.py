"""Losses of deep (incomplete) clustering: graph smoothness, centroid pull, self-paced weights.

CDIMC-net (Wen et al., IJCAI 2020) fine-tunes per-view encoders so that each sample's fused
code moves toward a fixed k-means centre, counting only the "easy" samples (self-paced
learning: those closer to their centre than a threshold that grows over the iterations), while
a graph term keeps the codes of neighbouring samples close.

References:
  Wen, Zhang, Xu, Zhang, Fei, Xie. "CDIMC-net: Cognitive Deep Incomplete Multi-view Clustering
  Network." IJCAI 2020.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lqmm import checks

__all__ = ['centroid_loss', 'graph_smoothness', 'self_paced_weights']


def graph_smoothness(codes: jax.Array, adjacency: jax.Array) -> jax.Array:
  """`tr(Z^T L Z) = 1/2 sum_ij A_ij ||z_i - z_j||^2` with `L = diag(A 1) - A`.

  Args:
    codes: `[B, L]` float codes.
    adjacency: `[B, B]` symmetric non-negative weights.

  Returns:
    A scalar (a sum; divide by B for a per-sample mean).

  Raises:
    ValueError: shapes that do not match. TypeError: non-float codes.

  Example:
    >>> import jax.numpy as jnp
    >>> graph_smoothness(jnp.array([[0.0], [2.0]]), jnp.array([[0.0, 1.0], [1.0, 0.0]]))
    Array(4., dtype=float32)
  """
  codes = checks.as_floats(codes, 'codes', '[B, L]', rank=2)
  size = codes.shape[0]
  if tuple(jnp.shape(adjacency)) != (size, size):
    raise ValueError(f'adjacency must have shape [B, B] = {(size, size)}; got '
                     f'{jnp.shape(adjacency)}.')
  adjacency = checks.as_floats(adjacency, 'adjacency', '[B, B]', rank=2).astype(codes.dtype)
  checks.check_finite(adjacency, 'adjacency')
  checks.check_finite(codes, 'codes')
  degree = jnp.sum(adjacency, axis=1)
  return (jnp.sum(degree * jnp.sum(codes * codes, axis=1))
          - jnp.sum(adjacency * (codes @ codes.T)))


def centroid_loss(codes: jax.Array, centres: jax.Array, labels: jax.Array,
                  weights: jax.Array) -> jax.Array:
  """Weighted mean squared distance of each code to its cluster's centre.

      sum_i w_i mean_l (z_il - u_{y_i l})^2 / sum_i w_i

  (CDIMC-net's clustering loss: the mean over the latent dimensions, then over the weighted
  samples; 0 when every weight is 0).

  Args:
    codes: `[B, L]` float codes.
    centres: `[K, L]` fixed cluster centres.
    labels: int `[B]` cluster of each code, in `[0, K)`.
    weights: `[B]` non-negative sample weights (the self-paced 0/1 weights).

  Returns:
    A scalar.

  Raises:
    ValueError: shapes that do not match, labels out of range, negative or NaN weights.

  Example:
    >>> import jax.numpy as jnp
    >>> centroid_loss(jnp.array([[1.0, 1.0], [5.0, 5.0]]), jnp.zeros((1, 2)),
    ...               jnp.array([0, 0]), jnp.array([1.0, 0.0]))
    Array(1., dtype=float32)
  """
  codes = checks.as_floats(codes, 'codes', '[B, L]', rank=2)
  centres = checks.as_floats(centres, 'centres', '[K, L]', rank=2)
  if centres.ndim != 2 or centres.shape[1] != codes.shape[1]:
    raise ValueError(f'centres must have shape [K, L] with L = {codes.shape[1]}; got '
                     f'{centres.shape}.')
  checks.check_labels(labels, centres.shape[0], codes.shape[:1])
  if tuple(jnp.shape(weights)) != codes.shape[:1]:
    raise ValueError(f'weights must have shape [B] = {codes.shape[:1]}; got '
                     f'{jnp.shape(weights)}.')
  weights = checks.as_floats(weights, 'weights', '[B]').astype(codes.dtype)
  checks.check_scalar(weights, 'weights', low=0)
  checks.check_finite(codes, 'codes')
  checks.check_finite(centres, 'centres')
  distance = jnp.mean((codes - jnp.take(centres, labels, axis=0).astype(codes.dtype)) ** 2,
                      axis=1)
  total = jnp.sum(weights)
  return jnp.sum(weights * distance) / jnp.where(total > 0, total, 1)


def self_paced_weights(distances: jax.Array, iteration, num_iterations) -> jax.Array:
  """0/1 weights of the "easy" samples: `d_i < mean(d) + iteration * std(d) / num_iterations`.

  The threshold starts at the mean distance (about half the samples) and grows by one sample
  standard deviation (ddof = 1) over `num_iterations` (CDIMC-net's Eq. 13; strict `<`).

  Args:
    distances: `[N]` each sample's squared distance to its nearest centre.
    iteration: the current outer iteration, from 0 (may be traced).
    num_iterations: the number of outer iterations T (> 0).

  Returns:
    float `[N]` of 0 and 1.

  Raises:
    ValueError: fewer than two distances, NaN distances, a negative iteration or a
      non-positive `num_iterations`.

  Example:
    >>> import jax.numpy as jnp
    >>> self_paced_weights(jnp.array([0.0, 1.0, 2.0, 3.0]), 0, 10).tolist()
    [1.0, 1.0, 0.0, 0.0]
  """
  distances = checks.as_floats(distances, 'distances', '[N]')
  if distances.ndim != 1 or distances.shape[0] < 2:
    raise ValueError(f'distances must have shape [N] with N >= 2 (a standard deviation); got '
                     f'{distances.shape}.')
  checks.check_finite(distances, 'distances')
  checks.check_scalar(iteration, 'iteration', low=0)
  checks.check_scalar(num_iterations, 'num_iterations', low=0, low_open=True)
  spread = jnp.std(distances, ddof=1)
  threshold = jnp.mean(distances) + (jnp.asarray(iteration, distances.dtype) * spread
                                     / jnp.asarray(num_iterations, distances.dtype))
  return (distances < threshold).astype(distances.dtype)
