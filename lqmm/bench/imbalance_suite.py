"""The imbalance suite: balanced-learning methods side by side on one imbalanced data set.

Every method trains the same `lqmm.nn.BalanceNet` (an encoder per modality, a linear head on the
concatenated features, and per-modality auxiliary heads; the greedy learner trains
`lqmm.nn.GreedyNet`, the same branches joined by MMTM). Each training step records every
modality's score (the batch-mean true-class probability of its share of the fused logits, the
score OGM's rule reads) averaged over the epoch, hence the imbalance ratio. The parameters kept
per seed are those with the best validation accuracy (never the test split). (The scores are
taken from a plain forward pass with every modality, also for methods whose training pass drops
modalities or re-balances gates.) They are then scored
on the test split:

- fused accuracy, and each modality's accuracy from its share of the fused head (`unimodal`)
  and from its auxiliary head (`auxiliary`, trained only by methods with unimodal losses);
- the linear-probe accuracy of each encoder: a logistic regression on its frozen features
  (fitted on the training split, scored on the test split). Run with a modality trained alone
  (reference runs `alone:<m>`), the difference `probe(alone) - probe(method)` is that method's
  under-optimisation gap for the modality (Peng et al.'s and Du et al.'s diagnostic).

Methods are `lqmm.bench.methods.Method`s; `METHODS` maps names to factories.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm import data
from lqmm import missing
from lqmm import nn
from lqmm import optim
from lqmm import train
from lqmm import valuation
from lqmm.bench import methods as methods_lib
from lqmm.bench.methods import Hooks
from lqmm.bench.methods import Method
from lqmm.bench.methods import accuracy
from lqmm.bench.methods import cross_entropy
from lqmm.losses import blending
from lqmm.losses import calibration
from lqmm.losses import distillation
from lqmm.losses import prototype


def _result(value, outputs: nn.BalanceOutputs, batch, *, clean=None, **aux):
  """A loss's `(value, aux)`: the outputs and the per-modality training scores.

  The scores (OGM's batch-mean true-class probability of each modality's share of the fused
  logits) are those of the plain forward pass with every modality: `clean` when the loss ran
  a modified one (dropped modalities, re-balanced gates), else `outputs`; the imbalance ratio
  is comparable across methods.
  """
  scored = outputs if clean is None else jax.lax.stop_gradient(clean)
  scores = optim.modality_scores(scored.unimodal, batch['label'])
  return value, {'outputs': outputs, 'metrics': {'scores': scores}, **aux}


def _default_args(aux, batch, context) -> dict:
  """The extra args of lqmm.optim's balance transforms: unimodal logits, labels, epoch."""
  return {'unimodal_logits': aux['outputs'].unimodal, 'labels': batch['label'],
          'epoch': context.epoch}


def _fused(model, batch, context, keep=None):
  del context
  outputs = model(batch['inputs'], keep)
  clean = None if keep is None else model(batch['inputs'])
  return _result(cross_entropy(outputs.fused, batch['label']), outputs, batch, clean=clean)


def encoder_labels(params, order) -> Any:
  """Modality labels of a network's encoders (`encoders/<m>/...`), 'shared' elsewhere."""
  return optim.modality_labels(params, {name: f'^encoders/{name}/' for name in order})


def only_keep(num_modalities: int, batch: int, only: int | None):
  """`bool [M, B]` keeping modality `only` alone, or None."""
  if only is None:
    return None
  return jnp.broadcast_to((jnp.arange(num_modalities) == only)[:, None], (num_modalities, batch))


# ---------------------------------------------------------------------------------- methods


def joint() -> Method:
  """Plain joint training: cross-entropy of the fused head."""
  return Method(loss=_fused)


def alone(modality: int) -> Method:
  """Modality `modality` trained alone (the others' features zeroed): the probe's reference."""

  def loss(model, batch, context):
    return _fused(model, batch, context, only_keep(len(context.order),
                                                   batch['label'].shape[0], modality))

  return Method(loss=loss, network={'only': modality})


def auxiliary(weight: float = 1.0) -> Method:
  """Fused cross-entropy plus `weight` times the sum of the auxiliary heads' cross-entropies."""

  def loss(model, batch, context):
    del context
    outputs = model(batch['inputs'])
    labels = batch['label']
    return _result(cross_entropy(outputs.fused, labels) +
                   weight * cross_entropy(outputs.auxiliary, labels).sum(), outputs, batch)

  return Method(loss=loss)


def gblend(every: int = 5, estimator: str = 'paper') -> Method:
  """Gradient-Blending: auxiliary + fused losses weighted by online G-Blend estimates.

  Every `every` epochs the train and validation losses of the M auxiliary heads and the fused
  head are compared with those `every` epochs earlier (`lqmm.losses.blending.gblend_weights`);
  the weights start uniform.
  """

  def init(info):
    uniform = jnp.full((info.num_modalities + 1,), 1.0 / (info.num_modalities + 1), jnp.float32)
    return {'weights': uniform, 'train': jnp.zeros_like(uniform),
            'validation': jnp.zeros_like(uniform)}

  def head_losses(outputs, labels):
    return jnp.concatenate([cross_entropy(outputs.auxiliary, labels),
                            cross_entropy(outputs.fused, labels)[None]])

  def epoch_start(extra, epoch_data, epoch, key):
    del key
    train_losses = head_losses(epoch_data.train, epoch_data.train_labels)
    validation_losses = head_losses(epoch_data.validation, epoch_data.validation_labels)
    weights = blending.gblend_weights(extra['train'], train_losses, extra['validation'],
                                      validation_losses, estimator=estimator, min_weight=1e-8,
                                      eps=1e-8)
    checkpoint = epoch % every == 0
    estimate = checkpoint & (epoch > 0)
    return {'weights': jnp.where(estimate, weights, extra['weights']),
            'train': jnp.where(checkpoint, train_losses, extra['train']),
            'validation': jnp.where(checkpoint, validation_losses, extra['validation'])}

  def loss(model, batch, context):
    outputs = model(batch['inputs'])
    labels = batch['label']
    value = blending.blended_loss(cross_entropy(outputs.fused, labels),
                                  cross_entropy(outputs.auxiliary, labels),
                                  context.extra['weights'])
    return _result(value, outputs, batch)

  return Method(loss=loss, hooks=Hooks(init=init, epoch_start=epoch_start))


def ogm(alpha: float = 0.5, generalization_enhancement: bool = True, faithful: bool = False,
        start_epoch: int | None = None, end_epoch: int | None = None) -> Method:
  """OGM / OGM-GE (`lqmm.optim.ogm`) on every encoder."""

  def transform(params, order, key):
    return optim.ogm(encoder_labels(params, order), order, key=key, alpha=alpha,
                     generalization_enhancement=generalization_enhancement,
                     faithful=faithful, start_epoch=start_epoch, end_epoch=end_epoch)

  return Method(loss=_fused, transform=transform, transform_args=_default_args)


def ogm_faithful(alpha: float = 0.8, start_epoch: int = 0, end_epoch: int = 50) -> Method:
  """OGM-GE with the original's rule: two modalities, conv kernels only, epochs 0-50.

  Its coefficients only touch 4-D leaves, so it does nothing to MLP encoders: use it with
  `encoder='conv'`. alpha 0.8 is the original README's CREMA-D setting.
  """
  return ogm(alpha=alpha, faithful=True, start_epoch=start_epoch, end_epoch=end_epoch)


def _subset_inputs(inputs, order, present):
  """`inputs` with the modalities absent from `present: bool [M]` zeroed."""
  return {name: jnp.where(present[index], inputs[name], jnp.zeros_like(inputs[name]))
          for index, name in enumerate(order)}


def agm(alpha: float = 1.0, cap: float | None = 10.0) -> Method:
  """AGM (`lqmm.optim.agm`) on every encoder, mono outputs from zeroed inputs."""

  def loss(model, batch, context):
    value, aux = _fused(model, batch, context)
    subsets = valuation.subset_masks(len(context.order))
    fused = [model(_subset_inputs(batch['inputs'], context.order, subsets[index])).fused
             for index in range(len(subsets) - 1)]
    aux['mono_logits'] = optim.mono_outputs(jnp.stack(fused + [aux['outputs'].fused]))
    return value, aux

  def transform(params, order, key):
    del key
    return optim.agm(encoder_labels(params, order), order, alpha=alpha, cap=cap)

  def transform_args(aux, batch, context):
    return {**_default_args(aux, batch, context), 'mono_logits': aux['mono_logits']}

  return Method(loss=loss, transform=transform, transform_args=transform_args)


def pmr(alpha: float = 1.0) -> Method:
  """PMR: prototypes of every class from the training features at each epoch start."""

  def init(info):
    return jnp.zeros((info.num_modalities, info.num_classes, info.features), jnp.float32)

  def epoch_start(extra, epoch_data, epoch, key):
    del extra, epoch, key
    return prototype.prototypes(epoch_data.train.features, epoch_data.train_labels,
                                epoch_data.train.fused.shape[-1])

  def loss(model, batch, context):
    outputs = model(batch['inputs'])
    value, _ = prototype.pmr_loss(outputs.fused, outputs.features, context.extra,
                                  batch['label'], epoch=context.epoch, alpha=alpha,
                                  end_epoch=1 << 30)
    return _result(value, outputs, batch)

  return Method(loss=loss, hooks=Hooks(init=init, epoch_start=epoch_start))


def mmcosine(scale: float = 10.0) -> Method:
  """MMCosine: the fused head is the sum of per-modality scaled cosines."""
  return Method(loss=_fused, network={'head': 'cosine', 'cosine_scale': scale})


def umt(weight: float = 10.0) -> Method:
  """Uni-modal teachers: fused CE plus `weight` times the feature distillation to the teachers.

  The teachers are the same seed's `alone:<m>` runs' encoders; their training-split features
  are the method's state.
  """

  def loss(model, batch, context):
    outputs = model(batch['inputs'])
    teacher = context.extra[:, batch['index']]
    distill = distillation.feature_distillation_loss(outputs.features, teacher, weight=weight)
    return _result(cross_entropy(outputs.fused, batch['label']) + jnp.mean(distill), outputs,
                   batch)

  return Method(loss=loss, hooks=Hooks(init=lambda info: info.teachers, teachers=True))


def sample_valuation(start_epoch: int = 5, size_weighted: bool = True) -> Method:
  """Sample-level modality valuation with re-sampling (Wei et al., CVPR 2024).

  From `start_epoch` on, each epoch values every training sample's modalities with Shapley
  values of the subset correctness (`lqmm.valuation`, features zeroed at the head), appends the
  original's enhancement copies of low-contribution (sample, modality) pairs keeping only that
  modality, and trains on N rows drawn without replacement from that expanded list: the same
  number of steps per epoch as every other method (the original trains on the whole, longer list).
  """

  def plan(epoch_data, epoch, key):
    labels = epoch_data.train_labels
    num_samples = labels.shape[0]
    num_modalities = epoch_data.train.unimodal.shape[0]
    values = valuation.correctness_values(epoch_data.subset_fused, labels,
                                          size_weighted=size_weighted)
    repeats = valuation.sample_level_repeats(valuation.shapley_values(values))
    most = len(valuation.SAMPLE_LEVEL_THRESHOLDS)
    expanded = valuation.expand_sample_level(
        repeats, total_size=num_samples * (1 + most * num_modalities))
    priority = jnp.where(expanded.valid, jax.random.uniform(key, expanded.valid.shape), 2.0)
    rows = jnp.argsort(priority)[:num_samples]
    active = epoch >= start_epoch
    indices = jnp.where(active, expanded.indices[rows], jnp.arange(num_samples))
    keep = jnp.where(active, expanded.mask[:, rows], True)
    return indices, keep

  def init(info):
    return {'rows': jnp.arange(info.num_train, dtype=jnp.int32),
            'keep': jnp.ones((info.num_modalities, info.num_train), bool)}

  def epoch_start(extra, epoch_data, epoch, key):
    del extra
    rows, keep = plan(epoch_data, epoch, key)
    return {'rows': rows.astype(jnp.int32), 'keep': keep}

  def loss(model, batch, context):
    return _fused(model, batch, context, context.extra['keep'][:, batch['position']])

  return Method(loss=loss, hooks=Hooks(init=init, epoch_start=epoch_start,
                                       epoch_rows=lambda extra: extra['rows']))


def cml(weight: float = 1.0, tolerance: float = 0.0) -> Method:
  """CML: fused CE plus `weight` times the calibration penalty over a nested chain of subsets.

  Each batch runs the head on a chain of inputs that drop one more modality at a time, in a
  random order per sample (`lqmm.losses.calibration.nested_subset_masks`; a dropped modality's
  features are zeroed at the head), and penalises confidence that rises as modalities go.
  """

  def loss(model, batch, context):
    outputs = model(batch['inputs'])
    num_modalities, size = outputs.features.shape[:2]
    chain = calibration.nested_subset_masks(num_modalities, size, key=context.key)
    logits = jnp.stack([
        model.heads(jnp.where(chain[step][..., None], outputs.features, 0)).fused
        for step in range(num_modalities)])
    penalty = calibration.calibration_loss(logits, batch['label'], tolerance=tolerance)
    return _result(cross_entropy(outputs.fused, batch['label']) + weight * jnp.mean(penalty),
                   outputs, batch)

  return Method(loss=loss)


def greedy(epsilon: float = 0.01, window: int = 5, start_epoch: int = 1) -> Method:
  """The greedy learner's balanced training on `lqmm.nn.GreedyNet` (MMTM between the branches).

  Loss: the sum of the branch cross-entropies (the original's). `lqmm.optim.greedy_schedule`
  tracks the conditional learning speeds and switches on re-balancing steps, in which the cared
  modality's MMTM gate is replaced by its running mean (read from the schedule's state).
  """

  def transform(params, order, key):
    del key
    channels = [params['mmtm']['excite'][index]['bias'].shape[0] for index in range(len(order))]
    return optim.greedy_schedule(optim.greedy_group_labels(params, order), len(order),
                                 epsilon=epsilon, window=window, start_epoch=start_epoch,
                                 channels=channels)

  def loss(model, batch, context):
    schedule = context.state.opt_state[0]  # the transform comes first in the chain
    outputs = model(batch['inputs'], None, **schedule.model_kwargs())
    return _result(cross_entropy(outputs.auxiliary, batch['label']).sum(), outputs, batch,
                   clean=model(batch['inputs']))

  def transform_args(aux, batch, context):
    return {**_default_args(aux, batch, context), 'gates': aux['outputs'].gates}

  return Method(loss=loss, transform=transform, transform_args=transform_args,
                network={'kind': 'greedy'})


def modality_dropout(rate: float = 0.3) -> Method:
  """Drops each modality of a training sample with probability `rate`, never all of them."""

  def loss(model, batch, context):
    keep = missing.modality_dropout((len(context.order), batch['label'].shape[0]), rate=rate,
                                    key=context.key)
    return _fused(model, batch, context, keep)

  return Method(loss=loss)


def mslr(window: int = 5) -> Method:
  """MSLR (`lqmm.optim.rates.scale_by_validation_trend`) from the split heads' val accuracy."""

  def epoch_start(extra, epoch_data, epoch, key):
    del extra, epoch, key
    return accuracy(epoch_data.validation.unimodal, epoch_data.validation_labels)

  def transform(params, order, key):
    del key
    return optim.validation_trend(encoder_labels(params, order), order, window=window)

  def transform_args(aux, batch, context):
    return {**_default_args(aux, batch, context), 'unimodal_accuracy': context.extra}

  return Method(loss=_fused, transform=transform, transform_args=transform_args,
                hooks=Hooks(init=lambda info: jnp.zeros((info.num_modalities,), jnp.float32),
                            epoch_start=epoch_start))


#: Method factories by name; the `alone:<m>` reference runs are added by the harness.
METHODS: dict[str, Callable[..., Method]] = {
    'joint': joint,
    'auxiliary': auxiliary,
    'gblend': gblend,
    'ogm': lambda **kwargs: ogm(generalization_enhancement=False, **kwargs),
    'ogm_ge': ogm,
    'ogm_ge_faithful': ogm_faithful,
    'agm': agm,
    'pmr': pmr,
    'mmcosine': mmcosine,
    'modality_dropout': modality_dropout,
    'mslr': mslr,
    'umt': umt,
    'sample_valuation': sample_valuation,
    'cml': cml,
    'greedy': greedy,
}


# ---------------------------------------------------------------------------------- network


NETWORKS = ('balance', 'greedy')


def make_network(splits: data.Splits, config, method: Method, key):
  """The suite's network with the method's options."""
  kind = method.network.get('kind', 'balance')
  if kind not in NETWORKS:
    raise KeyError(f'Unknown network {kind!r}; valid names: {", ".join(NETWORKS)}.')
  if kind == 'greedy':
    return nn.GreedyNet(splits.shapes, splits.order, splits.num_classes,
                        features=config.model.features, hidden=tuple(config.model.hidden)[0],
                        rngs=nnx.Rngs(key))
  return nn.BalanceNet(splits.shapes, splits.order, splits.num_classes,
                       features=config.model.features, encoder=config.model.encoder,
                       hidden=tuple(config.model.hidden), channels=tuple(config.model.channels),
                       head=method.network.get('head', 'linear'),
                       cosine_scale=method.network.get('cosine_scale', 10.0),
                       rngs=nnx.Rngs(key))


def epoch_data(model, splits_device, method: Method) -> methods_lib.EpochData:
  """Outputs on the whole training and validation splits, and the subsets' fused logits."""
  train_set, validation = splits_device['train'], splits_device['validation']
  num_modalities = len(model.order)
  only = method.network.get('only')
  train_outputs = model(train_set['inputs'],
                        only_keep(num_modalities, train_set['label'].shape[0], only))
  subsets = valuation.subset_masks(num_modalities)
  subset_fused = jnp.stack([
      model.heads(jnp.where(subsets[index][:, None, None], train_outputs.features, 0)).fused
      for index in range(len(subsets))])
  validation_outputs = model(validation['inputs'],
                             only_keep(num_modalities, validation['label'].shape[0], only))
  return methods_lib.EpochData(train_outputs, train_set['label'], validation_outputs,
                               validation['label'], subset_fused)


def make_eval_step(method: Method, splits_device):
  """`(state, batch) -> {'accuracy'}` of the fused head (the selection metric)."""
  del splits_device
  only = method.network.get('only')

  def eval_step(state: train.TrainState, batch):
    model = state.model()
    keep = only_keep(len(model.order), batch['label'].shape[0], only)
    return {'accuracy': accuracy(model(batch['inputs'], keep).fused, batch['label'])}

  return eval_step


# ---------------------------------------------------------------------------------- evaluation


def linear_probe_accuracy(train_features: jax.Array, train_labels: jax.Array,
                          test_features: jax.Array, test_labels: jax.Array, *,
                          num_classes: int, steps: int = 300, l2: float = 1e-3) -> jax.Array:
  """Test accuracy of a logistic regression fitted on frozen features.

  Features are standardised with training statistics; the probe is fitted by full-batch Adam
  (learning rate 0.05) on the mean cross-entropy plus `l2 * |W|^2`.

  Args:
    train_features: `[N, D]`.
    train_labels: `[N]`.
    test_features: `[N', D]`.
    test_labels: `[N']`.
    num_classes: K.
    steps: Adam steps.
    l2: L2 penalty of the weights.

  Returns:
    A scalar float32 accuracy.
  """
  mean = train_features.mean(0, keepdims=True)
  std = train_features.std(0, keepdims=True) + 1e-6
  standardise = lambda x: (x - mean) / std
  train_x, test_x = standardise(train_features), standardise(test_features)
  dim = train_x.shape[-1]
  params = {'w': jnp.zeros((dim, num_classes)), 'b': jnp.zeros((num_classes,))}
  optimizer = optax.adam(0.05)

  def objective(params):
    logits = train_x @ params['w'] + params['b'][None]
    return cross_entropy(logits, train_labels) + l2 * jnp.sum(params['w'] ** 2)

  def step(carry, _):
    params, opt_state = carry
    grads = jax.grad(objective)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), None, length=steps)
  logits = test_x @ params['w'] + params['b'][None]
  return jnp.mean(jnp.argmax(logits, -1) == test_labels)


def score(method: Method, state: train.TrainState, splits: data.Splits, config
          ) -> dict[str, np.ndarray]:
  """Per-seed test scores of the kept parameters.

  Returns:
    `{'fused': [S], 'unimodal': [S, M], 'auxiliary': [S, M], 'probe': [S, M]}` accuracies,
    plus `'utilization': [S, M]` (conditional utilisation rates) for `GreedyNet`.
  """
  num_modalities = len(splits.order)
  train_inputs = jax.tree.map(jnp.asarray, splits.train['inputs'])
  test_inputs = jax.tree.map(jnp.asarray, splits.test['inputs'])
  train_labels = jnp.asarray(splits.train['label'])
  test_labels = jnp.asarray(splits.test['label'])
  only = method.network.get('only')

  @jax.jit
  def score_all(state):
    def one_seed(state):
      model = state.model()
      keep = only_keep(num_modalities, test_labels.shape[0], only)
      outputs = model(test_inputs, keep)
      correct = lambda logits: accuracy(logits, test_labels)
      scores = {'fused': correct(outputs.fused), 'unimodal': correct(outputs.unimodal),
                'auxiliary': correct(outputs.auxiliary)}
      if isinstance(model, nn.GreedyNet):
        # Probe each branch with the cross-modal flow off (the others' mean squeezes), and
        # measure the conditional utilisation rate of every branch.
        means = model.mean_squeezes(train_inputs)
        train_features = model.encode(train_inputs, means)
        test_features = model.encode(test_inputs, means)
        flow_off = correct(model.heads(test_features).auxiliary)
        scores['utilization'] = optim.conditional_utilization(scores['auxiliary'], flow_off)
      else:
        train_features = model.encode(train_inputs)
        test_features = outputs.features if keep is None else model.encode(test_inputs)
      scores['probe'] = jax.vmap(lambda tr, te: linear_probe_accuracy(
          tr, train_labels, te, test_labels, num_classes=splits.num_classes,
          steps=config.eval.probe_steps, l2=config.eval.probe_l2))(train_features, test_features)
      return scores
    return jax.vmap(one_seed)(state)

  return {name: np.asarray(value) for name, value in score_all(state).items()}


def teacher_features(alone_states: Mapping[int, train.TrainState], splits: data.Splits
                     ) -> jax.Array:
  """`[S, M, N, D]` training-split features of each modality's `alone` encoder, seed by seed."""
  inputs = jax.tree.map(jnp.asarray, splits.train['inputs'])
  per_modality = []
  for index in range(len(splits.order)):
    encode = jax.jit(jax.vmap(lambda state: state.model().encode(inputs)))
    per_modality.append(encode(alone_states[index])[:, index])
  return jnp.stack(per_modality, axis=1)
