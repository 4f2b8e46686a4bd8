"""The feature-fusion experiment: the smoke config end to end with a resume, and bad configs."""

import numpy as np
import pytest

from experiments.feature_fusion import train
from experiments.feature_fusion.configs import default
from tests.experiments import helpers

METHODS = ('cen', 'dynmm')   # BatchNorm statistics through a resume; routed scoring


def _config(tfds_dir, **overrides):
  # Two of the six views: a third of the compile time (the smoke variant itself runs all six).
  return helpers.smoke_config(default.get_config, tfds_dir, **{
      'methods': METHODS, 'data.modalities': ('fou', 'kar'), **overrides})


def test_smoke_run_and_resume(tmp_path, tfds_dir):
  config = _config(tfds_dir)
  results = helpers.run(train, config, tmp_path / 'run')
  assert list(results['methods']) == list(METHODS)
  names = [condition['name'] for condition in results['conditions']]
  assert names == ['clean', 'quality_1', 'missing_0.5']
  for method, outcome in results['methods'].items():
    for name in names:
      accuracy = np.asarray(outcome['test'][name]['accuracy'])
      assert accuracy.shape == (2,) and np.all(accuracy > 0.3), (method, name, accuracy)
      assert np.all(np.asarray(outcome['test'][name]['flops']) > 0)
  dynamic = results['methods']['dynmm']
  costs = dynamic['expert_costs']
  for name in names:
    test = dynamic['test'][name]
    assert np.all(np.asarray(test['agreement']) == 1.0)   # routed = run-every-expert argmax
    np.testing.assert_allclose(np.sum(test['expert_share'], axis=-1), 1.0)
    # What ran is at most the gate plus the costliest expert per row.
    assert np.all(np.asarray(test['flops']) < 1.5 * max(costs))
  assert 'dynmm' in (tmp_path / 'run' / 'results.md').read_text()
  helpers.assert_resume_matches(train, config, tmp_path / 'run', tmp_path / 'resumed',
                                stop_after=1, subdirs=METHODS)


@pytest.mark.parametrize('overrides, error, match', [
    ({'methods': ('late', 'moe')}, KeyError, 'method'),
    ({'methods': ()}, ValueError, 'config.methods'),
    ({'eval.missing_rates': (1.0,)}, ValueError, 'config.eval.missing_rates'),
    ({'eval.quality_stds': (-1.0,)}, ValueError, 'config.eval.quality_stds'),
    ({'dynmm.temperature_decay': 1.5}, ValueError, 'config.dynmm.temperature_decay'),
    ({'model.num_heads': 3, 'methods': ('mbt',)}, ValueError, 'num_heads'),
])
def test_invalid_configs_fail_before_writing(tmp_path, tfds_dir, overrides, error, match):
  workdir = tmp_path / 'run'
  with pytest.raises(error, match=match):
    helpers.run(train, _config(tfds_dir, **overrides), workdir)
  assert not workdir.exists()
