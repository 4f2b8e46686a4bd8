"""The TV fusion experiment: smoke run, noise layouts, invalid configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.tv_fusion import train
from experiments.tv_fusion.configs import default
from tests.experiments import helpers


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('tv_smoke')
  config = helpers.config_with(default.get_config, 'smoke')
  return workdir, config, helpers.run(train, config, workdir)


def test_smoke_run_scores_every_sensor_and_method(smoke):
  workdir, config, results = smoke
  assert list(results['methods']) == list(config.methods)
  for name in config.data.modalities:
    assert np.asarray(results['inputs'][name]['psnr']).shape == (2, 4)
    for method, outcome in results['methods'].items():
      assert np.all(np.isfinite(outcome['psnr'][name])), method
    weighted = np.mean(results['methods']['weighted_mean']['psnr'][name])
    # Weighting by the known noise beats the plain mean; TV on top beats weighting alone.
    assert weighted > np.mean(results['methods']['mean']['psnr'][name]) + 3
    assert np.mean(results['methods']['tv_fusion']['psnr'][name]) > weighted
  assert set(results['calibration']) == {'tv_mean', 'tv_weighted_mean', 'tv_fusion'}
  assert (workdir / 'results.md').exists() and (workdir / 'fusion.png').exists()


def test_stripes_give_each_sensor_its_bad_bands():
  config = helpers.config_with(default.get_config, 'stripes')
  maps = np.asarray(train.noise_maps(config, (4, 8)))
  assert maps.shape == (4, 4, 8)
  # Sensor m is bad on the first m of 4 bands of 2 columns.
  for sensor in range(4):
    np.testing.assert_allclose(maps[sensor, 0], [0.5] * (2 * sensor) + [0.1] * (8 - 2 * sensor))
  uniform = np.asarray(train.noise_maps(helpers.config_with(default.get_config, None), (2, 3)))
  np.testing.assert_allclose(uniform[:, 0, 0], [0.1, 0.1, 0.1, 0.5])
  assert np.all(uniform == uniform[:, :1, :1])
  observed = train.sensors(jnp.zeros((4, 8)), jnp.asarray(maps), jax.random.key(0))
  assert observed.shape == (4, 4, 8)


@pytest.mark.parametrize('override, match', [
    ({'data.modalities': ('camera', 'lena')}, 'image'),
    ({'sensors.stds': (0.1, -0.1)}, 'config.sensors.stds'),
    ({'sensors.layout': 'checkerboard'}, 'config.sensors.layout'),
    ({'methods': ('mean', 'median')}, 'method'),
    ({'grid': ()}, 'config.grid'),
    ({'crop': (4, 64)}, 'config.crop'),
    ({'tv.num_iter': 0}, 'config.tv.num_iter'),
])
def test_invalid_config_raises_before_writing(tmp_path, override, match):
  config = helpers.config_with(default.get_config, 'smoke', **override)
  with pytest.raises((ValueError, KeyError, TypeError), match=match):
    train.train_and_evaluate(config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()
