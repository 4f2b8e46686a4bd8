"""Classifier heads: MMCosine parity with GeWu-Lab/MMCosine_ICASSP23 (`main_CD.py`), properties,
errors, and the per-modality split of a linear head."""

import hypothesis
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.nn import heads
from tests import helpers

vectors = helpers.vectors_fixture('balance_losses_vectors.npz')
CASES = ('D512', 'D7', 'D7_s2p5')


def _cross_entropy(logits, labels):
  log_probability = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.mean(jnp.take_along_axis(log_probability, labels[:, None], axis=-1))


@jax.jit
def _evaluate(features, kernel, labels, scale):
  def loss(features, kernel):
    return _cross_entropy(heads.cosine_logits(list(features), kernel, scale=scale), labels)
  per_modality = heads.modality_cosine_logits(features, kernel, scale=scale)
  fused = heads.cosine_logits(list(features), kernel, scale=scale)   # sequence input
  unimodal = jnp.stack([_cross_entropy(per_modality[m], labels) for m in range(2)])
  return per_modality, fused, unimodal, jax.value_and_grad(loss, argnums=(0, 1))(features, kernel)


@pytest.mark.parametrize('case', CASES)
def test_logits_loss_and_gradients_match_the_original(vectors, x64, case):
  del x64
  pre = f'mmcos_{case}'
  features = jnp.asarray(vectors[f'{pre}_features'])
  kernel = jnp.asarray(vectors[f'{pre}_fc_weight']).T        # torch [K, 2D] -> [2D, K]
  labels = jnp.asarray(vectors[f'{pre}_labels'])
  scale = jnp.asarray(vectors[f'{pre}_scaling'])
  per_modality, fused, unimodal, (value, (grad_features, grad_kernel)) = _evaluate(
      features, kernel, labels, scale)
  np.testing.assert_allclose(per_modality, vectors[f'{pre}_modality_logits'], rtol=1e-12,
                             atol=1e-13)
  np.testing.assert_allclose(fused, vectors[f'{pre}_logits'], rtol=1e-12, atol=1e-13)
  reference = vectors[f'{pre}_loss']   # [fused CE, audio CE, visual CE]
  np.testing.assert_allclose(value, reference[0], rtol=1e-12)
  np.testing.assert_allclose(unimodal, reference[1:], rtol=1e-12)
  np.testing.assert_allclose(grad_features, vectors[f'{pre}_grad_features'], rtol=1e-10,
                             atol=1e-12)
  if f'{pre}_grad_fc_weight' in vectors:
    np.testing.assert_allclose(grad_kernel.T, vectors[f'{pre}_grad_fc_weight'], rtol=1e-10,
                               atol=1e-12)


def test_the_edge_rows_are_covered(vectors):
  features = vectors['mmcos_D7_features']
  assert np.all(features[0, 0] == 0)                      # zero feature: clamped norm
  assert np.all(vectors['mmcos_D7_fc_weight'][-1, 7:] == 0)  # zero class column
  assert np.abs(vectors['mmcos_D7_grad_features'][0, 0]).max() > 1e9  # 1 / eps gradient


@jax.jit
def _jit_logits(features, kernel, scale):
  return heads.cosine_logits(features, kernel, scale=scale)


@hypothesis.given(st.integers(0, 2**31 - 1), st.floats(0.5, 30.0), st.floats(1e-3, 1e3))
def test_bounded_and_invariant_to_feature_scale(seed, scale, factor):
  rng = np.random.default_rng(seed)
  features = jnp.asarray(rng.normal(size=(3, 5, 4)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(12, 6)), jnp.float32)
  logits = _jit_logits(features, kernel, scale)
  assert float(jnp.max(jnp.abs(logits))) <= 3 * scale * (1 + 1e-5)
  scaled = _jit_logits(features * factor, kernel * factor, scale)
  np.testing.assert_allclose(scaled, logits, rtol=1e-4, atol=1e-4 * scale)


def test_different_feature_sizes_and_mask():
  rng = np.random.default_rng(0)
  audio, visual = rng.normal(size=(4, 3)), rng.normal(size=(4, 5))
  kernel = rng.normal(size=(8, 2))
  mask = jnp.array([[True, False, True, True], [True, True, True, True]])

  @jax.jit
  def run(audio, visual, kernel):
    return (heads.modality_cosine_logits([audio, visual], kernel, scale=2.0),
            heads.cosine_logits([audio, visual], kernel, scale=2.0, mask=mask))

  logits, masked = run(audio, visual, kernel)
  assert logits.shape == (2, 4, 2)
  unit = lambda x, axis: x / np.linalg.norm(x, axis=axis, keepdims=True)
  np.testing.assert_allclose(logits[1], 2.0 * unit(visual, 1) @ unit(kernel[3:], 0), rtol=1e-5)
  np.testing.assert_allclose(masked[1], logits[1, 1], rtol=1e-6)
  np.testing.assert_allclose(masked[0], logits[0, 0] + logits[1, 0], rtol=1e-6)


def test_dtype_jit_and_finite_gradient_at_zero():
  features = jnp.zeros((2, 3, 4), jnp.float32)
  kernel = jnp.ones((8, 5), jnp.float32)
  logits = jax.jit(heads.cosine_logits)(features, kernel)
  assert logits.dtype == jnp.float32 and np.all(logits == 0)
  grad = jax.jit(jax.grad(lambda f: jnp.sum(heads.cosine_logits(f, kernel))))(features)
  assert np.all(np.isfinite(grad))
  assert heads.cosine_logits(features.astype(jnp.bfloat16), kernel).dtype == jnp.float32


def test_errors():
  features = jnp.ones((2, 3, 4))
  with pytest.raises(ValueError, match='kernel must have sum'):
    heads.cosine_logits(features, jnp.ones((7, 5)))
  with pytest.raises(ValueError, match='kernel must have shape'):
    heads.cosine_logits(features, jnp.ones((8,)))
  with pytest.raises(ValueError, match=r'features\[1\] must have shape'):
    heads.cosine_logits([jnp.ones((3, 4)), jnp.ones((2, 4))], jnp.ones((8, 5)))
  with pytest.raises(ValueError, match='mask must have shape'):
    heads.cosine_logits(features, jnp.ones((8, 5)), mask=jnp.ones((2, 4), bool))
  with pytest.raises(ValueError, match='features must hold at least one'):
    heads.cosine_logits([], jnp.ones((8, 5)))


def test_split_linear_head_sums_to_the_fused_head():
  keys = jax.random.split(jax.random.key(0), 4)
  features = [jax.random.normal(keys[0], (5, 3)), jax.random.normal(keys[1], (5, 7))]
  kernel = jax.random.normal(keys[2], (10, 4))
  bias = jax.random.normal(keys[3], (4,))
  parts = heads.split_linear_head(features, kernel, bias)
  fused = jnp.concatenate(features, axis=-1) @ kernel + bias[None]
  np.testing.assert_allclose(parts.sum(0), fused, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(parts[1], features[1] @ kernel[3:] + bias[None] / 2, rtol=1e-6)
  with pytest.raises(ValueError, match='kernel'):
    heads.split_linear_head(features, kernel[:9], bias)
