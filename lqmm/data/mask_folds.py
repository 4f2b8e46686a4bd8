"""Published missing-view masks: the folds a paper evaluated on, as bool presence masks.

CDIMC-net (Wen et al., IJCAI 2020; DarrenZZhang/IJCAI20-CDIMC-Net at commit 5eecbef4caf6) ships
ten folds of missing views for its five-view copy of Handwritten (views pix, fou, fac, zer,
kar; no mor): `data/handwritten-5view_percentDel_0.3.mat`, `folds` a 1 x 10 cell of `[2000, 5]`
0/1 matrices, 30% of every view deleted (exactly 600 of 2,000 per view) and every sample
keeping at least one view. Its rows are the UCI files' rows in order, i.e. the rows of
`lqmm.data.read('handwritten')` (checked in the tests), so a fold applies to lqmm's copy
directly.
"""

from __future__ import annotations

import pathlib
from typing import NamedTuple

import numpy as np

from lqmm.data import files

__all__ = ['MaskFolds', 'MASK_FOLDS', 'mask_folds']

_COMMIT = '5eecbef4caf6ec7fe7fb41afb27b94cebd6fe9f6'
_ORIGIN = f'https://raw.githubusercontent.com/DarrenZZhang/IJCAI20-CDIMC-Net/{_COMMIT}/data/'

#: Name -> (file, view order of its columns, description).
MASK_FOLDS = {
    'handwritten_cdimc_0.3': (
        'handwritten-5view_percentDel_0.3.mat', ('pix', 'fou', 'fac', 'zer', 'kar'),
        "CDIMC-net's ten folds: 30% of each of five views deleted, at least one view kept"),
}


class MaskFolds(NamedTuple):
  """Published presence masks.

  Attributes:
    masks: numpy bool `[F, N, V]`, True = present, one `[N, V]` mask per fold.
    order: the view names of the last axis (lqmm's modality names).
    source: where the file came from (its folder).
  """
  masks: np.ndarray
  order: tuple[str, ...]
  source: str


def mask_folds(name: str = 'handwritten_cdimc_0.3', *, manual_dir=None, data_dir=None,
               allow_download: bool = True) -> MaskFolds:
  """Loads published missing-view folds as bool presence masks.

  Args:
    name: a key of `MASK_FOLDS`.
    manual_dir: a folder holding the file (or its parent with a `handwritten/` folder), e.g.
      `../shared/data`; None reads `$LQMM_MANUAL_DIR`.
    data_dir: where a downloaded copy is kept (default `~/tensorflow_datasets/downloads`).
    allow_download: fetch the file from the paper's repository when no manual copy is found.

  Returns:
    A `MaskFolds`.

  Raises:
    KeyError: an unknown name (the message lists the valid ones).
    FileNotFoundError: no copy found and none could be downloaded; the message says what to do.
    ValueError: the file is not 0/1 masks of the documented shape, or a row has no view.
  """
  if name not in MASK_FOLDS:
    raise KeyError(f'Unknown mask folds {name!r}; valid names: {", ".join(sorted(MASK_FOLDS))}.')
  filename, order, _ = MASK_FOLDS[name]
  manual_dir = manual_dir if manual_dir is not None else files.default_manual_dir()
  folder = files.find_manual(manual_dir, 'handwritten', [filename])
  if folder is None:
    if not allow_download:
      raise FileNotFoundError(
          f'Cannot find {filename} ({name}): manual_dir {manual_dir!r} does not hold it and '
          f'downloading is disabled. Download it from {_ORIGIN}{filename} and pass its folder '
          'as manual_dir=... (or set $LQMM_MANUAL_DIR).')
    root = pathlib.Path(data_dir).expanduser() if data_dir else (
        pathlib.Path('~/tensorflow_datasets').expanduser())
    try:
      folder = files.download({filename: _ORIGIN + filename},
                              root / 'downloads' / 'lqmm_mask_folds')
    except OSError as error:  # URLError is an OSError
      raise FileNotFoundError(
          f'Cannot find {filename} ({name}): no manual copy, and downloading it from '
          f'{_ORIGIN}{filename} failed ({error}). Download it by hand and pass its folder as '
          'manual_dir=... (or set $LQMM_MANUAL_DIR).') from None
  import scipy.io  # pylint: disable=g-import-not-at-top
  cells = scipy.io.loadmat(folder / filename)['folds']
  masks = np.stack([np.asarray(cells[0, index]) for index in range(cells.shape[1])])
  if masks.ndim != 3 or masks.shape[2] != len(order) or not np.isin(masks, (0, 1)).all():
    raise ValueError(f'{folder / filename} does not hold 0/1 folds [F, N, {len(order)}]; got '
                     f'shape {masks.shape}.')
  masks = masks.astype(bool)
  if not masks.any(axis=2).all():
    raise ValueError(f'{folder / filename} has a sample with no view in some fold.')
  return MaskFolds(masks=masks, order=order, source=str(folder))
