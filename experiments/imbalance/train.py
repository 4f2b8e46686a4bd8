"""Balanced-learning methods on one imbalanced data set, seeds trained together: the report.

One file; fork it. The loop is `lqmm.bench.imbalance.train` (vmap over seeds of a scan over
epochs, model selection on the validation split); runs take seconds to minutes, so there is no
checkpointing. Sections: data, methods, outputs.

    python -m experiments.imbalance.train \
        --config=experiments/imbalance/configs/default.py:av_digits \
        --config.manual_dir=../shared/data --workdir=$PWD/workdir/imbalance_av_digits
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from lqmm import data
from lqmm import train
from lqmm.bench import imbalance

#: Data sets by name: a function `(config) -> splits` for each.
DATASETS = {
    'av_digits': lambda config: data.prepare_av_digits(
        seed=config.split_seed, manual_dir=config.manual_dir, data_dir=config.data_dir),
    **{name: (lambda config, views=views: data.prepare(
        'handwritten', 'stratified', seed=config.split_seed, scaling='standard',
        modalities=views, manual_dir=config.manual_dir, data_dir=config.data_dir))
       for name, views in data.HANDWRITTEN_IMBALANCED_PAIRS.items()},
}


def train_and_evaluate(config, workdir) -> dict:
  """Trains every method and every modality alone; writes the table, plots and JSON."""
  workdir = pathlib.Path(workdir).expanduser().absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  writer = train.MetricWriter(workdir, tensorboard=False)
  writer.write_config(config.to_dict())

  # ---------------------------------------------------------------- data
  load = DATASETS.get(config.dataset)
  if load is None:
    raise KeyError(f'Unknown dataset {config.dataset!r}; valid names: '
                   f'{", ".join(sorted(DATASETS))}.')
  splits = load(config)

  # ---------------------------------------------------------------- methods
  settings = imbalance.ImbalanceSettings(
      epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
      optimizer=config.optimizer, weight_decay=config.weight_decay, features=config.features,
      encoder=config.encoder, hidden=tuple(config.hidden), channels=tuple(config.channels),
      eval_every=config.eval_every,
      probe_steps=config.probe_steps, probe_l2=config.probe_l2)
  results = imbalance.run(config.methods, splits, settings, num_seeds=config.num_seeds,
                          seed=config.seed, method_kwargs=config.method_kwargs.to_dict())

  # ---------------------------------------------------------------- outputs
  rows = imbalance.summarize(results, splits.order)
  table = imbalance.markdown_table(rows, splits.order, results)
  print(table)
  for row in rows:
    writer.write(config.epochs, {f'test/{row["method"]}/fused': row['fused'][0]})
  writer.close()
  serialisable = {
      name: {'scores': {metric: np.asarray(value).tolist()
                        for metric, value in result['scores'].items()},
             'train_scores': np.asarray(result['train_scores']).tolist(),
             'best_epoch': np.asarray(result['best_epoch']).tolist(),
             'compile_s': result['compile_s'], 'run_s': result['run_s']}
      for name, result in results.items()}
  output = {'dataset': config.dataset, 'order': list(splits.order),
            'num_seeds': config.num_seeds,
            'sizes': {split: int(len(getattr(splits, split)['label']))
                      for split in ('train', 'validation', 'test')},
            'results': serialisable}
  (workdir / 'results.md').write_text(table + '\n', encoding='utf-8')
  (workdir / 'results.json').write_text(json.dumps(output) + '\n', encoding='utf-8')
  imbalance.plot(results, splits.order, workdir / 'imbalance.png')
  return output


def main(argv):
  del argv
  train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == '__main__':
  # Flags are defined here, not at import, so several experiments can be imported together.
  config_flags.DEFINE_config_file('config', None, 'Experiment configuration file.')
  flags.DEFINE_string('workdir', None, 'Folder for results.')
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main)
