"""Multimodal Dynamics on ROSMAP: ten seeds trained together, scored at the last epoch.

One linear file; fork it. Sections: data, model, optimizer, step, checkpoint, loop, evaluation.

    python -m experiments.mmdynamics_rosmap.train \
        --config=experiments/mmdynamics_rosmap/configs/default.py \
        --config.data.manual_dir=../shared/data --workdir=$PWD/workdir/mmdynamics
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

from lqmm import data
from lqmm import metrics
from lqmm import nn
from lqmm import train
from lqmm.nn import dynamics


COMPUTE_DTYPES = {'float32': None, 'bfloat16': jnp.bfloat16}


def train_and_evaluate(config, workdir) -> dict:
  """Trains `config.num_seeds` seeds together and returns the evaluation summary."""
  workdir = pathlib.Path(workdir).expanduser().absolute()
  if config.checkpoint_every_epochs % config.epochs_per_call:
    raise ValueError('checkpoint_every_epochs must be a multiple of epochs_per_call; got '
                     f'{config.checkpoint_every_epochs} and {config.epochs_per_call}.')
  if config.compute_dtype not in COMPUTE_DTYPES:
    raise KeyError(f'Unknown compute_dtype {config.compute_dtype!r}; valid names: '
                   f'{", ".join(COMPUTE_DTYPES)}.')
  writer = train.MetricWriter(workdir)
  writer.check_same_config(config.to_dict(), resumable=('num_epochs',))
  writer.write_config(config.to_dict())

  # ---------------------------------------------------------------- data
  # The original's split (245 train / 106 test), min-max scaled with training statistics; all
  # training samples in every (full-batch) step, as in the original; no validation split.
  splits = data.prepare('rosmap', 'original', validation_fraction=0.0, scaling='minmax',
                        data_dir=config.data.data_dir, manual_dir=config.data.manual_dir,
                        allow_download=config.data.allow_download)
  order, num_classes = splits.order, splits.num_classes
  train_set = jax.tree.map(jnp.asarray, splits.train)

  # ---------------------------------------------------------------- model
  def make_model():
    return nn.MultimodalDynamics(splits.dims, order, num_classes, hidden=config.model.hidden,
                                 dropout=config.model.dropout,
                                 compute_dtype=COMPUTE_DTYPES[config.compute_dtype],
                                 rngs=nnx.Rngs(0))

  graphdef, abstract_params = nnx.split(nnx.eval_shape(make_model), nnx.Param)
  seed_keys = jax.vmap(jax.random.key)(config.seed + jnp.arange(config.num_seeds))

  # ---------------------------------------------------------------- optimizer
  # torch: Adam(lr, weight_decay) (L2 added to the gradient) and StepLR(step_size, gamma)
  # stepped once per epoch; one epoch is one full-batch step.
  schedule = optax.exponential_decay(config.learning_rate, config.lr_step_epochs, config.lr_gamma,
                                     staircase=True)
  optimizer = optax.chain(optax.add_decayed_weights(config.weight_decay), optax.adam(schedule))

  def init_states(keys):
    params = jax.vmap(lambda key: dynamics.xavier_normal_init(
        abstract_params, key=jax.random.fold_in(key, 0)))(keys)
    # Adam is elementwise and every seed steps together, so one optimizer state serves the
    # stacked parameters of all seeds (cheaper than a vmapped update; the same numbers).
    return {'params': params, 'opt_state': optimizer.init(params), 'epoch': jnp.int32(0)}

  # ---------------------------------------------------------------- step
  def objective(params, dropout_key):
    outputs = nnx.merge(graphdef, params)(train_set['inputs'], dropout_key=dropout_key)
    terms = dynamics.loss_terms(outputs, train_set['label'], detach_target=config.detach_target)
    return terms['total'], terms

  def train_epoch(states, _):
    dropout_keys = jax.vmap(lambda key: jax.random.fold_in(jax.random.fold_in(key, 1),
                                                           states['epoch']))(seed_keys)
    (loss, terms), grads = jax.vmap(jax.value_and_grad(objective, has_aux=True))(
        states['params'], dropout_keys)
    updates, opt_state = optimizer.update(grads, states['opt_state'], states['params'])
    params = optax.apply_updates(states['params'], updates)
    return ({'params': params, 'opt_state': opt_state, 'epoch': states['epoch'] + 1},
            {'loss': loss, 'fused_ce': terms['fused_ce']})

  @functools.partial(jax.jit, static_argnames='num_epochs')
  def train_epochs(states, num_epochs):
    states, logs = jax.lax.scan(train_epoch, states, None, length=num_epochs)
    return states, jax.tree.map(lambda x: x.T, logs)  # [seeds, epochs]

  # ---------------------------------------------------------------- checkpoint
  states = jax.jit(init_states)(seed_keys)
  checkpointer = train.Checkpointer(workdir)
  states = checkpointer.restore_or(states)
  start_epoch = int(np.asarray(states['epoch']))
  writer.rewind(start_epoch)

  # ---------------------------------------------------------------- loop
  progress = train.Progress(config.num_epochs, initial=start_epoch, unit='epoch')
  compiled = {}
  epoch = start_epoch
  try:
    while epoch < config.num_epochs:
      num_epochs = min(config.epochs_per_call, config.num_epochs - epoch)
      if num_epochs not in compiled:
        with progress.compiling():
          compiled[num_epochs] = train_epochs.lower(states, num_epochs=num_epochs).compile()
      states, logs = compiled[num_epochs](states)
      losses = np.asarray(logs['loss'])  # [seeds, epochs]
      train.check_finite({'train_loss': losses}, first_step=epoch + 1,
                         last_step=epoch + num_epochs)
      epoch += num_epochs
      writer.write(epoch, {'train/loss': losses[:, -1].mean(),
                           'train/fused_ce': np.asarray(logs['fused_ce'])[:, -1].mean()})
      progress.update(num_epochs, {'loss': losses[:, -1].mean()})
      if epoch % config.checkpoint_every_epochs == 0 or epoch == config.num_epochs:
        checkpointer.save(epoch, states)
  finally:
    progress.close()
    checkpointer.close()
  timing = progress.summary()

  # ---------------------------------------------------------------- evaluation
  # The original reports test metrics after its last epoch; so does this (no selection).
  @jax.jit
  def evaluate(params, batch):
    def one_seed(params):
      outputs = nnx.merge(graphdef, params)(batch['inputs'])
      probs = jax.nn.softmax(outputs.logits, axis=-1)
      labels = batch['label']
      return {'accuracy': metrics.accuracy(outputs.logits, labels),
              'auroc': metrics.auroc(probs[:, 1], labels == 1),
              'ece': metrics.expected_calibration_error(probs, labels),
              'modality_accuracy': jax.vmap(lambda z: metrics.accuracy(z, labels))(
                  outputs.modality_logits),
              'mean_confidence': jnp.mean(outputs.confidence, axis=1)}
    return jax.vmap(one_seed)(params)

  test = jax.tree.map(np.asarray, evaluate(states['params'], splits.test))
  results = {'num_seeds': config.num_seeds, 'epochs': config.num_epochs, 'order': list(order),
             'start_epoch': start_epoch, 'compute_dtype': config.compute_dtype,
             'detach_target': config.detach_target,
             'train_compile_s': timing['compile_s'], 'train_run_s': timing['run_s'],
             'test': {name: value.tolist() for name, value in test.items()}}
  accuracy = test['accuracy']
  writer.write(config.num_epochs, {'test/accuracy': accuracy.mean(), 'test/auroc':
                                   test['auroc'].mean()})
  writer.close()
  table = _table(results)
  print(table)
  (workdir / 'results.md').write_text(table + '\n', encoding='utf-8')
  (workdir / 'results.json').write_text(json.dumps(results, indent=1) + '\n', encoding='utf-8')
  return results


def _table(results) -> str:
  test = {name: np.asarray(value) for name, value in results['test'].items()}
  accuracy = 100 * test['accuracy']
  seeds = results['num_seeds']
  lines = [f'Multimodal Dynamics on ROSMAP, {seeds} seeds, {results["epochs"]} epochs, '
           f'{results["compute_dtype"]} matmuls; test set after the last epoch', '',
           '| metric | mean +- std over seeds |', '|---|---|',
           f'| accuracy % | {accuracy.mean():.2f} +- {accuracy.std(ddof=1 if seeds > 1 else 0):.2f} |',
           f'| AUROC | {test["auroc"].mean():.4f} +- {test["auroc"].std():.4f} |',
           f'| ECE | {test["ece"].mean():.4f} |']
  for index, name in enumerate(results['order']):
    lines.append(f'| {name} head accuracy % | {100 * test["modality_accuracy"][:, index].mean():.2f} |')
  lines.append(f'| train time (all seeds) s | {results["train_run_s"]:.1f} '
               f'(+ {results["train_compile_s"]:.1f} compile) |')
  return '\n'.join(lines)


def main(argv):
  del argv
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == '__main__':
  # Flags are defined here, not at import, so several experiments can be imported together.
  config_flags.DEFINE_config_file('config', None, 'Experiment configuration file.')
  flags.DEFINE_string('workdir', None, 'Folder for checkpoints, metrics and results.')
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main)
