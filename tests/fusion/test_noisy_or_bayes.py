"""UNO noisy-or fusion and ProbEn Bayesian fusion: parity with GT-RIPL/UNO-IC and ProbEn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.fusion import bayes
from lqmm.fusion import noisy_or
from tests import helpers

vectors = helpers.vectors_fixture('uno_proben_vectors.npz')
CASES = [(m, k) for m in (2, 3) for k in (2, 10)]


def _uno(vectors, prefix, logits, calibrated, spatial_axes=()):
  return noisy_or.uno(
      logits, mean=jnp.asarray(vectors[f'{prefix}_stats_mean']),
      std=jnp.asarray(vectors[f'{prefix}_stats_std']),
      prior=jnp.asarray(vectors[f'{prefix}_prior']) if calibrated else None,
      beta=float(vectors[f'{prefix}_beta']) if calibrated else None,
      spatial_axes=spatial_axes, clip_probability=1e-9)


@pytest.mark.parametrize('num_modalities,num_classes', CASES)
def test_uno_matches_the_original(vectors, x64, num_modalities, num_classes):
  del x64
  prefix = f'uno_M{num_modalities}_K{num_classes}'
  logits = jnp.asarray(vectors[f'{prefix}_logits'])
  entropy = noisy_or.mean_entropy(logits, clip_probability=1e-9)
  np.testing.assert_allclose(entropy, vectors[f'{prefix}_entropy'], rtol=1e-12, atol=1e-14)
  factor = noisy_or.flattening_factor(entropy, jnp.asarray(vectors[f'{prefix}_stats_mean']),
                                      jnp.asarray(vectors[f'{prefix}_stats_std']))
  np.testing.assert_allclose(factor, vectors[f'{prefix}_dr'], rtol=1e-12)
  probs = jax.nn.softmax(logits, axis=-1)
  np.testing.assert_allclose(noisy_or.fuse(probs), vectors[f'{prefix}_noisyor'], rtol=1e-12,
                             atol=1e-14)
  weights = jnp.asarray(vectors[f'{prefix}_w'])
  for calibrated, key in ((False, 'uno'), (True, 'uno_ic')):
    fused = _uno(vectors, prefix, logits, calibrated)
    np.testing.assert_allclose(fused, vectors[f'{prefix}_{key}'], rtol=1e-12, atol=1e-14)
    grad = jax.grad(lambda z, calibrated=calibrated: jnp.sum(
        weights * _uno(vectors, prefix, z, calibrated)))(logits)
    expected = vectors[f'{prefix}_{key}_grad']
    # Rows far from the decision have gradients ~1e-12; compare against the array's scale.
    np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-13 * np.abs(expected).max(),
                               err_msg=key)


def test_uno_rebalancing_and_zero_prior(vectors, x64):
  del x64
  prefix = 'uno_M2_K10'
  fused = _uno(vectors, prefix, jnp.asarray(vectors[f'{prefix}_logits']), True)
  np.testing.assert_allclose(fused, vectors[f'{prefix}_uno_ic'], rtol=1e-12, atol=1e-14)
  zero_prior = jnp.asarray(vectors[f'{prefix}_zeroprior_prior'])
  fused = noisy_or.uno(jnp.asarray(vectors[f'{prefix}_logits']),
                       mean=jnp.asarray(vectors[f'{prefix}_stats_mean']),
                       std=jnp.asarray(vectors[f'{prefix}_stats_std']), prior=zero_prior,
                       beta=float(vectors[f'{prefix}_beta']), clip_probability=1e-9)
  np.testing.assert_allclose(fused, vectors[f'{prefix}_zeroprior_uno_ic'], rtol=1e-12,
                             atol=1e-14)


def test_uno_on_segmentation_maps(vectors, x64):
  del x64
  prefix = 'uno_spatial_M2_K10'
  logits = jnp.moveaxis(jnp.asarray(vectors[f'{prefix}_logits']), 2, -1)  # class axis last
  for calibrated, key in ((False, 'uno'), (True, 'uno_ic')):
    fused = _uno(vectors, prefix, logits, calibrated, spatial_axes=(1, 2))
    np.testing.assert_allclose(jnp.moveaxis(fused, -1, 1), vectors[f'{prefix}_{key}'],
                               rtol=1e-12, atol=1e-14)


def test_noisy_or_mask_and_degenerate_rows():
  probs = jnp.array([[[0.9, 0.1]], [[0.2, 0.8]]])
  np.testing.assert_allclose(noisy_or.fuse(probs, jnp.array([[True], [False]])), [[0.9, 0.1]],
                             rtol=1e-6)
  np.testing.assert_allclose(noisy_or.fuse(probs, jnp.zeros((2, 1), bool)), [[0.5, 0.5]])
  with pytest.raises(ValueError, match=r'probs must be probabilities in \[0, 1\]'):
    noisy_or.fuse(probs * 2)
  with pytest.raises(ValueError, match='prior and beta go together'):
    noisy_or.uno(jnp.zeros((2, 1, 2)), mean=jnp.ones(2), std=jnp.ones(2), beta=0.5)
  with pytest.raises(ValueError, match=r'mean must have shape \(2,\)'):
    noisy_or.flattening_factor(jnp.ones((2, 3)), jnp.ones(3), jnp.ones(2))


@pytest.mark.parametrize('num_modalities', [2, 3])
def test_proben_multiclass_matches(vectors, x64, num_modalities):
  del x64
  prefix = f'proben_M{num_modalities}_K4'
  probs = bayes.with_background(jnp.asarray(vectors[f'{prefix}_fg_probs']))
  fused = jnp.exp(bayes.fuse(jnp.log(probs)))
  np.testing.assert_allclose(fused, vectors[f'{prefix}_fused'], rtol=1e-10, atol=1e-13)
  np.testing.assert_allclose(jnp.max(fused, -1), vectors[f'{prefix}_out_score'], rtol=1e-10)
  np.testing.assert_array_equal(jnp.argmax(fused, -1), vectors[f'{prefix}_out_class'])


@pytest.mark.parametrize('num_modalities', [2, 3])
def test_proben_binary_matches(vectors, x64, num_modalities):
  del x64
  prefix = f'proben_M{num_modalities}_K2'
  probs = bayes.with_background(jnp.asarray(vectors[f'{prefix}_fg_prob'])[..., None])
  fused = jnp.exp(bayes.fuse(jnp.log(probs)))[..., 0]
  np.testing.assert_allclose(fused, vectors[f'{prefix}_fused_fg'], rtol=1e-10, atol=1e-13)


def test_bayes_prior_is_the_identity_and_divides_out():
  prior = jnp.log(jnp.array([0.7, 0.2, 0.1]))
  posterior = jnp.log(jnp.array([[0.6, 0.3, 0.1]]))
  stacked = jnp.stack([posterior, posterior])
  mask = jnp.array([[True], [False]])
  np.testing.assert_allclose(bayes.fuse(stacked, mask, log_prior=prior), posterior, rtol=1e-6)
  np.testing.assert_allclose(bayes.fuse(stacked, jnp.zeros((2, 1), bool), log_prior=prior),
                             jax.nn.log_softmax(prior)[None], rtol=1e-6)
  # Two posteriors that equal the prior carry no evidence: the result is the prior.
  np.testing.assert_allclose(bayes.fuse(jnp.stack([prior[None]] * 2), log_prior=prior),
                             prior[None], rtol=1e-6)
  with pytest.raises(ValueError, match=r'log_prior must have shape \(3,\)'):
    bayes.fuse(stacked, log_prior=jnp.zeros(2))
