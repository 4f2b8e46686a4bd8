"""MoNIG on the diabetes data: two modalities, several seeds trained together, noisy-modality test.

One linear file; fork it. Sections: data, model, optimizer, step, checkpoint, loop, evaluation.
The same compiled program also trains the baseline (one MLP on the concatenated features, mean
squared error) on the same batches, so every number has a paired comparison.

    python -m experiments.monig_diabetes.train \
        --config=experiments/monig_diabetes/configs/default.py --workdir=$PWD/workdir/monig_diabetes
"""

from __future__ import annotations

import functools
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app
from absl import flags
from absl import logging
from flax import nnx
from ml_collections import config_flags
from scipy import special as scipy_special
from scipy import stats as scipy_stats

from lqmm import corrupt
from lqmm import nn
from lqmm import train
from lqmm.data import diabetes
from lqmm.fusion import nig
from lqmm.losses import nig as nig_losses


def _validation_nll(fused: nig.NIG, target: jax.Array) -> jax.Array:
  return jnp.mean(nig_losses.negative_log_likelihood(fused, target))


def _validation_rmse(fused: nig.NIG, target: jax.Array) -> jax.Array:
  return jnp.sqrt(jnp.mean((fused.gamma - target)**2))


SELECTIONS = {'nll': _validation_nll, 'rmse': _validation_rmse}
OPTIMIZERS = {'adam': optax.adam, 'sgd': optax.sgd}


def _lookup(table, name, what):
  if name not in table:
    raise KeyError(f'Unknown {what} {name!r}; valid names: {", ".join(sorted(table))}.')
  return table[name]


class StopRequested(Exception):
  """Raised by `stop_after_epochs`, to simulate a run killed right after a checkpoint."""


def train_and_evaluate(config, workdir) -> dict:
  """Trains `config.num_seeds` seeds of MoNIG and of the baseline; returns the test summary."""
  workdir = pathlib.Path(workdir).expanduser().absolute()
  if config.checkpoint_every_epochs % config.epochs_per_call:
    raise ValueError('checkpoint_every_epochs must be a multiple of epochs_per_call; got '
                     f'{config.checkpoint_every_epochs} and {config.epochs_per_call}.')
  make_optimizer = _lookup(OPTIMIZERS, config.optimizer, 'optimizer')
  selection_score = _lookup(SELECTIONS, config.selection, 'selection metric')
  train.maybe_initialize_distributed()
  mesh = train.make_mesh(config.num_devices)
  writer = train.MetricWriter(workdir)
  writer.check_same_config(config.to_dict(), _RESUMABLE_CHANGES)
  writer.write_config(config.to_dict())

  # ---------------------------------------------------------------- data
  splits = diabetes.prepare_diabetes(
      seed=config.data.split_seed, validation_fraction=config.data.validation_fraction,
      test_fraction=config.data.test_fraction, scaling=config.data.scaling,
      modalities=config.data.modalities, data_dir=config.data.data_dir)
  order = splits.order
  target_std = splits.target_std  # standardised units -> original units
  train.check_divisible(config.batch_size, mesh, 'batch_size')
  train_set = jax.device_put(splits.train, train.replicated(mesh))
  validation_set = jax.device_put(splits.validation, train.replicated(mesh))
  num_train = len(splits.train['target'])
  steps_per_epoch = -(-num_train // config.batch_size)  # the last batch may be partial

  # ---------------------------------------------------------------- model
  def make_monig(key):
    """One MLP per modality with 4 outputs: the raw NIG parameters."""
    return nn.LateFusionNet(splits.dims, order, 4, hidden=config.model.hidden,
                            rngs=nnx.Rngs(key))

  def make_baseline(key):
    """One MLP on the concatenated features with one output: the prediction."""
    return nn.ModalityNet(sum(splits.dims.values()), 1, hidden=config.baseline.hidden,
                          rngs=nnx.Rngs(key))

  monig_graph, monig_abstract = nnx.split(
      nnx.eval_shape(lambda: make_monig(jax.random.key(0))), nnx.Param)
  baseline_graph, baseline_abstract = nnx.split(
      nnx.eval_shape(lambda: make_baseline(jax.random.key(0))), nnx.Param)
  seed_keys = jax.vmap(jax.random.key)(config.seed + jnp.arange(config.num_seeds))
  init_keys = jax.vmap(lambda key: jax.random.fold_in(key, 0))(seed_keys)
  shuffle_keys = jax.vmap(lambda key: jax.random.fold_in(key, 1))(seed_keys)

  def stack(tree):
    return jnp.stack([tree[name] for name in order])

  def modality_nigs(params, inputs):
    """Every modality's NIG, fields `[M, B, 1]`."""
    outputs, _ = nnx.merge(monig_graph, params)(inputs)  # [M, B, 4]
    return nig.from_outputs(outputs[..., None, :])

  def monig_forward(params, inputs, mask):
    """Every modality's NIG (fields `[M, B, 1]`) and their MoNIG fusion (fields `[B, 1]`)."""
    per_modality = modality_nigs(params, inputs)
    return per_modality, nig.fuse(per_modality, stack(mask))

  def baseline_forward(params, inputs):
    """The baseline's prediction `[B]` from the concatenated modalities."""
    features = jnp.concatenate([inputs[name] for name in order], axis=-1)
    _, prediction = nnx.merge(baseline_graph, params)(features)
    return prediction[:, 0]

  # ---------------------------------------------------------------- optimizer
  optimizer = optax.chain(optax.add_decayed_weights(config.weight_decay),
                          make_optimizer(config.learning_rate))

  def model_state(params):
    """Training state of one model, with the best (validation-selected) parameters so far."""
    return {'params': params, 'opt_state': optimizer.init(params), 'best_params': params,
            'best_score': jnp.float32(jnp.inf), 'best_epoch': jnp.int32(0)}

  def init_state(init_key):
    # torch.nn.Linear's initial distribution, drawn in one call (fast to compile on CPU).
    params = nn.torch_linear_init({'monig': monig_abstract, 'baseline': baseline_abstract},
                                  key=init_key)
    return {name: model_state(value) for name, value in params.items()} | {'epoch': jnp.int32(0)}

  # ---------------------------------------------------------------- step
  def monig_loss(params, batch, weights):
    """MoNIG's objective: every modality's NIG loss plus the fused one's, batch-averaged."""
    per_sample, _ = nig_losses.mixture_loss(
        modality_nigs(params, batch['inputs']), batch['target'][:, None], stack(batch['mask']),
        risk=config.risk)
    return jnp.sum(per_sample[:, 0] * weights) / jnp.sum(weights)

  def baseline_loss(params, batch, weights):
    error = baseline_forward(params, batch['inputs']) - batch['target']
    return jnp.sum(error**2 * weights) / jnp.sum(weights)

  def update(loss_fn, carry, batch, weights):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(loss_fn)(params, batch, weights)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  def keep_best(state, score, epoch):
    """Keeps `params` as `best_params` where `score` beats the best validation score so far."""
    better = score < state['best_score']
    pick = lambda new, old: jnp.where(better, new, old)
    return {**state, 'best_params': jax.tree.map(pick, state['params'], state['best_params']),
            'best_score': pick(score, state['best_score']),
            'best_epoch': pick(epoch, state['best_epoch'])}

  batch_sharding = train.data_sharding(mesh)

  def train_epoch(state, shuffle_key):
    epoch = state['epoch']
    order_key = jax.random.fold_in(shuffle_key, epoch)
    permutation = jax.random.permutation(order_key, num_train)
    padding = steps_per_epoch * config.batch_size - num_train
    indices = jnp.concatenate([permutation, jnp.zeros(padding, permutation.dtype)])
    weights = (jnp.arange(indices.size) < num_train).astype(jnp.float32)

    def step(carry, chunk):
      monig, baseline = carry
      batch_indices, batch_weights = chunk
      batch = jax.tree.map(lambda x: x[batch_indices], train_set)
      batch, batch_weights = jax.lax.with_sharding_constraint((batch, batch_weights),
                                                              batch_sharding)
      monig, monig_value = update(monig_loss, monig, batch, batch_weights)
      baseline, baseline_value = update(baseline_loss, baseline, batch, batch_weights)
      return (monig, baseline), (monig_value, baseline_value)

    chunks = (indices.reshape(steps_per_epoch, -1), weights.reshape(steps_per_epoch, -1))
    carry = tuple((state[name]['params'], state[name]['opt_state'])
                  for name in ('monig', 'baseline'))
    carry, (monig_losses, baseline_losses) = jax.lax.scan(step, carry, chunks)
    new_state = {name: {**state[name], 'params': params, 'opt_state': opt_state}
                 for name, (params, opt_state) in zip(('monig', 'baseline'), carry)}

    # Model selection on the validation split, after every epoch.
    _, fused = monig_forward(new_state['monig']['params'], validation_set['inputs'],
                             validation_set['mask'])
    target = validation_set['target'][:, None]
    baseline_error = (baseline_forward(new_state['baseline']['params'],
                                       validation_set['inputs']) - validation_set['target'])
    baseline_mse = jnp.mean(baseline_error**2)
    new_state['monig'] = keep_best(new_state['monig'], selection_score(fused, target), epoch + 1)
    new_state['baseline'] = keep_best(new_state['baseline'], baseline_mse, epoch + 1)
    new_state['epoch'] = epoch + 1
    return new_state, {'monig_loss': jnp.mean(monig_losses),
                       'baseline_loss': jnp.mean(baseline_losses),
                       'validation_nll': _validation_nll(fused, target),
                       'validation_rmse': _validation_rmse(fused, target),
                       'baseline_validation_rmse': jnp.sqrt(baseline_mse)}

  @functools.partial(jax.jit, static_argnames='num_epochs')
  def train_epochs(states, num_epochs):
    """Runs `num_epochs` epochs for every seed: vmap over seeds of a scan over epochs."""
    def one_seed(state, shuffle_key):
      return jax.lax.scan(lambda s, _: train_epoch(s, shuffle_key), state, None,
                          length=num_epochs)
    return jax.vmap(one_seed)(states, shuffle_keys)

  # ---------------------------------------------------------------- checkpoint
  states = jax.jit(jax.vmap(init_state), out_shardings=train.replicated(mesh))(init_keys)
  checkpointer = train.Checkpointer(workdir)
  states = checkpointer.restore_or(states)
  start_epoch = int(np.asarray(states['epoch'])[0])
  writer.rewind(start_epoch)  # a resumed run redoes the epochs after its last checkpoint

  # ---------------------------------------------------------------- loop
  progress = train.Progress(config.num_epochs, initial=start_epoch, unit='epoch')
  compiled = {}  # number of epochs per call -> compiled executable
  epoch = start_epoch
  stopped = False
  try:
    while epoch < config.num_epochs:
      num_epochs = min(config.epochs_per_call, config.num_epochs - epoch)
      if num_epochs not in compiled:
        with progress.compiling():
          compiled[num_epochs] = train_epochs.lower(states, num_epochs=num_epochs).compile()
      states, history = compiled[num_epochs](states)
      last = {name: np.asarray(value)[:, -1] for name, value in history.items()}  # [seeds]
      train.check_finite({name: last[name] for name in ('monig_loss', 'baseline_loss')},
                         first_step=epoch + 1, last_step=epoch + num_epochs)
      epoch += num_epochs
      writer.write(epoch, {
          'train/monig_loss': last['monig_loss'].mean(),
          'train/baseline_loss': last['baseline_loss'].mean(),
          'validation/nll': last['validation_nll'].mean() + math.log(target_std),
          'validation/rmse': last['validation_rmse'].mean() * target_std,
          'validation/baseline_rmse': last['baseline_validation_rmse'].mean() * target_std})
      progress.update(num_epochs, {'loss': last['monig_loss'].mean()})
      if epoch % config.checkpoint_every_epochs == 0 or epoch == config.num_epochs:
        checkpointer.save(epoch, states)
        if config.stop_after_epochs is not None and epoch >= config.stop_after_epochs:
          stopped = True
          break
  finally:
    # Also on errors (e.g. the NaN guard): finish pending checkpoint writes, close the files.
    progress.close()
    checkpointer.close()
    if stopped or epoch < config.num_epochs:
      writer.close()
  if stopped:
    raise StopRequested(f'stopped after epoch {epoch} (stop_after_epochs)')
  timing = progress.summary()

  # ---------------------------------------------------------------- evaluation
  # Predictions of the validation-selected parameters, with Gaussian noise of each std added to
  # one modality at a time (std 0: clean data); the metrics are computed from them in numpy.
  stds = jnp.asarray(config.eval.noise_stds, jnp.float32)
  noise_modalities = tuple(config.eval.noise_modalities)
  eval_key = jax.random.key(config.eval.seed)

  def predict_one(monig_params, baseline_params, batch, std, noise_key):
    """Predictions `{'nig': NIG fields [N, M + 1, B], 'baseline': [N, B]}`: for each of the N
    noise modalities, noise of `std` on it alone; MoNIG's fusion first, then each modality's
    own NIG."""
    noisy_inputs = corrupt.gaussian_noise(batch['inputs'], std, key=noise_key,
                                          modalities=noise_modalities)  # one draw for all
    by_modality = []
    for noisy in noise_modalities:
      inputs = {**batch['inputs'], noisy: noisy_inputs[noisy]}
      per_modality, fused = monig_forward(monig_params, inputs, batch['mask'])
      sources = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b])[..., 0], fused,
                             per_modality)
      by_modality.append({'nig': sources,
                          'baseline': baseline_forward(baseline_params, inputs)})
    return jax.tree.map(lambda *values: jnp.stack(values), *by_modality)

  @jax.jit
  def predict(monig_params, baseline_params, batch):
    """Predictions `[seeds, noise modality, std, ...]`; one noise draw shared by all seeds."""
    keys = jax.vmap(lambda i: jax.random.fold_in(eval_key, i))(jnp.arange(stds.size))
    over_noise = jax.vmap(predict_one, in_axes=(None, None, None, 0, 0), out_axes=1)
    over_seeds = jax.vmap(over_noise, in_axes=(0, 0, None, None, None))
    return over_seeds(monig_params, baseline_params, batch, stds, keys)

  best_monig, best_baseline = states['monig']['best_params'], states['baseline']['best_params']
  validation_predictions = jax.tree.map(np.asarray, predict(best_monig, best_baseline,
                                                            splits.validation))
  # The baseline's Gaussian predictive: the variance of its clean validation residuals.
  baseline_variance = np.mean(
      (validation_predictions['baseline'][:, 0, 0] - splits.validation['target'])**2, axis=-1)
  levels = tuple(config.eval.coverage_levels)
  test = _metrics(jax.tree.map(np.asarray, predict(best_monig, best_baseline, splits.test)),
                  splits.test['target'], baseline_variance, levels, target_std)
  validation = _metrics(validation_predictions, splits.validation['target'], baseline_variance,
                        levels, target_std)
  results = {
      'noise_std': [float(s) for s in config.eval.noise_stds],
      'noise_modalities': list(noise_modalities),
      'coverage_levels': [float(level) for level in levels],
      'sources': ['fused', *order], 'num_seeds': config.num_seeds, 'epochs': config.num_epochs,
      'start_epoch': start_epoch, 'selection': config.selection,
      'split_sizes': {split: int(len(rows)) for split, rows in splits.rows.items()},
      'target_mean': splits.target_mean, 'target_std': target_std,
      'best_epoch': {name: np.asarray(states[name]['best_epoch']).tolist()
                     for name in ('monig', 'baseline')},
      'baseline_variance': baseline_variance.tolist(),
      'train_compile_s': timing['compile_s'], 'train_run_s': timing['run_s'],
      'test': {name: value.tolist() for name, value in test.items()},
      'validation': {'rmse': validation['rmse'][:, 0, 0, 0].tolist(),  # fused, clean
                     'nll_t': validation['nll_t'][:, 0, 0, 0].tolist(),
                     'baseline_rmse': validation['baseline_rmse'][:, 0, 0].tolist()},
  }
  for index, noisy in enumerate(noise_modalities):
    for level, std in enumerate(results['noise_std']):
      writer.write(config.num_epochs, {
          f'test/{noisy}_noise_{std:g}/{name}': test[name][:, index, level, 0].mean()
          for name in ('rmse', 'nll_t', 'predictive_std', 'epistemic', 'aleatoric')})
  writer.close()

  table = _table(results)
  print(table)
  (workdir / 'results.md').write_text(table + '\n', encoding='utf-8')
  (workdir / 'results.json').write_text(json.dumps(results, indent=1) + '\n', encoding='utf-8')
  _plot(results, workdir / 'robustness.png')
  return results


def _spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Spearman rank correlation along the last axis (average ranks for ties)."""
  rank_a, rank_b = (scipy_stats.rankdata(x, axis=-1) for x in (a, b))
  rank_a = rank_a - rank_a.mean(-1, keepdims=True)
  rank_b = rank_b - rank_b.mean(-1, keepdims=True)
  return (rank_a * rank_b).sum(-1) / np.sqrt((rank_a**2).sum(-1) * (rank_b**2).sum(-1))


def _metrics(predictions, target: np.ndarray, baseline_variance: np.ndarray,
             levels: tuple[float, ...], target_std: float) -> dict[str, np.ndarray]:
  """Metrics of MoNIG's sources `[..., M + 1]` and of the baseline `[...]` over the batch.

  `predictions['nig']` holds NIG fields `[S, N, K, M + 1, B]` (seeds, noisy modality, noise
  std, source, sample) and `predictions['baseline']` `[S, N, K, B]`, both for the standardised
  `target` `[B]`; `baseline_variance` `[S]` is the baseline's Gaussian variance per seed.

  RMSE, NLLs and the predictive std are in the target's original units; `aleatoric` and
  `epistemic` are mean variances in units of the training target's variance; `coverage` (last
  axis: `levels`) is the fraction of targets inside the central interval of each probability.
  MoNIG's predictive is the NIG's Student-t: `2 alpha` degrees of freedom, location `gamma`,
  `scale^2 = beta (1 + nu) / (nu alpha)`; the baseline's is `N(prediction, baseline_variance)`.
  """
  source = predictions['nig']  # an NIG of numpy arrays
  targets = np.broadcast_to(target, source.gamma.shape).astype(np.float32)
  error = np.asarray(source.gamma, np.float64) - target
  variance = np.asarray(nig.predictive_variance(source), np.float64)
  gamma, nu, alpha, beta = (np.asarray(field, np.float64) for field in source)
  t_statistic = error / np.sqrt(beta * (1 + nu) / (nu * alpha))
  central = 2 * scipy_stats.t.cdf(np.abs(t_statistic), df=2 * alpha) - 1
  gaussian_nll = 0.5 * np.log(2 * np.pi * variance) + error**2 / (2 * variance)
  student_nll = np.asarray(nig_losses.negative_log_likelihood(source, targets), np.float64)
  out = {
      'rmse': np.sqrt(np.mean(error**2, -1)) * target_std,
      'nll_t': student_nll.mean(-1) + math.log(target_std),
      'nll_gaussian': gaussian_nll.mean(-1) + math.log(target_std),
      'coverage': np.stack([np.mean(central <= level, -1) for level in levels], -1),
      'spearman': _spearman(np.sqrt(variance), np.abs(error)),
      'predictive_std': np.sqrt(variance.mean(-1)) * target_std,
      'aleatoric': np.asarray(nig.aleatoric(source), np.float64).mean(-1),
      'epistemic': np.asarray(nig.epistemic(source), np.float64).mean(-1),
      'weight': (nu[..., 1:, :] / nu[..., :1, :]).mean(-1),  # nu_m / sum nu
  }
  baseline_error = np.asarray(predictions['baseline'], np.float64) - target
  variance = np.asarray(baseline_variance, np.float64).reshape(-1, 1, 1, 1)
  central = scipy_special.erf(np.abs(baseline_error) / np.sqrt(2 * variance))
  out['baseline_rmse'] = np.sqrt(np.mean(baseline_error**2, -1)) * target_std
  out['baseline_nll_gaussian'] = (np.mean(0.5 * np.log(2 * np.pi * variance) +
                                          baseline_error**2 / (2 * variance), -1) +
                                  math.log(target_std))
  out['baseline_coverage'] = np.stack([np.mean(central <= level, -1) for level in levels], -1)
  return out


# Settings a resumed run may change; any other difference from the checkpointed run's
# config.json is an error (the checkpoint would silently continue a different experiment).
_RESUMABLE_CHANGES = ('num_epochs', 'stop_after_epochs', 'eval', 'num_devices')


def _cell(values, digits: int) -> str:
  values = np.asarray(values, np.float64)
  return f'{values.mean():.{digits}f} +- {values.std():.{digits}f}'


def _table(results) -> str:
  """Markdown tables: clean test metrics per source, then one noisy modality at a time."""
  test = {name: np.asarray(value) for name, value in results['test'].items()}
  levels = results['coverage_levels']
  coverage_header = ' | '.join(f'{100 * level:g}% cover' for level in levels)
  lines = [f'MoNIG on diabetes, {results["num_seeds"]} seeds, {results["epochs"]} epochs, '
           f'selection on validation {results["selection"]}; test set ('
           f'{results["split_sizes"]["test"]} patients), mean +- std over seeds. RMSE and NLL '
           'in the original target units.', '',
           f'| model | RMSE | Student-t NLL | Gaussian NLL | {coverage_header} | '
           'Spearman(std, abs err) | RMS predictive std |',
           '|---|---|---|---|' + '---|' * len(levels) + '---|---|']
  for index, source in enumerate(results['sources']):
    name = 'MoNIG fused' if source == 'fused' else f'MoNIG {source} head alone'
    coverage = ' | '.join(_cell(test['coverage'][:, 0, 0, index, j], 2)
                          for j in range(len(levels)))
    lines.append(f'| {name} | {_cell(test["rmse"][:, 0, 0, index], 2)} | '
                 f'{_cell(test["nll_t"][:, 0, 0, index], 3)} | '
                 f'{_cell(test["nll_gaussian"][:, 0, 0, index], 3)} | {coverage} | '
                 f'{_cell(test["spearman"][:, 0, 0, index], 3)} | '
                 f'{_cell(test["predictive_std"][:, 0, 0, index], 2)} |')
  coverage = ' | '.join(_cell(test['baseline_coverage'][:, 0, 0, j], 2)
                        for j in range(len(levels)))
  lines.append(f'| MLP baseline (concatenated, MSE) | {_cell(test["baseline_rmse"][:, 0, 0], 2)}'
               f' | - | {_cell(test["baseline_nll_gaussian"][:, 0, 0], 3)} | {coverage} | - | - |')
  difference = test['rmse'][:, 0, 0, 0] - test['baseline_rmse'][:, 0, 0]
  lines += ['', f'Paired RMSE difference MoNIG fused - baseline (same seed): '
            f'{_cell(difference, 2)}.']
  for index, noisy in enumerate(results['noise_modalities']):
    source = results['sources'].index(noisy)
    lines += ['', f'Gaussian noise of the given std on `{noisy}` only (standardised inputs):', '',
              '| noise std | MoNIG RMSE | baseline RMSE | RMS predictive std | same, '
              f'{noisy} head | epistemic | aleatoric | weight of {noisy} | '
              f'{100 * levels[-1]:g}% cover | Spearman |',
              '|---|---|---|---|---|---|---|---|---|---|']
    for level, std in enumerate(results['noise_std']):
      at = (slice(None), index, level)
      lines.append(
          f'| {std:g} | {_cell(test["rmse"][at][:, 0], 2)} | '
          f'{_cell(test["baseline_rmse"][at], 2)} | {_cell(test["predictive_std"][at][:, 0], 2)} '
          f'| {_cell(test["predictive_std"][at][:, source], 2)} '
          f'| {_cell(test["epistemic"][at][:, 0], 3)} | {_cell(test["aleatoric"][at][:, 0], 3)} '
          f'| {_cell(test["weight"][at][:, source - 1], 3)} | '
          f'{_cell(test["coverage"][at][:, 0, -1], 2)} | {_cell(test["spearman"][at][:, 0], 3)} |')
  lines += ['', 'Columns without a modality name are the fused NIG\'s. epistemic, aleatoric: mean '
            'variances in units of the training target variance '
            f'({results["target_std"]:.2f}^2); weight: mean nu_m / sum nu; Spearman: between the '
            'predictive std and the absolute error.']
  return '\n'.join(lines)


def _plot(results, path: pathlib.Path) -> None:
  """RMSE, predictive std and the noisy modality's weight against the noise std."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  stds = np.asarray(results['noise_std'])
  test = {name: np.asarray(value) for name, value in results['test'].items()}
  figure = Figure(figsize=(11, 3.4), dpi=120)  # no pyplot: no GUI backend, faster import
  rmse_axis, std_axis, weight_axis = figure.subplots(1, 3)
  for index, noisy in enumerate(results['noise_modalities']):
    source = results['sources'].index(noisy)
    for axis, values, label, dashed in (
        (rmse_axis, test['rmse'][:, index, :, 0], f'MoNIG, noise on {noisy}', False),
        (rmse_axis, test['baseline_rmse'][:, index], f'baseline, noise on {noisy}', True),
        (std_axis, test['predictive_std'][:, index, :, 0], f'fused, noise on {noisy}', False),
        (std_axis, test['predictive_std'][:, index, :, source], f'{noisy} head, noise on it',
         True),
        (weight_axis, test['weight'][:, index, :, source - 1], f'weight of {noisy}', False)):
      axis.errorbar(stds, values.mean(0), yerr=values.std(0), marker='o', capsize=3,
                    label=label, linestyle='--' if dashed else '-')
  for axis, title in ((rmse_axis, 'test RMSE'), (std_axis, 'RMS predictive std'),
                      (weight_axis, 'weight nu_m / sum nu of the noisy modality')):
    axis.set_xlabel('Gaussian noise std on one modality')
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7)
  figure.suptitle(f'MoNIG on diabetes ({results["num_seeds"]} seeds)', fontsize=10)
  figure.tight_layout()
  figure.savefig(path)


def main(argv):
  del argv
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == '__main__':
  # Flags are defined here, not at import, so several experiments can be imported together.
  config_flags.DEFINE_config_file('config', None, 'Experiment configuration file.')
  flags.DEFINE_string('workdir', None, 'Folder for checkpoints, metrics and results.')
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main)
