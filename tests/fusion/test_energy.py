"""QMF energy-weighted fusion: parity with QingyangZhang/QMF (both variants), masks, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.fusion import energy
from tests import helpers

vectors = helpers.vectors_fixture('qmf_vectors.npz')
# (variant, temperature tag, temperature, stop_gradient)
VARIANTS = [('rgbd', 'T10', 10.0, False), ('rgbd', 'T1', 1.0, False),
            ('rgbd', 'T0p5', 0.5, False), ('ti', 'T10', 10.0, True)]


@pytest.mark.parametrize('num_classes', [2, 10])
@pytest.mark.parametrize('variant,tag,temperature,stop_gradient', VARIANTS)
@pytest.mark.parametrize('num_modalities', [2, 3])
def test_fusion_and_gradients_match_qmf(vectors, x64, num_classes, variant, tag, temperature,
                                        stop_gradient, num_modalities):
  del x64
  prefix = f'fuse_K{num_classes}'
  logits = jnp.asarray(vectors[f'{prefix}_logits'])[:num_modalities]
  weights = jnp.asarray(vectors[f'{prefix}_w'])
  conf = energy.confidence(logits, temperature=temperature)
  np.testing.assert_allclose(conf, vectors[f'{prefix}_{variant}_{tag}_conf'][:num_modalities],
                             rtol=1e-12)
  fused = energy.fuse(logits, temperature=temperature, stop_gradient=stop_gradient)
  expected = vectors[f'{prefix}_M{num_modalities}_{variant}_{tag}_fused']
  np.testing.assert_allclose(fused, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
  grad = jax.grad(lambda z: jnp.sum(weights * energy.fuse(
      z, temperature=temperature, stop_gradient=stop_gradient)))(logits)
  expected = vectors[f'{prefix}_{variant}_{tag}_grad'][:num_modalities]
  np.testing.assert_allclose(grad, expected, rtol=1e-11, atol=1e-12 * np.abs(expected).max())


def test_missing_modality_gets_weight_zero():
  logits = jnp.array([[[2.0, 0.0]], [[0.0, 3.0]]])
  fused = energy.fuse(logits, jnp.array([[True], [False]]))
  np.testing.assert_allclose(fused, energy.fuse(logits[:1]))
  np.testing.assert_array_equal(energy.fuse(logits, jnp.zeros((2, 1), bool)), np.zeros((1, 2)))


def test_errors():
  with pytest.raises(ValueError, match='temperature must be > 0'):
    energy.confidence(jnp.ones((2, 3)), temperature=0.0)
  with pytest.raises(ValueError, match=r'\[M, \.\.\., K\]'):
    energy.fuse(jnp.ones((3,)))
  with pytest.raises(ValueError, match='logits holds 1 NaN'):
    energy.fuse(jnp.ones((2, 1, 3)).at[0, 0, 0].set(jnp.nan))


@pytest.mark.parametrize('num_modalities', [2, 64])
@pytest.mark.parametrize('magnitude', [1e2, 1e4, 1e6])
def test_loss_and_gradient_stay_finite_at_large_logits(num_modalities, magnitude):
  """QMF energies at large magnitudes: the fused logits grow like max(z)^2 / T, which float32
  holds up to about 5e19 (checked here to logits of 1e6 on 64 modalities)."""
  logits = jax.random.normal(jax.random.key(0), (num_modalities, 16, 10)) * magnitude

  def loss(logits):
    fused = energy.fuse(logits, stop_gradient=False)
    return -jnp.mean(jax.nn.log_softmax(fused)[:, 0])

  value, grad = jax.jit(jax.value_and_grad(loss))(logits)
  assert np.isfinite(value) and np.all(np.isfinite(grad))
  assert np.all(np.isfinite(energy.weights(logits)))
