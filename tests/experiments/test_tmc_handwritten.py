"""The TMC experiment's :smoke config: finite metrics, outputs written, exact resume, devices."""

import json
import os
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
from tests import helpers as test_helpers
from tests.experiments import helpers


def _config(tfds_dir, **overrides):
  return helpers.smoke_config(default.get_config, tfds_dir, **overrides)


def _records(workdir):
  """Every record of `metrics.jsonl`, in order."""
  return [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]


@pytest.fixture(scope='module')
def eight_devices(tmp_path_factory, tfds_dir):
  """The smoke run on all 8 devices, with the HLO of its training programs."""
  workdir = tmp_path_factory.mktemp('smoke')
  config = _config(tfds_dir)
  with test_helpers.compiled_programs() as programs:
    results = helpers.run(train, config, workdir)
  return workdir, config, results, programs


@pytest.fixture(scope='module')
def uninterrupted(eight_devices):
  workdir, config, results, _ = eight_devices
  return workdir, config, results


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


class _Killed(Exception):
  """A simulated kill of the training process."""


def test_killed_run_resumes_to_identical_parameters(uninterrupted, tmp_path, tfds_dir):
  """A run logging every 2 epochs but checkpointing every 4 is killed while saving epoch 8: the
  log holds epochs 2-8, the checkpoints only epoch 4. Restarted with 6 epochs, it resumes from
  epoch 4, drops the records of epochs 6 and 8 (it logs epoch 6 again, epoch 8 never) and ends
  with the uninterrupted run's parameters and log, every epoch once."""
  workdir, config, _ = uninterrupted
  save = kit.Checkpointer.save

  def save_unless_killed(self, step, state, **kwargs):
    if step == 8:
      raise _Killed
    save(self, step, state, **kwargs)

  sparse = {'train.checkpoint_every_epochs': 4}
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(kit.Checkpointer, 'save', save_unless_killed)
    with pytest.raises(_Killed):
      helpers.run(train, _config(tfds_dir, **sparse, **{'train.num_epochs': 10}), tmp_path)
  assert kit.Checkpointer(tmp_path).latest_step() == 4
  assert helpers.metric_steps(tmp_path, 'train/loss') == [2, 4, 6, 8]  # ahead of checkpoint 4
  results = helpers.run(train, _config(tfds_dir, **sparse), tmp_path)
  assert results['start_epoch'] == 4
  assert helpers.metric_steps(tmp_path, 'train/loss') == [2, 4, 6]
  assert _records(tmp_path) == _records(workdir)  # the same records, values included
  jax.tree.map(np.testing.assert_array_equal,
               helpers.final_params(tmp_path, config.train.num_epochs),
               helpers.final_params(workdir, config.train.num_epochs))


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


def test_one_device_equals_eight_devices(eight_devices, tmp_path, tfds_dir):
  workdir, config, results, programs = eight_devices
  assert jax.device_count() == 8 and config.train.num_devices is None  # the module run used 8
  with test_helpers.compiled_programs() as single_programs:
    single = helpers.run(train, _config(tfds_dir, **{'train.num_devices': 1}), tmp_path)
  # The 8-device training program is partitioned: every device trains on its slice of the
  # batch and the gradients are summed across devices (a replicated batch needs no all-reduce).
  split = [('num_partitions=8' in text, 'all-reduce' in text) for text in programs]
  assert split and all(a and b for a, b in split), split
  single_split = ['all-reduce' in text for text in single_programs]
  assert single_split and not any(single_split), single_split
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
  """A real kill (SIGKILL of the training process), not a clean stop, of a run that logs every 2
  epochs and checkpoints every 4, while its log is at least 4 epochs ahead of its last complete
  checkpoint: the restart (2 epochs past that checkpoint) resumes from it, drops the records
  beyond it and ends with exactly the parameters and log records of an uninterrupted run."""
  root = pathlib.Path(__file__).resolve().parents[2]
  killed_dir, reference_dir = tmp_path / 'killed', tmp_path / 'reference'

  def command(num_epochs):
    return [sys.executable, '-m', 'experiments.tmc_handwritten.train',
            '--config=experiments/tmc_handwritten/configs/default.py:smoke',
            f'--workdir={killed_dir}', f'--config.train.num_epochs={num_epochs}',
            f'--config.data.data_dir={tfds_dir}', '--config.train.num_seeds=1',
            '--config.train.num_devices=1', '--config.train.checkpoint_every_epochs=4']

  def finished_steps():  # Orbax renames a checkpoint to its bare step number once complete
    folder = killed_dir / 'checkpoints'
    return [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []

  def logged_steps():  # the complete lines of metrics.jsonl
    path = killed_dir / 'metrics.jsonl'
    text = path.read_text() if path.exists() else ''
    return [json.loads(line)['step'] for line in text.splitlines()[:text.count('\n')]]

  process = subprocess.Popen(command(100000), cwd=root, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 240
    while True:
      assert process.poll() is None and time.monotonic() < deadline, 'no kill point came'
      if max(finished_steps(), default=0) >= 4:
        # Freeze the process, then kill it only if its log is 4 epochs or more ahead of its
        # checkpoints (the usual state while a save is written), else let it go on.
        process.send_signal(signal.SIGSTOP)
        os.waitpid(process.pid, os.WUNTRACED)
        if max(logged_steps(), default=0) >= max(finished_steps()) + 4:
          break
        process.send_signal(signal.SIGCONT)
      time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
  finally:
    if process.poll() is None:
      process.kill()
  step = kit.Checkpointer(killed_dir).latest_step()
  assert step is not None and step >= 4
  assert max(logged_steps()) >= step + 4  # records the restart will not write again
  subprocess.run(command(step + 2), cwd=root, check=True, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
  config = _config(tfds_dir, **{'train.num_epochs': step + 2, 'train.num_seeds': 1,
                                'train.num_devices': 1, 'train.checkpoint_every_epochs': 4})
  helpers.run(train, config, reference_dir)
  results = json.loads((killed_dir / 'results.json').read_text())
  assert results['start_epoch'] == step
  jax.tree.map(np.testing.assert_array_equal, helpers.final_params(killed_dir, step + 2),
               helpers.final_params(reference_dir, step + 2))
  assert helpers.metric_steps(killed_dir, 'train/loss') == list(range(2, step + 3, 2))
  assert ([(record['step'], sorted(record)) for record in _records(killed_dir)] ==
          [(record['step'], sorted(record)) for record in _records(reference_dir)])
