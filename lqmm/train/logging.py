"""Process-0 metric writing: `metrics.jsonl`, TensorBoard event files and `config.json`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from lqmm.train.checkpoint import resolve_workdir


def _encode(value) -> str:
  return json.dumps(value, sort_keys=True, default=str)


def _flatten(tree, prefix: str = '') -> dict:
  """`{'a': {'b': 1}}` -> `{'a.b': 1}`; non-dict values are leaves."""
  if not isinstance(tree, Mapping) or not tree:
    return {prefix.rstrip('.'): tree} if prefix else {}
  out = {}
  for key, value in tree.items():
    out.update(_flatten(value, f'{prefix}{key}.'))
  return out


def _scalar(value):
  value = np.asarray(value)
  if value.size != 1:
    raise ValueError(f'metric values must be scalars; got shape {value.shape}.')
  return value.item()


class MetricWriter:
  """Writes scalar metrics from process 0 to `metrics.jsonl` and TensorBoard (tensorboardX).

  Other processes get a writer that does nothing, so callers need no `if` on the process index.

  A resumed run calls `rewind(step)` first, so that records of epochs it will redo (written
  after its last checkpoint) are not duplicated in `metrics.jsonl`. A metric written again
  for a step that `metrics.jsonl` already holds replaces the earlier value (the earlier line
  loses it, and goes when nothing is left): a rerun of a finished run, which writes its test
  metrics at the last step again, leaves one record of each. (TensorBoard's event files are
  only appended to; TensorBoard shows the newest value of a step.)

  Nothing is written (not even the workdir created) before the first record: `start` checks
  the config against an earlier run's at once but writes `config.json` with the first record,
  so a run that fails its checks leaves the workdir as it was.

  Args:
    workdir: the run's folder (a local path or a URI such as `gs://...`).
    tensorboard: also write TensorBoard event files (no TensorFlow needed).
  """

  def __init__(self, workdir, *, tensorboard: bool = True):
    self.workdir = resolve_workdir(workdir)
    self.active = jax.process_index() == 0
    self._tensorboard = None
    self._jsonl = None
    self._pending_config = None
    self._tensorboard_enabled = tensorboard
    self._logged = None  # {(step, metric)} in metrics.jsonl; None: read it on the next write

  def _open(self):
    if self._jsonl is None:
      self.workdir.mkdir(parents=True, exist_ok=True)
      if self._pending_config is not None:
        self.write_config(self._pending_config)
        self._pending_config = None
      self._jsonl = (self.workdir / 'metrics.jsonl').open('a')
      if self._tensorboard_enabled:
        from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
        self._tensorboard = SummaryWriter(str(self.workdir / 'tensorboard'))

  def read_config(self) -> dict | None:
    """The `config.json` of an earlier run in this workdir, or None."""
    path = self.workdir / 'config.json'
    return json.loads(path.read_text()) if path.exists() else None

  def check_same_config(self, config: Mapping, resumable: Sequence[str] = ()) -> None:
    """Raises when this workdir holds an earlier run whose config differs from `config`.

    A resumed run continues the checkpointed one, so any difference outside `resumable` (the
    keys a resumed run may change, e.g. the number of epochs) would silently continue a
    different experiment. Nested sections are compared key by key.

    Args:
      config: the new run's configuration (`config.to_dict()`).
      resumable: dotted keys (`'train.num_epochs'`) or whole sections (`'eval'`) allowed to
        differ.

    Raises:
      ValueError: naming the dotted keys that differ.
    """
    previous = self.read_config()
    if previous is None:
      return
    old, new = _flatten(previous), _flatten(json.loads(_encode(config)))
    allowed = lambda key: any(key == entry or key.startswith(entry + '.')
                              for entry in resumable)
    changed = sorted(key for key in set(old) | set(new)
                     if not allowed(key) and _encode(old.get(key)) != _encode(new.get(key)))
    if changed:
      raise ValueError(f'The workdir holds a run with a different config ({", ".join(changed)} '
                       'differ); resume with the same config or choose a new --workdir.')

  def start(self, config: Mapping, *, resumable: Sequence[str] = ()) -> None:
    """`check_same_config` now, `write_config` with the first record: a run's first call."""
    self.check_same_config(config, resumable)
    self._pending_config = dict(config)

  def rewind(self, step: int, *, prefix: str = '') -> None:
    """Drops `metrics.jsonl` records with a step beyond `step` (before any new write).

    With a `prefix`, only records whose metric names all start with it are dropped (a run
    that trains several models rewinds each model's records on its own).
    """
    path = self.workdir / 'metrics.jsonl'
    if not self.active or not path.exists():
      return

    def keep(record):
      names = [name for name in record if name != 'step']
      ours = all(name.startswith(prefix) for name in names)
      return record['step'] <= step or not ours

    kept = [line for line in path.read_text().splitlines() if line and keep(json.loads(line))]
    path.write_text(''.join(line + '\n' for line in kept))
    self._logged = None

  def _read_records(self) -> list[dict]:
    path = self.workdir / 'metrics.jsonl'
    if not path.exists():
      return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]

  def _drop(self, step: int, names: set[str]) -> None:
    """Removes metrics `names` of `step` from `metrics.jsonl` (lines left empty go)."""
    self._jsonl.close()
    kept = []
    for record in self._read_records():
      if record['step'] == step:
        record = {key: value for key, value in record.items() if key not in names}
        if len(record) == 1:
          continue
      kept.append(json.dumps(record))
    path = self.workdir / 'metrics.jsonl'
    path.write_text(''.join(line + '\n' for line in kept))
    self._jsonl = path.open('a')

  def write_config(self, config: Mapping) -> None:
    """Writes the run's configuration to `config.json`."""
    if self.active:
      self.workdir.mkdir(parents=True, exist_ok=True)
      text = json.dumps(dict(config), indent=2, sort_keys=True, default=str)
      (self.workdir / 'config.json').write_text(text + '\n')

  def write(self, step: int, metrics: Mapping[str, object]) -> None:
    """Appends one JSON line `{"step": step, **metrics}` and the TensorBoard scalars.

    Metrics that `metrics.jsonl` already holds for `step` are removed from the earlier lines
    first, so each (step, metric) is recorded once, with its newest value.
    """
    if not self.active:
      return
    self._open()
    values = {name: _scalar(value) for name, value in metrics.items()}
    record = {'step': int(step), **{k: (None if isinstance(v, float) and not math.isfinite(v)
                                        else v) for k, v in values.items()}}
    if self._logged is None:
      self._logged = {(old['step'], name) for old in self._read_records() for name in old
                      if name != 'step'}
    names = set(record) - {'step'}
    if any((record['step'], name) in self._logged for name in names):
      self._drop(record['step'], names)
    self._logged.update((record['step'], name) for name in names)
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    if self._tensorboard is not None:
      for name, value in values.items():
        self._tensorboard.add_scalar(name, value, int(step))

  def flush(self) -> None:
    if self._tensorboard is not None:
      self._tensorboard.flush()

  def close(self) -> None:
    """Closes the files; safe to call more than once."""
    if self._jsonl is not None:
      self._jsonl.close()
      self._jsonl = None
    if self._tensorboard is not None:
      self._tensorboard.close()
      self._tensorboard = None
