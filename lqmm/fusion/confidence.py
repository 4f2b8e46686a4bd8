"""True-class-probability (TCP) confidence gating (Multimodal Dynamics).

A confidence head per modality regresses the probability its own classifier assigns to the true
class, `tcp_m = softmax(z_m)[y]` (Corbière et al.'s true class probability), which needs no
uncertainty labels and, unlike the maximum class probability, is low on confidently wrong
predictions. At test time the predicted confidence `c_m` scales modality m's features before they
are concatenated and classified jointly:

    h = concat_m (c_m * h_m),     loss_conf = sum_m mean_i (c_mi - tcp_mi)^2,

with `tcp` treated as a constant target. A missing modality gets confidence 0, so it contributes
zero features (the identity of the concatenation).

References:
  Han, Yao, Zhang, Zhang, Yao, Huang, Hu. "Multimodal Dynamics: Dynamical Fusion for Trustworthy
    Multimodal Classification." CVPR 2022.
  Corbière, Thome, Bar-Hen, Cord, Pérez. "Addressing Failure Prediction by Learning Model
    Confidence." NeurIPS 2019.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from lqmm import _checks
from lqmm.fusion import baselines


def true_class_probability(logits: jax.Array, labels: jax.Array, *,
                           stop_gradient: bool = True) -> jax.Array:
  """`softmax(logits)[label]`, `[...]`, by default as a constant target.

  Args:
    logits: `[..., K]` a modality's classifier logits.
    labels: int `[...]` class indices in [0, K).
    stop_gradient: no gradient flows into `logits` (the clean TCP target). False reproduces
      the original Multimodal Dynamics code, where the regression also trains the classifier.

  Returns:
    `[...]` true-class probabilities in [0, 1].

  Raises:
    ValueError: labels have the wrong shape or lie outside [0, K).

  Example:
    >>> import jax.numpy as jnp
    >>> true_class_probability(jnp.array([[0., 0.]]), jnp.array([1]))
    Array([0.5], dtype=float32)
  """
  _checks.check_rank_at_least(logits, 1, 'logits', '[..., K]')
  _checks.check_floating(logits, 'logits')
  logits = _checks.upcast(logits)
  _checks.check_labels(labels, jnp.shape(logits)[-1], jnp.shape(logits)[:-1])
  if stop_gradient:
    logits = jax.lax.stop_gradient(logits)
  probs = jax.nn.softmax(logits, axis=-1)
  return jnp.take_along_axis(probs, labels[..., None], axis=-1)[..., 0]


def confidence_loss(confidence: jax.Array, logits: jax.Array, labels: jax.Array,
                    mask: jax.Array | None = None, *, stop_gradient: bool = True) -> jax.Array:
  """Squared error between predicted confidences and the true-class probability, `[M, ...]`.

  Args:
    confidence: `[M, ...]` predicted confidences (e.g. a sigmoid head).
    logits: `[M, ..., K]` each modality's classifier logits.
    labels: int `[...]` class indices.
    mask: optional bool `[M, ...]`; missing entries contribute 0.
    stop_gradient: treat the true-class probability as a constant (see
      `true_class_probability`).

  Returns:
    `[M, ...]` per-sample, per-modality losses (reduce as the experiment does).
  """
  _checks.check_rank_at_least(logits, 2, 'logits', '[M, ..., K]')
  if jnp.shape(confidence) != jnp.shape(logits)[:-1]:
    raise ValueError(f'confidence must have shape {jnp.shape(logits)[:-1]} ([M, ...]); got '
                     f'shape {jnp.shape(confidence)}.')
  labels = jnp.broadcast_to(labels, jnp.shape(logits)[:-1])
  target = true_class_probability(logits, labels, stop_gradient=stop_gradient)
  loss = (_checks.upcast(confidence) - target)**2
  if mask is not None:
    _checks.check_mask(mask, jnp.shape(confidence))
    loss = jnp.where(mask, loss, 0)
  return loss


def gate_concat(features: Sequence[jax.Array], confidence: jax.Array,
                mask: jax.Array | None = None) -> jax.Array:
  """Confidence-weighted concatenation `concat_m (c_m * h_m)`; missing modalities give zeros.

  Args:
    features: M arrays `[..., D_m]`, in the config's modality order.
    confidence: `[M, ...]` per-sample confidences.
    mask: optional bool `[M, ...]`, True = present.

  Returns:
    `[..., sum_m D_m]`.

  Example:
    >>> import jax.numpy as jnp
    >>> gate_concat([jnp.ones((1, 2)), jnp.ones((1, 1))], jnp.array([[0.5], [2.0]]))
    Array([[0.5, 0.5, 2. ]], dtype=float32)
  """
  if jnp.shape(confidence)[:1] != (len(features),):
    raise ValueError(f'confidence must have one row per modality ({len(features)}); got shape '
                     f'{jnp.shape(confidence)}.')
  gated = [feature * _checks.upcast(confidence[index])[..., None]
           for index, feature in enumerate(features)]
  return baselines.concat(gated, mask)
