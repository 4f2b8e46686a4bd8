"""Dempster-Shafer fusion: parity with TMC's DS_Combin, algebraic laws, masks, errors."""

import chex
import hypothesis
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lqmm.fusion import base
from lqmm.fusion import dempster_shafer as ds
from lqmm.losses import evidential
from tests import helpers

vectors = helpers.vectors_fixture('tmc_vectors.npz')
CASES = [(m, k) for m in (2, 3, 6) for k in (2, 10)]


def _relative_error(actual, expected):
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  return np.max(np.abs(actual - expected) / np.abs(expected))


# ------------------------------------------------------------------ parity with TMC's code


@pytest.mark.parametrize('num_views,num_classes', CASES)
def test_fuse_matches_tmc_float64(vectors, x64, num_views, num_classes):
  del x64
  alpha = vectors[f'ds_M{num_views}_K{num_classes}_alpha']
  expected = vectors[f'ds_M{num_views}_K{num_classes}_fused']
  assert _relative_error(ds.fuse(jnp.asarray(alpha)), expected) < 1e-10
  # The generic tree-reduction API gives the same result.
  assert _relative_error(base.fuse(ds.RULE, jnp.asarray(alpha)), expected) < 1e-10


@pytest.mark.parametrize('num_views,num_classes', CASES)
def test_fuse_matches_tmc_float32(vectors, num_views, num_classes):
  alpha = jnp.asarray(vectors[f'ds_M{num_views}_K{num_classes}_alpha'], jnp.float32)
  expected = vectors[f'ds_M{num_views}_K{num_classes}_fused']
  fused = ds.fuse(alpha)
  assert fused.dtype == jnp.float32
  # Compare against the reference evaluated at the float32-rounded inputs' precision.
  assert _relative_error(fused, expected) < 1e-5


def test_fold_of_combine_matches_tmc(vectors, x64):
  del x64
  alpha = jnp.asarray(vectors['ds_M6_K10_alpha'])
  folded = alpha[0]
  for view in range(1, alpha.shape[0]):
    folded = ds.combine(folded, alpha[view])
  assert _relative_error(folded, vectors['ds_M6_K10_fused']) < 1e-10


def test_gradient_matches_tmc(vectors, x64):
  del x64
  alpha = jnp.asarray(vectors['ds_grad_M3_K10_alpha'])
  weights = jnp.asarray(vectors['ds_grad_M3_K10_w'])
  expected = vectors['ds_grad_M3_K10_grad']
  grad = np.asarray(jax.grad(lambda a: jnp.sum(ds.fuse(a) * weights))(alpha))
  # The original's cross-class terms cancel only up to rounding, so compare per row scale.
  scale = np.max(np.abs(expected), axis=-1, keepdims=True)
  assert np.max(np.abs(grad - expected) / scale) < 1e-10


# ------------------------------------------------------------------ algebraic laws

_EVIDENCE = st.floats(0.0, 1e3, allow_nan=False, allow_infinity=False, width=64)


def _alphas(num_views, batch=3, num_classes=4):
  return hnp.arrays(np.float64, (num_views, batch, num_classes), elements=_EVIDENCE).map(
      lambda evidence: evidence + 1)


def _close(a, b, rtol=1e-9):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=1e-9)


@hypothesis.given(_alphas(2))
def test_commutative(alpha):
  with jax.enable_x64(True):
    alpha = jnp.asarray(alpha)
    _close(ds.combine(alpha[0], alpha[1]), ds.combine(alpha[1], alpha[0]))


@hypothesis.given(_alphas(3))
def test_associative(alpha):
  with jax.enable_x64(True):
    a, b, c = jnp.asarray(alpha)
    _close(ds.combine(ds.combine(a, b), c), ds.combine(a, ds.combine(b, c)), rtol=1e-8)


@hypothesis.given(_alphas(1))
def test_identity(alpha):
  with jax.enable_x64(True):
    alpha = jnp.asarray(alpha[0])
    _close(ds.combine(alpha, ds.identity_like(alpha)), alpha)
    _close(ds.combine(ds.identity_like(alpha), alpha), alpha)


@hypothesis.given(_alphas(4), st.randoms(use_true_random=False))
def test_permutation_invariant(alpha, random):
  with jax.enable_x64(True):
    permutation = list(range(alpha.shape[0]))
    random.shuffle(permutation)
    _close(ds.fuse(jnp.asarray(alpha)), ds.fuse(jnp.asarray(alpha[permutation])), rtol=1e-8)


@hypothesis.given(_alphas(4), hnp.arrays(bool, (4, 3)))
def test_mask_equals_fusing_present_views(alpha, mask):
  with jax.enable_x64(True):
    fused = np.asarray(ds.fuse(jnp.asarray(alpha), jnp.asarray(mask)))
    generic = np.asarray(base.fuse(ds.RULE, jnp.asarray(alpha), jnp.asarray(mask)))
    for row in range(alpha.shape[1]):
      present = alpha[mask[:, row], row]
      expected = (np.ones(alpha.shape[-1]) if present.shape[0] == 0 else
                  np.asarray(ds.fuse(jnp.asarray(present[:, None]))[0]))
      _close(fused[row], expected, rtol=1e-8)
      _close(generic[row], expected, rtol=1e-8)


def test_all_missing_rows_are_vacuous():
  alpha = jnp.full((3, 2, 5), 7.0)
  mask = jnp.array([[False, True], [False, False], [False, True]])
  fused = ds.fuse(alpha, mask)
  np.testing.assert_array_equal(fused[0], np.ones(5))
  belief, uncertainty = ds.opinion(fused)
  np.testing.assert_array_equal(belief[0], np.zeros(5))
  assert float(uncertainty[0]) == 1.0
  belief, uncertainty = ds.fuse_opinion(alpha, mask)
  np.testing.assert_array_equal(belief[0], np.zeros(5))
  assert float(uncertainty[0]) == 1.0


def test_fusing_reduces_uncertainty_when_views_agree():
  alpha = jnp.array([[[5.0, 1.0, 1.0]], [[4.0, 1.0, 1.0]]])
  _, fused_u = ds.opinion(ds.fuse(alpha))
  _, view_u = ds.opinion(alpha)
  assert float(fused_u[0]) < float(jnp.min(view_u))


# ------------------------------------------------------------------ opinions and overflow


@hypothesis.given(_alphas(1))
def test_opinion_sums_to_one(alpha):
  with jax.enable_x64(True):
    belief, uncertainty = ds.opinion(jnp.asarray(alpha[0]))
    _close(belief.sum(-1) + uncertainty, np.ones(alpha.shape[1]))


def test_many_modalities_do_not_overflow():
  num_views, num_classes = 200, 10
  evidence = np.zeros((num_views, 4, num_classes), np.float32)
  evidence[:, :, 3] = 1e4  # 200 confident views: fused evidence ~ 10 * 1001^200.
  evidence[:, 1, 5] = 1e4  # a tie between two classes in row 1.
  alpha = jnp.asarray(evidence + 1)
  belief, uncertainty = ds.fuse_opinion(alpha)
  assert np.all(np.isfinite(belief)) and np.all(np.isfinite(uncertainty))
  np.testing.assert_allclose(belief.sum(-1) + uncertainty, 1.0, rtol=1e-6)
  np.testing.assert_allclose(belief[0, 3], 1.0, rtol=1e-6)
  np.testing.assert_allclose(belief[1, [3, 5]], [0.5, 0.5], rtol=1e-6)
  # Without saturation the fused alpha overflows float32: eagerly that raises; under jit
  # (unchecked) it is +inf only where the true value is that large, never NaN.
  with pytest.raises(ValueError, match='Fusing alpha overflowed float32'):
    ds.fuse(alpha, max_evidence=np.inf)
  unsaturated = jax.jit(functools.partial(ds.fuse, max_evidence=np.inf))(alpha)
  assert not np.any(np.isnan(unsaturated)) and np.any(np.isinf(unsaturated))
  # With the default saturation it stays finite and predicts what the opinion says.
  fused = ds.fuse(alpha)
  assert np.all(np.isfinite(fused))
  np.testing.assert_allclose(ds.expected_probability(fused), belief / belief.sum(-1, keepdims=True),
                             rtol=1e-6, atol=1e-12)


def test_saturation_scales_the_row_down_to_max_evidence():
  rng = np.random.default_rng(0)
  evidence = rng.uniform(0, 30, (64, 5, 4)).astype(np.float32)
  evidence[:, 4] = rng.uniform(0, 0.01, (64, 4))  # a row far below the threshold
  alpha = jnp.asarray(evidence + 1)
  fused = ds.fuse(alpha)
  log_evidence = ds.fuse_log_evidence(alpha)
  cap = np.sqrt(np.finfo(np.float32).max)
  saturated = np.asarray(log_evidence.max(-1)) > np.log(cap)
  assert saturated[:4].all() and not saturated[4]
  np.testing.assert_allclose((fused - 1).max(-1)[:4], cap, rtol=1e-5)
  # Proportions kept: log e_k - log e_max is the same before and after saturation.
  gaps = np.log(np.asarray(fused - 1)) - np.log(np.asarray(fused - 1)).max(-1, keepdims=True)
  exact_gaps = log_evidence - log_evidence.max(-1, keepdims=True)
  np.testing.assert_allclose(gaps[:4], exact_gaps[:4], atol=1e-4)
  np.testing.assert_array_equal(jnp.argmax(fused, -1), jnp.argmax(log_evidence, -1))
  # A row below the threshold is bit-identical to the unsaturated rule; a lower cap applies.
  np.testing.assert_array_equal(fused[4:], ds.fuse(alpha[:, 4:], max_evidence=np.inf))
  np.testing.assert_allclose(ds.fuse(alpha, max_evidence=100.0).max(-1)[:4], 101.0, rtol=1e-5)
  with pytest.raises(ValueError, match='max_evidence must be > 0'):
    ds.fuse(alpha, max_evidence=np.float32(-1.0))


def test_fuse_log_evidence_is_exact(x64):
  del x64
  rng = np.random.default_rng(1)
  alpha = jnp.asarray(1 + rng.uniform(0, 5, (3, 7, 4)))
  alpha = alpha.at[:, 0, 2].set(1.0)  # zero fused evidence: -inf
  log_evidence = ds.fuse_log_evidence(alpha)
  assert np.all(np.isneginf(log_evidence[0, 2]))
  finite = np.isfinite(log_evidence)
  np.testing.assert_allclose(np.exp(log_evidence)[finite],
                             np.asarray(ds.fuse(alpha) - 1)[finite], rtol=1e-12)


@pytest.mark.parametrize('num_modalities', [2, 8, 64])
@pytest.mark.parametrize('largest', [31.0, 1e4])
def test_losses_and_gradients_stay_finite_for_many_confident_modalities(num_modalities, largest):
  """Evidence up to 1e4 on up to 64 modalities: the fused alpha saturates instead of
  overflowing float32, and the evidential losses and their gradients stay finite and accurate
  (the float32 loss of the saturated alpha equals its float64 value)."""
  key = jax.random.key(num_modalities)
  evidence = jax.random.uniform(key, (num_modalities, 16, 10)) * largest
  labels = jnp.arange(16) % 10

  def loss(evidence):
    fused = ds.fuse(evidence + 1)
    return (evidential.ce_loss(fused, labels, kl_weight=1.0).mean() +
            evidential.mse_loss(fused, labels, kl_weight=1.0).mean())

  value, grad = jax.jit(jax.value_and_grad(loss))(evidence)
  assert np.isfinite(value) and np.all(np.isfinite(grad))
  fused = ds.fuse(evidence + 1)
  kl = evidential.kl_to_uniform(fused)
  assert np.all(np.asarray(kl) >= 0)
  with jax.enable_x64(True):
    kl64 = evidential.kl_to_uniform(jnp.asarray(np.asarray(fused), jnp.float64))
  np.testing.assert_allclose(kl, kl64, rtol=1e-4)


def test_fuse_opinion_matches_opinion_of_fuse(vectors, x64):
  del x64
  alpha = jnp.asarray(vectors['ds_M3_K10_alpha'])
  belief, uncertainty = ds.fuse_opinion(alpha)
  expected_belief, expected_uncertainty = ds.opinion(ds.fuse(alpha))
  np.testing.assert_allclose(belief, expected_belief, rtol=1e-9, atol=1e-15)
  np.testing.assert_allclose(uncertainty, expected_uncertainty, rtol=1e-9, atol=1e-15)


def test_fuse_opinion_has_finite_gradients():
  alpha = jnp.ones((3, 2, 4)).at[0, 0, 1].set(5.0)
  grad = jax.grad(lambda a: ds.fuse_opinion(a)[1].sum())(alpha)
  assert np.all(np.isfinite(grad))


# ------------------------------------------------------------------ tracing and errors


def test_new_mask_does_not_retrace():
  @jax.jit
  @chex.assert_max_traces(n=1)
  def fused(alpha, mask):
    return ds.fuse(alpha, mask)

  alpha = jnp.full((3, 4, 2), 2.0)
  for seed in range(3):
    mask = jax.random.bernoulli(jax.random.key(seed), 0.5, (3, 4))
    fused(alpha, mask)


def test_negative_evidence_raises():
  with pytest.raises(ValueError, match='negative evidence'):
    ds.fuse(jnp.array([[[0.5, 1.0]], [[1.0, 1.0]]]))


def test_nan_raises():
  with pytest.raises(ValueError, match='NaN'):
    ds.combine(jnp.array([jnp.nan, 1.0]), jnp.array([1.0, 1.0]))


def test_mismatched_classes_raise():
  with pytest.raises(ValueError, match='same number of classes'):
    ds.combine(jnp.ones((2, 3)), jnp.ones((2, 4)))


def test_wrong_mask_shape_raises():
  with pytest.raises(ValueError, match=r'mask must have shape \(3, 4\)'):
    ds.fuse(jnp.ones((3, 4, 2)), jnp.ones((4, 3), bool))


def test_non_bool_mask_raises():
  with pytest.raises(TypeError, match='bool'):
    ds.fuse(jnp.ones((3, 4, 2)), jnp.ones((3, 4), jnp.float32))


def test_missing_modality_axis_raises():
  with pytest.raises(ValueError, match=r'\[M, \.\.\., K\]'):
    ds.fuse(jnp.ones((4,)))


def test_integer_alpha_raises():
  with pytest.raises(TypeError, match='floating-point'):
    ds.opinion(jnp.ones((2, 3), jnp.int32))


def test_low_precision_inputs_are_upcast_to_float32():
  alpha = jnp.full((3, 2, 4), 3.0, jnp.bfloat16)
  assert ds.fuse(alpha).dtype == jnp.float32
  assert ds.combine(alpha[0], alpha[1]).dtype == jnp.float32
  np.testing.assert_allclose(ds.fuse(alpha), ds.fuse(alpha.astype(jnp.float32)))


def test_unbroadcastable_leading_dims_raise():
  with pytest.raises(ValueError, match='alpha_a and alpha_b must have broadcastable leading dims'):
    ds.combine(jnp.ones((3, 4)), jnp.ones((2, 4)))


def test_stack_modalities_uses_the_explicit_order():
  tree = {'b': jnp.full((2, 3), 2.0), 'a': jnp.ones((2, 3))}
  stacked = base.stack_modalities(tree, ('a', 'b'))
  np.testing.assert_array_equal(stacked[:, 0, 0], [1.0, 2.0])
  with pytest.raises(KeyError, match="tree has no modality 'c'"):
    base.stack_modalities(tree, ('a', 'c'))
  with pytest.raises(ValueError, match='same shape'):
    base.stack_modalities({'a': jnp.ones(2), 'b': jnp.ones(3)}, ('a', 'b'))
  with pytest.raises(ValueError, match='at least one modality'):
    base.stack_modalities(tree, ())


def test_missing_entries_may_hold_garbage_under_jit():
  # Value checks do not run under jit; a missing modality's NaN must still not leak.
  alpha = jnp.array([[[3.0, 1.0]], [[jnp.nan, jnp.inf]]])
  mask = jnp.array([[True], [False]])
  fused = jax.jit(ds.fuse)(alpha, mask)
  np.testing.assert_allclose(fused, [[3.0, 1.0]], rtol=1e-6)
  grad = jax.jit(jax.grad(lambda a: ds.fuse(a, mask).sum()))(alpha)
  assert np.all(np.isfinite(grad[0])) and np.all(grad[1] == 0)
