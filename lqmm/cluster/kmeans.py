"""k-means in JAX: k-means++ seeding, Lloyd iterations, restarts in one vmapped program.

Fixed shapes throughout (`N` samples, `K` clusters, `R` restarts), so a sweep over masks, rates
and seeds is one compiled call under `jax.vmap`. Missing samples enter as zero `weights`, never
by boolean indexing: a zero-weight row is assigned a cluster but neither moves a centre nor
counts in the inertia, and is never drawn as a seed.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from lqmm import checks

__all__ = ['KMeansResult', 'assign', 'kmeans', 'kmeans_plus_plus', 'squared_distances']


class KMeansResult(NamedTuple):
  """The best restart of `kmeans`.

  Attributes:
    labels: int32 `[N]`, each sample's nearest centre.
    centers: `[K, D]`.
    inertia: weighted sum of squared distances to the nearest centre.
    trace: `[max_iter]` the inertia before each Lloyd update (non-increasing); entries after
      the last iteration repeat the final inertia.
    num_iterations: Lloyd iterations run (at most `max_iter`).
  """
  labels: jax.Array
  centers: jax.Array
  inertia: jax.Array
  trace: jax.Array
  num_iterations: jax.Array


def squared_distances(x: jax.Array, centers: jax.Array) -> jax.Array:
  """`||x_n - c_k||^2` as `[N, K]`, by one matmul, clamped at zero against round-off.

  Raises:
    ValueError: `x` `[N, D]` and `centers` `[K, D]` of different widths, no centre, or NaN /
      infinite values. TypeError: non-float inputs.

  Example:
    >>> import jax.numpy as jnp
    >>> squared_distances(jnp.array([[0.0, 0.0], [3.0, 4.0]]), jnp.array([[0.0, 0.0]])).tolist()
    [[0.0], [25.0]]
  """
  x, centers = _check_pair(x, centers)
  return _squared_distances(x, centers)


def _check_pair(x, centers) -> tuple[jax.Array, jax.Array]:
  """Validates samples `[N, D]` and centres `[K, D]` (finite floats of one width)."""
  x = checks.as_floats(x, 'x', '[N, D]', rank=2)
  centers = checks.as_floats(centers, 'centers', '[K, D]', rank=2)
  if x.ndim != 2 or centers.ndim != 2 or x.shape[1] != centers.shape[1]:
    raise ValueError(f'x [N, D] and centers [K, D] must be matrices of the same width D; got '
                     f'shapes {x.shape} and {centers.shape}.')
  checks.check_nonempty(centers, 'centers', what='centre')
  checks.check_finite(x, 'x')
  checks.check_finite(centers, 'centers')
  dtype = jnp.result_type(x, centers)
  return x.astype(dtype), centers.astype(dtype)


def _squared_distances(x: jax.Array, centers: jax.Array) -> jax.Array:
  """`squared_distances` of validated inputs."""
  cross = jnp.matmul(x, centers.T, precision=jax.lax.Precision.HIGHEST)
  distances = (jnp.sum(x * x, axis=-1)[:, None] - 2 * cross
               + jnp.sum(centers * centers, axis=-1)[None, :])
  return jnp.maximum(distances, 0)


def assign(x: jax.Array, centers: jax.Array) -> jax.Array:
  """The nearest centre of every row of `x`, int32 `[N]` (`x` `[N, D]`, `centers` `[K, D]`).

  Raises:
    ValueError: shapes that do not match, no centre, or NaN / infinite values.
  """
  return jnp.argmin(squared_distances(x, centers), axis=-1).astype(jnp.int32)


def kmeans_plus_plus(x: jax.Array, num_clusters: int, *, key: jax.Array, weights=None,
                     num_local_trials: int | None = None) -> jax.Array:
  """Greedy k-means++ seeding (Arthur and Vassilvitskii; scikit-learn's variant).

  The first centre is a sample drawn with probability proportional to its weight; each next
  one is the best of `num_local_trials` candidates drawn with probability proportional to
  `weight * D(x)^2` (the squared distance to the nearest chosen centre), best meaning the
  lowest resulting potential. scikit-learn's default of `2 + floor(log K)` trials.

  Args:
    x: `[N, D]` float samples.
    num_clusters: K (static), at most the number of samples of positive weight.
    key: a typed PRNG key.
    weights: optional non-negative `[N]`; zero-weight samples are never chosen.
    num_local_trials: candidates per centre (static); None = `2 + floor(log K)`.

  Returns:
    `[K, D]` initial centres (rows of `x`).

  References:
    Arthur, Vassilvitskii. "k-means++: The Advantages of Careful Seeding." SODA 2007.
  """
  x, weights = _check(x, num_clusters, weights, key)
  trials = 2 + int(math.log(num_clusters)) if num_local_trials is None else (
      checks.check_integer(num_local_trials, 'num_local_trials', minimum=1))
  return _plus_plus(x, weights, key, num_clusters, trials)


def _plus_plus(x, weights, key, num_clusters: int, trials: int) -> jax.Array:
  """`kmeans_plus_plus` of validated inputs."""
  first_key, loop_key = jax.random.split(key)
  first = jax.random.choice(first_key, x.shape[0], p=weights / jnp.sum(weights))
  centers = jnp.zeros((num_clusters, x.shape[1]), x.dtype).at[0].set(x[first])
  closest = _squared_distances(x, x[first][None])[:, 0]

  def step(index, carry):
    centers, closest = carry
    potential = weights * closest
    # All remaining mass may sit on chosen points (duplicates): fall back to the weights.
    probabilities = jnp.where(jnp.sum(potential) > 0, potential, weights)
    candidates = jax.random.choice(jax.random.fold_in(loop_key, index), x.shape[0], (trials,),
                                   p=probabilities / jnp.sum(probabilities))
    to_candidates = _squared_distances(x, x[candidates])                   # [N, trials]
    updated = jnp.minimum(closest[:, None], to_candidates)
    best = jnp.argmin(jnp.sum(weights[:, None] * updated, axis=0))
    return centers.at[index].set(x[candidates[best]]), updated[:, best]

  centers, _ = jax.lax.fori_loop(1, num_clusters, step, (centers, closest))
  return centers


def _check(x, num_clusters, weights, key):
  checks.check_key(key)
  x = checks.as_floats(x, 'x', '[N, D]', rank=2)
  if x.ndim != 2:
    raise ValueError(f'x must have shape [N, D]; got shape {x.shape}.')
  checks.check_nonempty(x, 'x', what='sample')
  checks.check_finite(x, 'x')
  num_clusters = checks.check_integer(num_clusters, 'num_clusters', minimum=1)
  if num_clusters > x.shape[0]:
    raise ValueError(f'num_clusters must be at most the number of samples N = {x.shape[0]}; '
                     f'got {num_clusters}.')
  if weights is None:
    weights = jnp.ones(x.shape[0], x.dtype)
  else:
    if jnp.shape(weights) != (x.shape[0],):
      raise ValueError(f'weights must have shape [N] = ({x.shape[0]},); got '
                       f'{jnp.shape(weights)}.')
    weights = checks.as_floats(weights, 'weights', '[N]').astype(x.dtype)

    def find_problem(values):
      if (values < 0).any() or not (values >= 0).all():
        return 'weights must be finite and non-negative (0 = a missing sample).'
      if (values > 0).sum() < num_clusters:
        return (f'weights give only {int((values > 0).sum())} samples of positive weight for '
                f'num_clusters = {num_clusters}: each cluster needs one.')
      return None

    checks.check_values(find_problem, weights)
    checks.check_finite(weights, 'weights')
  return x, weights


def kmeans(x: jax.Array, num_clusters: int, *, key: jax.Array, weights=None,
           num_restarts: int = 10, max_iter: int = 300, tol: float = 1e-4,
           init=None) -> KMeansResult:
  """Weighted k-means (Lloyd) from k-means++ seeds; the best of `num_restarts` restarts.

  Restarts run in one vmapped program. Each Lloyd iteration assigns every sample to its
  nearest centre and moves each centre to the weighted mean of its samples; a cluster left
  empty is reseeded at the positive-weight sample farthest from its centre (the farthest for
  the first empty cluster, the next farthest for the second, ...; scikit-learn's rule). It
  stops when the squared centre shift is at most `tol` times the mean per-feature variance of
  the data (scikit-learn's tolerance) or after `max_iter` iterations; labels are then assigned
  to the final centres.

  Args:
    x: `[N, D]` float samples.
    num_clusters: K (static), at most the number of positive-weight samples.
    key: a typed PRNG key.
    weights: optional non-negative `[N]` sample weights (0 = missing sample).
    num_restarts: restarts (static, >= 1); the one with the lowest inertia is returned.
    max_iter: Lloyd iteration cap (static, >= 1).
    tol: relative tolerance on the centre shift (>= 0).
    init: None for k-means++ seeds, or initial centres `[K, D]` (every restart starts there,
      so one is enough) or `[R, K, D]` (one per restart; R must equal `num_restarts`).

  Returns:
    A `KMeansResult`.

  Raises:
    ValueError: `x` not `[N, D]`, empty or not finite; `num_clusters` above N (or above the
      positive-weight samples); negative or NaN weights; a negative `tol`; `init` of the
      wrong shape or not finite.
    TypeError: non-integer counts, a bad key.

  References:
    Lloyd. "Least Squares Quantization in PCM." IEEE Trans. Inf. Theory 1982.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> x = jnp.array([[0.0], [0.1], [5.0], [5.1]])
    >>> result = kmeans(x, 2, key=jax.random.key(0))
    >>> bool(result.labels[0] == result.labels[1] != result.labels[2] == result.labels[3])
    True
  """
  x, weights = _check(x, num_clusters, weights, key)
  num_restarts = checks.check_integer(num_restarts, 'num_restarts', minimum=1)
  max_iter = checks.check_integer(max_iter, 'max_iter', minimum=1)
  checks.check_scalar(tol, 'tol', low=0)
  if init is not None:
    init = checks.as_floats(init, 'init', '[K, D]', rank=2).astype(x.dtype)
    shape = (num_clusters, x.shape[1])
    if init.shape not in (shape, (num_restarts,) + shape):
      raise ValueError(f'init must have shape [K, D] = {shape} or [R, K, D] = '
                       f'{(num_restarts,) + shape}; got {init.shape}.')
    checks.check_finite(init, 'init')
    init = jnp.broadcast_to(init, (num_restarts,) + shape)
  return _kmeans(x, weights, key, jnp.asarray(tol, x.dtype), init, num_clusters, num_restarts,
                 max_iter)


@functools.partial(jax.jit, static_argnums=(5, 6, 7))
def _kmeans(x, weights, key, tol, init, num_clusters: int, num_restarts: int,
            max_iter: int) -> KMeansResult:
  """`kmeans` of validated inputs (jitted; vmap over any argument but the static ones)."""
  total = jnp.sum(weights)
  mean = jnp.sum(weights[:, None] * x, axis=0) / total
  variance = jnp.sum(weights[:, None] * (x - mean[None, :]) ** 2, axis=0) / total
  threshold = tol * jnp.mean(variance)
  trials = 2 + int(math.log(num_clusters))
  keys = jax.random.split(key, num_restarts)
  starts = init if init is not None else jax.vmap(
      lambda k: _plus_plus(x, weights, k, num_clusters, trials))(keys)
  runs = jax.vmap(lambda c: _lloyd(x, weights, c, threshold, max_iter))(starts)
  best = jnp.argmin(runs.inertia)
  return jax.tree.map(lambda leaf: leaf[best], runs)


def _lloyd(x, weights, centers, threshold, max_iter: int) -> KMeansResult:
  """Lloyd iterations from `centers` until the shift falls to `threshold`."""
  num_clusters = centers.shape[0]

  def update(centers):
    distances = _squared_distances(x, centers)
    labels = jnp.argmin(distances, axis=-1)
    nearest = jnp.take_along_axis(distances, labels[:, None], axis=-1)[:, 0]
    inertia = jnp.sum(weights * nearest)
    one_hot = jax.nn.one_hot(labels, num_clusters, dtype=x.dtype) * weights[:, None]
    mass = jnp.sum(one_hot, axis=0)
    sums = jnp.matmul(one_hot.T, x, precision=jax.lax.Precision.HIGHEST)
    moved = sums / jnp.maximum(mass, jnp.finfo(x.dtype).tiny)[:, None]
    # Reseed empty clusters at the farthest positive-weight samples, in order.
    empty = mass <= 0
    # At most K clusters are empty, so the K farthest samples suffice: `top_k` (ties to the
    # lower index, as a stable sort) instead of sorting all N every iteration.
    _, farthest = jax.lax.top_k(jnp.where(weights > 0, nearest, -1.0),
                                min(num_clusters, x.shape[0]))
    slot = jnp.cumsum(empty) - 1
    reseeded = x[farthest[jnp.clip(slot, 0, farthest.shape[0] - 1)]]
    return jnp.where(empty[:, None], reseeded, moved), inertia

  def cond(carry):
    _, _, shift, iteration, _ = carry
    return (iteration < max_iter) & (shift > threshold)

  def body(carry):
    centers, trace, _, iteration, _ = carry
    new_centers, inertia = update(centers)
    shift = jnp.sum((new_centers - centers) ** 2)
    return new_centers, trace.at[iteration].set(inertia), shift, iteration + 1, inertia

  trace = jnp.zeros(max_iter, x.dtype)
  init = (centers, trace, jnp.asarray(jnp.inf, x.dtype), jnp.int32(0), jnp.asarray(0, x.dtype))
  centers, trace, _, iterations, _ = jax.lax.while_loop(cond, body, init)
  distances = _squared_distances(x, centers)
  labels = jnp.argmin(distances, axis=-1).astype(jnp.int32)
  inertia = jnp.sum(weights * jnp.min(distances, axis=-1))
  trace = jnp.where(jnp.arange(max_iter, dtype=jnp.int32) < iterations, trace, inertia)
  return KMeansResult(labels, centers, inertia, trace, iterations)
