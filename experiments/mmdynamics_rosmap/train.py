"""Multimodal Dynamics on ROSMAP: ten seeds trained together, scored at the last epoch.

One linear file; fork it. Sections: names, model, step, evaluation, train_and_evaluate, report.
The loop is `lqmm.train.fit` (one full-batch step per epoch, as the original).

    python -m experiments.mmdynamics_rosmap.train \
        --config=experiments/mmdynamics_rosmap/configs/default.py \
        --config.data.manual_dir=../shared/data --workdir=$PWD/workdir/mmdynamics
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
from lqmm import nn
from lqmm import train
from lqmm.bench import report
from lqmm.nn import dynamics

# ---------------------------------------------------------------- names
COMPUTE_DTYPES = {'float32': None, 'bfloat16': jnp.bfloat16}
OPTIMIZERS = {'adam': optax.adam}  # the original's; StepLR gives its learning rate
RESUMABLE = ('train.num_epochs', 'train.stop_after_epochs', 'eval')


# ---------------------------------------------------------------- model
def make_init(splits: data.Splits, config):
  """`key -> TrainState`: Xavier-normal weights (the original's), Adam with L2 and StepLR."""
  # torch: Adam(lr, weight_decay) (L2 added to the gradient) and StepLR(step_size, gamma)
  # stepped once per epoch; one epoch is one full-batch step.
  schedule = optax.exponential_decay(config.optim.learning_rate, config.optim.lr_step_epochs,
                                     config.optim.lr_gamma, staircase=True)
  tx = optax.chain(optax.add_decayed_weights(config.optim.weight_decay),
                   OPTIMIZERS[config.optim.name](schedule))
  return train.initializer(
      lambda: nn.MultimodalDynamics(
          splits.dims, splits.order, splits.num_classes, hidden=config.model.hidden,
          dropout=config.model.dropout, compute_dtype=COMPUTE_DTYPES[config.model.compute_dtype],
          rngs=nnx.Rngs(0)),
      tx, init_params=dynamics.xavier_normal_init)


# ---------------------------------------------------------------- step
def train_step(state: train.TrainState, batch, key, *, detach_target: bool):
  """Every loss term of Multimodal Dynamics, weight 1 each; `key` draws the dropout masks."""

  def objective(params):
    outputs = state.model(params)(batch['inputs'], dropout_key=key)
    terms = dynamics.loss_terms(outputs, batch['label'], detach_target=detach_target)
    return terms['total'], terms

  (loss, terms), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  return state.apply_gradients(grads), {'loss': loss, 'fused_ce': terms['fused_ce']}


# ---------------------------------------------------------------- evaluation
def eval_step(state: train.TrainState, batch):
  """Test metrics of one seed (dropout off)."""
  outputs = state.model()(batch['inputs'])
  probs = jax.nn.softmax(outputs.logits, axis=-1)
  labels = batch['label']
  return {'accuracy': metrics.accuracy(outputs.logits, labels),
          'auroc': metrics.auroc(probs[:, 1], labels == 1),
          'ece': metrics.expected_calibration_error(probs, labels),
          'modality_accuracy': jax.vmap(lambda z: metrics.accuracy(z, labels))(
              outputs.modality_logits),
          'mean_confidence': jnp.mean(outputs.confidence, axis=1)}


def check(config) -> None:
  """Validates the config before anything is written."""
  train.check_config(config)
  checks.lookup(COMPUTE_DTYPES, config.model.compute_dtype, 'compute_dtype')
  checks.lookup(OPTIMIZERS, config.optim.name, 'optimizer')
  if config.train.batch_size is not None and not config.train.drop_remainder:
    raise ValueError('config.train.batch_size needs config.train.drop_remainder=True: the loss '
                     'terms average over the batch and do not read the weights of padded rows '
                     '(None trains on the whole split, as the original).')
  train.check_number(config.model.dropout, 'config.model.dropout', minimum=0.0, maximum=1.0)
  train.check_integer(config.optim.lr_step_epochs, 'config.optim.lr_step_epochs', minimum=1)
  train.check_number(config.optim.lr_gamma, 'config.optim.lr_gamma', minimum=0.0,
                     open_minimum=True)


# ---------------------------------------------------------------- train and evaluate
def train_and_evaluate(config, workdir) -> dict:
  """Trains `config.train.num_seeds` seeds together and returns the evaluation summary."""
  check(config)
  # The original's split (245 train / 106 test), min-max scaled with training statistics; all
  # training samples in every (full-batch) step, as in the original; no validation split.
  splits = data.load_from(config.data)
  writer = train.MetricWriter(workdir)
  writer.start(config.to_dict(), resumable=RESUMABLE)

  result = train.fit(make_init(splits, config),
                     functools.partial(train_step, detach_target=config.train.detach_target),
                     splits.train, config=config.train, workdir=workdir, writer=writer)

  # The original reports test metrics after its last epoch; so does this (no selection).
  test = train.evaluate(eval_step, result.selected_state(), splits.test)
  results = {'num_seeds': config.train.num_seeds, 'epochs': config.train.num_epochs,
             'order': list(splits.order), 'start_epoch': result.start_epoch,
             'compute_dtype': config.model.compute_dtype,
             'detach_target': config.train.detach_target,
             'train_compile_s': result.compile_s, 'train_run_s': result.run_s,
             'test': {name: value.tolist() for name, value in test.items()}}
  writer.write(config.train.num_epochs, {'test/accuracy': test['accuracy'].mean(),
                                         'test/auroc': test['auroc'].mean()})
  writer.close()
  train.write_results(workdir, table=make_table(results), results=results)
  return results


# ---------------------------------------------------------------- report
def make_table(results) -> str:
  test = {name: np.asarray(value) for name, value in results['test'].items()}
  seeds = results['num_seeds']
  lines = [f'Multimodal Dynamics on ROSMAP, {seeds} seeds, {results["epochs"]} epochs, '
           f'{results["compute_dtype"]} matmuls; test set after the last epoch; mean +- sample '
           'std over seeds', '', '| metric | value |', '|---|---|',
           f'| accuracy % | {report.mean_std(100 * test["accuracy"], 2, ddof=1)} |',
           f'| AUROC | {report.mean_std(test["auroc"], 4, ddof=1)} |',
           f'| ECE | {report.mean_std(test["ece"], 4, ddof=1)} |']
  for index, name in enumerate(results['order']):
    lines.append(f'| {name} head accuracy % | '
                 f'{report.mean_std(100 * test["modality_accuracy"][:, index], 2, ddof=1)} |')
  lines.append(f'| train time (all seeds) s | {results["train_run_s"]:.1f} '
               f'(+ {results["train_compile_s"]:.1f} compile) |')
  return '\n'.join(lines)


if __name__ == '__main__':
  train.run_experiment(train_and_evaluate)
