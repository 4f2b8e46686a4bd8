"""The TMC experiment's :smoke config: finite metrics, outputs written, exact resume, devices."""

import json
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from experiments.tmc_handwritten import train
from experiments.tmc_handwritten.configs import default
from lqmm import train as kit
from tests.experiments import helpers


def _config(tfds_dir, **overrides):
  return helpers.smoke_config(default.get_config, tfds_dir, **overrides)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, tfds_dir):
  workdir = tmp_path_factory.mktemp('smoke')
  config = _config(tfds_dir)
  return workdir, config, helpers.run(train, config, workdir)


def test_smoke_run_writes_everything(uninterrupted):
  workdir, config, results = uninterrupted
  accuracy = np.asarray(results['test']['accuracy'])
  assert accuracy.shape == (config.train.num_seeds, len(config.eval.noise_stds))
  for name, values in results['test'].items():
    assert np.all(np.isfinite(values)), name
  assert (workdir / 'robustness.png').stat().st_size > 1000
  table = (workdir / 'results.md').read_text()
  assert table.count('\n| ') == len(config.eval.noise_stds) + 1
  assert 'Gaussian noise on every view' in table
  assert helpers.metric_steps(workdir, 'train/loss') == [2, 4, 6]
  assert helpers.metric_steps(workdir, 'validation/accuracy') == [2, 4, 6]
  assert json.loads((workdir / 'config.json').read_text())['train']['num_epochs'] == 6
  assert list((workdir / 'tensorboard').glob('events.out.tfevents.*'))
  assert (workdir / 'checkpoints' / '6').is_dir()
  assert len(results['validation_accuracy']) == config.train.num_seeds


def test_seeds_are_independent_models(uninterrupted):
  workdir, config, _ = uninterrupted
  params = helpers.final_params(workdir, config.train.num_epochs)
  kernels = [leaf for leaf in jax.tree.leaves(params) if leaf.ndim == 3]
  assert kernels and all(leaf.shape[0] == config.train.num_seeds for leaf in kernels)
  assert all(not np.allclose(leaf[0], leaf[1]) for leaf in kernels)


def test_killed_run_resumes_to_identical_parameters(uninterrupted, tmp_path):
  workdir, config, _ = uninterrupted
  helpers.assert_resume_matches(train, config, workdir, tmp_path, stop_after=2)


def test_rerun_keeps_the_earlier_table(uninterrupted, tmp_path, tfds_dir):
  """A re-evaluation with other noise levels moves the earlier results aside, never over them."""
  _, config, _ = uninterrupted
  helpers.run(train, config, tmp_path)
  first = (tmp_path / 'results.md').read_text()
  helpers.run(train, _config(tfds_dir, **{'eval.noise_stds': (0.0, 0.25)}), tmp_path)
  assert (tmp_path / 'previous' / '1' / 'results.md').read_text() == first
  assert '| 0.25 |' in (tmp_path / 'results.md').read_text()


def test_resuming_with_another_config_raises(uninterrupted, tfds_dir):
  workdir, _, _ = uninterrupted
  with pytest.raises(ValueError, match=r'different config \(optim.learning_rate differ\)'):
    helpers.run(train, _config(tfds_dir, **{'optim.learning_rate': 0.1}), workdir)


def test_faithful_annealing_flag_changes_training(uninterrupted, tmp_path, tfds_dir):
  workdir, config, _ = uninterrupted
  assert not config.train.one_based_epochs
  helpers.run(train, _config(tfds_dir, **{'train.one_based_epochs': True}), tmp_path)
  faithful = helpers.final_params(tmp_path, config.train.num_epochs)
  clean = helpers.final_params(workdir, config.train.num_epochs)
  assert not all(np.array_equal(a, b) for a, b in
                 zip(jax.tree.leaves(faithful), jax.tree.leaves(clean)))


def test_one_device_equals_eight_devices(uninterrupted, tmp_path, tfds_dir):
  workdir, config, results = uninterrupted
  assert jax.device_count() == 8 and config.train.num_devices is None  # the module run used 8
  single = helpers.run(train, _config(tfds_dir, **{'train.num_devices': 1}), tmp_path)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6),
               helpers.final_params(tmp_path, config.train.num_epochs),
               helpers.final_params(workdir, config.train.num_epochs))
  np.testing.assert_allclose(single['test']['accuracy'], results['test']['accuracy'], atol=0.01)


def test_noise_on_chosen_views_is_reported(tmp_path, tfds_dir):
  config = _config(tfds_dir, **{'eval.noise_modalities': ('pix', 'fou'), 'train.num_epochs': 2,
                                'train.num_seeds': 1})
  results = helpers.run(train, config, tmp_path)
  assert results['noise_modalities'] == ['pix', 'fou']
  assert 'Gaussian noise on pix, fou only' in (tmp_path / 'results.md').read_text()
  saved = json.loads((tmp_path / 'results.json').read_text())
  assert saved['noise_modalities'] == ['pix', 'fou']


def test_unknown_names_raise(tmp_path, tfds_dir):
  with pytest.raises(KeyError, match="Unknown loss 'hinge'; valid names: ce, mse"):
    helpers.run(train, _config(tfds_dir, **{'train.loss': 'hinge'}), tmp_path)
  with pytest.raises(KeyError, match='Unknown config variant'):
    default.get_config('huge')
  with pytest.raises(KeyError, match="Unknown modality 'audio' in order; the data has"):
    helpers.run(train, _config(tfds_dir, **{'eval.noise_modalities': ('audio',)}), tmp_path)


@pytest.mark.parametrize('key, value, message', [
    ('train.num_epochs', -1, r'config.train.num_epochs must be >= 1; got -1'),
    ('train.batch_size', 0, r'config.train.batch_size must be >= 1; got 0'),
    ('train.num_seeds', 0, r'config.train.num_seeds must be >= 1; got 0'),
    ('eval.noise_stds', (0.0, -0.5), r'config.eval.noise_stds\[1\] must be >= 0.0; got -0.5'),
    ('eval.noise_stds', (float('nan'),), r'config.eval.noise_stds\[0\] must be finite'),
    ('data.validation_fraction', 1.0, r'config.data.validation_fraction must be < 1'),
    ('optim.learning_rate', -1e-3, r'config.optim.learning_rate must be > 0.0'),
    ('train.eval_every', 4, r'config.train.eval_every \(4\) must divide'),
])
def test_invalid_config_raises_before_writing(tmp_path, tfds_dir, key, value, message):
  workdir = tmp_path / 'run'
  with pytest.raises((ValueError, TypeError), match=message):
    helpers.run(train, _config(tfds_dir, **{key: value}), workdir)
  assert not workdir.exists()


def test_selecting_on_an_empty_validation_split_raises(tmp_path, tfds_dir):
  config = _config(tfds_dir, **{'data.validation_fraction': 0.0, 'train.select': ('accuracy',)})
  with pytest.raises(ValueError, match='validation_fraction = 0 leaves none'):
    helpers.run(train, config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()


def test_invalid_config_exits_nonzero_on_the_command_line(tmp_path):
  root = pathlib.Path(__file__).resolve().parents[2]
  process = subprocess.run(
      [sys.executable, '-m', 'experiments.tmc_handwritten.train',
       '--config=experiments/tmc_handwritten/configs/default.py:smoke',
       f'--workdir={tmp_path / "run"}', '--config.train.num_epochs=-1'],
      cwd=root, capture_output=True, text=True, check=False)
  assert process.returncode != 0
  assert 'config.train.num_epochs must be >= 1' in process.stderr
  assert not (tmp_path / 'run').exists()


def test_sigkill_mid_run_then_restart_matches_uninterrupted(tmp_path, tfds_dir):
  """A real kill (SIGKILL of the training process), not a clean stop: the restart resumes from
  the last complete checkpoint and ends with exactly the parameters of an uninterrupted run."""
  root = pathlib.Path(__file__).resolve().parents[2]
  killed_dir, reference_dir = tmp_path / 'killed', tmp_path / 'reference'

  def command(num_epochs):
    return [sys.executable, '-m', 'experiments.tmc_handwritten.train',
            '--config=experiments/tmc_handwritten/configs/default.py:smoke',
            f'--workdir={killed_dir}', f'--config.train.num_epochs={num_epochs}',
            f'--config.data.data_dir={tfds_dir}', '--config.train.num_seeds=1',
            '--config.train.num_devices=1']

  def finished_steps():  # Orbax renames a checkpoint to its bare step number once complete
    folder = killed_dir / 'checkpoints'
    return [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []

  process = subprocess.Popen(command(100000), cwd=root, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 240
    while max(finished_steps(), default=0) < 4:
      assert process.poll() is None and time.monotonic() < deadline, 'no checkpoint appeared'
      time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
  finally:
    if process.poll() is None:
      process.kill()
  step = kit.Checkpointer(killed_dir).latest_step()
  assert step is not None and step >= 4
  subprocess.run(command(step + 2), cwd=root, check=True, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
  config = _config(tfds_dir, **{'train.num_epochs': step + 2, 'train.num_seeds': 1,
                                'train.num_devices': 1})
  helpers.run(train, config, reference_dir)
  results = json.loads((killed_dir / 'results.json').read_text())
  assert results['start_epoch'] == step
  jax.tree.map(np.testing.assert_array_equal, helpers.final_params(killed_dir, step + 2),
               helpers.final_params(reference_dir, step + 2))
