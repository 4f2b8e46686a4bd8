"""TCP confidence regression: squared error to the true-class probability, constant target."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.fusion import confidence as confidence_fusion
from lqmm.losses import confidence


def test_confidence_loss_regresses_the_true_class_probability():
  logits = jnp.array([[[2.0, 0.0]], [[0.0, 2.0]]])
  labels = jnp.array([0])
  tcp = confidence_fusion.true_class_probability(logits, jnp.broadcast_to(labels, (2, 1)))
  conf = jnp.array([[0.5], [0.5]])
  loss = confidence.confidence_loss(conf, logits, labels)
  np.testing.assert_allclose(loss, (conf - tcp)**2, rtol=1e-6)
  # The target is a constant: no gradient reaches the classifier through it.
  grad = jax.grad(lambda z: confidence.confidence_loss(conf, z, labels).sum())(logits)
  np.testing.assert_array_equal(grad, 0.0)


def test_confidence_loss_original_target_and_mask():
  logits = jnp.array([[[2.0, 0.0]], [[0.0, 2.0]]])
  labels = jnp.array([0])
  conf = jnp.array([[0.5], [0.5]])
  # stop_gradient=False (the original code) lets the regression train the classifier too.
  grad = jax.grad(lambda z: confidence.confidence_loss(conf, z, labels,
                                                       stop_gradient=False).sum())(logits)
  assert np.all(np.abs(grad) > 0)
  masked = confidence.confidence_loss(conf, logits, labels, jnp.array([[True], [False]]))
  assert float(masked[1, 0]) == 0.0 and float(masked[0, 0]) > 0.0
  with pytest.raises(ValueError, match=r'confidence must have shape \(2, 1\)'):
    confidence.confidence_loss(jnp.ones((2,)), logits, labels)
