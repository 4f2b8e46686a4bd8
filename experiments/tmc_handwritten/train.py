"""TMC on Handwritten: several seeds trained together, evaluated clean and under Gaussian noise.

One linear file; fork it. Sections: names, model, step, evaluation, train_and_evaluate, report.
The loop (seeds under vmap, checkpoints and resume, metrics, NaN guard) is `lqmm.train.fit`.

    python -m experiments.tmc_handwritten.train \
        --config=experiments/tmc_handwritten/configs/default.py --workdir=$PWD/workdir/tmc
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm import checks
from lqmm import corrupt
from lqmm import data
from lqmm import metrics
from lqmm import missing
from lqmm import nn
from lqmm import train
from lqmm.bench import report
from lqmm.fusion import dempster_shafer
from lqmm.losses import evidential

# ---------------------------------------------------------------- names
LOSSES = {'ce': evidential.ce_loss, 'mse': evidential.mse_loss}
FUSIONS = {'dempster_shafer': dempster_shafer.fuse}
OPTIMIZERS = {'adam': optax.adam, 'sgd': optax.sgd}

# Settings a resumed run may change; any other difference from the checkpointed run's
# config.json is an error (the checkpoint would silently continue a different experiment).
#: `config.model.compute_dtype`: the heads' matmuls (evidence and fusion stay float32).
COMPUTE_DTYPES = {'float32': None, 'bfloat16': jnp.bfloat16}
RESUMABLE = ('train.num_epochs', 'train.stop_after_epochs', 'train.num_devices', 'eval')


# ---------------------------------------------------------------- model
def make_model(splits: data.Splits, config, key: jax.Array) -> nn.MultiViewEvidential:
  """One evidence head per view, initialised like torch.nn.Linear."""
  return nn.MultiViewEvidential(splits.dims, splits.order, splits.num_classes,
                                hidden=config.model.hidden, evidence=config.model.evidence,
                                compute_dtype=COMPUTE_DTYPES[config.model.compute_dtype],
                                rngs=nnx.Rngs(key))


def forward(state: train.TrainState, params, inputs, mask, *, fusion_name: str):
  """Per-view Dirichlet parameters `[M, B, K]` and their fusion `[B, K]`."""
  model = state.model(params)
  alpha = model(inputs) + 1
  return alpha, FUSIONS[fusion_name](alpha, missing.stack_masks(mask, model.order))


def make_init(splits: data.Splits, config):
  """`key -> TrainState`: torch.nn.Linear's initial distribution drawn in one call."""
  # torch's Adam(weight_decay=wd) adds wd * params to the gradient (L2), unlike AdamW.
  tx = optax.chain(optax.add_decayed_weights(config.optim.weight_decay),
                   OPTIMIZERS[config.optim.name](config.optim.learning_rate))
  return train.initializer(lambda: make_model(splits, config, jax.random.key(0)), tx,
                           init_params=nn.torch_linear_init)


# ---------------------------------------------------------------- step
def train_step(state: train.TrainState, batch, key, *, config):
  """TMC's objective: the evidential loss of every view plus that of the fusion."""
  del key
  annealing_step = state.epoch + 1 if config.train.one_based_epochs else state.epoch
  kl_weight = evidential.annealing_weight(annealing_step, config.train.annealing_epochs)

  def loss_fn(params):
    alpha, fused = forward(state, params, batch['inputs'], batch['mask'],
                           fusion_name=config.model.fusion)
    everything = jnp.concatenate([alpha, fused[None]])  # [M + 1, B, K]
    labels = jnp.broadcast_to(batch['label'], everything.shape[:-1])
    per_sample = LOSSES[config.train.loss](everything, labels, kl_weight=kl_weight).sum(axis=0)
    return jnp.sum(per_sample * batch['weight']) / jnp.sum(batch['weight'])

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads), {'loss': loss}


def eval_step(state: train.TrainState, batch, *, config):
  """Clean accuracy of the fused opinion (logged on the validation split)."""
  _, fused = forward(state, state.params, batch['inputs'], batch['mask'],
                     fusion_name=config.model.fusion)
  return {'accuracy': metrics.accuracy(fused, batch['label'])}


# ---------------------------------------------------------------- evaluation
def noisy_eval_step(state: train.TrainState, batch, std, key, *, config):
  """Metrics with Gaussian noise of `std` on the configured views (all by default)."""
  inputs = corrupt.gaussian_noise(batch['inputs'], std, key=key,
                                  modalities=config.eval.noise_modalities)
  alpha, fused = forward(state, state.params, inputs, batch['mask'],
                         fusion_name=config.model.fusion)
  probabilities = dempster_shafer.expected_probability(fused)
  _, uncertainty = dempster_shafer.opinion(fused)
  labels = batch['label']
  return {
      'accuracy': metrics.accuracy(fused, labels),
      'ece': metrics.expected_calibration_error(probabilities, labels,
                                                num_bins=config.eval.ece_bins),
      'uncertainty': jnp.mean(uncertainty),
      'uncertainty_auroc': metrics.uncertainty_auroc(uncertainty, fused, labels),
      'view_accuracy': jax.vmap(lambda a: metrics.accuracy(a, labels))(alpha),
  }


def check(config) -> None:
  """Validates the config before anything is written (names, loop settings, noise levels)."""
  train.check_config(config)
  checks.lookup(LOSSES, config.train.loss, 'loss')
  checks.lookup(FUSIONS, config.model.fusion, 'fusion')
  checks.lookup(OPTIMIZERS, config.optim.name, 'optimizer')
  checks.lookup(COMPUTE_DTYPES, config.model.compute_dtype, 'compute_dtype')
  train.check_integer(config.train.annealing_epochs, 'config.train.annealing_epochs', minimum=1)


# ---------------------------------------------------------------- train and evaluate
def train_and_evaluate(config, workdir) -> dict:
  """Trains `config.train.num_seeds` seeds together and returns the evaluation summary."""
  check(config)
  splits = data.load_from(config.data)
  if config.eval.noise_modalities is not None:
    checks.check_order(config.eval.noise_modalities, dict.fromkeys(splits.order), 'the data',
                       kind='modality')
  writer = train.MetricWriter(workdir)
  writer.start(config.to_dict(), resumable=RESUMABLE)

  result = train.fit(
      make_init(splits, config), functools.partial(train_step, config=config), splits.train,
      config=config.train, workdir=workdir, writer=writer,
      eval_step=functools.partial(eval_step, config=config), validation_data=splits.validation)

  # One noise draw per std, shared by all seeds (a paired comparison): arrays [seeds, stds].
  test = train.evaluate(functools.partial(noisy_eval_step, config=config),
                        result.selected_state(), splits.test, levels=config.eval.noise_stds,
                        key=jax.random.key(config.eval.seed))
  noise_on = (list(config.eval.noise_modalities) if config.eval.noise_modalities is not None
              else list(splits.order))
  results = {
      'dataset': config.data.name, 'protocol': splits.protocol, 'order': list(splits.order),
      'num_classes': splits.num_classes,
      'num_seeds': config.train.num_seeds, 'epochs': config.train.num_epochs,
      'start_epoch': result.start_epoch, 'noise_std': [float(s) for s in config.eval.noise_stds],
      'noise_modalities': noise_on, 'sizes': splits.sizes,
      'train_compile_s': result.compile_s, 'train_run_s': result.run_s,
      'test': {name: value.tolist() for name, value in test.items()}}
  if splits.sizes['validation']:
    validation = train.evaluate(functools.partial(eval_step, config=config),
                                result.selected_state(), splits.validation)
    results['validation_accuracy'] = validation['accuracy'].tolist()
  for level, std in enumerate(results['noise_std']):
    writer.write(config.train.num_epochs, {
        f'test/noise_{std:g}/{name}': test[name][:, level].mean()
        for name in ('accuracy', 'ece', 'uncertainty', 'uncertainty_auroc')})
  writer.close()
  train.write_results(workdir, table=make_table(results), results=results,
                      figures={'robustness.png': make_plot(results)})
  return results


# ---------------------------------------------------------------- report
def _noise_phrase(results) -> str:
  views = results['noise_modalities']
  if views == results['order']:
    return 'Gaussian noise on every view'
  return f'Gaussian noise on {", ".join(views)} only'


def make_table(results) -> str:
  """A markdown table of the test metrics per noise level, mean +- std over seeds."""
  test = {name: np.asarray(value) for name, value in results['test'].items()}
  lines = [f'TMC on {results["dataset"]} ({results["protocol"]} split), {results["num_seeds"]} '
           f'seeds, {results["epochs"]} epochs; test set ({results["sizes"]["test"]} samples), '
           f'{_noise_phrase(results)} (std in units of the scaled inputs); mean +- std over '
           'seeds.', '',
           '| noise std | accuracy % | ECE | mean uncertainty | uncertainty AUROC |',
           '|---|---|---|---|---|']
  for level, std in enumerate(results['noise_std']):
    lines.append(
        f'| {std:g} | {report.mean_std(100 * test["accuracy"][:, level])} | '
        f'{test["ece"][:, level].mean():.4f} | {test["uncertainty"][:, level].mean():.4f} | '
        f'{np.nanmean(test["uncertainty_auroc"][:, level]):.3f} |')
  return '\n'.join(lines)


def make_plot(results):
  """Accuracy and mean uncertainty against the noise std, side by side, +- std over seeds."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  stds = np.asarray(results['noise_std'])
  accuracy = 100 * np.asarray(results['test']['accuracy'])
  uncertainty = np.asarray(results['test']['uncertainty'])
  figure = Figure(figsize=(9, 3.6), dpi=120)  # no pyplot: no GUI backend, faster import
  accuracy_axis, uncertainty_axis = figure.subplots(1, 2)
  accuracy_axis.errorbar(stds, accuracy.mean(0), yerr=accuracy.std(0), marker='o', capsize=3,
                         label=f'TMC, mean ± std over {results["num_seeds"]} seeds')
  accuracy_axis.axhline(100 / results['num_classes'], color='gray', lw=0.8, ls=':',
                        label=f'chance ({results["num_classes"]} classes)')
  accuracy_axis.set_ylim(0, 100)
  accuracy_axis.set_ylabel('test accuracy (%)')
  uncertainty_axis.errorbar(stds, uncertainty.mean(0), yerr=uncertainty.std(0), marker='s',
                            capsize=3, color='tab:red',
                            label=f'mean ± std over {results["num_seeds"]} seeds')
  uncertainty_axis.set_ylim(0, 1)
  uncertainty_axis.set_ylabel('mean fused uncertainty u = K / S')
  for axis in (accuracy_axis, uncertainty_axis):
    axis.set_xlabel(f'noise std ({_noise_phrase(results).lower()})')
    axis.legend(fontsize=7)
  figure.suptitle(f'TMC on {results["dataset"]}', fontsize=10)
  figure.tight_layout()
  return figure


if __name__ == '__main__':
  train.run_experiment(train_and_evaluate)
