"""The MoNIG diabetes experiment's :smoke config: finite metrics, outputs written, selection.

optax's Adam mixes Python floats with its int32 step count, which the suite's strict dtype
promotion rejects; experiments therefore run under standard promotion (lqmm's own primitives
are tested under strict promotion).
"""

import json

import jax
import numpy as np
import pytest

from experiments.monig_diabetes import train
from experiments.monig_diabetes.configs import default


def _config(tfds_dir, **overrides):
  config = default.get_config('smoke')
  config.unlock()
  config.data.data_dir = tfds_dir
  for key, value in overrides.items():
    config[key] = value
  config.lock()
  return config


@pytest.fixture(autouse=True)
def standard_promotion():
  with jax.numpy_dtype_promotion('standard'):
    yield


@pytest.fixture(scope='module')
def smoke(tmp_path_factory, tfds_dir):
  workdir = tmp_path_factory.mktemp('monig_smoke')
  config = _config(tfds_dir)
  with jax.numpy_dtype_promotion('standard'):
    results = train.train_and_evaluate(config, workdir)
  return workdir, config, results


def test_smoke_run_writes_everything(smoke):
  workdir, config, results = smoke
  seeds, noisy, stds = config.num_seeds, len(config.eval.noise_modalities), len(
      config.eval.noise_stds)
  sources, levels = 1 + len(config.data.modalities), len(config.eval.coverage_levels)
  test = {name: np.asarray(value) for name, value in results['test'].items()}
  assert test['rmse'].shape == (seeds, noisy, stds, sources)
  assert test['coverage'].shape == (seeds, noisy, stds, sources, levels)
  assert test['weight'].shape == (seeds, noisy, stds, sources - 1)
  assert test['baseline_rmse'].shape == (seeds, noisy, stds)
  for name, values in test.items():
    assert np.all(np.isfinite(values)), name
  assert results['split_sizes'] == {'train': 266, 'validation': 88, 'test': 88}
  # Errors are in the original units (the target's std is about 77), not standardised ones.
  assert np.all(test['rmse'] > 20) and np.all(test['baseline_rmse'] > 20)
  assert (workdir / 'robustness.png').stat().st_size > 1000
  json.loads((workdir / 'results.json').read_text())
  table = (workdir / 'results.md').read_text()
  assert table.count('\n| MoNIG ') == sources and table.count('\n| MLP baseline') == 1
  assert table.count('\n| 1 | ') == noisy  # one row per noise std in each noise table
  lines = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [line['step'] for line in lines if 'train/monig_loss' in line] == [2, 4]
  assert all(np.isfinite(line['train/monig_loss']) for line in lines if 'train/monig_loss' in line)
  assert (workdir / 'checkpoints' / '4').is_dir()
  assert json.loads((workdir / 'config.json').read_text())['selection'] == 'nll'


def test_evaluation_is_consistent(smoke):
  _, _, results = smoke
  test = {name: np.asarray(value) for name, value in results['test'].items()}
  # The fusion weights nu_m / sum nu of the modalities sum to one for every sample.
  np.testing.assert_allclose(test['weight'].sum(-1), 1, rtol=1e-5)
  # Central intervals are nested: coverage never decreases with the level.
  assert np.all(np.diff(test['coverage'], axis=-1) >= 0)
  assert np.all(np.diff(test['baseline_coverage'], axis=-1) >= 0)
  # std 0 is clean data, whichever modality is "noisy".
  np.testing.assert_array_equal(test['rmse'][:, 0, 0], test['rmse'][:, 1, 0])
  # Noise on clinical leaves the serum head's prediction unchanged, and vice versa.
  serum, clinical = results['sources'].index('serum'), results['sources'].index('clinical')
  noisy_clinical = results['noise_modalities'].index('clinical')
  np.testing.assert_allclose(test['rmse'][:, noisy_clinical, -1, serum],
                             test['rmse'][:, noisy_clinical, 0, serum], rtol=1e-6)
  assert not np.allclose(test['rmse'][:, noisy_clinical, -1, clinical],
                         test['rmse'][:, noisy_clinical, 0, clinical])
  # The seeds are different models.
  assert not np.allclose(test['rmse'][0], test['rmse'][1])


def test_model_selection_keeps_the_best_validation_epoch(smoke):
  workdir, config, results = smoke
  best = np.asarray(results['best_epoch']['monig'])
  assert np.all((best >= 1) & (best <= config.num_epochs))
  last = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()
          if '"validation/nll"' in line][-1]
  assert last['step'] == config.num_epochs
  # The selected epoch's validation NLL is at most that of the last epoch (both per seed).
  assert np.mean(results['validation']['nll_t']) <= last['validation/nll'] + 1e-4


def test_unknown_names_raise(tmp_path, tfds_dir):
  with pytest.raises(KeyError, match="Unknown selection metric 'mae'; valid names: nll, rmse"):
    train.train_and_evaluate(_config(tfds_dir, selection='mae'), tmp_path)
  with pytest.raises(KeyError, match='Unknown config variant'):
    default.get_config('huge')
