"""Speed of TMC training: the original PyTorch code against lqmm's, side by side in one run.

Both run TMC's protocol (6 softplus-linear evidence heads, Adam 3e-4, weight decay 1e-5,
batch 200, 500 epochs, KL annealing over 50 epochs) on TMC's 1,600/400 Handwritten split, on
the CPU of the same machine, one after the other. Every timing is a fresh process (start-up,
data loading, compilation, training and evaluation included), in wall seconds and in CPU
seconds (user + system of the process and its children, from getrusage):

  1. the original `TMC ICLR/train.py` (torch, one seed per process), `--torch-runs` times;
  2. lqmm's experiment with one seed, with an empty persistent compilation cache (cold), then
     again with the cache the first run filled (warm; what every later run of the same
     experiment gets);
  3. lqmm's experiment with `--seeds` seeds trained together under jax.vmap, cold and warm.

Per-seed speed-ups are the original's seconds per seed over lqmm's. The load average is
printed first: run it on an idle machine.

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

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import summary  # pylint: disable=g-import-not-at-top,wrong-import-position

CONFIG = 'experiments/tmc_handwritten/configs/default.py:tmc'


def run_original(torch_python: str, tmc_dir: str, seed: int, threads: int | None) -> dict:
  command = [torch_python, str(ROOT / 'benchmarks' / '_run_original_tmc.py'),
             '--tmc-dir', tmc_dir, '--seed', str(seed)]
  if threads is not None:
    command.append(f'--threads={threads}')
  done, wall, cpu = summary.timed_run(command, capture_output=True, text=True)
  record = json.loads(done.stdout.strip().splitlines()[-1])
  return {**record, 'wall_s': wall, 'cpu_s': cpu, 'accuracies': [record['accuracy']]}


def run_lqmm(num_seeds: int, manual_dir: str, data_dir: str, cache_dir: str) -> dict:
  with tempfile.TemporaryDirectory() as workdir:
    command = [sys.executable, '-m', 'experiments.tmc_handwritten.train', f'--config={CONFIG}',
               f'--workdir={workdir}', f'--config.train.num_seeds={num_seeds}',
               f'--config.data.manual_dir={manual_dir}', f'--config.data.data_dir={data_dir}',
               '--config.eval.noise_stds=(0.0,)']
    env = dict(os.environ, LQMM_COMPILATION_CACHE=cache_dir)
    _, wall, cpu = summary.timed_run(command, capture_output=True, text=True, cwd=ROOT,
                                     env=env)
    results = json.loads((pathlib.Path(workdir) / 'results.json').read_text())
  accuracies = [row[0] for row in results['test']['accuracy']]
  return {'wall_s': wall, 'cpu_s': cpu, 'accuracies': accuracies,
          'compile_s': results['train_compile_s'], 'train_run_s': results['train_run_s']}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--tmc-dir', required=True)
  parser.add_argument('--torch-python', required=True)
  parser.add_argument('--manual-dir', default=str(ROOT.parent / 'shared' / 'data'))
  parser.add_argument('--data-dir', default=None, help='TFDS data dir (default: a temp dir)')
  parser.add_argument('--torch-runs', type=int, default=1)
  parser.add_argument('--seeds', type=int, default=20)
  parser.add_argument('--torch-threads', type=int, default=1,
                      help='threads of the original (1: its faster setting on 2 cores)')
  parser.add_argument('--summary', default=None, help="the speed table's record (JSON)")
  args = parser.parse_args()
  data_dir = args.data_dir or tempfile.mkdtemp(prefix='lqmm_tfds_')

  # Build the TFDS data set once, outside the timed runs (a one-off cost like a download).
  subprocess.run([sys.executable, '-c', 'import lqmm.data as d; d.load("handwritten", "tmc", '
                  f'manual_dir={args.manual_dir!r}, data_dir={data_dir!r})'],
                 check=True, capture_output=True, cwd=ROOT)

  load_before = os.getloadavg()[0]
  print(f'load average before: {os.getloadavg()}', flush=True)
  rows = []
  originals = [run_original(args.torch_python, args.tmc_dir, seed, args.torch_threads)
               for seed in range(args.torch_runs)]
  original_wall = float(np.mean([run['wall_s'] for run in originals]))
  original_cpu = float(np.mean([run['cpu_s'] for run in originals]))
  rows.append(('original PyTorch TMC, 1 seed', original_wall, original_cpu, 1,
               [run['accuracy'] for run in originals]))
  runs = {}
  with tempfile.TemporaryDirectory() as cache_dir:
    for seeds in (1, args.seeds):
      for cache in ('cold', 'warm'):
        folder = str(pathlib.Path(cache_dir) / f'seeds_{seeds}')
        runs[seeds, cache] = run = run_lqmm(seeds, args.manual_dir, data_dir, folder)
        name = f'lqmm, {seeds} seed{"s under vmap" if seeds > 1 else ""}, {cache} cache'
        rows.append((name, run['wall_s'], run['cpu_s'], seeds, run['accuracies']))

  print(f'TMC on Handwritten (TMC split), 500 epochs, CPU: '
        f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch '
        f'{originals[0]["torch"]} ({originals[0]["threads"]} threads); load average after: '
        f'{os.getloadavg()}')
  print()
  print('| run | wall s | CPU s | CPU s per seed | speed-up per seed, wall / CPU | '
        'test accuracy % |')
  print('|---|---|---|---|---|---|')
  for name, wall, cpu, seeds, accuracies in rows:
    accuracy = 100 * np.asarray(accuracies)
    spread = f' +- {accuracy.std():.2f}' if accuracy.size > 1 else ''
    print(f'| {name} | {wall:.1f} | {cpu:.1f} | {cpu / seeds:.2f} | '
          f'{original_wall / (wall / seeds):.1f}x / {original_cpu / (cpu / seeds):.1f}x | '
          f'{accuracy.mean():.2f}{spread} |')
  print()
  for (seeds, cache), run in runs.items():
    print(f'lqmm {seeds} seed(s), {cache} cache: compile {run["compile_s"]:.1f} s, training '
          f'after compilation {run["train_run_s"]:.1f} s')
  original_accuracy = 100 * np.mean([run['accuracy'] for run in originals])
  ours_accuracy = 100 * np.mean(runs[args.seeds, 'warm']['accuracies'])
  print(f'accuracy gap (lqmm {args.seeds}-seed mean vs original mean): '
        f'{abs(ours_accuracy - original_accuracy):.2f} points')
  original_label = (f'hanmenghan/TMC 08d0ca4, torch {originals[0]["torch"]}, '
                    f'{originals[0]["threads"]} thread(s), {args.torch_runs} run(s)')
  table = []
  for seeds in (1, args.seeds):
    run = runs[seeds, 'warm']
    accuracy = 100 * np.asarray(run['accuracies'])
    spread = f' +- {accuracy.std():.2f}' if accuracy.size > 1 else ''
    table.append(summary.row(
        f'TMC Handwritten, 500 epochs, {seeds} seed(s) together, warm compilation cache',
        'CPU-s per seed', run['cpu_s'] / seeds, original=original_label,
        original_value=original_cpu, accuracy=f'lqmm {accuracy.mean():.2f}{spread} / original '
        f'{original_accuracy:.2f}', notes=f'{seeds} seed(s): cold cache '
        f'{runs[seeds, "cold"]["cpu_s"] / seeds:.2f} CPU-s per seed; whole processes '
        '(start-up, data, compilation, training, evaluation)'))
  summary.write(args.summary, 'tmc_speed', table, load_before=load_before)


if __name__ == '__main__':
  main()
