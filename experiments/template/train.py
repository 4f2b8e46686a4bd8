"""The experiment to copy: late fusion of per-modality classifiers, scored with missing modalities.

Copy this folder, then write a model, a loss and a config. Sections: names, data, model, step,
evaluation, train_and_evaluate, report. The loop (seeds under vmap, selection on validation,
checkpoints and resume, metrics, NaN guard) is `lqmm.train.fit`; the data entry is
`lqmm.data.load` (or `lqmm.data.from_arrays` for your own arrays, see `DATA`).

    python -m experiments.template.train \
        --config=experiments/template/configs/default.py --workdir=$PWD/workdir/template
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
from lqmm import fusion
from lqmm import metrics
from lqmm import missing
from lqmm import nn
from lqmm import train
from lqmm.bench import report

# ---------------------------------------------------------------- names
OPTIMIZERS = {'adam': optax.adam, 'sgd': optax.sgd}
RESUMABLE = ('train.num_epochs', 'train.stop_after_epochs', 'train.num_devices', 'eval')


# ---------------------------------------------------------------- data
def sklearn_digits(config) -> data.Splits:
  """Your own arrays: scikit-learn's 8x8 digits as two views, the left and right image halves."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  images, labels = datasets.load_digits(return_X_y=True)
  images = images.reshape(-1, 8, 8)
  return data.from_arrays(
      {'left': images[:, :, :4].reshape(-1, 32), 'right': images[:, :, 4:].reshape(-1, 32)},
      labels, seed=config.data.split_seed, validation_fraction=config.data.validation_fraction,
      test_fraction=config.data.test_fraction, scaling=config.data.scaling,
      name='sklearn_digits')


#: Data sets that are not in `lqmm.data.DATASETS`: a name and a function of the config.
DATA = {'sklearn_digits': sklearn_digits}


def load_data(config) -> data.Splits:
  """`DATA[name](config)`, or `lqmm.data.load` for the registered data sets."""
  if config.data.name in DATA:
    return DATA[config.data.name](config)
  return data.load_from(config.data)


# ---------------------------------------------------------------- model
def make_init(splits: data.Splits, config):
  """`key -> TrainState`: an MLP encoder and a linear head per modality."""
  tx = optax.chain(optax.add_decayed_weights(config.optim.weight_decay),
                   OPTIMIZERS[config.optim.name](config.optim.learning_rate))
  return train.initializer(
      lambda: nn.LateFusionNet(splits.dims, splits.order, splits.num_classes,
                               hidden=config.model.hidden, rngs=nnx.Rngs(0)),
      tx, init_params=nn.torch_linear_init)


def predict(state: train.TrainState, params, inputs, mask):
  """Per-modality log-probabilities `[M, B, K]` and their product-of-experts fusion `[B, K]`."""
  model = state.model(params)
  logits, _ = model(inputs)
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  present = missing.stack_masks(mask, model.order)
  return log_probs, fusion.product.fuse(log_probs, present)


# ---------------------------------------------------------------- step
def train_step(state: train.TrainState, batch, key, *, config):
  """Every modality's cross-entropy plus the fused one's; modality dropout on the masks."""
  mask = batch['mask']
  if config.train.modality_dropout > 0:
    order = state.model().order
    present = missing.modality_dropout(missing.stack_masks(mask, order),
                                       rate=config.train.modality_dropout, key=key)
    mask = missing.as_dict(present, order)

  def loss_fn(params):
    log_probs, fused = predict(state, params, batch['inputs'], mask)
    labels = batch['label']
    unimodal = -jnp.take_along_axis(log_probs, jnp.broadcast_to(labels, log_probs.shape[:-1])
                                    [..., None], -1)[..., 0]            # [M, B]
    fused_loss = optax.softmax_cross_entropy_with_integer_labels(fused, labels)  # [B]
    per_sample = unimodal.sum(0) + fused_loss
    return jnp.sum(per_sample * batch['weight']) / jnp.sum(batch['weight'])

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads), {'loss': loss}


def eval_step(state: train.TrainState, batch):
  """Accuracy and NLL of the fused prediction (the selection metrics)."""
  _, fused = predict(state, state.params, batch['inputs'], batch['mask'])
  labels = batch['label']
  return {'accuracy': metrics.accuracy(fused, labels),
          'nll': jnp.mean(optax.softmax_cross_entropy_with_integer_labels(fused, labels))}


# ---------------------------------------------------------------- evaluation
def missing_eval_step(state: train.TrainState, batch, rate, key):
  """Fused accuracy with a share `rate` of the (modality, sample) entries missing."""
  order = state.model().order
  num = batch['label'].shape[0]
  mask = missing.as_dict(missing.random_mask(len(order), num, rate, key=key), order)
  return eval_step(state, {**batch, 'mask': mask})


def check(config) -> None:
  """Validates the config before anything is written."""
  train.check_config(config)
  checks.lookup(OPTIMIZERS, config.optim.name, 'optimizer')
  train.check_number(config.train.modality_dropout, 'config.train.modality_dropout',
                     minimum=0.0, maximum=0.99)
  train.check_numbers(config.eval.missing_rates, 'config.eval.missing_rates', minimum=0.0,
                      maximum=0.99)


# ---------------------------------------------------------------- train and evaluate
def train_and_evaluate(config, workdir) -> dict:
  """Trains `config.train.num_seeds` seeds together; returns the test summary."""
  check(config)
  splits = load_data(config)
  writer = train.MetricWriter(workdir)
  writer.start(config.to_dict(), resumable=RESUMABLE)
  result = train.fit(make_init(splits, config), functools.partial(train_step, config=config),
                     splits.train, config=config.train, workdir=workdir, writer=writer,
                     eval_step=eval_step, validation_data=splits.validation)
  # The same missing entries for every seed at each rate: arrays [seeds, rates].
  test = train.evaluate(missing_eval_step, result.selected_state(), splits.test,
                        levels=config.eval.missing_rates, key=jax.random.key(config.eval.seed))
  results = {'dataset': splits.name, 'order': list(splits.order),
             'num_classes': splits.num_classes, 'sizes': splits.sizes,
             'num_seeds': config.train.num_seeds, 'epochs': config.train.num_epochs,
             'start_epoch': result.start_epoch, 'best_epoch': result.best_epoch.tolist(),
             'missing_rates': [float(rate) for rate in config.eval.missing_rates],
             'train_compile_s': result.compile_s, 'train_run_s': result.run_s,
             'test': {name: value.tolist() for name, value in test.items()}}
  writer.write(config.train.num_epochs, {'test/clean_accuracy': test['accuracy'][:, 0].mean()})
  writer.close()
  train.write_results(workdir, table=make_table(results), results=results,
                      figures={'missing.png': make_plot(results)})
  return results


# ---------------------------------------------------------------- report
def make_table(results) -> str:
  accuracy = 100 * np.asarray(results['test']['accuracy'])
  lines = [f'Product-of-experts late fusion on {results["dataset"]} '
           f'({", ".join(results["order"])}), {results["num_seeds"]} seeds, '
           f'{results["epochs"]} epochs, selected on validation; test set '
           f'({results["sizes"]["test"]} samples), mean ± 95% CI over seeds.', '',
           '| missing rate | accuracy % |', '|---|---|']
  for index, rate in enumerate(results['missing_rates']):
    lines.append(f'| {rate:g} | {report.mean_interval(accuracy[:, index])} |')
  return '\n'.join(lines)


def make_plot(results):
  """Test accuracy against the missing rate (95% CI over seeds) with the chance line."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  accuracy = 100 * np.asarray(results['test']['accuracy'])
  intervals = [report.interval(accuracy[:, index]) for index in range(accuracy.shape[1])]
  figure = Figure(figsize=(5, 3.6), dpi=120)
  axis = figure.subplots()
  axis.errorbar(results['missing_rates'], [mean for mean, _ in intervals],
                yerr=np.nan_to_num([half for _, half in intervals]), marker='o', capsize=3,
                label=f'mean ± 95% CI over {results["num_seeds"]} seeds')
  axis.axhline(100 / results['num_classes'], color='gray', lw=0.8, ls=':', label='chance')
  axis.set_ylim(0, 100)
  axis.set_xlabel('share of (modality, sample) entries missing at test time')
  axis.set_ylabel('test accuracy (%)')
  axis.set_title(f'{results["dataset"]}: {", ".join(results["order"])}', fontsize=9)
  axis.legend(fontsize=7)
  figure.tight_layout()
  return figure


if __name__ == '__main__':
  train.run_experiment(train_and_evaluate)
