"""Metrics against direct NumPy computations."""

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lqmm import metrics


def _numpy_ece(probabilities, labels, num_bins):
  confidence = probabilities.max(-1)
  correct = probabilities.argmax(-1) == labels
  total = 0.0
  for low, high in zip(np.linspace(0, 1, num_bins + 1)[:-1], np.linspace(0, 1, num_bins + 1)[1:]):
    inside = (confidence > low) & (confidence <= high)
    if inside.any():
      total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
  return total


def test_ece_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(500, 7)) * 3
  probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  labels = rng.integers(0, 7, 500)
  ours = metrics.expected_calibration_error(jnp.asarray(probabilities, jnp.float32),
                                            jnp.asarray(labels, jnp.int32), num_bins=10)
  np.testing.assert_allclose(ours, _numpy_ece(probabilities, labels, 10), atol=1e-5)


@hypothesis.given(hnp.arrays(np.float32, 30, elements=st.floats(-3, 3, width=32, allow_subnormal=False)),
                  hnp.arrays(bool, 30))
def test_auroc_matches_pairwise_definition(scores, positives):
  hypothesis.assume(positives.any() and (~positives).any())
  pos, neg = scores[positives], scores[~positives]
  expected = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
  np.testing.assert_allclose(metrics.auroc(jnp.asarray(scores), jnp.asarray(positives)),
                             expected, rtol=1e-5)


def test_accuracy_and_uncertainty_auroc():
  scores = jnp.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
  labels = jnp.array([0, 1, 1, 1])
  assert float(metrics.accuracy(scores, labels)) == 0.75
  uncertainty = jnp.array([0.1, 0.2, 0.9, 0.3])  # the wrong prediction is the most uncertain
  assert float(metrics.uncertainty_auroc(uncertainty, scores, labels)) == 1.0


def test_vmaps_over_seeds():
  probabilities = jnp.full((3, 8, 4), 0.25)
  labels = jnp.zeros((8,), jnp.int32)
  values = jax.vmap(lambda p: metrics.expected_calibration_error(p, labels))(probabilities)
  # Every prediction is class 0 (argmax of ties) and correct, with confidence 0.25.
  np.testing.assert_allclose(values, np.full(3, 0.75))


def test_errors():
  with pytest.raises(ValueError, match=r'labels must have shape \(2,\)'):
    metrics.accuracy(jnp.ones((2, 3)), jnp.zeros(3, jnp.int32))
  with pytest.raises(ValueError, match='scores and positives must both have shape'):
    metrics.auroc(jnp.ones(3), jnp.ones(4, bool))
