"""NIG losses: parity with MaHuanAAA/MoNIG's `criterion_nig` and MOE objective."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.fusion import nig as nig_lib
from lqmm.losses import nig
from tests import helpers

vectors = helpers.vectors_fixture('monig_vectors.npz')
FIELDS = ('mu', 'nu', 'alpha', 'beta')
RISKS = {'r0': 0.0, 'r0p01': 0.01, 'r1': 1.0}


def _fields(vectors, prefix):
  return tuple(jnp.asarray(vectors[f'{prefix}_{field}'])[..., None] for field in FIELDS)


@pytest.mark.parametrize('tag', sorted(RISKS))
def test_loss_and_gradients_match_criterion_nig(vectors, x64, tag):
  del x64
  fields = _fields(vectors, 'loss')
  targets = jnp.asarray(vectors['loss_y'])[:, None]

  def total(fields, targets):
    return jnp.sum(nig.nig_loss(nig_lib.NIG(*fields), targets, risk=RISKS[tag]))

  per_sample = nig.nig_loss(nig_lib.NIG(*fields), targets, risk=RISKS[tag])[:, 0]
  np.testing.assert_allclose(per_sample, vectors[f'loss_{tag}_per_sample'], rtol=1e-12)
  np.testing.assert_allclose(jnp.mean(per_sample), vectors[f'loss_{tag}_mean'], rtol=1e-12)
  grad_fields, grad_targets = jax.grad(total, argnums=(0, 1))(fields, targets)
  for field, grad in zip(FIELDS, grad_fields):
    np.testing.assert_allclose(grad[:, 0], vectors[f'loss_{tag}_grad_{field}'], rtol=1e-10,
                               atol=1e-12, err_msg=field)
  np.testing.assert_allclose(grad_targets[:, 0], vectors[f'loss_{tag}_grad_y'], rtol=1e-10,
                             atol=1e-12)


def test_the_zero_residual_rows_are_covered(vectors):
  # Rows with y == mu exactly check the |y - mu| subgradient (0, as in torch).
  assert np.any(vectors['loss_y_equals_mu'])


def test_mixture_loss_matches_the_moe_objective(vectors, x64):
  del x64
  fields = _fields(vectors, 'objective_M3')
  targets = jnp.asarray(vectors['objective_M3_y'])[:, None]
  risk = float(vectors['objective_M3_risk'])

  def objective(fields):
    loss, _ = nig.mixture_loss(nig_lib.NIG(*fields), targets, risk=risk)
    return jnp.mean(loss)

  np.testing.assert_allclose(objective(fields), vectors['objective_M3_total'], rtol=1e-12)
  for field, grad in zip(FIELDS, jax.grad(objective)(fields)):
    np.testing.assert_allclose(grad[..., 0], vectors[f'objective_M3_grad_{field}'], rtol=1e-9,
                               atol=1e-12, err_msg=field)


def test_mask_drops_a_modality_from_the_objective():
  stacked = nig_lib.NIG(*(jnp.full((2, 4, 1), value) for value in (0.5, 2.0, 3.0, 4.0)))
  targets = jnp.zeros((4, 1))
  mask = jnp.array([[True] * 4, [False] * 4])
  loss, fused = nig.mixture_loss(stacked, targets, mask)
  single = jax.tree.map(lambda leaf: leaf[0], stacked)
  np.testing.assert_allclose(loss, 2 * nig.nig_loss(single, targets), rtol=1e-6)
  np.testing.assert_allclose(fused.alpha, single.alpha)


def test_errors():
  single = nig_lib.NIG(*(jnp.full((4, 1), 2.0) for _ in range(4)))
  with pytest.raises(ValueError, match='targets must have the shape'):
    nig.nig_loss(single, jnp.zeros((4,)))
  with pytest.raises(ValueError, match='targets holds 1 NaN'):
    nig.nig_loss(single, jnp.zeros((4, 1)).at[0].set(jnp.nan))


@pytest.mark.parametrize('num_modalities', [2, 64])
@pytest.mark.parametrize('magnitude', [1e2, 1e4, 1e6])
def test_mixture_loss_and_gradient_stay_finite_at_large_magnitudes(num_modalities, magnitude):
  """Targets and means up to the magnitude, nu, alpha - 1 and beta log-uniform up to it."""
  keys = jax.random.split(jax.random.key(1), 5)
  shape = (num_modalities, 16, 1)
  log_uniform = lambda key: jnp.exp(jax.random.uniform(key, shape) * np.log(magnitude))
  fields = nig_lib.NIG(jax.random.normal(keys[0], shape) * magnitude, log_uniform(keys[1]),
                       1 + log_uniform(keys[2]), log_uniform(keys[3]))
  targets = jax.random.normal(keys[4], (16, 1)) * magnitude

  def loss(fields):
    return nig.mixture_loss(fields, targets)[0].mean()

  value, grad = jax.jit(jax.value_and_grad(loss))(fields)
  assert np.isfinite(value)
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(grad))
