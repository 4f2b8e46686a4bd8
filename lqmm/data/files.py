"""Locating raw data files: a manual directory, the public origin, or a copy a package ships."""

from __future__ import annotations

import os
import pathlib
import shutil
import urllib.error
import urllib.request
from collections.abc import Sequence

import tensorflow_datasets as tfds

#: Environment variable naming a directory of manually placed raw data (e.g. `../shared/data`).
MANUAL_DIR_ENV = 'LQMM_MANUAL_DIR'

_DOWNLOAD_TIMEOUT_S = 30


def default_manual_dir() -> str | None:
  """The manual directory from `$LQMM_MANUAL_DIR`, or None."""
  return os.environ.get(MANUAL_DIR_ENV) or None


def find_manual(manual_dir, subdir: str, filenames: Sequence[str]) -> pathlib.Path | None:
  """Returns the folder under `manual_dir` holding all `filenames`, or None.

  Both `manual_dir/subdir/` and `manual_dir/` itself are searched, so `manual_dir` may point at
  a folder of data sets (`../shared/data`) or at the data set's own folder.
  """
  if manual_dir is None:
    return None
  root = pathlib.Path(manual_dir).expanduser()
  if not root.is_dir():
    raise FileNotFoundError(f'manual_dir {str(root)!r} does not exist or is not a directory.')
  for folder in (root / subdir, root):
    if all((folder / name).is_file() for name in filenames):
      return folder
  return None


def prepared_records(builder, splits: Sequence[str]) -> dict[str, list[dict]]:
  """Builds a TFDS `builder` (once) and reads `splits` as records in their `index` order.

  Records come back from `tfds.data_source` in storage order; the builders store each
  example's original position as `index`, so sorting by it restores the file order.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  from lqmm.train import mesh  # pylint: disable=g-import-not-at-top
  tfds.display_progress_bar(False)
  with mesh.primary_first(f'prepare_{builder.info.full_name}'):  # one build, shared
    builder.download_and_prepare()
  sources = builder.as_data_source()
  out = {}
  for split in splits:
    records = sources[split].__getitems__(range(len(sources[split])))
    order = np.argsort([record['index'] for record in records], kind='stable')
    out[split] = [records[i] for i in order]
  return out


def download(urls: dict[str, str], destination: pathlib.Path) -> pathlib.Path:
  """Downloads `{filename: url}` into `destination` (skipping files already there).

  A file is written under a temporary name and renamed when complete, so an interrupted
  download never leaves a truncated file behind.

  Raises:
    urllib.error.URLError or OSError: the origin could not be reached.
  """
  destination.mkdir(parents=True, exist_ok=True)
  for filename, url in urls.items():
    target = destination / filename
    if target.is_file():
      continue
    partial = target.with_suffix(target.suffix + '.partial')
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response, \
        open(partial, 'wb') as out:
      shutil.copyfileobj(response, out)
    partial.replace(target)
  return destination


def locate(dataset: str, *, manual_dir, subdir: str, urls: dict[str, str],
           dl_manager: tfds.download.DownloadManager | None, allow_download: bool,
           instructions: str) -> pathlib.Path:
  """Finds the raw files of `dataset`: manual directory first, then the public origin.

  Raises:
    FileNotFoundError: neither source has the files; the message says exactly what to do.
  """
  filenames = list(urls)
  found = find_manual(manual_dir, subdir, filenames)
  if found is not None:
    return found
  reason = ('no manual_dir was given' if manual_dir is None else
            f'manual_dir {str(manual_dir)!r} has no {subdir}/ folder with {filenames}')
  if allow_download and dl_manager is not None:
    try:
      return download(urls, pathlib.Path(dl_manager.download_dir) / f'lqmm_{subdir}')
    except (urllib.error.URLError, OSError) as error:
      reason += f', and downloading from the public origin failed ({error})'
  else:
    reason += ' and downloading is disabled'
  raise FileNotFoundError(
      f'Cannot find the raw files of the {dataset!r} data set: {reason}.\n'
      f'To fix: {instructions}\nPass the folder as manual_dir=... (or set ${MANUAL_DIR_ENV}); '
      f'it may be the data set folder itself or its parent. Files needed: {filenames}.')
