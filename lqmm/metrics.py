"""Evaluation metrics: accuracy, calibration, uncertainty quality, clustering agreement, image
quality (PSNR, SSIM, equal to scikit-image's) and cross-modal retrieval (R@K, rsum).

The classification metrics are pure `jax.numpy`, jit- and vmap-friendly (no data-dependent
shapes), so a `[S, B, K]` stack of seeds can be scored with `jax.vmap`.

The clustering metrics (`clustering_accuracy`, `normalized_mutual_info`,
`adjusted_mutual_info`, `adjusted_rand_index`, `purity`, `contingency_table`) compare two
labelings whose values are arbitrary integers (a cluster id need not match a class id, either
side may use non-contiguous values and the numbers of classes and clusters may differ). They
run on the host in float64 NumPy, batched over leading run axes (`[..., N]` labels give a
`[...]` result): relabelling by value and the Hungarian matching (`scipy.optimize.
linear_sum_assignment`) have data-dependent shapes, and a table of results is computed once per
sweep, after the jitted solvers. They equal scikit-learn's functions of the same names.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks

__all__ = ['accuracy', 'adjusted_mutual_info', 'adjusted_rand_index', 'auroc',
           'clustering_accuracy', 'contingency_table', 'expected_calibration_error',
           'normalized_mutual_info', 'peak_signal_noise_ratio', 'purity',
           'retrieval_recall', 'structural_similarity', 'uncertainty_auroc']

#: `average_method` -> how NMI and AMI normalise the mutual information (scikit-learn's names).
AVERAGE_METHODS = ('arithmetic', 'geometric', 'max', 'min')


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


# ------------------------------------------------------------------ clustering agreement


def _as_labelings(labels_true, labels_pred) -> tuple[np.ndarray, np.ndarray]:
  """Validates two labelings `[..., N]` and broadcasts them to one `[R, N]` pair (int64)."""
  arrays = []
  for value, name in ((labels_true, 'labels_true'), (labels_pred, 'labels_pred')):
    array = np.asarray(value)
    if array.ndim < 1:
      raise ValueError(f'{name} must have shape [..., N] (one label per sample); got a scalar.')
    if array.dtype != np.bool_ and not np.issubdtype(array.dtype, np.integer):
      raise TypeError(f'{name} must hold integer labels (any values); got dtype {array.dtype}. '
                      'Cast float labels (e.g. read from a .mat file) with .astype(int).')
    if array.shape[-1] == 0:
      raise ValueError(f'{name} is empty: a labeling needs at least one sample (shape [..., N] '
                       'with N >= 1).')
    arrays.append(array.astype(np.int64))
  true, pred = arrays
  if true.shape[-1] != pred.shape[-1]:
    raise ValueError(f'labels_true and labels_pred must label the same samples: got N = '
                     f'{true.shape[-1]} and N = {pred.shape[-1]} (shapes {true.shape} and '
                     f'{pred.shape}).')
  try:
    batch = np.broadcast_shapes(true.shape[:-1], pred.shape[:-1])
  except ValueError:
    raise ValueError(f'the run axes of labels_true {true.shape[:-1]} and labels_pred '
                     f'{pred.shape[:-1]} do not broadcast.') from None
  size = true.shape[-1]
  true = np.broadcast_to(true, batch + (size,)).reshape(-1, size)
  pred = np.broadcast_to(pred, batch + (size,)).reshape(-1, size)
  return true, pred, batch


def _tables(true: np.ndarray, pred: np.ndarray) -> list[np.ndarray]:
  """One int64 contingency table `[C, K]` (classes x clusters that occur) per run."""
  tables = []
  for row_true, row_pred in zip(true, pred):
    _, class_index = np.unique(row_true, return_inverse=True)
    _, cluster_index = np.unique(row_pred, return_inverse=True)
    table = np.zeros((class_index.max() + 1, cluster_index.max() + 1), np.int64)
    np.add.at(table, (class_index, cluster_index), 1)
    tables.append(table)
  return tables


def _per_run(score, labels_true, labels_pred) -> np.ndarray | np.float64:
  """Applies `score(table)` to every run's table and restores the run axes."""
  true, pred, batch = _as_labelings(labels_true, labels_pred)
  values = np.array([score(table) for table in _tables(true, pred)], np.float64)
  return values.reshape(batch) if batch else values[0]


def contingency_table(labels_true, labels_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The contingency table of one pair of labelings, with the values of its rows and columns.

  Args:
    labels_true: integer `[N]`, any values.
    labels_pred: integer `[N]`, any values.

  Returns:
    `(table, classes, clusters)`: int64 `[C, K]` counts of samples with class `classes[i]` and
    cluster `clusters[j]`, and the sorted distinct values of each labeling.

  Raises:
    ValueError: labelings of different lengths, empty, or not 1-D. TypeError: non-integer
      labels.

  Example:
    >>> table, classes, clusters = contingency_table([0, 0, 1], [5, 7, 7])
    >>> table.tolist(), classes.tolist(), clusters.tolist()
    ([[1, 1], [0, 1]], [0, 1], [5, 7])
  """
  true, pred, batch = _as_labelings(labels_true, labels_pred)
  if batch:
    raise ValueError(f'contingency_table takes one labeling [N] each; got run axes {batch} '
                     '(loop over the runs).')
  return _tables(true, pred)[0], np.unique(true), np.unique(pred)


def _matched(table: np.ndarray) -> float:
  from scipy import optimize  # pylint: disable=g-import-not-at-top  (0.8 s at import)
  rows, columns = optimize.linear_sum_assignment(table, maximize=True)
  return table[rows, columns].sum() / table.sum()


def clustering_accuracy(labels_true, labels_pred):
  """Clustering accuracy: the share of samples whose cluster maps to their class.

  Clusters are matched one-to-one to classes by the Hungarian algorithm on the contingency
  table, maximising the matched count (`scipy.optimize.linear_sum_assignment`, which takes
  rectangular tables). With more clusters than classes the unmatched clusters' samples count
  as errors; with fewer, the unmatched classes' samples do. Label values need not be
  contiguous nor shared between the two labelings.

  Args:
    labels_true: integer `[..., N]` classes.
    labels_pred: integer `[..., N]` cluster assignments; the run axes `...` broadcast.

  Returns:
    float64 in `[0, 1]`: a scalar for `[N]` inputs, else an array of the broadcast run axes.

  Raises:
    ValueError: empty labelings, different N, run axes that do not broadcast.
    TypeError: non-integer labels.

  References:
    Cai, He, Han. "Document Clustering Using Locality Preserving Indexing." IEEE TKDE 2005
    (the `bestMap` accuracy of the MATLAB toolboxes).

  Example:
    >>> float(clustering_accuracy([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 0, 0]))
    0.6666666666666666
  """
  return _per_run(_matched, labels_true, labels_pred)


def purity(labels_true, labels_pred):
  """Purity: each cluster is credited with its most frequent class (many-to-one).

  Args:
    labels_true: integer `[..., N]` classes.
    labels_pred: integer `[..., N]` clusters; the run axes broadcast.

  Returns:
    float64 in `(0, 1]` per run (1 when every cluster is pure, e.g. one cluster per sample).

  Raises:
    As `clustering_accuracy`.

  Example:
    >>> float(purity([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 0, 0]))
    0.6666666666666666
  """
  return _per_run(lambda table: table.max(axis=0).sum() / table.sum(), labels_true,
                  labels_pred)


def _entropy(counts: np.ndarray) -> float:
  counts = counts[counts > 0].astype(np.float64)
  total = counts.sum()
  return float(-np.sum(counts / total * (np.log(counts) - np.log(total))))


def _mutual_info(table: np.ndarray) -> float:
  total = table.sum()
  rows, columns = np.nonzero(table)
  joint = table[rows, columns].astype(np.float64)
  if table.shape[0] == 1 or table.shape[1] == 1:
    return 0.0  # one labeling is a single block: zero entropy, so zero information
  outer = table.sum(axis=1)[rows].astype(np.float64) * table.sum(axis=0)[columns]
  terms = joint / total * (np.log(joint) - np.log(total) + np.log(total) * 2 - np.log(outer))
  terms = np.where(np.abs(terms) < np.finfo(np.float64).eps, 0.0, terms)
  return float(max(np.sum(terms), 0.0))


def _average(first: float, second: float, method: str) -> float:
  if method == 'min':
    return min(first, second)
  if method == 'max':
    return max(first, second)
  if method == 'geometric':
    return float(np.sqrt(first * second))
  return (first + second) / 2


def _check_average_method(average_method) -> str:
  if average_method not in AVERAGE_METHODS:
    raise ValueError(f'average_method must be one of {AVERAGE_METHODS}; got '
                     f'{average_method!r}.')
  return average_method


def _trivial(table: np.ndarray) -> bool:
  """Both labelings are one block (scikit-learn scores such a pair 1 by convention)."""
  return table.shape == (1, 1)


def normalized_mutual_info(labels_true, labels_pred, *, average_method: str = 'arithmetic'):
  """Normalised mutual information, `MI / mean(H(true), H(pred))` for a chosen mean.

  `average_method` picks the mean as scikit-learn's `normalized_mutual_info_score`:
  `'arithmetic'` (its default and the Python repositories'), `'geometric'` (sqrt of the
  product, Strehl and Ghosh's NMI), `'max'` (the MATLAB toolboxes' `nmi.m` in the incomplete
  multi-view clustering literature) or `'min'`. Record which one a table uses: on the same
  clustering they differ by several points. Natural logarithms (the ratio does not depend on
  the base). A pair where both labelings are a single block scores 1 and a pair with zero
  mutual information 0, as scikit-learn.

  Args:
    labels_true: integer `[..., N]` classes.
    labels_pred: integer `[..., N]` clusters; the run axes broadcast.
    average_method: see above.

  Returns:
    float64 in `[0, 1]` per run.

  Raises:
    ValueError: an unknown `average_method`; bad labelings as `clustering_accuracy`.

  References:
    Vinh, Epps, Bailey. "Information Theoretic Measures for Clusterings Comparison." JMLR 2010.

  Example:
    >>> round(float(normalized_mutual_info([0, 0, 1, 1], [0, 0, 1, 2])), 4)
    0.8
  """
  method = _check_average_method(average_method)

  def score(table):
    if _trivial(table):
      return 1.0
    information = _mutual_info(table)
    if information == 0:
      return 0.0
    normalizer = _average(_entropy(table.sum(axis=1)), _entropy(table.sum(axis=0)), method)
    return information / max(normalizer, np.finfo(np.float64).eps)

  return _per_run(score, labels_true, labels_pred)


def _expected_mutual_info(table: np.ndarray) -> float:
  """E[MI] under the hypergeometric model of random labelings with the table's margins."""
  total = int(table.sum())
  rows = table.sum(axis=1).astype(np.int64)
  columns = table.sum(axis=0).astype(np.int64)
  a, b = rows[:, None], columns[None, :]
  start = np.maximum(1, a + b - total)
  end = np.minimum(a, b)
  length = int(np.max(end - start + 1)) if end.size else 0
  if length <= 0:
    return 0.0
  counts = start[..., None] + np.arange(length)                       # [C, K, L]
  valid = counts <= end[..., None]
  counts = np.where(valid, counts, 1).astype(np.float64)
  a3, b3 = a[..., None].astype(np.float64), b[..., None].astype(np.float64)
  log_total = np.log(total)
  log_term = np.log(counts) + log_total - np.log(a3) - np.log(b3)
  from scipy import special  # pylint: disable=g-import-not-at-top
  log_weight = (special.gammaln(a3 + 1) + special.gammaln(b3 + 1)
                + special.gammaln(total - a3 + 1) + special.gammaln(total - b3 + 1)
                - special.gammaln(total + 1) - special.gammaln(counts + 1)
                - special.gammaln(a3 - counts + 1) - special.gammaln(b3 - counts + 1)
                - special.gammaln(np.maximum(total - a3 - b3 + counts, 0) + 1))
  terms = counts / total * log_term * np.exp(log_weight)
  return float(np.sum(np.where(valid, terms, 0.0)))


def adjusted_mutual_info(labels_true, labels_pred, *, average_method: str = 'arithmetic'):
  """Adjusted mutual information: `(MI - E[MI]) / (mean(H) - E[MI])`, chance-corrected.

  `E[MI]` is the expected mutual information of two random labelings with the same cluster
  sizes (hypergeometric model); `average_method` as `normalized_mutual_info`. Equal to
  scikit-learn's `adjusted_mutual_info_score`, including its convention that two single-block
  labelings score 1.

  Args:
    labels_true: integer `[..., N]` classes.
    labels_pred: integer `[..., N]` clusters; the run axes broadcast.
    average_method: `'arithmetic'` (default), `'geometric'`, `'max'` or `'min'`.

  Returns:
    float64 per run: 1 for identical partitions, about 0 for chance, possibly negative; 0 when
    exactly one of the labelings is a single block.

  Raises:
    As `normalized_mutual_info`.

  References:
    Vinh, Epps, Bailey. "Information Theoretic Measures for Clusterings Comparison." JMLR 2010.

  Example:
    >>> round(float(adjusted_mutual_info([0, 0, 1, 1], [1, 1, 0, 0])), 12)
    1.0
  """
  method = _check_average_method(average_method)

  def score(table):
    if _trivial(table):
      return 1.0
    if table.shape[0] == 1 or table.shape[1] == 1:
      return 0.0
    expected = _expected_mutual_info(table)
    normalizer = _average(_entropy(table.sum(axis=1)), _entropy(table.sum(axis=0)), method)
    eps = np.finfo(np.float64).eps
    # Keep the signs of both differences away from zero (round-off near a perfect match).
    denominator = normalizer - expected
    denominator = min(denominator, -eps) if denominator < 0 else max(denominator, eps)
    numerator = _mutual_info(table) - expected
    numerator = min(numerator, -eps) if numerator < 0 else max(numerator, eps)
    return numerator / denominator

  return _per_run(score, labels_true, labels_pred)


def adjusted_rand_index(labels_true, labels_pred):
  """Adjusted Rand index: pair-counting agreement corrected for chance (Hubert and Arabie).

  Computed from the pair confusion matrix in exact integer arithmetic, as scikit-learn's
  `adjusted_rand_score` (identical partitions, and the degenerate case with no discordant
  pair, score 1).

  Args:
    labels_true: integer `[..., N]` classes.
    labels_pred: integer `[..., N]` clusters; the run axes broadcast.

  Returns:
    float64 per run in `[-0.5, 1]`.

  Raises:
    As `clustering_accuracy`.

  References:
    Hubert, Arabie. "Comparing Partitions." Journal of Classification 1985.

  Example:
    >>> float(adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0]))
    1.0
  """

  def score(table):
    total = int(table.sum())
    squares = int(np.sum(table.astype(object) ** 2))
    rows = table.sum(axis=1).astype(object)
    columns = table.sum(axis=0).astype(object)
    same_both = squares - total
    same_true = int(np.sum(rows ** 2)) - squares
    same_pred = int(np.sum(columns ** 2)) - squares
    different_both = total * total - same_true - same_pred - squares
    if same_true == 0 and same_pred == 0:
      return 1.0
    numerator = 2 * (same_both * different_both - same_true * same_pred)
    denominator = ((same_both + same_true) * (same_true + different_both)
                   + (same_both + same_pred) * (same_pred + different_both))
    return float(numerator / denominator)

  return _per_run(score, labels_true, labels_pred)


# ------------------------------------------------------------------ image quality


def _image_pair(reference, image, data_range, min_size: int = 1):
  for value, name in ((reference, 'reference'), (image, 'image')):
    if not jnp.issubdtype(jnp.result_type(value), jnp.floating):
      raise TypeError(f'{name} must be a floating array; got dtype {jnp.result_type(value)}.')
  reference, image = checks.upcast(jnp.asarray(reference)), checks.upcast(jnp.asarray(image))
  if reference.shape != image.shape:
    raise ValueError(f'reference and image must have the same shape; got {reference.shape} '
                     f'and {image.shape}.')
  if reference.ndim < 1 or min(reference.shape) < min_size:
    raise ValueError(f'reference and image must have every side >= {min_size}'
                     f'{" (win_size)" if min_size > 1 else ""}; got shape {reference.shape}.')
  checks.check_finite(reference, 'reference')
  checks.check_finite(image, 'image')
  checks.check_scalar(data_range, 'data_range', low=0, low_open=True)
  dtype = jnp.result_type(reference, image)
  return reference.astype(dtype), image.astype(dtype), jnp.asarray(data_range, dtype)


def peak_signal_noise_ratio(reference, image, *, data_range) -> jax.Array:
  """PSNR in dB: `10 log10(data_range^2 / mean((reference - image)^2))`.

  scikit-image's `metrics.peak_signal_noise_ratio` with `data_range` given (it is required
  here: guessing it from the dtype, as scikit-image does, gives 2 for float images in
  [-1, 1] and 1 otherwise). Identical images give +inf. Vmappable.

  Example:
    >>> import jax.numpy as jnp
    >>> float(peak_signal_noise_ratio(jnp.zeros(4), jnp.full(4, 0.1), data_range=1.0))
    20.0
  """
  reference, image, data_range = _image_pair(reference, image, data_range)
  error = jnp.mean((reference - image) ** 2)
  return 10.0 * jnp.log10(data_range ** 2 / error)


def structural_similarity(reference, image, *, data_range, win_size: int = 7) -> jax.Array:
  """Mean structural similarity (SSIM; Wang et al. 2004) of two n-D images.

  scikit-image's `metrics.structural_similarity` with its defaults (a uniform `win_size`^n
  window, K1 = 0.01, K2 = 0.03, sample covariances, the mean over the positions whose window
  lies inside the image): local means, variances and covariance over each window,
  `SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))` with
  `C1 = (0.01 R)^2`, `C2 = (0.03 R)^2`, `R = data_range`. scikit-image filters the whole image
  and crops `(win_size - 1) // 2` from every border before averaging; the cropped positions
  are exactly the windows inside the image, which this function computes directly. Vmappable.

  Args:
    reference, image: float arrays of one shape, every side >= `win_size`.
    data_range: the range of the values (1 for images in [0, 1]); required.
    win_size: odd window side (static, >= 3).

  Example:
    >>> import jax.numpy as jnp
    >>> image = jnp.arange(64.0).reshape(8, 8) / 63
    >>> float(structural_similarity(image, image, data_range=1.0))
    1.0
  """
  win_size = checks.check_integer(win_size, 'win_size', minimum=3)
  if win_size % 2 == 0:
    raise ValueError(f'win_size must be odd; got {win_size}.')
  reference, image, data_range = _image_pair(reference, image, data_range, min_size=win_size)
  return _ssim(reference, image, data_range, win_size)


def _ssim(x, y, data_range, win_size: int):
  ndim = x.ndim
  window = (win_size,) * ndim
  count = win_size ** ndim

  def mean(values):
    return jax.lax.reduce_window(values, 0.0, jax.lax.add, window, (1,) * ndim,
                                 'VALID') / count

  mu_x, mu_y = mean(x), mean(y)
  scale = count / (count - 1.0)          # sample covariances
  var_x = scale * (mean(x * x) - mu_x * mu_x)
  var_y = scale * (mean(y * y) - mu_y * mu_y)
  cov = scale * (mean(x * y) - mu_x * mu_y)
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)
          / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)))
  return jnp.mean(ssim)


# ------------------------------------------------------------------ cross-modal retrieval


def retrieval_recall(scores, *, ks=(1, 5, 10), captions_per_image: int = 1) -> dict:
  """Recall@K of cross-modal retrieval in both directions, the median and mean rank, and rsum.

  `scores[i, j]` is the similarity of query image i (or first-modality item) with caption j
  (second-modality item); caption j belongs to image `j // captions_per_image` (NCR's and
  VSE++'s layout: 5 captions per image on COCO and Flickr30K, 1 for paired views). Image to
  text: an image's rank is the best rank of its captions among all captions; text to image: a
  caption's rank is its image's rank among all images. A rank counts the candidates with a
  strictly higher score (0 = first; ties are resolved in the item's favour, where NCR's
  `argsort` leaves them to NumPy's sort order). R@K = 100 x the share of ranks below K;
  `medr` = floor(median rank) + 1, `meanr` = mean rank + 1; `rsum` = the sum of every R@K of
  both directions (NCR's rsum with the default ks).

  Args:
    scores: `[N, N * captions_per_image]` floats.
    ks: the K values (each from 1 to the number of candidates).
    captions_per_image: captions per image (static).

  Returns:
    `{'i2t_r1': ..., 'i2t_r5': ..., 'i2t_r10': ..., 'i2t_medr': ..., 'i2t_meanr': ...,
    't2i_r1': ..., ..., 'rsum': ...}` (Python floats, percentages for R@K).

  Raises:
    ValueError: `scores` not `[N, N * captions_per_image]` or non-finite; a K outside
      [1, candidates] (fewer items than K).

  Example:
    >>> import jax.numpy as jnp
    >>> result = retrieval_recall(jnp.eye(3), ks=(1, 2))
    >>> result['i2t_r1'], result['t2i_r2'], result['rsum']
    (100.0, 100.0, 400.0)
  """
  captions_per_image = checks.check_integer(captions_per_image, 'captions_per_image',
                                            minimum=1)
  scores = checks.as_floats(scores, 'scores', '[N, N * captions_per_image]', rank=2)
  num_images = scores.shape[0]
  if scores.ndim != 2 or scores.shape[1] != num_images * captions_per_image or num_images == 0:
    raise ValueError(f'scores must have shape [N, N * captions_per_image] = [N, N * '
                     f'{captions_per_image}] with N >= 1; got {scores.shape}.')
  ks = tuple(ks)
  if not ks:
    raise ValueError('ks must name at least one K.')
  for k in ks:
    limit = min(num_images, scores.shape[1])
    checks.check_integer(k, f'ks (K = {k}: the retrieval set has only {limit} items per '
                         'query in its smaller direction)', minimum=1, maximum=limit)
  i2t, t2i = _retrieval_ranks(scores, captions_per_image)
  out = {}
  for name, ranks in (('i2t', np.asarray(i2t)), ('t2i', np.asarray(t2i))):
    for k in ks:
      out[f'{name}_r{k}'] = float(100.0 * np.mean(ranks < k))
    out[f'{name}_medr'] = float(np.floor(np.median(ranks)) + 1)
    out[f'{name}_meanr'] = float(ranks.mean() + 1)
  out['rsum'] = float(sum(out[f'{name}_r{k}'] for name in ('i2t', 't2i') for k in ks))
  return out


@jax.jit
def _retrieval_ranks_jit(scores, relevant):
  own = jnp.take_along_axis(scores, relevant, axis=1)                     # [N, c]
  i2t = jnp.min(jnp.sum(scores[:, None, :] > own[:, :, None], axis=2), axis=1)
  columns = scores.T                                                       # [N c, N]
  images = jnp.arange(columns.shape[0]) // relevant.shape[1]
  truth = jnp.take_along_axis(columns, images[:, None], axis=1)
  t2i = jnp.sum(columns > truth, axis=1)
  return i2t, t2i


def _retrieval_ranks(scores, captions_per_image: int):
  relevant = (captions_per_image * jnp.arange(scores.shape[0])[:, None]
              + jnp.arange(captions_per_image)[None, :])
  return _retrieval_ranks_jit(scores, relevant)
