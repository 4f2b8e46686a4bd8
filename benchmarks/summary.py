"""The one record every side-by-side benchmark writes for the speed table (`python -m benchmarks`).

A benchmark script called with `--summary PATH` writes, besides its own output, a JSON file:

    {"benchmark": "tmc_speed", "load_before": 0.12, "load_after": 0.3,
     "rows": [{"work": ..., "original": ..., "unit": ..., "original_value": ...,
               "lqmm_value": ..., "ratio": ..., "limit": ..., "accuracy": ..., "notes": ...}]}

one row per comparison: what ran (`work`), what it was compared with (`original`: the reference
code and how it ran), the unit of both values (e.g. 'CPU-s per seed'; smaller is better),
`ratio` = original / lqmm (None without an original), `limit` (how close lqmm comes to the
machine's limit, as text, e.g. '41% of copy bandwidth', or None), `accuracy` (both sides'
accuracy or agreement, as text, or None) and `notes`. `benchmarks/speed_table.py` renders
every script's record into one markdown table. `timed_run` is the benchmarks' one way of timing
a fresh process (wall and CPU seconds).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import resource
import subprocess
import time
from collections.abc import Sequence

FIELDS = ('work', 'original', 'unit', 'original_value', 'lqmm_value', 'ratio', 'limit',
          'accuracy', 'notes')


def _children_cpu() -> float:
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


def timed_run(command, **kwargs) -> tuple[subprocess.CompletedProcess, float, float]:
  """`subprocess.run(command, check=True, **kwargs)` with its wall seconds and CPU seconds
  (user + system of the process and its children)."""
  cpu, start = _children_cpu(), time.perf_counter()
  done = subprocess.run(command, check=True, **kwargs)
  return done, time.perf_counter() - start, _children_cpu() - cpu


def row(work: str, unit: str, lqmm_value: float, *, original: str | None = None,
        original_value: float | None = None, limit: str | None = None,
        accuracy: str | None = None, notes: str | None = None) -> dict:
  """One comparison; `ratio` = original_value / lqmm_value (None without both)."""
  if not (isinstance(lqmm_value, (int, float)) and math.isfinite(lqmm_value)
          and lqmm_value > 0):
    raise ValueError(f'lqmm_value of {work!r} must be a positive finite number; got '
                     f'{lqmm_value!r}.')
  if original_value is not None and not (math.isfinite(original_value) and original_value > 0):
    raise ValueError(f'original_value of {work!r} must be a positive finite number or None; '
                     f'got {original_value!r}.')
  ratio = None if original_value is None else original_value / lqmm_value
  return {'work': work, 'original': original, 'unit': unit,
          'original_value': None if original_value is None else float(original_value),
          'lqmm_value': float(lqmm_value), 'ratio': ratio, 'limit': limit,
          'accuracy': accuracy, 'notes': notes}


def write(path, benchmark: str, rows: Sequence[dict], *, load_before: float | None = None,
          notes: Sequence[str] = ()) -> None:
  """Writes the record (atomically: a finished file or none); a no-op when `path` is None."""
  if path is None:
    return
  for index, entry in enumerate(rows):
    if set(entry) != set(FIELDS):
      raise ValueError(f'row {index} of {benchmark} must have the fields {FIELDS} (use '
                       f'summary.row); got {sorted(entry)}.')
  record = {'benchmark': benchmark, 'load_before': load_before,
            'load_after': os.getloadavg()[0], 'rows': list(rows), 'notes': list(notes)}
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  partial = path.with_suffix(path.suffix + '.partial')
  partial.write_text(json.dumps(record, indent=1) + '\n')
  partial.replace(path)


def read(path) -> dict:
  """A record written by `write` (checked)."""
  record = json.loads(pathlib.Path(path).read_text())
  for key in ('benchmark', 'rows'):
    if key not in record:
      raise ValueError(f'{path} is not a benchmark summary: no {key!r}.')
  for index, entry in enumerate(record['rows']):
    missing = set(FIELDS) - set(entry)
    if missing:
      raise ValueError(f'{path}: row {index} lacks {sorted(missing)}.')
  return record
