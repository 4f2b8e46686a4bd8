"""MoNIG on the diabetes data: two modalities, several seeds trained together, noisy-modality test.

One linear file; fork it. Sections: names, models, steps, evaluation, train_and_evaluate, report.
The loop is `lqmm.train.fit`, run twice on the same batches (same seeds, same data order): once
for MoNIG, once for the baseline (one MLP on the concatenated features, mean squared error), so
every number has a paired comparison.

    python -m experiments.monig_diabetes.train \
        --config=experiments/monig_diabetes/configs/default.py --workdir=$PWD/workdir/monig_diabetes
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from scipy import special as scipy_special
from scipy import stats as scipy_stats

from lqmm import checks
from lqmm import corrupt
from lqmm import data
from lqmm import missing
from lqmm import nn
from lqmm import train
from lqmm.bench import report
from lqmm.fusion import nig
from lqmm.losses import nig as nig_losses

# ---------------------------------------------------------------- names
#: MoNIG's validation selection (`config.train.select`): the fused NIG's Student-t NLL or the
#: RMSE of its mean, lower is better. The baseline always selects on its validation MSE.
SELECTIONS = ('-nll', '-rmse')
OPTIMIZERS = {'adam': optax.adam, 'sgd': optax.sgd}
RESUMABLE = ('train.num_epochs', 'train.stop_after_epochs', 'train.num_devices', 'eval')


# ---------------------------------------------------------------- models
def make_monig(splits: data.Splits, config, key) -> nn.LateFusionNet:
  """One MLP per modality with 4 outputs: the raw NIG parameters."""
  return nn.LateFusionNet(splits.dims, splits.order, 4, hidden=config.model.hidden,
                          rngs=nnx.Rngs(key))


def make_baseline(splits: data.Splits, config, key) -> nn.ModalityNet:
  """One MLP on the concatenated features with one output: the prediction."""
  return nn.ModalityNet(sum(splits.dims.values()), 1, hidden=config.model.baseline_hidden,
                        rngs=nnx.Rngs(key))


def make_init(make_model, splits: data.Splits, config, stream: int):
  """`key -> TrainState` of one model, initialised like torch.nn.Linear.

  The two models draw from different streams of the seed's key (`stream`), so their initial
  values are independent.
  """
  tx = optax.chain(optax.add_decayed_weights(config.optim.weight_decay),
                   OPTIMIZERS[config.optim.name](config.optim.learning_rate))
  init_params = lambda abstract, *, key: nn.torch_linear_init(
      abstract, key=jax.random.fold_in(key, stream))
  return train.initializer(lambda: make_model(splits, config, jax.random.key(0)), tx,
                           init_params=init_params)


def monig_forward(state: train.TrainState, params, inputs, mask):
  """Every modality's NIG (fields `[M, B, 1]`) and their MoNIG fusion (fields `[B, 1]`)."""
  model = state.model(params)
  outputs, _ = model(inputs)  # [M, B, 4]
  per_modality = nig.from_outputs(outputs[..., None, :])
  return per_modality, nig.fuse(per_modality, missing.stack_masks(mask, model.order))


def baseline_forward(state: train.TrainState, params, inputs, order):
  """The baseline's prediction `[B]` from the concatenated modalities."""
  features = jnp.concatenate([inputs[name] for name in order], axis=-1)
  _, prediction = state.model(params)(features)
  return prediction[:, 0]


# ---------------------------------------------------------------- steps
def _weighted_mean(values, weights):
  return jnp.sum(values * weights) / jnp.sum(weights)


def monig_train_step(state: train.TrainState, batch, key, *, risk: float):
  """MoNIG's objective: every modality's NIG loss plus the fused one's, batch-averaged."""
  del key

  def loss_fn(params):
    model = state.model(params)
    outputs, _ = model(batch['inputs'])
    per_sample, _ = nig_losses.mixture_loss(
        nig.from_outputs(outputs[..., None, :]), batch['target'][:, None],
        missing.stack_masks(batch['mask'], model.order), risk=risk)
    return _weighted_mean(per_sample[:, 0], batch['weight'])

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads), {'loss': loss}


def monig_eval_step(state: train.TrainState, batch):
  """The fused NIG's Student-t NLL and RMSE (standardised units) on a whole split."""
  _, fused = monig_forward(state, state.params, batch['inputs'], batch['mask'])
  target = batch['target'][:, None]
  return {'nll': jnp.mean(nig_losses.negative_log_likelihood(fused, target)),
          'rmse': jnp.sqrt(jnp.mean((fused.gamma - target)**2))}


def baseline_train_step(state: train.TrainState, batch, key, *, order):
  """Mean squared error of the baseline."""
  del key

  def loss_fn(params):
    error = baseline_forward(state, params, batch['inputs'], order) - batch['target']
    return _weighted_mean(error**2, batch['weight'])

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads), {'loss': loss}


def baseline_eval_step(state: train.TrainState, batch, *, order):
  error = baseline_forward(state, state.params, batch['inputs'], order) - batch['target']
  return {'mse': jnp.mean(error**2)}


# ---------------------------------------------------------------- evaluation
def predict_one(monig: train.TrainState, baseline: train.TrainState, batch, std, noise_key, *,
                noise_modalities, order):
  """Predictions `{'nig': NIG fields [N, M + 1, B], 'baseline': [N, B]}`: for each of the N
  noise modalities, noise of `std` on it alone; MoNIG's fusion first, then each modality's
  own NIG."""
  noisy_inputs = corrupt.gaussian_noise(batch['inputs'], std, key=noise_key,
                                        modalities=noise_modalities)  # one draw for all
  by_modality = []
  for noisy in noise_modalities:
    inputs = {**batch['inputs'], noisy: noisy_inputs[noisy]}
    per_modality, fused = monig_forward(monig, monig.params, inputs, batch['mask'])
    sources = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b])[..., 0], fused,
                           per_modality)
    by_modality.append({'nig': sources,
                        'baseline': baseline_forward(baseline, baseline.params, inputs, order)})
  return jax.tree.map(lambda *values: jnp.stack(values), *by_modality)


def predict(monig: train.TrainState, baseline: train.TrainState, batch, config, order):
  """Predictions `[seeds, noise modality, std, ...]`; one noise draw shared by all seeds."""
  step = functools.partial(predict_one, noise_modalities=tuple(config.eval.noise_modalities),
                           order=order)
  both = lambda states, batch, std, key: step(states[0], states[1], batch, std, key)
  predictions = train.evaluate(both, (monig, baseline), batch, levels=config.eval.noise_stds,
                               key=jax.random.key(config.eval.seed))
  # [seeds, std, noise modality, ...] -> [seeds, noise modality, std, ...]
  return jax.tree.map(lambda x: np.swapaxes(x, 1, 2), predictions)


def check(config) -> None:
  """Validates the config before anything is written."""
  train.check_config(config)
  checks.lookup(OPTIMIZERS, config.optim.name, 'optimizer')
  if not config.train.select:
    raise ValueError("config.train.select must name MoNIG's validation metric: "
                     f'one of {", ".join(SELECTIONS)}.')
  for entry in config.train.select:
    checks.lookup(dict.fromkeys(SELECTIONS), entry, 'selection metric')
  train.check_number(config.train.risk, 'config.train.risk', minimum=0.0)
  train.check_numbers(config.eval.coverage_levels, 'config.eval.coverage_levels', minimum=0.0,
                      maximum=1.0)


# ---------------------------------------------------------------- train and evaluate
def train_and_evaluate(config, workdir) -> dict:
  """Trains `config.train.num_seeds` seeds of MoNIG and of the baseline; returns the summary."""
  check(config)
  splits = data.load_from(config.data)
  checks.check_order(config.eval.noise_modalities, dict.fromkeys(splits.order), 'the data',
                     kind='modality')
  order = splits.order
  _, target_std = splits.target_scaling  # standardised units -> original units
  writer = train.MetricWriter(workdir)
  writer.start(config.to_dict(), resumable=RESUMABLE)

  fitted = {}
  for stream, (name, make_model, train_step, eval_step, select) in enumerate((
      ('monig', make_monig, functools.partial(monig_train_step, risk=config.train.risk),
       monig_eval_step, tuple(config.train.select)),
      ('baseline', make_baseline, functools.partial(baseline_train_step, order=order),
       functools.partial(baseline_eval_step, order=order), ('-mse',)))):
    train_config = config.train.to_dict() | {'select': select}
    fitted[name] = train.fit(make_init(make_model, splits, config, stream), train_step,
                             splits.train,
                             config=train_config, workdir=workdir, writer=writer, name=name,
                             eval_step=eval_step, validation_data=splits.validation)

  # Predictions of the validation-selected parameters, with Gaussian noise of each std added to
  # one modality at a time (std 0: clean data); the metrics are computed from them in numpy.
  monig, baseline = (fitted[name].selected_state() for name in ('monig', 'baseline'))
  validation_predictions = predict(monig, baseline, splits.validation, config, order)
  # The baseline's Gaussian predictive: the variance of its clean validation residuals.
  baseline_variance = np.mean(
      (validation_predictions['baseline'][:, 0, 0] - splits.validation['target'])**2, axis=-1)
  levels = tuple(config.eval.coverage_levels)
  test = _metrics(predict(monig, baseline, splits.test, config, order), splits.test['target'],
                  baseline_variance, levels, target_std)
  validation = _metrics(validation_predictions, splits.validation['target'], baseline_variance,
                        levels, target_std)
  results = {
      'noise_std': [float(s) for s in config.eval.noise_stds],
      'noise_modalities': list(config.eval.noise_modalities),
      'coverage_levels': [float(level) for level in levels],
      'sources': ['fused', *order], 'num_seeds': config.train.num_seeds,
      'epochs': config.train.num_epochs, 'start_epoch': fitted['monig'].start_epoch,
      'selection': ', '.join(config.train.select), 'split_sizes': splits.sizes,
      'target_mean': float(splits.target_scaling[0]), 'target_std': float(target_std),
      'best_epoch': {name: result.best_epoch.tolist() for name, result in fitted.items()},
      'baseline_variance': baseline_variance.tolist(),
      'train_compile_s': sum(result.compile_s for result in fitted.values()),
      'train_run_s': sum(result.run_s for result in fitted.values()),
      'test': {name: value.tolist() for name, value in test.items()},
      'validation': {'rmse': validation['rmse'][:, 0, 0, 0].tolist(),  # fused, clean
                     'nll_t': validation['nll_t'][:, 0, 0, 0].tolist(),
                     'baseline_rmse': validation['baseline_rmse'][:, 0, 0].tolist()},
  }
  for index, noisy in enumerate(config.eval.noise_modalities):
    for level, std in enumerate(results['noise_std']):
      writer.write(config.train.num_epochs, {
          f'test/{noisy}_noise_{std:g}/{name}': test[name][:, index, level, 0].mean()
          for name in ('rmse', 'nll_t', 'predictive_std', 'epistemic', 'aleatoric')})
  writer.close()
  train.write_results(workdir, table=make_table(results), results=results,
                      figures={'robustness.png': make_plot(results)})
  return results


# ---------------------------------------------------------------- report
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


def make_table(results) -> str:
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
    coverage = ' | '.join(report.mean_std(test['coverage'][:, 0, 0, index, j], 2)
                          for j in range(len(levels)))
    lines.append(f'| {name} | {report.mean_std(test["rmse"][:, 0, 0, index], 2)} | '
                 f'{report.mean_std(test["nll_t"][:, 0, 0, index], 3)} | '
                 f'{report.mean_std(test["nll_gaussian"][:, 0, 0, index], 3)} | {coverage} | '
                 f'{report.mean_std(test["spearman"][:, 0, 0, index], 3)} | '
                 f'{report.mean_std(test["predictive_std"][:, 0, 0, index], 2)} |')
  coverage = ' | '.join(report.mean_std(test['baseline_coverage'][:, 0, 0, j], 2)
                        for j in range(len(levels)))
  lines.append(f'| MLP baseline (concatenated, MSE) | {report.mean_std(test["baseline_rmse"][:, 0, 0], 2)}'
               f' | - | {report.mean_std(test["baseline_nll_gaussian"][:, 0, 0], 3)} | {coverage} | - | - |')
  difference = test['rmse'][:, 0, 0, 0] - test['baseline_rmse'][:, 0, 0]
  lines += ['', f'Paired RMSE difference MoNIG fused - baseline (same seed): '
            f'{report.mean_std(difference, 2)}.']
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
          f'| {std:g} | {report.mean_std(test["rmse"][at][:, 0], 2)} | '
          f'{report.mean_std(test["baseline_rmse"][at], 2)} | {report.mean_std(test["predictive_std"][at][:, 0], 2)} '
          f'| {report.mean_std(test["predictive_std"][at][:, source], 2)} '
          f'| {report.mean_std(test["epistemic"][at][:, 0], 3)} | {report.mean_std(test["aleatoric"][at][:, 0], 3)} '
          f'| {report.mean_std(test["weight"][at][:, source - 1], 3)} | '
          f'{report.mean_std(test["coverage"][at][:, 0, -1], 2)} | {report.mean_std(test["spearman"][at][:, 0], 3)} |')
  lines += ['', 'Columns without a modality name are the fused NIG\'s. epistemic, aleatoric: mean '
            'variances in units of the training target variance '
            f'({results["target_std"]:.2f}^2); weight: mean nu_m / sum nu; Spearman: between the '
            'predictive std and the absolute error.']
  return '\n'.join(lines)


def make_plot(results):
  """RMSE, predictive std and the noisy modality's weight against the noise std."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  stds = np.asarray(results['noise_std'])
  test = {name: np.asarray(value) for name, value in results['test'].items()}
  figure = Figure(figsize=(11, 3.6), dpi=120)  # no pyplot: no GUI backend, faster import
  rmse_axis, std_axis, weight_axis = figure.subplots(1, 3)
  std_axis.sharey(rmse_axis)  # both in the target's units: compared on one scale
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
  weight_axis.axhline(1 / (len(results['sources']) - 1), color='gray', lw=0.8, ls=':',
                      label='equal weights')
  weight_axis.set_ylim(0, 1)
  rmse_axis.set_ylabel('target units')
  figure.suptitle(f'MoNIG on diabetes: mean ± std over {results["num_seeds"]} seeds '
                  '(solid: MoNIG; dashed: baseline or single head)', fontsize=10)
  figure.tight_layout()
  return figure




if __name__ == '__main__':
  train.run_experiment(train_and_evaluate)
