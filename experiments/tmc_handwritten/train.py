"""TMC on Handwritten: several seeds trained together, evaluated clean and under Gaussian noise.

One linear file; fork it. Sections: data, model, optimizer, step, checkpoint, loop, evaluation.

    python -m experiments.tmc_handwritten.train \
        --config=experiments/tmc_handwritten/configs/default.py --workdir=$PWD/workdir/tmc
"""

from __future__ import annotations

import functools
import json
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

from lqmm import corrupt
from lqmm import data
from lqmm import metrics
from lqmm import nn
from lqmm import train
from lqmm.fusion import dempster_shafer
from lqmm.losses import evidential


LOSSES = {'ce': evidential.ce_loss, 'mse': evidential.mse_loss}
FUSIONS = {'dempster_shafer': dempster_shafer.fuse}
OPTIMIZERS = {'adam': optax.adam, 'sgd': optax.sgd}


def _lookup(table, name, what):
  if name not in table:
    raise KeyError(f'Unknown {what} {name!r}; valid names: {", ".join(sorted(table))}.')
  return table[name]


class StopRequested(Exception):
  """Raised by `stop_after_epochs`, to simulate a run killed right after a checkpoint."""


def train_and_evaluate(config, workdir) -> dict:
  """Trains `config.num_seeds` seeds together and returns the evaluation summary."""
  workdir = pathlib.Path(workdir).expanduser().absolute()
  if config.checkpoint_every_epochs % config.epochs_per_call:
    raise ValueError('checkpoint_every_epochs must be a multiple of epochs_per_call; got '
                     f'{config.checkpoint_every_epochs} and {config.epochs_per_call}.')
  loss_fn_per_sample = _lookup(LOSSES, config.loss, 'loss')
  fuse = _lookup(FUSIONS, config.fusion, 'fusion')
  make_optimizer = _lookup(OPTIMIZERS, config.optimizer, 'optimizer')
  train.maybe_initialize_distributed()
  mesh = train.make_mesh(config.num_devices)
  writer = train.MetricWriter(workdir)
  writer.check_same_config(config.to_dict(), _RESUMABLE_CHANGES)
  writer.write_config(config.to_dict())

  # ---------------------------------------------------------------- data
  splits = data.prepare(
      config.data.name, config.data.protocol, seed=config.data.split_seed,
      validation_fraction=config.data.validation_fraction,
      test_fraction=config.data.test_fraction, scaling=config.data.scaling,
      modalities=config.data.modalities, data_dir=config.data.data_dir,
      manual_dir=config.data.manual_dir, allow_download=config.data.allow_download)
  order, num_classes = splits.order, splits.num_classes
  train.check_divisible(config.batch_size, mesh, 'batch_size')
  train_set = jax.device_put(splits.train, train.replicated(mesh))
  num_train = len(splits.train['label'])
  steps_per_epoch = -(-num_train // config.batch_size)  # the last batch may be partial

  # ---------------------------------------------------------------- model
  def make_model(key):
    return nn.MultiViewEvidential(splits.dims, order, num_classes, hidden=config.model.hidden,
                                  evidence=config.model.evidence, rngs=nnx.Rngs(key))

  graphdef, abstract_params = nnx.split(nnx.eval_shape(lambda: make_model(jax.random.key(0))),
                                        nnx.Param)
  seed_keys = jax.vmap(jax.random.key)(config.seed + jnp.arange(config.num_seeds))
  init_keys = jax.vmap(lambda key: jax.random.fold_in(key, 0))(seed_keys)
  shuffle_keys = jax.vmap(lambda key: jax.random.fold_in(key, 1))(seed_keys)

  def forward(params, inputs, mask):
    """Per-view Dirichlet parameters [M, B, K] and their fusion [B, K]."""
    alpha = nnx.merge(graphdef, params)(inputs) + 1
    return alpha, fuse(alpha, data_mask(mask))

  def data_mask(mask):
    return jnp.stack([mask[view] for view in order])

  # ---------------------------------------------------------------- optimizer
  # torch's Adam(weight_decay=wd) adds wd * params to the gradient (L2), unlike AdamW.
  optimizer = optax.chain(optax.add_decayed_weights(config.weight_decay),
                          make_optimizer(config.learning_rate))

  def init_state(init_key):
    # torch.nn.Linear's initial distribution, drawn in one call (fast to compile on CPU).
    params = nn.torch_linear_init(abstract_params, key=init_key)
    return {'params': params, 'opt_state': optimizer.init(params), 'epoch': jnp.int32(0)}

  # ---------------------------------------------------------------- step
  def loss_fn(params, batch, weights, kl_weight):
    alpha, fused = forward(params, batch['inputs'], batch['mask'])
    # TMC's objective: the loss of every view plus the loss of the fusion, [M + 1, B].
    everything = jnp.concatenate([alpha, fused[None]])
    labels = jnp.broadcast_to(batch['label'], everything.shape[:-1])
    per_sample = loss_fn_per_sample(everything, labels, kl_weight=kl_weight).sum(axis=0)
    return jnp.sum(per_sample * weights) / jnp.sum(weights)

  batch_sharding = train.data_sharding(mesh)

  def train_epoch(state, shuffle_key):
    epoch = state['epoch']
    order_key = jax.random.fold_in(shuffle_key, epoch)
    permutation = jax.random.permutation(order_key, num_train)
    padding = steps_per_epoch * config.batch_size - num_train
    indices = jnp.concatenate([permutation, jnp.zeros(padding, permutation.dtype)])
    weights = (jnp.arange(indices.size) < num_train).astype(jnp.float32)
    annealing_step = epoch + 1 if config.one_based_epochs else epoch
    kl_weight = evidential.annealing_weight(annealing_step, config.annealing_epochs)

    def step(carry, chunk):
      params, opt_state = carry
      batch_indices, batch_weights = chunk
      batch = jax.tree.map(lambda x: x[batch_indices], train_set)
      batch, batch_weights = jax.lax.with_sharding_constraint((batch, batch_weights),
                                                              batch_sharding)
      loss, grads = jax.value_and_grad(loss_fn)(params, batch, batch_weights, kl_weight)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    chunks = (indices.reshape(steps_per_epoch, -1), weights.reshape(steps_per_epoch, -1))
    (params, opt_state), losses = jax.lax.scan(
        step, (state['params'], state['opt_state']), chunks)
    new_state = {'params': params, 'opt_state': opt_state, 'epoch': epoch + 1}
    return new_state, jnp.mean(losses)

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
      states, losses = compiled[num_epochs](states)
      losses = np.asarray(losses)  # [seeds, epochs]
      train.check_finite({'train_loss': losses}, first_step=epoch + 1,
                         last_step=epoch + num_epochs)
      epoch += num_epochs
      writer.write(epoch, {'train/loss': losses[:, -1].mean(),
                           'train/loss_std_over_seeds': losses[:, -1].std()})
      progress.update(num_epochs, {'loss': losses[:, -1].mean()})
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
  stds = jnp.asarray(config.eval.noise_stds, jnp.float32)
  noise_modalities = config.eval.noise_modalities
  eval_key = jax.random.key(config.eval.seed)

  def evaluate_one(params, batch, std, noise_key):
    inputs = corrupt.gaussian_noise(batch['inputs'], std, key=noise_key,
                                    modalities=noise_modalities)
    alpha, fused = forward(params, inputs, batch['mask'])
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

  @jax.jit
  def evaluate(params, batch):
    noise_keys = jax.vmap(lambda i: jax.random.fold_in(eval_key, i))(jnp.arange(stds.size))
    over_noise = jax.vmap(evaluate_one, in_axes=(None, None, 0, 0))
    return jax.vmap(over_noise, in_axes=(0, None, None, None))(params, batch, stds, noise_keys)

  test = jax.tree.map(np.asarray, evaluate(states['params'], splits.test))
  results = {'noise_std': [float(s) for s in config.eval.noise_stds], 'num_seeds':
             config.num_seeds, 'order': list(order), 'epochs': config.num_epochs,
             'start_epoch': start_epoch, 'dataset': config.data.name,
             'train_compile_s': timing['compile_s'], 'train_run_s': timing['run_s'],
             'test': {name: value.tolist() for name, value in test.items()}}
  if len(splits.validation['label']):
    validation = jax.tree.map(np.asarray, evaluate(states['params'], splits.validation))
    results['validation_accuracy'] = validation['accuracy'][:, 0].tolist()
  for level, std in enumerate(results['noise_std']):
    writer.write(config.num_epochs, {
        f'test/noise_{std:g}/{name}': test[name][:, level].mean()
        for name in ('accuracy', 'ece', 'uncertainty', 'uncertainty_auroc')})
  writer.close()

  table = _table(results)
  print(table)
  (workdir / 'results.md').write_text(table + '\n', encoding='utf-8')
  (workdir / 'results.json').write_text(json.dumps(results, indent=1) + '\n', encoding='utf-8')
  _plot(results, workdir / 'robustness.png')
  return results


# Settings a resumed run may change; any other difference from the checkpointed run's
# config.json is an error (the checkpoint would silently continue a different experiment).
_RESUMABLE_CHANGES = ('num_epochs', 'stop_after_epochs', 'eval', 'num_devices')


def _table(results) -> str:
  """A markdown table of the test metrics per noise level, mean +- std over seeds."""
  test = {name: np.asarray(value) for name, value in results['test'].items()}
  lines = [f'TMC on {results["dataset"]}, {results["num_seeds"]} seeds, {results["epochs"]} '
           'epochs; test set, '
           'Gaussian noise on every view (inputs scaled to [0, 1])', '',
           '| noise std | accuracy % (mean +- std) | ECE | mean uncertainty | '
           'uncertainty AUROC |', '|---|---|---|---|---|']
  for level, std in enumerate(results['noise_std']):
    accuracy = 100 * test['accuracy'][:, level]
    lines.append(
        f'| {std:g} | {accuracy.mean():.2f} +- {accuracy.std():.2f} | '
        f'{test["ece"][:, level].mean():.4f} | {test["uncertainty"][:, level].mean():.4f} | '
        f'{np.nanmean(test["uncertainty_auroc"][:, level]):.3f} |')
  return '\n'.join(lines)


def _plot(results, path: pathlib.Path) -> None:
  """Accuracy and mean uncertainty against the noise std, with the spread over seeds."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  stds = np.asarray(results['noise_std'])
  accuracy = 100 * np.asarray(results['test']['accuracy'])
  uncertainty = np.asarray(results['test']['uncertainty'])
  figure = Figure(figsize=(5.5, 3.6), dpi=120)  # no pyplot: no GUI backend, faster import
  axis = figure.subplots()
  axis.errorbar(stds, accuracy.mean(0), yerr=accuracy.std(0), marker='o', capsize=3,
                color='tab:blue', label='accuracy')
  axis.set_xlabel('Gaussian noise std on every view')
  axis.set_ylabel('test accuracy (%)', color='tab:blue')
  twin = axis.twinx()
  twin.errorbar(stds, uncertainty.mean(0), yerr=uncertainty.std(0), marker='s', capsize=3,
                color='tab:red', label='uncertainty')
  twin.set_ylabel('mean fused uncertainty u = K / S', color='tab:red')
  axis.set_title(f'TMC on {results["dataset"]} ({results["num_seeds"]} seeds)')
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
