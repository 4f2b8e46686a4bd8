"""MoNIG fusion: parity with MaHuanAAA/MoNIG's `moe_nig` (values and gradients), masks, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.fusion import base
from lqmm.fusion import nig
from tests import helpers

vectors = helpers.vectors_fixture('monig_vectors.npz')
FIELDS = ('mu', 'nu', 'alpha', 'beta')


def _nig(vectors, prefix):
  """The stored fields `[M, B]` (or `[B]`) as an `NIG` with a trailing D = 1 axis."""
  return nig.NIG(*(jnp.asarray(vectors[f'{prefix}_{field}'])[..., None] for field in FIELDS))


def _assert_fields(actual, vectors, prefix, rtol=1e-12):
  for field, value in zip(FIELDS, actual):
    np.testing.assert_allclose(np.asarray(value)[..., 0], vectors[f'{prefix}_{field}'], rtol=rtol,
                               err_msg=field)


def test_combine_matches_moe_nig(vectors, x64):
  del x64
  pair = _nig(vectors, 'pair')
  fused = nig.combine(jax.tree.map(lambda leaf: leaf[0], pair),
                      jax.tree.map(lambda leaf: leaf[1], pair))
  _assert_fields(fused, vectors, 'pair_fused')


@pytest.mark.parametrize('num_modalities', [2, 3, 4])
def test_fuse_matches_the_original_fold(vectors, x64, num_modalities):
  del x64
  stacked = _nig(vectors, f'fold_M{num_modalities}')
  _assert_fields(nig.fuse(stacked), vectors, f'fold_M{num_modalities}_fused')
  _assert_fields(base.fuse(nig.RULE, stacked), vectors, f'fold_M{num_modalities}_fused', 1e-11)


@pytest.mark.parametrize('prefix,num_modalities', [('pair', 2), ('fold_M3', 3)])
def test_gradients_match(vectors, x64, prefix, num_modalities):
  del x64
  stacked = _nig(vectors, prefix)
  weights = jnp.asarray(vectors[f'{prefix}_grad_w'])[..., None]

  def objective(fields):
    fused = (nig.fuse(nig.NIG(*fields)) if num_modalities > 2 else
             nig.combine(*(nig.NIG(*(leaf[index] for leaf in fields)) for index in (0, 1))))
    return sum(jnp.sum(w * value) for w, value in zip(weights, fused))

  grads = jax.grad(objective)(tuple(stacked))
  for field, grad in zip(FIELDS, grads):
    expected = vectors[f'{prefix}_grad_{field}']
    # Gradients w.r.t. nu reach 3e9 next to O(1) entries: compare against each sample's scale.
    scale = np.max(np.abs(expected), axis=0, keepdims=True) + 1e-300
    assert np.max(np.abs(np.asarray(grad)[..., 0] - expected) / scale) < 1e-12, field


def test_mask_counts_only_present_alpha_offsets():
  stacked = nig.NIG(*(jnp.full((3, 2, 1), value) for value in (1.0, 2.0, 3.0, 4.0)))
  mask = jnp.array([[True, True], [True, False], [False, False]])
  fused = nig.fuse(stacked, mask)
  # Two present modalities: 3 + 3 + 1/2; one: 3 (no offset).
  np.testing.assert_allclose(fused.alpha[:, 0], [6.5, 3.0])
  np.testing.assert_allclose(fused.nu[:, 0], [4.0, 2.0])


def test_uncertainties():
  single = nig.NIG(*jnp.array([[0.5], [2.0], [3.0], [4.0]]))
  np.testing.assert_allclose(nig.aleatoric(single), [2.0])
  np.testing.assert_allclose(nig.epistemic(single), [1.0])
  np.testing.assert_allclose(nig.predictive_variance(single), [3.0])
  vacuous = nig.identity_like(single)
  assert float(nig.epistemic(vacuous)[0]) == np.inf
  assert float(nig.aleatoric(vacuous)[0]) == np.inf
  # Fusing two agreeing modalities lowers the epistemic uncertainty.
  fused = nig.combine(single, single)
  assert float(nig.epistemic(fused)[0]) < 1.0


def test_all_missing_rows_have_finite_gradients():
  stacked = nig.NIG(*(jnp.full((2, 3, 1), value) for value in (1.0, 2.0, 3.0, 4.0)))
  mask = jnp.array([[True, False, True], [False, False, True]])
  grads = jax.grad(lambda fields: sum(jnp.sum(v) for v in nig.fuse(nig.NIG(*fields), mask)))(
      tuple(stacked))
  assert all(np.all(np.isfinite(grad)) for grad in grads)


def test_from_outputs_matches_split(vectors, x64):
  del x64
  raw = jnp.asarray(vectors['split_raw']).T[:, None, :]  # [B, D=1, 4]
  _assert_fields(nig.from_outputs(raw), vectors, 'split', rtol=1e-9)


def test_errors():
  good = nig.NIG(*(jnp.ones((2, 3, 1)) * 2 for _ in range(4)))
  with pytest.raises(TypeError, match='must be an lqmm.fusion.nig.NIG'):
    nig.fuse(tuple(good))
  with pytest.raises(ValueError, match=r'nig.nu must be >= 0'):
    nig.fuse(good._replace(nu=-good.nu))
  with pytest.raises(ValueError, match=r'nig.alpha must be > 1'):
    nig.fuse(good._replace(alpha=good.alpha * 0.5))
  with pytest.raises(ValueError, match='same shape'):
    nig.fuse(good._replace(beta=jnp.ones((2, 3, 2))))
  with pytest.raises(ValueError, match='NaN'):
    nig.fuse(good._replace(gamma=good.gamma.at[0, 0, 0].set(jnp.nan)))
  with pytest.raises(ValueError, match=r'mask must have shape \(2, 3\)'):
    nig.fuse(good, jnp.ones((3, 2), bool))
  with pytest.raises(ValueError, match='last axis of size 4'):
    nig.from_outputs(jnp.ones((2, 3)))
