"""Orbax checkpointing with auto-resume, wrapped in one small class."""

from __future__ import annotations

import jax
import orbax.checkpoint as ocp
from etils import epath


def resolve_workdir(workdir) -> epath.Path:
  """`workdir` as an `epath.Path`: URIs (`gs://...`) kept as they are, local paths absolute."""
  if '://' in str(workdir):
    return epath.Path(workdir)
  return epath.Path(workdir).expanduser().absolute()


class Checkpointer:
  """Saves and restores a pytree state under `<workdir>/checkpoints` with Orbax.

  Usage::

      checkpointer = Checkpointer(workdir, max_to_keep=2)
      state = checkpointer.restore_or(state)   # latest checkpoint, or `state` unchanged
      checkpointer.save(step, state)
      checkpointer.close()                     # waits for async saves to finish

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
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    """The step of the newest complete checkpoint, or None."""
    return self._manager.latest_step()

  def save(self, step: int, state, *, force: bool = True) -> None:
    """Saves `state` as checkpoint `step` (asynchronously unless disabled)."""
    self._manager.save(step, args=ocp.args.StandardSave(state), force=force)

  def restore(self, state=None, step: int | None = None):
    """Restores checkpoint `step` (default: latest).

    Args:
      state: a pytree like the saved one; the result takes its structure, dtypes and shardings.
        With None, the checkpoint is returned as saved (nested dicts of numpy arrays).
      step: which checkpoint; None for the latest.

    Raises:
      FileNotFoundError: there is no checkpoint to restore.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'No checkpoint in {self.directory}.')
    if state is None:
      return self._manager.restore(step, args=ocp.args.StandardRestore())
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def restore_or(self, state):
    """Returns the latest checkpoint restored like `state`, or `state` itself if none exists."""
    return state if self.latest_step() is None else self.restore(state)

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are written."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
