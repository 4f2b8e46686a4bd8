"""The training kit: mesh and sharding, checkpoints, metric writing, NaN guard, progress."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec

from lqmm import train
from tests import helpers as test_helpers


def test_eight_fake_devices_are_available():
  assert jax.device_count() == 8


def test_sharded_computation_equals_single_device():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 16)).astype(np.float32)
  w = rng.normal(size=(16, 4)).astype(np.float32)

  def loss(w, x):
    return jnp.mean(jnp.tanh(x @ w) ** 2)

  grads, programs = {}, {}
  for devices in (1, 8):
    mesh = train.make_mesh(devices)
    sharded_x = train.shard_batch(x, mesh)
    assert len(sharded_x.sharding.device_set) == devices
    # Split, not copied: each device holds its own 64 / devices rows.
    assert sharded_x.sharding.spec == PartitionSpec(train.DATA_AXIS)
    assert {shard.data.shape for shard in sharded_x.addressable_shards} == {(64 // devices, 16)}
    replicated_w = jax.device_put(w, train.replicated(mesh))
    compiled = jax.jit(jax.grad(loss)).lower(replicated_w, sharded_x).compile()
    programs[devices] = compiled.as_text()
    grads[devices] = np.asarray(compiled(replicated_w, sharded_x))
  np.testing.assert_allclose(grads[8], grads[1], rtol=1e-5, atol=1e-7)
  # The per-device gradients of the 8 slices are summed across devices.
  assert ('all-reduce' in programs[8], 'all-reduce' in programs[1]) == (True, False)


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


def test_resumable_keys_may_be_nested(tmp_path):
  writer = train.MetricWriter(tmp_path / 'run', tensorboard=False)
  writer.start({'train': {'num_epochs': 5, 'lr': 0.1}, 'eval': {'stds': [0.1]}})
  assert not (tmp_path / 'run').exists()  # nothing is written before the first record
  writer.write(1, {'loss': 0.5})
  assert (tmp_path / 'run' / 'config.json').exists()
  writer.check_same_config({'train': {'num_epochs': 9, 'lr': 0.1}, 'eval': {'stds': [0.5]}},
                           resumable=('train.num_epochs', 'eval'))
  with pytest.raises(ValueError, match=r'different config \(train.lr differ\)'):
    writer.check_same_config({'train': {'num_epochs': 5, 'lr': 0.2}, 'eval': {'stds': [0.1]}},
                             resumable=('eval',))
  writer.close()


# ---------------------------------------------------------------------------------- the loop


def _problem(rows=40, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(rows, 3)).astype(np.float32)
  return {'inputs': x, 'label': (x[:, 0] > 0).astype(np.int32)}


def _init(key):
  params = {'w': 0.1 * jax.random.normal(key, (3, 2)), 'b': jnp.zeros(2)}
  return train.TrainState.create(params=params, tx=optax.adam(5e-2))


def _logits(params, batch):
  return batch['inputs'] @ params['w'] + params['b'][None]


def _loss(params, batch):
  return test_helpers.weighted_cross_entropy(_logits(params, batch), batch)


def _train_step(state, batch, key):
  del key
  loss, grads = jax.value_and_grad(_loss)(state.params, batch)
  return state.apply_gradients(grads), {'loss': loss, 'rows': jnp.sum(batch['weight'])}


def _eval_step(state, batch):
  logits = _logits(state.params, batch)
  return {'accuracy': jnp.mean(jnp.argmax(logits, -1) == batch['label']),
          'nll': _loss(state.params, {**batch, 'weight': jnp.ones(batch['label'].shape)})}


def _fit(workdir=None, **overrides):
  config = {'num_epochs': 6, 'batch_size': 16, 'num_seeds': 2, 'eval_every': 2,
            'epochs_per_call': 2, 'select': ('accuracy', '-nll'), **overrides}
  with jax.numpy_dtype_promotion('standard'):
    return train.fit(_init, _train_step, _problem(), config=config, workdir=workdir,
                     eval_step=_eval_step, validation_data=_problem(seed=1), progress=False)


def test_fit_selects_on_validation_and_keeps_history():
  result = _fit()
  assert result.history['train/loss'].shape == (2, 6)
  assert result.history['validation/accuracy'].shape == (2, 3)
  # 40 rows in batches of 16: the last batch is padded, the weights count 40 rows per epoch.
  np.testing.assert_allclose(result.history['train/rows'], 40 / 3)
  accuracy = result.history['validation/accuracy']
  nll = result.history['validation/nll']
  for seed in range(2):
    # The kept epoch has the best accuracy, ties broken by the lower NLL.
    best = max(range(3), key=lambda i: (accuracy[seed, i], -nll[seed, i]))
    assert result.best_epoch[seed] == 2 * (best + 1)
  scores = train.evaluate(_eval_step, result.selected_state(), _problem(seed=1))
  np.testing.assert_allclose(scores['accuracy'], accuracy[np.arange(2), result.best_epoch // 2 - 1])
  # Seeds one at a time (lax.map) give the same scores as all at once.
  chunked = train.evaluate(_eval_step, result.selected_state(), _problem(seed=1),
                           seeds_per_call=1)
  np.testing.assert_allclose(chunked['accuracy'], scores['accuracy'])
  with pytest.raises(ValueError, match='seeds_per_call must be >= 1'):
    train.evaluate(_eval_step, result.selected_state(), _problem(seed=1), seeds_per_call=0)
  assert not np.array_equal(result.params['w'][0], result.params['w'][1])  # seeds differ


def test_fit_drop_remainder_and_full_batch():
  dropped = _fit(drop_remainder=True)
  np.testing.assert_allclose(dropped.history['train/rows'], 16)
  full = _fit(batch_size=None, num_devices=1)
  np.testing.assert_allclose(full.history['train/rows'], 40)


def _compiled_fit(monkeypatch, **overrides):
  """`_fit(**overrides)` and the HLO text of the training programs it compiled."""
  del monkeypatch
  with test_helpers.compiled_programs() as texts:
    result = _fit(**overrides)
  assert texts, 'fit compiled no program through Lowered.compile'
  return result, texts


def test_fit_on_eight_devices_splits_the_batch_and_equals_one_device(monkeypatch):
  eight, eight_programs = _compiled_fit(monkeypatch)  # num_devices None: all 8
  one, one_programs = _compiled_fit(monkeypatch, num_devices=1)
  # Each device gets 16 / 8 rows of every batch; the gradients are summed across devices (a
  # replicated batch would need no all-reduce).
  split = [('num_partitions=8' in text, 'all-reduce' in text) for text in eight_programs]
  assert all(a and b for a, b in split), split
  single_split = ['all-reduce' in text for text in one_programs]
  assert not any(single_split), single_split
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               eight.params, one.params)
  np.testing.assert_allclose(eight.history['train/loss'], one.history['train/loss'], rtol=1e-5)


def test_fit_resume_continues_the_history(tmp_path):
  reference = _fit(tmp_path / 'reference', checkpoint_every_epochs=2)
  with pytest.raises(train.StopRequested):
    _fit(tmp_path / 'run', checkpoint_every_epochs=2, stop_after_epochs=4)
  resumed = _fit(tmp_path / 'run', checkpoint_every_epochs=2)
  assert resumed.start_epoch == 4
  for key, values in reference.history.items():
    np.testing.assert_array_equal(resumed.history[key], values)
  jax.tree.map(np.testing.assert_array_equal, resumed.params, reference.params)
  np.testing.assert_array_equal(resumed.best_epoch, reference.best_epoch)
  # Without the saved history, the epochs before the resume are NaN (columns stay aligned).
  with pytest.raises(train.StopRequested):
    _fit(tmp_path / 'lost', checkpoint_every_epochs=2, stop_after_epochs=4)
  (tmp_path / 'lost' / 'checkpoints_history.npz').unlink()
  lost = _fit(tmp_path / 'lost', checkpoint_every_epochs=2)
  assert lost.history['train/loss'].shape == (2, 6)
  assert np.all(np.isnan(lost.history['train/loss'][:, :4]))
  np.testing.assert_array_equal(lost.history['train/loss'][:, 4:],
                                reference.history['train/loss'][:, 4:])
  # A stop at or after the last epoch is no stop: the run is complete.
  _fit(tmp_path / 'complete', checkpoint_every_epochs=2, stop_after_epochs=6)


def test_fit_hooks_and_seed_data():
  def init(key, offset):
    state = _init(key)
    return state.replace(extra={'offset': offset, 'epochs_started': jnp.int32(0)})

  def epoch_start(state, key):
    del key
    extra = dict(state.extra)
    extra['epochs_started'] = extra['epochs_started'] + 1
    return state.replace(extra=extra)

  def train_step(state, batch, key):
    state, metrics = _train_step(state, batch, key)
    return state, {**metrics, 'first_row': batch['index'][0].astype(jnp.float32),
                   'offset': state.extra['offset']}

  with jax.numpy_dtype_promotion('standard'):
    result = train.fit(init, train_step, _problem(), config={
        'num_epochs': 3, 'batch_size': 5, 'num_seeds': 2, 'shuffle': False,
        'num_devices': 1},
        epoch_start=epoch_start, epoch_rows=lambda state: jnp.arange(10, 20),
        seed_data=jnp.array([3.0, 7.0]), progress=False)
  np.testing.assert_array_equal(result.state.extra['epochs_started'], [3, 3])
  np.testing.assert_allclose(result.history['train/offset'], [[3.0] * 3, [7.0] * 3])
  # Rows 10-19 in order, batches of 5: first rows 10 and 15, mean 12.5.
  np.testing.assert_allclose(result.history['train/first_row'], 12.5)


def test_fit_nan_guard_names_the_epochs():
  def train_step(state, batch, key):
    state, metrics = _train_step(state, batch, key)
    return state, {**metrics, 'loss': jnp.where(state.epoch >= 2, jnp.nan, metrics['loss'])}

  with jax.numpy_dtype_promotion('standard'):
    with pytest.raises(FloatingPointError, match='train/loss between steps 3 and 4'):
      train.fit(_init, train_step, _problem(), config={'num_epochs': 6, 'batch_size': 8,
                                                       'epochs_per_call': 2}, progress=False)


@pytest.mark.parametrize('overrides, error, message', [
    ({'num_epochs': -1}, ValueError, 'config.train.num_epochs must be >= 1; got -1'),
    ({'num_epochs': np.int64(0)}, ValueError, 'config.train.num_epochs must be >= 1; got 0'),
    ({'num_epochs': jnp.int32(-2)}, ValueError, 'config.train.num_epochs must be >= 1; got -2'),
    ({'num_epochs': 2.0}, TypeError, 'config.train.num_epochs must be an integer'),
    ({'num_epochs': True}, TypeError, 'config.train.num_epochs must be an integer'),
    ({'batch_size': 0}, ValueError, 'config.train.batch_size must be >= 1; got 0'),
    ({'num_seeds': 0}, ValueError, 'config.train.num_seeds must be >= 1; got 0'),
    ({'checkpoint_every_epochs': 3}, ValueError, 'must be a multiple of'),
    ({'eval_every': 4}, ValueError, r'eval_every \(4\) must divide'),
    ({'num_devices': 9}, ValueError, 'config.train.num_devices must be <= 8'),
    ({'select': ('accuracy', 3)}, ValueError, 'select must hold metric names'),
    ({'stop_after_epochs': 2}, ValueError, 'stop_after_epochs .* needs a workdir'),
])
def test_fit_rejects_bad_settings(overrides, error, message):
  with pytest.raises(error, match=message):
    _fit(**overrides)


def test_fit_rejects_an_empty_validation_split_when_selecting():
  empty = jax.tree.map(lambda x: x[:0], _problem())
  with pytest.raises(ValueError, match='the validation split is empty'):
    train.fit(_init, _train_step, _problem(), config={'num_epochs': 2, 'batch_size': 8,
                                                      'select': ('accuracy',)},
              eval_step=_eval_step, validation_data=empty)
  with pytest.raises(KeyError, match="select names the validation metric 'auc'"):
    _fit(select=('auc',))


def test_check_number_covers_numpy_and_jax_scalars():
  for value in (-1.0, np.float32(-1.0), jnp.float32(-1.0), -1):
    with pytest.raises(ValueError, match='std must be >= 0'):
      train.check_number(value, 'std', minimum=0.0)
  for value in (float('nan'), np.float32('inf'), jnp.float32(jnp.nan)):
    with pytest.raises(ValueError, match='std must be finite'):
      train.check_number(value, 'std', minimum=0.0)
  with pytest.raises(TypeError, match='must be a number'):
    train.check_number('0.5', 'std')
  assert train.check_number(jnp.float32(0.5), 'std', minimum=0.0) == 0.5


def test_write_results_moves_earlier_results_aside(tmp_path):
  logged = []
  train.write_results(tmp_path, table='| a |', results={'x': 1}, log=logged.append)
  train.write_results(tmp_path, table='| a |', results={'x': 1}, log=logged.append)
  assert logged == ['| a |', '| a |'] and not (tmp_path / 'previous').exists()  # identical
  train.write_results(tmp_path, table='| b |', results={'x': 2}, files={'r.csv': 'a,b'},
                      log=logged.append)
  assert (tmp_path / 'previous' / '1' / 'results.md').read_text() == '| a |\n'
  assert (tmp_path / 'results.md').read_text() == '| b |\n'
  assert logged[-2] == '| b |' and 'previous/1' in logged[-1]
  assert (tmp_path / 'r.csv').read_text() == 'a,b'


# ------------------------------------------------------------ non-parameter model variables
def _bn_model():
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from lqmm import nn  # pylint: disable=g-import-not-at-top

  class Net(nnx.Module):
    def __init__(self):
      self.linear = nn.torch_linear(3, 4, rngs=nnx.Rngs(0))
      self.norm = nn.BatchNorm(4)
      self.head = nn.torch_linear(4, 2, rngs=nnx.Rngs(0))

    def __call__(self, x, mask=None):
      return self.head(jax.nn.relu(self.norm(self.linear(x), mask)))

  return Net


def _bn_step(state, batch, key):
  del key

  def loss_fn(params):
    model = state.model(params)
    logits = model(batch['inputs'], batch['weight'] > 0)
    return (test_helpers.weighted_cross_entropy(logits, batch),
            state.model_variables(model))

  (loss, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  return state.apply_gradients(grads).replace(model_state=model_state), {'loss': loss}


def test_batchnorm_statistics_travel_with_the_state_and_resume(tmp_path):
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from lqmm import nn  # pylint: disable=g-import-not-at-top
  init = train.initializer(_bn_model(), optax.adam(1e-2), init_params=nn.torch_linear_init)
  state = init(jax.random.key(0))
  np.testing.assert_array_equal(state.model_state['norm']['var'][...], np.ones(4))
  np.testing.assert_array_equal(state.params['norm']['scale'][...], np.ones(4))  # torch's init
  config = {'num_epochs': 4, 'batch_size': 8, 'num_seeds': 2, 'epochs_per_call': 2,
            'checkpoint_every_epochs': 2}

  def fit(workdir, **overrides):
    with jax.numpy_dtype_promotion('standard'):
      return train.fit(init, _bn_step, _problem(), config={**config, **overrides},
                       workdir=workdir, progress=False)

  reference = fit(tmp_path / 'reference')
  moved = reference.state.model_state['norm']['mean'][...]
  assert moved.shape == (2, 4) and np.all(moved != 0)  # per seed, updated by the steps
  with pytest.raises(train.StopRequested):
    fit(tmp_path / 'run', stop_after_epochs=2)
  resumed = fit(tmp_path / 'run')
  jax.tree.map(np.testing.assert_array_equal, resumed.state.model_state,
               reference.state.model_state)
  jax.tree.map(np.testing.assert_array_equal, resumed.params, reference.params)
  # The model of one seed carries its statistics; eval mode normalises with them.
  one = jax.tree.map(lambda x: x[0], reference.state)
  model = one.model()
  model.eval()
  x = jnp.asarray(_problem()['inputs'][:5])
  hidden = model.linear(x)
  stats, params = one.model_state['norm'], one.params['norm']
  expected = ((hidden - stats['mean'][...][None]) / jnp.sqrt(stats['var'][...][None] + 1e-5)
              * params['scale'][...][None] + params['bias'][...][None])
  np.testing.assert_allclose(model.norm(hidden), expected, rtol=1e-5, atol=1e-6)
  assert isinstance(nnx.state(model, nnx.BatchStat), nnx.State)


def test_compilation_cache_folder_follows_the_environment(monkeypatch, tmp_path):
  from lqmm.train import outputs
  before = (jax.config.jax_compilation_cache_dir,
            jax.config.jax_persistent_cache_min_compile_time_secs)
  try:
    monkeypatch.setenv('LQMM_COMPILATION_CACHE', 'off')
    assert outputs.enable_compilation_cache() is None
    monkeypatch.setenv('LQMM_COMPILATION_CACHE', str(tmp_path / 'cache'))
    assert outputs.enable_compilation_cache() == str(tmp_path / 'cache')
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / 'cache')
    monkeypatch.delenv('LQMM_COMPILATION_CACHE')
    assert outputs.enable_compilation_cache() == str(tmp_path / 'cache')   # JAX's, kept
    jax.config.update('jax_compilation_cache_dir', None)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert outputs.enable_compilation_cache() == str(tmp_path / 'xdg' / 'lqmm' / 'jax')
  finally:
    jax.config.update('jax_compilation_cache_dir', before[0])
    jax.config.update('jax_persistent_cache_min_compile_time_secs', before[1])
