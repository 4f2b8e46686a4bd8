"""Modality and pathway dropout: marginal rates, the keep-one rule, keys, jit and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.missing import dropout

NUM_SAMPLES = 40_000


def test_marginal_rate_without_keep_one():
  mask = dropout.modality_dropout((3, NUM_SAMPLES), rate=jnp.array([0.1, 0.5, 0.8]),
                                  key=jax.random.key(0), keep_at_least_one=False)
  np.testing.assert_allclose(1 - np.asarray(mask).mean(axis=1), [0.1, 0.5, 0.8], atol=0.01)


def test_marginal_rate_with_keep_one_follows_the_documented_formula():
  rates = np.array([0.3, 0.6, 0.9])
  mask = dropout.modality_dropout((3, NUM_SAMPLES), rate=jnp.asarray(rates),
                                  key=jax.random.key(1))
  expected = rates - np.prod(rates) / 3
  np.testing.assert_allclose(1 - np.asarray(mask).mean(axis=1), expected, atol=0.01)
  assert np.asarray(mask).any(axis=0).all()
  # rate = 1 keeps exactly one modality, uniformly chosen.
  one = np.asarray(dropout.modality_dropout((4, NUM_SAMPLES), rate=1.0, key=jax.random.key(2)))
  np.testing.assert_array_equal(one.sum(axis=0), 1)
  np.testing.assert_allclose(one.mean(axis=1), 0.25, atol=0.01)


def test_existing_mask_is_respected():
  available = jax.random.bernoulli(jax.random.key(3), 0.6, (3, 2000))
  available = available.at[:, 0].set(False).at[:, 1].set(jnp.array([False, True, False]))
  mask = dropout.modality_dropout(available, rate=0.7, key=jax.random.key(4))
  assert not np.any(np.asarray(mask) & ~np.asarray(available))
  present = np.asarray(available).any(axis=0)
  np.testing.assert_array_equal(np.asarray(mask).any(axis=0), present)  # empty stays empty
  np.testing.assert_array_equal(np.asarray(mask)[:, 1], [False, True, False])


def test_deterministic_per_key_and_jit():
  first = dropout.modality_dropout((3, 64), rate=0.5, key=jax.random.key(5))
  np.testing.assert_array_equal(first, dropout.modality_dropout((3, 64), rate=0.5,
                                                                key=jax.random.key(5)))
  assert not np.array_equal(first, dropout.modality_dropout((3, 64), rate=0.5,
                                                            key=jax.random.key(6)))
  jitted = jax.jit(lambda rate, key: dropout.modality_dropout((3, 64), rate=rate, key=key))
  np.testing.assert_array_equal(jitted(0.5, jax.random.key(5)), first)
  assert first.dtype == jnp.bool_


def test_pathway_dropout_rescales_and_is_identity_at_eval():
  contributions = jax.random.normal(jax.random.key(7), (2, 5, 3))
  out = jax.jit(lambda x, key: dropout.pathway_dropout(x, rate=0.25, key=key))(
      contributions, jax.random.key(8))
  ratio = np.asarray(out / contributions)
  kept = np.isclose(ratio, 1 / 0.75)
  assert np.all(kept | np.isclose(ratio, 0))
  assert np.all(kept == kept[..., :1])  # a whole (modality, sample) slice is dropped or kept
  assert out.dtype == jnp.float32
  assert dropout.pathway_dropout(contributions, rate=0.25, key=None,
                                 deterministic=True) is contributions
  ones = jnp.ones((2, NUM_SAMPLES))
  mean = dropout.pathway_dropout(ones, rate=jnp.array([0.2, 0.6]), key=jax.random.key(9)).mean(1)
  np.testing.assert_allclose(mean, 1, atol=0.03)  # unbiased
  half = dropout.pathway_dropout(contributions.astype(jnp.bfloat16), rate=0.5,
                                 key=jax.random.key(0))
  assert half.dtype == jnp.bfloat16


def test_errors():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match=r'rate must lie in \[0, 1\]'):
    dropout.modality_dropout((2, 3), rate=1.5, key=key)
  with pytest.raises(ValueError, match=r'rate must lie in \[0, 1\]'):
    dropout.modality_dropout((2, 3), rate=-0.1, key=key)
  with pytest.raises(ValueError, match=r'rate must be a scalar or have shape \[M\]'):
    dropout.modality_dropout((2, 3), rate=jnp.array([0.1, 0.2, 0.3]), key=key)
  with pytest.raises(ValueError, match='mask_or_shape must be'):
    dropout.modality_dropout((2, 3, 4), rate=0.1, key=key)
  with pytest.raises(TypeError, match='mask_or_shape must be a bool array'):
    dropout.modality_dropout(jnp.ones((2, 3)), rate=0.1, key=key)
  with pytest.raises(TypeError, match='key must be a typed PRNG key'):
    dropout.modality_dropout((2, 3), rate=0.1, key=None)
  with pytest.raises(TypeError, match='key must be a typed PRNG key'):
    dropout.modality_dropout((2, 3), rate=0.1, key=jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match=r'rate must lie in \[0, 1\)'):
    dropout.pathway_dropout(jnp.ones((2, 3)), rate=1.0, key=key)
  with pytest.raises(TypeError, match='key must be a typed PRNG key'):
    dropout.pathway_dropout(jnp.ones((2, 3)), rate=0.5, key=None)
  with pytest.raises(ValueError, match='contributions must have at least 2'):
    dropout.pathway_dropout(jnp.ones(3), rate=0.5, key=key)
  with pytest.raises(ValueError, match='contributions holds 1 NaN'):
    dropout.pathway_dropout(jnp.ones((2, 3)).at[0, 0].set(jnp.nan), rate=0.5, key=key)
