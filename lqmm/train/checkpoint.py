"""Orbax checkpointing with auto-resume and checksums, wrapped in one small class.

Integrity. Every save records a sha256 digest of each array of the state (its dtype, shape and
bytes) in the Orbax step metadata, `<step>/_CHECKPOINT_METADATA` (`custom_metadata` under
`'lqmm_checksums'`). Orbax writes that file into the temporary folder before the atomic rename
that finishes a step (on GCS: before `commit_success.txt`), also for asynchronous saves, so a
finished step never lacks its checksums: a kill at any moment leaves either a finished step
with its checksums or an unfinished one (`<step>.orbax-checkpoint-tmp...`; on GCS a step
without `commit_success.txt`), never a finished step whose checksums are still to be written.

Restoring walks the steps newest first and takes the newest intact one. A step is skipped,
with a `CheckpointWarning` naming its folder and the reason, when Orbax does not count it as
finished (partially written), its `_CHECKPOINT_METADATA` or an item's `_METADATA` is missing or
unreadable, it has no checksums, its arrays do not have the names, dtypes and shapes of the
state to restore into, Orbax fails to restore it (e.g. a truncated file, or a flipped bit in
the b-tree nodes OCDBT checksums itself), or the restored arrays differ from the recorded
digests (e.g. a flipped bit in array data OCDBT stores outside those nodes, which restores
silently wrong). Once an intact step is found, the skipped step folders newer than it are
renamed to `<step>.corrupt` and every temporary folder to `<step>.partial`, which Orbax
ignores, so that no later save or `latest_step` trips over them; they stay for inspection
(Orbax's `max_to_keep` never deletes them). If checkpoints exist but none is intact,
`CheckpointError` names the folder and every step's reason, and nothing is renamed.

Steps without checksums (written before lqmm recorded them) are accepted, unverified and with
a warning, only in a folder where no step carries checksums and only if Orbax restores them
cleanly; next to a checksummed step they count as damaged.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

#: The key of the checksums in Orbax's `custom_metadata` of a step.
CHECKSUM_KEY = 'lqmm_checksums'
_STEP_NAME = re.compile(r'0|[1-9]\d*')
_TMP_NAME = re.compile(r'(0|[1-9]\d*)\.orbax-checkpoint-tmp.*')


class CheckpointError(RuntimeError):
  """Checkpoints exist, but the one asked for (or every one) is damaged."""


class CheckpointWarning(UserWarning):
  """A damaged or partially written checkpoint was skipped, or an unverified one restored."""


def resolve_workdir(workdir) -> epath.Path:
  """`workdir` as an `epath.Path`: URIs (`gs://...`) kept as they are, local paths absolute."""
  if '://' in str(workdir):
    return epath.Path(workdir)
  return epath.Path(workdir).expanduser().absolute()


def _key_name(entry) -> str:
  for attribute in ('key', 'name', 'idx'):
    if hasattr(entry, attribute):
      return str(getattr(entry, attribute))
  return str(entry)


def _plain(leaf):
  """`leaf`, with a typed PRNG key array replaced by its raw `uint32` key data."""
  if hasattr(leaf, 'dtype') and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(leaf)
  return leaf


def _host_array(leaf) -> np.ndarray:
  """The whole of `leaf` as a numpy array on this host (multi-host arrays gathered); typed
  PRNG keys as their key data."""
  leaf = _plain(leaf)
  if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
    if leaf.is_fully_replicated:
      return np.asarray(leaf.addressable_data(0))
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
  return np.asarray(leaf)


def _leaves(tree) -> dict[str, object]:
  """`{'state/params/w': leaf, ...}`: the leaves by their key path, the same for a state and
  for the nested dicts Orbax restores it as."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {'/'.join(_key_name(entry) for entry in path): leaf for path, leaf in flat}


def checksums(tree) -> dict[str, dict]:
  """`{leaf path: {'dtype', 'shape', 'sha256'}}` of every array of `tree` (read to the host).

  The digest covers the dtype, the shape and the bytes, so a restored state matches only if
  it is bitwise the saved one.
  """
  out = {}
  for name, leaf in _leaves(tree).items():
    array = _host_array(leaf)
    digest = hashlib.sha256(f'{array.dtype.name}{list(array.shape)}'.encode())
    digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    out[name] = {'dtype': array.dtype.name, 'shape': list(array.shape),
                 'sha256': digest.hexdigest()}
  return out


def _differences(recorded: dict, found: dict, what: str, keys=('dtype', 'shape')) -> str | None:
  """A sentence naming the leaves where `found` differs from `recorded`, or None."""
  missing = sorted(set(recorded) - set(found))
  extra = sorted(set(found) - set(recorded))
  changed = sorted(name for name in set(recorded) & set(found)
                   if any(recorded[name].get(key) != found[name].get(key) for key in keys))
  if not (missing or extra or changed):
    return None
  parts = []
  for label, names in (('missing', missing), ('not in the checkpoint', extra),
                       ('differ', changed)):
    if names:
      shown = ', '.join(names[:4]) + (f' and {len(names) - 4} more' if len(names) > 4 else '')
      parts.append(f'{label}: {shown}')
  return f'{what} ({"; ".join(parts)})'


def _describe(error: BaseException) -> str:
  """`Type: first line` of the innermost cause of `error` (TensorStore's spec left out)."""
  while error.__cause__ is not None or error.__context__ is not None:
    error = error.__cause__ or error.__context__
  message = (str(error).splitlines() or [''])[0].split(' [tensorstore_spec')[0]
  return f'{type(error).__name__}: {message[:300]}'


def _read_json(folder: epath.Path, name: str):
  """The JSON in `folder / name`, or raises ValueError with a reason."""
  try:
    text = (folder / name).read_text()
  except FileNotFoundError:
    raise ValueError(f'{name} is missing') from None
  except OSError as error:
    raise ValueError(f'{name} is unreadable ({error})') from None
  try:
    return json.loads(text)
  except ValueError as error:
    raise ValueError(f'{name} is not valid JSON ({error})') from None


class Checkpointer:
  """Saves and restores a pytree state under `<workdir>/checkpoints` with Orbax, checksummed.

  Usage::

      checkpointer = Checkpointer(workdir, max_to_keep=2)
      state = checkpointer.restore_or(state)   # newest intact checkpoint, or `state` unchanged
      checkpointer.save(step, state)
      checkpointer.close()                     # waits for async saves to finish

  See the module docstring for the checksums and what a restore does with damaged steps.

  Args:
    workdir: the run's folder: a local path (made absolute; Orbax requires absolute paths) or
      a URI such as `gs://bucket/run` that every host can reach.
    max_to_keep: how many checkpoints to keep.
    async_save: write in a background thread (call `close` or `wait` before exit).
    subdir: a sub-folder of `<workdir>/checkpoints`, for a run that trains several models.
  """

  def __init__(self, workdir, *, max_to_keep: int = 2, async_save: bool = True,
               subdir: str | None = None):
    self.directory = resolve_workdir(workdir) / 'checkpoints'
    if subdir:
      self.directory = self.directory / subdir
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=async_save)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_handlers=ocp.StandardCheckpointHandler())

  def latest_step(self) -> int | None:
    """The step of the newest checkpoint Orbax counts as finished (not verified), or None."""
    return self._manager.latest_step()

  def save(self, step: int, state, *, force: bool = True) -> None:
    """Saves `state` as checkpoint `step` (asynchronously unless disabled), with checksums.

    The digests are computed now (the arrays are read to the host) and written by Orbax into
    the step's `_CHECKPOINT_METADATA` before the step is finished.
    """
    metadata = {CHECKSUM_KEY: {'version': 1, 'leaves': checksums(state)}}
    self._manager.save(step, args=ocp.args.StandardSave(state), force=force,
                       custom_metadata=metadata)

  # ------------------------------------------------------------------------------ inspection
  def _folders(self) -> tuple[list[int], list[epath.Path]]:
    """The step numbers with a step folder (newest first) and the Orbax temporary folders."""
    if not self.directory.exists():
      return [], []
    steps, partial = [], []
    for path in self.directory.iterdir():
      if _STEP_NAME.fullmatch(path.name) and path.is_dir():
        steps.append(int(path.name))
      elif _TMP_NAME.fullmatch(path.name):
        partial.append(path)
    return sorted(steps, reverse=True), sorted(partial)

  def _metadata(self, step: int, finished: set[int]):
    """`(checksums or None, None)` for a step whose metadata is in order, else `(None, why)`."""
    folder = self.directory / str(step)
    if step not in finished:
      return None, ('Orbax does not count it as finished (no commit_success.txt): a partially '
                    'written checkpoint')
    try:
      metadata = _read_json(folder, '_CHECKPOINT_METADATA')
      items = metadata.get('item_handlers') if isinstance(metadata, dict) else None
      for item in items if isinstance(items, dict) else ():
        _read_json(folder, f'{item}/_METADATA')
    except ValueError as error:
      return None, f'its Orbax metadata is damaged: {error}'
    if not isinstance(items, dict) or not items:
      return None, 'its Orbax metadata is damaged: _CHECKPOINT_METADATA names no items'
    recorded = (metadata.get('custom_metadata') or {}).get(CHECKSUM_KEY)
    if recorded is not None and not isinstance((recorded or {}).get('leaves'), dict):
      return None, 'its recorded checksums are unreadable'
    return (recorded['leaves'] if recorded is not None else None), None

  def _restore_step(self, step: int, state):
    if state is None:
      # As numpy arrays on this host, whatever devices or processes wrote them (restoring
      # with the saved shardings needs the saving run's devices).
      metadata = self._manager.item_metadata(step)
      target = jax.tree.map(
          lambda leaf: np.empty(leaf.shape, leaf.dtype) if hasattr(leaf, 'dtype') else leaf,
          metadata)
      return self._manager.restore(step, args=ocp.args.StandardRestore(target))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def _check(self, step: int, state, recorded, legacy: bool):
    """`(restored, None)` when checkpoint `step` is intact, else `(None, reason)`."""
    if recorded is None and not legacy:
      return None, ('it has no recorded checksums although other checkpoints in this folder '
                    'have them, so it cannot be verified')
    if recorded is not None and state is not None:
      expected = {name: {'dtype': np.dtype(_plain(leaf).dtype).name,
                         'shape': list(np.shape(_plain(leaf)))}
                  for name, leaf in _leaves(state).items()}
      reason = _differences(recorded, expected, 'the state to restore into does not have the '
                            'saved arrays')
      if reason:
        return None, reason
    try:
      restored = self._restore_step(step, state)
    except Exception as error:  # noqa: BLE001 (whatever Orbax raises, the step is damaged)
      return None, f'Orbax could not restore it ({_describe(error)})'
    if recorded is not None:
      reason = _differences(recorded, checksums(restored),
                            'its arrays differ from the checksums recorded when it was saved',
                            keys=('dtype', 'shape', 'sha256'))
      if reason:
        return None, reason
    return restored, None

  def _newest_intact(self, state, *, step: int | None = None, quiet: bool = False,
                     verified: bool = False):
    """Walks the steps (or only `step`) newest first: `(step, restored, skipped, partial)` with
    `skipped = [(step, reason)]` of the damaged ones newer than it; step None if none is.
    With `verified`, steps without checksums never count as intact."""
    self._manager.reload()
    steps, partial = self._folders()
    finished = set(self._manager.all_steps())
    metadata = {s: self._metadata(s, finished) for s in steps}
    legacy = not verified and not any(recorded is not None for recorded, _ in metadata.values())
    skipped = []
    for candidate in (steps if step is None else [s for s in steps if s == step]):
      recorded, reason = metadata[candidate]
      restored = None
      if reason is None:
        restored, reason = self._check(candidate, state, recorded, legacy)
      if reason is None:
        if recorded is None and not quiet:
          warnings.warn(f'Checkpoint {self.directory / str(candidate)} has no recorded '
                        'checksums (written before lqmm recorded them); it was restored '
                        'unverified.', CheckpointWarning, stacklevel=3)
        return candidate, restored, skipped, partial
      skipped.append((candidate, reason))
    return None, None, skipped, partial

  def newest_intact_step(self, state=None) -> int | None:
    """The step of the newest checkpoint that restores and matches its recorded checksums, or
    None; read-only (nothing is renamed or warned about). `state` as for `restore`."""
    return self._newest_intact(state, quiet=True, verified=True)[0]

  # ------------------------------------------------------------------------------ restoring
  def _quarantine(self, paths: list[epath.Path]) -> list[str]:
    """Renames each step folder to `<step>.corrupt` and each temporary folder to
    `<step>.partial` (`-2`, `-3`, ... added when taken); returns the new names."""
    if not paths:
      return []
    renamed = []
    for path in paths:
      match = _TMP_NAME.fullmatch(path.name)
      name = f'{match.group(1)}.partial' if match else f'{path.name}.corrupt'
      target, number = path.parent / name, 1
      while target.exists():
        number += 1
        target = path.parent / f'{name}-{number}'
      if jax.process_index() == 0:
        path.rename(target)
      renamed.append(target.name)
    if renamed and jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices('lqmm_checkpoint_quarantine')
    self._manager.reload()
    return renamed

  def restore(self, state=None, step: int | None = None):
    """Restores checkpoint `step`, verified against its checksums; by default the newest
    intact one (damaged newer ones are skipped with a warning and renamed, see the module
    docstring).

    Args:
      state: a pytree like the saved one; the result takes its structure, dtypes and shardings.
        With None, the checkpoint is returned as saved (nested dicts of numpy arrays).
      step: which checkpoint (it must be intact); None for the newest intact one.

    Raises:
      FileNotFoundError: there is no checkpoint to restore.
      CheckpointError: checkpoints exist, but `step` (or every one) is damaged; the message
        names the folder and each step's reason.
    """
    found, restored, skipped, partial = self._newest_intact(state, step=step)
    if found is None and not skipped:
      where = f'checkpoint {step}' if step is not None else 'checkpoint'
      partial_note = (f' (only partially written ones: {", ".join(p.name for p in partial)})'
                      if partial else '')
      raise FileNotFoundError(f'No {where} in {self.directory}{partial_note}.')
    if found is None:
      reasons = '; '.join(f'{s}: {reason}' for s, reason in skipped)
      raise CheckpointError(
          f'No intact checkpoint in {self.directory}' + (f' for step {step}' if step is not None
                                                         else '') +
          f' ({reasons}). Nothing was restored and nothing was moved; restore an intact copy, '
          'or move the folder aside to start afresh.')
    if step is None:
      renamed = iter(self._quarantine([self.directory / str(s) for s, _ in skipped] + partial))
      for s, reason in skipped:
        warnings.warn(f'Skipped checkpoint {self.directory / str(s)}: {reason}. Renamed it to '
                      f'{next(renamed)} so that Orbax ignores it.', CheckpointWarning,
                      stacklevel=2)
      for path in partial:
        warnings.warn(f'Skipped {path}: a partially written checkpoint (the run stopped while '
                      f'saving it). Renamed it to {next(renamed)} so that Orbax ignores it.',
                      CheckpointWarning, stacklevel=2)
      if skipped or partial:
        warnings.warn(f'Restored checkpoint {self.directory / str(found)} (step {found}), the '
                      'newest intact one.', CheckpointWarning, stacklevel=2)
    return restored

  def restore_or(self, state):
    """Returns the newest intact checkpoint restored like `state`, or `state` itself if no
    finished checkpoint exists (a partially written one is then renamed, with a warning).

    Raises:
      CheckpointError: checkpoints exist, but none is intact.
    """
    steps, partial = self._folders()
    if steps:
      return self.restore(state)
    renamed = self._quarantine(partial)
    for path, name in zip(partial, renamed):
      warnings.warn(f'Skipped {path}: a partially written checkpoint (the run stopped while '
                    f'saving it). Renamed it to {name}; no finished checkpoint exists, so '
                    'training starts from the beginning.', CheckpointWarning, stacklevel=2)
    return state

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are written."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
