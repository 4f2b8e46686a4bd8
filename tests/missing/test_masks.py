"""Missing-modality masks: exact rate, at least one modality kept, tracing, errors."""

import chex
import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from lqmm import missing


@hypothesis.given(st.integers(1, 6), st.integers(1, 40), st.floats(0, 1), st.integers(0, 1000))
def test_exact_count_and_one_modality_kept(num_modalities, num_samples, fraction, seed):
  rate = fraction * (num_modalities - 1) / num_modalities
  mask = missing.random_mask(num_modalities, num_samples, rate, key=jax.random.key(seed))
  assert mask.shape == (num_modalities, num_samples) and mask.dtype == jnp.bool_
  expected_missing = round(np.float32(rate) * num_modalities * num_samples)
  assert int((~mask).sum()) == expected_missing
  assert bool(mask.any(axis=0).all())


def test_missing_entries_are_spread_over_modalities():
  mask = missing.random_mask(3, 3000, 0.3, key=jax.random.key(0))
  np.testing.assert_allclose(1 - np.asarray(mask).mean(axis=1), 0.3, atol=0.03)


def test_traced_rate_does_not_retrace():
  @jax.jit
  @chex.assert_max_traces(n=1)
  def draw(rate, key):
    return missing.random_mask(4, 10, rate, key=key)

  counts = [int((~draw(rate, jax.random.key(0))).sum()) for rate in (0.0, 0.25, 0.5, 0.75)]
  assert counts == [0, 10, 20, 30]


def test_rate_out_of_range_raises():
  with pytest.raises(ValueError, match=r'rate must lie in \[0, \(M - 1\) / M\] = \[0, 0.6667\]'):
    missing.random_mask(3, 10, 0.7, key=jax.random.key(0))
  with pytest.raises(ValueError, match='rate must lie'):
    missing.random_mask(3, 10, -0.1, key=jax.random.key(0))


def test_apply_to_batch_zeroes_missing_inputs_and_keeps_other_keys():
  batch = {'inputs': {'a': jnp.ones((20, 3)), 'b': jnp.ones((20, 2, 2))},
           'mask': {'a': jnp.ones(20, bool), 'b': jnp.ones(20, bool)}, 'label': jnp.arange(20)}
  out = missing.apply_to_batch(batch, 0.4, key=jax.random.key(1), order=('a', 'b'))
  assert int(sum((~m).sum() for m in out['mask'].values())) == 16
  for name in ('a', 'b'):
    absent = ~np.asarray(out['mask'][name])
    assert np.all(np.asarray(out['inputs'][name])[absent] == 0)
    assert np.all(np.asarray(out['inputs'][name])[~absent] == 1)
  np.testing.assert_array_equal(out['label'], batch['label'])


def test_dict_round_trip_and_errors():
  mask = jnp.array([[True, False], [False, True]])
  as_dict = missing.as_dict(mask, ('x', 'y'))
  np.testing.assert_array_equal(missing.stack_masks(as_dict, ('x', 'y')), mask)
  with pytest.raises(ValueError, match='mask has 2 rows but order names 3'):
    missing.as_dict(mask, ('x', 'y', 'z'))
  with pytest.raises(KeyError, match="no modality 'z'"):
    missing.stack_masks(as_dict, ('x', 'z'))
