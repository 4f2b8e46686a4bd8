"""Feature-level fusion families side by side under noisy and missing modalities.

Late fusion, a quality gate, CEN's channel exchange, TokenFusion's token exchange, MBT's
attention bottlenecks and DynMM's per-sample experts, on the same stems (`lqmm.nn.
FeatureFusionNet`), trained the same way (clean data, modality dropout), scored on the same
degraded test sets (`lqmm.bench.conditions`: one Gaussian-noisy modality per sample, missing
modalities) with the inference FLOPs each ran. Sections: names, data, model, step,
evaluation, train_and_evaluate, report.

    python -m experiments.feature_fusion.train \
        --config=experiments/feature_fusion/configs/default.py:av_digits \
        --config.data.manual_dir=../shared/data --workdir=$PWD/workdir/feature_fusion_av
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm import checks
from lqmm import data
from lqmm import metrics
from lqmm import missing
from lqmm import nn
from lqmm import train
from lqmm.bench import conditions as conditions_lib
from lqmm.bench import report
from lqmm.nn import feature_fusion
from lqmm.nn import routing

# ---------------------------------------------------------------- names
OPTIMIZERS = {'adam': optax.adam, 'sgd': optax.sgd}
RESUMABLE = ('train.stop_after_epochs', 'train.num_devices', 'eval')
NAMES = {'late': 'late fusion (mean of logits)', 'gated': 'quality gate (sigmoid, normalised)',
         'cen': 'CEN channel exchange', 'tokenfusion': 'TokenFusion token exchange',
         'mbt': 'MBT attention bottlenecks', 'dynmm': 'DynMM experts (grouped inference)'}


# ---------------------------------------------------------------- data
def conditions(config) -> tuple[conditions_lib.Condition, ...]:
  """Clean, one noisy modality per sample at each `quality_stds`, each `missing_rates`."""
  out = [conditions_lib.Condition('clean', 'clean', 0.0)]
  out += [conditions_lib.Condition(f'quality_{std:g}', 'quality', float(std))
          for std in config.eval.quality_stds]
  out += [conditions_lib.Condition(f'missing_{rate:g}', 'missing', float(rate))
          for rate in config.eval.missing_rates]
  return tuple(out)


# ---------------------------------------------------------------- model
def model_kwargs(config) -> dict:
  return {key: (tuple(value) if isinstance(value, (list, tuple)) else value)
          for key, value in config.model.to_dict().items()}


def make_network(splits: data.Splits, config, fusion: str, key, costs=None):
  return nn.FeatureFusionNet(dict(splits.shapes), splits.order, splits.num_classes,
                             fusion=fusion, expert_costs=costs, rngs=nnx.Rngs(key),
                             **model_kwargs(config))


def make_init(splits: data.Splits, config, fusion: str, costs=None):
  """`key -> TrainState`: the network drawn with its own initialisers (`nnx.Rngs(key)`)."""
  tx = optax.chain(optax.add_decayed_weights(config.optim.weight_decay),
                   OPTIMIZERS[config.optim.name](config.optim.learning_rate))
  build = functools.partial(make_network, splits, config, fusion, costs=costs)
  return train.initializer(lambda: build(jax.random.key(0)), tx,
                           init_params=lambda abstract, key: nnx.state(build(key), nnx.Param))


def expert_costs(splits: data.Splits, config, fusion: str):
  """DynMM's per-sample expert FLOPs (from shapes, once); None for the other families."""
  if fusion != 'dynmm':
    return None
  return nnx.eval_shape(lambda: make_network(splits, config, fusion, jax.random.key(0))).costs


def stacked_mask(model, batch) -> jax.Array:
  return missing.stack_masks(batch['mask'], model.order)


# ---------------------------------------------------------------- step
def train_step(state: train.TrainState, batch, key, *, config, fusion: str):
  """Every modality's (DynMM: expert's) cross-entropy plus the fused one's, the family's
  penalty, DynMM's resource term; modality dropout on the training masks."""
  dropout_key, gumbel_key = jax.random.split(key)
  labels, weight = batch['label'], batch['weight']
  schedule = routing.temperature_schedule(
      config.dynmm.initial_temperature, decay_rate=config.dynmm.temperature_decay,
      minimum=config.dynmm.min_temperature)

  def loss_fn(params):
    model = state.model(params)
    present = stacked_mask(model, batch)
    if config.train.modality_dropout > 0:
      present = missing.modality_dropout(present, rate=config.train.modality_dropout,
                                         key=dropout_key)
    dynamic = fusion == 'dynmm'
    outputs = model(batch['inputs'], present, key=gumbel_key if dynamic else None,
                    temperature=schedule(state.epoch))
    fused = optax.softmax_cross_entropy_with_integer_labels(outputs.logits, labels)    # [B]
    parts = optax.softmax_cross_entropy_with_integer_labels(
        outputs.modality_logits, jnp.broadcast_to(labels, outputs.modality_logits.shape[:-1]))
    if dynamic:   # every expert learns on the rows it can read (DynMM pretrains them)
      needs = jnp.asarray([[name in expert.names for name in model.order]
                           for expert in model.dynamic.experts])                     # [E, M]
      usable = jnp.all(present.T[None] | ~needs[:, None, :], axis=-1)                  # [E, B]
      per_sample = fused + jnp.sum(jnp.where(usable, parts, 0), axis=0)
      cost = routing.expected_cost(outputs.weights, model.costs)
      per_sample = per_sample + config.dynmm.resource_weight * cost
    else:
      per_sample = fused + jnp.sum(jnp.where(present, parts, 0), axis=0)
    loss = jnp.sum(per_sample * weight) / jnp.sum(weight) + outputs.penalty
    return loss, train.TrainState.model_variables(model)

  (loss, variables), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads)
  if jax.tree.leaves(state.model_state):
    state = state.replace(model_state=variables)
  return state, {'loss': loss}


def eval_step(state: train.TrainState, batch):
  """Accuracy and NLL of the fused prediction on a clean split (the selection metrics)."""
  model = state.model()
  model.eval()
  logits = model(batch['inputs'], stacked_mask(model, batch)).logits
  labels = batch['label']
  return {'accuracy': metrics.accuracy(logits, labels),
          'nll': jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))}


# ---------------------------------------------------------------- evaluation
def _forward(state: train.TrainState, inputs, mask):
  model = state.model()
  model.eval()
  return model(inputs, mask).logits


def score(state: train.TrainState, splits: data.Splits, conditions_, *, key, fusion: str
          ) -> dict:
  """Accuracy `[S]` and inference FLOPs per sample under every condition.

  Every family but DynMM runs its whole network: its FLOPs are XLA's count of the compiled
  forward pass over the test split, per sample. DynMM runs its gate, then each expert only on
  the rows routed to it (`FeatureFusionNet.infer`); its FLOPs are the gate's plus what the
  experts ran (padding included), per seed, and its predictions are checked against the
  run-every-expert argmax.
  """
  test = jax.tree.map(jnp.asarray, splits.test)
  labels = test['label']
  num_seeds = jax.tree.leaves(state.params)[0].shape[0]
  one = jax.tree.map(lambda x: x[0], state)
  batch = labels.shape[0]
  forward = jax.jit(jax.vmap(_forward, in_axes=(0, None, None)))   # one compilation
  whole = gate = None
  out = {}
  for index, condition in enumerate(conditions_):
    inputs, mask = conditions_lib.apply(condition, test['inputs'], splits.order,
                                        key=jax.random.fold_in(key, index))
    logits = forward(state, inputs, mask)
    entry = {'accuracy': np.asarray(jax.vmap(metrics.accuracy, (0, None))(logits, labels))}
    if fusion != 'dynmm':
      if whole is None:   # the same shapes under every condition
        whole = routing.flops(_forward, one, inputs, mask) / batch
      entry['flops'] = np.full(num_seeds, whole)
    else:
      flops, shares, agree = [], [], []
      for seed in range(num_seeds):
        model = jax.tree.map(lambda x, seed=seed: x[seed], state).model()
        model.eval()
        if gate is None:   # the gate's shapes are the same for every seed and condition
          graphdef, gate_state = nnx.split(model.dynamic.gate)
          gate = routing.flops(lambda s, b, graphdef=graphdef: nnx.merge(graphdef, s)(b),
                               gate_state, model.routed_batch(inputs, mask))
        chosen, stats, choice = model.infer(inputs, mask)
        flops.append((gate + stats.flops) / batch)
        shares.append(np.bincount(choice, minlength=len(model.costs)) / batch)
        agree.append(float(np.mean(np.argmax(chosen, -1) == np.argmax(logits[seed], -1))))
      entry.update({'flops': np.asarray(flops), 'expert_share': np.asarray(shares),
                    'agreement': np.asarray(agree)})
    out[condition.name] = entry
  return out


def check(config) -> None:
  """Validates the config before anything is written."""
  train.check_config(config)
  checks.lookup(OPTIMIZERS, config.optim.name, 'optimizer')
  if not config.methods:
    raise ValueError('config.methods names no method; valid names: '
                     f'{", ".join(feature_fusion.FUSIONS)}.')
  for method in config.methods:
    checks.lookup({name: name for name in feature_fusion.FUSIONS}, method, 'method')
  train.check_number(config.train.modality_dropout, 'config.train.modality_dropout',
                     minimum=0.0, maximum=0.99)
  train.check_numbers(config.eval.quality_stds, 'config.eval.quality_stds', minimum=0.0)
  train.check_numbers(config.eval.missing_rates, 'config.eval.missing_rates', minimum=0.0,
                      maximum=0.99)
  train.check_number(config.dynmm.resource_weight, 'config.dynmm.resource_weight', minimum=0.0)
  train.check_number(config.dynmm.initial_temperature, 'config.dynmm.initial_temperature',
                     minimum=0.0, open_minimum=True)
  train.check_number(config.dynmm.temperature_decay, 'config.dynmm.temperature_decay',
                     minimum=0.0, maximum=1.0, open_minimum=True)
  train.check_number(config.dynmm.min_temperature, 'config.dynmm.min_temperature',
                     minimum=0.0, maximum=config.dynmm.initial_temperature, open_minimum=True)


# ---------------------------------------------------------------- train and evaluate
def train_and_evaluate(config, workdir) -> dict:
  """Trains every method's seeds together, scores them under every condition."""
  check(config)
  splits = data.load_from(config.data)
  # The network must take the data (shapes, grid, heads) before anything is written.
  for method in config.methods:
    nnx.eval_shape(lambda method=method: make_network(splits, config, method,
                                                      jax.random.key(0),
                                                      costs=(1.0,) * (len(splits.order) + 1)))
  conditions_ = conditions(config)
  writer = train.MetricWriter(workdir)
  writer.start(config.to_dict(), resumable=RESUMABLE)
  results = {'dataset': splits.name, 'order': list(splits.order),
             'num_classes': splits.num_classes, 'sizes': splits.sizes,
             'num_seeds': config.train.num_seeds, 'epochs': config.train.num_epochs,
             'conditions': [conditions_lib.spec(c) | {'name': c.name} for c in conditions_],
             'methods': {}}
  for method in config.methods:
    costs = expert_costs(splits, config, method)
    result = train.fit(make_init(splits, config, method, costs),
                       functools.partial(train_step, config=config, fusion=method),
                       splits.train, config=config.train, workdir=workdir, writer=writer,
                       name=method, eval_step=eval_step, validation_data=splits.validation)
    scores = score(result.selected_state(), splits, conditions_,
                   key=jax.random.key(config.eval.seed), fusion=method)
    results['methods'][method] = {
        'start_epoch': result.start_epoch, 'best_epoch': result.best_epoch.tolist(),
        'train_compile_s': result.compile_s, 'train_run_s': result.run_s,
        'expert_costs': None if costs is None else list(costs),
        'test': {name: {key: value.tolist() for key, value in entry.items()}
                 for name, entry in scores.items()}}
    writer.write(config.train.num_epochs, {
        f'{method}/test/{name}/accuracy': float(np.mean(entry['accuracy']))
        for name, entry in scores.items()})
  writer.close()
  results['start_epoch'] = max(m['start_epoch'] for m in results['methods'].values())
  train.write_results(workdir, table=make_table(results), results=results)
  return results


# ---------------------------------------------------------------- report
def make_table(results) -> str:
  """Accuracy (%) per method and condition, mean ± 95% t-interval; FLOPs per sample."""
  names = [c['name'] for c in results['conditions']]
  lines = [f'{results["dataset"]} ({", ".join(results["order"])}): test accuracy (%) over '
           f'{results["num_seeds"]} seeds (mean ± 95% t-interval), {results["epochs"]} epochs, '
           f'test split of {results["sizes"]["test"]}; inference MFLOPs per sample (XLA cost '
           'analysis; DynMM: gate + the experts that ran, mean over seeds).', '',
           '| method | ' + ' | '.join(names) + ' | MFLOPs ' + ' / '.join(names) +
           ' | train s |', '|---' * (len(names) + 3) + '|']
  for method, outcome in results['methods'].items():
    test = outcome['test']
    cells = [report.mean_interval(100 * np.asarray(test[name]['accuracy']), digits=1)
             for name in names]
    flops = ' / '.join(f'{np.mean(test[name]["flops"]) / 1e6:.2f}' for name in names)
    lines.append(f'| {method} | ' + ' | '.join(cells) +
                 f' | {flops} | {outcome["train_run_s"]:.0f} |')
  dynamic = results['methods'].get('dynmm')
  if dynamic is not None:
    lines += ['', 'DynMM: share of test rows sent to each expert (' +
              ', '.join(f'{m} alone' for m in results['order']) + ', all), mean over seeds; '
              'agreement of grouped inference with running every expert.', '',
              '| condition | shares | agreement |', '|---|---|---|']
    for name in names:
      shares = np.mean(np.asarray(dynamic['test'][name]['expert_share']), axis=0)
      agreement = np.mean(dynamic['test'][name]['agreement'])
      lines.append(f'| {name} | {" / ".join(f"{s:.2f}" for s in shares)} | '
                   f'{agreement:.4f} |')
  return '\n'.join(lines)


if __name__ == '__main__':
  train.run_experiment(train_and_evaluate)
