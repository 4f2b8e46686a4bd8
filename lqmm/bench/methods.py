"""The fusion methods the benchmark compares, each as a training loss and a prediction rule.

Every method shares one network (`lqmm.nn.LateFusionNet`: a per-modality MLP encoder and
linear head, and for `concat` a joint head on the concatenated features) so that the comparison
isolates the fusion rule and its training objective. A method is a `Method` of pure functions:

- `loss(outputs, labels, context) -> (scalar, aux)`: the training objective on a batch (every
  modality present during training); `aux` is the method's training state (QMF's loss history);
- `predict(outputs, mask, stats) -> Prediction`: fused class probabilities, a per-sample
  uncertainty (higher = less sure), the per-sample fusion weights `[M, B]` when the rule has
  them (for the Eq. 12 covariance), and each modality's per-sample loss;
- `fit_stats(outputs) -> stats`: statistics fitted on the clean training set after training
  (UNO's entropy statistics), or None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lqmm.fusion import baselines
from lqmm.fusion import dempster_shafer
from lqmm.fusion import energy
from lqmm.fusion import entropy
from lqmm.fusion import noisy_or
from lqmm.fusion import product
from lqmm.losses import evidential
from lqmm.losses import ranking


class Outputs(NamedTuple):
  """Network outputs: per-modality logits `[M, B, K]` and the joint head's `[B, K]` (or None)."""
  logits: jax.Array
  joint: jax.Array | None


class Prediction(NamedTuple):
  """What the benchmark scores for one batch.

  Attributes:
    probs: `[B, K]` fused class probabilities.
    uncertainty: `[B]` per-sample uncertainty (misclassification detection score).
    weights: `[M, B]` per-sample fusion weights, or None for rules without them.
    unimodal_probs: `[M, B, K]` each modality's own class probabilities (its loss enters the
      Eq. 12 covariance).
  """
  probs: jax.Array
  uncertainty: jax.Array
  weights: jax.Array | None
  unimodal_probs: jax.Array


class Context(NamedTuple):
  """What a training loss may read besides the outputs."""
  epoch: jax.Array          # int, 0-based
  indices: jax.Array        # int [B] training-set indices of the batch
  aux: Any                  # the method's training state


class Method(NamedTuple):
  """A fusion method: see the module docstring."""
  loss: Callable
  predict: Callable
  joint: bool = False
  init_aux: Callable[[int, int], Any] = lambda num_modalities, num_train: ()
  fit_stats: Callable | None = None


def _labels_like(labels, logits):
  return jnp.broadcast_to(labels, logits.shape[:-1])


def unimodal_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """`[M, B]` cross-entropy of each modality's logits."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, _labels_like(labels, logits))


def _max_probability_uncertainty(probs):
  return 1 - jnp.max(probs, axis=-1)


def _mean_logits(logits, mask):
  return jnp.log(baselines.mean(jax.nn.softmax(logits, axis=-1), mask) + 1e-12)


# ---------------------------------------------------------------------------------- methods


def concat() -> Method:
  """Intermediate fusion: a linear head on the concatenated (masked) modality features."""

  def loss(outputs, labels, context):
    del context
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(outputs.joint, labels)), ()

  def predict(outputs, mask, stats):
    del mask, stats
    probs = jax.nn.softmax(outputs.joint, axis=-1)
    return Prediction(probs, _max_probability_uncertainty(probs), None,
                      jax.nn.softmax(outputs.logits, axis=-1))

  return Method(loss=loss, predict=predict, joint=True)


def late(fuse_logits: Callable, weights: Callable | None = None) -> Method:
  """Late fusion of logits by `fuse_logits(logits, mask)`, trained on unimodal + fused CE."""

  def loss(outputs, labels, context):
    del context
    fused = fuse_logits(outputs.logits, None)
    unimodal = unimodal_cross_entropy(outputs.logits, labels).sum(axis=0)
    return jnp.mean(unimodal + optax.softmax_cross_entropy_with_integer_labels(fused, labels)), ()

  def predict(outputs, mask, stats):
    del stats
    probs = jax.nn.softmax(fuse_logits(outputs.logits, mask), axis=-1)
    return Prediction(probs, _max_probability_uncertainty(probs),
                      None if weights is None else weights(outputs.logits, mask),
                      jax.nn.softmax(outputs.logits, axis=-1))

  return Method(loss=loss, predict=predict)


def qmf(rank_weight: float = 0.1, margin_as_slack: bool = False) -> Method:
  """QMF: energy-weighted fusion, unimodal + fused CE, and the ranking regulariser."""

  def loss(outputs, labels, context):
    logits = outputs.logits
    fused = energy.fuse(logits)
    unimodal = unimodal_cross_entropy(logits, labels)
    history = ranking.update_history(context.aux, context.indices, unimodal)
    conf = energy.confidence(logits)
    ranks = jax.vmap(lambda c, h: ranking.ranking_loss(
        c, ranking.History(h), context.indices, margin_as_slack=margin_as_slack))(
            conf, history.cumulative_loss)
    total = (jnp.mean(unimodal.sum(axis=0) +
                      optax.softmax_cross_entropy_with_integer_labels(fused, labels)) +
             rank_weight * jnp.sum(ranks))
    return total, history

  def predict(outputs, mask, stats):
    del stats
    probs = jax.nn.softmax(energy.fuse(outputs.logits, mask), axis=-1)
    return Prediction(probs, _max_probability_uncertainty(probs),
                      energy.weights(outputs.logits, mask), jax.nn.softmax(outputs.logits, axis=-1))

  def init_aux(num_modalities, num_train):
    return ranking.init_history(num_train, num_modalities)

  return Method(loss=loss, predict=predict, init_aux=init_aux)


def _evidential(annealing_epochs: int, pseudo_view: bool) -> Method:
  """TMC-style training and prediction, optionally with ETMC's pseudo-view opinion."""

  def _alpha(outputs):
    evidence_logits = (jnp.concatenate([outputs.logits, outputs.joint[None]]) if pseudo_view
                       else outputs.logits)
    return jax.nn.softplus(evidence_logits) + 1

  def loss(outputs, labels, context):
    alpha = _alpha(outputs)
    everything = jnp.concatenate([alpha, dempster_shafer.fuse(alpha)[None]])
    kl_weight = evidential.annealing_weight(context.epoch, annealing_epochs)
    per_sample = evidential.ce_loss(everything, _labels_like(labels, everything),
                                    kl_weight=kl_weight)
    return jnp.mean(per_sample.sum(axis=0)), ()

  def predict(outputs, mask, stats):
    del stats
    alpha = _alpha(outputs)
    modality_alpha = alpha[:-1] if pseudo_view else alpha
    full_mask = mask
    if pseudo_view and mask is not None:  # the pseudo-view is always present
      full_mask = jnp.concatenate([mask, jnp.ones_like(mask[:1])])
    fused = dempster_shafer.fuse(alpha, full_mask)
    _, uncertainty = dempster_shafer.opinion(fused)
    _, modality_uncertainty = dempster_shafer.opinion(modality_alpha)
    weights = 1 - modality_uncertainty
    if mask is not None:
      weights = jnp.where(mask, weights, 0)
    return Prediction(dempster_shafer.expected_probability(fused), uncertainty, weights,
                      dempster_shafer.expected_probability(modality_alpha))

  return Method(loss=loss, predict=predict, joint=pseudo_view)


def tmc(annealing_epochs: int = 50) -> Method:
  """TMC: evidential heads (softplus evidence), Dempster-Shafer fusion, annealed evidential CE."""
  return _evidential(annealing_epochs, pseudo_view=False)


def etmc(annealing_epochs: int = 50) -> Method:
  """Enhanced TMC: TMC plus a pseudo-view, an evidential head on the concatenated features.

  The pseudo-view's opinion is fused with the M modality opinions by Dempster-Shafer; under
  missing modalities it sees zeros for the missing features (it is always present).
  """
  return _evidential(annealing_epochs, pseudo_view=True)


def uno() -> Method:
  """UNO: unimodal classifiers trained alone, fused post hoc by entropy-flattened noisy-or."""

  def loss(outputs, labels, context):
    del context
    return jnp.mean(unimodal_cross_entropy(outputs.logits, labels).sum(axis=0)), ()

  def fit_stats(outputs):
    return noisy_or.entropy_statistics(noisy_or.mean_entropy(outputs.logits))

  def predict(outputs, mask, stats):
    mean, std = stats
    probs = noisy_or.uno(outputs.logits, mean, std, mask)
    factor = noisy_or.flattening_factor(noisy_or.mean_entropy(outputs.logits), mean, std)
    if mask is not None:
      factor = jnp.where(mask, factor, 0)
    return Prediction(probs, _max_probability_uncertainty(probs), factor,
                      jax.nn.softmax(outputs.logits, axis=-1))

  return Method(loss=loss, predict=predict, fit_stats=fit_stats)


METHODS: dict[str, Callable[[], Method]] = {
    'concat': concat,
    'mean': lambda: late(_mean_logits),
    'product': lambda: late(product.fuse),
    'entropy': lambda: late(entropy.fuse, entropy.weights),
    'qmf': qmf,
    'tmc': tmc,
    'etmc': etmc,
    'uno': uno,
}
