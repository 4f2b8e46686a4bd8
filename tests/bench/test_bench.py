"""The benchmark harness: conditions, aggregation, and a smoke run of every method end to end."""

import csv
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm import bench
from lqmm.bench import __main__ as bench_main
from lqmm.bench import conditions
from lqmm.bench import report


def _inputs():
  return {'a': jnp.zeros((50, 3)), 'b': jnp.zeros((50, 2)), 'c': jnp.zeros((50, 4))}


def test_conditions_degrade_what_they_say():
  order = ('a', 'b', 'c')
  key = jax.random.key(0)
  inputs, mask = conditions.apply(conditions.Condition('x', 'noise_one', 0.5), _inputs(), order,
                                  key=key)
  assert np.any(inputs['a'] != 0) and np.all(inputs['b'] == 0) and np.all(inputs['c'] == 0)
  assert np.all(mask)
  inputs, mask = conditions.apply(conditions.Condition('x', 'missing', 0.5), _inputs(), order,
                                  key=key)
  assert mask.shape == (3, 50) and np.all(mask.any(axis=0))
  assert int((~mask).sum()) == round(0.5 * 150)
  inputs, _ = conditions.apply(conditions.Condition('x', 'quality', 1.0), _inputs(), order,
                               key=key)
  noisy_rows = np.stack([np.any(inputs[name] != 0, axis=1) for name in order])
  np.testing.assert_array_equal(noisy_rows.sum(axis=0), 1)  # exactly one modality per sample
  # A fixed key gives the same degraded data (paired comparison across methods).
  again, _ = conditions.apply(conditions.Condition('x', 'quality', 1.0), _inputs(), order,
                              key=key)
  np.testing.assert_array_equal(inputs['a'], again['a'])
  with pytest.raises(KeyError, match='valid kinds'):
    conditions.apply(conditions.Condition('x', 'blur', 1.0), _inputs(), order, key=key)


def test_grid_names_are_unique():
  names = [condition.name for condition in conditions.grid()]
  assert len(names) == len(set(names)) and names[0] == 'clean'


def test_summary_interval():
  values = np.array([0.9, 0.92, 0.94, 0.91, 0.93])
  summary = report.summarize(values)
  assert math.isclose(summary['mean'], 0.92)
  assert math.isclose(summary['std'], np.std(values, ddof=1))
  assert math.isclose(summary['ci95'], 2.7764451 * np.std(values, ddof=1) / math.sqrt(5),
                      rel_tol=1e-6)
  assert math.isnan(report.summarize(np.array([0.5]))['ci95'])
  assert math.isnan(report.summarize(np.array([np.nan, np.nan]))['mean'])


def test_unknown_method_is_rejected():
  with pytest.raises(KeyError, match='valid names'):
    bench.run(bench.SETTINGS['handwritten'], ['nope'], conditions.grid())
  with pytest.raises(SystemExit):
    bench_main.main(['--methods', 'nope', '--out', '/tmp/unused'])


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory, manual_dir):
  out = tmp_path_factory.mktemp('bench')
  with jax.numpy_dtype_promotion('standard'):  # optax's Adam fails under strict promotion
    code = bench_main.main(['--smoke', '--out', str(out), '--manual-dir', manual_dir,
                            '--datasets', 'rosmap'])
  assert code == 0
  return out


def test_smoke_run_scores_every_cell(smoke_run):
  with open(smoke_run / 'results.csv', encoding='utf-8') as handle:
    rows = list(csv.DictReader(handle))
  cells = {(row['dataset'], row['method'], row['condition'], row['metric']) for row in rows}
  smoke_conditions = [c.name for c in conditions.grid((0.5,), (0.4,), (1.0,))]
  for dataset in ('rosmap',):  # Handwritten runs through the harness in the late_fusion test
    for method in bench.METHODS:
      for condition in smoke_conditions:
        for metric in report.METRICS:
          assert (dataset, method, condition, metric) in cells
  for row in rows:
    if row['metric'] == 'accuracy':
      assert 0.0 <= float(row['mean']) <= 1.0 and row['n'] == '2'
    if row['metric'] == 'covariance' and row['method'] in ('qmf', 'tmc', 'entropy', 'uno'):
      assert math.isfinite(float(row['mean']))
    if row['metric'] == 'covariance' and row['method'] in ('concat', 'mean', 'product'):
      assert row['mean'] == 'nan'  # no per-sample weights: reported as n/a
  assert (smoke_run / 'robustness_rosmap.png').stat().st_size > 10_000
  meta = json.loads((smoke_run / 'meta.json').read_text())
  assert meta['datasets']['rosmap']['sizes']['test'] == 106
  assert '| qmf |' in (smoke_run / 'results.md').read_text()


def test_model_selection_keeps_a_validated_epoch(manual_dir):
  settings = bench.Settings('rosmap', 'original', epochs=6, eval_every=2, batch_size=32,
                            validation_fraction=0.2)
  with jax.numpy_dtype_promotion('standard'):  # optax's Adam fails under strict promotion
    results, _ = bench.run(settings, ['mean'], conditions.grid((0.5,), (), ()), num_seeds=2,
                           manual_dir=manual_dir, log=lambda message: None)
  best = results['mean'].best_epoch
  assert set(best.tolist()) <= {2, 4, 6}
