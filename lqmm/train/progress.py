"""A progress bar with steps/s and ETA that keeps compilation time apart, and a NaN guard."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

import jax
import numpy as np
import tqdm


class Progress:
  """Reports training progress from process 0, with compilation time kept apart.

  Compile ahead of time and report it with `compiled`; `update` then counts only run time, so
  steps/s and the ETA are not skewed by the first call::

      with progress.compiling():
        step = jitted.lower(*args).compile()
      ...
      progress.update(num_steps, {'loss': loss})

  Args:
    total: total number of steps (or epochs) of the run.
    initial: steps already done (a resumed run).
    unit: the unit shown in the bar.
    disable: hide the bar (it is also hidden on processes other than 0).
  """

  def __init__(self, total: int, *, initial: int = 0, unit: str = 'step', disable: bool = False):
    self.total, self.initial, self.unit = total, initial, unit
    self.compile_s = 0.0
    self.run_s = 0.0
    self._steps = 0
    self._last = time.perf_counter()
    self._bar = tqdm.tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True,
                          disable=disable or jax.process_index() != 0)

  @contextlib.contextmanager
  def compiling(self):
    """Times the enclosed block as compilation (excluded from the rate and the ETA)."""
    start = time.perf_counter()
    try:
      yield
    finally:
      now = time.perf_counter()
      self.compile_s += now - start
      self._last = now

  def update(self, steps: int, metrics: Mapping[str, float] | None = None) -> None:
    """Advances by `steps` done since the last update; `metrics` are shown beside the bar."""
    now = time.perf_counter()
    self.run_s += now - self._last
    self._last = now
    self._steps += steps
    rate = self._steps / max(self.run_s, 1e-9)
    remaining = self.total - self._bar.n - steps
    postfix = {'compile_s': f'{self.compile_s:.1f}', f'{self.unit}/s': f'{rate:.1f}',
               'eta_s': f'{remaining / rate:.0f}'}
    for name, value in (metrics or {}).items():
      postfix[name] = f'{float(value):.4g}'
    self._bar.set_postfix(postfix, refresh=False)
    self._bar.update(steps)

  def summary(self) -> dict[str, float]:
    """`{'compile_s', 'run_s', 'rate'}`: compile time, run time and steps per second of run."""
    rate = self._steps / self.run_s if self.run_s > 0 else float('nan')
    return {'compile_s': self.compile_s, 'run_s': self.run_s, 'rate': rate}

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
        f'Non-finite {", ".join(bad)} between steps {first_step} and {last_step}. Lower the '
        'learning rate or check the inputs.')
