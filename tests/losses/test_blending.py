"""G-Blend: parity with tsai's GBlend / GBlendLoss and MultiBench's gb_estimate, plus properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.losses import blending
from tests import helpers

vectors = helpers.vectors_fixture('balance_aux_vectors.npz')
CASES = ('rand_H3', 'rand_H4', 'nogain_H3', 'tiny_dO_H3', 'negO_H3')
FIELDS = ('train_start', 'train_end', 'val_start', 'val_end')


def _losses(vectors, case):
  return [jnp.asarray(vectors[f'gblend_{case}_{field}']) for field in FIELDS]


@pytest.mark.parametrize('case', CASES)
def test_paper_estimator_matches_tsai(vectors, x64, case):
  del x64
  weights = blending.gblend_weights(*_losses(vectors, case), eps=1e-8, min_weight=1e-8)
  np.testing.assert_allclose(weights, vectors[f'gblend_{case}_w_tsai'], rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('estimator', ['multibench', 'multibench_delta'])
def test_multibench_estimators_match_gb_estimate(vectors, x64, case, estimator):
  del x64
  weights = blending.gblend_weights(*_losses(vectors, case), estimator=estimator)
  np.testing.assert_allclose(weights, vectors[f'gblend_{case}_w_{estimator}'], rtol=1e-10,
                             atol=1e-15)


def test_heads_whose_validation_loss_rose_get_no_weight(vectors, x64):
  del x64
  np.testing.assert_allclose(blending.gblend_weights(*_losses(vectors, 'nogain_H3')),
                             np.full(3, 1 / 3), rtol=1e-12)
  losses = _losses(vectors, 'rand_H4')
  gain = losses[2] - losses[3]
  weights = blending.gblend_weights(*losses)
  assert np.any(gain < 0)
  np.testing.assert_array_equal(np.asarray(weights)[np.asarray(gain) <= 0], 0)


def test_weights_are_a_distribution_and_scale_free():
  key = jax.random.key(0)
  losses = list(jax.random.uniform(key, (4, 32, 5), minval=0.2, maxval=2.0))
  weights = blending.gblend_weights(*losses)
  assert weights.shape == (32, 5) and weights.dtype == jnp.float32
  assert np.all(np.asarray(weights) >= 0)
  np.testing.assert_allclose(jnp.sum(weights, axis=-1), 1, rtol=1e-5)
  # Multiplying every loss by c scales dG by c and dO^2 by c^2: the weights are unchanged.
  np.testing.assert_allclose(blending.gblend_weights(*[3 * x for x in losses]), weights,
                             rtol=1e-4, atol=1e-6)


def test_blended_loss_matches_tsai_gblendloss(vectors, x64):
  del x64
  logits = jnp.asarray(vectors['blendloss_logits'])
  labels = jnp.asarray(vectors['blendloss_labels'])
  for tag, normalize in (('normalised', False), ('raw', True)):  # raw weights sum to 2.6
    weights = jnp.asarray(vectors[f'blendloss_{tag}_weights'])

    def objective(logits, weights=weights, normalize=normalize):
      log_probs = jax.nn.log_softmax(logits, axis=-1)
      ce = -jnp.mean(jnp.take_along_axis(log_probs, labels[None, :, None], axis=-1)[..., 0],
                     axis=-1)
      return blending.blended_loss(ce[-1], ce[:-1], weights, normalize=normalize)

    np.testing.assert_allclose(objective(logits), vectors[f'blendloss_{tag}_loss'], rtol=1e-12)
    np.testing.assert_allclose(jax.grad(objective)(logits), vectors[f'blendloss_{tag}_grad'],
                               rtol=1e-10, atol=1e-14)


def test_blended_loss_per_sample_and_dtype():
  fused = jnp.array([1.0, 2.0])
  unimodal = jnp.array([[2.0, 0.0], [4.0, 1.0]])
  out = jax.jit(blending.blended_loss)(fused, unimodal, jnp.array([0.25, 0.25, 0.5]))
  np.testing.assert_allclose(out, [2.0, 1.25])
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(
      blending.blended_loss(fused, unimodal, jnp.array([1.0, 1.0, 2.0]), normalize=True),
      [2.0, 1.25])


def test_jit_and_dtype():
  losses = [jnp.array([1.0, 1.2, 0.9]), jnp.array([0.5, 0.7, 0.3]), jnp.array([1.1, 1.3, 1.0]),
            jnp.array([0.9, 1.0, 0.8])]
  eager = blending.gblend_weights(*losses)
  np.testing.assert_allclose(jax.jit(blending.gblend_weights)(*losses), eager, rtol=1e-6)
  assert blending.gblend_weights(*[x.astype(jnp.bfloat16) for x in losses]).dtype == jnp.float32


def test_errors():
  good = jnp.ones(3)
  with pytest.raises(ValueError, match='train_losses_end must have the shape'):
    blending.gblend_weights(good, jnp.ones(4), good, good)
  with pytest.raises(ValueError, match='at least one unimodal head'):
    blending.gblend_weights(*[jnp.ones(1)] * 4)
  with pytest.raises(ValueError, match='val_losses_end holds 1 NaN'):
    blending.gblend_weights(good, good, good, good.at[0].set(jnp.nan))
  with pytest.raises(KeyError, match='valid names: multibench, multibench_delta, paper'):
    blending.gblend_weights(good, good, good, good, estimator='nope')
  with pytest.raises(ValueError, match=r'weights must have shape \[M \+ 1\]'):
    blending.blended_loss(jnp.ones(()), jnp.ones(2), jnp.ones(2))
  with pytest.raises(ValueError, match='unimodal_losses must have shape'):
    blending.blended_loss(jnp.ones(4), jnp.ones((2, 3)), jnp.ones(3))
