"""Missingness protocols: realised statistics, mechanisms, rate conversion, the spec."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm import missing


@pytest.mark.parametrize('num_samples,num_views,rate', [(2000, 5, 0.3), (101, 2, 0.5),
                                                        (50, 3, 0.6), (7, 4, 0.0)])
def test_per_view_deletion_is_exact(num_samples, num_views, rate):
  mask = missing.per_view_mask(jax.random.key(0), num_samples, num_views, rate)
  assert mask.shape == (num_samples, num_views) and mask.dtype == jnp.bool_
  np.testing.assert_array_equal((~mask).sum(axis=0), int(np.floor(num_samples * rate)))
  assert bool(mask.any(axis=1).all())


def test_per_view_matches_the_published_folds_statistics():
  """CDIMC-net's Handwritten folds: 600 of 2,000 missing in each of five views."""
  masks = jax.vmap(lambda key: missing.per_view_mask(key, 2000, 5, 0.3))(
      jax.random.split(jax.random.key(1), 4))
  np.testing.assert_array_equal((~masks).sum(axis=1), 600)
  assert bool(masks.any(axis=2).all())
  assert len({np.asarray(mask).tobytes() for mask in masks}) == 4


def test_traced_rates_do_not_retrace():
  @jax.jit
  @chex.assert_max_traces(n=1)
  def draw(rate):
    return missing.per_view_mask(jax.random.key(0), 100, 3, rate)

  for rate in (0.1, 0.2, 0.5):
    np.testing.assert_array_equal((~draw(jnp.float32(rate))).sum(axis=0),
                                  int(np.floor(100 * rate + 1e-6)))


def test_mnar_scores_remove_high_scores_first():
  """MNAR: the score is the value that goes missing; with strength the high values go."""
  values = jax.random.normal(jax.random.key(2), (1000, 2))
  mcar = missing.per_view_mask(jax.random.key(3), 1000, 2, 0.3)
  mnar = missing.per_view_mask(jax.random.key(3), 1000, 2, 0.3, scores=values, strength=5.0)
  np.testing.assert_array_equal((~mnar).sum(axis=0), 300)
  gap = lambda mask: float(values[~mask].mean() - values[mask].mean())
  assert gap(mnar) > 0.5 and abs(gap(mcar)) < 0.15  # protected entries cap the selection


def test_per_view_rejects_infeasible_rates():
  with pytest.raises(ValueError, match=r'rate must lie in \[0, 0.5\] for per-view deletion'):
    missing.per_view_mask(jax.random.key(0), 100, 2, 0.6)
  with pytest.raises(ValueError, match='scores must have shape'):
    missing.per_view_mask(jax.random.key(0), 10, 2, 0.2, scores=jnp.zeros((2, 10)))


@pytest.mark.parametrize('views_missing', [None, 1, 2])
def test_incomplete_samples(views_missing):
  mask = missing.incomplete_samples_mask(jax.random.key(4), 1000, 3, 0.4,
                                         views_missing=views_missing)
  assert int((~mask.all(axis=1)).sum()) == 400
  assert bool(mask.any(axis=1).all())
  if views_missing is not None:
    share = float(1 - mask.mean())
    assert share == pytest.approx(missing.convert_rate(
        0.4, source='samples', target='entries', num_views=3,
        views_missing_per_incomplete=views_missing))


def test_convert_rate():
  assert missing.convert_rate(0.3, source='per_view', target='entries', num_views=5) == 0.3
  assert missing.convert_rate(0.5, source='completer', target='entries', num_views=2) == 0.25
  assert missing.convert_rate(0.25, source='entries', target='completer', num_views=2) == 0.5
  assert missing.convert_rate(0.5, source='samples', target='entries', num_views=2) == 0.25
  with pytest.raises(ValueError, match='needs views_missing_per_incomplete'):
    missing.convert_rate(0.5, source='samples', target='entries', num_views=3)
  with pytest.raises(ValueError, match='outside'):
    missing.convert_rate(0.8, source='entries', target='samples', num_views=2)
  with pytest.raises(KeyError, match='Unknown rate meaning'):
    missing.convert_rate(0.5, source='missing', target='entries', num_views=2)


def test_spec_is_frozen_and_checked():
  spec = missing.MissingSpec('per_view', 0.3, 'per_view', seed=2)
  assert spec.to_dict() == {'protocol': 'per_view', 'rate': 0.3, 'meaning': 'per_view',
                            'min_views': 1, 'seed': 2}
  with pytest.raises(dataclasses.FrozenInstanceError):
    spec.rate = 0.5
  with pytest.raises(KeyError, match='Unknown rate meaning'):
    missing.MissingSpec('cpm', 0.3, 'share')
  with pytest.raises(ValueError, match='rate must lie in'):
    missing.MissingSpec('cpm', np.float32(1.5), 'entries')


@pytest.mark.parametrize('num_samples,num_views,rate', [(2000, 6, 0.5), (101, 2, 0.5),
                                                        (50, 3, 0.3), (7, 4, 0.0)])
def test_missing_entries_share_is_exact_and_every_sample_keeps_a_view(num_samples, num_views,
                                                                      rate):
  mask = missing.missing_entries_mask(jax.random.key(1), num_samples, num_views, rate)
  assert mask.shape == (num_samples, num_views) and mask.dtype == jnp.bool_
  assert int((~mask).sum()) == round(num_samples * num_views * rate)
  assert bool(mask.any(axis=1).all())


def test_missing_entries_matches_get_sn_statistics():
  """The same share of missing entries as CPM-Nets' get_sn (within its 0.005 tolerance) and a
  similar share of incomplete samples, over the published protocol's rates."""
  for rate in (0.1, 0.3, 0.5):
    ours = np.asarray(missing.missing_entries_mask(jax.random.key(0), 2000, 6, rate))
    theirs = missing.legacy_mask('cpm', 2000, 6, rate, seed=0)
    assert abs((~ours).mean() - (~theirs).mean()) < 0.006
    assert abs((~ours.all(1)).mean() - (~theirs.all(1)).mean()) < 0.05
  with pytest.raises(ValueError, match='rate'):
    missing.missing_entries_mask(jax.random.key(0), 10, 3, 0.7)


@pytest.mark.parametrize('num_samples,num_views,paired', [(100, 3, 0.3), (7, 2, 0.0), (50, 6, 1.0)])
def test_paired_mask_pairs_exactly_and_deals_the_unpaired_views_evenly(num_samples, num_views,
                                                                       paired):
  mask = np.asarray(missing.paired_mask(jax.random.key(2), num_samples, num_views, paired))
  complete = mask.all(axis=1)
  assert complete.sum() == round(num_samples * paired)
  np.testing.assert_array_equal(mask[~complete].sum(axis=1), 1)
  counts = mask[~complete].sum(axis=0)
  assert counts.max() - counts.min() <= 1
