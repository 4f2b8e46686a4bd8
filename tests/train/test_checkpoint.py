"""Checkpoint integrity: a damaged or partially written newest checkpoint is skipped with a
warning, the newest intact one is restored (and `fit` then ends bit for bit like an
uninterrupted run), none intact is an error; the NaN guard names a verified checkpoint; a
rerun logs each metric once.

Each damage is done to the newest of the two checkpoints (epochs 2 and 4) of a run stopped
after epoch 4. Orbax 0.12 writes `<step>/_CHECKPOINT_METADATA` (step metadata, with lqmm's
checksums), `<step>/default/_METADATA` (the tree) and an OCDBT database under
`<step>/default/`: b-tree nodes (zstd-compressed, with a CRC-32C that TensorStore checks)
holding values up to 1 KiB inline, and larger values (zstd-compressed zarr chunks) in data
files without a checksum, here under `default/ocdbt.process_0/d/` (one device; the layout
changes with the mesh). A flipped byte in a node fails the restore; one in a large value can
restore silently wrong, which is what `_flip_byte` looks for and only the checksums catch.
"""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from lqmm import train
from lqmm.train import checkpoint as checkpoint_lib
from tests import helpers as test_helpers

# A failed Orbax restore leaves un-awaited coroutines behind, which pytest reports on collection.
pytestmark = pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')

HIDDEN = 256  # arrays over 1 KiB: OCDBT stores them as separate values, not inline


def _problem(rows=40, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(rows, 3)).astype(np.float32)
  return {'inputs': x, 'label': (x[:, 0] > 0).astype(np.int32)}


def _init(key):
  first, second = jax.random.split(key)
  params = {'w1': 0.5 * jax.random.normal(first, (3, HIDDEN)), 'b1': jnp.zeros(HIDDEN),
            'w2': 0.1 * jax.random.normal(second, (HIDDEN, 2)), 'b2': jnp.zeros(2)}
  return train.TrainState.create(params=params, tx=optax.adam(5e-2))


def _logits(params, batch):
  hidden = jnp.tanh(batch['inputs'] @ params['w1'] + params['b1'][None])
  return hidden @ params['w2'] + params['b2'][None]


def _loss(params, batch):
  return test_helpers.weighted_cross_entropy(_logits(params, batch), batch)


def _train_step(state, batch, key):
  del key
  loss, grads = jax.value_and_grad(_loss)(state.params, batch)
  return state.apply_gradients(grads), {'loss': loss}


def _eval_step(state, batch):
  return {'accuracy': jnp.mean(jnp.argmax(_logits(state.params, batch), -1) == batch['label'])}


def _fit(workdir, train_step=_train_step, writer=None, **overrides):
  config = {'num_epochs': 6, 'batch_size': 16, 'num_seeds': 2, 'eval_every': 2,
            'epochs_per_call': 2, 'checkpoint_every_epochs': 2, 'select': ('accuracy',),
            'num_devices': 1, **overrides}
  with jax.numpy_dtype_promotion('standard'):
    return train.fit(_init, train_step, _problem(), config=config, workdir=workdir,
                     eval_step=_eval_step, validation_data=_problem(seed=1), writer=writer,
                     progress=False)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """An uninterrupted run and a run stopped after epoch 4 (checkpoints 2 and 4), made once."""
  root = tmp_path_factory.mktemp('runs')
  reference = _fit(root / 'reference')
  with pytest.raises(train.StopRequested):
    _fit(root / 'stopped', stop_after_epochs=4)
  return reference, root / 'stopped'


def _stopped_copy(runs, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(runs[1], workdir)
  return workdir, workdir / 'checkpoints'


def _largest_data_file(step_folder):
  return max((step_folder / 'default' / 'ocdbt.process_0' / 'd').iterdir(),
             key=lambda path: path.stat().st_size)


def _truncate(step_folder):
  path = _largest_data_file(step_folder)
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])


def _orbax_restore(step_folder):
  """The step's arrays as Orbax alone restores them (no checksums), or None if it fails."""
  checkpointer = ocp.StandardCheckpointer()
  try:
    saved = checkpointer.metadata(step_folder / 'default').item_metadata
    like = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), saved)
    return jax.tree.map(np.asarray, checkpointer.restore(step_folder / 'default', like))
  except Exception:  # noqa: BLE001 (any failure: Orbax saw the damage)
    return None
  finally:
    checkpointer.close()


def _flip_byte(step_folder):
  """Flips one byte of a data file (largest first; 16 offsets spread over each file) where
  Orbax still restores without an error, but other values: damage that only the checksums
  can see. Where a flip lands is layout-dependent (compressed chunks fail loudly, headers and
  b-tree nodes are checked by OCDBT), hence the search."""
  intact = _orbax_restore(step_folder)
  for path in sorted((step_folder / 'default').glob('**/d/*'), key=lambda p: -p.stat().st_size):
    data = path.read_bytes()
    for fraction in np.linspace(0.05, 0.95, 16):
      flipped = bytearray(data)
      flipped[int(len(data) * fraction)] ^= 0x01
      path.write_bytes(bytes(flipped))
      restored = _orbax_restore(step_folder)
      if restored is not None and not all(
          np.array_equal(a, b) for a, b in zip(jax.tree.leaves(restored),
                                               jax.tree.leaves(intact))):
        return
      path.write_bytes(data)
  raise AssertionError(f'no byte of {step_folder} flips silently')


def _alter_a_recorded_checksum(step_folder):
  """Data and recorded digest disagree, whatever the file layout (the deterministic twin of
  `_flip_byte`: the comparison itself must run)."""
  path = step_folder / '_CHECKPOINT_METADATA'
  metadata = json.loads(path.read_text())
  leaves = metadata['custom_metadata']['lqmm_checksums']['leaves']
  name = sorted(leaves)[0]
  leaves[name]['sha256'] = '0' * 64
  path.write_text(json.dumps(metadata))


def _kill_while_saving(step_folder):
  """What a kill during the save leaves: Orbax's temporary folder, never renamed."""
  _truncate(step_folder)
  step_folder.rename(step_folder.parent / f'{step_folder.name}.orbax-checkpoint-tmp')


DAMAGE = {
    'truncated': (_truncate, 'Orbax could not restore it', '4.corrupt'),
    'no_step_metadata': (lambda folder: (folder / '_CHECKPOINT_METADATA').unlink(),
                         '_CHECKPOINT_METADATA is missing', '4.corrupt'),
    'no_tree_metadata': (lambda folder: (folder / 'default' / '_METADATA').unlink(),
                         'default/_METADATA is missing', '4.corrupt'),
    'flipped_byte': (_flip_byte, 'differ from the checksums recorded', '4.corrupt'),
    'altered_checksum': (_alter_a_recorded_checksum, 'differ from the checksums recorded',
                         '4.corrupt'),
    'partially_written': (_kill_while_saving, 'a partially written checkpoint', '4.partial'),
}


@pytest.mark.parametrize('damage', sorted(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_to_the_older_one(runs, tmp_path, damage):
  reference, _ = runs
  workdir, folder = _stopped_copy(runs, tmp_path)
  corrupt, reason, renamed = DAMAGE[damage]
  corrupt(folder / '4')
  with pytest.warns(train.CheckpointWarning) as caught:
    resumed = _fit(workdir)
  messages = [str(warning.message) for warning in caught]
  skipped = [message for message in messages if message.startswith('Skipped')]
  assert len(skipped) == 1, messages
  assert str(folder / '4') in skipped[0] and reason in skipped[0] and renamed in skipped[0]
  assert any(f'Restored checkpoint {folder / "2"}' in message for message in messages)
  assert resumed.start_epoch == 2
  # Epochs 3 to 6 trained again from checkpoint 2: the result of the uninterrupted run.
  jax.tree.map(np.testing.assert_array_equal, resumed.params, reference.params)
  jax.tree.map(np.testing.assert_array_equal, resumed.state.opt_state, reference.state.opt_state)
  np.testing.assert_array_equal(resumed.best_epoch, reference.best_epoch)
  for key, values in reference.history.items():
    np.testing.assert_array_equal(resumed.history[key], values)
  # The damaged folder is set aside; the run saved 4 and 6 anew, and they verify.
  assert sorted(path.name for path in folder.iterdir()) == sorted(['4', '6', renamed])
  checkpointer = train.Checkpointer(workdir)
  assert checkpointer.latest_step() == 6 and checkpointer.newest_intact_step() == 6
  checkpointer.close()


def test_every_checkpoint_damaged_raises_naming_the_folder(runs, tmp_path):
  workdir, folder = _stopped_copy(runs, tmp_path)
  _flip_byte(folder / '4')
  (folder / '2' / '_CHECKPOINT_METADATA').unlink()
  with pytest.raises(train.CheckpointError, match=f'No intact checkpoint in {folder}') as error:
    _fit(workdir)
  assert '4: its arrays differ from the checksums' in str(error.value)
  assert '2: its Orbax metadata is damaged' in str(error.value)
  assert sorted(path.name for path in folder.iterdir()) == ['2', '4']  # nothing moved


def test_restore_of_a_named_damaged_step_raises(runs, tmp_path):
  _, folder = _stopped_copy(runs, tmp_path)
  _flip_byte(folder / '4')
  checkpointer = train.Checkpointer(folder.parent)
  with pytest.raises(train.CheckpointError, match=f'{folder} for step 4'):
    checkpointer.restore(step=4)
  assert checkpointer.newest_intact_step() == 2
  restored = checkpointer.restore(step=2)  # as saved: nested dicts of numpy arrays
  assert int(restored['state']['epoch'][0]) == 2
  checkpointer.close()
  assert sorted(path.name for path in folder.iterdir()) == ['2', '4']  # read-only so far


def test_only_a_partial_checkpoint_starts_afresh_with_a_warning(tmp_path):
  state = {'w': jnp.arange(300.0)}
  checkpointer = train.Checkpointer(tmp_path)
  checkpointer.save(2, state)
  checkpointer.close()
  folder = tmp_path / 'checkpoints'
  (folder / '2').rename(folder / '2.orbax-checkpoint-tmp')
  fresh = train.Checkpointer(tmp_path)
  with pytest.warns(train.CheckpointWarning, match='training starts from the beginning'):
    assert fresh.restore_or(state) is state
  fresh.close()
  assert sorted(path.name for path in folder.iterdir()) == ['2.partial']


def _save_without_checksums(folder, step, state):
  """A checkpoint as lqmm wrote them before it recorded checksums."""
  manager = ocp.CheckpointManager(folder, options=ocp.CheckpointManagerOptions(create=True))
  manager.save(step, args=ocp.args.StandardSave(state))
  manager.wait_until_finished()
  manager.close()


def test_checkpoints_without_checksums(tmp_path):
  state = {'w': jnp.arange(300.0), 'step': jnp.int32(1)}
  _save_without_checksums(tmp_path / 'checkpoints', 1, state)
  checkpointer = train.Checkpointer(tmp_path)
  # Alone, a checkpoint from before the checksums is restored, with a warning.
  with pytest.warns(train.CheckpointWarning, match='no recorded checksums.*unverified'):
    restored = checkpointer.restore_or(jax.tree.map(jnp.zeros_like, state))
  np.testing.assert_array_equal(restored['w'], state['w'])
  # Beside a checkpoint with checksums, it counts as damaged.
  checkpointer.save(2, {**state, 'step': jnp.int32(2)})
  checkpointer.wait()
  with pytest.raises(train.CheckpointError, match='1: it has no recorded checksums'):
    checkpointer.restore(step=1)
  checkpointer.close()


def test_saved_checksums_are_in_the_step_metadata(tmp_path):
  state = {'params': {'w': jnp.arange(6.0).reshape(2, 3)}, 'step': jnp.int32(7)}
  checkpointer = train.Checkpointer(tmp_path, async_save=True)
  checkpointer.save(7, state)
  checkpointer.close()
  metadata = json.loads((tmp_path / 'checkpoints' / '7' / '_CHECKPOINT_METADATA').read_text())
  leaves = metadata['custom_metadata']['lqmm_checksums']['leaves']
  assert leaves == checkpoint_lib.checksums(state)
  assert leaves['step']['shape'] == [] and leaves['params/w']['dtype'] == 'float32'


def test_nan_guard_names_the_newest_verified_checkpoint(tmp_path):
  def train_step(state, batch, key):
    state, metrics = _train_step(state, batch, key)
    return state, {'loss': jnp.where(state.epoch >= 4, jnp.nan, metrics['loss'])}

  folder = tmp_path / 'checkpoints'
  with pytest.raises(FloatingPointError, match='train/loss between steps 5 and 6') as error:
    _fit(tmp_path, train_step=train_step)
  assert f'newest intact checkpoint (verified against its checksums) is {folder / "4"}' in str(
      error.value)


def test_rerunning_a_finished_run_logs_each_metric_once(runs, tmp_path):
  def run():
    writer = train.MetricWriter(tmp_path, tensorboard=False)
    result = _fit(tmp_path, writer=writer)
    # What every experiment does after `fit`: its test metrics at the last epoch.
    writer.write(6, {'test/accuracy': 0.5})
    writer.close()
    return result

  run()
  first = (tmp_path / 'metrics.jsonl').read_text()
  assert run().start_epoch == 6  # nothing left to train
  assert (tmp_path / 'metrics.jsonl').read_text() == first
  records = [json.loads(line) for line in first.splitlines()]
  assert [record['step'] for record in records if 'test/accuracy' in record] == [6]
  assert [record['step'] for record in records if 'train/loss' in record] == [2, 4, 6]


def test_metric_writer_replaces_a_rewritten_metric(tmp_path):
  writer = train.MetricWriter(tmp_path, tensorboard=False)
  writer.write(1, {'loss': 2.0, 'accuracy': 0.5})
  writer.write(2, {'loss': 1.0})
  writer.close()
  again = train.MetricWriter(tmp_path, tensorboard=False)
  again.write(1, {'accuracy': 0.75})
  again.write(2, {'loss': 0.5})
  again.close()
  lines = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert lines == [{'step': 1, 'loss': 2.0}, {'step': 1, 'accuracy': 0.75},
                   {'step': 2, 'loss': 0.5}]


def test_typed_prng_keys_are_checksummed_and_verified(tmp_path):
  """A state holding typed PRNG keys (e.g. OGM-GE's noise key) saves, verifies and restores."""
  state = {'key': jax.random.key(3), 'keys': jax.vmap(jax.random.key)(jnp.arange(2)),
           'w': jnp.arange(3.0)}
  checkpointer = checkpoint_lib.Checkpointer(tmp_path, async_save=False)
  checkpointer.save(1, state)
  checkpointer.close()
  restored = checkpoint_lib.Checkpointer(tmp_path).restore(state)
  np.testing.assert_array_equal(jax.random.key_data(restored['keys']),
                                jax.random.key_data(state['keys']))
  assert checkpoint_lib.Checkpointer(tmp_path).newest_intact_step(state) == 1
