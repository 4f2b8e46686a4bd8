"""The noisy-correspondence experiment: smoke run, NCR's shuffling, resume, invalid configs."""

import jax
import numpy as np
import pytest

from experiments.ncr_handwritten import train
from experiments.ncr_handwritten.configs import default
from tests.experiments import helpers


@pytest.fixture(scope='module')
def smoke(tmp_path_factory, tfds_dir):
  workdir = tmp_path_factory.mktemp('ncr_smoke')
  config = helpers.smoke_config(default.get_config, tfds_dir)
  return workdir, config, helpers.run(train, config, workdir)


def test_smoke_run_scores_every_method(smoke):
  workdir, config, results = smoke
  assert list(results['runs']) == [f'{method}_rate0.5' for method in config.methods]
  for name, outcome in results['runs'].items():
    for key in ('i2t_r1', 'i2t_r10', 't2i_r5', 'rsum', 'precision', 'recall'):
      values = np.asarray(outcome[key])
      assert values.shape == (2,) and np.all(np.isfinite(values)), (name, key)
    assert outcome['shuffled'] > 0.45 * results['sizes']['train']
    assert np.all(np.asarray(outcome['i2t_r10']) >= np.asarray(outcome['i2t_r1']))
  assert 'NCR co-teaching' in (workdir / 'results.md').read_text()


def test_shuffling_permutes_the_chosen_rows_only():
  second = np.arange(100.0)[:, None] * np.ones((1, 3))
  noisy, source = train.shuffle_pairs(second, 0.3, jax.random.key(0))
  moved = source != np.arange(100)
  assert 20 <= moved.sum() <= 30                      # 30 rows shuffled; some stay by chance
  np.testing.assert_array_equal(noisy, second[source])
  np.testing.assert_array_equal(np.sort(source), np.arange(100))   # a permutation
  _, unchanged = train.shuffle_pairs(second, 0.0, jax.random.key(0))
  np.testing.assert_array_equal(unchanged, np.arange(100))


def test_ncr_resumes_to_the_uninterrupted_result(smoke, tmp_path, tfds_dir):
  _, _, whole = smoke
  config = helpers.smoke_config(default.get_config, tfds_dir, methods=('ncr',))
  stopped = helpers.config_with(lambda _: config.copy_and_resolve_references(), None,
                                **{'train.stop_after_epochs': 2})
  from lqmm import train as kit  # pylint: disable=g-import-not-at-top
  with pytest.raises(kit.StopRequested):
    helpers.run(train, stopped, tmp_path)
  resumed = helpers.run(train, config, tmp_path)
  for key in ('rsum', 'precision', 'recall'):
    np.testing.assert_allclose(resumed['runs']['ncr_rate0.5'][key],
                               whole['runs']['ncr_rate0.5'][key], rtol=1e-6)


@pytest.mark.parametrize('override, match', [
    ({'methods': ('info_nce', 'triplet')}, 'method'),
    ({'noise.rates': (0.2, 1.0)}, 'config.noise.rates'),
    ({'ncr.soft_margin': 'cubic'}, 'config.ncr.soft_margin'),
    ({'contrastive.q': 0.0}, 'config.contrastive.q'),
    ({'train.drop_remainder': False}, 'config.train.drop_remainder'),
    ({'data.modalities': ('pix', 'pix')}, 'config.data.modalities'),
])
def test_invalid_config_raises_before_writing(tmp_path, override, match):
  config = helpers.config_with(default.get_config, 'smoke', **override)
  with pytest.raises((ValueError, KeyError, TypeError), match=match):
    train.train_and_evaluate(config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()
