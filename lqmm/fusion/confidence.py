"""True-class-probability (TCP) confidence gating (Multimodal Dynamics).

A confidence head per modality regresses the probability its own classifier assigns to the true
class, `tcp_m = softmax(z_m)[y]` (Corbière et al.'s true class probability), which needs no
uncertainty labels and, unlike the maximum class probability, is low on confidently wrong
predictions. At test time the predicted confidence `c_m` scales modality m's features before they
are concatenated and classified jointly:

    h = concat_m (c_m * h_m)     (`fuse`),

and the confidence head trains on `(c_mi - tcp_mi)^2` with `tcp` a constant target
(`lqmm.losses.confidence`). A missing modality contributes zero features (the identity of the
concatenation), whatever its confidence.

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
from lqmm.fusion import baselines

__all__ = ['fuse', 'true_class_probability']


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
  checks.check_rank_at_least(logits, 1, 'logits', '[..., K]')
  checks.check_floating(logits, 'logits')
  checks.check_finite(logits, 'logits')
  logits = checks.upcast(logits)
  checks.check_labels(labels, jnp.shape(logits)[-1], jnp.shape(logits)[:-1])
  if stop_gradient:
    logits = jax.lax.stop_gradient(logits)
  probs = jax.nn.softmax(logits, axis=-1)
  return jnp.take_along_axis(probs, labels[..., None], axis=-1)[..., 0]


def fuse(features, mask: jax.Array | None = None, *, confidence: jax.Array) -> jax.Array:
  """Confidence-gated concatenation `concat_m (c_m * h_m)`; missing modalities give zeros.

  Args:
    features: stacked `[M, ..., D]`, or a sequence of M arrays `[..., D_m]` (widths may
      differ), in the config's modality order.
    mask: optional bool `[M, ...]`, True = present. A missing modality contributes zero
      features (the identity of the concatenation), whatever its confidence.
    confidence: `[M, ...]` per-sample confidences (e.g. a TCP head's outputs).

  Returns:
    `[..., sum_m D_m]`.

  Raises:
    ValueError: `features` is empty, the modalities' leading dims differ, `confidence` is not
      `[M, ...]`, or `mask` has the wrong shape.

  Example:
    >>> import jax.numpy as jnp
    >>> fuse([jnp.ones((1, 2)), jnp.ones((1, 1))], confidence=jnp.array([[0.5], [2.0]]))
    Array([[0.5, 0.5, 2. ]], dtype=float32)
  """
  if not isinstance(features, (list, tuple)):
    checks.check_rank_at_least(features, 2, 'features', '[M, ..., D]')
    features = list(features)
  if not features:
    raise ValueError('features must hold at least one modality; got an empty sequence.')
  for index, feature in enumerate(features):
    checks.as_floats(feature, f'features[{index}]', '[..., D_m]')
  expected = (len(features),) + tuple(jnp.shape(features[0])[:-1])
  if tuple(jnp.shape(confidence)) != expected:
    raise ValueError(f'confidence must have shape {expected} ([M, ...], one confidence per '
                     f'modality and sample); got shape {tuple(jnp.shape(confidence))}.')
  checks.check_floating(confidence, 'confidence')
  checks.check_finite(confidence, 'confidence')
  confidence = checks.upcast(confidence)
  gated = [checks.upcast(feature) * confidence[index][..., None]
           for index, feature in enumerate(features)]
  return baselines.concat(gated, mask)
