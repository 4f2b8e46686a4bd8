"""Results files and the command line every experiment shares.

`write_results` writes `results.md`, `results.json` and figures into the workdir; an earlier
run's files that differ are moved to `previous/<n>/` first (and the move is reported), so a
re-evaluation never silently overwrites an earlier table. `run_experiment` is the absl `main`
of every experiment's `train.py`.
"""

from __future__ import annotations

import json
import os
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


#: Where JAX's persistent compilation cache lives: a folder, or `off`. Unset: the user cache.
CACHE_ENV = 'LQMM_COMPILATION_CACHE'


def enable_compilation_cache(folder=None) -> str | None:
  """Turns on JAX's persistent compilation cache, so a rerun (another seed count aside, the
  same shapes) loads its programs instead of compiling them.

  The folder is `folder`, else `$LQMM_COMPILATION_CACHE`, else the one JAX was already given
  (`$JAX_COMPILATION_CACHE_DIR`), else `$XDG_CACHE_HOME/lqmm/jax` (`~/.cache/lqmm/jax`). `off`
  (or `0`, `none`) leaves the cache off. Programs that compile in under 0.1 s are not stored.
  Returns the folder, or None.
  """
  value = os.environ.get(CACHE_ENV, '') if folder is None else str(folder)
  if value.strip().lower() in ('off', '0', 'none', 'false'):
    return None
  if not value and jax.config.jax_compilation_cache_dir:
    return jax.config.jax_compilation_cache_dir
  if not value:
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    value = os.path.join(base, 'lqmm', 'jax')
  jax.config.update('jax_compilation_cache_dir', value)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.1)
  return value


def run_experiment(train_and_evaluate: Callable) -> None:
  """The command line of an experiment: `--config=<file>[:variant] --workdir=<folder>`.

  Defines the two flags, keeps Orbax's per-save INFO logs quiet unless `--verbosity` is given,
  calls `jax.distributed.initialize()` when `$LQMM_DISTRIBUTED=1`, turns on the persistent
  compilation cache (`enable_compilation_cache`), and runs
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
    enable_compilation_cache()
    train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)

  app.run(main)
