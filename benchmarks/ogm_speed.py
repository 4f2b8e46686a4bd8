"""Speed of OGM-GE training on AV digits: the original `train_epoch` against lqmm's harness.

Both train the same network (per modality two conv layers of 8 and 16 channels and a 64-unit
linear layer; a concatenation head) on the 2,400 training pairs of AV digits (log-mel audio
101 x 40, 28 x 28 images) with the original's optimizer (SGD, lr 1e-3, momentum 0.9, weight
decay 1e-4, batch 64) and OGM-GE rule (alpha 0.8, conv kernels only), on the CPU of the same
machine:

  1. the original `main.py::train_epoch` (torch, one seed; `_run_original_ogm.py`), with 1 and
     2 intra-op threads, timed per epoch;
  2. lqmm: `lqmm.bench.train_method` (the harness's path through `lqmm.train.fit`) with the
     `ogm_ge_faithful` method, 1 seed and `--seeds` seeds trained together under jax.vmap,
     timed per epoch after compilation. It also runs a validation pass at the end.

    .venv/bin/python benchmarks/ogm_speed.py --ogm-dir=/path/to/OGM-GE_CVPR2022 \
        --torch-python=/path/to/venv-torch/bin/python --manual-dir=../shared/data
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile

import jax
import numpy as np

from lqmm import bench
from lqmm import data
from lqmm.bench.configs import imbalance as imbalance_configs

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import summary  # pylint: disable=g-import-not-at-top,wrong-import-position


def run_original(torch_python, ogm_dir, data_path, epochs, threads) -> dict:
  command = [torch_python, str(ROOT / 'benchmarks' / '_run_original_ogm.py'), '--ogm-dir',
             ogm_dir, '--data', data_path, '--epochs', str(epochs)]
  env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
  output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
  record = json.loads(output.strip().splitlines()[-1])
  record['threads'] = threads
  return record


def run_lqmm(splits, epochs, num_seeds) -> dict:
  config = imbalance_configs.get_config('av_digits_conv')
  config.unlock()
  config.optim.name, config.optim.learning_rate, config.optim.weight_decay = 'sgd', 1e-3, 1e-4
  for key, value in (('num_epochs', epochs), ('eval_every', epochs), ('num_seeds', num_seeds),
                     ('epochs_per_call', epochs), ('checkpoint_every_epochs', epochs)):
    config.train[key] = value
  config.lock()
  method = bench.resolve('imbalance', 'ogm_ge_faithful')
  with jax.numpy_dtype_promotion('standard'):
    result = bench.train_method('imbalance', method, splits, config, progress=False)
  return {'seeds': num_seeds, 'compile_s': result.compile_s, 'run_s': result.run_s,
          'epoch_s': result.run_s / epochs}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--ogm-dir', required=True)
  parser.add_argument('--torch-python', required=True)
  parser.add_argument('--manual-dir', default='../shared/data')
  parser.add_argument('--epochs', type=int, default=3)
  parser.add_argument('--seeds', type=int, default=5)
  parser.add_argument('--summary', default=None, help="the speed table's record (JSON)")
  args = parser.parse_args()
  load_before = os.getloadavg()[0]

  splits = data.load('av_digits', seed=0, manual_dir=args.manual_dir)
  with tempfile.TemporaryDirectory() as folder:
    data_path = str(pathlib.Path(folder) / 'train.npz')
    np.savez(data_path, audio=splits.train['inputs']['audio'],
             image=splits.train['inputs']['image'], label=splits.train['label'])
    original = [run_original(args.torch_python, args.ogm_dir, data_path, args.epochs, threads)
                for threads in (1, 2)]
  ours = [run_lqmm(splits, args.epochs, seeds) for seeds in (1, args.seeds)]

  best = min(original, key=lambda record: np.median(record['epoch_s']))
  baseline = float(np.median(best['epoch_s']))
  print(f'machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; '
        f'jax {jax.__version__}, torch {best["torch"]}')
  print('| run | seconds per epoch | per seed | speed-up per seed vs original |')
  print('|---|---|---|---|')
  for record in original:
    epoch = float(np.median(record['epoch_s']))
    print(f'| original train_epoch, {record["threads"]} thread(s), 1 seed '
          f'({record["num_steps"]} steps) | {epoch:.2f} | {epoch:.2f} | '
          f'{baseline / epoch:.2f}x |')
  for record in ours:
    per_seed = record['epoch_s'] / record['seeds']
    print(f'| lqmm, {record["seeds"]} seed(s) under vmap (compile {record["compile_s"]:.1f} s) '
          f'| {record["epoch_s"]:.2f} | {per_seed:.2f} | {baseline / per_seed:.2f}x |')
  print(json.dumps({'original': original, 'lqmm': ours}))
  summary.write(args.summary, 'ogm_speed', [summary.row(
      f'OGM-GE AV digits, {record["seeds"]} seed(s) together, {args.epochs} epochs',
      'wall s per epoch per seed', record['epoch_s'] / record['seeds'],
      original=f'GeWu-Lab/OGM-GE_CVPR2022 train_epoch, torch {best["torch"]}, '
      f'{best["threads"]} thread(s), median epoch', original_value=baseline,
      notes='compilation apart; wall seconds (the original times its epochs inside its '
      'process)') for record in ours], load_before=load_before)


if __name__ == '__main__':
  main()
