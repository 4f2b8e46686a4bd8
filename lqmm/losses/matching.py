"""Cross-modal matching losses for paired data that may not correspond: hinge and contrastive.

Every function takes a square score matrix `scores[i, j]` = similarity of item i of the first
modality (an image, a view) with item j of the second (a caption, another view), the matching
pairs on the diagonal, and returns one value per pair `[B]` (sum or average them as the
original does). For a symmetric contrastive loss, also call it on `scores.T`.

- `vse_hinge_loss`: VSE++'s triplet hinge (Faghri et al. 2018) with hardest or averaged
  negatives, and NCR's soft margins from rectified correspondence labels.
- `correspondence_scores`: NCR's prediction of how well each pair corresponds, from the same
  hinge costs (its `mode='predict'`).
- `rectify_labels`: NCR's rectified label `p y + (1 - p) y_hat`.
- `info_nce` and `robust_info_nce`: InfoNCE and RINCE (Chuang et al. 2022), which down-weights
  pairs with low positive scores (q > 0) and so tolerates mismatched pairs.
- `similarity_filter`: DataComp's CLIP-score filtering (keep the top fraction by score).

Checked against the originals (NCR's `ContrastiveLoss`, RINCE's MoCo v3 loss, DataComp's
`get_threshold`): `tests/reference/PROVENANCE_matching.md`.

References:
  Faghri, Fleet, Kiros, Fidler. "VSE++: Improving Visual-Semantic Embeddings with Hard
  Negatives." BMVC 2018.
  Huang, Niu, Peng, Hu, Wang, Liu. "Learning with Noisy Correspondence for Cross-modal
  Matching." NeurIPS 2021.
  Chuang, Hjelm, Wang, Vineet, Joshi, Torralba, Jegelka, Song. "Robust Contrastive Learning
  against Noisy Views." CVPR 2022.
  Gadre et al. "DataComp: In search of the next generation of multimodal datasets." NeurIPS
  2023 (Datasets and Benchmarks).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks

__all__ = ['LABEL_AXES', 'NEGATIVES', 'SOFT_MARGINS', 'correspondence_scores', 'info_nce',
           'rectify_labels', 'robust_info_nce', 'similarity_filter', 'vse_hinge_loss']

#: NCR's soft margins: label y in [0, 1] -> the share of the margin a pair gets.
SOFT_MARGINS = {
    'linear': lambda y: y,
    'exponential': lambda y: (jnp.power(10.0, y) - 1) / 9,
    'sin': lambda y: jnp.sin(math.pi * y - math.pi / 2) / 2 + 0.5,
}
#: How the hinge reduces over a pair's negatives.
NEGATIVES = ('hardest', 'mean')
#: Which pair's label sets the margin of cost [i, j] (see `vse_hinge_loss`).
LABEL_AXES = ('pair', 'column', 'row')


def _check_scores(scores) -> jax.Array:
  scores = checks.as_floats(scores, 'scores', '[B, B]', rank=2)
  if scores.ndim != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
    raise ValueError(f'scores must be a square [B, B] matrix of pair similarities with B >= 2 '
                     f'(the matching pairs on the diagonal); got shape {scores.shape}.')
  return scores


def _hinge_costs(scores, margin_rows, margin_columns):
  """NCR's `cost_s` (each row's positive against its row) and `cost_im` (each column's
  positive against its column), diagonals cleared."""
  diagonal = jnp.diagonal(scores)
  off = ~jnp.eye(scores.shape[0], dtype=bool)
  cost_s = jnp.where(off, jnp.maximum(margin_rows + scores - diagonal[:, None], 0.0), 0.0)
  cost_im = jnp.where(off, jnp.maximum(margin_columns + scores - diagonal[None, :], 0.0), 0.0)
  return cost_s, cost_im


def vse_hinge_loss(scores, *, margin=0.2, labels=None, soft_margin: str = 'linear',
                   negatives: str = 'hardest', label_axis: str = 'pair') -> jax.Array:
  """VSE++'s bidirectional hinge per pair, with NCR's soft margins.

  For pair i: `sum over the two directions of reduce_j [m + S[i, j] - S[i, i]]_+` (the first
  modality's item i against every other second-modality item j, and the second's item i
  against every other first-modality item), with the diagonal term 0. `negatives='hardest'`
  takes the maximum (VSE++, NCR's training loss), `'mean'` the mean over all B entries, the
  zero diagonal included (NCR's warm-up and per-sample `eval_loss`).

  With `labels` (rectified correspondence labels y in [0, 1]), the margin is
  `margin * SOFT_MARGINS[soft_margin](y)`. `label_axis` says whose label: `'pair'` uses pair
  i's label for both of pair i's directions (the intent); NCR's code broadcasts a `[B]` label
  vector over columns (`'column'`: every term of column j uses y_j, as it trains its clean
  pairs) and a `[B, 1]` one over rows (`'row'`: every term of row i uses y_i, as it trains its
  unlabeled pairs), so each direction of one of its two calls takes another pair's margin.

  Args:
    scores: `[B, B]` similarities (B >= 2), the matching pairs on the diagonal.
    margin: the margin (>= 0).
    labels: optional `[B]` labels in [0, 1].
    soft_margin: a key of `SOFT_MARGINS`.
    negatives: 'hardest' or 'mean'.
    label_axis: a key of `LABEL_AXES`.

  Returns:
    `[B]` per-pair losses (NCR's training loss is their sum).

  Example:
    >>> import jax.numpy as jnp
    >>> scores = jnp.array([[0.9, 0.8], [0.1, 0.5]])
    >>> [round(v, 3) for v in vse_hinge_loss(scores, margin=0.2).tolist()]
    [0.1, 0.5]
  """
  scores = _check_scores(scores)
  checks.check_scalar(margin, 'margin', low=0)
  shape_factor = checks.lookup(SOFT_MARGINS, soft_margin, 'soft_margin')
  checks.lookup(dict.fromkeys(NEGATIVES), negatives, 'negatives')
  checks.lookup(dict.fromkeys(LABEL_AXES), label_axis, 'label_axis')
  size = scores.shape[0]
  if labels is None:
    rows = columns = jnp.asarray(margin, scores.dtype)
  else:
    labels = _check_labels(labels, size)
    per_pair = margin * shape_factor(labels.astype(scores.dtype))
    if label_axis == 'pair':
      rows, columns = per_pair[:, None], per_pair[None, :]
    elif label_axis == 'column':
      rows = columns = per_pair[None, :]
    else:
      rows = columns = per_pair[:, None]
  cost_s, cost_im = _hinge_costs(scores, rows, columns)
  if negatives == 'hardest':
    return jnp.max(cost_s, axis=1) + jnp.max(cost_im, axis=0)
  return jnp.mean(cost_s, axis=1) + jnp.mean(cost_im, axis=0)


def _check_labels(labels, size: int, name: str = 'labels') -> jax.Array:
  labels = checks.as_floats(labels, name, '[B]')
  if labels.shape != (size,):
    raise ValueError(f'{name} must have shape [B] = ({size},); got {labels.shape}.')

  def find_problem(values):
    if np.any((values < 0) | (values > 1)):
      return f'{name} must lie in [0, 1]; got {values.min()!r} to {values.max()!r}.'
    return None

  checks.check_values(find_problem, labels)
  return labels


def correspondence_scores(scores, *, margin=0.2) -> jax.Array:
  """NCR's estimate of how well each pair corresponds, in [0, 1] (`SGRAF.predict`).

  `p_i = clip(margin - (mean_j cost_s[i, j] + mean_j cost_im[j, i]) / 2, 0, margin)` (the
  averaged hinge costs at the plain margin), divided by the mean of the largest `B // 10 + 1`
  values of p, then clipped to [0, 1]. Where every p is 0 (every pair violates the margin on
  average), the original divides 0 by 0; this function returns 0 there.

  Example:
    >>> import jax.numpy as jnp
    >>> correspondence_scores(jnp.array([[0.9, 0.1], [0.2, 0.8]])).tolist()
    [1.0, 1.0]
  """
  scores = _check_scores(scores)
  checks.check_scalar(margin, 'margin', low=0, low_open=True)
  margin = jnp.asarray(margin, scores.dtype)
  cost_s, cost_im = _hinge_costs(scores, margin, margin)
  p = jnp.clip(margin - (jnp.mean(cost_s, axis=1) + jnp.mean(cost_im, axis=0)) / 2, 0.0, margin)
  top = jnp.mean(jnp.sort(p)[-(scores.shape[0] // 10 + 1):])
  return jnp.clip(jnp.where(top > 0, p / jnp.where(top > 0, top, 1.0), 0.0), 0.0, 1.0)


def rectify_labels(probability, labels, predictions) -> jax.Array:
  """NCR's rectified correspondence label: `p * labels + (1 - p) * predictions`.

  `probability`: the clean probability of each pair (`lqmm.denoise.clean_probability`);
  `labels`: the observed label (1 for a pair presented as matching); `predictions`: the
  model's `correspondence_scores`. All `[B]` in [0, 1].

  Example:
    >>> import jax.numpy as jnp
    >>> labels = rectify_labels(jnp.array([0.9, 0.1]), jnp.ones(2), jnp.array([0.5, 0.0]))
    >>> [round(v, 3) for v in labels.tolist()]
    [0.95, 0.1]
  """
  probability = checks.as_floats(probability, 'probability', '[B]')
  size = probability.shape[0]
  probability = _check_labels(probability, size, 'probability')
  labels = _check_labels(labels, size).astype(probability.dtype)
  predictions = _check_labels(predictions, size, 'predictions').astype(probability.dtype)
  return probability * labels + (1 - probability) * predictions


def info_nce(scores, *, temperature=1.0) -> jax.Array:
  """InfoNCE per row: `-log softmax_j(S[i, j] / t)[i]` (the diagonal is the positive).

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(info_nce(jnp.zeros((2, 2)))[0]), 4)
    0.6931
  """
  scores = _check_scores(scores)
  checks.check_scalar(temperature, 'temperature', low=0, low_open=True)
  logits = scores / temperature
  return jax.scipy.special.logsumexp(logits, axis=1) - jnp.diagonal(logits)


def robust_info_nce(scores, *, q=0.1, lam=0.01, temperature=1.0) -> jax.Array:
  """RINCE per row: `-e^(q s_ii) / q + (lam sum_j e^(s_ij))^q / q` with `s = S / t`.

  The positive enters the sum, as in the authors' MoCo v3 code (whose total is the mean over
  rows times `2 t`). q -> 0 recovers InfoNCE up to a constant (`log lam`); q = 1 is
  the symmetric, noise-robust extreme. The sum is taken in log space, so `e^(s_ij)` need not
  be representable, only the result, which is of the size of `e^(q s_ii)` (keep `q S / t`
  below about 80 in float32).

  Args:
    scores: `[B, B]`, the positives on the diagonal.
    q: in (0, 1].
    lam: density weight in (0, 1].
    temperature: > 0.

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(robust_info_nce(jnp.zeros((2, 2)), q=1.0, lam=1.0)[0]), 4)
    1.0
  """
  scores = _check_scores(scores)
  checks.check_scalar(q, 'q', low=0, high=1, low_open=True)
  checks.check_scalar(lam, 'lam', low=0, high=1, low_open=True)
  checks.check_scalar(temperature, 'temperature', low=0, low_open=True)
  logits = scores / temperature
  positive = jnp.diagonal(logits)
  total = jnp.log(lam) + jax.scipy.special.logsumexp(logits, axis=1)
  # e^(q total) - e^(q positive) = e^(q positive) expm1(q (total - positive)): no cancellation.
  return jnp.exp(q * positive) * jnp.expm1(q * (total - positive)) / q


def similarity_filter(scores, *, fraction=None, threshold=None) -> jax.Array:
  """DataComp's score filter: True for the items kept, `[N]` bool.

  With `fraction`, the threshold is DataComp's `get_threshold`: the value at position
  `n = floor(N fraction)` of the scores sorted in descending order, and every score at or above
  it is kept (so n + 1 items, more on ties). With `threshold`, every score >= threshold is kept.
  Give exactly one. `fraction = 1` keeps everything (DataComp's code indexes past the end).

  Example:
    >>> import jax.numpy as jnp
    >>> similarity_filter(jnp.array([0.3, 0.9, 0.1, 0.5]), fraction=0.25).tolist()
    [False, True, False, True]
  """
  scores = checks.as_floats(scores, 'scores', '[N]')
  if scores.ndim != 1 or scores.shape[0] == 0:
    raise ValueError(f'scores must be a non-empty [N] array of pair scores; got {scores.shape}.')
  if (fraction is None) == (threshold is None):
    raise ValueError('give exactly one of fraction (keep the top share) and threshold.')
  if threshold is not None:
    checks.check_scalar(threshold, 'threshold')
    return scores >= threshold
  checks.check_scalar(fraction, 'fraction', low=0, high=1, low_open=True)
  count = scores.shape[0]
  position = jnp.minimum(jnp.floor(count * jnp.asarray(fraction)).astype(jnp.int32), count - 1)
  cut = jnp.sort(scores)[::-1][position]
  return jnp.where(jnp.asarray(fraction) >= 1, True, scores >= cut)
