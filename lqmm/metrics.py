"""Evaluation metrics: accuracy, calibration and uncertainty quality.

Pure `jax.numpy`, jit- and vmap-friendly (no data-dependent shapes), so a `[S, B, K]` stack of
seeds can be scored with `jax.vmap`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks

__all__ = ['accuracy', 'auroc', 'expected_calibration_error', 'uncertainty_auroc']


def _check_no_nan(values, name: str, expected: str) -> None:
  """Raises ValueError naming `name` when concrete floating `values` hold NaN."""

  def find_problem(values):
    if np.issubdtype(values.dtype, np.floating) and np.any(np.isnan(values)):
      return f'{name} holds {int(np.isnan(values).sum())} NaN value(s); expected {expected}.'
    return None

  checks.check_values(find_problem, values)


def _check_scores(probabilities, labels, name: str = 'probabilities') -> None:
  """Rank >= 2, floating, no NaN, a non-empty batch, labels in range."""
  checks.check_rank_at_least(probabilities, 2, name, '[B, K]')
  checks.check_floating(probabilities, name)
  checks.check_nonempty(probabilities, name)
  checks.check_labels(labels, jnp.shape(probabilities)[-1], jnp.shape(probabilities)[:-1])
  _check_no_nan(probabilities, name, 'scores')


def accuracy(scores: jax.Array, labels: jax.Array) -> jax.Array:
  """Top-1 accuracy of `argmax(scores)`.

  Args:
    scores: `[B, K]` probabilities, logits or evidence (any monotone score).
    labels: integer classes `[B]`.

  Returns:
    A scalar in `[0, 1]`.

  Raises:
    ValueError: an empty batch, NaN scores, or labels out of `[0, K)`.
    TypeError: non-floating scores or non-integer labels.

  Example:
    >>> import jax.numpy as jnp
    >>> accuracy(jnp.array([[0.9, 0.1], [0.2, 0.8]]), jnp.array([0, 0]))
    Array(0.5, dtype=float32)
  """
  _check_scores(scores, labels, 'scores')
  return jnp.mean((jnp.argmax(scores, axis=-1) == labels).astype(jnp.float32))


def expected_calibration_error(probabilities: jax.Array, labels: jax.Array,
                               num_bins: int = 15) -> jax.Array:
  """Expected calibration error with equal-width confidence bins.

      ECE = sum_b (n_b / n) |acc_b - conf_b|

  where the confidence is the top probability and bins split `(0, 1]` into `num_bins` equal
  intervals `((i - 1) / n, i / n]` (the convention of Guo et al. 2017).

  Args:
    probabilities: `[B, K]` class probabilities (rows sum to 1).
    labels: integer classes `[B]`.
    num_bins: number of confidence bins (static).

  Returns:
    A scalar in `[0, 1]`.

  Raises:
    ValueError: an empty batch; values outside `[0, 1]`, NaN, or rows that do not sum to 1
      (logits passed instead of probabilities); labels out of range; `num_bins < 1`.
    TypeError: `num_bins` is not an integer.

  References:
    Guo, Pleiss, Sun, Weinberger. "On Calibration of Modern Neural Networks." ICML 2017.

  Example:
    >>> import jax.numpy as jnp
    >>> expected_calibration_error(jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([0, 0]))
    Array(0.5, dtype=float32)
  """
  _check_scores(probabilities, labels)
  checks.as_probabilities(probabilities, 'probabilities', '[B, K]', rank=2)
  checks.check_normalized(probabilities, 'probabilities')
  num_bins = checks.check_integer(num_bins, 'num_bins', minimum=1)
  confidence = jnp.max(probabilities, axis=-1).astype(jnp.float32)
  correct = (jnp.argmax(probabilities, axis=-1) == labels).astype(jnp.float32)
  bins = jnp.clip(jnp.ceil(confidence * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
  count = jnp.zeros(num_bins, jnp.float32).at[bins].add(1)
  gap = jnp.zeros(num_bins, jnp.float32).at[bins].add(correct - confidence)
  return jnp.sum(jnp.abs(gap)) / jnp.maximum(jnp.sum(count), 1)


def auroc(scores: jax.Array, positives: jax.Array) -> jax.Array:
  """Area under the ROC curve of `scores` for detecting `positives` (ties count one half).

  Computed as the Mann-Whitney statistic with average ranks, in O(B log B).

  Args:
    scores: `[B]` real scores; higher means "more likely positive".
    positives: bool `[B]`.

  Returns:
    A scalar in `[0, 1]`; NaN when `positives` is all True or all False (the area is then
    undefined: there is no pair to rank).

  Raises:
    ValueError: shapes differ or are not `[B]`, an empty batch, or NaN scores (a NaN would
      otherwise sort last and give a plausible wrong area). `+-inf` scores rank normally.
    TypeError: `positives` is not bool or `scores` not real.

  Example:
    >>> import jax.numpy as jnp
    >>> auroc(jnp.array([0.1, 0.9, 0.4]), jnp.array([False, True, False]))
    Array(1., dtype=float32)
  """
  if jnp.ndim(scores) != 1 or jnp.shape(positives) != jnp.shape(scores):
    raise ValueError(f'scores and positives must both have shape [B]; got {jnp.shape(scores)} '
                     f'and {jnp.shape(positives)}.')
  if jnp.result_type(positives) != jnp.bool_:
    raise TypeError(f'positives must be a bool array; got dtype {jnp.result_type(positives)}.')
  checks.check_nonempty(scores, 'scores')
  _check_no_nan(scores, 'scores', 'real scores (AUROC ranks them)')
  return _auroc(scores, positives)


def _auroc(scores: jax.Array, positives: jax.Array) -> jax.Array:
  """`auroc` of validated inputs."""
  scores = jnp.asarray(scores).astype(jnp.float32)
  sorted_scores = jnp.sort(scores)
  # Average rank of each score (1-based), handling ties.
  lower = jnp.searchsorted(sorted_scores, scores, side='left').astype(jnp.float32)
  upper = jnp.searchsorted(sorted_scores, scores, side='right').astype(jnp.float32)
  rank = (lower + upper + 1) / 2
  num_pos = jnp.sum(positives).astype(jnp.float32)
  num_neg = scores.shape[0] - num_pos
  rank_sum = jnp.sum(jnp.where(positives, rank, 0))
  return (rank_sum - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg)


def uncertainty_auroc(uncertainty: jax.Array, scores: jax.Array, labels: jax.Array) -> jax.Array:
  """AUROC of `uncertainty` for detecting misclassified samples (higher is better).

  Args:
    uncertainty: `[B]`, higher = less sure.
    scores: `[B, K]` scores whose argmax is the prediction.
    labels: integer classes `[B]`.

  Returns:
    A scalar in `[0, 1]`; 0.5 is chance, NaN when all or no samples are misclassified.

  Raises:
    ValueError: as `accuracy` and `auroc` (NaN uncertainty or scores, an empty batch).
  """
  _check_scores(scores, labels, 'scores')
  if jnp.shape(uncertainty) != jnp.shape(scores)[:-1]:
    raise ValueError(f'uncertainty must have shape {jnp.shape(scores)[:-1]} (one value per '
                     f'sample); got shape {jnp.shape(uncertainty)}.')
  checks.check_floating(uncertainty, 'uncertainty')
  _check_no_nan(uncertainty, 'uncertainty', 'one real value per sample')
  wrong = jnp.argmax(scores, axis=-1) != labels
  return _auroc(uncertainty, wrong)
