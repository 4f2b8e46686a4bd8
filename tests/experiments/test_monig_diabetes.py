"""The MoNIG diabetes experiment's :smoke config: finite metrics, outputs, selection, resume."""

import json

import numpy as np
import pytest

from experiments.monig_diabetes import train
from experiments.monig_diabetes.configs import default
from tests.experiments import helpers


def _config(tfds_dir, **overrides):
  return helpers.smoke_config(default.get_config, tfds_dir, **overrides)


@pytest.fixture(scope='module')
def smoke(tmp_path_factory, tfds_dir):
  workdir = tmp_path_factory.mktemp('monig_smoke')
  config = _config(tfds_dir)
  return workdir, config, helpers.run(train, config, workdir)


def test_smoke_run_writes_everything(smoke):
  workdir, config, results = smoke
  seeds, noisy, stds = (config.train.num_seeds, len(config.eval.noise_modalities),
                        len(config.eval.noise_stds))
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
  assert helpers.metric_steps(workdir, 'monig/train/loss') == [2, 4]
  assert helpers.metric_steps(workdir, 'baseline/train/loss') == [2, 4]
  for model in ('monig', 'baseline'):
    assert (workdir / 'checkpoints' / model / '4').is_dir()
  assert json.loads((workdir / 'config.json').read_text())['train']['select'] == ['-nll']


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
  assert np.all((best >= 1) & (best <= config.train.num_epochs))
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  last = [record for record in records if 'monig/validation/nll' in record][-1]
  assert last['step'] == config.train.num_epochs
  # The selected epoch's validation NLL is at most that of the last epoch (both per seed).
  assert np.mean(results['validation']['nll_t']) - np.log(results['target_std']) <= (
      last['monig/validation/nll'] + 1e-4)


def test_killed_run_resumes_both_models(smoke, tmp_path):
  workdir, config, _ = smoke
  helpers.assert_resume_matches(train, config, workdir, tmp_path, stop_after=2,
                                subdirs=('monig', 'baseline'), metric='monig/train/loss')
  assert helpers.metric_steps(tmp_path, 'baseline/train/loss') == [2, 4]


def test_unknown_names_raise(tmp_path, tfds_dir):
  with pytest.raises(KeyError, match="Unknown selection metric '-mae'; valid names: -nll, -rmse"):
    helpers.run(train, _config(tfds_dir, **{'train.select': ('-mae',)}), tmp_path / 'a')
  with pytest.raises(ValueError, match='validation_fraction = 0 leaves none'):
    helpers.run(train, _config(tfds_dir, **{'data.validation_fraction': 0.0}), tmp_path / 'b')
  assert not (tmp_path / 'a').exists() and not (tmp_path / 'b').exists()
  with pytest.raises(KeyError, match='Unknown config variant'):
    default.get_config('huge')
