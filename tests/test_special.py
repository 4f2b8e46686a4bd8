"""lqmm.special against SciPy, in float64 and float32, with derivatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from lqmm import special

FUNCTIONS = {
    'lgamma': (special.lgamma, scipy.special.gammaln),
    'digamma': (special.digamma, scipy.special.digamma),
    'trigamma': (special.trigamma, lambda x: scipy.special.polygamma(1, x)),
}
POINTS = np.concatenate([np.linspace(1e-3, 1, 300), np.logspace(0, 15, 1000)])


def _scaled_error(actual, expected):
  actual = np.asarray(actual, np.float64)
  return np.max(np.abs(actual - expected) / np.maximum(np.abs(expected), 1))


@pytest.mark.parametrize('name', FUNCTIONS)
def test_float64_matches_scipy(x64, name):
  del x64
  ours, reference = FUNCTIONS[name]
  assert _scaled_error(ours(jnp.asarray(POINTS)), reference(POINTS)) < 1e-13


@pytest.mark.parametrize('name', FUNCTIONS)
def test_float32_matches_scipy(name):
  ours, reference = FUNCTIONS[name]
  points = np.asarray(POINTS, np.float32)
  result = ours(jnp.asarray(points))
  assert result.dtype == jnp.float32
  assert _scaled_error(result, reference(points.astype(np.float64))) < 5e-6


def test_derivatives(x64):
  del x64
  points = jnp.asarray([0.3, 1.0, 2.5, 17.0, 1e5])
  grad_lgamma = jax.vmap(jax.grad(special.lgamma))(points)
  grad_digamma = jax.vmap(jax.grad(special.digamma))(points)
  grad_trigamma = jax.vmap(jax.grad(special.trigamma))(points)
  np.testing.assert_allclose(grad_lgamma, scipy.special.digamma(points), rtol=1e-12)
  np.testing.assert_allclose(grad_digamma, scipy.special.polygamma(1, points), rtol=1e-12)
  np.testing.assert_allclose(grad_trigamma, scipy.special.polygamma(2, points), rtol=1e-9)


def test_huge_arguments_stay_finite_in_float32():
  points = jnp.asarray(np.logspace(0, 30, 100), jnp.float32)
  assert np.all(np.isfinite(special.digamma(points)))
  assert np.all(np.isfinite(special.trigamma(points)))
  assert np.all(np.isfinite(special.lgamma(points)))
