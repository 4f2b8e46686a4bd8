"""CDIMC-net's published missing-view folds, read as masks aligned with lqmm's Handwritten rows."""

import numpy as np
import pytest

from lqmm import data


def test_folds_are_the_documented_masks(manual_dir):
  folds = data.mask_folds('handwritten_cdimc_0.3', manual_dir=manual_dir, allow_download=False)
  assert folds.order == ('pix', 'fou', 'fac', 'zer', 'kar')
  assert folds.masks.dtype == bool and folds.masks.shape == (10, 2000, 5)
  np.testing.assert_array_equal(folds.masks.sum(axis=1), 1400)  # 30% of every view deleted
  assert folds.masks.any(axis=2).all()  # every sample keeps a view
  assert len({fold.tobytes() for fold in folds.masks}) == 10  # ten different folds


def test_fold_rows_are_lqmm_handwritten_rows(manual_dir, tfds_dir):
  """The 5-view .mat the folds index holds the UCI rows in lqmm's order (its values equal the
  shipped CSVs to their rounding), so fold row i is `read('handwritten')` row i."""
  import scipy.io  # pylint: disable=g-import-not-at-top
  folds = data.mask_folds(manual_dir=manual_dir, allow_download=False)
  raw = data.read('handwritten', data_dir=tfds_dir, manual_dir=manual_dir,
                  allow_download=False)
  full = raw['full']
  views = scipy.io.loadmat(f'{folds.source}/handwritten-5view.mat')['X']
  for index, view in enumerate(folds.order):
    # Same rows to the CSVs' rounding (5e-3 at most, plus float32 storage).
    np.testing.assert_allclose(full['inputs'][view], views[0, index], atol=6e-3, rtol=0)


def test_errors(tmp_path):
  with pytest.raises(KeyError, match='Unknown mask folds'):
    data.mask_folds('cub')
  with pytest.raises(FileNotFoundError, match='downloading is disabled'):
    data.mask_folds(manual_dir=tmp_path, allow_download=False)
