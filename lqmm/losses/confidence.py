"""True-class-probability (TCP) confidence regression (Multimodal Dynamics).

Each modality's confidence head predicts `c_m`, trained to regress the probability that the
modality's own classifier assigns to the true class, `tcp_m = softmax(z_m)[y]`
(`lqmm.fusion.confidence.true_class_probability`):

    loss_conf = sum_m mean_i (c_mi - tcp_mi)^2,

with `tcp` a constant target by default. The predicted confidences then gate the modalities'
features in `lqmm.fusion.confidence.fuse`.

References:
  Han, Yao, Zhang, Zhang, Yao, Huang, Hu. "Multimodal Dynamics: Dynamical Fusion for Trustworthy
    Multimodal Classification." CVPR 2022.
  Corbière, Thome, Bar-Hen, Cord, Pérez. "Addressing Failure Prediction by Learning Model
    Confidence." NeurIPS 2019.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lqmm import checks
from lqmm.fusion import confidence as confidence_fusion

__all__ = ['confidence_loss']


def confidence_loss(confidence: jax.Array, logits: jax.Array, labels: jax.Array,
                    mask: jax.Array | None = None, *, stop_gradient: bool = True) -> jax.Array:
  """Squared error between predicted confidences and the true-class probability, `[M, ...]`.

  Args:
    confidence: `[M, ...]` predicted confidences (e.g. a sigmoid head).
    logits: `[M, ..., K]` each modality's classifier logits.
    labels: int `[...]` class indices.
    mask: optional bool `[M, ...]`; missing entries contribute 0.
    stop_gradient: treat the true-class probability as a constant (see
      `lqmm.fusion.confidence.true_class_probability`).

  Returns:
    `[M, ...]` per-sample, per-modality losses (reduce as the experiment does).

  Raises:
    ValueError: `logits` has fewer than 2 dims, `confidence` is not `[M, ...]`, concrete
      `confidence` or `logits` hold NaN or infinity, labels lie outside [0, K), or `mask` has
      the wrong shape.
    TypeError: `confidence` or `logits` is not a floating-point array, labels are not integers,
      or `mask` is not bool.

  Example:
    >>> import jax.numpy as jnp
    >>> logits = jnp.array([[[0., 0.]], [[0., 0.]]])  # [M=2, B=1, K=2]
    >>> confidence_loss(jnp.array([[1.0], [0.5]]), logits, jnp.array([0]))
    Array([[0.25],
           [0.  ]], dtype=float32)
  """
  checks.check_rank_at_least(logits, 2, 'logits', '[M, ..., K]')
  if jnp.shape(confidence) != jnp.shape(logits)[:-1]:
    raise ValueError(f'confidence must have shape {jnp.shape(logits)[:-1]} ([M, ...]); got '
                     f'shape {jnp.shape(confidence)}.')
  checks.check_floating(confidence, 'confidence')
  checks.check_finite(confidence, 'confidence')
  labels = jnp.broadcast_to(labels, jnp.shape(logits)[:-1])
  target = confidence_fusion.true_class_probability(logits, labels, stop_gradient=stop_gradient)
  loss = (checks.upcast(confidence) - target)**2
  if mask is not None:
    checks.check_mask(mask, jnp.shape(confidence))
    loss = jnp.where(mask, loss, 0)
  return loss
