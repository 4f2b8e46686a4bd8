"""Evidential losses: parity with TMC's ce_loss / mse_loss (values and gradients), laws, errors."""

import hypothesis
import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lqmm.losses import evidential
from tests import helpers

vectors = helpers.vectors_fixture('tmc_vectors.npz')
LOSSES = {'ce': evidential.ce_loss, 'mse': evidential.mse_loss}
CASES = [(name, k, step) for name in LOSSES for k in (2, 10) for step in (0, 10, 50, 120)]


@pytest.mark.parametrize('name,num_classes,step', CASES)
def test_matches_tmc(vectors, x64, name, num_classes, step):
  del x64
  prefix = f'{name}_K{num_classes}_step{step}'
  alpha = jnp.asarray(vectors[f'{prefix}_alpha'])
  labels = jnp.asarray(vectors[f'{prefix}_labels'], jnp.int32)
  kl_weight = evidential.annealing_weight(int(vectors[f'{prefix}_global_step']),
                                          int(vectors[f'{prefix}_annealing_step']))
  assert kl_weight.dtype == jnp.float64
  np.testing.assert_allclose(float(kl_weight), vectors[f'{prefix}_annealing_coef'], rtol=1e-15)
  loss_fn = lambda a: LOSSES[name](a, labels, kl_weight=kl_weight)
  np.testing.assert_allclose(loss_fn(alpha), vectors[f'{prefix}_loss'], rtol=1e-10, atol=1e-12)
  grad = jax.grad(lambda a: loss_fn(a).sum())(alpha)
  # torch's CPU trigamma (the derivative of its digamma) is accurate to ~1e-9 absolute, SciPy's
  # and lqmm's to ~1e-15; test_gradient_matches_scipy_formula checks lqmm's at 1e-12.
  np.testing.assert_allclose(grad, vectors[f'{prefix}_grad'], rtol=1e-7, atol=3e-9)


def _ce_with_jax_scipy(alpha, labels, kl_weight):
  """The evidential CE written with jax.scipy.special (XLA's digamma, zeta-based polygamma)."""
  num_classes = alpha.shape[-1]
  one_hot = jax.nn.one_hot(labels, num_classes, dtype=alpha.dtype)
  strength = alpha.sum(-1, keepdims=True)
  likelihood = jnp.sum(one_hot * (jsp.digamma(strength) - jsp.digamma(alpha)), -1)
  tilde = one_hot + (1 - one_hot) * alpha
  tilde_strength = tilde.sum(-1)
  kl = (jsp.gammaln(tilde_strength) - jsp.gammaln(tilde).sum(-1)
        - jsp.gammaln(jnp.asarray(num_classes, alpha.dtype))
        + jnp.sum((tilde - 1) * (jsp.digamma(tilde) - jsp.digamma(tilde_strength)[:, None]), -1))
  return likelihood + kl_weight * kl


@pytest.mark.parametrize('num_classes', (2, 10))
def test_gradient_matches_scipy_formula(vectors, x64, num_classes):
  del x64
  prefix = f'ce_K{num_classes}_step10'
  alpha = jnp.asarray(vectors[f'{prefix}_alpha'])
  labels = jnp.asarray(vectors[f'{prefix}_labels'], jnp.int32)
  ours = jax.grad(lambda a: evidential.ce_loss(a, labels, kl_weight=0.2).sum())(alpha)
  reference = jax.grad(lambda a: _ce_with_jax_scipy(a, labels, 0.2).sum())(alpha)
  np.testing.assert_allclose(ours, reference, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize('name', LOSSES)
def test_float32_close_to_float64_reference(vectors, name):
  prefix = f'{name}_K10_step120'
  alpha = jnp.asarray(vectors[f'{prefix}_alpha'], jnp.float32)
  labels = jnp.asarray(vectors[f'{prefix}_labels'], jnp.int32)
  loss = LOSSES[name](alpha, labels, kl_weight=1.0)
  assert loss.dtype == jnp.float32
  np.testing.assert_allclose(loss, vectors[f'{prefix}_loss'], rtol=2e-5, atol=2e-6)


@hypothesis.given(hnp.arrays(np.float64, (5, 4), elements=st.floats(0.0, 100.0)))
def test_kl_to_uniform_is_nonnegative_and_zero_at_uniform(evidence):
  with jax.enable_x64(True):
    kl = evidential.kl_to_uniform(jnp.asarray(evidence + 1))
    assert np.all(np.asarray(kl) >= -1e-10)
    np.testing.assert_allclose(evidential.kl_to_uniform(jnp.ones((5, 4))), 0.0, atol=1e-12)


def test_kl_removes_target_evidence():
  # Evidence only on the true class is not penalised by the KL term.
  alpha = jnp.array([[9.0, 1.0, 1.0]])
  labels = jnp.array([0])
  with_kl = evidential.ce_loss(alpha, labels, kl_weight=1.0)
  without_kl = evidential.ce_loss(alpha, labels, kl_weight=0.0)
  np.testing.assert_allclose(with_kl, without_kl, atol=1e-6)
  misleading = evidential.ce_loss(alpha, jnp.array([1]), kl_weight=1.0)
  assert float(misleading[0]) > float(evidential.ce_loss(alpha, jnp.array([1]),
                                                          kl_weight=0.0)[0])


def test_losses_broadcast_over_leading_dims():
  alpha = jnp.full((3, 4, 5), 2.0)
  labels = jnp.zeros((3, 4), jnp.int32)
  assert evidential.ce_loss(alpha, labels, kl_weight=0.5).shape == (3, 4)
  assert evidential.mse_loss(alpha, labels, kl_weight=0.5).shape == (3, 4)


def test_annealing_weight():
  np.testing.assert_allclose([float(evidential.annealing_weight(s, 50)) for s in (0, 25, 50, 99)],
                             [0.0, 0.5, 1.0, 1.0])
  traced = jax.jit(evidential.annealing_weight)(jnp.int32(10), 40)
  np.testing.assert_allclose(float(traced), 0.25)
  with pytest.raises(ValueError, match='annealing_steps must be > 0'):
    evidential.annealing_weight(1, 0)


def test_kl_weight_is_keyword_only():
  with pytest.raises(TypeError):
    evidential.ce_loss(jnp.ones((1, 2)), jnp.array([0]), 1.0)  # pylint: disable=too-many-function-args


def test_label_errors():
  alpha = jnp.ones((2, 3))
  with pytest.raises(ValueError, match=r'labels must lie in \[0, 3\)'):
    evidential.ce_loss(alpha, jnp.array([0, 3]), kl_weight=1.0)
  with pytest.raises(ValueError, match=r'labels must have shape \(2,\)'):
    evidential.mse_loss(alpha, jnp.array([0, 1, 2]), kl_weight=1.0)
  with pytest.raises(TypeError, match='integer'):
    evidential.ce_loss(alpha, jnp.array([0.0, 1.0]), kl_weight=1.0)


def test_negative_evidence_and_nan_raise():
  with pytest.raises(ValueError, match='negative evidence'):
    evidential.ce_loss(jnp.array([[0.5, 2.0]]), jnp.array([0]), kl_weight=1.0)
  with pytest.raises(ValueError, match='NaN'):
    evidential.mse_loss(jnp.array([[jnp.nan, 2.0]]), jnp.array([0]), kl_weight=1.0)


def test_low_precision_inputs_are_upcast():
  alpha = jnp.full((4, 3), 2.0, jnp.bfloat16)
  labels = jnp.zeros(4, jnp.int32)
  for loss in LOSSES.values():
    value = loss(alpha, labels, kl_weight=1.0)
    assert value.dtype == jnp.float32
    np.testing.assert_allclose(value, loss(alpha.astype(jnp.float32), labels, kl_weight=1.0))
