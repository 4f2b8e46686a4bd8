"""A progress bar with steps/s and ETA that keeps compilation time apart, and a NaN guard."""

from __future__ import annotations

import time
from collections.abc import Mapping

import jax
import numpy as np
import tqdm


class Progress:
  """Reports training progress from process 0.

  The first `update` call after construction usually includes XLA compilation; its duration is
  reported as `compile_s` and left out of the steps/s rate and the ETA.

  Args:
    total: total number of steps (or epochs) of the run.
    initial: steps already done (a resumed run).
    unit: the unit shown in the bar.
    disable: hide the bar (it is also hidden on processes other than 0).
  """

  def __init__(self, total: int, *, initial: int = 0, unit: str = 'step', disable: bool = False):
    self.total, self.initial = total, initial
    self._start = time.perf_counter()
    self._first_done = None
    self._steps_after_first = 0
    self.compile_s = 0.0
    self._bar = tqdm.tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True,
                          disable=disable or jax.process_index() != 0)

  def update(self, steps: int, metrics: Mapping[str, float] | None = None) -> None:
    """Advances by `steps`; `metrics` are shown beside the bar."""
    now = time.perf_counter()
    if self._first_done is None:
      self._first_done = now
      self.compile_s = now - self._start
    else:
      self._steps_after_first += steps
    postfix = {'compile_s': f'{self.compile_s:.1f}'}
    if self._steps_after_first:
      rate = self._steps_after_first / max(now - self._first_done, 1e-9)
      remaining = self.total - self._bar.n - steps
      postfix.update({f'{self._bar.unit}/s': f'{rate:.1f}', 'eta_s': f'{remaining / rate:.0f}'})
    for name, value in (metrics or {}).items():
      postfix[name] = f'{float(value):.4g}'
    self._bar.set_postfix(postfix, refresh=False)
    self._bar.update(steps)

  def summary(self) -> dict[str, float]:
    """`{'compile_s', 'run_s', 'rate'}`: first-call time, time after it, and steps per second."""
    elapsed = (time.perf_counter() - self._first_done) if self._first_done else 0.0
    rate = self._steps_after_first / elapsed if elapsed > 0 else float('nan')
    return {'compile_s': self.compile_s, 'run_s': elapsed, 'rate': rate}

  def close(self) -> None:
    self._bar.close()


def check_finite(metrics: Mapping[str, object], *, first_step: int, last_step: int) -> None:
  """The NaN guard: raises FloatingPointError naming the metrics and step range that went bad.

  Args:
    metrics: arrays of any shape (e.g. per seed); all must be finite.
    first_step: first step of the range the metrics cover.
    last_step: last step of that range.

  Raises:
    FloatingPointError: some metric holds NaN or infinity.
  """
  bad = [name for name, value in metrics.items() if not np.all(np.isfinite(np.asarray(value)))]
  if bad:
    raise FloatingPointError(
        f'Non-finite {", ".join(bad)} between steps {first_step} and {last_step}; the last '
        'checkpoint before this range is intact. Lower the learning rate or check the inputs.')
