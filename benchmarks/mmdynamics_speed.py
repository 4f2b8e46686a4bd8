"""Speed of Multimodal Dynamics training on ROSMAP: the original PyTorch code against lqmm's.

Both run the original protocol (feature gates, 1000-unit encoders, TCP confidence, 1,001
full-batch Adam epochs) on ROSMAP's 245/106 split, on the CPU of the same machine, one after the
other, each in a fresh process whose wall time includes start-up, data loading, compilation,
training and evaluation:

  1. the original `train_test.py` (torch, one seed per process) with 1 and with 2 intra-op
     threads (the faster is the baseline);
  2. lqmm's experiment with `--seeds` seeds trained together under jax.vmap, in float32 (the
     experiment's default) and with bfloat16 encoder matmuls.

    .venv/bin/python benchmarks/mmdynamics_speed.py --mmdyn-dir=/path/to/mmdynamics \
        --torch-python=/path/to/venv-torch/bin/python --manual-dir=../shared/data
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import summary  # pylint: disable=g-import-not-at-top,wrong-import-position

CONFIG = 'experiments/mmdynamics_rosmap/configs/default.py'


def run_original(torch_python, mmdyn_dir, data_dir, seed, threads) -> dict:
  command = [torch_python, str(ROOT / 'benchmarks' / '_run_original_mmdynamics.py'),
             '--mmdyn-dir', mmdyn_dir, '--data-dir', data_dir, '--seed', str(seed)]
  env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
  done, wall, cpu = summary.timed_run(command, capture_output=True, text=True, env=env)
  record = json.loads(done.stdout.strip().splitlines()[-1])
  return {'wall_s': wall, 'cpu_s': cpu, 'accuracy': record['accuracy'],
          'train_s': record['seconds'], 'threads': threads}


def run_lqmm(variant, num_seeds, manual_dir, data_dir) -> dict:
  with tempfile.TemporaryDirectory() as workdir:
    command = [sys.executable, '-m', 'experiments.mmdynamics_rosmap.train',
               f'--config={CONFIG}{":" + variant if variant else ""}', f'--workdir={workdir}',
               f'--config.train.num_seeds={num_seeds}', f'--config.data.manual_dir={manual_dir}',
               f'--config.data.data_dir={data_dir}']
    _, wall, cpu = summary.timed_run(command, capture_output=True, text=True, cwd=ROOT)
    results = json.loads((pathlib.Path(workdir) / 'results.json').read_text())
  return {'wall_s': wall, 'cpu_s': cpu, 'accuracies': results['test']['accuracy'],
          'compile_s': results['train_compile_s'], 'train_run_s': results['train_run_s']}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--mmdyn-dir', required=True, help='checkout of the original code')
  parser.add_argument('--torch-python', required=True, help='a Python with torch 2.13 (CPU)')
  parser.add_argument('--manual-dir', required=True, help='folder holding rosmap/')
  parser.add_argument('--seeds', type=int, default=10)
  parser.add_argument('--summary', default=None, help="the speed table's record (JSON)")
  args = parser.parse_args()
  load_before = os.getloadavg()[0]
  data_dir = str(pathlib.Path(args.manual_dir).absolute() / 'rosmap')
  print(f'machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs', flush=True)
  originals = [run_original(args.torch_python, args.mmdyn_dir, data_dir, 0, threads)
               for threads in (1, 2)]
  for record in originals:
    print(f'original, 1 seed, {record["threads"]} thread(s): {record["wall_s"]:.1f} s wall, '
          f'{record["cpu_s"]:.1f} CPU-s ({record["train_s"]:.1f} s train), test accuracy '
          f'{record["accuracy"]:.4f}', flush=True)
  baseline = min(record['wall_s'] for record in originals)
  cheapest = min(originals, key=lambda record: record['cpu_s'])
  rows = []
  with tempfile.TemporaryDirectory() as tfds_dir:
    for variant, label in (('', 'float32'), ('bfloat16', 'bfloat16 matmuls')):
      record = run_lqmm(variant, args.seeds, args.manual_dir, tfds_dir)
      accuracy = 100 * np.asarray(record['accuracies'])
      print(f'lqmm, {args.seeds} seeds under vmap, {label}: {record["wall_s"]:.1f} s wall '
            f'({record["train_run_s"]:.1f} s train + {record["compile_s"]:.1f} s compile), '
            f'test accuracy {accuracy.mean():.2f} +- {accuracy.std(ddof=1):.2f} %; '
            f'{args.seeds} seeds / original 1 seed time: {record["wall_s"] / baseline:.2f}; '
            f'per seed {baseline * args.seeds / record["wall_s"]:.1f}x faster; '
            f'{record["cpu_s"]:.1f} CPU-s', flush=True)
      rows.append(summary.row(
          f'Multimodal Dynamics ROSMAP, 1000 epochs, {args.seeds} seeds together, {label}',
          'CPU-s per seed', record['cpu_s'] / args.seeds,
          original=f'TencentAILabHealthcare/mmdynamics 06a2bb8 train_test.py, 1 seed, '
          f'{cheapest["threads"]} thread(s)', original_value=cheapest['cpu_s'],
          accuracy=f'lqmm {accuracy.mean():.2f} +- {accuracy.std(ddof=1):.2f} / original '
          f'{100 * cheapest["accuracy"]:.2f} (1 seed)',
          notes='whole processes (start-up, data, compilation, training, evaluation)'))
  summary.write(args.summary, 'mmdynamics_speed', rows, load_before=load_before)


if __name__ == '__main__':
  main()
