"""Speed of TMC training: the original PyTorch code against lqmm's, side by side in one run.

Both run TMC's protocol (6 softplus-linear evidence heads, Adam 3e-4, weight decay 1e-5,
batch 200, 500 epochs, KL annealing over 50 epochs) on TMC's 1,600/400 Handwritten split, on
the CPU of the same machine, one after the other. Every timing is the wall time of a fresh
process (start-up, data loading, compilation, training and evaluation included):

  1. the original `TMC ICLR/train.py` (torch, one seed per process), `--torch-runs` times;
  2. lqmm's experiment with one seed;
  3. lqmm's experiment with `--seeds` seeds trained together under jax.vmap.

Usage (see benchmarks/README.md for preparing the two inputs):

  make bench TMC_DIR="/path/to/TMC/TMC ICLR" TORCH_PYTHON=/path/to/venv-torch/bin/python
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
CONFIG = 'experiments/tmc_handwritten/configs/default.py:tmc'


def run_original(torch_python: str, tmc_dir: str, seed: int) -> dict:
  command = [torch_python, str(ROOT / 'benchmarks' / '_run_original_tmc.py'),
             '--tmc-dir', tmc_dir, '--seed', str(seed)]
  start = time.perf_counter()
  output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
  wall = time.perf_counter() - start
  record = json.loads(output.strip().splitlines()[-1])
  return {**record, 'wall_s': wall, 'accuracies': [record['accuracy']]}


def run_lqmm(num_seeds: int, manual_dir: str, data_dir: str) -> dict:
  with tempfile.TemporaryDirectory() as workdir:
    command = [sys.executable, '-m', 'experiments.tmc_handwritten.train', f'--config={CONFIG}',
               f'--workdir={workdir}', f'--config.train.num_seeds={num_seeds}',
               f'--config.data.manual_dir={manual_dir}', f'--config.data.data_dir={data_dir}',
               '--config.eval.noise_stds=(0.0,)']
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    results = json.loads((pathlib.Path(workdir) / 'results.json').read_text())
  accuracies = [row[0] for row in results['test']['accuracy']]
  return {'wall_s': wall, 'accuracies': accuracies, 'compile_s': results['train_compile_s'],
          'train_run_s': results['train_run_s']}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--tmc-dir', required=True)
  parser.add_argument('--torch-python', required=True)
  parser.add_argument('--manual-dir', default=str(ROOT.parent / 'shared' / 'data'))
  parser.add_argument('--data-dir', default=None, help='TFDS data dir (default: a temp dir)')
  parser.add_argument('--torch-runs', type=int, default=1)
  parser.add_argument('--seeds', type=int, default=5)
  args = parser.parse_args()
  data_dir = args.data_dir or tempfile.mkdtemp(prefix='lqmm_tfds_')

  # Build the TFDS data set once, outside the timed runs (a one-off cost like a download).
  subprocess.run([sys.executable, '-c', 'import lqmm.data as d; d.load("handwritten", "tmc", '
                  f'manual_dir={args.manual_dir!r}, data_dir={data_dir!r})'],
                 check=True, capture_output=True, cwd=ROOT)

  rows = []
  originals = [run_original(args.torch_python, args.tmc_dir, seed)
               for seed in range(args.torch_runs)]
  original_s = float(np.mean([run['wall_s'] for run in originals]))
  rows.append(('original PyTorch TMC, 1 seed', original_s, 1,
               [run['accuracy'] for run in originals]))
  one = run_lqmm(1, args.manual_dir, data_dir)
  rows.append(('lqmm, 1 seed', one['wall_s'], 1, one['accuracies']))
  many = run_lqmm(args.seeds, args.manual_dir, data_dir)
  rows.append((f'lqmm, {args.seeds} seeds under vmap', many['wall_s'], args.seeds,
               many['accuracies']))

  print(f'TMC on Handwritten (TMC split), 500 epochs, CPU: {platform.processor() or platform.machine()}, '
        f'{os.cpu_count()} cores; torch {originals[0]["torch"]} ({originals[0]["threads"]} threads)')
  print()
  print('| run | wall s | s per seed | speed-up per seed vs original | test accuracy % |')
  print('|---|---|---|---|---|')
  for name, seconds, seeds, accuracies in rows:
    per_seed = seconds / seeds
    accuracy = 100 * np.asarray(accuracies)
    spread = f' +- {accuracy.std():.2f}' if accuracy.size > 1 else ''
    print(f'| {name} | {seconds:.1f} | {per_seed:.1f} | {original_s / per_seed:.1f}x | '
          f'{accuracy.mean():.2f}{spread} |')
  print()
  print(f'lqmm compile time: {one["compile_s"]:.1f} s (1 seed), {many["compile_s"]:.1f} s '
        f'({args.seeds} seeds); training after compilation: {one["train_run_s"]:.1f} s, '
        f'{many["train_run_s"]:.1f} s.')
  original_accuracy = 100 * np.mean([run['accuracy'] for run in originals])
  ours_accuracy = 100 * np.mean(many['accuracies'])
  gap = abs(ours_accuracy - original_accuracy)
  speedup = original_s / (many['wall_s'] / args.seeds)
  print(f'accuracy gap (lqmm {args.seeds}-seed mean vs original mean): {gap:.2f} points '
        f'({"within" if gap <= 0.5 else "NOT within"} 0.5); per-seed speed-up '
        f'{speedup:.1f}x ({"meets" if speedup >= 10 else "misses"} 10x), one-seed speed-up '
        f'{original_s / one["wall_s"]:.1f}x.')


if __name__ == '__main__':
  main()
