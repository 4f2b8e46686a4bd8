"""Fixtures shared by the data tests. The reference generators need libraries outside the
project (librosa); they are run by hand only."""

import pytest

from lqmm import data

collect_ignore_glob = ['reference/generate_*.py']


@pytest.fixture(scope='session')
def av_digits_splits(tfds_dir, manual_dir):
  """`load('av_digits')` with its defaults (seed 0), built once: the log-mel features are slow."""
  return data.load('av_digits', data_dir=tfds_dir, manual_dir=manual_dir, allow_download=False)
