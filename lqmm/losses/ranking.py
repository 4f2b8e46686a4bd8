"""QMF's ranking regulariser: confidence should fall as a sample's loss history rises.

QMF keeps, per training sample and modality, the cumulative cross-entropy over training (a
`History`, a jit-able NamedTuple updated functionally). For a batch, sample i is paired with the
next sample j = i + 1 (cyclically); with the history min-max normalised over the whole data set,

    h_i = (H[idx_i] - min H) / (max H - min H),   t_i = sign(h_i - h_j),   m_i = |h_i - h_j|,

a sample with the larger loss history should get the lower confidence `c`. The clean form
(default) enforces the gap:

    loss_i = max(0, m_i + t_i (c_i - c_j)),

zero only when `c_j - c_i >= m_i` for `t_i = 1`. The original code (`margin_as_slack=True`)
passes the margin through a flipped `MarginRankingLoss`, which turns it into slack:

    loss_i = max(0, t_i (c_i - c_j) - m_i),

penalising the wrong order only beyond `m_i`. Both average over all B pairs (ties count as 0);
the hinge is active at exactly 0 as in PyTorch. When the history is constant (e.g. all zero before
the first update) there is no ordering: the loss is 0 with zero gradient (the original returns NaN
there, with zero gradient).

References:
  Zhang, Wu, Zhang, Liu, Hu, Zhang, Bian, Fu, Zhou. "Provable Dynamic Fusion for Low-Quality
    Multimodal Data." ICML 2023.
  Moon, Kim, Shin, Hwang. "Confidence-Aware Learning for Deep Neural Networks." ICML 2020.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lqmm import checks

__all__ = ['History', 'init_history', 'ranking_loss', 'update_history']


class History(NamedTuple):
  """Per-sample cumulative losses, `[..., N]` (a leading modality axis is allowed)."""
  cumulative_loss: jax.Array


def init_history(num_samples: int, num_modalities: int | None = None,
                 dtype=jnp.float32) -> History:
  """An all-zero history for `num_samples` training samples (and optionally M modalities).

  Args:
    num_samples: N >= 2, the size of the training set.
    num_modalities: optional M >= 1; the history is then `[M, N]`.
    dtype: the dtype of the cumulative losses.

  Returns:
    `History` with `cumulative_loss` zeros `[N]` or `[M, N]`.

  Raises:
    ValueError: `num_samples < 2` or `num_modalities < 1`.
    TypeError: `num_samples` or `num_modalities` is not an integer.
  """
  num_samples = checks.check_integer(num_samples, 'num_samples')
  if num_samples < 2:
    raise ValueError(f'num_samples must be >= 2 to rank samples; got {num_samples}.')
  if num_modalities is not None:
    num_modalities = checks.check_integer(num_modalities, 'num_modalities')
    if num_modalities < 1:
      raise ValueError(f'num_modalities must be >= 1; got {num_modalities}.')
  shape = (num_samples,) if num_modalities is None else (num_modalities, num_samples)
  return History(jnp.zeros(shape, dtype))


def update_history(history: History, indices: jax.Array, losses: jax.Array) -> History:
  """Adds a batch's per-sample losses (treated as constants) to the history.

  Args:
    history: `History` with `cumulative_loss [..., N]`.
    indices: int `[B]` the batch's data-set indices (distinct within the batch).
    losses: `[..., B]` per-sample losses.

  Returns:
    The updated `History`.

  Raises:
    ValueError: `indices` is not a 1-D integer array within `[0, N)`, `losses` is not
      `[..., B]` with the history's leading dims and B = len(indices), or concrete `losses`
      hold NaN or infinity.
    TypeError: `losses` is not a floating-point array.
  """
  _check_indices(indices, history)
  expected = jnp.shape(history.cumulative_loss)[:-1] + jnp.shape(indices)
  if jnp.shape(losses) != expected:
    raise ValueError(f'losses must have shape {jnp.shape(history.cumulative_loss)[:-1]} + (B,) '
                     f'= {expected}; got {jnp.shape(losses)}.')
  checks.check_floating(losses, 'losses')
  checks.check_finite(losses, 'losses')
  losses = jax.lax.stop_gradient(jnp.asarray(losses, history.cumulative_loss.dtype))
  return History(history.cumulative_loss.at[..., indices].add(losses))


def _check_indices(indices, history: History) -> None:
  if jnp.ndim(indices) != 1 or not jnp.issubdtype(jnp.result_type(indices), jnp.integer):
    raise ValueError(f'indices must be a 1-D integer array; got shape {jnp.shape(indices)} and '
                     f'dtype {jnp.result_type(indices)}.')
  size = jnp.shape(history.cumulative_loss)[-1]
  if checks.is_concrete(indices) and jnp.size(indices):
    low, high = int(jnp.min(indices)), int(jnp.max(indices))
    if low < 0 or high >= size:
      raise ValueError(f'indices must lie in [0, {size}); got values in [{low}, {high}].')


def ranking_loss(confidence: jax.Array, history: History, indices: jax.Array, *,
                 margin_as_slack: bool = False, mask: jax.Array | None = None) -> jax.Array:
  """QMF's ranking loss between confidences and the normalised loss history, a scalar.

  Args:
    confidence: `[B]` per-sample confidences of one modality (e.g. `energy.confidence`).
    history: that modality's `History`, `cumulative_loss [N]`.
    indices: int `[B]` the batch's data-set indices.
    margin_as_slack: reproduce the original's slack form instead of the enforced gap.
    mask: optional bool `[B]`, True where the modality is present: a pair counts only when
      both of its samples have the modality (a missing modality has no loss to rank), and the
      mean is over those pairs (0 when there are none).

  Returns:
    The mean hinge over the B cyclic pairs (the valid pairs with `mask`).

  Raises:
    ValueError: `confidence` is not `[B]` with B >= 1 (an empty batch has no mean), concrete
      `confidence` holds NaN or infinity, the history is not `[N]`, or `indices` is not `[B]`
      within `[0, N)`.
    TypeError: `confidence` is not a floating-point array.

  Example:
    >>> import jax.numpy as jnp
    >>> history = History(jnp.array([0., 1., 2., 3.]))
    >>> # Sample 2 has the larger loss history but the higher confidence: penalised.
    >>> ranking_loss(jnp.array([0.5, 0.1]), history, jnp.array([2, 1]))
    Array(0.73333335, dtype=float32)
  """
  if jnp.ndim(confidence) != 1:
    raise ValueError(f'confidence must have shape [B]; got shape {jnp.shape(confidence)}.')
  if jnp.ndim(history.cumulative_loss) != 1:
    raise ValueError('history.cumulative_loss must have shape [N] (one modality); got shape '
                     f'{jnp.shape(history.cumulative_loss)}.')
  if jnp.shape(indices) != jnp.shape(confidence):
    raise ValueError(f'indices must have the shape of confidence {jnp.shape(confidence)}; got '
                     f'{jnp.shape(indices)}.')
  _check_indices(indices, history)
  checks.check_floating(confidence, 'confidence')
  checks.check_nonempty(confidence, 'confidence')
  checks.check_finite(confidence, 'confidence')
  confidence = checks.upcast(confidence)
  cumulative = jax.lax.stop_gradient(history.cumulative_loss).astype(confidence.dtype)
  low, high = jnp.min(cumulative), jnp.max(cumulative)
  spread = high - low
  normalised = (cumulative[indices] - low) / jnp.where(spread > 0, spread, 1)
  difference = normalised - jnp.roll(normalised, -1)
  target, margin = jnp.sign(difference), jnp.abs(difference)
  gap = target * (confidence - jnp.roll(confidence, -1))
  argument = gap - margin if margin_as_slack else gap + margin
  hinge = jnp.where(argument >= 0, argument, 0)
  if mask is None:
    return jnp.where(spread > 0, jnp.mean(hinge), 0)
  checks.check_mask(mask, jnp.shape(confidence), 'mask')
  pairs = (mask & jnp.roll(mask, -1)).astype(hinge.dtype)
  mean = jnp.sum(hinge * pairs) / jnp.maximum(jnp.sum(pairs), 1)
  return jnp.where(spread > 0, mean, 0)
