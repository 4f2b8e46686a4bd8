"""The incomplete-Handwritten sweep: lqmm's one-program runs beside the original UIMC code.

Every run covers the whole sweep, eta in {0, 0.1, ..., 0.5} x 5 seeds (CPM-Nets' get_sn masks,
UIMC's seeded 80/20 split), on the CPU of this machine, one after the other, each as a fresh
process (start-up, data, compilation, training and evaluation included):

  1. lqmm's experiment (`experiments/uimc_handwritten`, default config): every method, each
     method's 30 conditions trained as one compiled program;
  2. the same with `uimc.faithful=True` (the original code's behaviour, fixed copies
     included), UIMC only, for the original's number of epochs;
  3. the original `UIMC/main_hand.py` protocol (torch), one process running the 30 conditions
     one by one on the same masks and splits (`benchmarks/_run_original_uimc.py`).

Wall and CPU seconds (the child processes' user + system time) are reported side by side.

Usage:
  .venv/bin/python benchmarks/uimc_speed.py --torch-python /path/to/torch-venv/bin/python \
      --uimc-dir /path/to/UIMC/UIMC --out benchmarks/results/uimc_speed.json
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
from benchmarks import summary as speed_summary  # pylint: disable=g-import-not-at-top,wrong-import-position
CONFIG = 'experiments/uimc_handwritten/configs/default.py'


def write_masks(path: pathlib.Path) -> dict:
  """The default config's masks and splits in the runner's layout."""
  from experiments.uimc_handwritten import train  # pylint: disable=g-import-not-at-top
  from experiments.uimc_handwritten.configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  conditions, specs = train.make_conditions(config, 2000, 6)
  rates, seeds = len(config.missing.rates), config.train.num_seeds
  np.savez(path, etas=np.asarray(config.missing.rates), seeds=np.asarray(
      [spec['seed'] for spec in specs[:seeds]]),
           mask=conditions['mask'].reshape(rates, seeds, 2000, 6),
           train_index=conditions['train_rows'][:seeds],
           test_index=conditions['test_rows'][:seeds])
  return {'rates': list(config.missing.rates), 'seeds': [spec['seed'] for spec in specs[:seeds]]}


def run_lqmm(workdir: pathlib.Path, *overrides: str) -> dict:
  command = [sys.executable, '-m', 'experiments.uimc_handwritten.train', f'--config={CONFIG}',
             f'--workdir={workdir}', *overrides]
  _, wall, cpu = speed_summary.timed_run(command, cwd=ROOT, capture_output=True, text=True)
  results = json.loads((workdir / 'results.json').read_text())
  return {'wall_s': wall, 'cpu_s': cpu, 'methods': {
      method: {'accuracy': outcome['test']['accuracy'],
               'compile_s': outcome['train_compile_s'], 'train_run_s': outcome['train_run_s']}
      for method, outcome in results['methods'].items()}}


def run_original(torch_python: str, uimc_dir: str, masks: pathlib.Path, out: pathlib.Path,
                 epochs: int, threads: int) -> dict:
  command = [torch_python, str(ROOT / 'benchmarks' / '_run_original_uimc.py'), '--uimc-dir',
             uimc_dir, '--masks', str(masks), '--epochs', str(epochs), '--threads',
             str(threads), '--out', str(out), '--quiet']
  _, wall, cpu = speed_summary.timed_run(command, cwd=ROOT)
  record = json.loads(out.read_text())
  return {'wall_s': wall, 'cpu_s': cpu, 'epochs': epochs, 'threads': threads,
          'runs': [{key: run[key] for key in ('eta', 'seed', 'accuracy')}
                   for run in record['runs']]}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--torch-python', required=True)
  parser.add_argument('--uimc-dir', required=True)
  parser.add_argument('--out', required=True, type=pathlib.Path)
  parser.add_argument('--original-epochs', type=int, default=3, help="main_hand.py's default")
  parser.add_argument('--threads', type=int, default=os.cpu_count(),
                      help='torch threads (JAX uses every core)')
  parser.add_argument('--skip', nargs='*', default=(), choices=('lqmm', 'faithful', 'original'))
  parser.add_argument('--lqmm-methods', nargs='*', default=None,
                      help="lqmm's methods in run 1 (default: the config's, every method)")
  parser.add_argument('--summary', default=None, help="the speed table's record (JSON)")
  args = parser.parse_args()
  load_before = os.getloadavg()[0]
  record = {'machine': {'platform': platform.platform(), 'processor': platform.processor(),
                        'cpus': os.cpu_count(), 'load_before': os.getloadavg()}}
  with tempfile.TemporaryDirectory() as scratch:
    scratch = pathlib.Path(scratch)
    record['protocol'] = write_masks(scratch / 'masks.npz')
    if 'lqmm' not in args.skip:
      overrides = ([f'--config.methods={tuple(args.lqmm_methods)!r}'] if args.lqmm_methods
                   else [])
      record['lqmm'] = run_lqmm(scratch / 'lqmm', *overrides)
      print('lqmm', json.dumps({'wall_s': record['lqmm']['wall_s'],
                                'cpu_s': record['lqmm']['cpu_s']}), flush=True)
    if 'faithful' not in args.skip:
      record['lqmm_faithful'] = run_lqmm(scratch / 'faithful', '--config.uimc.faithful=True',
                                         "--config.methods=('uimc',)",
                                         f'--config.train.num_epochs={args.original_epochs}')
      print('faithful', json.dumps({'wall_s': record['lqmm_faithful']['wall_s']}), flush=True)
    if 'original' not in args.skip:
      record['original'] = run_original(args.torch_python, args.uimc_dir, scratch / 'masks.npz',
                                        scratch / 'original.json', args.original_epochs,
                                        args.threads)
      print('original', json.dumps({'wall_s': record['original']['wall_s']}), flush=True)
  record['machine']['load_after'] = os.getloadavg()
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(record, indent=1) + '\n')
  print(summary(record))
  write_speed_summary(args.summary, record, args, load_before)


def write_speed_summary(path, record: dict, args, load_before: float) -> None:
  """The speed table's rows: lqmm's UIMC runs against the original, CPU-s for the sweep."""
  if path is None or 'original' not in record:
    if path is not None:
      raise SystemExit('--summary needs the original run (do not --skip original).')
    return
  original = record['original']
  label = (f'xiexiaoxie41/UIMC 2d89795, torch, {original["threads"]} thread(s), '
           f'{original["epochs"]} epochs')
  rows = []
  runs = [('lqmm', 'UIMC (paper form), 100 epochs')] if args.lqmm_methods == ['uimc'] else []
  runs.append(('lqmm_faithful', f'UIMC with the code\'s indexing, {args.original_epochs} '
               'epochs'))
  for key, what in runs:
    if key in record:
      rows.append(speed_summary.row(
          f'{what}, incomplete Handwritten, 30 conditions in one program', 'CPU-s per sweep',
          record[key]['cpu_s'], original=label, original_value=original['cpu_s'],
          notes='whole processes (start-up, data, compilation, training, evaluation)'))
  speed_summary.write(path, 'uimc_speed', rows, load_before=load_before)


def summary(record: dict) -> str:
  """Mean accuracy per eta and the times, as markdown."""
  rates = record['protocol']['rates']
  lines = ['| run | ' + ' | '.join(f'eta {rate:g}' for rate in rates) + ' | wall s | CPU s |',
           '|---|' + '---|' * (len(rates) + 2)]
  for name in ('lqmm', 'lqmm_faithful'):
    if name not in record:
      continue
    for method, outcome in record[name]['methods'].items():
      accuracy = np.asarray(outcome['accuracy'])  # [protocols = 1, rates, seeds]
      accuracy = 100 * accuracy.reshape(-1, *accuracy.shape[-2:])[0].mean(-1)
      lines.append(f'| {name} {method} | ' + ' | '.join(f'{a:.2f}' for a in accuracy) +
                   f' | {outcome["train_run_s"]:.1f} (training) | |')
    lines.append(f'| {name} (whole process) | ' + ' | ' * len(rates) +
                 f'{record[name]["wall_s"]:.1f} | {record[name]["cpu_s"]:.1f} |')
  if 'original' in record:
    runs = record['original']['runs']
    accuracy = [100 * np.mean([run['accuracy'] for run in runs if abs(run['eta'] - rate) < 1e-9])
                for rate in rates]
    lines.append(f'| original UIMC ({record["original"]["epochs"]} epochs) | ' +
                 ' | '.join(f'{a:.2f}' for a in accuracy) +
                 f' | {record["original"]["wall_s"]:.1f} | {record["original"]["cpu_s"]:.1f} |')
  return '\n'.join(lines)


if __name__ == '__main__':
  main()
