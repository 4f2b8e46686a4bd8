"""Methods x conditions x seeds: train every method on clean data, score it under every condition.

For each method, `num_seeds` seeds train together (`jax.vmap` over seeds of a `jax.lax.scan` over
epochs, one compiled program). Every `eval_every` epochs each seed scores its clean validation
split; the parameters with the best validation accuracy (ties: lower validation loss) are kept,
so the test split is never used for model selection. The kept parameters are then scored on the
test split under every condition, with the same degraded data for every method and seed.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm import _checks
from lqmm import data
from lqmm import metrics
from lqmm import nn
from lqmm.bench import conditions as conditions_lib
from lqmm.bench import methods as methods_lib
from lqmm.fusion import weighted


@dataclasses.dataclass(frozen=True)
class Settings:
  """Training and data settings for one data set.

  Attributes:
    dataset: a key of `lqmm.data.DATASETS`.
    protocol: its split protocol (None = the data set's first).
    epochs: training epochs.
    batch_size: minibatch size (the last partial batch of an epoch is dropped).
    hidden: encoder widths of every modality.
    learning_rate, weight_decay: Adam with L2 weight decay (added to the gradient).
    eval_every: validation interval in epochs (must divide `epochs`).
    validation_fraction, test_fraction: see `lqmm.data.prepare`.
    scaling: feature scaling fitted on the training split.
    split_seed: seed of the stratified splits.
  """
  dataset: str
  protocol: str | None = None
  epochs: int = 100
  batch_size: int = 200
  hidden: tuple[int, ...] = (64,)
  learning_rate: float = 1e-3
  weight_decay: float = 1e-5
  eval_every: int = 5
  validation_fraction: float = 0.1
  test_fraction: float = 0.2
  scaling: str = 'minmax'
  split_seed: int = 0


#: Default settings per data set (measured to converge; see lqmm/bench/README.md).
SETTINGS = {
    'handwritten': Settings('handwritten', 'stratified', epochs=100, batch_size=200),
    'rosmap': Settings('rosmap', 'original', epochs=150, batch_size=32, validation_fraction=0.2,
                       hidden=(64,)),
}


@dataclasses.dataclass
class MethodResult:
  """Per-seed scores of one method: `{condition: {metric: [num_seeds]}}` plus timings."""
  scores: dict[str, dict[str, np.ndarray]]
  train_s: float
  compile_s: float
  best_epoch: np.ndarray


def train_method(method: methods_lib.Method, splits: data.Splits, settings: Settings, *,
                 num_seeds: int, seed: int = 0):
  """Trains `num_seeds` seeds of `method`; returns `(graphdef, best params [S, ...], stats,
  best epochs [S], compile seconds, run seconds)`."""
  if settings.epochs % settings.eval_every:
    raise ValueError(f'eval_every ({settings.eval_every}) must divide epochs ({settings.epochs}).')
  order = splits.order
  num_train = len(splits.train['label'])
  batch_size = min(settings.batch_size, num_train)
  steps = num_train // batch_size
  model = nnx.eval_shape(lambda: nn.LateFusionNet(
      splits.dims, order, splits.num_classes, hidden=settings.hidden, joint=method.joint,
      rngs=nnx.Rngs(0)))
  graphdef, abstract = nnx.split(model, nnx.Param)
  optimizer = optax.chain(optax.add_decayed_weights(settings.weight_decay),
                          optax.adam(settings.learning_rate))
  train_set = jax.tree.map(jnp.asarray, splits.train)
  validation = jax.tree.map(jnp.asarray, splits.validation)

  def forward(params, inputs, mask=None):
    logits, joint = nnx.merge(graphdef, params)(inputs, mask)
    return methods_lib.Outputs(logits, joint)

  def validate(params):
    outputs = forward(params, validation['inputs'])
    prediction = method.predict(outputs, None, _stats(params))
    labels = validation['label']
    nll = -jnp.mean(jnp.log(jnp.take_along_axis(prediction.probs, labels[:, None], 1) + 1e-12))
    return metrics.accuracy(prediction.probs, labels), nll

  def _stats(params):
    if method.fit_stats is None:
      return None
    return method.fit_stats(forward(params, train_set['inputs']))

  def init(key):
    params = nn.torch_linear_init(abstract, key=jax.random.fold_in(key, 0))
    return {'params': params, 'opt_state': optimizer.init(params),
            'aux': method.init_aux(len(order), num_train), 'epoch': jnp.int32(0),
            'best': params, 'best_accuracy': jnp.float32(-1), 'best_nll': jnp.float32(jnp.inf),
            'best_epoch': jnp.int32(0)}

  def epoch_fn(state, key):
    permutation = jax.random.permutation(jax.random.fold_in(key, state['epoch']), num_train)
    batches = permutation[:steps * batch_size].reshape(steps, batch_size)

    def step(carry, indices):
      params, opt_state, aux = carry
      batch = jax.tree.map(lambda x: x[indices], train_set)
      context = methods_lib.Context(state['epoch'], indices, aux)

      def objective(params):
        return method.loss(forward(params, batch['inputs']), batch['label'], context)

      (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(params)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state, aux), loss

    (params, opt_state, aux), losses = jax.lax.scan(
        step, (state['params'], state['opt_state'], state['aux']), batches)
    return {**state, 'params': params, 'opt_state': opt_state, 'aux': aux,
            'epoch': state['epoch'] + 1}, jnp.mean(losses)

  def chunk_fn(state, key):
    state, losses = jax.lax.scan(lambda s, _: epoch_fn(s, key), state, None,
                                 length=settings.eval_every)
    accuracy, nll = validate(state['params'])
    better = (accuracy > state['best_accuracy']) | (
        (accuracy == state['best_accuracy']) & (nll < state['best_nll']))
    keep = lambda new, old: jnp.where(better, new, old)
    state = {**state, 'best': jax.tree.map(keep, state['params'], state['best']),
             'best_accuracy': keep(accuracy, state['best_accuracy']),
             'best_nll': keep(nll, state['best_nll']),
             'best_epoch': keep(state['epoch'], state['best_epoch'])}
    return state, losses[-1]

  def run(keys):
    def one_seed(key):
      state = init(key)
      state, losses = jax.lax.scan(lambda s, _: chunk_fn(s, jax.random.fold_in(key, 1)), state,
                                   None, length=settings.epochs // settings.eval_every)
      return state['best'], state['best_epoch'], _stats(state['best']), losses
    return jax.vmap(one_seed)(keys)

  keys = jax.vmap(jax.random.key)(seed + jnp.arange(num_seeds))
  start = time.perf_counter()
  compiled = jax.jit(run).lower(keys).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  best, best_epoch, stats, losses = compiled(keys)
  jax.block_until_ready(best)
  run_s = time.perf_counter() - start
  if not np.all(np.isfinite(np.asarray(losses))):
    raise FloatingPointError('training loss became NaN or infinite; lower the learning rate.')
  return graphdef, best, stats, np.asarray(best_epoch), compile_s, run_s


def evaluate(method: methods_lib.Method, graphdef, params, stats, splits: data.Splits,
             conditions: Sequence[conditions_lib.Condition], *, key: jax.Array,
             ece_bins: int = 15) -> dict[str, dict[str, np.ndarray]]:
  """Scores every seed under every condition: accuracy, ECE, uncertainty AUROC, Eq. 12 covariance."""
  order = splits.order
  test = jax.tree.map(jnp.asarray, splits.test)
  labels = test['label']

  @jax.jit
  def score(params, stats, inputs, mask):
    def one_seed(params, stats):
      logits, joint = nnx.merge(graphdef, params)(inputs, mask)
      prediction = method.predict(methods_lib.Outputs(logits, joint), mask, stats)
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
      }
    return jax.vmap(one_seed)(params, stats)

  out = {}
  for index, condition in enumerate(conditions):
    inputs, mask = conditions_lib.apply(condition, test['inputs'], order,
                                        key=jax.random.fold_in(key, index))
    out[condition.name] = jax.tree.map(np.asarray, score(params, stats, inputs, mask))
  return out


def run(settings: Settings, method_names: Sequence[str],
        conditions: Sequence[conditions_lib.Condition], *, num_seeds: int = 5, seed: int = 0,
        manual_dir=None, data_dir=None, allow_download: bool = True,
        log=print) -> tuple[dict[str, MethodResult], data.Splits]:
  """Trains and scores every method on one data set.

  Returns:
    `({method: MethodResult}, splits)`.

  Raises:
    KeyError: an unknown method name (the message lists the valid names).
  """
  factories = {name: _checks.lookup(methods_lib.METHODS, name, 'method') for name in method_names}
  splits = data.prepare(settings.dataset, settings.protocol, seed=settings.split_seed,
                        validation_fraction=settings.validation_fraction,
                        test_fraction=settings.test_fraction, scaling=settings.scaling,
                        manual_dir=manual_dir, data_dir=data_dir, allow_download=allow_download)
  eval_key = jax.random.key(seed + 10_000)
  results = {}
  for name, factory in factories.items():
    method = factory()
    graphdef, params, stats, best_epoch, compile_s, run_s = train_method(
        method, splits, settings, num_seeds=num_seeds, seed=seed)
    scores = evaluate(method, graphdef, params, stats, splits, conditions, key=eval_key)
    results[name] = MethodResult(scores, run_s, compile_s, best_epoch)
    clean = scores[conditions[0].name]['accuracy']
    log(f'{settings.dataset:12s} {name:8s} {conditions[0].name} accuracy '
        f'{100 * clean.mean():.2f} +- {100 * clean.std(ddof=1 if clean.size > 1 else 0):.2f} '
        f'(train {run_s:.1f} s + compile {compile_s:.1f} s, best epochs {best_epoch.tolist()})')
  return results, splits
