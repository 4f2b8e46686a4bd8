"""Process-0 metric writing: `metrics.jsonl`, TensorBoard event files and `config.json`."""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Mapping

import jax
import numpy as np


def _scalar(value):
  value = np.asarray(value)
  if value.size != 1:
    raise ValueError(f'metric values must be scalars; got shape {value.shape}.')
  return value.item()


class MetricWriter:
  """Writes scalar metrics from process 0 to `metrics.jsonl` and TensorBoard (tensorboardX).

  Other processes get a writer that does nothing, so callers need no `if` on the process index.

  Args:
    workdir: the run's folder.
    tensorboard: also write TensorBoard event files (no TensorFlow needed).
  """

  def __init__(self, workdir, *, tensorboard: bool = True):
    self.workdir = pathlib.Path(workdir).expanduser().absolute()
    self.active = jax.process_index() == 0
    self._tensorboard = None
    if not self.active:
      return
    self.workdir.mkdir(parents=True, exist_ok=True)
    self._jsonl = open(self.workdir / 'metrics.jsonl', 'a', encoding='utf-8')
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tensorboard = SummaryWriter(str(self.workdir / 'tensorboard'))

  def write_config(self, config: Mapping) -> None:
    """Writes the run's configuration to `config.json`."""
    if self.active:
      text = json.dumps(dict(config), indent=2, sort_keys=True, default=str)
      (self.workdir / 'config.json').write_text(text + '\n', encoding='utf-8')

  def write(self, step: int, metrics: Mapping[str, object]) -> None:
    """Appends one JSON line `{"step": step, **metrics}` and the TensorBoard scalars."""
    if not self.active:
      return
    values = {name: _scalar(value) for name, value in metrics.items()}
    record = {'step': int(step), **{k: (None if isinstance(v, float) and not math.isfinite(v)
                                        else v) for k, v in values.items()}}
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    if self._tensorboard is not None:
      for name, value in values.items():
        self._tensorboard.add_scalar(name, value, int(step))

  def flush(self) -> None:
    if self.active and self._tensorboard is not None:
      self._tensorboard.flush()

  def close(self) -> None:
    if not self.active:
      return
    self._jsonl.close()
    if self._tensorboard is not None:
      self._tensorboard.close()
