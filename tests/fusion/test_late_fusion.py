"""Subjective logic, product of experts, weighted/entropy/TCP late fusion and baselines."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.fusion import baselines
from lqmm.fusion import confidence
from lqmm.fusion import dempster_shafer
from lqmm.fusion import entropy
from lqmm.fusion import product
from lqmm.fusion import subjective_logic
from lqmm.fusion import weighted


def test_cumulative_and_averaging_fusion_in_opinion_form():
  alpha_a, alpha_b = jnp.array([5.0, 2.0, 1.0]), jnp.array([1.0, 3.0, 2.0])
  (b1, u1), (b2, u2) = dempster_shafer.opinion(alpha_a), dempster_shafer.opinion(alpha_b)
  # Jøsang's operator formulas for two sources.
  belief, uncertainty = dempster_shafer.opinion(subjective_logic.combine(alpha_a, alpha_b))
  denominator = u1 + u2 - u1 * u2
  np.testing.assert_allclose(belief, (b1 * u2 + b2 * u1) / denominator, rtol=1e-6)
  np.testing.assert_allclose(uncertainty, u1 * u2 / denominator, rtol=1e-6)
  stacked = jnp.stack([alpha_a, alpha_b])
  belief, uncertainty = dempster_shafer.opinion(
      subjective_logic.fuse(stacked, method='averaging'))
  np.testing.assert_allclose(belief, (b1 * u2 + b2 * u1) / (u1 + u2), rtol=1e-6)
  np.testing.assert_allclose(uncertainty, 2 * u1 * u2 / (u1 + u2), rtol=1e-6)


def test_averaging_is_idempotent_and_masks():
  alpha = jnp.array([[[4.0, 2.0]], [[4.0, 2.0]], [[9.0, 1.0]]])
  mask = jnp.array([[True], [True], [False]])
  np.testing.assert_allclose(subjective_logic.fuse(alpha, mask, method='averaging'), alpha[0])
  np.testing.assert_array_equal(
      subjective_logic.fuse(alpha, ~jnp.ones_like(mask), method='averaging'), [[1.0, 1.0]])
  with pytest.raises(KeyError, match='valid names: averaging, cumulative'):
    subjective_logic.fuse(alpha, method='mean')


def test_discount_scales_beliefs():
  alpha = jnp.array([[6.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
  trust = jnp.array([0.3, 0.9])
  belief, uncertainty = dempster_shafer.opinion(alpha)
  new_belief, new_uncertainty = dempster_shafer.opinion(subjective_logic.discount(alpha, trust))
  np.testing.assert_allclose(new_belief, trust[:, None] * belief, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(new_uncertainty, 1 - trust * (1 - uncertainty), rtol=1e-6)
  np.testing.assert_allclose(subjective_logic.discount(alpha, jnp.ones(2)), alpha, rtol=1e-6)
  with pytest.raises(ValueError, match=r'trust must lie in \[0, 1\]'):
    subjective_logic.discount(alpha, jnp.array([1.5, 0.0]))


def test_gaussian_product_of_experts():
  mean = jnp.array([[[0.0]], [[3.0]], [[100.0]]])
  variance = jnp.array([[[1.0]], [[2.0]], [[1.0]]])
  fused_mean, fused_variance = product.fuse_gaussian(mean, variance,
                                                     jnp.array([[True], [True], [False]]))
  np.testing.assert_allclose(fused_mean, [[1.0]], rtol=1e-6)
  np.testing.assert_allclose(fused_variance, [[2 / 3]], rtol=1e-6)
  fused_mean, fused_variance = product.fuse_gaussian(mean, variance, jnp.zeros((3, 1), bool))
  assert float(fused_mean[0, 0]) == 0.0 and float(fused_variance[0, 0]) == np.inf
  with pytest.raises(ValueError, match='variance must be > 0'):
    product.fuse_gaussian(mean, -variance)


def test_product_of_experts_normalises_logits():
  logits = jnp.array([[[2.0, 0.0]], [[5.0, 5.0]]])  # the second expert is uninformative
  np.testing.assert_allclose(product.fuse(logits), jax.nn.log_softmax(logits[0]), rtol=1e-6)


def test_weighted_fuse_and_covariance():
  outputs = jnp.array([[[1.0, 0.0]], [[0.0, 1.0]]])
  weights = jnp.array([[2.0], [6.0]])
  np.testing.assert_allclose(weighted.fuse(outputs, weights=weights), [[2.0, 6.0]])
  np.testing.assert_allclose(weighted.fuse(outputs, weights=weights, normalize=True),
                             [[0.25, 0.75]])
  np.testing.assert_allclose(weighted.fuse(outputs, jnp.array([[True], [False]]), weights=weights),
                             [[2.0, 0.0]])
  rng = np.random.default_rng(0)
  w, l = rng.normal(size=(2, 50)), rng.normal(size=(2, 50))
  np.testing.assert_allclose(weighted.weight_loss_covariance(jnp.asarray(w), jnp.asarray(l)),
                             [np.cov(w[m], l[m], bias=True)[0, 1] for m in range(2)], rtol=1e-5)
  mask = rng.random((2, 50)) > 0.3
  expected = [np.cov(w[m, mask[m]], l[m, mask[m]], bias=True)[0, 1] for m in range(2)]
  np.testing.assert_allclose(
      weighted.weight_loss_covariance(jnp.asarray(w), jnp.asarray(l), jnp.asarray(mask)),
      expected, rtol=1e-5)
  with pytest.raises(ValueError, match=r'weights must have shape \(2, 1\)'):
    weighted.fuse(outputs, weights=jnp.ones((2,)))


def test_entropy_weights_prefer_the_confident_modality():
  logits = jnp.array([[[6.0, 0.0, 0.0]], [[0.1, 0.0, 0.2]]])
  weights = entropy.weights(logits)
  assert float(weights[0, 0]) > 0.8 > 0.01 > float(weights[1, 0]) >= 0.0
  np.testing.assert_allclose(entropy.normalized_entropy(jnp.zeros((2, 5))), [1.0, 1.0],
                             rtol=1e-6)
  # stop_gradient=False lets the loss reach the weights.
  grad = jax.grad(lambda z: entropy.fuse(z, stop_gradient=False)[0, 0])(logits)
  grad_stopped = jax.grad(lambda z: entropy.fuse(z)[0, 0])(logits)
  assert not np.allclose(grad, grad_stopped)
  with pytest.raises(ValueError, match='K >= 2'):
    entropy.normalized_entropy(jnp.zeros((2, 1)))


def test_true_class_probability_confidence():
  logits = jnp.array([[[2.0, 0.0]], [[0.0, 2.0]]])
  tcp = confidence.true_class_probability(logits, jnp.broadcast_to(jnp.array([0]), (2, 1)))
  np.testing.assert_allclose(tcp[:, 0], [jax.nn.sigmoid(2.0), jax.nn.sigmoid(-2.0)], rtol=1e-6)
  with pytest.raises(ValueError, match=r'labels must lie in \[0, 2\)'):
    confidence.true_class_probability(logits[0], jnp.array([5]))


def test_confidence_gated_concatenation():
  gated = confidence.fuse([jnp.ones((1, 2)), jnp.ones((1, 3))], jnp.array([[True], [False]]),
                          confidence=jnp.array([[0.2], [0.7]]))
  np.testing.assert_allclose(gated, [[0.2, 0.2, 0, 0, 0]], rtol=1e-6)
  # Stacked features [M, B, D] equal the sequence form.
  stacked = jnp.arange(12.0).reshape(2, 3, 2)
  scores = jnp.array([[1.0, 0.5, 0.0], [2.0, 1.0, 3.0]])
  np.testing.assert_allclose(confidence.fuse(stacked, confidence=scores),
                             confidence.fuse(list(stacked), confidence=scores))
  np.testing.assert_allclose(confidence.fuse(stacked, confidence=scores)[1],
                             [0.5 * 2, 0.5 * 3, 1.0 * 8, 1.0 * 9])
  with pytest.raises(ValueError, match=r'confidence must have shape \(2, 3\)'):
    confidence.fuse(stacked, confidence=jnp.ones((2,)))
  with pytest.raises(ValueError, match='at least one modality'):
    confidence.fuse([], confidence=jnp.ones((0, 1)))


def test_mean_sum_and_concat():
  x = jnp.array([[[1.0]], [[3.0]], [[8.0]]])
  np.testing.assert_allclose(baselines.fuse(x), [[4.0]])
  np.testing.assert_allclose(baselines.fuse(x, jnp.array([[True], [True], [False]])), [[2.0]])
  np.testing.assert_allclose(baselines.fuse(x, jnp.zeros((3, 1), bool)), [[0.0]])
  np.testing.assert_allclose(baselines.fuse(x, jnp.array([[True], [False], [True]]),
                                            reduction='sum'), [[9.0]])
  with pytest.raises(KeyError, match='valid names: mean, sum'):
    baselines.fuse(x, reduction='max')
  with pytest.raises(ValueError, match='share their leading dims'):
    baselines.concat([jnp.ones((2, 3)), jnp.ones((3, 3))])
