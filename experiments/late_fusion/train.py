"""Late fusion under low-quality data (QMF, ETMC, ...): seeds trained together, scored per condition.

One file; fork it. The training loop itself is `lqmm.bench.harness.train_method` (vmap over
seeds of a scan over epochs, model selection on the validation split); runs take seconds, so
there is no checkpointing. Sections: data, method, train, evaluation, outputs.

    python -m experiments.late_fusion.train \
        --config=experiments/late_fusion/configs/default.py:qmf_rosmap \
        --config.manual_dir=../shared/data --workdir=$PWD/workdir/qmf_rosmap
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from lqmm import bench
from lqmm import data
from lqmm import train
from lqmm.bench import conditions
from lqmm.bench import harness
from lqmm.bench import report



def train_and_evaluate(config, workdir) -> dict:
  """Trains `config.num_seeds` seeds of `config.method` and scores them under every condition."""
  workdir = pathlib.Path(workdir).expanduser().absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  writer = train.MetricWriter(workdir, tensorboard=False)
  writer.write_config(config.to_dict())

  # ---------------------------------------------------------------- data
  settings = harness.Settings(
      config.dataset, config.protocol, epochs=config.epochs, batch_size=config.batch_size,
      hidden=tuple(config.hidden), learning_rate=config.learning_rate,
      weight_decay=config.weight_decay, eval_every=config.eval_every,
      validation_fraction=config.validation_fraction, test_fraction=config.test_fraction,
      scaling=config.scaling, split_seed=config.split_seed)
  splits = data.prepare(settings.dataset, settings.protocol, seed=settings.split_seed,
                        validation_fraction=settings.validation_fraction,
                        test_fraction=settings.test_fraction, scaling=settings.scaling,
                        manual_dir=config.manual_dir, data_dir=config.data_dir)

  # ---------------------------------------------------------------- method
  method_factory = bench.METHODS.get(config.method)
  if method_factory is None:
    raise KeyError(f'Unknown method {config.method!r}; valid names: '
                   f'{", ".join(sorted(bench.METHODS))}.')
  method = method_factory(**config.method_kwargs.to_dict())

  # ---------------------------------------------------------------- train
  graphdef, params, stats, best_epoch, compile_s, run_s = harness.train_method(
      method, splits, settings, num_seeds=config.num_seeds, seed=config.seed)

  # ---------------------------------------------------------------- evaluation
  grid = conditions.grid(tuple(config.noise_stds), tuple(config.missing_rates),
                         tuple(config.quality_stds))
  scores = harness.evaluate(method, graphdef, params, stats, splits, grid,
                            key=jax.random.key(config.seed + 10_000))
  validation = harness.evaluate(method, graphdef, params, stats,
                                dataclasses.replace(splits, test=splits.validation), grid[:1],
                                key=jax.random.key(0))

  # ---------------------------------------------------------------- outputs
  result = harness.MethodResult(scores, run_s, compile_s, best_epoch)
  results = {
      'method': config.method, 'dataset': config.dataset, 'num_seeds': config.num_seeds,
      'sizes': {split: int(len(getattr(splits, split)['label']))
                for split in ('train', 'validation', 'test')},
      'best_epoch': best_epoch.tolist(), 'train_run_s': run_s, 'train_compile_s': compile_s,
      'validation_accuracy': validation['clean']['accuracy'].tolist(),
      'test': {name: {metric: np.asarray(value).tolist() for metric, value in cell.items()}
               for name, cell in scores.items()},
  }
  writer.write(config.epochs, {f'test/{name}/accuracy': float(np.mean(cell['accuracy']))
                               for name, cell in scores.items()})
  writer.close()
  table = report.markdown(f'{config.method} on {config.dataset}', {config.method: result}, grid,
                          config.num_seeds)
  print(table)
  (workdir / 'results.md').write_text(table, encoding='utf-8')
  (workdir / 'results.json').write_text(json.dumps(results, indent=1) + '\n', encoding='utf-8')
  report.plot(f'{config.method} on {config.dataset}', {config.method: result}, grid,
              workdir / 'robustness.png')
  return results


def main(argv):
  del argv
  train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == '__main__':
  # Flags are defined here, not at import, so several experiments can be imported together.
  config_flags.DEFINE_config_file('config', None, 'Experiment configuration file.')
  flags.DEFINE_string('workdir', None, 'Folder for results.')
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main)
