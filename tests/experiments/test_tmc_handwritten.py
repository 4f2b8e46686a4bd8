"""The TMC experiment's :smoke config: finite metrics, outputs written, exact resume, devices.

optax's Adam mixes Python floats with its int32 step count, which the suite's strict dtype
promotion rejects; experiments therefore run under standard promotion (lqmm's own primitives
are tested under strict promotion).
"""

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


def _config(tfds_dir, **overrides):
  config = default.get_config('smoke')
  config.unlock()
  config.data.data_dir = tfds_dir
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split('.')
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  config.lock()
  return config


def _final_params(workdir, config):
  """The parameters of the newest checkpoint in `workdir`."""
  checkpointer = kit.Checkpointer(workdir)
  step = checkpointer.latest_step()
  restored = checkpointer.restore()
  checkpointer.close()
  assert step == config.num_epochs
  return jax.tree.map(np.asarray, restored['params'])


@pytest.fixture(autouse=True)
def standard_promotion():
  with jax.numpy_dtype_promotion('standard'):
    yield


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, tfds_dir):
  workdir = tmp_path_factory.mktemp('smoke')
  config = _config(tfds_dir)
  with jax.numpy_dtype_promotion('standard'):
    results = train.train_and_evaluate(config, workdir)
  return workdir, config, results


def test_smoke_run_writes_everything(uninterrupted):
  workdir, config, results = uninterrupted
  accuracy = np.asarray(results['test']['accuracy'])
  assert accuracy.shape == (config.num_seeds, len(config.eval.noise_stds))
  for name, values in results['test'].items():
    assert np.all(np.isfinite(values)), name
  assert (workdir / 'robustness.png').stat().st_size > 1000
  assert (workdir / 'results.md').read_text().count('\n| ') == len(config.eval.noise_stds) + 1
  lines = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [line['step'] for line in lines if 'train/loss' in line] == [2, 4, 6]
  assert all(np.isfinite(line['train/loss']) for line in lines if 'train/loss' in line)
  assert json.loads((workdir / 'config.json').read_text())['num_epochs'] == 6
  assert list((workdir / 'tensorboard').glob('events.out.tfevents.*'))
  assert (workdir / 'checkpoints' / '6').is_dir()


def test_seeds_are_independent_models(uninterrupted):
  workdir, config, _ = uninterrupted
  kernels = [leaf for leaf in jax.tree.leaves(_final_params(workdir, config)) if leaf.ndim == 3]
  assert kernels and all(leaf.shape[0] == config.num_seeds for leaf in kernels)
  assert all(not np.allclose(leaf[0], leaf[1]) for leaf in kernels)


def test_killed_run_resumes_to_identical_parameters(uninterrupted, tmp_path, tfds_dir):
  workdir, config, _ = uninterrupted
  interrupted = _config(tfds_dir, stop_after_epochs=2)
  with pytest.raises(train.StopRequested):
    train.train_and_evaluate(interrupted, tmp_path)
  assert kit.Checkpointer(tmp_path).latest_step() == 2
  results = train.train_and_evaluate(config, tmp_path)  # restarts from epoch 2
  assert results['start_epoch'] == 2
  steps = [json.loads(line)['step'] for line in
           (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert steps[:3] == [2, 4, 6]  # no duplicated epochs in the log
  resumed, expected = _final_params(tmp_path, config), _final_params(workdir, config)
  jax.tree.map(np.testing.assert_array_equal, resumed, expected)


def test_resuming_with_another_config_raises(uninterrupted):
  workdir, _, _ = uninterrupted
  with pytest.raises(ValueError, match=r'different config \(learning_rate differ\)'):
    train.train_and_evaluate(_config(uninterrupted[1].data.data_dir, learning_rate=0.1), workdir)


def test_faithful_annealing_flag_changes_training(uninterrupted, tmp_path, tfds_dir):
  workdir, config, _ = uninterrupted
  assert not config.one_based_epochs
  train.train_and_evaluate(_config(tfds_dir, one_based_epochs=True), tmp_path)
  faithful, clean = _final_params(tmp_path, config), _final_params(workdir, config)
  assert not all(np.array_equal(a, b) for a, b in
                 zip(jax.tree.leaves(faithful), jax.tree.leaves(clean)))


def test_one_device_equals_eight_devices(uninterrupted, tmp_path, tfds_dir):
  workdir, config, results = uninterrupted
  assert jax.device_count() == 8 and config.num_devices is None  # the module run used 8
  single = train.train_and_evaluate(_config(tfds_dir, num_devices=1), tmp_path)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6),
               _final_params(tmp_path, config), _final_params(workdir, config))
  np.testing.assert_allclose(single['test']['accuracy'], results['test']['accuracy'], atol=0.01)


def test_unknown_names_raise(tmp_path, tfds_dir):
  with pytest.raises(KeyError, match="Unknown loss 'hinge'; valid names: ce, mse"):
    train.train_and_evaluate(_config(tfds_dir, loss='hinge'), tmp_path)
  with pytest.raises(KeyError, match='Unknown config variant'):
    default.get_config('huge')


def test_sigkill_mid_run_then_restart_matches_uninterrupted(tmp_path, tfds_dir):
  """A real kill (SIGKILL of the training process), not a clean stop: the restart resumes from
  the last complete checkpoint and ends with exactly the parameters of an uninterrupted run."""
  root = pathlib.Path(__file__).resolve().parents[2]
  killed_dir, reference_dir = tmp_path / 'killed', tmp_path / 'reference'

  def command(num_epochs):
    return [sys.executable, '-m', 'experiments.tmc_handwritten.train',
            '--config=experiments/tmc_handwritten/configs/default.py:smoke',
            f'--workdir={killed_dir}', f'--config.num_epochs={num_epochs}',
            f'--config.data.data_dir={tfds_dir}', '--config.num_seeds=1',
            '--config.num_devices=1']

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
  config = _config(tfds_dir, num_epochs=step + 2, num_seeds=1, num_devices=1)
  with jax.numpy_dtype_promotion('standard'):
    train.train_and_evaluate(config, reference_dir)
  results = json.loads((killed_dir / 'results.json').read_text())
  assert results['start_epoch'] == step
  jax.tree.map(np.testing.assert_array_equal, _final_params(killed_dir, config),
               _final_params(reference_dir, config))
