"""lqmm.missing.legacy_mask against masks drawn by the original routines (bit for bit)."""

import numpy as np
import pytest

from lqmm import missing
from tests import helpers

vectors = helpers.vectors_fixture('legacy_mask_vectors.npz')


def _cases(data, prefix=''):
  """`(key, protocol, N, V, rate, seed)` of the entries under `prefix` ('' = the masks)."""
  for key in sorted(data):
    if key.startswith('sha256/') or not key.startswith(prefix) or (
        not prefix and key.startswith('failed/')):
      continue
    protocol, num_samples, num_views, rate, seed = key[len(prefix):].split('/')
    yield key, protocol, int(num_samples), int(num_views), float(rate), int(seed)


def test_every_mask_equals_the_original(vectors):
  compared = 0
  for key, protocol, num_samples, num_views, rate, seed in _cases(vectors):
    mask = missing.legacy_mask(protocol, num_samples, num_views, rate, seed=seed)
    assert mask.dtype == bool and mask.shape == (num_samples, num_views), key
    np.testing.assert_array_equal(mask, vectors[key], err_msg=key)
    compared += 1
  assert compared >= 300  # every protocol, sizes, view counts, rates and seeds of the generator


def test_where_the_original_breaks_the_replay_raises(vectors):
  failed = list(_cases(vectors, 'failed/'))
  assert failed  # DCP with few incomplete samples and six views
  for _, protocol, num_samples, num_views, rate, seed in failed:
    with pytest.raises(ValueError, match='num_samples=.* is too small'):
      missing.legacy_mask(protocol, num_samples, num_views, rate, seed=seed)


@pytest.mark.parametrize('protocol,rate', [('completer', 0.5), ('dcp', 0.5), ('cpm', 0.5)])
def test_realised_statistics(protocol, rate):
  """What each protocol's rate means, on the masks it draws (N = 2000, V = 3)."""
  mask = missing.legacy_mask(protocol, 2000, 3, rate, seed=0)
  assert mask.any(axis=1).all()  # at least one view per sample
  missing_entries = 1 - mask.mean()
  incomplete = 1 - mask.all(axis=1).mean()
  if protocol == 'completer':
    assert abs(missing_entries - rate / 3) < 0.005
  elif protocol == 'cpm':
    assert abs(missing_entries - rate) < 0.005
  else:  # rows drawn incomplete may come out complete when V >= 3 (documented)
    assert rate - 0.05 < incomplete <= rate
    two_views = missing.legacy_mask(protocol, 2000, 2, rate, seed=0)
    assert 1 - two_views.all(axis=1).mean() == rate  # V = 2: exactly one view kept per row


def test_bad_arguments():
  with pytest.raises(KeyError, match="Unknown protocol 'uimc'"):
    missing.legacy_mask('uimc', 100, 2, 0.1, seed=0)
  with pytest.raises(ValueError, match=r'rate must lie in \[0, 0.5\]'):
    missing.legacy_mask('cpm', 100, 2, 0.6, seed=0)  # one view must stay
  with pytest.raises(ValueError, match='rate must lie in'):
    missing.legacy_mask('dcp', 100, 2, np.float32(np.nan), seed=0)
  with pytest.raises(ValueError, match='num_views must be >= 2'):
    missing.legacy_mask('dcp', 100, 1, 0.1, seed=0)
  with pytest.raises(TypeError, match='seed must be an integer'):
    missing.legacy_mask('dcp', 100, 2, 0.1, seed=0.5)
  with pytest.raises(ValueError, match='seed must be < 2\\*\\*32'):
    missing.legacy_mask('dcp', 100, 2, 0.1, seed=2**32)
