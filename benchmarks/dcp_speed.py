"""DCP on Handwritten: lqmm's `dcp` method beside the original PyTorch code, same inputs.

Both train DCP ('CV' mode, the `dcp` section of `experiments/imvc_handwritten/configs/
default.py`: DCP's Scene_15 settings) on the same conditions (published folds at p = 0.3 by
default) from the same preprocessed views (`train.dcp_prepare`): the original through
`benchmarks/_run_original_dcp.py` in the PyTorch interpreter, one condition after another;
lqmm through `train.run_dcp`, every condition a seed of one `lqmm.train.fit` call. Prints and
writes ACC and NMI per condition, wall and CPU seconds per condition, and their ratios. The load
average is printed first: run it on an idle machine.

Usage:
  .venv/bin/python benchmarks/dcp_speed.py --manual-dir ../shared/data \
      --dcp-dir <2022-TPAMI-DCP checkout> --torch-python /work/torch-venv/bin/python \
      --folds 2 --out benchmarks/results/dcp_speed.json
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import summary  # pylint: disable=g-import-not-at-top,wrong-import-position


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--manual-dir', required=True)
  parser.add_argument('--dcp-dir', required=True)
  parser.add_argument('--torch-python', required=True)
  parser.add_argument('--folds', type=int, default=2)
  parser.add_argument('--rate', type=float, default=0.3)
  parser.add_argument('--epochs', type=int, default=None, help='default: the config\'s')
  parser.add_argument('--threads', type=int, default=os.cpu_count(),
                      help='torch threads (JAX uses every core)')
  parser.add_argument('--skip-original', action='store_true')
  parser.add_argument('--out', default=None)
  parser.add_argument('--summary', default=None, help="the speed table's record (JSON)")
  args = parser.parse_args()
  print(f'load average before: {os.getloadavg()}; {os.cpu_count()} CPUs; '
        f'{platform.processor() or platform.machine()}', flush=True)

  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from experiments.imvc_handwritten import train  # pylint: disable=g-import-not-at-top
  from experiments.imvc_handwritten.configs import default  # pylint: disable=g-import-not-at-top

  config = default.get_config()
  config.unlock()
  config.data.manual_dir = args.manual_dir
  config.missing.rates = (args.rate,)
  config.missing.num_folds = args.folds
  config.methods = ('dcp',)
  if args.epochs is not None:
    config.dcp.start_prediction = config.dcp.start_prediction * args.epochs // config.dcp.epochs
    config.dcp.epochs = args.epochs
  config.lock()
  train.check(config)
  views, labels_true = train.load_views(config)
  masks, _ = train.make_masks(config, labels_true.shape[0])
  masks = jnp.asarray(masks.reshape(-1, *masks.shape[2:]))
  extra = jax.jit(jax.vmap(lambda m: train.dcp_prepare(m, views=views, config=config)))(masks)
  record = {'machine': platform.processor() or platform.machine(), 'cpus': os.cpu_count(),
            'load_before': os.getloadavg(), 'rate': args.rate, 'folds': args.folds,
            'epochs': config.dcp.epochs, 'start_prediction': config.dcp.start_prediction,
            'conditions': int(masks.shape[0])}

  if not args.skip_original:
    with tempfile.TemporaryDirectory() as scratch:
      scratch = pathlib.Path(scratch)
      np.savez(scratch / 'inputs.npz', labels=labels_true, mask=np.asarray(masks),
               **{f'x{v}': np.asarray(x) for v, x in enumerate(extra['inputs'])})
      command = [args.torch_python, str(ROOT / 'benchmarks' / '_run_original_dcp.py'),
                 '--dcp-dir', args.dcp_dir, '--inputs', str(scratch / 'inputs.npz'),
                 '--epochs', str(config.dcp.epochs),
                 '--start-prediction', str(config.dcp.start_prediction),
                 '--latent-dim', str(config.dcp.latent_dim),
                 '--learning-rate', str(config.dcp.learning_rate),
                 '--batch-size', str(config.dcp.batch_size), '--threads', str(args.threads),
                 '--out', str(scratch / 'original.json')]
      start = time.perf_counter()
      subprocess.run(command, check=True)
      record['original'] = json.loads((scratch / 'original.json').read_text())
      record['original']['process_wall_s'] = time.perf_counter() - start
    print('original:', json.dumps(record['original']['records']), flush=True)

  keys = jax.random.split(jax.random.key(config.seed), masks.shape[0])
  start, cpu = time.perf_counter(), time.process_time()
  labels, timing = train.run_dcp(views, masks, keys, config=config, num_clusters=10,
                                 workdir=None, writer=None)
  timing['process_wall_s'] = time.perf_counter() - start
  timing['process_cpu_s'] = time.process_time() - cpu
  scores = train.score(labels_true, labels)
  record['lqmm'] = {'timing': timing, 'acc': scores['acc'].tolist(),
                    'nmi_arithmetic': scores['nmi_arithmetic'].tolist()}
  conditions = record['conditions']
  # Training alone (the fit's steps, compilation apart), then everything the process spent.
  lqmm_train = timing['train_run_s'] / conditions
  lqmm_total = timing['process_wall_s'] / conditions
  lqmm_cpu = timing['process_cpu_s'] / conditions
  print(f'lqmm: ACC {scores["acc"].tolist()}, per condition: training {lqmm_train:.1f} s, '
        f'end to end {lqmm_total:.1f} s wall / {lqmm_cpu:.1f} CPU-s (compilation '
        f'{timing["compile_s"]:.1f} s in all, included)')
  if 'original' in record:
    runs = record['original']['records']
    original_train = float(np.mean([run['train_s'] for run in runs]))
    original_total = float(np.mean([run['train_s'] + run['kmeans_s'] for run in runs]))
    original_cpu = float(np.mean([run['train_cpu_s'] for run in runs]))
    record['ratio_train_wall'] = original_train / lqmm_train
    record['ratio_total_wall'] = original_total / lqmm_total
    record['ratio_total_cpu'] = original_cpu / lqmm_cpu
    print(f'original: ACC {[run["acc"] for run in runs]}, per condition: training '
          f'{original_train:.1f} s, with k-means {original_total:.1f} s wall, training '
          f'{original_cpu:.1f} CPU-s; lqmm is {record["ratio_train_wall"]:.2f}x (training, '
          f'wall), {record["ratio_total_wall"]:.2f}x (end to end, wall), '
          f'{record["ratio_total_cpu"]:.2f}x (CPU: original training only against lqmm\'s '
          'whole process)')
    summary.write(args.summary, 'dcp_speed', [summary.row(
        f'DCP, Handwritten p = {args.rate:g}, {conditions} condition(s), training',
        's per condition (wall)', lqmm_train,
        original=f'2022-TPAMI-DCP d7a4b47, torch {record["original"]["torch"]}, '
        f'{record["original"]["threads"]} thread(s)', original_value=original_train,
        accuracy=f'ACC lqmm {100 * np.mean(scores["acc"]):.2f} / original '
        f'{100 * np.mean([run["acc"] for run in runs]):.2f}',
        notes=f'end to end {record["ratio_total_wall"]:.2f}x (wall); the original\'s CPU '
        f'seconds cover its training only: {record["ratio_total_cpu"]:.2f}x against lqmm\'s '
        'whole process')], load_before=record['load_before'][0])
  elif args.summary:
    raise SystemExit('--summary needs the original run (leave out --skip-original).')
  record['load_after'] = os.getloadavg()
  if args.out:
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(record, indent=1))


if __name__ == '__main__':
  main()
