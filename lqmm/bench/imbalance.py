"""The imbalance report: balanced-learning methods side by side on one imbalanced data set.

Every method trains the same `lqmm.nn.BalanceNet` (an encoder per modality, a linear head on the
concatenated features, and per-modality auxiliary heads); `num_seeds` seeds train together
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
from lqmm import nn
from lqmm import optim
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
  """What a method's loss and transform may read besides the outputs."""
  epoch: jax.Array       # i32[], 0-based
  key: jax.Array         # typed key of this step
  state: Any             # the method's state, refreshed at every epoch start


class BalanceMethod(NamedTuple):
  """One balanced-learning method, as pure functions.

  Attributes:
    loss: `(outputs: BalanceOutputs, labels [B], context) -> scalar`; default fused CE.
    transform: `(param_labels, order, key) -> GradientTransformationExtraArgs` chained before
      the optimizer, or None. Its `update` gets the extra args `unimodal_logits [M, B, K]`
      (stop-gradient), `labels [B]`, `epoch` and `method_state`.
    keep: `(key, M, B) -> bool [M, B]` modalities kept in a training batch, or None (all).
    init_state: `(num_modalities, num_classes, features, num_train) -> state`.
    epoch_start: `(state, train_outputs: BalanceOutputs, labels [N], epoch, key) -> state`,
      run on the whole training split before each epoch (prototypes, valuations), or None.
    sample_weights: `state -> f32[N]` sampling weights of the training samples for the epoch
      (sampled with replacement), or None for a plain permutation.
    only: the modality index a unimodal (`alone`) run trains, or None.
  """
  loss: Callable | None = None
  transform: Callable | None = None
  keep: Callable | None = None
  init_state: Callable = lambda num_modalities, num_classes, features, num_train: ()
  epoch_start: Callable | None = None
  sample_weights: Callable | None = None
  only: int | None = None


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean cross-entropy of `[..., B, K]` logits (broadcast labels `[B]`)."""
  labels = jnp.broadcast_to(labels, logits.shape[:-1])
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


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
  """Fused cross-entropy plus `weight` times each auxiliary head's unimodal cross-entropy."""

  def loss(outputs, labels, context):
    del context
    return cross_entropy(outputs.fused, labels) + weight * cross_entropy(outputs.auxiliary,
                                                                         labels) * (
        outputs.auxiliary.shape[0])

  return BalanceMethod(loss=loss)


def ogm(alpha: float = 0.5, generalization_enhancement: bool = True, faithful: bool = False,
        start_epoch: int | None = None, end_epoch: int | None = None) -> BalanceMethod:
  """OGM / OGM-GE (`lqmm.optim.ogm`) on every encoder."""

  def transform(param_labels, order, key):
    return optim.ogm(param_labels, order, key=key, alpha=alpha,
                     generalization_enhancement=generalization_enhancement,
                     faithful=faithful, start_epoch=start_epoch, end_epoch=end_epoch)

  return BalanceMethod(transform=transform)


def modality_dropout(rate: float = 0.3) -> BalanceMethod:
  """Drops each modality of a training sample with probability `rate`, never all of them."""

  def keep(key, num_modalities, batch):
    dropped = jax.random.bernoulli(key, rate, (num_modalities, batch))
    none_left = jnp.all(dropped, axis=0)
    rescue = jax.random.randint(jax.random.fold_in(key, 1), (batch,), 0, num_modalities)
    rescued = jnp.arange(num_modalities)[:, None] == rescue[None, :]
    return ~dropped | (none_left[None, :] & rescued)

  return BalanceMethod(keep=keep)


#: Method factories by name; `alone` is added by `run` for every modality.
METHODS: dict[str, Callable[..., BalanceMethod]] = {
    'joint': joint,
    'auxiliary': auxiliary,
    'ogm': lambda **kwargs: ogm(generalization_enhancement=False, **kwargs),
    'ogm_ge': ogm,
    'modality_dropout': modality_dropout,
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


def _model(splits: data.Splits, settings: ImbalanceSettings):
  shapes = {name: splits.train['inputs'][name].shape[1:] for name in splits.order}
  return nnx.eval_shape(lambda: nn.BalanceNet(
      shapes, splits.order, splits.num_classes, features=settings.features,
      encoder=settings.encoder, hidden=settings.hidden, channels=settings.channels,
      rngs=nnx.Rngs(0)))


def _optimizer(settings: ImbalanceSettings):
  if settings.optimizer == 'sgd':
    base = optax.sgd(settings.learning_rate, momentum=0.9)
  elif settings.optimizer == 'adam':
    base = optax.adam(settings.learning_rate)
  else:
    raise KeyError(f"Unknown optimizer {settings.optimizer!r}; valid names: 'adam', 'sgd'.")
  return optax.chain(optax.add_decayed_weights(settings.weight_decay), base)


def train(method: BalanceMethod, splits: data.Splits, settings: ImbalanceSettings, *,
          num_seeds: int, seed: int = 0) -> TrainResult:
  """Trains `num_seeds` seeds of `method` together; see the module docstring."""
  if settings.epochs % settings.eval_every:
    raise ValueError(f'eval_every ({settings.eval_every}) must divide epochs ({settings.epochs}).')
  order = splits.order
  num_modalities, num_classes = len(order), splits.num_classes
  train_set = jax.tree.map(jnp.asarray, {'inputs': splits.train['inputs'],
                                         'label': splits.train['label']})
  validation = jax.tree.map(jnp.asarray, {'inputs': splits.validation['inputs'],
                                          'label': splits.validation['label']})
  num_train = int(train_set['label'].shape[0])
  batch_size = min(settings.batch_size, num_train)
  steps = num_train // batch_size
  graphdef, abstract = nnx.split(_model(splits, settings), nnx.Param)
  param_labels = optim.modality_labels(
      abstract, {name: f'^encoders/{name}/' for name in order})
  base = _optimizer(settings)
  only_keep = None
  if method.only is not None:
    only_keep = jnp.arange(num_modalities) == method.only

  def make_optimizer(key):
    if method.transform is None:
      return base
    return optax.chain(method.transform(param_labels, order, key), base)

  def forward(params, inputs, keep=None):
    return nnx.merge(graphdef, params)(inputs, keep)

  def keep_for(key, batch):
    if only_keep is not None:
      return jnp.broadcast_to(only_keep[:, None], (num_modalities, batch))
    if method.keep is not None:
      return method.keep(key, num_modalities, batch)
    return None

  def loss_fn(outputs, labels, context):
    return (method.loss or _fused_loss)(outputs, labels, context)

  def scores_of(outputs, labels):
    return modulation.modality_scores(outputs.unimodal, labels)

  def init(key):
    params = nn.torch_linear_init(abstract, key=jax.random.fold_in(key, 0))
    optimizer = make_optimizer(jax.random.fold_in(key, 1))
    return {'params': params, 'opt_state': optimizer.init(params),
            'method_state': method.init_state(num_modalities, num_classes, settings.features,
                                              num_train),
            'epoch': jnp.int32(0), 'best': params, 'best_accuracy': jnp.float32(-1),
            'best_epoch': jnp.int32(0)}

  def epoch_fn(state, seed_key):
    optimizer = make_optimizer(jax.random.fold_in(seed_key, 1))
    epoch = state['epoch']
    epoch_key = jax.random.fold_in(jax.random.fold_in(seed_key, 2), epoch)
    method_state = state['method_state']
    if method.epoch_start is not None:
      keep_all = None if only_keep is None else keep_for(None, num_train)
      everything = forward(state['params'], train_set['inputs'], keep_all)
      method_state = method.epoch_start(method_state, everything, train_set['label'], epoch,
                                        jax.random.fold_in(epoch_key, 1))
    if method.sample_weights is not None:
      weights = method.sample_weights(method_state)
      indices = jax.random.choice(jax.random.fold_in(epoch_key, 2), num_train,
                                  (steps * batch_size,), p=weights / weights.sum())
    else:
      indices = jax.random.permutation(jax.random.fold_in(epoch_key, 2), num_train)
    batches = indices[:steps * batch_size].reshape(steps, batch_size)

    def step(carry, inputs):
      params, opt_state = carry
      indices, step_index = inputs
      batch = jax.tree.map(lambda x: x[indices], train_set)
      step_key = jax.random.fold_in(jax.random.fold_in(epoch_key, 3), step_index)
      keep = keep_for(jax.random.fold_in(step_key, 0), batch_size)
      context = StepContext(epoch, jax.random.fold_in(step_key, 1), method_state)

      def objective(params):
        outputs = forward(params, batch['inputs'], keep)
        return loss_fn(outputs, batch['label'], context), outputs

      (loss, outputs), grads = jax.value_and_grad(objective, has_aux=True)(params)
      updates, opt_state = optimizer.update(
          grads, opt_state, params, unimodal_logits=jax.lax.stop_gradient(outputs.unimodal),
          labels=batch['label'], epoch=epoch, method_state=method_state)
      return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(
        step, (state['params'], state['opt_state']), (batches, jnp.arange(steps)))
    scores = scores_of(forward(params, train_set['inputs']), train_set['label'])
    return ({**state, 'params': params, 'opt_state': opt_state, 'method_state': method_state,
             'epoch': epoch + 1}, (jnp.mean(losses), scores))

  def validate(params):
    keep = None if only_keep is None else keep_for(None, validation['label'].shape[0])
    outputs = forward(params, validation['inputs'], keep)
    return jnp.mean(jnp.argmax(outputs.fused, -1) == validation['label'])

  def chunk_fn(state, seed_key):
    state, (losses, scores) = jax.lax.scan(lambda s, _: epoch_fn(s, seed_key), state, None,
                                           length=settings.eval_every)
    accuracy = validate(state['params'])
    better = accuracy > state['best_accuracy']
    keep = lambda new, old: jnp.where(better, new, old)
    state = {**state, 'best': jax.tree.map(keep, state['params'], state['best']),
             'best_accuracy': keep(accuracy, state['best_accuracy']),
             'best_epoch': keep(state['epoch'], state['best_epoch'])}
    return state, (losses, scores, accuracy)

  def run(keys):
    def one_seed(key):
      state = init(key)
      state, (losses, scores, accuracy) = jax.lax.scan(
          lambda s, _: chunk_fn(s, key), state, None,
          length=settings.epochs // settings.eval_every)
      return state['best'], state['best_epoch'], losses.reshape(-1), scores.reshape(
          -1, num_modalities), accuracy
    return jax.vmap(one_seed)(keys)

  keys = jax.vmap(jax.random.key)(seed + jnp.arange(num_seeds))
  start = time.perf_counter()
  compiled = jax.jit(run).lower(keys).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  best, best_epoch, losses, scores, accuracy = compiled(keys)
  jax.block_until_ready(best)
  run_s = time.perf_counter() - start
  if not np.all(np.isfinite(np.asarray(losses))):
    raise FloatingPointError('training loss became NaN or infinite; lower the learning rate.')
  return TrainResult(graphdef, best, np.asarray(best_epoch), np.asarray(scores),
                     np.asarray(accuracy), compile_s, run_s)


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
    `{'fused': [S], 'unimodal': [S, M], 'auxiliary': [S, M], 'probe': [S, M]}` accuracies.
  """
  num_modalities = len(splits.order)
  train_inputs = jax.tree.map(jnp.asarray, splits.train['inputs'])
  test_inputs = jax.tree.map(jnp.asarray, splits.test['inputs'])
  train_labels = jnp.asarray(splits.train['label'])
  test_labels = jnp.asarray(splits.test['label'])
  only_keep = None
  if method.only is not None:
    only_keep = jnp.arange(num_modalities) == method.only

  @jax.jit
  def score(params):
    def one_seed(params):
      model = nnx.merge(result.graphdef, params)
      keep = None
      if only_keep is not None:
        keep = jnp.broadcast_to(only_keep[:, None], (num_modalities, test_labels.shape[0]))
      outputs = model(test_inputs, keep)
      train_features = model.encode(train_inputs)
      test_features = outputs.features if keep is None else model.encode(test_inputs)
      correct = lambda logits: jnp.mean(jnp.argmax(logits, -1) == test_labels, axis=-1)
      probe = jax.vmap(lambda tr, te: linear_probe_accuracy(
          tr, train_labels, te, test_labels, num_classes=splits.num_classes,
          steps=settings.probe_steps, l2=settings.probe_l2))(train_features, test_features)
      return {'fused': correct(outputs.fused), 'unimodal': correct(outputs.unimodal),
              'auxiliary': correct(outputs.auxiliary), 'probe': probe}
    return jax.vmap(one_seed)(params)

  return {name: np.asarray(value) for name, value in score(result.params).items()}


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
  names = list(methods) + [f'alone:{index}' for index in range(len(splits.order))]
  results = {}
  for name in names:
    method = resolve(name, method_kwargs.get(name))
    trained = train(method, splits, settings, num_seeds=num_seeds, seed=seed)
    scores = evaluate(trained, splits, settings, method)
    results[name] = {'scores': scores, 'train_scores': trained.train_scores,
                     'best_epoch': trained.best_epoch, 'compile_s': trained.compile_s,
                     'run_s': trained.run_s}
    log(f'{name:>18}: fused {100 * scores["fused"].mean():5.2f}  probe ' + ' '.join(
        f'{splits.order[m]} {100 * scores["probe"][:, m].mean():5.2f}'
        for m in range(len(splits.order))) + f'  ({trained.compile_s:.1f} s compile, '
        f'{trained.run_s:.1f} s run)')
  return results
