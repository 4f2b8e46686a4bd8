"""The harness's grid split over independent processes: units, shards, the merged report."""

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from lqmm import launch
from lqmm import train as kit
from lqmm.bench import harness
from lqmm.bench.configs import fusion as fusion_configs
from lqmm.bench.configs import imbalance as imbalance_configs
from tests.experiments import helpers

ROOT = pathlib.Path(__file__).resolve().parents[2]
METHODS = ('mean', 'tmc')


def _config(tfds_dir, manual_dir, **overrides):
  return helpers.smoke_config(fusion_configs.get_config, tfds_dir, str(manual_dir),
                              **{'methods': METHODS, **overrides})


def _run(config, workdir, log=lambda line: None):
  with jax.numpy_dtype_promotion('standard'):
    return harness.run(config, workdir, log=log)


def _scores(workdir):
  return json.loads((workdir / 'results.json').read_text())['methods']


def test_two_shards_merge_into_the_unsplit_table(tmp_path, tfds_dir, manual_dir):
  """2 independent processes, 2 methods x 2 seed blocks (4 units): shard 0 merges them into
  the table of the unsplit run (every number but the seconds)."""
  config = _config(tfds_dir, manual_dir)
  _run(config, tmp_path / 'one')
  command = [sys.executable, '-m', 'lqmm.launch', '--grid', '--processes=2', '--',
             sys.executable, '-m', 'lqmm.bench', '--config=lqmm/bench/configs/fusion.py:smoke',
             f'--config.data.data_dir={tfds_dir}', f'--config.data.manual_dir={manual_dir}',
             f'--config.methods={METHODS!r}', '--config.seed_blocks=2',
             f'--workdir={tmp_path / "two"}']
  finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            check=False)
  assert finished.returncode == 0, finished.stderr[-3000:]
  units = sorted(p.name for p in (tmp_path / 'two' / 'units').iterdir())
  assert units == ['mean_seeds_0-1', 'mean_seeds_1-2', 'tmc_seeds_0-1', 'tmc_seeds_1-2']
  one, two = _scores(tmp_path / 'one'), _scores(tmp_path / 'two')
  assert list(two) == list(METHODS)
  for method in METHODS:
    assert two[method]['best_epoch'] == one[method]['best_epoch']
    for condition, metrics in one[method]['scores'].items():
      for name, values in metrics.items():
        np.testing.assert_allclose(np.asarray(two[method]['scores'][condition][name], float),
                                   np.asarray(values, float), atol=1e-6,
                                   err_msg=f'{method} {condition} {name}')
  def without_seconds(text):   # the rows of the timing table differ in their seconds only
    rows = text.splitlines()
    start = rows.index('| method | train s (all seeds) | compile s | best epochs |')
    return rows[:start] + [row.split(' | ')[-1] for row in rows[start:]]
  assert without_seconds((tmp_path / 'two' / 'results.md').read_text()) == without_seconds(
      (tmp_path / 'one' / 'results.md').read_text())
  # A rerun in one process finds every unit finished and only merges again.
  lines = []
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv('LQMM_SHARD_INDEX', '0')
    patch.setenv('LQMM_SHARD_COUNT', '1')
    rerun = _run(_config(tfds_dir, manual_dir, seed_blocks=2), tmp_path / 'two', lines.append)
  assert sum('already done' in line for line in lines) == 4
  assert np.array_equal(rerun['tmc'].best_epoch, two['tmc']['best_epoch'])


def test_grid_units_cover_every_seed_once():
  assert harness.grid_units(['a', 'b'], 5, 2) == [('a', 0, 2), ('a', 2, 5), ('b', 0, 2),
                                                  ('b', 2, 5)]
  assert harness.grid_units(['a'], 2, 5) == [('a', 0, 1), ('a', 1, 2)]   # at most one per seed
  assert harness.grid_units(['a'], 3, 1) == [('a', 0, 3)]


@pytest.mark.parametrize('env, message', [
    ({'LQMM_SHARD_INDEX': '0'}, r'\$LQMM_SHARD_INDEX is set without \$LQMM_SHARD_COUNT'),
    ({'LQMM_SHARD_INDEX': '2', 'LQMM_SHARD_COUNT': '2'}, 'must be below'),
    ({'LQMM_SHARD_INDEX': '-1', 'LQMM_SHARD_COUNT': '2'}, 'must be an integer >= 0'),
])
def test_bad_shard_environment_raises(monkeypatch, env, message):
  for name in ('LQMM_SHARD_INDEX', 'LQMM_SHARD_COUNT'):
    monkeypatch.delenv(name, raising=False)
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  with pytest.raises(ValueError, match=message):
    kit.grid_shard()


def test_imbalance_suite_refuses_a_grid_split(tmp_path, tfds_dir, manual_dir):
  config = helpers.smoke_config(imbalance_configs.get_config, tfds_dir, str(manual_dir),
                                seed_blocks=2)
  with pytest.raises(ValueError, match='runs the fusion suite only'):
    _run(config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()
  with pytest.raises(ValueError, match='config.seed_blocks must be >= 1'):
    _run(_config(tfds_dir, manual_dir, seed_blocks=0), tmp_path / 'run')


def test_grid_launch_dry_runs(capsys):
  assert launch.main(['--grid', '--processes=2', '--dry_run', '--', 'python', '-m',
                      'lqmm.bench']) == 0
  lines = capsys.readouterr().out.splitlines()
  assert [('LQMM_SHARD_INDEX=%d' % i) in line and 'LQMM_SHARD_COUNT=2' in line
          and 'LQMM_COORDINATOR' not in line for i, line in enumerate(lines)] == [True, True]
  assert launch.main(['--grid', '--cluster=slurm', '--nodes=2', '--dry_run', '--', 'python',
                      '-m', 'lqmm.bench']) == 0
  assert 'LQMM_SHARD_INDEX=$SLURM_PROCID' in capsys.readouterr().out
  with pytest.raises(SystemExit):
    launch.main(['--grid', '--cluster=tpu', '--tpu=t', '--zone=z', '--', 'true'])
