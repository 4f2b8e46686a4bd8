"""Noisy correspondence: find mismatched pairs from their training loss (NCR and successors).

When some pairs of a paired data set do not correspond (an image with another image's
caption, one view of a sample beside another sample's second view), their loss under a model
trained on all pairs stays high: the per-sample losses are bimodal. NCR (Huang et al., NeurIPS
2021) fits a two-component 1-D Gaussian mixture to the min-max normalised losses and reads the
responsibility of the lower-mean component as each pair's probability of being clean; the
pairs above a threshold train as clean (with rectified soft labels), the others as unlabeled.

`gaussian_mixture_1d` is scikit-learn's `GaussianMixture(n_components=2)` (full covariance,
k-means initialisation, EM with its stopping rule, the final parameters) in one jit-able
function; `clean_probability` is NCR's use of it; `split_clean` NCR's split with its fallback;
`co_teaching_split` NCR's co-divide, where each of two networks trains on the split made from
the other's per-sample losses (a loss memory indexed by sample id: `[2, N]`).

The loss memory is an `[N]` array per network, row i the loss of sample id i: computed in one
pass over the training split in a fixed order (NCR's `eval_train`; `experiments/ncr_handwritten`
does this before every epoch), or filled batch by batch during training with
`lqmm.losses.ranking.update_history` on a fresh `init_history(N)` each epoch (the batch's
sample ids as `indices`; each sample visited once per epoch, so the sum is its loss).

References:
  Huang, Niu, Peng, Hu, Wang, Liu. "Learning with Noisy Correspondence for Cross-modal
  Matching." NeurIPS 2021.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm import cluster

__all__ = ['TwoGaussians', 'clean_probability', 'co_teaching_split', 'gaussian_mixture_1d',
           'split_clean', 'two_means_labels']


class TwoGaussians(NamedTuple):
  """A fitted two-component 1-D Gaussian mixture (scikit-learn's attribute meanings).

  Attributes:
    weights: `[2]` mixing weights (`weights_`).
    means: `[2]` component means (`means_[:, 0]`).
    variances: `[2]` component variances, reg_covar included (`covariances_[:, 0, 0]`).
    responsibilities: `[N]` x `[2]`: each sample's posterior under the final parameters
      (`predict_proba`).
    num_iterations: EM iterations run (`n_iter_`).
    converged: whether the lower bound changed by less than `tol` (`converged_`).
    lower_bound: the mean log-likelihood after the last iteration (`lower_bound_`).
  """
  weights: jax.Array
  means: jax.Array
  variances: jax.Array
  responsibilities: jax.Array
  num_iterations: jax.Array
  converged: jax.Array
  lower_bound: jax.Array


# ------------------------------------------------------------------ k-means initialisation


def _two_means(x: jax.Array) -> jax.Array:
  """Labels (0 = the lower group) of the optimal 2-means split of 1-D `x`."""
  centred = x - jnp.mean(x)
  ordered = jnp.sort(centred)
  count = ordered.shape[0]
  sums, squares = jnp.cumsum(ordered), jnp.cumsum(ordered * ordered)
  left = jnp.arange(1, count, dtype=x.dtype)
  left_sum, left_square = sums[:-1], squares[:-1]
  right_sum, right_square = sums[-1] - left_sum, squares[-1] - left_square
  cost = (left_square - left_sum ** 2 / left + right_square - right_sum ** 2 / (count - left))
  # Equal values never split: a split must fall between two different values.
  cost = jnp.where(ordered[1:] > ordered[:-1], cost, jnp.inf)
  threshold = ordered[jnp.argmin(cost)]
  return (centred > threshold).astype(jnp.int32)


def _lloyd(centred, centers, tol, max_iter: int = 300) -> jax.Array:
  """scikit-learn's `_kmeans_single_lloyd` for 1-D data and 2 clusters, from `centers`.

  Each iteration assigns every sample to the nearest centre by `c^2 - 2 x c` (scikit-learn's
  distances without `x^2`; ties to the first centre), moves the centres to their means, and
  stops when the labels repeat (strict convergence) or the squared centre shift is at most
  `tol` (then the labels are recomputed from the final centres). An empty cluster keeps its
  centre (scikit-learn relocates it to a far sample; two centres drawn by k-means++ from
  distinct values never empty a cluster in 1-D).
  """
  def assign(centers):
    return jnp.argmin(centers[None, :] ** 2 - 2 * centred[:, None] * centers[None, :],
                      axis=1).astype(jnp.int32)

  def cond(carry):
    _, _, _, iteration, done = carry
    return (iteration < max_iter) & ~done

  def body(carry):
    centers, labels_old, _, iteration, _ = carry
    labels = assign(centers)
    member = jax.nn.one_hot(labels, 2, dtype=centred.dtype)
    counts = jnp.sum(member, axis=0)
    moved = jnp.where(counts > 0, (member.T @ centred) / jnp.maximum(counts, 1), centers)
    strict = jnp.all(labels == labels_old)
    done = strict | (jnp.sum((moved - centers) ** 2) <= tol)
    return moved, labels, strict, iteration + 1, done

  start = (centers, jnp.full(centred.shape, -1, jnp.int32), jnp.asarray(False), jnp.int32(0),
           jnp.asarray(False))
  centers, labels, strict, _, _ = jax.lax.while_loop(cond, body, start)
  return jnp.where(strict, labels, assign(centers))


def _initial_labels(x, key, kmeans_centers):
  """k-means labels of 1-D `x`: Lloyd from `kmeans_centers`, from a k-means++ draw with `key`,
  or the optimal split when both are None."""
  if kmeans_centers is None and key is None:
    return _two_means(x)
  mean = jnp.mean(x)
  centred = x - mean       # scikit-learn's KMeans centres the data first
  if kmeans_centers is None:
    centers = cluster.kmeans_plus_plus(centred[:, None], 2, key=key)[:, 0]
  else:
    centers = kmeans_centers - mean
  tol = 1e-4 * jnp.var(centred)            # scikit-learn's _tolerance(X, 1e-4)
  return _lloyd(centred, centers, tol)


def two_means_labels(x) -> jax.Array:
  """The optimal 2-means clustering of a 1-D sample: int32 labels, 0 = the lower group.

  In one dimension the optimal split is a threshold between two sorted values; all N - 1 are
  scored from cumulative sums (O(N log N)) and the best kept, ties going to the first. Lloyd's
  algorithm (scikit-learn's `KMeans`) converges to this split whenever it finds the global
  optimum, which it does on the bimodal loss distributions `clean_probability` sees.

  Example:
    >>> import jax.numpy as jnp
    >>> two_means_labels(jnp.array([0.1, 0.9, 0.2, 1.0, 0.0])).tolist()
    [0, 1, 0, 1, 0]
  """
  x = _as_sample(x, 'x')
  return _two_means(x)


# ------------------------------------------------------------------ EM


def _estimate(x, responsibilities, reg_covar):
  """`_estimate_gaussian_parameters` (full covariance, one feature): counts, means, variances."""
  counts = jnp.sum(responsibilities, axis=0) + 10 * jnp.finfo(x.dtype).eps
  means = (responsibilities.T @ x) / counts
  difference = x[:, None] - means[None, :]
  variances = jnp.sum(responsibilities * difference * difference, axis=0) / counts + reg_covar
  return counts, means, variances


def _log_responsibilities(x, weights, means, precision_roots):
  """scikit-learn's E-step: (mean log-likelihood, log responsibilities `[N, 2]`)."""
  y = x[:, None] * precision_roots[None, :] - (means * precision_roots)[None, :]
  log_gauss = -0.5 * (math.log(2 * math.pi) + y * y) + jnp.log(precision_roots)[None, :]
  weighted = log_gauss + jnp.log(weights)[None, :]
  norm = jax.scipy.special.logsumexp(weighted, axis=1)
  return jnp.mean(norm), weighted - norm[:, None]


@functools.partial(jax.jit, static_argnums=(7,))
def _fit(x, labels, reg_covar, tol, weights_init, means_init, precisions_init, max_iter: int):
  responsibilities = jax.nn.one_hot(labels, 2, dtype=x.dtype)
  counts, means, variances = _estimate(x, responsibilities, reg_covar)
  weights = counts / x.shape[0]
  weights = jnp.where(jnp.isnan(weights_init), weights, weights_init)
  means = jnp.where(jnp.isnan(means_init), means, means_init)
  roots = jnp.where(jnp.isnan(precisions_init), 1.0 / jnp.sqrt(variances),
                    jnp.sqrt(precisions_init))

  def cond(carry):
    *_, iteration, converged, _ = carry
    return (iteration < max_iter) & ~converged

  def body(carry):
    weights, means, roots, _, iteration, _, lower_bound = carry
    new_bound, log_resp = _log_responsibilities(x, weights, means, roots)
    counts, means, variances = _estimate(x, jnp.exp(log_resp), reg_covar)
    converged = jnp.abs(new_bound - lower_bound) < tol
    return (counts / jnp.sum(counts), means, 1.0 / jnp.sqrt(variances), variances,
            iteration + 1, converged, new_bound)

  start = (weights, means, roots, 1.0 / roots ** 2, jnp.int32(0), jnp.asarray(False),
           jnp.asarray(-jnp.inf, x.dtype))
  weights, means, roots, variances, iterations, converged, bound = jax.lax.while_loop(
      cond, body, start)
  _, log_resp = _log_responsibilities(x, weights, means, roots)
  return TwoGaussians(weights, means, variances, jnp.exp(log_resp), iterations, converged,
                      bound)


def _as_sample(x, name: str) -> jax.Array:
  x = checks.as_floats(x, name, '[N]')
  if x.ndim != 1:
    raise ValueError(f'{name} must be one value per sample, shape [N]; got {x.shape}.')
  if x.shape[0] < 2:
    raise ValueError(f'{name} needs at least 2 samples for two components; got {x.shape[0]}.')

  def find_problem(values):
    if np.ptp(values) == 0:
      return (f'{name} are all equal ({values[0].item()!r}): a two-component mixture of a '
              'constant is undefined (zero variance); there is nothing to split.')
    return None

  checks.check_values(find_problem, x)
  return x


def _component_init(value, name: str, dtype, *, positive: bool = False) -> jax.Array:
  if value is None:
    return jnp.full((2,), jnp.nan, dtype)
  value = checks.as_floats(jnp.reshape(jnp.asarray(value), (-1,)), name, '[2]')
  if value.shape != (2,):
    raise ValueError(f'{name} must hold one value per component (2; scikit-learn\'s shapes '
                     f'(2,), (2, 1) or (2, 1, 1) are accepted); got {value.size} values.')

  def find_problem(values):
    if positive and np.any(values <= 0):
      return f'{name} must be positive; got {values.tolist()}.'
    if name == 'weights_init' and (np.any(values < 0) or abs(values.sum() - 1) > 1e-6):
      return f'weights_init must be non-negative and sum to 1; got {values.tolist()}.'
    return None

  checks.check_values(find_problem, value)
  return value.astype(dtype)


def gaussian_mixture_1d(x, *, max_iter: int = 100, tol=1e-3, reg_covar=1e-6,
                        weights_init=None, means_init=None, precisions_init=None, key=None,
                        kmeans_centers=None) -> TwoGaussians:
  """A two-component Gaussian mixture fitted to 1-D data by EM, as scikit-learn fits it.

  Equals `sklearn.mixture.GaussianMixture(n_components=2, covariance_type='full', ...)`
  with the same arguments (the defaults are scikit-learn's): responsibilities from k-means
  labels, the initial weights, means and variances estimated from them (each replaced by its
  `*_init` when given, as scikit-learn does), then EM: E-step, M-step (counts
  + 10 eps, variances + reg_covar), the mean log-likelihood as the lower bound, stopping when
  it changes by less than `tol` or after `max_iter` iterations; the returned responsibilities
  are an E-step with the final parameters (`predict_proba`). Jit- and vmap-able.

  The k-means labels: scikit-learn runs `KMeans(2, n_init=1)` (k-means++ seeds, then Lloyd
  with its tolerance 1e-4 of the variance) with its own random state. With `kmeans_centers`
  (the two seeds, e.g. `sklearn.cluster.kmeans_plusplus(x - x.mean(), 2, random_state=r)[0]
  + x.mean()`), lqmm runs the same Lloyd iterations from them and equals
  `GaussianMixture(random_state=r)` to round-off (tested); with `key`, the seeds are a k-means++
  draw (`lqmm.cluster.kmeans_plus_plus`, scikit-learn's algorithm, JAX's random numbers); with
  neither, the labels are the optimal 2-means split (`two_means_labels`), deterministic. On
  NCR-like losses scikit-learn's Lloyd stops short of the optimal split in about one fit in six
  (usually one boundary sample, sometimes a worse local optimum), so the three modes agree on
  most fits but not all.
  Args:
    x: `[N]` float samples (N >= 2, not all equal).
    max_iter: EM iteration cap (static, >= 1).
    tol: convergence threshold on the lower bound's change (>= 0).
    reg_covar: added to each variance (>= 0).
    weights_init, means_init, precisions_init: optional initial weights (summing to 1),
      means and precisions (1 / variance, > 0) of the two components.
    key: optional PRNG key for a k-means++ draw of the k-means seeds.
    kmeans_centers: optional `[2]` k-means seeds (takes precedence over `key`).

  Returns:
    `TwoGaussians`.

  Raises:
    ValueError: `x` not `[N]`, fewer than 2 samples, all equal, non-finite; an `*_init` with
      other than 2 values or invalid; negative `tol` or `reg_covar`; `max_iter` < 1.

  Example:
    >>> import jax.numpy as jnp
    >>> fit = gaussian_mixture_1d(jnp.array([0.0, 0.1, 0.2, 0.9, 1.0, 1.1]))
    >>> [round(float(m), 3) for m in sorted(fit.means)]
    [0.1, 1.0]
  """
  return _gaussian_mixture(_as_sample(x, 'x'), max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                           weights_init=weights_init, means_init=means_init,
                           precisions_init=precisions_init, key=key,
                           kmeans_centers=kmeans_centers)


def _gaussian_mixture(x, *, max_iter, tol, reg_covar, weights_init, means_init, precisions_init,
                      key, kmeans_centers) -> TwoGaussians:
  """`gaussian_mixture_1d` of a sample already checked by `_as_sample`."""
  max_iter = checks.check_integer(max_iter, 'max_iter', minimum=1)
  checks.check_scalar(tol, 'tol', low=0)
  checks.check_scalar(reg_covar, 'reg_covar', low=0)
  dtype = x.dtype
  inits = (_component_init(weights_init, 'weights_init', dtype),
           _component_init(means_init, 'means_init', dtype),
           _component_init(precisions_init, 'precisions_init', dtype, positive=True))
  if kmeans_centers is not None:
    kmeans_centers = _component_init(kmeans_centers, 'kmeans_centers', dtype)
  elif key is not None:
    checks.check_key(key)
  labels = _initial_labels_jit(x, key if kmeans_centers is None else None, kmeans_centers)
  return _fit(x, labels, jnp.asarray(reg_covar, dtype), jnp.asarray(tol, dtype), *inits,
              max_iter)


_initial_labels_jit = jax.jit(_initial_labels)


def clean_probability(losses, *, max_iter: int = 10, tol=1e-2, reg_covar=5e-4,
                      weights_init=None, means_init=None, precisions_init=None, key=None,
                      kmeans_centers=None) -> jax.Array:
  """NCR's probability that each pair is clean, from its per-sample loss.

  The losses are min-max normalised to [0, 1], a two-component Gaussian mixture is fitted
  (`gaussian_mixture_1d` with NCR's settings: 10 iterations, tol 1e-2, reg_covar 5e-4), and
  each sample's responsibility under the component with the lower mean is returned, whichever
  index that component has. The `*_init` values and `kmeans_centers` refer to the normalised
  losses; `key` / `kmeans_centers` choose the k-means seeding as in `gaussian_mixture_1d`
  (NCR leaves scikit-learn's random state unset).

  Args:
    losses: `[N]` per-sample losses (not all equal).
    max_iter, tol, reg_covar, weights_init, means_init, precisions_init, key,
      kmeans_centers: see `gaussian_mixture_1d`.

  Returns:
    `[N]` clean probabilities in [0, 1].

  Raises:
    ValueError: as `gaussian_mixture_1d`; constant losses (the normalisation divides by 0).

  Example:
    >>> import jax.numpy as jnp
    >>> losses = jnp.array([0.10, 0.12, 0.11, 0.13, 0.90, 0.95])
    >>> [round(float(p), 2) for p in clean_probability(losses)]
    [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
  """
  losses = _as_sample(losses, 'losses')
  normalised = (losses - jnp.min(losses)) / (jnp.max(losses) - jnp.min(losses))
  # The normalised losses of a checked sample are finite and not constant: fit without
  # checking (and pulling to the host) a second time.
  fit = _gaussian_mixture(normalised, max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                          weights_init=weights_init, means_init=means_init,
                          precisions_init=precisions_init, key=key,
                          kmeans_centers=kmeans_centers)
  return jnp.take(fit.responsibilities, jnp.argmin(fit.means), axis=1)


def split_clean(probability, threshold=0.5) -> jax.Array:
  """NCR's split: True (clean, labeled) where `probability > threshold`.

  When every probability exceeds the threshold (no pair looks noisy), NCR moves the threshold
  to the `N // 100`-th smallest probability so that about 1% of the pairs still train as
  unlabeled; so does this function.

  Example:
    >>> import jax.numpy as jnp
    >>> split_clean(jnp.array([0.9, 0.2, 0.7])).tolist()
    [True, False, True]
  """
  probability = checks.as_floats(probability, 'probability', '[N]')
  if probability.ndim != 1 or probability.shape[0] == 0:
    raise ValueError(f'probability must be a non-empty [N] array; got {probability.shape}.')
  checks.check_scalar(threshold, 'threshold', low=0, high=1)

  def find_problem(values):
    if np.any((values < 0) | (values > 1)):
      return f'probability must lie in [0, 1]; got {values.min()!r} to {values.max()!r}.'
    return None

  checks.check_values(find_problem, probability)
  fallback = jnp.sort(probability)[probability.shape[0] // 100]
  threshold = jnp.where(jnp.min(probability) > threshold, fallback, threshold)
  return probability > threshold


def co_teaching_split(losses, *, threshold=0.5, **mixture) -> tuple[jax.Array, jax.Array]:
  """NCR's co-divide: each of two networks trains on the split the other one makes.

  NCR (and DivideMix before it) trains two networks; at every epoch each network's per-sample
  losses on the whole training set (its loss memory, indexed by sample id) are split by
  `clean_probability` and `split_clean`, and the split goes to the *other* network, so the
  two do not confirm their own mistakes.

  Args:
    losses: `[2, N]` per-sample losses of network 0 and network 1 on the same N samples.
    threshold: `split_clean`'s threshold.
    **mixture: keyword arguments of `clean_probability` (`max_iter`, `tol`, `reg_covar`, ...).

  Returns:
    `(probability, clean)`, each `[2, N]`: row n is what network n trains on, made from the
    other network's losses (`probability[0] == clean_probability(losses[1])`).

  Raises:
    ValueError: `losses` not `[2, N]`, or a row that `clean_probability` rejects (NaN,
      infinite or constant losses), naming the row.

  Example:
    >>> import jax.numpy as jnp
    >>> losses = jnp.array([[0.1, 0.1, 0.2, 0.9, 0.1, 0.2], [0.9, 0.1, 0.1, 0.1, 0.2, 0.1]])
    >>> probability, clean = co_teaching_split(losses)
    >>> clean.tolist()
    [[False, True, True, True, True, True], [True, True, True, False, True, True]]
  """
  losses = checks.as_floats(losses, 'losses', '[2, N]')
  if losses.ndim != 2 or losses.shape[0] != 2:
    raise ValueError(f'losses must have shape [2, N] (two networks\' per-sample losses); got '
                     f'{losses.shape}.')
  for row in range(2):
    _as_sample(losses[row], f'losses[{row}]')
  swapped = losses[::-1]
  probability = jax.vmap(lambda row: clean_probability(row, **mixture))(swapped)
  clean = jax.vmap(lambda row: split_clean(row, threshold))(probability)
  return probability, clean
