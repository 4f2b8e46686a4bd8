"""The imbalance report: balanced-learning methods side by side on one imbalanced data set.

Every method trains the same `lqmm.nn.BalanceNet` (an encoder per modality, a linear head on the
concatenated features, and per-modality auxiliary heads; the greedy learner trains
`lqmm.nn.GreedyNet`, the same branches joined by MMTM); `num_seeds` seeds train together
(`jax.vmap` over seeds of a `jax.lax.scan` over epochs). Each epoch records, on the training
split, every modality's score (the batch-mean true-class probability of its share of the fused
logits, OGM's score) and hence the imbalance ratio; every `eval_every` epochs the validation
split picks the kept parameters (never the test split). The kept parameters are then scored on
the test split:

- fused accuracy, and each modality's accuracy from its share of the fused head (`unimodal`)
  and from its auxiliary head (`auxiliary`, trained only by methods with unimodal losses);
- the linear-probe accuracy of each encoder: a logistic regression on its frozen features
  (fitted on the training split, scored on the test split). Run with a modality trained alone
  (method `alone`), the difference `probe(alone) - probe(joint method)` is that method's
  under-optimisation gap for the modality (Peng et al.'s and Du et al.'s diagnostic).

A method is a `BalanceMethod` of pure functions (see its docstring); `METHODS` maps names to
factories. Nothing here reads the test split before training has ended.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm import _checks
from lqmm import data
from lqmm import missing
from lqmm import nn
from lqmm import optim
from lqmm import valuation
from lqmm.bench import methods
from lqmm.losses import blending
from lqmm.losses import calibration
from lqmm.losses import distillation
from lqmm.losses import prototype
from lqmm.nn import mmtm as mmtm_lib
from lqmm.optim import modulation


@dataclasses.dataclass(frozen=True)
class ImbalanceSettings:
  """Training settings shared by every method on one data set.

  Attributes:
    epochs: training epochs; `eval_every` must divide it.
    batch_size: minibatch size (the last partial batch of an epoch is dropped).
    learning_rate: SGD learning rate (momentum 0.9, as OGM-GE's code) or Adam's.
    optimizer: `'sgd'` or `'adam'`.
    weight_decay: L2 weight decay added to the gradient.
    features: encoder output width D.
    encoder: `'mlp'`, `'conv'` or `{modality: kind}` (see `lqmm.nn.BalanceNet`).
    hidden: MLP encoder hidden widths.
    channels: conv encoder widths.
    eval_every: validation interval in epochs.
    probe_steps: full-batch Adam steps of each linear probe.
    probe_l2: L2 penalty of the linear probes.
  """
  epochs: int = 60
  batch_size: int = 64
  learning_rate: float = 1e-3
  optimizer: str = 'adam'
  weight_decay: float = 1e-4
  features: int = 64
  encoder: str | Mapping[str, str] = 'mlp'
  hidden: tuple[int, ...] = (128,)
  channels: tuple[int, ...] = (16, 32)
  eval_every: int = 5
  probe_steps: int = 300
  probe_l2: float = 1e-3


class StepContext(NamedTuple):
  """What a method's loss may read besides the outputs."""
  epoch: jax.Array       # i32[], 0-based
  key: jax.Array         # typed key of this step
  state: Any             # the method's state, refreshed at every epoch start
  teacher: Any = None    # [M, B, D] features of the unimodal teachers (methods with teacher=True)
  heads: Any = None      # features [M, B, D] -> BalanceOutputs, the model's heads


class EpochData(NamedTuple):
  """What a method's `epoch_start` and `plan` see: outputs on the whole train/validation sets.

  `subset_fused` is `[2^M, N, K]`: the fused logits of the training set with the features of the
  modalities absent from each subset (`lqmm.valuation.subset_masks` order) zeroed at the head;
  only for methods with `subsets=True`, else None.
  """
  train: nn.BalanceOutputs
  train_labels: jax.Array
  validation: nn.BalanceOutputs
  validation_labels: jax.Array
  subset_fused: jax.Array | None = None


class BalanceMethod(NamedTuple):
  """One balanced-learning method, as pure functions.

  Attributes:
    loss: `(outputs: BalanceOutputs, labels [B], context) -> scalar`; default fused CE.
    transform: `(param_labels, order, key, abstract params) -> GradientTransformationExtraArgs`
      chained before the optimizer, or None. Its `update` gets the extra args
      `unimodal_logits [M, B, K]`, `labels [B]`, `epoch`, `mono_logits [M, B, K]` (with
      `mono=True`), `extra_args(state)` and `extra_from_outputs(outputs)`.
    keep: `(key, M, B) -> bool [M, B]` modalities kept in a training batch, or None (all).
    init_state: `(num_modalities, num_classes, features) -> state`.
    epoch_start: `(state, EpochData, epoch, key) -> state`, run before each epoch, or None.
    extra_args: `state -> dict` of further extra args for the transform, or None.
    head: the fused head of `lqmm.nn.BalanceNet` (`'linear'` or `'cosine'`).
    cosine_scale: MMCosine's scale s for `head='cosine'`.
    mono: compute AGM's mono-modal outputs (`lqmm.optim.mono_outputs` of the model run with the
      absent modalities' inputs zeroed, every subset) for the transform.
    only: the modality index a unimodal (`alone`) run trains, or None.
    plan: `(state, EpochData, epoch, key) -> (indices [N], keep [M, N])`: the epoch's training
      rows (indices into the training set, N of them) and the modalities each row keeps, or
      None for a plain permutation with every modality.
    subsets: compute `EpochData.subset_fused` (for `plan` or `epoch_start`).
    teacher: the loss reads `context.teacher`, the features of the same seed's `alone` runs'
      encoders (uni-modal teachers) for the batch.
    model: `'balance'` (`lqmm.nn.BalanceNet`) or `'greedy'` (`lqmm.nn.GreedyNet`).
    labels: `(abstract params, order) -> label tree` handed to `transform` (default: modality
      labels `encoders/<m>/`).
    model_kwargs: `transform state -> dict` of options for the next training forward (the
      greedy schedule's re-balancing), or None.
    extra_from_outputs: `outputs -> dict` of further extra args for the transform, or None.
  """
  loss: Callable | None = None
  transform: Callable | None = None
  keep: Callable | None = None
  init_state: Callable = lambda num_modalities, num_classes, features: ()
  epoch_start: Callable | None = None
  extra_args: Callable | None = None
  head: str = 'linear'
  cosine_scale: float = 10.0
  mono: bool = False
  only: int | None = None
  plan: Callable | None = None
  subsets: bool = False
  teacher: bool = False
  model: str = 'balance'
  labels: Callable | None = None
  model_kwargs: Callable | None = None
  extra_from_outputs: Callable | None = None


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean cross-entropy of `[..., B, K]` logits over the batch (broadcast labels `[B]`)."""
  return jnp.mean(methods.unimodal_cross_entropy(logits, labels), axis=-1)


def _fused_loss(outputs, labels, context):
  del context
  return cross_entropy(outputs.fused, labels)


# ---------------------------------------------------------------------------------- methods


def joint() -> BalanceMethod:
  """Plain joint training: cross-entropy of the fused head."""
  return BalanceMethod()


def alone(modality: int) -> BalanceMethod:
  """Modality `modality` trained alone (the others' features zeroed): the probe's reference."""
  return BalanceMethod(only=modality)


def auxiliary(weight: float = 1.0) -> BalanceMethod:
  """Fused cross-entropy plus `weight` times the sum of the auxiliary heads' cross-entropies."""

  def loss(outputs, labels, context):
    del context
    return cross_entropy(outputs.fused, labels) + weight * cross_entropy(
        outputs.auxiliary, labels).sum()

  return BalanceMethod(loss=loss)


def gblend(every: int = 5, estimator: str = 'paper') -> BalanceMethod:
  """Gradient-Blending: auxiliary + fused losses weighted by online G-Blend estimates.

  Every `every` epochs the train and validation losses of the M auxiliary heads and the fused
  head are compared with those `every` epochs earlier (`lqmm.losses.blending.gblend_weights`);
  the weights start uniform.
  """

  def init_state(num_modalities, num_classes, features):
    del num_classes, features
    uniform = jnp.full((num_modalities + 1,), 1.0 / (num_modalities + 1), jnp.float32)
    return {'weights': uniform, 'train': jnp.zeros_like(uniform),
            'validation': jnp.zeros_like(uniform)}

  def head_losses(outputs, labels):
    return jnp.concatenate([cross_entropy(outputs.auxiliary, labels),
                            cross_entropy(outputs.fused, labels)[None]])

  def epoch_start(state, data, epoch, key):
    del key
    train_losses = head_losses(data.train, data.train_labels)
    validation_losses = head_losses(data.validation, data.validation_labels)
    weights = blending.gblend_weights(state['train'], train_losses, state['validation'],
                                      validation_losses, estimator=estimator, min_weight=1e-8,
                                      eps=1e-8)
    checkpoint = epoch % every == 0
    estimate = checkpoint & (epoch > 0)
    return {'weights': jnp.where(estimate, weights, state['weights']),
            'train': jnp.where(checkpoint, train_losses, state['train']),
            'validation': jnp.where(checkpoint, validation_losses, state['validation'])}

  def loss(outputs, labels, context):
    weights = context.state['weights']
    return blending.blended_loss(cross_entropy(outputs.fused, labels),
                                 cross_entropy(outputs.auxiliary, labels), weights)

  return BalanceMethod(loss=loss, init_state=init_state, epoch_start=epoch_start)


def ogm(alpha: float = 0.5, generalization_enhancement: bool = True, faithful: bool = False,
        start_epoch: int | None = None, end_epoch: int | None = None) -> BalanceMethod:
  """OGM / OGM-GE (`lqmm.optim.ogm`) on every encoder."""

  def transform(param_labels, order, key, params):
    del params
    return optim.ogm(param_labels, order, key=key, alpha=alpha,
                     generalization_enhancement=generalization_enhancement,
                     faithful=faithful, start_epoch=start_epoch, end_epoch=end_epoch)

  return BalanceMethod(transform=transform)


def ogm_faithful(alpha: float = 0.8, start_epoch: int = 0, end_epoch: int = 50
                 ) -> BalanceMethod:
  """OGM-GE with the original's rule: two modalities, conv kernels only, epochs 0-50.

  Its coefficients only touch 4-D leaves, so it does nothing to MLP encoders: use it with
  `encoder='conv'`. alpha 0.8 is the original README's CREMA-D setting.
  """
  return ogm(alpha=alpha, faithful=True, start_epoch=start_epoch, end_epoch=end_epoch)


def agm(alpha: float = 1.0, cap: float | None = 10.0) -> BalanceMethod:
  """AGM (`lqmm.optim.agm`) on every encoder, mono outputs from zeroed inputs."""

  def transform(param_labels, order, key, params):
    del key, params
    return optim.agm(param_labels, order, alpha=alpha, cap=cap)

  return BalanceMethod(transform=transform, mono=True)


def pmr(alpha: float = 1.0) -> BalanceMethod:
  """PMR: prototypes of every class from the training features at each epoch start."""

  def init_state(num_modalities, num_classes, features):
    return jnp.zeros((num_modalities, num_classes, features), jnp.float32)

  def epoch_start(state, data, epoch, key):
    del state, epoch, key
    return prototype.prototypes(data.train.features, data.train_labels,
                                data.train.fused.shape[-1])

  def loss(outputs, labels, context):
    value, _ = prototype.pmr_loss(outputs.fused, outputs.features, context.state, labels,
                                  epoch=context.epoch, alpha=alpha, end_epoch=1 << 30)
    return value

  return BalanceMethod(loss=loss, init_state=init_state, epoch_start=epoch_start)


def mmcosine(scale: float = 10.0) -> BalanceMethod:
  """MMCosine: the fused head is the sum of per-modality scaled cosines."""
  return BalanceMethod(head='cosine', cosine_scale=scale)


def umt(weight: float = 10.0) -> BalanceMethod:
  """Uni-modal teachers: fused CE plus `weight` times the feature distillation to the teachers."""

  def loss(outputs, labels, context):
    distill = distillation.feature_distillation_loss(outputs.features, context.teacher,
                                                     weight=weight)
    return cross_entropy(outputs.fused, labels) + jnp.mean(distill)

  return BalanceMethod(loss=loss, teacher=True)


def sample_valuation(start_epoch: int = 5, size_weighted: bool = True) -> BalanceMethod:
  """Sample-level modality valuation with re-sampling (Wei et al., CVPR 2024).

  From `start_epoch` on, each epoch values every training sample's modalities with Shapley
  values of the subset correctness (`lqmm.valuation`, features zeroed at the head), appends the
  original's enhancement copies of low-contribution (sample, modality) pairs keeping only that
  modality, and trains on N rows drawn without replacement from that expanded list: the same
  number of steps per epoch as every other method (the original trains on the whole, longer list).
  """

  def plan(state, data, epoch, key):
    del state
    labels = data.train_labels
    num_samples = labels.shape[0]
    num_modalities = data.train.unimodal.shape[0]
    values = valuation.correctness_values(data.subset_fused, labels,
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

  return BalanceMethod(plan=plan, subsets=True)


def cml(weight: float = 1.0, tolerance: float = 0.0) -> BalanceMethod:
  """CML: fused CE plus `weight` times the calibration penalty over a nested chain of subsets.

  Each batch runs the head on a chain of inputs that drop one more modality at a time, in a
  random order per sample (`lqmm.losses.calibration.nested_subset_masks`; a dropped modality's
  features are zeroed at the head), and penalises confidence that rises as modalities go.
  """

  def loss(outputs, labels, context):
    num_modalities, batch = outputs.features.shape[:2]
    chain = calibration.nested_subset_masks(num_modalities, batch, key=context.key)
    logits = jnp.stack([
        context.heads(jnp.where(chain[step][..., None], outputs.features, 0)).fused
        for step in range(num_modalities)])
    penalty = calibration.calibration_loss(logits, labels, tolerance=tolerance)
    return cross_entropy(outputs.fused, labels) + weight * jnp.mean(penalty)

  return BalanceMethod(loss=loss)


def greedy(epsilon: float = 0.01, window: int = 5, start_epoch: int = 1) -> BalanceMethod:
  """The greedy learner's balanced training on `lqmm.nn.GreedyNet` (MMTM between the branches).

  Loss: the sum of the branch cross-entropies (the original's). `lqmm.optim.greedy_schedule`
  tracks the conditional learning speeds and switches on re-balancing steps, in which the cared
  modality's MMTM gate is replaced by its running mean.
  """

  def transform(group_labels, order, key, params):
    del key
    channels = [params['mmtm']['excite'][index]['bias'].shape[0] for index in range(len(order))]
    return optim.greedy_schedule(group_labels, len(order), epsilon=epsilon, window=window,
                                 start_epoch=start_epoch, channels=channels)

  def loss(outputs, labels, context):
    del context
    return cross_entropy(outputs.auxiliary, labels).sum()

  return BalanceMethod(
      loss=loss, transform=transform, model='greedy',
      labels=lambda params, order: mmtm_lib.group_labels(params, order),
      model_kwargs=lambda state: state.model_kwargs(),
      extra_from_outputs=lambda outputs: {'gates': outputs.gates})


def modality_dropout(rate: float = 0.3) -> BalanceMethod:
  """Drops each modality of a training sample with probability `rate`, never all of them."""

  def keep(key, num_modalities, batch):
    return missing.modality_dropout((num_modalities, batch), rate=rate, key=key)

  return BalanceMethod(keep=keep)


def mslr(window: int = 5) -> BalanceMethod:
  """MSLR (`lqmm.optim.rates.scale_by_validation_trend`) from the split heads' val accuracy."""

  def init_state(num_modalities, num_classes, features):
    del num_classes, features
    return jnp.zeros((num_modalities,), jnp.float32)

  def epoch_start(state, data, epoch, key):
    del state, epoch, key
    return accuracy(data.validation.unimodal, data.validation_labels)

  def transform(param_labels, order, key, params):
    del key, params
    return optim.validation_trend(param_labels, order, window=window)

  return BalanceMethod(transform=transform, init_state=init_state, epoch_start=epoch_start,
                       extra_args=lambda state: {'unimodal_accuracy': state})


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """`[...]` accuracy of `[..., B, K]` logits (labels `[B]` broadcast)."""
  predictions = jnp.argmax(logits, -1)
  return jnp.mean(predictions == jnp.broadcast_to(labels, predictions.shape), axis=-1)


#: Method factories by name; `alone:<m>` runs are added by `run` for every modality.
METHODS: dict[str, Callable[..., BalanceMethod]] = {
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


# ---------------------------------------------------------------------------------- training


class TrainResult(NamedTuple):
  """Per-seed outputs of `train`: kept parameters `[S, ...]`, and histories `[S, epochs, ...]`."""
  graphdef: Any
  params: Any
  best_epoch: np.ndarray
  train_scores: np.ndarray     # [S, epochs, M] OGM scores on the training split
  validation_accuracy: np.ndarray   # [S, epochs // eval_every]
  compile_s: float
  run_s: float


def _model(splits: data.Splits, settings: ImbalanceSettings, method: BalanceMethod):
  shapes = {name: splits.train['inputs'][name].shape[1:] for name in splits.order}
  if method.model == 'greedy':
    return nnx.eval_shape(lambda: mmtm_lib.GreedyNet(
        shapes, splits.order, splits.num_classes, features=settings.features,
        hidden=settings.hidden[0], rngs=nnx.Rngs(0)))
  if method.model != 'balance':
    raise KeyError(f"Unknown model {method.model!r}; valid names: 'balance', 'greedy'.")
  return nnx.eval_shape(lambda: nn.BalanceNet(
      shapes, splits.order, splits.num_classes, features=settings.features,
      encoder=settings.encoder, hidden=settings.hidden, channels=settings.channels,
      head=method.head, cosine_scale=method.cosine_scale, rngs=nnx.Rngs(0)))


def _optimizer(settings: ImbalanceSettings):
  if settings.optimizer == 'sgd':
    base = optax.sgd(settings.learning_rate, momentum=0.9)
  elif settings.optimizer == 'adam':
    base = optax.adam(settings.learning_rate)
  else:
    raise KeyError(f"Unknown optimizer {settings.optimizer!r}; valid names: 'adam', 'sgd'.")
  return optax.chain(optax.add_decayed_weights(settings.weight_decay), base)


def _only_keep(method: BalanceMethod, num_modalities: int, batch: int):
  if method.only is None:
    return None
  return jnp.broadcast_to((jnp.arange(num_modalities) == method.only)[:, None],
                          (num_modalities, batch))


def _subset_inputs(inputs, order, present):
  """`inputs` with the modalities absent from `present: bool [M]` zeroed."""
  return {name: jnp.where(present[index], inputs[name], jnp.zeros_like(inputs[name]))
          for index, name in enumerate(order)}


def train(method: BalanceMethod, splits: data.Splits, settings: ImbalanceSettings, *,
          num_seeds: int, seed: int = 0, teacher_features=None) -> TrainResult:
  """Trains `num_seeds` seeds of `method` together; see the module docstring.

  Args:
    method: the method.
    splits: train/validation/test batches with `order` and `num_classes`.
    settings: shared training settings.
    num_seeds: seeds trained together under `jax.vmap`.
    seed: the first seed.
    teacher_features: `[S, M, N, D]` training-set features of the unimodal teachers, needed by
      methods with `teacher=True` (`run` computes them from the `alone` runs).

  Returns:
    A `TrainResult`.

  Raises:
    ValueError: `eval_every` does not divide `epochs`, or teacher features are missing.
    FloatingPointError: the training loss became NaN or infinite.
  """
  if method.teacher and teacher_features is None:
    raise ValueError('this method distils from unimodal teachers: pass teacher_features '
                     '[num_seeds, M, N, D] (lqmm.bench.imbalance.run computes them).')
  if settings.epochs % settings.eval_every:
    raise ValueError(f'eval_every ({settings.eval_every}) must divide epochs ({settings.epochs}).')
  order = splits.order
  num_modalities, num_classes = len(order), splits.num_classes
  train_set = jax.tree.map(jnp.asarray, {'inputs': splits.train['inputs'],
                                         'label': splits.train['label']})
  validation = jax.tree.map(jnp.asarray, {'inputs': splits.validation['inputs'],
                                          'label': splits.validation['label']})
  num_train = int(train_set['label'].shape[0])
  num_validation = int(validation['label'].shape[0])
  batch_size = min(settings.batch_size, num_train)
  steps = num_train // batch_size
  graphdef, abstract = nnx.split(_model(splits, settings, method), nnx.Param)
  if method.labels is not None:
    param_labels = method.labels(abstract, order)
  else:
    param_labels = optim.modality_labels(
        abstract, {name: f'^encoders/{name}/' for name in order})
  base = _optimizer(settings)
  subsets = valuation.subset_masks(num_modalities)

  def make_optimizer(key):
    if method.transform is None:
      return base
    return optax.chain(method.transform(param_labels, order, key, abstract), base)

  def forward(params, inputs, keep=None):
    return nnx.merge(graphdef, params)(inputs, keep)

  def keep_for(key, batch):
    only = _only_keep(method, num_modalities, batch)
    if only is not None:
      return only
    if method.keep is not None:
      return method.keep(key, num_modalities, batch)
    return None

  def mono_logits(params, inputs, outputs):
    fused = [forward(params, _subset_inputs(inputs, order, subsets[index])).fused
             for index in range(len(subsets) - 1)]
    return optim.mono_outputs(jnp.stack(fused + [outputs.fused]))

  def epoch_data(params):
    model = nnx.merge(graphdef, params)
    train_keep = _only_keep(method, num_modalities, num_train)
    train_outputs = model(train_set['inputs'], train_keep)
    subset_fused = None
    if method.subsets:
      subset_fused = jnp.stack([
          model.heads(jnp.where(subsets[index][:, None, None], train_outputs.features, 0)).fused
          for index in range(len(subsets))])
    return EpochData(
        train_outputs, train_set['label'],
        model(validation['inputs'], _only_keep(method, num_modalities, num_validation)),
        validation['label'], subset_fused)

  def init(key):
    params = nn.torch_linear_init(abstract, key=jax.random.fold_in(key, 0))
    optimizer = make_optimizer(jax.random.fold_in(key, 1))
    return {'params': params, 'opt_state': optimizer.init(params),
            'method_state': method.init_state(num_modalities, num_classes, settings.features),
            'epoch': jnp.int32(0), 'best': params, 'best_accuracy': jnp.float32(-1),
            'best_epoch': jnp.int32(0)}

  def epoch_fn(state, seed_key, teacher):
    optimizer = make_optimizer(jax.random.fold_in(seed_key, 1))
    epoch = state['epoch']
    epoch_key = jax.random.fold_in(jax.random.fold_in(seed_key, 2), epoch)
    method_state = state['method_state']
    rows, row_keep = jnp.arange(num_train), None
    if method.epoch_start is not None or method.plan is not None:
      everything = epoch_data(state['params'])
      if method.epoch_start is not None:
        method_state = method.epoch_start(method_state, everything, epoch,
                                          jax.random.fold_in(epoch_key, 1))
      if method.plan is not None:
        rows, row_keep = method.plan(method_state, everything, epoch,
                                     jax.random.fold_in(epoch_key, 4))
    extra = {} if method.extra_args is None else method.extra_args(method_state)
    permutation = jax.random.permutation(jax.random.fold_in(epoch_key, 2), num_train)
    batches = permutation[:steps * batch_size].reshape(steps, batch_size)

    def step(carry, inputs):
      params, opt_state = carry
      positions, step_index = inputs
      indices = rows[positions]
      batch = jax.tree.map(lambda x: x[indices], train_set)
      step_key = jax.random.fold_in(jax.random.fold_in(epoch_key, 3), step_index)
      if row_keep is not None:
        keep = row_keep[:, positions]
      else:
        keep = keep_for(jax.random.fold_in(step_key, 0), batch_size)
      context = StepContext(epoch, jax.random.fold_in(step_key, 1), method_state,
                            None if teacher is None else teacher[:, indices])

      model_kwargs = {} if method.model_kwargs is None else method.model_kwargs(opt_state[0])

      def objective(params):
        model = nnx.merge(graphdef, params)
        outputs = model(batch['inputs'], keep, **model_kwargs)
        full_context = context._replace(heads=model.heads)
        return (method.loss or _fused_loss)(outputs, batch['label'], full_context), outputs

      (loss, outputs), grads = jax.value_and_grad(objective, has_aux=True)(params)
      step_extra = dict(extra)
      if method.extra_from_outputs is not None:
        step_extra.update(jax.lax.stop_gradient(method.extra_from_outputs(outputs)))
      if method.mono:
        step_extra['mono_logits'] = jax.lax.stop_gradient(
            mono_logits(params, batch['inputs'], outputs))
      updates, opt_state = optimizer.update(
          grads, opt_state, params, unimodal_logits=jax.lax.stop_gradient(outputs.unimodal),
          labels=batch['label'], epoch=epoch, **step_extra)
      return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(
        step, (state['params'], state['opt_state']), (batches, jnp.arange(steps)))
    scores = modulation.modality_scores(forward(params, train_set['inputs']).unimodal,
                                        train_set['label'])
    return ({**state, 'params': params, 'opt_state': opt_state, 'method_state': method_state,
             'epoch': epoch + 1}, (jnp.mean(losses), scores))

  def validate(params):
    outputs = forward(params, validation['inputs'],
                      _only_keep(method, num_modalities, num_validation))
    return accuracy(outputs.fused, validation['label'])

  def chunk_fn(state, seed_key, teacher):
    state, (losses, scores) = jax.lax.scan(lambda s, _: epoch_fn(s, seed_key, teacher), state,
                                           None, length=settings.eval_every)
    validation_accuracy = validate(state['params'])
    better = validation_accuracy > state['best_accuracy']
    keep = lambda new, old: jnp.where(better, new, old)
    state = {**state, 'best': jax.tree.map(keep, state['params'], state['best']),
             'best_accuracy': keep(validation_accuracy, state['best_accuracy']),
             'best_epoch': keep(state['epoch'], state['best_epoch'])}
    return state, (losses, scores, validation_accuracy)

  def run_seeds(keys, teachers):
    def one_seed(key, teacher):
      state = init(key)
      state, (losses, scores, validation_accuracy) = jax.lax.scan(
          lambda s, _: chunk_fn(s, key, teacher), state, None,
          length=settings.epochs // settings.eval_every)
      return (state['best'], state['best_epoch'], losses.reshape(-1),
              scores.reshape(-1, num_modalities), validation_accuracy)
    return jax.vmap(one_seed)(keys, teachers)

  keys = jax.vmap(jax.random.key)(seed + jnp.arange(num_seeds))
  teachers = None
  if method.teacher:
    teachers = jnp.asarray(teacher_features)
    expected = (num_seeds, num_modalities, num_train, settings.features)
    if teachers.shape != expected:
      raise ValueError(f'teacher_features must have shape {expected}; got {teachers.shape}.')
  start = time.perf_counter()
  compiled = jax.jit(run_seeds).lower(keys, teachers).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  best, best_epoch, losses, scores, validation_accuracy = compiled(keys, teachers)
  jax.block_until_ready(best)
  run_s = time.perf_counter() - start
  if not np.all(np.isfinite(np.asarray(losses))):
    raise FloatingPointError('training loss became NaN or infinite; lower the learning rate.')
  return TrainResult(graphdef, best, np.asarray(best_epoch), np.asarray(scores),
                     np.asarray(validation_accuracy), compile_s, run_s)


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


def evaluate(result: TrainResult, splits: data.Splits, settings: ImbalanceSettings,
             method: BalanceMethod) -> dict[str, np.ndarray]:
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

  @jax.jit
  def score(params):
    def one_seed(params):
      model = nnx.merge(result.graphdef, params)
      keep = _only_keep(method, num_modalities, test_labels.shape[0])
      outputs = model(test_inputs, keep)
      correct = lambda logits: accuracy(logits, test_labels)
      scores = {'fused': correct(outputs.fused), 'unimodal': correct(outputs.unimodal),
                'auxiliary': correct(outputs.auxiliary)}
      if isinstance(model, mmtm_lib.GreedyNet):
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
          steps=settings.probe_steps, l2=settings.probe_l2))(train_features, test_features)
      return scores
    return jax.vmap(one_seed)(params)

  return {name: np.asarray(value) for name, value in score(result.params).items()}


def _teacher_features(trained_alone: Mapping[int, TrainResult], splits) -> jax.Array:
  """`[S, M, N, D]` training-set features of each modality's `alone` encoder, seed by seed."""
  inputs = jax.tree.map(jnp.asarray, splits.train['inputs'])
  per_modality = []
  for index in range(len(splits.order)):
    result = trained_alone[index]
    encode = jax.jit(jax.vmap(lambda params: nnx.merge(result.graphdef, params).encode(inputs)))
    per_modality.append(encode(result.params)[:, index])
  return jnp.stack(per_modality, axis=1)


def resolve(name: str, kwargs: Mapping[str, Any] | None = None) -> BalanceMethod:
  """Builds `METHODS[name](**kwargs)`; `alone:<index>` trains modality `index` alone."""
  if name.startswith('alone:'):
    return alone(int(name.split(':', 1)[1]))
  factory = _checks.lookup(METHODS, name, 'balance method')
  return factory(**dict(kwargs or {}))


def run(methods: Sequence[str], splits: data.Splits, settings: ImbalanceSettings, *,
        num_seeds: int = 5, seed: int = 0,
        method_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        log: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
  """Trains and scores every method and every modality alone.

  Returns:
    `{method: {'scores': evaluate(...), 'train_scores': [S, epochs, M], 'best_epoch': [S],
    'compile_s', 'run_s'}}`, with an `alone:<m>` entry per modality.
  """
  method_kwargs = method_kwargs or {}
  alone_names = [f'alone:{index}' for index in range(len(splits.order))]
  results = {}
  trained_alone = {}
  teacher_features = None
  for name in alone_names + list(methods):
    method = resolve(name, method_kwargs.get(name))
    if method.teacher and teacher_features is None:
      teacher_features = _teacher_features(trained_alone, splits)
    trained = train(method, splits, settings, num_seeds=num_seeds, seed=seed,
                    teacher_features=teacher_features if method.teacher else None)
    if method.only is not None:
      trained_alone[method.only] = trained
    scores = evaluate(trained, splits, settings, method)
    results[name] = {'scores': scores, 'train_scores': trained.train_scores,
                     'best_epoch': trained.best_epoch, 'compile_s': trained.compile_s,
                     'run_s': trained.run_s}
    log(f'{name:>18}: fused {100 * scores["fused"].mean():5.2f}  probe ' + ' '.join(
        f'{splits.order[m]} {100 * scores["probe"][:, m].mean():5.2f}'
        for m in range(len(splits.order))) + f'  ({trained.compile_s:.1f} s compile, '
        f'{trained.run_s:.1f} s run)')
  return results


# ---------------------------------------------------------------------------------- report


def interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
  """Mean and half-width of a Student-t confidence interval over seeds (axis 0)."""
  import scipy.stats  # pylint: disable=g-import-not-at-top
  values = np.asarray(values, np.float64)
  count = values.shape[0]
  mean = float(values.mean())
  if count < 2:
    return mean, float('nan')
  half = scipy.stats.t.ppf(0.5 + confidence / 2, count - 1) * values.std(ddof=1) / np.sqrt(count)
  return mean, float(half)


def difference_interval(a: np.ndarray, b: np.ndarray,
                        confidence: float = 0.95) -> tuple[float, float]:
  """Mean of `a - b` and the half-width of Welch's t interval (independent seed groups)."""
  import scipy.stats  # pylint: disable=g-import-not-at-top
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  var_a, var_b = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
  total = var_a + var_b
  if total == 0:
    return float(a.mean() - b.mean()), 0.0
  dof = total**2 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1))
  half = scipy.stats.t.ppf(0.5 + confidence / 2, dof) * np.sqrt(total)
  return float(a.mean() - b.mean()), float(half)


def summarize(results: Mapping[str, Mapping[str, Any]], order: Sequence[str]) -> list[dict]:
  """One row per method (not `alone`): accuracies, probe gaps and the final imbalance ratio.

  Accuracies are in percent, as `(mean, 95% half-width)` over seeds. `gap_<m>` is
  `probe(alone:m) - probe(method)` for modality m; `ratio` is `s_0 / s_1` (M = 2) or
  `max s / min s` of the training-split scores at the last epoch.
  """
  rows = []
  for name, result in results.items():
    if name.startswith('alone:'):
      continue
    scores = result['scores']
    row = {'method': name, 'fused': interval(100 * scores['fused'])}
    for index, modality in enumerate(order):
      row[f'unimodal_{modality}'] = interval(100 * scores['unimodal'][:, index])
      row[f'probe_{modality}'] = interval(100 * scores['probe'][:, index])
      reference = results.get(f'alone:{index}')
      if reference is not None:
        row[f'gap_{modality}'] = difference_interval(
            100 * reference['scores']['probe'][:, index], 100 * scores['probe'][:, index])
    last = result['train_scores'][:, -1]
    ratio = last[:, 0] / last[:, 1] if len(order) == 2 else last.max(-1) / last.min(-1)
    row['ratio'] = interval(ratio)
    rows.append(row)
  return rows


def markdown_table(rows: Sequence[dict], order: Sequence[str],
                   results: Mapping[str, Mapping[str, Any]] | None = None) -> str:
  """The report table: `mean +- 95% half-width` cells, plus each modality trained alone."""
  cell = lambda pair: f'{pair[0]:.2f} ± {pair[1]:.2f}'
  columns = (['fused'] + [f'unimodal_{m}' for m in order] + [f'probe_{m}' for m in order]
             + [f'gap_{m}' for m in order] + ['ratio'])
  header = '| method | ' + ' | '.join(columns) + ' |'
  lines = [header, '|' + '---|' * (len(columns) + 1)]
  for row in rows:
    lines.append(f'| {row["method"]} | ' + ' | '.join(
        cell(row[column]) if column in row else '' for column in columns) + ' |')
  if results is not None:
    lines.append('')
    for index, modality in enumerate(order):
      reference = results.get(f'alone:{index}')
      if reference is None:
        continue
      probe = interval(100 * reference['scores']['probe'][:, index])
      fused = interval(100 * reference['scores']['fused'])
      lines.append(f'- {modality} trained alone: accuracy {cell(fused)}, probe {cell(probe)}')
  return '\n'.join(lines)


def plot(results: Mapping[str, Mapping[str, Any]], order: Sequence[str], path) -> None:
  """Imbalance ratio over training (mean over seeds) and probe gaps with 95% intervals."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = summarize(results, order)
  figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  for name, result in results.items():
    if name.startswith('alone:'):
      continue
    scores = result['train_scores']
    ratio = scores[..., 0] / scores[..., 1] if len(order) == 2 else (
        scores.max(-1) / scores.min(-1))
    axes[0].plot(np.arange(1, ratio.shape[1] + 1), ratio.mean(0), label=name)
  axes[0].axhline(1.0, color='gray', lw=0.8)
  axes[0].set_xlabel('epoch')
  axes[0].set_ylabel(f'score ratio {order[0]} / {order[1]}' if len(order) == 2
                     else 'max / min modality score')
  axes[0].set_title('imbalance ratio on the training split')
  axes[0].legend(fontsize=7)
  width = 0.8 / len(order)
  positions = np.arange(len(rows))
  for index, modality in enumerate(order):
    key = f'gap_{modality}'
    means = [row[key][0] if key in row else np.nan for row in rows]
    halves = [row[key][1] if key in row else np.nan for row in rows]
    axes[1].bar(positions + index * width, means, width, yerr=halves, label=modality, capsize=2)
  axes[1].axhline(0.0, color='gray', lw=0.8)
  axes[1].set_xticks(positions + width * (len(order) - 1) / 2)
  axes[1].set_xticklabels([row['method'] for row in rows], rotation=45, ha='right', fontsize=8)
  axes[1].set_ylabel('probe(alone) - probe(joint), points')
  axes[1].set_title('under-optimisation gap (95% interval)')
  axes[1].legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)
