"""Modality valuation: parity with Valuate-and-Enhance and BalanceBenchmark; Shapley laws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm import valuation
from tests import helpers

vectors = helpers.vectors_fixture('balance_aux_vectors.npz')


def _bimodal_subsets(logits):
  """[fused, audio-only, visual-only] logits -> bitmask order {}, {audio}, {visual}, {both}."""
  return jnp.stack([jnp.zeros_like(logits[0]), logits[1], logits[2], logits[0]])


def test_contributions_match_execute_modulation(vectors, x64):
  del x64
  subsets = _bimodal_subsets(jnp.asarray(vectors['val2_logits']))
  values = valuation.correctness_values(subsets, jnp.asarray(vectors['val2_labels']),
                                        dtype=jnp.float64)
  shapley = jax.jit(valuation.shapley_values)(values)
  np.testing.assert_allclose(shapley, vectors['val2_contributions'], rtol=0, atol=1e-12)
  np.testing.assert_allclose(jnp.mean(shapley, axis=1), vectors['val2_mean'], atol=1e-12)
  assert set(np.unique(vectors['val2_contributions'])) == {-0.5, 0.0, 0.5, 1.0, 1.5}


@pytest.mark.parametrize('case', ['val2', 'grid'])
def test_sample_level_resampling_matches_the_original_dataset(vectors, x64, case):
  del x64
  contributions = jnp.asarray(vectors['val2_contributions' if case == 'val2' else
                                      'grid_contributions'])
  repeats = valuation.sample_level_repeats(contributions, faithful=True)
  out = valuation.expand_sample_level(repeats)
  # The original's drop code: 0 keeps both, 2 zeroes visual (keeps audio), 1 zeroes audio.
  drop = np.where(np.asarray(out.mask).all(0), 0, np.where(np.asarray(out.mask)[0], 2, 1))
  np.testing.assert_array_equal(out.indices, vectors[f'{case}_resample_indices'])
  np.testing.assert_array_equal(drop, vectors[f'{case}_resample_drop'])
  assert np.all(out.valid)


def test_clean_thresholds_differ_only_at_the_thresholds(vectors, x64):
  del x64
  grid = jnp.asarray(vectors['grid_contributions'])
  clean = np.asarray(valuation.sample_level_repeats(grid))
  faithful = np.asarray(valuation.sample_level_repeats(grid, faithful=True))
  on_threshold = np.isin(np.asarray(grid), valuation.SAMPLE_LEVEL_THRESHOLDS)
  np.testing.assert_array_equal(clean[~on_threshold], faithful[~on_threshold])
  np.testing.assert_array_equal(faithful[on_threshold], 0)
  assert np.any(clean[on_threshold] > 0)


def test_modality_level_discrepancy_matches_the_original_dataset(vectors, x64):
  del x64
  num = int(vectors['modlevel_num_samples'])
  for (contribution_a, contribution_v, alpha), func, count, drop in zip(
      vectors['modlevel_cases'], vectors['modlevel_func'], vectors['modlevel_count'],
      vectors['modlevel_drop']):
    fraction, modality = valuation.modality_level_discrepancy(
        jnp.array([contribution_a, contribution_v]), alpha=float(alpha), func=str(func))
    assert int(float(fraction) * num) == count, (contribution_a, contribution_v, func)
    if count:
      assert {0: 2, 1: 1}[int(modality)] == drop


def test_modality_level_resample():
  contributions = jnp.stack([jnp.full(100, 1.2), jnp.full(100, 0.3)])
  out = valuation.modality_level_resample(contributions, key=jax.random.key(0), alpha=1.0)
  fraction, modality = valuation.modality_level_discrepancy(jnp.array([1.2, 0.3]))
  extra = int(float(fraction) * 100)
  assert int(modality) == 1 and out.indices.shape == (100 + extra,)
  np.testing.assert_array_equal(out.indices[:100], np.arange(100))
  np.testing.assert_array_equal(np.asarray(out.mask)[:, 100:], [[False] * extra, [True] * extra])
  assert np.all((np.asarray(out.indices) >= 0) & (np.asarray(out.indices) < 100))


def test_m3_matches_balancebenchmark_port(vectors, x64):
  del x64
  values = valuation.correctness_values(jnp.asarray(vectors['val3_logits']),
                                        jnp.asarray(vectors['val3_labels']), size_weighted=False,
                                        dtype=jnp.float64)
  np.testing.assert_allclose(valuation.shapley_values(values), vectors['val3_shapley_bb'],
                             atol=1e-12)


@pytest.mark.parametrize('num_modalities', [2, 3, 4])
def test_shapley_matches_the_permutation_definition(vectors, x64, num_modalities):
  del x64
  values = jnp.asarray(vectors[f'perm{num_modalities}_values'])
  np.testing.assert_allclose(valuation.shapley_values(values),
                             vectors[f'perm{num_modalities}_shapley'], rtol=1e-12, atol=1e-13)


def test_shapley_axioms():
  num_modalities = 4
  values = jax.random.normal(jax.random.key(0), (2**num_modalities, 7))
  shapley = valuation.shapley_values(values)
  assert shapley.shape == (num_modalities, 7) and shapley.dtype == jnp.float32
  # Efficiency.
  np.testing.assert_allclose(jnp.sum(shapley, axis=0), values[-1] - values[0], rtol=1e-5,
                             atol=1e-5)
  masks = np.asarray(valuation.subset_masks(num_modalities))
  # Null player: v(S + {2}) = v(S) for every S.
  null = values.at[masks[:, 2]].set(values[~masks[:, 2]])
  np.testing.assert_allclose(valuation.shapley_values(null)[2], 0, atol=1e-6)
  # Symmetry: v depends on |S| only -> equal values.
  sizes = jnp.asarray(masks.sum(axis=1), jnp.float32)
  symmetric = valuation.shapley_values(jnp.square(sizes)[:, None] * jnp.ones((1, 3)))
  np.testing.assert_allclose(symmetric, np.full((num_modalities, 3), 4.0), rtol=1e-6)
  # Additivity (linearity) in the value function.
  other = jax.random.normal(jax.random.key(1), values.shape)
  np.testing.assert_allclose(valuation.shapley_values(values + 2 * other),
                             shapley + 2 * valuation.shapley_values(other), atol=1e-5)


def test_subset_masks_and_lowest_contributor():
  masks = np.asarray(valuation.subset_masks(3))
  assert masks.shape == (8, 3)
  np.testing.assert_array_equal(masks[5], [True, False, True])
  contributions = jnp.array([[0.5, 1.5, -0.5], [1.5, 0.5, -0.5]])
  np.testing.assert_array_equal(valuation.lowest_contributor(contributions), [0, 1, 0])
  mask = jnp.array([[False, True, True], [True, True, True]])
  np.testing.assert_array_equal(valuation.lowest_contributor(contributions, mask), [1, 1, 0])
  counts = jnp.array([[0, 5, 2], [3, 1, 2]], jnp.int32)   # integer contributions work too
  np.testing.assert_array_equal(valuation.lowest_contributor(counts, mask), [1, 1, 0])


def test_expand_sample_level_under_jit_pads():
  repeats = jnp.array([[1, 0, 3], [0, 2, 0]])
  eager = valuation.expand_sample_level(repeats)
  padded = jax.jit(lambda r: valuation.expand_sample_level(r, total_size=12))(repeats)
  assert eager.indices.shape == (9,)
  np.testing.assert_array_equal(eager.indices, [0, 1, 2, 0, 1, 1, 2, 2, 2])
  np.testing.assert_array_equal(padded.indices[:9], eager.indices)
  np.testing.assert_array_equal(padded.mask[:, :9], eager.mask)
  np.testing.assert_array_equal(padded.valid, [True] * 9 + [False] * 3)
  assert not np.any(np.asarray(padded.mask)[:, 9:])


def test_correctness_values_and_dtypes():
  logits = jnp.array([[[9.0, 0.0]], [[2.0, 0.0]], [[0.0, 2.0]], [[1.0, 0.0]]])
  np.testing.assert_array_equal(valuation.correctness_values(logits, jnp.array([0]))[:, 0],
                                [0, 1, 0, 2])
  np.testing.assert_array_equal(
      valuation.correctness_values(logits, jnp.array([0]), size_weighted=False)[:, 0],
      [0, 1, 0, 1])
  assert valuation.shapley_values(jnp.ones((4, 2), jnp.bfloat16)).dtype == jnp.float32


def test_errors():
  with pytest.raises(ValueError, match='subset_values must have 2\\^M rows'):
    valuation.shapley_values(jnp.ones((3, 2)))
  with pytest.raises(ValueError, match='num_modalities must lie in'):
    valuation.subset_masks(0)
  with pytest.raises(ValueError, match='labels must lie in'):
    valuation.correctness_values(jnp.ones((4, 2, 3)), jnp.array([0, 3]))
  with pytest.raises(ValueError, match='thresholds must be a non-empty increasing'):
    valuation.sample_level_repeats(jnp.ones((2, 3)), thresholds=(0.4, -0.1))
  with pytest.raises(ValueError, match=r'contributions must have shape \[M, B\]'):
    valuation.sample_level_repeats(jnp.ones(3))
  with pytest.raises(ValueError, match='total_size must be given'):
    jax.jit(valuation.expand_sample_level)(jnp.ones((2, 3), jnp.int32))
  with pytest.raises(ValueError, match='repeats must be an integer array'):
    valuation.expand_sample_level(jnp.ones((2, 3)))
  with pytest.raises(ValueError, match='total_size must be at least B = 3'):
    valuation.expand_sample_level(jnp.ones((2, 3), jnp.int32), total_size=2)
  with pytest.raises(ValueError, match='B >= 1 samples'):
    valuation.expand_sample_level(jnp.ones((2, 0), jnp.int32))
  with pytest.raises(ValueError, match=r'mean_contributions must have shape \[2\]'):
    valuation.modality_level_discrepancy(jnp.ones(3))
  with pytest.raises(KeyError, match='valid names: linear, square, tanh'):
    valuation.modality_level_discrepancy(jnp.ones(2), func='cubic')
  with pytest.raises(ValueError, match='part_ratio must lie in'):
    valuation.modality_level_resample(jnp.ones((2, 5)), key=jax.random.key(0), part_ratio=0.0)
