"""The harness: conditions, aggregation, the one front door and a smoke run of the fusion suite."""

import csv
import json
import math
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm import bench
from lqmm import train as kit
from lqmm.bench import conditions
from lqmm.bench import fusion_suite
from lqmm.bench import report
from lqmm.bench.configs import fusion as fusion_configs
from tests.experiments import helpers


def _inputs():
  return {'a': jnp.zeros((50, 3)), 'b': jnp.zeros((50, 2)), 'c': jnp.zeros((50, 4))}


def test_conditions_degrade_what_they_say():
  order = ('a', 'b', 'c')
  key = jax.random.key(0)
  inputs, mask = conditions.apply(conditions.Condition('x', 'noise_one', 0.5), _inputs(), order,
                                  key=key)
  assert np.any(inputs['a'] != 0) and np.all(inputs['b'] == 0) and np.all(inputs['c'] == 0)
  assert np.all(mask)
  inputs, _ = conditions.apply(conditions.Condition('x', 'noise_one', 0.5, 'c'), _inputs(),
                               order, key=key)
  assert np.all(inputs['a'] == 0) and np.any(inputs['c'] != 0)
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


def test_conflictive_condition_replaces_one_view_of_the_chosen_samples():
  order = ('a', 'b', 'c')
  inputs = {name: jnp.asarray(np.random.default_rng(i).normal(size=(50, 3)), jnp.float32)
            for i, name in enumerate(order)}
  labels = jnp.arange(50) % 5
  (condition,) = conditions.conflictive((0.4,), noise_std=0.5, noise_fraction=0.0)
  degraded, mask = conditions.apply(condition, inputs, order, key=jax.random.key(0),
                                    labels=labels, num_classes=5)
  changed = np.stack([np.any(np.asarray(degraded[name]) != np.asarray(inputs[name]), axis=1)
                      for name in order])
  assert np.all(mask) and changed.sum() == 20 and changed.sum(axis=0).max() == 1
  assert conditions.spec(condition)['conflict'] == 0.4
  with pytest.raises(ValueError, match='labels'):
    conditions.apply(condition, inputs, order, key=jax.random.key(0))


def test_noise_combinations_stack_one_noisy_copy_per_combination():
  order = ('a', 'b', 'c', 'd')
  inputs = {name: jnp.zeros((10, 2)) for name in order}
  condition = conditions.noise_combinations((0.5,))[0]
  assert condition.name == 'noise_combinations_0.5' and conditions.replicas(condition, 4) == 6
  degraded, mask = conditions.apply(condition, inputs, order, key=jax.random.key(0))
  assert mask.shape == (4, 60) and np.all(mask)
  changed = np.stack([np.any(np.asarray(degraded[name]) != 0, axis=1) for name in order])
  # Copy i has noise on the i-th pair of views, in itertools order, on every sample.
  for index, pair in enumerate([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]):
    block = changed[:, 10 * index:10 * (index + 1)]
    np.testing.assert_array_equal(block.all(axis=1), [m in pair for m in range(4)])
    np.testing.assert_array_equal(block.any(axis=1), [m in pair for m in range(4)])
  one = conditions.noise_combinations((1.0,), num_noisy=1)[0]
  assert conditions.replicas(one, 4) == 4 and conditions.spec(one)['num_noisy'] == 1
  _, mask = conditions.apply(one, inputs, order, key=jax.random.key(0))
  assert mask.shape == (4, 40)
  # MGP's levels: 0 and ten log-spaced stds from 0.01 to 10.
  assert len(conditions.MGP_NOISE_STDS) == 11 and conditions.MGP_NOISE_STDS[0] == 0.0
  np.testing.assert_allclose(conditions.MGP_NOISE_STDS[1::9], [0.01, 10.0])
  with pytest.raises(ValueError, match='num_noisy'):
    conditions.apply(conditions.noise_combinations((1.0,), num_noisy=5)[0], inputs, order,
                     key=jax.random.key(0))
  with pytest.raises(ValueError, match='num_noisy'):
    conditions.noise_combinations((1.0,), num_noisy=0)


def test_noise_samples_noise_view_subsets_of_a_share_of_the_samples():
  order = ('a', 'b', 'c')
  inputs = {name: jnp.zeros((400, 2)) for name in order}
  (condition,) = conditions.noise_samples((5.0,), sample_fraction=0.5)
  assert condition.name == 'noise_samples_5' and conditions.replicas(condition, 3) == 1
  degraded, mask = conditions.apply(condition, inputs, order, key=jax.random.key(0))
  changed = np.stack([np.any(np.asarray(degraded[name]) != 0, axis=1) for name in order])
  assert np.all(mask) and changed.any(axis=0).sum() <= 200 and changed.sum(axis=0).max() <= 2
  assert conditions.spec(condition) == {'protocol': None, 'rate': 0.0, 'meaning': None,
                                        'min_views': None, 'noise': 5.0, 'noise_fraction': 0.5}
  assert [c.name for c in conditions.noise_samples()] == [
      'noise_samples_0', 'noise_samples_1', 'noise_samples_5', 'noise_samples_10']


def test_noise_separation_of_clean_and_noisy_samples():
  uncertainty = jnp.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.05])
  noisy = jnp.array([False, False, False, True, True, False])
  out = fusion_suite._noise_separation(uncertainty, noisy)  # pylint: disable=protected-access
  np.testing.assert_allclose(out['uncertainty_clean'], 0.1625, rtol=1e-6)
  np.testing.assert_allclose(out['uncertainty_noisy'], 0.85, rtol=1e-6)
  np.testing.assert_allclose(out['noise_auroc'], 1.0)
  for group in ('clean', 'noisy'):
    density = np.asarray(out[f'uncertainty_density_{group}'])
    assert density.shape == (len(fusion_suite.DENSITY_EDGES) - 1,)
    np.testing.assert_allclose(density.sum(), 1.0, rtol=1e-6)
  edges = fusion_suite.DENSITY_EDGES
  assert out['uncertainty_density_noisy'][np.searchsorted(edges, 0.9, 'right') - 1] == 0.5
  # Every sample clean: the noisy group is empty (NaN, never a plausible number).
  empty = fusion_suite._noise_separation(uncertainty, jnp.zeros(6, bool))  # pylint: disable=protected-access
  assert np.isnan(empty['uncertainty_noisy']) and np.isnan(empty['noise_auroc'])
  assert np.all(np.isnan(empty['uncertainty_density_noisy']))
  # u = 1 falls in the last bin.
  top = fusion_suite._noise_separation(jnp.array([1.0, 0.0]), jnp.array([True, False]))  # pylint: disable=protected-access
  assert top['uncertainty_density_noisy'][-1] == 1.0


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


def _config(variant='smoke', **overrides):
  return helpers.config_with(fusion_configs.get_config, variant, **overrides)


def test_unknown_names_are_rejected(tmp_path):
  with pytest.raises(KeyError, match='valid names: concat, entropy, etmc'):
    bench.run(_config(methods=('nope',)), tmp_path / 'a')
  with pytest.raises(KeyError, match='Unknown suite'):
    bench.resolve('robust', 'qmf')
  with pytest.raises(ValueError, match='config.train.select must name'):
    bench.run(_config(**{'train.select': ()}), tmp_path / 'b')
  assert not (tmp_path / 'a').exists() and not (tmp_path / 'b').exists()
  with pytest.raises(ValueError, match='config.eval.noise_sample_fraction'):
    bench.run(_config(**{'eval.noise_sample_fraction': 1.5}), tmp_path / 'c')
  with pytest.raises(ValueError, match='config.eval.noise_combination_stds'):
    bench.run(_config(**{'eval.noise_combination_stds': (-1.0,)}), tmp_path / 'd')
  assert not (tmp_path / 'c').exists() and not (tmp_path / 'd').exists()


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory, manual_dir, tfds_dir):
  out = tmp_path_factory.mktemp('bench')
  config = _config(**{'data.manual_dir': manual_dir, 'data.data_dir': tfds_dir})
  with jax.numpy_dtype_promotion('standard'):  # optax's Adam fails under strict promotion
    results = bench.run(config, out, log=lambda line: None)
  return out, config, results


def test_smoke_run_scores_every_cell(smoke_run):
  out, config, results = smoke_run
  with open(out / 'results.csv', encoding='utf-8') as handle:
    rows = list(csv.DictReader(handle))
  cells = {(row['method'], row['condition'], row['metric']) for row in rows}
  smoke_conditions = [c.name for c in conditions.grid((0.5,), (0.4,), (1.0,))]
  smoke_conditions += [c.name for c in conditions.conflictive((0.4,))]
  for method in fusion_suite.METHODS:
    for condition in smoke_conditions:
      for metric in report.METRICS:
        assert (method, condition, metric) in cells
  for row in rows:
    if row['metric'] == 'accuracy':
      assert 0.0 <= float(row['mean']) <= 1.0 and row['n'] == '2'
    if row['metric'] == 'covariance' and row['method'] in ('qmf', 'tmc', 'entropy', 'uno',
                                                           'gated'):
      assert math.isfinite(float(row['mean']))
    if row['metric'] == 'covariance' and row['method'] in ('concat', 'mean', 'product'):
      assert row['mean'] == 'nan'  # no per-sample weights: reported as n/a
  assert (out / 'robustness.png').stat().st_size > 10_000
  saved = json.loads((out / 'results.json').read_text())
  assert saved['sizes']['test'] == 106
  table = (out / 'results.md').read_text()
  assert '| qmf |' in table and 'noise on `mrna` only' in table
  # The papers' noise protocols: their own table, the uncertainty densities, and the noisy
  # samples' uncertainty next to the clean ones'.
  assert "the papers' noise protocols" in table and 'TMC/MGP: 1 of 3 views noisy' in table
  assert (out / 'uncertainty.png').stat().st_size > 10_000
  scores = saved['methods']['tmc']['scores']
  assert len(scores['noise_samples_1']['uncertainty_density_noisy'][0]) == 40
  assert math.isfinite(np.mean(scores['noise_samples_1']['noise_auroc']))
  assert all(math.isnan(value) for value in scores['noise_combinations_0']['noise_auroc'])
  assert all(math.isfinite(value) for value in scores['noise_combinations_1']['uncertainty_noisy'])
  # Each seed keeps the evaluation with the lexicographically best (accuracy, -nll) on
  # validation, the first on a tie; evaluation i is epoch eval_every * (i + 1).
  assert config.train.select == ('accuracy', '-nll')
  every = config.train.eval_every
  for name, result in results.items():
    accuracy = result.history['validation/accuracy']
    nll = result.history['validation/nll']
    assert accuracy.shape == (2, config.train.num_epochs // every), name
    expected = [every * (1 + max(range(accuracy.shape[1]),
                                 key=lambda i, s=seed: (accuracy[s, i], -nll[s, i])))
                for seed in range(accuracy.shape[0])]
    assert result.best_epoch.tolist() == expected, name
  # Every method logged its training.
  assert helpers.metric_steps(out, 'qmf/train/loss') == [4]
  assert helpers.metric_steps(out, 'qmf/validation/accuracy') == [4]


def test_smoke_run_reports_missing_protocols_with_their_spec(smoke_run):
  out, config, _ = smoke_run
  with open(out / 'results.csv', encoding='utf-8') as handle:
    rows = [row for row in csv.DictReader(handle) if row['metric'] == 'accuracy']
  protocol_rows = [row for row in rows if row['condition'].startswith(('entries', 'samples'))]
  assert {row['condition'] for row in protocol_rows} == {
      'entries_0.3', 'samples_0.3', 'entries_0.3+noise_0.5', 'samples_0.3+noise_0.5'}
  for row in protocol_rows:  # the spec travels with every row
    assert row['missing_protocol'] == row['condition'].split('_')[0]
    assert row['missing_meaning'] == row['missing_protocol']
    assert row['missing_rate'] == '0.3' and row['missing_min_views'] == '1'
    assert row['noise_std'] == ('0.5' if '+noise' in row['condition'] else '0.0')
  clean = [row for row in rows if row['condition'] == 'clean']
  assert clean and all(row['missing_protocol'] == '' for row in clean)
  table = (out / 'results.md').read_text()
  assert 'under missing-data protocols' in table
  assert '| samples | share of incomplete samples | 0.3 | 0 |' in table
  assert set(config.eval.protocols) == {'entries', 'samples'}


def test_protocol_conditions_draw_their_protocol():
  order = ('a', 'b', 'c')
  inputs = {'a': jnp.zeros((600, 3)), 'b': jnp.zeros((600, 2)), 'c': jnp.zeros((600, 4))}
  grid = conditions.protocol_grid(('entries', 'per_view', 'samples', 'completer'), (0.3,),
                                  (0.0, 0.5))
  assert [c.name for c in grid[:2]] == ['entries_0.3', 'entries_0.3+noise_0.5']
  by_name = {c.name: c for c in grid}
  key = jax.random.key(0)
  _, mask = conditions.apply(by_name['entries_0.3'], inputs, order, key=key)
  assert mask.shape == (3, 600) and int((~mask).sum()) == round(0.3 * 1800)
  _, mask = conditions.apply(by_name['per_view_0.3'], inputs, order, key=key)
  np.testing.assert_array_equal((~mask).sum(axis=1), 180)
  _, mask = conditions.apply(by_name['samples_0.3'], inputs, order, key=key)
  assert int((~mask.all(axis=0)).sum()) == 180
  _, mask = conditions.apply(by_name['completer_0.3'], inputs, order, key=key)
  assert int((~mask).sum()) == round(0.1 * 1800)  # eta / V of the entries
  noisy, mask = conditions.apply(by_name['samples_0.3+noise_0.5'], inputs, order, key=key)
  assert all(np.any(noisy[name] != 0) for name in order) and np.all(mask.any(axis=0))
  assert conditions.spec(by_name['samples_0.3+noise_0.5']) == {
      'protocol': 'samples', 'rate': 0.3, 'meaning': 'samples', 'min_views': 1, 'noise': 0.5}
  with pytest.raises(KeyError, match='Unknown missing-data protocol'):
    conditions.protocol_grid(('cpm',), (0.3,))


def test_rerun_resumes_every_method_from_its_checkpoint(smoke_run):
  out, config, results = smoke_run
  with jax.numpy_dtype_promotion('standard'):
    again = bench.run(config, out, log=lambda line: None)
  for name, result in results.items():
    assert again[name].run_s == 0.0  # restored, not retrained
    np.testing.assert_array_equal(again[name].scores['clean']['accuracy'],
                                  result.scores['clean']['accuracy'])


def test_more_noisy_views_than_modalities_is_rejected_before_writing(tmp_path, manual_dir,
                                                                      tfds_dir):
  config = _config(**{'data.manual_dir': manual_dir, 'data.data_dir': tfds_dir,
                      'eval.noise_combination_views': 4})
  with pytest.raises(ValueError, match='config.eval.noise_combination_views: 4 noisy views'):
    bench.run(config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()


def test_front_door_runs_a_config(tmp_path, manual_dir, tfds_dir):
  root = pathlib.Path(__file__).resolve().parents[2]
  process = subprocess.run(
      [sys.executable, '-m', 'lqmm.bench', '--config=lqmm/bench/configs/fusion.py:smoke',
       f'--workdir={tmp_path}', f'--config.data.manual_dir={manual_dir}',
       f'--config.data.data_dir={tfds_dir}', "--config.methods=('mean',)",
       '--config.train.num_seeds=1'],
      cwd=root, capture_output=True, text=True, check=False)
  assert process.returncode == 0, process.stderr[-2000:]
  assert '| mean |' in (tmp_path / 'results.md').read_text()
  bad = subprocess.run(
      [sys.executable, '-m', 'lqmm.bench', '--config=lqmm/bench/configs/fusion.py:smoke',
       f'--workdir={tmp_path / "bad"}', '--config.train.num_seeds=0'],
      cwd=root, capture_output=True, text=True, check=False)
  assert bad.returncode != 0 and 'config.train.num_seeds must be >= 1' in bad.stderr
  assert not (tmp_path / 'bad').exists()


def test_stopped_run_resumes_to_the_same_scores(smoke_run, tmp_path):
  """QMF carries its loss history in the method state: a run stopped after 2 of 4 epochs and
  resumed ends where the uninterrupted smoke run did."""
  _, config, results = smoke_run
  chunked = {'methods': ('qmf',), 'train.epochs_per_call': 2, 'train.checkpoint_every_epochs': 2}
  base = lambda _: config.copy_and_resolve_references()
  with jax.numpy_dtype_promotion('standard'):
    with pytest.raises(kit.StopRequested):
      bench.run(helpers.config_with(base, None, **chunked, **{'train.stop_after_epochs': 2}),
                tmp_path, log=lambda line: None)
    resumed = bench.run(helpers.config_with(base, None, **chunked), tmp_path,
                        log=lambda line: None)
  np.testing.assert_allclose(resumed['qmf'].history['train/loss'],
                             results['qmf'].history['train/loss'], rtol=1e-5)
  np.testing.assert_array_equal(resumed['qmf'].best_epoch, results['qmf'].best_epoch)
  for condition, scores in results['qmf'].scores.items():
    np.testing.assert_allclose(resumed['qmf'].scores[condition]['accuracy'], scores['accuracy'])


def test_feature_families_outside_the_suite_are_rejected():
  for fusion in ('cen', 'dynmm', 'moe'):
    with pytest.raises(ValueError, match='experiments/feature_fusion'):
      fusion_suite.feature(fusion)
  assert fusion_suite.feature('mbt').network['feature'] == 'mbt'
