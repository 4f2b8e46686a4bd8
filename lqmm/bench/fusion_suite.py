"""The fusion suite: late-fusion rules trained on clean data, scored under low-quality test data.

Every method shares one network (`lqmm.nn.LateFusionNet`: a per-modality MLP encoder and linear
head, and for `concat`/`etmc` a joint head on the concatenated features) so that the comparison
isolates the fusion rule and its training objective. A method's `predict(outputs, mask, extra)`
returns a `Prediction`: fused class probabilities, a per-sample uncertainty (higher = less
sure), the per-sample fusion weights `[M, B]` when the rule has them (for the survey's Eq. 12
covariance) and each modality's own probabilities.
"""

from __future__ import annotations

import functools

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm import data
from lqmm import fusion
from lqmm import metrics
from lqmm import nn
from lqmm import train
from lqmm.bench import conditions as conditions_lib
from lqmm.bench import methods as methods_lib
from lqmm.bench.methods import Hooks
from lqmm.bench.methods import Method
from lqmm.bench.methods import cross_entropy
from lqmm.fusion import conflictive
from lqmm.fusion import dempster_shafer
from lqmm.fusion import energy
from lqmm.fusion import entropy
from lqmm.fusion import noisy_or
from lqmm.fusion import product
from lqmm.fusion import weighted
from lqmm.losses import evidential
from lqmm.losses import ranking


class Outputs(NamedTuple):
  """Network outputs: per-modality logits `[M, B, K]`, the joint head's `[B, K]` (or None), and
  the network's own per-sample fusion weights `[M, B]` (a quality gate's; else None)."""
  logits: jax.Array
  joint: jax.Array | None
  weights: jax.Array | None = None


class Prediction(NamedTuple):
  """What the suite scores for one batch.

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


def _forward(model, inputs, mask=None) -> Outputs:
  out = model(inputs, mask)
  if isinstance(out, nn.feature_fusion.FusionOutputs):   # the fused logits are the joint head's
    return Outputs(out.modality_logits, out.logits, out.weights)  # `feature` admits no DynMM
  return Outputs(*out)


def _unimodal_cross_entropy_sum(logits, labels):
  return cross_entropy(logits, labels).sum()


def _max_probability_uncertainty(probs):
  return 1 - jnp.max(probs, axis=-1)


def _mean_logits(logits, mask):
  return jnp.log(fusion.baselines.fuse(jax.nn.softmax(logits, axis=-1), mask) + 1e-12)


# ---------------------------------------------------------------------------------- methods


def concat() -> Method:
  """Intermediate fusion: a linear head on the concatenated (masked) modality features."""

  def loss(model, batch, context):
    del context
    return cross_entropy(_forward(model, batch['inputs']).joint, batch['label']), {}

  def predict(outputs, mask, extra):
    del mask, extra
    probs = jax.nn.softmax(outputs.joint, axis=-1)
    return Prediction(probs, _max_probability_uncertainty(probs), None,
                      jax.nn.softmax(outputs.logits, axis=-1))

  return Method(loss=loss, predict=predict, network={'joint': True})


def late(fuse_logits: Callable, weights: Callable | None = None) -> Method:
  """Late fusion of logits by `fuse_logits(logits, mask)`, trained on unimodal + fused CE."""

  def loss(model, batch, context):
    del context
    logits = _forward(model, batch['inputs']).logits
    return (_unimodal_cross_entropy_sum(logits, batch['label']) +
            cross_entropy(fuse_logits(logits, None), batch['label'])), {}

  def predict(outputs, mask, extra):
    del extra
    probs = jax.nn.softmax(fuse_logits(outputs.logits, mask), axis=-1)
    return Prediction(probs, _max_probability_uncertainty(probs),
                      None if weights is None else weights(outputs.logits, mask),
                      jax.nn.softmax(outputs.logits, axis=-1))

  return Method(loss=loss, predict=predict)


def qmf(rank_weight: float = 0.1, margin_as_slack: bool = False) -> Method:
  """QMF: energy-weighted fusion, unimodal + fused CE, and the ranking regulariser."""

  def loss(model, batch, context):
    logits = _forward(model, batch['inputs']).logits
    labels, indices = batch['label'], batch['index']
    unimodal = optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.broadcast_to(labels, logits.shape[:-1]))
    history = ranking.update_history(context.extra, indices, unimodal)
    confidence = energy.confidence(logits)
    ranks = jax.vmap(lambda c, h: ranking.ranking_loss(
        c, ranking.History(h), indices, margin_as_slack=margin_as_slack))(
            confidence, history.cumulative_loss)
    total = (jnp.mean(unimodal.sum(axis=0)) + cross_entropy(energy.fuse(logits), labels) +
             rank_weight * jnp.sum(ranks))
    return total, {'extra': history}

  def predict(outputs, mask, extra):
    del extra
    probs = jax.nn.softmax(energy.fuse(outputs.logits, mask), axis=-1)
    return Prediction(probs, _max_probability_uncertainty(probs),
                      energy.weights(outputs.logits, mask), jax.nn.softmax(outputs.logits, axis=-1))

  return Method(loss=loss, predict=predict,
                hooks=Hooks(init=lambda info: ranking.init_history(info.num_train,
                                                                   info.num_modalities)))


def _evidential(annealing_epochs: int, pseudo_view: bool) -> Method:
  """TMC-style training and prediction, optionally with ETMC's pseudo-view opinion."""

  def alpha_of(outputs):
    evidence_logits = (jnp.concatenate([outputs.logits, outputs.joint[None]]) if pseudo_view
                       else outputs.logits)
    return jax.nn.softplus(evidence_logits) + 1

  def loss(model, batch, context):
    alpha = alpha_of(_forward(model, batch['inputs']))
    everything = jnp.concatenate([alpha, dempster_shafer.fuse(alpha)[None]])
    kl_weight = evidential.annealing_weight(context.epoch, annealing_epochs)
    per_sample = evidential.ce_loss(everything,
                                    jnp.broadcast_to(batch['label'], everything.shape[:-1]),
                                    kl_weight=kl_weight)
    return jnp.mean(per_sample.sum(axis=0)), {}

  def predict(outputs, mask, extra):
    del extra
    alpha = alpha_of(outputs)
    modality_alpha = alpha[:-1] if pseudo_view else alpha
    full_mask = mask
    if pseudo_view and mask is not None:  # the pseudo-view is always present
      full_mask = jnp.concatenate([mask, jnp.ones_like(mask[:1])])
    return _opinion_prediction(dempster_shafer.fuse(alpha, full_mask), modality_alpha, mask)

  return Method(loss=loss, predict=predict, network={'joint': pseudo_view})


def _opinion_prediction(fused, modality_alpha, mask) -> Prediction:
  """The evidential methods' prediction: the fused opinion's expected probabilities and
  uncertainty, each present modality's belief mass `1 - u` as its weight."""
  _, uncertainty = dempster_shafer.opinion(fused)
  _, modality_uncertainty = dempster_shafer.opinion(modality_alpha)
  weights = 1 - modality_uncertainty
  if mask is not None:
    weights = jnp.where(mask, weights, 0)
  return Prediction(dempster_shafer.expected_probability(fused), uncertainty, weights,
                    dempster_shafer.expected_probability(modality_alpha))


def tmc(annealing_epochs: int = 50) -> Method:
  """TMC: evidential heads (softplus evidence), Dempster-Shafer fusion, annealed evidential CE."""
  return _evidential(annealing_epochs, pseudo_view=False)


def etmc(annealing_epochs: int = 50) -> Method:
  """Enhanced TMC: TMC plus a pseudo-view, an evidential head on the concatenated features.

  The pseudo-view's opinion is fused with the M modality opinions by Dempster-Shafer; under
  missing modalities it sees zeros for the missing features (it is always present).
  """
  return _evidential(annealing_epochs, pseudo_view=True)


def rcml(annealing_epochs: int = 50, gamma: float = 1.0) -> Method:
  """RCML (Xu et al., AAAI 2024): evidential heads, view-by-view opinion averaging
  (`lqmm.fusion.conflictive`), the mean of the fused and every view's annealed evidential CE
  plus `gamma` times the mean degree of conflict between the views (its `get_loss`; its epochs
  count from 1, hence `epoch + 1` in the annealing weight)."""

  def loss(model, batch, context):
    alpha = jax.nn.softplus(_forward(model, batch['inputs']).logits) + 1
    everything = jnp.concatenate([conflictive.fuse(alpha)[None], alpha])
    kl_weight = evidential.annealing_weight(context.epoch + 1, annealing_epochs)
    per_sample = evidential.ce_loss(everything,
                                    jnp.broadcast_to(batch['label'], everything.shape[:-1]),
                                    kl_weight=kl_weight)
    conflict = jnp.mean(conflictive.degree_of_conflict(alpha))
    return jnp.mean(per_sample) + gamma * conflict, {}

  def predict(outputs, mask, extra):
    del extra
    alpha = jax.nn.softplus(outputs.logits) + 1
    return _opinion_prediction(conflictive.fuse(alpha, mask), alpha, mask)

  return Method(loss=loss, predict=predict)


def uno() -> Method:
  """UNO: unimodal classifiers trained alone, fused post hoc by entropy-flattened noisy-or.

  The entropy statistics are fitted on the clean training split (`Hooks.finish`).
  """

  def loss(model, batch, context):
    del context
    logits = _forward(model, batch['inputs']).logits
    return _unimodal_cross_entropy_sum(logits, batch['label']), {}

  def finish(extra, epoch_data):
    del extra
    return noisy_or.entropy_statistics(noisy_or.mean_entropy(epoch_data.train.logits))

  def predict(outputs, mask, extra):
    mean, std = extra
    probs = noisy_or.uno(outputs.logits, mask, mean=mean, std=std)
    factor = noisy_or.flattening_factor(noisy_or.mean_entropy(outputs.logits), mean, std)
    if mask is not None:
      factor = jnp.where(mask, factor, 0)
    return Prediction(probs, _max_probability_uncertainty(probs), factor,
                      jax.nn.softmax(outputs.logits, axis=-1))

  return Method(loss=loss, predict=predict, hooks=Hooks(finish=finish))


#: Families of `lqmm.nn.FeatureFusionNet` that the suite's step trains (CEN's batch-norm
#: statistics and DynMM's Gumbel gate need steps of their own: `experiments/feature_fusion`).
FEATURE_FUSIONS = ('late', 'gated', 'tokenfusion', 'mbt')


def feature(fusion: str = 'gated', **network) -> Method:
  """A feature-level fusion family (`lqmm.nn.FeatureFusionNet`, per-modality stems to token
  grids; `network` its keyword arguments, e.g. `grid`, `channels`), trained on every
  modality's cross-entropy plus the fused one's plus the family's penalty; the prediction is
  the network's fused logits (the gate's weighted features through the shared head for
  `'gated'`; the mean of the present modalities' logits for the others).

  The suite's `gated` method is `feature('gated')`: of the six families of
  `experiments/feature_fusion`, the quality gate had the highest mean test accuracy over the
  noisy and missing conditions of AV digits and Handwritten together (its README has the
  tables; no family led under every condition).
  """
  if fusion not in FEATURE_FUSIONS:
    raise ValueError(f'fusion {fusion!r} is not trained by the fusion suite; valid names: '
                     f'{", ".join(FEATURE_FUSIONS)} (cen and dynmm: experiments/feature_fusion).')

  def loss(model, batch, context):
    del context
    out = model(batch['inputs'])
    labels = batch['label']
    return (cross_entropy(out.logits, labels) +
            _unimodal_cross_entropy_sum(out.modality_logits, labels) + out.penalty), {}

  def predict(outputs, mask, extra):
    del mask, extra
    probs = jax.nn.softmax(outputs.joint, axis=-1)
    return Prediction(probs, _max_probability_uncertainty(probs), outputs.weights,
                      jax.nn.softmax(outputs.logits, axis=-1))

  return Method(loss=loss, predict=predict,
                network={'feature': fusion, 'feature_kwargs': network, 'own_init': True})


METHODS: dict[str, Callable[..., Method]] = {
    'concat': concat,
    'mean': lambda: late(_mean_logits),
    'product': lambda: late(product.fuse),
    'entropy': lambda: late(entropy.fuse, entropy.weights),
    'qmf': qmf,
    'tmc': tmc,
    'etmc': etmc,
    'rcml': rcml,
    'uno': uno,
    'gated': feature,
}


# ---------------------------------------------------------------------------------- network


def make_network(splits: data.Splits, config, method: Method, key) -> nnx.Module:
  """The shared network with the method's options (a joint head for `concat` and `etmc`);
  `lqmm.nn.FeatureFusionNet` for the feature-level families (its MLP stems of
  `config.model.hidden`)."""
  if method.network.get('feature'):
    kwargs = {'hidden': tuple(config.model.hidden), **method.network.get('feature_kwargs', {})}
    return nn.FeatureFusionNet(dict(splits.shapes), splits.order, splits.num_classes,
                               fusion=method.network['feature'], rngs=nnx.Rngs(key), **kwargs)
  return nn.LateFusionNet(splits.dims, splits.order, splits.num_classes,
                          hidden=tuple(config.model.hidden),
                          joint=bool(method.network.get('joint', False)), rngs=nnx.Rngs(key))


def epoch_data(model, splits_device, method: Method) -> methods_lib.EpochData:
  """Outputs on the whole training and validation splits."""
  del method
  return methods_lib.EpochData(
      _forward(model, splits_device['train']['inputs']), splits_device['train']['label'],
      _forward(model, splits_device['validation']['inputs']),
      splits_device['validation']['label'])


def _finished_extra(method: Method, state: train.TrainState, train_inputs):
  """The method state `predict` reads: `Hooks.finish` on the training split, if any."""
  if method.hooks.finish is None:
    return state.extra
  train_outputs = _forward(state.model(), train_inputs)
  return method.hooks.finish(state.extra, methods_lib.EpochData(train_outputs, None, None, None))


def make_eval_step(method: Method, splits_device):
  """`(state, batch) -> {'accuracy', 'nll'}` of the fused prediction on a clean split.

  A method with `Hooks.finish` (UNO) fits its statistics on the training split with the
  parameters being validated.
  """
  train_inputs = splits_device['train']['inputs']

  def eval_step(state: train.TrainState, batch):
    extra = _finished_extra(method, state, train_inputs)
    prediction = method.predict(_forward(state.model(), batch['inputs']), None, extra)
    labels = batch['label']
    true_class = jnp.take_along_axis(prediction.probs, labels[:, None], 1)[:, 0]
    return {'accuracy': metrics.accuracy(prediction.probs, labels),
            'nll': -jnp.mean(jnp.log(true_class + 1e-12))}

  return eval_step


def score(method: Method, state: train.TrainState, splits: data.Splits,
          conditions: Sequence[conditions_lib.Condition], *, key: jax.Array,
          ece_bins: int = 15) -> dict[str, dict[str, np.ndarray]]:
  """Scores every seed of `state` under every condition on the test split.

  Returns:
    `{condition: {'accuracy', 'ece', 'uncertainty_auroc', 'covariance', 'uncertainty_clean',
    'uncertainty_noisy', 'noise_auroc': [S], 'uncertainty_density_clean',
    'uncertainty_density_noisy': [S, DENSITY_BINS]}}`; the covariance is the survey's Eq. 12
    between each modality's fusion weight and its own cross-entropy, averaged over modalities
    (NaN for rules without per-sample weights). A test sample is noisy when the condition
    changed any of its inputs; `uncertainty_clean` / `_noisy` are the mean fused uncertainty of
    the clean and of the noisy samples, `noise_auroc` the AUROC of the uncertainty for telling
    noisy from clean samples (NaN unless the test set holds both), and the densities histogram
    the uncertainty of each group on `DENSITY_EDGES` (share of the group per bin, NaN for an
    empty group).
  """
  order = splits.order
  test = jax.tree.map(jnp.asarray, splits.test)
  train_inputs = jax.tree.map(jnp.asarray, splits.train['inputs'])

  # The method state `predict` reads (UNO's statistics of the training split): once per seed,
  # not once per condition.
  finished = jax.jit(jax.vmap(lambda state: _finished_extra(method, state, train_inputs)))
  state = state.replace(extra=finished(state))

  @jax.jit
  def score_all(state, inputs, mask, labels, noisy):
    def one_seed(state):
      extra = state.extra
      prediction = method.predict(_forward(state.model(), inputs, mask), mask, extra)
      true_class = jnp.take_along_axis(prediction.unimodal_probs,
                                       jnp.broadcast_to(labels, mask.shape)[..., None], -1)[..., 0]
      unimodal_loss = -jnp.log(true_class + 1e-12)
      if prediction.weights is None:
        covariance = jnp.float32(jnp.nan)
      else:
        covariance = jnp.mean(weighted.weight_loss_covariance(
            prediction.weights, unimodal_loss, mask))
      return {
          'accuracy': metrics.accuracy(prediction.probs, labels),
          'ece': metrics.expected_calibration_error(prediction.probs, labels, num_bins=ece_bins),
          'uncertainty_auroc': metrics.uncertainty_auroc(prediction.uncertainty,
                                                         prediction.probs, labels),
          'covariance': covariance,
          **_noise_separation(prediction.uncertainty, noisy),
      }
    return jax.vmap(one_seed)(state)

  out = {}
  for index, condition in enumerate(conditions):
    inputs, mask = conditions_lib.apply(condition, test['inputs'], order,
                                        key=jax.random.fold_in(key, index), labels=test['label'],
                                        num_classes=splits.num_classes)
    copies = conditions_lib.replicas(condition, len(order))
    clean = {name: jnp.tile(test['inputs'][name], (copies,) + (1,) * (x.ndim - 1))
             for name, x in test['inputs'].items()}
    noisy = functools.reduce(jnp.logical_or, [
        jnp.any((inputs[name] != clean[name]).reshape(clean[name].shape[0], -1), axis=1)
        for name in order])
    out[condition.name] = jax.tree.map(
        np.asarray, score_all(state, inputs, mask, jnp.tile(test['label'], copies), noisy))
  return out


#: Bin edges of the uncertainty densities `score` stores (every method's uncertainty is in
#: [0, 1]: the fused `u = K / S` or `1 - max p`).
DENSITY_EDGES = np.linspace(0.0, 1.0, 41)


def _noise_separation(uncertainty: jax.Array, noisy: jax.Array) -> dict[str, jax.Array]:
  """Mean uncertainty and its histogram for the clean and the noisy samples, and the AUROC of
  the uncertainty for detecting the noisy ones (NaN where a group is empty)."""
  out = {}
  edges = jnp.asarray(DENSITY_EDGES, uncertainty.dtype)
  bins = jnp.clip(jnp.searchsorted(edges, uncertainty, side='right') - 1, 0, len(edges) - 2)
  for group, members in (('clean', ~noisy), ('noisy', noisy)):
    count = jnp.sum(members).astype(uncertainty.dtype)
    share = jnp.where(count > 0, 1 / jnp.maximum(count, 1), jnp.nan)
    out[f'uncertainty_{group}'] = jnp.sum(jnp.where(members, uncertainty, 0.0)) * share
    out[f'uncertainty_density_{group}'] = jnp.zeros(len(edges) - 1, uncertainty.dtype).at[
        bins].add(members.astype(uncertainty.dtype)) * share
  out['noise_auroc'] = metrics.auroc(uncertainty, noisy)
  return out
