"""Missing-modality masks: exact rate, at least one modality kept, tracing, errors."""

import chex
import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from lqmm import missing


@hypothesis.settings(max_examples=15)  # each new shape compiles
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


@pytest.mark.parametrize('seed', range(5))
def test_apply_to_batch_respects_an_existing_mask(seed):
  existing = {'a': jnp.zeros(10, bool), 'b': jnp.arange(10) % 2 == 0, 'c': jnp.ones(10, bool)}
  batch = {'inputs': {name: jnp.ones((10, 2)) for name in existing}, 'mask': existing}
  out = missing.apply_to_batch(batch, 0.2, key=jax.random.key(seed), order=('a', 'b', 'c'))
  new = missing.stack_masks(out['mask'], ('a', 'b', 'c'))
  old = missing.stack_masks(existing, ('a', 'b', 'c'))
  assert not np.any(np.asarray(new & ~old))  # nothing missing comes back
  assert bool(new.any(axis=0).all())  # every sample keeps a modality
  assert int((old & ~new).sum()) == round(0.2 * int(old.sum()))  # rate of the present entries


def test_available_without_any_modality_raises():
  available = jnp.array([[True, False], [False, False]])
  with pytest.raises(ValueError, match='sample 1 has none'):
    missing.random_mask(2, 2, 0.2, key=jax.random.key(0), available=available)
  with pytest.raises(ValueError, match=r'available must have shape \(2, 2\)'):
    missing.random_mask(2, 2, 0.2, key=jax.random.key(0), available=jnp.ones((2, 3), bool))


def test_vmap_over_keys_and_clipped_traced_rate():
  keys = jax.random.split(jax.random.key(0), 4)
  masks = jax.vmap(lambda k: missing.random_mask(3, 5, 0.4, key=k))(keys)
  assert masks.shape == (4, 3, 5)
  assert not np.array_equal(masks[0], masks[1])
  np.testing.assert_array_equal((~masks).sum(axis=(1, 2)), np.full(4, 6))
  # A traced rate above (M - 1) / M cannot be checked eagerly: it is clipped, never empties a row.
  clipped = jax.jit(lambda r: missing.random_mask(3, 5, r, key=keys[0]))(0.95)
  assert bool(clipped.any(axis=0).all()) and int((~clipped).sum()) == 10


def test_dict_round_trip_and_errors():
  mask = jnp.array([[True, False], [False, True]])
  as_dict = missing.as_dict(mask, ('x', 'y'))
  np.testing.assert_array_equal(missing.stack_masks(as_dict, ('x', 'y')), mask)
  with pytest.raises(ValueError, match='mask has 2 rows but order names 3'):
    missing.as_dict(mask, ('x', 'y', 'z'))
  with pytest.raises(KeyError, match="no modality 'z'"):
    missing.stack_masks(as_dict, ('x', 'z'))


def test_bad_masks_and_batches_raise_naming_the_argument():
  key = jax.random.key(0)
  with pytest.raises(TypeError, match='mask must be a bool array'):
    missing.as_dict(jnp.ones((2, 3)), ('x', 'y'))
  with pytest.raises(ValueError, match='mask must have at least 1 dimension'):
    missing.as_dict(jnp.asarray(True), ('x', 'y'))
  with pytest.raises(TypeError, match=r"masks\['x'\] must be a bool array"):
    missing.stack_masks({'x': jnp.ones(3), 'y': jnp.ones(3, bool)}, ('x', 'y'))
  with pytest.raises(ValueError, match=r"masks\['y'\] has shape \(\)"):
    missing.stack_masks({'x': jnp.ones(3, bool), 'y': jnp.asarray(True)}, ('x', 'y'))
  with pytest.raises(ValueError, match='num_samples must be >= 0'):
    missing.random_mask(2, -1, 0.3, key=key)
  batch = {'inputs': {'a': jnp.ones((4, 2)), 'b': jnp.ones((4,))},
           'mask': {'a': jnp.ones(4, bool), 'b': jnp.ones(4, bool)}}
  with pytest.raises(ValueError, match=r"inputs\['a'\] must have at least 1"):
    missing.apply_to_batch({**batch, 'inputs': {'a': jnp.float32(1), 'b': jnp.ones(4)}}, 0.3,
                           key=key, order=('a', 'b'))
  with pytest.raises(ValueError, match=r"inputs\['b'\] has batch size 3"):
    missing.apply_to_batch({**batch, 'inputs': {'a': jnp.ones((4, 2)), 'b': jnp.ones(3)}}, 0.3,
                           key=key, order=('a', 'b'))
  with pytest.raises(ValueError, match=r"batch\['mask'\]\['a'\] must have shape \[B\] = \(0,\)"):
    missing.apply_to_batch({**batch, 'inputs': {'a': jnp.ones((0, 2)), 'b': jnp.ones(0)}}, 0.3,
                           key=key, order=('a', 'b'))
  with pytest.raises(TypeError, match=r"batch\['mask'\]\['b'\] must be a bool array"):
    missing.apply_to_batch({**batch, 'mask': {'a': jnp.ones(4, bool), 'b': jnp.ones(4)}}, 0.3,
                           key=key, order=('a', 'b'))


def test_apply_to_batch_passes_non_finite_present_inputs_through():
  """Values are the model's to check: a NaN input stays NaN where it stays present."""
  batch = {'inputs': {'a': jnp.full((4, 2), jnp.nan), 'b': jnp.ones((4,))}}
  out = missing.apply_to_batch(batch, 0.0, key=jax.random.key(0), order=('a', 'b'))
  assert bool(jnp.isnan(out['inputs']['a']).all())
