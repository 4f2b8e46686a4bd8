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


def _kl_term_reference(x, offset):
  """`lgamma(x) + x - (x - offset) digamma(x)` in mpmath-free float64 where it is accurate."""
  return scipy.special.gammaln(x) + x - (x - offset) * scipy.special.digamma(x)


@pytest.mark.parametrize('offset', [1.0, 10.0])
def test_dirichlet_kl_term_matches_its_definition(x64, offset):
  del x64
  points = np.concatenate([np.linspace(1e-3, 1, 300), np.logspace(0, 6, 400)])
  ours = special.dirichlet_kl_term(jnp.asarray(points), offset)
  # The definition itself cancels at large x; in float64 up to 1e6 it loses < 1e-8.
  np.testing.assert_allclose(ours, _kl_term_reference(points, offset), rtol=1e-9, atol=1e-8)


def test_dirichlet_kl_term_stays_accurate_in_float32_at_large_arguments(x64):
  """Up to 1e19 the float32 term agrees with float64 to a few 1e-5 (it grows like log x)."""
  del x64
  points = np.logspace(0, 19, 200)
  exact = special.dirichlet_kl_term(jnp.asarray(points), 10.0)
  single = special.dirichlet_kl_term(jnp.asarray(points, jnp.float32), 10.0)
  assert single.dtype == jnp.float32
  np.testing.assert_allclose(single, exact, atol=2e-4)


def test_dirichlet_kl_term_derivative(x64):
  del x64
  points = jnp.asarray(np.logspace(-2, 8, 50))
  grad = jax.vmap(jax.grad(lambda x: special.dirichlet_kl_term(x, 3.0)))(points)
  expected = 1 - (np.asarray(points) - 3.0) * scipy.special.polygamma(1, np.asarray(points))
  np.testing.assert_allclose(grad, expected, rtol=1e-8, atol=1e-10)
