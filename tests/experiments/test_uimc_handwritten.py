"""The incomplete-Handwritten experiment: smoke run and resume, protocol, no test leakage."""

import numpy as np
import pytest

from experiments.uimc_handwritten import train
from experiments.uimc_handwritten.configs import default
from lqmm import missing
from lqmm.missing import distributions
from tests.experiments import helpers


def _config(tfds_dir, **overrides):
  # One device: the suite's 8 fake CPU devices make this sweep of 7 methods about 1.5x slower
  # to compile and run; the shared loop's 8-device results are tested against 1 device in
  # tests/train and tests/experiments/test_tmc_handwritten.py.
  return helpers.smoke_config(default.get_config, tfds_dir,
                              **{'train.num_devices': 1, **overrides})


@pytest.fixture(scope='module')
def smoke(tmp_path_factory, tfds_dir):
  workdir = tmp_path_factory.mktemp('uimc_smoke')
  config = _config(tfds_dir)
  return workdir, config, helpers.run(train, config, workdir)


def test_smoke_run_reports_every_method_rate_and_seed(smoke):
  workdir, config, results = smoke
  assert list(results['methods']) == list(config.methods)
  for method, outcome in results['methods'].items():
    accuracy = np.asarray(outcome['test']['accuracy'])
    assert accuracy.shape == (1, 2, 2) and np.all(np.isfinite(accuracy)), method
    assert np.all(accuracy > 0.5), (method, accuracy)  # 4 epochs: far above chance (10%)
  uimc = results['methods']['uimc']['test']
  assert set(uimc) >= {'accuracy_vote', 'accuracy_confidence', 'accuracy_mean',
                       'accuracy_per_draw', 'uncertainty'}
  # Every condition's protocol is stored with its result.
  assert [(spec['rate'], spec['seed']) for spec in results['specs']] == [
      (0.0, 0), (0.0, 1), (0.3, 0), (0.3, 1)]
  assert results['specs'][2]['meaning'] == 'entries'
  assert 'rate 0.3' in (workdir / 'results.md').read_text()
  assert (workdir / 'accuracy.png').stat().st_size > 1000


def test_resume_continues_the_first_method_exactly(tmp_path, tfds_dir):
  config = _config(tfds_dir, methods=('mean', 'tmc_masks'))
  helpers.run(train, config, tmp_path / 'whole')
  helpers.assert_resume_matches(train, config, tmp_path / 'whole', tmp_path / 'resumed',
                                stop_after=2, subdirs=tuple(config.methods),
                                metric='mean/train/loss')


def test_conditions_are_the_published_masks_and_split():
  config = default.get_config('smoke')
  conditions, specs = train.make_conditions(config, 2000, 6)
  assert conditions['mask'].shape == (4, 2000, 6)
  np.testing.assert_array_equal(conditions['mask'][3],
                                missing.legacy_mask('cpm', 2000, 6, 0.3, seed=1))
  # UIMC's build_ad_dataset: np.random.seed(seed), choice without replacement, the rest sorted.
  np.random.seed(1)
  expected = np.random.choice(2000, 1600, replace=False)
  np.testing.assert_array_equal(conditions['train_rows'][1], expected)
  np.testing.assert_array_equal(conditions['test_rows'][1],
                                np.array(sorted(set(range(2000)) - set(expected.tolist()))))
  assert specs[3] == {'protocol': 'cpm', 'rate': 0.3, 'meaning': 'entries', 'min_views': 1,
                      'seed': 1}


@pytest.mark.parametrize('method', ['mean', 'knn', 'uimc'])
def test_preparation_never_reads_test_rows(method):
  """Changing the test rows' features leaves every training row's prepared input (scaling,
  imputation, class Gaussians) unchanged, unless the original's scaling is asked for."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  config = default.get_config('smoke')
  conditions, _ = train.make_conditions(config, 2000, 6)
  labels = jnp.asarray(np.arange(2000) // 200, jnp.int32)
  conditions['class_rows'] = np.stack([
      distributions.class_rows(labels, 10, rows=rows, size=200)
      for rows in conditions['train_rows']])
  condition = {name: jnp.asarray(value[2]) for name, value in conditions.items()}
  rng = np.random.default_rng(0)
  order = tuple(config.data.modalities)
  widths = {'pix': 240, 'fou': 76, 'fac': 216, 'zer': 47, 'kar': 64, 'mor': 6}
  shift = np.asarray(labels, np.float32)[:, None]
  raw = {view: rng.normal(size=(2000, widths[view])).astype(np.float32) + shift
         for view in order}
  changed = {view: x.copy() for view, x in raw.items()}
  test_rows = np.asarray(condition['test_rows'])
  for x in changed.values():
    x[test_rows] = 50.0

  def prepared(inputs, faithful=False):
    local = helpers.config_with(default.get_config, 'smoke', **{'uimc.faithful': faithful})
    return train.prepare(condition, {v: jnp.asarray(x) for v, x in inputs.items()}, labels,
                         config=local, method=method, order=order, num_classes=10)

  rows = np.asarray(condition['train_rows'])
  before, after = prepared(raw), prepared(changed)
  for view in order:
    np.testing.assert_array_equal(np.asarray(before['inputs'][view])[rows],
                                  np.asarray(after['inputs'][view])[rows])
  if method == 'uimc':
    for view in order:
      np.testing.assert_array_equal(before['gaussians'][view].mean,
                                    after['gaussians'][view].mean)
    leaked = prepared(changed, faithful=True)['inputs']['pix'][rows]
    assert not np.allclose(leaked, prepared(raw, faithful=True)['inputs']['pix'][rows])


def test_invalid_config_raises_before_writing(tmp_path, tfds_dir):
  with pytest.raises(KeyError, match='Unknown method'):
    helpers.run(train, _config(tfds_dir, methods=('zero', 'magic')), tmp_path / 'a')
  with pytest.raises(ValueError, match=r"config.missing.rates \(protocol 'cpm'\) must be <= 0.83"):
    helpers.run(train, _config(tfds_dir, **{'missing.rates': (0.1, 0.9)}), tmp_path / 'b')
  with pytest.raises(KeyError, match='Unknown UIMC aggregate'):
    helpers.run(train, _config(tfds_dir, **{'uimc.aggregate': 'max'}), tmp_path / 'c')
  assert not any(tmp_path.iterdir())


def test_faithful_mode_expands_incomplete_training_rows_into_fixed_copies():
  """The code's behaviour: complete training rows once, incomplete ones num_draws times; each
  epoch visits the valid copies in a new random order, padding last."""
  import types  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  config = default.get_config('smoke')
  conditions, _ = train.make_conditions(config, 2000, 6)
  condition = {name: jnp.asarray(value[3]) for name, value in conditions.items()}  # eta 0.3
  virtual = train.virtual_rows(condition, 2000, 4)
  rows = np.asarray(condition['train_rows'])
  incomplete = ~np.asarray(condition['mask'])[rows].all(axis=1)
  expected = len(rows) + 3 * int(incomplete.sum())
  assert int(virtual['num_virtual']) == expected and incomplete.sum() > 1000
  state = types.SimpleNamespace(epoch=jnp.int32(0),
                                extra=dict(virtual, copy_key=jax.random.key(0)))
  first = np.asarray(train.faithful_epoch_rows(state))
  state.epoch = jnp.int32(1)
  second = np.asarray(train.faithful_epoch_rows(state))
  ids = np.asarray(virtual['virtual_rows'])
  for order in (first, second):
    assert sorted(order[:expected].tolist()) == sorted(ids[:expected].tolist())
    np.testing.assert_array_equal(np.sort(order[expected:]), np.sort(ids[expected:]))
  assert not np.array_equal(first[:expected], second[:expected])
  copies_of = {}
  for value in ids[:expected]:
    copies_of.setdefault(int(value) % 2000, set()).add(int(value) // 2000)
  assert {len(copies) for copies in copies_of.values()} == {1, 4}
