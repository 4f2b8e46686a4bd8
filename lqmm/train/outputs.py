"""Results files and the command line every experiment shares.

`write_results` writes `results.md`, `results.json` and figures into the workdir; an earlier
run's files that differ are moved to `previous/<n>/` first (and the move is reported), so a
re-evaluation never silently overwrites an earlier table. `run_experiment` is the absl `main`
of every experiment's `train.py`.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Mapping

import jax

from lqmm.train import checkpoint as checkpoint_lib
from lqmm.train import mesh as mesh_lib


def _archive(workdir: pathlib.Path, files: Mapping[str, bytes], log: Callable) -> None:
  """Moves the existing versions of `files` that differ from the new content to previous/<n>/."""
  changed = [name for name, content in files.items()
             if (workdir / name).exists() and (workdir / name).read_bytes() != content]
  if not changed:
    return
  previous = workdir / 'previous'
  previous.mkdir(exist_ok=True)
  number = 1 + max((int(path.name) for path in previous.iterdir() if path.name.isdigit()),
                   default=0)
  target = previous / str(number)
  target.mkdir()
  for name in files:
    if (workdir / name).exists():
      (workdir / name).rename(target / name)
  log(f'The workdir held results that differ from this run\'s ({", ".join(changed)}); moved '
      f'them to {target}.')


def write_results(workdir, *, table: str, results: Mapping, figures=None, files=None,
                  log: Callable[[str], None] = print) -> None:
  """Prints the table and writes `results.md` (the table), `results.json` and figures into
  `workdir` (process 0).

  Args:
    workdir: the run's folder.
    table: the markdown report.
    results: JSON-serialisable results.
    figures: `{file name: matplotlib Figure}` saved as PNG, or None.
    files: further `{file name: text}` (e.g. a CSV), or None.
    log: where the table and the archiving note go.
  """
  if jax.process_index() != 0:
    return
  log(table)
  import io  # pylint: disable=g-import-not-at-top
  workdir = pathlib.Path(str(checkpoint_lib.resolve_workdir(workdir)))
  workdir.mkdir(parents=True, exist_ok=True)
  contents = {'results.md': (table.rstrip('\n') + '\n').encode(),
              'results.json': (json.dumps(results, indent=1) + '\n').encode()}
  contents.update({name: text.encode() for name, text in (files or {}).items()})
  for name, figure in (figures or {}).items():
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', metadata={'Software': None})
    contents[name] = buffer.getvalue()
  _archive(workdir, contents, log)
  for name, content in contents.items():
    (workdir / name).write_bytes(content)


def run_experiment(train_and_evaluate: Callable) -> None:
  """The command line of an experiment: `--config=<file>[:variant] --workdir=<folder>`.

  Defines the two flags, keeps Orbax's per-save INFO logs quiet unless `--verbosity` is given,
  calls `jax.distributed.initialize()` when `$LQMM_DISTRIBUTED=1`, and runs
  `train_and_evaluate(config, workdir)`. Use it as the whole `__main__` block of a `train.py`;
  an invalid config raises before anything is written, so the process exits non-zero.
  """
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  config_flags.DEFINE_config_file('config', None, 'Experiment configuration file.')
  flags.DEFINE_string('workdir', None, 'Folder for checkpoints, metrics and results.')
  flags.mark_flags_as_required(['config', 'workdir'])

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}.')
    if not flags.FLAGS['verbosity'].present:
      logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
    mesh_lib.maybe_initialize_distributed()
    train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)

  app.run(main)
