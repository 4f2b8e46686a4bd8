"""The training kit: mesh and sharding, checkpoints, metric writing, NaN guard, progress."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm import train


def test_eight_fake_devices_are_available():
  assert jax.device_count() == 8


def test_sharded_computation_equals_single_device():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 16)).astype(np.float32)
  w = rng.normal(size=(16, 4)).astype(np.float32)

  def loss(w, x):
    return jnp.mean(jnp.tanh(x @ w) ** 2)

  grads = {}
  for devices in (1, 8):
    mesh = train.make_mesh(devices)
    sharded_x = train.shard_batch(x, mesh)
    assert len(sharded_x.sharding.device_set) == devices
    replicated_w = jax.device_put(w, train.replicated(mesh))
    grads[devices] = np.asarray(jax.jit(jax.grad(loss))(replicated_w, sharded_x))
  np.testing.assert_allclose(grads[8], grads[1], rtol=1e-5, atol=1e-7)


def test_mesh_and_batch_errors():
  with pytest.raises(ValueError, match=r'num_devices must be in \[1, 8\]'):
    train.make_mesh(9)
  with pytest.raises(ValueError, match='batch size = 10 must be divisible by the 8 devices'):
    train.shard_batch(np.zeros((10, 2)), train.make_mesh(8))


def test_distributed_initialisation_is_env_gated(monkeypatch):
  monkeypatch.delenv('LQMM_DISTRIBUTED', raising=False)
  assert train.maybe_initialize_distributed() is False


def test_checkpoint_round_trip_and_resume(tmp_path):
  state = {'params': {'w': jnp.arange(6.0).reshape(2, 3)}, 'step': jnp.int32(7)}
  checkpointer = train.Checkpointer(tmp_path, max_to_keep=1)
  assert checkpointer.latest_step() is None
  assert checkpointer.restore_or(state) is state
  checkpointer.save(7, state)
  checkpointer.close()
  fresh = train.Checkpointer(str(tmp_path))
  restored = fresh.restore_or(jax.tree.map(jnp.zeros_like, state))
  np.testing.assert_array_equal(restored['params']['w'], state['params']['w'])
  assert int(restored['step']) == 7 and fresh.latest_step() == 7
  fresh.close()
  with pytest.raises(FileNotFoundError, match='No checkpoint'):
    train.Checkpointer(tmp_path / 'other').restore(state)


def test_metric_writer(tmp_path):
  writer = train.MetricWriter(tmp_path)
  writer.write_config({'lr': 0.1, 'name': 'x'})
  writer.write(1, {'loss': np.float32(2.5), 'acc': jnp.asarray(0.5)})
  writer.write(2, {'loss': float('nan')})
  writer.close()
  lines = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert lines == [{'step': 1, 'loss': 2.5, 'acc': 0.5}, {'step': 2, 'loss': None}]
  assert json.loads((tmp_path / 'config.json').read_text()) == {'lr': 0.1, 'name': 'x'}
  assert list((tmp_path / 'tensorboard').glob('events.out.tfevents.*'))
  other = train.MetricWriter(tmp_path / 'b')
  with pytest.raises(ValueError, match='scalars'):
    other.write(0, {'v': np.ones(3)})
  other.close()


def test_nan_guard_names_step_range():
  train.check_finite({'loss': np.ones(3)}, first_step=1, last_step=5)
  with pytest.raises(FloatingPointError, match='Non-finite loss between steps 11 and 20'):
    train.check_finite({'loss': np.array([1.0, np.nan]), 'acc': 1.0}, first_step=11,
                       last_step=20)


def test_progress_keeps_compile_time_apart():
  progress = train.Progress(10, disable=True)
  with progress.compiling():
    sum(range(100000))
  progress.update(5)
  progress.update(5)
  summary = progress.summary()
  progress.close()
  assert summary['compile_s'] > 0 and summary['run_s'] >= 0 and summary['rate'] > 0


def test_resumed_config_must_match_outside_the_resumable_keys(tmp_path):
  writer = train.MetricWriter(tmp_path, tensorboard=False)
  writer.check_same_config({'lr': 0.1, 'epochs': 5})  # no earlier run: nothing to compare
  writer.write_config({'lr': 0.1, 'epochs': 5, 'sizes': (1, 2)})
  writer.check_same_config({'lr': 0.1, 'epochs': 9, 'sizes': (1, 2)}, resumable=('epochs',))
  with pytest.raises(ValueError, match=r'different config \(epochs, lr differ\)'):
    writer.check_same_config({'lr': 0.2, 'epochs': 9, 'sizes': (1, 2)})
  writer.close()
