"""One speed table: every side-by-side benchmark that can run here, one markdown table of ratios.

`python -m benchmarks` (or `make bench`) runs, one after the other in fresh processes, each
benchmark of `REGISTRY` whose inputs exist on this machine (the PyTorch interpreter, the
original code, the shared data, Octave), each with `--summary` (see `benchmarks/summary.py`),
then writes one markdown table: per comparison the original's and lqmm's value in the same
unit, their ratio, how close lqmm comes to the machine's limit, and the accuracy on both sides.
Before the first benchmark it measures the machine's limits (float32 matmul peak and copy
bandwidth); before each benchmark it waits (at most `--settle-s`) for the 1-minute load average
to fall to `--max-load` and records it, and the table says whether the machine was idle (that
load at most `--max-load` before every benchmark). Benchmarks that cannot run here are listed
with the reason; failed ones with their log. `--render` rebuilds the table from the summaries
of an earlier run without running anything.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

from benchmarks import summary

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Skip(Exception):
  """A benchmark cannot run on this machine; the message says why."""


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """A benchmark script and how to call it from the driver's options.

  Attributes:
    name: the script's stem (`benchmarks/<name>.py`).
    what: one line for the table's list of benchmarks.
    arguments: options -> the script's arguments (without `--summary`); raises `Skip`.
  """
  name: str
  what: str
  arguments: Callable[[argparse.Namespace], list[str]]


def _need_file(path, what: str) -> str:
  if not path or not pathlib.Path(path).exists():
    raise Skip(f'{what} not found ({path or "not given"})')
  return str(path)


def _need_program(name: str, what: str) -> str:
  found = shutil.which(name)
  if found is None:
    raise Skip(f'{what} ({name}) is not installed')
  return found


def _original(options, *parts: str) -> str:
  return _need_file(pathlib.Path(options.originals, *parts) if options.originals else None,
                    f'the original code ({"/".join(parts)} under --originals)')


def _torch(options) -> str:
  return _need_file(options.torch_python, 'a PyTorch interpreter (--torch-python)')


def _data(options) -> str:
  return str(pathlib.Path(_need_file(options.manual_dir, 'the shared data (--manual-dir)'))
             .resolve())


def _skimage_python(options) -> str:
  python = _torch(options)
  found = subprocess.run([python, '-c', 'import skimage'], capture_output=True).returncode == 0
  if not found:
    raise Skip(f'{python} has no scikit-image (pip install scikit-image==0.26.*)')
  return python


def _fusion(options) -> list[str]:
  arguments = ['--torch-python', _torch(options), '--mirrors', str(options.mirrors)]
  missing = [name for name in ('hanmenghan+TMC', 'MaHuanAAA+MoNIG', 'QingyangZhang+QMF',
                               'GT-RIPL+UNO-IC', 'Jamie725+Multimodal-Object-Detection-via-'
                               'Probabilistic-Ensembling')
             if not (pathlib.Path(options.mirrors) / name / 'repo').exists()]
  if missing:   # the rules and the copy bound still run; the original columns stay empty
    print(f'fusion_speed: no mirror of {missing} under {options.mirrors}: originals skipped',
          flush=True)
    arguments.append('--skip-original')
  return arguments


#: Every side-by-side benchmark, in the order they run (`routing_speed.py` compares lqmm with
#: itself and `mmdynamics_gpu.py` needs a GPU: neither is in the table).
REGISTRY: tuple[Benchmark, ...] = (
    Benchmark('fusion_speed', 'fused rules against the original functions and a copy',
              _fusion),
    Benchmark('tmc_speed', 'TMC training (make run) against hanmenghan/TMC',
              lambda o: ['--tmc-dir', _original(o, 'TMC', 'TMC ICLR'),
                         '--torch-python', _torch(o), '--manual-dir', _data(o)]),
    Benchmark('mmdynamics_speed', 'Multimodal Dynamics training against the original',
              lambda o: ['--mmdyn-dir', _original(o, 'mmdynamics'), '--torch-python',
                         _torch(o), '--manual-dir', _data(o)]),
    Benchmark('ogm_speed', 'OGM-GE training epochs against the original train_epoch',
              lambda o: ['--ogm-dir', _original(o, 'OGM-GE_CVPR2022'), '--torch-python',
                         _torch(o), '--manual-dir', _data(o)]),
    Benchmark('uimc_speed', 'the incomplete-Handwritten UIMC sweep against the original',
              lambda o: ['--uimc-dir', _original(o, 'UIMC', 'UIMC'), '--torch-python',
                         _torch(o), '--lqmm-methods', 'uimc', '--out',
                         str(pathlib.Path(o.summaries) / 'uimc_speed_full.json')]),
    Benchmark('dcp_speed', 'DCP training against the original',
              lambda o: ['--dcp-dir', _original(o, '2022-TPAMI-DCP'), '--torch-python',
                         _torch(o), '--manual-dir', _data(o)]),
    Benchmark('imvc_speed', 'incomplete multi-view clustering sweeps against the NumPy '
              'transcriptions and scikit-learn',
              lambda o: ['--manual-dir', _data(o), '--methods', 'bsv,concat,daimc,fimvc_via']),
    Benchmark('daimc_original', 'DAIMC against the original MATLAB code under GNU Octave',
              lambda o: ['--manual-dir', _data(o), '--original-dir',
                         _original(o, 'TSCMA23-Survey_IMC'), '--octave',
                         _need_program('octave', 'GNU Octave with the statistics package')]),
    Benchmark('tv_speed', 'total-variation denoising against scikit-image',
              lambda o: ['--reference-python', _skimage_python(o)]),
)


# ------------------------------------------------------------------ machine limits
def measure_limits(repeats: int = 5) -> dict:
  """Float32 matmul peak (GFLOP/s, jitted 2048^3, best of `repeats`) and copy bandwidth
  (GB/s read + written, NumPy `copyto` of 256 MB into a preallocated array, best of
  `repeats`), in a fresh process so that this one does not hold JAX's threads."""
  code = f'''
import json, time
import numpy as np
import jax, jax.numpy as jnp

def best_seconds(call):
  times = []
  for _ in range({repeats}):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return min(times)

n = 2048
a = jnp.ones((n, n), jnp.float32)
f = jax.jit(lambda x: x @ x)
f(a).block_until_ready()
matmul = best_seconds(lambda: f(a).block_until_ready())
source = np.ones(64 * 2**20, np.float32)
target = np.empty_like(source)
np.copyto(target, source)
copy = best_seconds(lambda: np.copyto(target, source))
print(json.dumps({{'matmul_gflop_s': 2 * n**3 / matmul / 1e9,
                   'copy_gb_s': 2 * source.nbytes / copy / 1e9,
                   'devices': str(jax.devices())}}))
'''
  output = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True,
                          text=True, cwd=ROOT).stdout
  return json.loads(output.strip().splitlines()[-1])


# ------------------------------------------------------------------ running
def _settle(max_load: float, timeout_s: float) -> float:
  """Waits (at most `timeout_s`) for the 1-minute load average to fall to `max_load`: the
  previous benchmark's own load takes about a minute and a half to decay from 2 to 0.5.
  Returns the load average when it stops waiting."""
  deadline = time.monotonic() + timeout_s
  while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
    time.sleep(5)
  return os.getloadavg()[0]


def run_all(options) -> dict:
  """Runs the selected benchmarks; returns {'limits', 'runs': {name: status}}."""
  started = time.time()
  out = pathlib.Path(options.summaries)
  out.mkdir(parents=True, exist_ok=True)
  selected = [b for b in REGISTRY if (not options.only or b.name in options.only)
              and b.name not in options.skip]
  runs = {}
  limits = None
  if not options.dry_run:
    _settle(options.max_load, options.settle_s)
    limits = measure_limits()
  for bench in selected:
    try:
      arguments = bench.arguments(options)
    except Skip as reason:
      runs[bench.name] = {'status': 'skipped', 'reason': str(reason)}
      print(f'skip {bench.name}: {reason}', flush=True)
      continue
    command = [sys.executable, str(ROOT / 'benchmarks' / f'{bench.name}.py'), *arguments,
               '--summary', str(out / f'{bench.name}.json')]
    if options.dry_run:
      print(shlex.join(command))
      runs[bench.name] = {'status': 'dry run', 'command': command}
      continue
    (out / f'{bench.name}.json').unlink(missing_ok=True)
    load = _settle(options.max_load, options.settle_s)
    start = time.perf_counter()
    log = out / f'{bench.name}.log'
    print(f'run {bench.name} (load {load:.2f}); log: {log}', flush=True)
    with open(log, 'w') as stream:
      code = subprocess.run(command, cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT).returncode
    status = 'ok' if code == 0 else f'failed (exit {code})'
    if code == 0 and not (out / f'{bench.name}.json').is_file():
      status = 'failed (exit 0 but no summary written)'
    runs[bench.name] = {'status': status,
                        'load_before': load, 'wall_s': time.perf_counter() - start,
                        'log': str(log)}
  return {'limits': limits, 'runs': runs, 'machine': _cpu_model(),
          'started': time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(started)),
          'command': shlex.join(['python', '-m', 'benchmarks', *sys.argv[1:]])}


def merge_rerun(earlier: dict, rerun: dict) -> dict:
  """An `--only` run folded into the earlier full run's state.

  The rerun's benchmarks replace their earlier entries (in place, so the table keeps its
  order); the others stay, and the table's header lists each rerun with its date, command and
  machine limits, so that no row is passed off as part of a run it did not belong to.
  """
  merged = dict(earlier)
  merged['runs'] = {**earlier.get('runs', {}), **rerun['runs']}
  merged['reruns'] = [*earlier.get('reruns', []),
                      {key: rerun.get(key) for key in ('started', 'command', 'limits')}
                      | {'benchmarks': list(rerun['runs'])}]
  return merged


def _cpu_model() -> str:
  try:
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


# ------------------------------------------------------------------ the table
def _number(value) -> str:
  if value is None:
    return '-'
  return f'{value:.3g}' if value < 100 else f'{value:,.0f}'


def render(summaries: pathlib.Path, state: dict, *, max_load: float) -> str:
  """The markdown table of every summary in `summaries` (and the skipped and failed runs)."""
  limits, runs = state.get('limits'), state.get('runs', {})
  lines = ['# lqmm speed table', '',
           f'Run: {state.get("started", "?")}, `{state.get("command", "python -m benchmarks")}`.',
           *[f'Rerun of {", ".join(rerun["benchmarks"])}: {rerun.get("started", "?")}, '
             f'`{rerun.get("command", "?")}`' + (
                 f' (matmul peak {rerun["limits"]["matmul_gflop_s"]:.0f} GFLOP/s, copy '
                 f'{rerun["limits"]["copy_gb_s"]:.1f} GB/s)' if rerun.get('limits') else '')
             + '.' for rerun in state.get('reruns', [])],
           '', f'Machine: {state.get("machine") or _cpu_model()}, {os.cpu_count()} CPUs'
           + (f'; float32 matmul peak {limits["matmul_gflop_s"]:.0f} GFLOP/s, copy bandwidth '
              f'{limits["copy_gb_s"]:.1f} GB/s (read + written), JAX devices '
              f'{limits["devices"]}' if limits else '') + '.', '']
  records = [summary.read(summaries / f'{name}.json') for name, run in runs.items()
             if run['status'] == 'ok']
  # The load the driver saw right before starting each benchmark (the script's own reading
  # comes after its imports and set-up).
  for record in records:
    record['load_before'] = runs.get(record['benchmark'], {}).get('load_before',
                                                                  record.get('load_before'))
  loads = [record['load_before'] for record in records if record.get('load_before') is not None]
  busy = [f'{record["benchmark"]} ({record["load_before"]:.2f})' for record in records
          if record.get('load_before') is not None and record['load_before'] > max_load]
  if loads:
    lines += [(f'Idle: yes, 1-minute load average {min(loads):.2f}-{max(loads):.2f} before the '
               f'benchmarks (at most {max_load}).') if not busy else
              (f'Idle: NO. Load average above {max_load} before: {", ".join(busy)}; those '
               'rows are upper bounds for lqmm and the original alike.'), '']
  lines += ['Values: smaller is better; ratio = original / lqmm (above 1: lqmm is faster).', '',
            '| benchmark | work | original | unit | original | lqmm | ratio | limit | '
            'accuracy |', '|---|---|---|---|---|---|---|---|---|']
  for record in records:
    for entry in record['rows']:
      ratio = '-' if entry['ratio'] is None else f'{entry["ratio"]:.1f}x'
      lines.append(
          f'| {record["benchmark"]} | {entry["work"]} | {entry["original"] or "-"} | '
          f'{entry["unit"]} | {_number(entry["original_value"])} | '
          f'{_number(entry["lqmm_value"])} | {ratio} | {entry["limit"] or "-"} | '
          f'{entry["accuracy"] or "-"} |')
  notes = [(record['benchmark'], note) for record in records for note in record.get('notes', [])]
  notes += [(record['benchmark'], entry['notes']) for record in records
            for entry in record['rows'] if entry['notes']]
  notes = list(dict.fromkeys(notes))   # each note once
  if notes:
    lines += ['', 'Notes:', ''] + [f'- {name}: {note}' for name, note in notes]
  skipped = {name: run for name, run in runs.items() if run['status'] == 'skipped'}
  failed = {name: run for name, run in runs.items() if run['status'].startswith('failed')}
  if skipped:
    lines += ['', 'Skipped (cannot run here):', ''] + [
        f'- {name}: {run["reason"]}' for name, run in skipped.items()]
  if failed:
    lines += ['', 'Failed:', ''] + [f'- {name}: {run["status"]}, log {run["log"]}'
                                    for name, run in failed.items()]
  return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks', description=__doc__.split(
      '\n', 1)[0])
  parser.add_argument('--out', default=str(ROOT / 'benchmarks' / 'SPEED.md'),
                      help='the markdown table')
  parser.add_argument('--summaries', default=str(ROOT / 'workdir' / 'bench'),
                      help="the benchmarks' summaries and logs")
  parser.add_argument('--torch-python', default=os.environ.get('TORCH_PYTHON'),
                      help='a Python 3.11 interpreter with torch 2.13 (the originals)')
  parser.add_argument('--originals', default=os.environ.get('LQMM_ORIGINALS'),
                      help='folder with the original repositories checked out')
  parser.add_argument('--mirrors', default=os.environ.get('LQMM_MIRRORS', '/work/.mirror'),
                      help='bare mirrors for fusion_speed.py')
  parser.add_argument('--manual-dir', default=str(ROOT.parent / 'shared' / 'data'))
  parser.add_argument('--only', nargs='*', default=[], help='run only these benchmarks')
  parser.add_argument('--skip', nargs='*', default=[], help='leave these out')
  parser.add_argument('--max-load', type=float, default=0.5,
                      help='the 1-minute load average that still counts as idle')
  parser.add_argument('--settle-s', type=float, default=180,
                      help='before each benchmark, wait at most this long for the load')
  parser.add_argument('--dry-run', action='store_true', help='print the commands only')
  parser.add_argument('--render', action='store_true',
                      help='only rebuild the table from --summaries')
  options = parser.parse_args(argv)
  unknown = sorted(set(options.only + options.skip) - {b.name for b in REGISTRY})
  if unknown:
    parser.error(f'unknown benchmark(s) {unknown}; known: {[b.name for b in REGISTRY]}')
  summaries = pathlib.Path(options.summaries)
  state_path = summaries / 'state.json'
  if options.render:
    if not state_path.is_file():
      parser.error(f'--render needs an earlier run\'s {state_path}.')
    state = json.loads(state_path.read_text())
  else:
    state = run_all(options)
    if options.dry_run:
      return 0
    if options.only and state_path.is_file():
      state = merge_rerun(json.loads(state_path.read_text()), state)
    state_path.write_text(json.dumps(state, indent=1) + '\n')
  table = render(summaries, state, max_load=options.max_load)
  pathlib.Path(options.out).write_text(table)
  print(table)
  return 0 if not any(run['status'].startswith('failed') for run in state['runs'].values()) else 1
