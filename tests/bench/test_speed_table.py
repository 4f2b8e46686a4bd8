"""The speed table's driver (`python -m benchmarks`): records, skips, idle check, rendering.

The benchmarks themselves are not tests (they take minutes to hours and need the originals);
this checks the shared record format and the table built from it, with hand-written records.
"""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import speed_table
from benchmarks import summary


def _record(path, name, load, rows):
  summary.write(path / f'{name}.json', name, rows, load_before=load)


def test_row_computes_the_ratio_and_refuses_bad_values():
  row = summary.row('work', 'CPU-s per seed', 2.0, original='ref', original_value=10.0)
  assert row['ratio'] == 5.0 and set(row) == set(summary.FIELDS)
  assert summary.row('alone', 'ms per call', 3.0)['ratio'] is None
  for bad in (0.0, -1.0, float('nan'), float('inf')):
    with pytest.raises(ValueError, match='lqmm_value'):
      summary.row('work', 'unit', bad)
    with pytest.raises(ValueError, match='original_value'):
      summary.row('work', 'unit', 1.0, original_value=bad)


def test_write_is_atomic_and_checks_rows(tmp_path):
  with pytest.raises(ValueError, match='fields'):
    summary.write(tmp_path / 'x.json', 'x', [{'work': 'w'}])
  assert not list(tmp_path.iterdir())
  summary.write(None, 'x', [])                         # no --summary: nothing written
  _record(tmp_path, 'x', 0.1, [summary.row('w', 'u', 1.0)])
  assert [p.name for p in tmp_path.iterdir()] == ['x.json']
  record = summary.read(tmp_path / 'x.json')
  assert record['benchmark'] == 'x' and record['load_after'] == pytest.approx(
      os.getloadavg()[0], abs=5.0)
  (tmp_path / 'bad.json').write_text(json.dumps({'benchmark': 'bad', 'rows': [{'work': 1}]}))
  with pytest.raises(ValueError, match='lacks'):
    summary.read(tmp_path / 'bad.json')


def test_render_lists_rows_skips_failures_and_the_idle_check(tmp_path):
  _record(tmp_path, 'tmc_speed', 0.2, [summary.row(
      'TMC, 20 seeds', 'CPU-s per seed', 3.84, original='hanmenghan/TMC', original_value=51.0,
      accuracy='lqmm 97.79 / original 98.00')])
  _record(tmp_path, 'fusion_speed', 0.9, [summary.row(
      'product.fuse', 'ms per call', 59.7, limit='18% of copy bandwidth')])
  _record(tmp_path, 'stale', 0.0, [summary.row('old', 'u', 1.0)])   # not in this run
  state = {'limits': {'matmul_gflop_s': 300.0, 'copy_gb_s': 26.4, 'devices': '[CpuDevice]'},
           'runs': {'tmc_speed': {'status': 'ok'}, 'fusion_speed': {'status': 'ok'},
                    'ogm_speed': {'status': 'skipped', 'reason': 'no OGM-GE checkout'},
                    'dcp_speed': {'status': 'failed (exit 1)', 'log': 'dcp.log'}}}
  table = speed_table.render(tmp_path, state, max_load=0.5)
  assert '| tmc_speed | TMC, 20 seeds | hanmenghan/TMC | CPU-s per seed | 51 | 3.84 | 13.3x |' in (
      table)
  assert '| fusion_speed | product.fuse | - | ms per call | - | 59.7 | - | 18% of copy' in table
  assert 'old' not in table
  assert 'Idle: NO' in table and 'fusion_speed (0.90)' in table
  assert '- ogm_speed: no OGM-GE checkout' in table
  assert '- dcp_speed: failed (exit 1), log dcp.log' in table
  assert '300 GFLOP/s' in table and '26.4 GB/s' in table
  state['runs'].pop('fusion_speed')
  assert 'Idle: yes' in speed_table.render(tmp_path, state, max_load=0.5)


def test_missing_inputs_become_skips_with_reasons(tmp_path, capsys):
  code = speed_table.main(['--dry-run', '--summaries', str(tmp_path), '--originals',
                           str(tmp_path / 'none'), '--torch-python', str(tmp_path / 'python'),
                           '--manual-dir', str(tmp_path), '--only', 'tmc_speed', 'imvc_speed'])
  assert code == 0
  out = capsys.readouterr().out
  assert 'skip tmc_speed: the original code (TMC/TMC ICLR under --originals) not found' in out
  assert 'benchmarks/imvc_speed.py --manual-dir' in out and '--summary' in out
  with pytest.raises(SystemExit):
    speed_table.main(['--only', 'no_such_benchmark'])
  assert 'unknown benchmark' in capsys.readouterr().err


def test_timed_run_counts_the_child_process():
  done, wall, cpu = summary.timed_run(
      [sys.executable, '-c', 'print(sum(i * i for i in range(2 * 10**6)))'],
      capture_output=True, text=True)
  assert done.stdout.strip() == str(sum(i * i for i in range(2 * 10**6)))
  assert wall > 0 and 0 < cpu < 10 * wall + 1
  with pytest.raises(subprocess.CalledProcessError):
    summary.timed_run([sys.executable, '-c', 'raise SystemExit(3)'])


def test_a_rerun_replaces_its_benchmarks_and_is_listed(tmp_path):
  earlier = {'started': '2026-12-08 00:12 UTC', 'command': 'python -m benchmarks',
             'limits': {'matmul_gflop_s': 263.0, 'copy_gb_s': 24.9, 'devices': '[CpuDevice]'},
             'runs': {'fusion_speed': {'status': 'ok', 'load_before': 0.4},
                      'tmc_speed': {'status': 'ok', 'load_before': 0.3}}}
  rerun = {'started': '2026-12-08 04:00 UTC', 'command': 'python -m benchmarks --only '
           'fusion_speed', 'limits': {'matmul_gflop_s': 250.0, 'copy_gb_s': 25.1,
                                      'devices': '[CpuDevice]'},
           'runs': {'fusion_speed': {'status': 'ok', 'load_before': 0.45}}}
  merged = speed_table.merge_rerun(earlier, rerun)
  assert list(merged['runs']) == ['fusion_speed', 'tmc_speed']  # the table keeps its order
  assert merged['runs']['fusion_speed']['load_before'] == 0.45
  assert merged['started'] == earlier['started'] and earlier['runs']['fusion_speed'][
      'load_before'] == 0.4  # the earlier state is not modified
  _record(tmp_path, 'fusion_speed', 0.45, [summary.row('dempster_shafer.fuse', 'ms', 20.0)])
  _record(tmp_path, 'tmc_speed', 0.3, [summary.row('TMC', 'CPU-s', 3.9)])
  table = speed_table.render(tmp_path, merged, max_load=0.5)
  assert ('Rerun of fusion_speed: 2026-12-08 04:00 UTC, `python -m benchmarks --only '
          'fusion_speed` (matmul peak 250 GFLOP/s, copy 25.1 GB/s).') in table
  assert '| tmc_speed | TMC |' in table and '| fusion_speed | dempster_shafer.fuse |' in table
  again = speed_table.merge_rerun(merged, rerun)
  assert len(again['reruns']) == 2
