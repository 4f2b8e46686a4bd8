"""PMR: parity with fanyunfeng-bit/Modal-Imbalance-PMR (`main_Prototype_grad.py`), properties."""

import hypothesis
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.losses import prototype
from tests import helpers

vectors = helpers.vectors_fixture('balance_losses_vectors.npz')
STEPS = ('audio_weak', 'visual_weak', 'tie', 'outside')


@pytest.mark.parametrize('tag', ['big', 'small'])
def test_prototypes_and_ema_match_calculate_prototype(vectors, x64, tag):
  del x64
  pre = f'pmr_proto_{tag}'
  used = int(vectors[f'{pre}_rows_used'])  # the first len(loader) // 10 batches (at least one)
  features = jnp.asarray(vectors[f'{pre}_features'])[:, :used]
  labels = jnp.asarray(vectors[f'{pre}_labels'])[:used]
  fresh = prototype.prototypes(features, labels, 6)
  np.testing.assert_allclose(fresh, vectors[f'{pre}_epoch0'], rtol=1e-12, atol=1e-15)
  ema = prototype.update_prototypes(jnp.asarray(vectors[f'{pre}_old']), fresh,
                                    float(vectors['pmr_momentum']))
  np.testing.assert_allclose(ema, vectors[f'{pre}_ema'], rtol=1e-12, atol=1e-15)


def test_absent_class_keeps_the_old_prototype(vectors, x64):
  del x64
  features = jnp.asarray(vectors['pmr_proto_absent_features'])
  labels = jnp.asarray(vectors['pmr_proto_absent_labels'])
  original = vectors['pmr_proto_absent_epoch0_audio']
  assert np.all(np.isnan(original[5])) and np.all(np.isfinite(original[:5]))
  fresh = prototype.prototypes(features, labels, 6)
  np.testing.assert_allclose(fresh[0, :5], original[:5], rtol=1e-12)
  np.testing.assert_array_equal(fresh[:, 5], 0)
  counts = prototype.class_counts(labels, 6)
  old = jnp.ones_like(fresh)
  updated = prototype.update_prototypes(old, fresh, 0.2, counts=jnp.broadcast_to(counts, (2, 6)))
  np.testing.assert_array_equal(updated[:, 5], 1)
  np.testing.assert_allclose(updated[:, :5], 0.8 * fresh[:, :5] + 0.2, rtol=1e-12)


@jax.jit
def _step(features, weight, bias, protos, labels, epoch, alpha):
  def loss(features, weight):
    fused = jnp.concatenate([features[0], features[1]], axis=-1) @ weight.T + bias[None]
    return prototype.pmr_loss(fused, features, protos, labels, epoch=epoch, alpha=alpha,
                              start_epoch=0, end_epoch=100)
  values = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(features, weight)
  return values, prototype.prototype_logits(features, protos)


@pytest.mark.parametrize('case', STEPS)
def test_training_step_matches_train_epoch(vectors, x64, case):
  del x64
  pre = f'pmr_step_{case}'
  assert list(vectors['pmr_step_modulation_window']) == [0, 100]
  arrays = [jnp.asarray(vectors[f'{pre}_{name}']) for name in (
      'features', 'fc_weight', 'fc_bias', 'prototypes', 'labels', 'epoch', 'alpha')]
  ((loss, stats), (grad_features, grad_weight)), logits = _step(*arrays)
  np.testing.assert_allclose(loss, vectors[f'{pre}_loss'], rtol=1e-12)
  np.testing.assert_allclose(stats.prototype_ce, vectors[f'{pre}_prototype_ce'], rtol=1e-12)
  np.testing.assert_allclose(stats.scores[0] / stats.scores[1], vectors[f'{pre}_ratio_proto'],
                             rtol=1e-12)
  np.testing.assert_allclose(grad_features, vectors[f'{pre}_grad_features'], rtol=1e-10,
                             atol=1e-13)
  np.testing.assert_allclose(grad_weight, vectors[f'{pre}_grad_fc_weight'], rtol=1e-10,
                             atol=1e-13)
  np.testing.assert_allclose(logits, vectors[f'{pre}_neg_distance'], rtol=1e-12)


def test_step_cases_cover_every_branch(vectors):
  ratios = {case: float(vectors[f'pmr_step_{case}_ratio_proto']) for case in STEPS}
  assert ratios['audio_weak'] < 1 < ratios['visual_weak'] and ratios['tie'] == 1
  assert int(vectors['pmr_step_outside_epoch']) > int(vectors['pmr_step_modulation_window'][1])


def test_coefficients_generalise_the_two_modality_rule():
  np.testing.assert_array_equal(
      prototype.rebalance_coefficients(jnp.array([0.2, 0.4]), alpha=3.0), [3.0, 0.0])
  np.testing.assert_array_equal(prototype.rebalance_coefficients(jnp.array([0.4, 0.2])), [0, 1])
  np.testing.assert_array_equal(prototype.rebalance_coefficients(jnp.array([0.3, 0.3])), [0, 0])
  np.testing.assert_array_equal(
      prototype.rebalance_coefficients(jnp.array([0.1, 0.5, 0.5, 0.2])), [1, 0, 0, 1])


@hypothesis.settings(max_examples=15)
@hypothesis.given(st.integers(0, 2**31 - 1))
def test_prototype_of_a_class_is_its_mean(seed):
  rng = np.random.default_rng(seed)
  features = rng.normal(size=(2, 12, 3)).astype(np.float32)
  labels = rng.integers(0, 4, 12)
  mask = rng.random((2, 12)) < 0.7
  protos = _jit_prototypes(features, labels, mask)
  for m in range(2):
    for k in range(4):
      rows = features[m][(labels == k) & mask[m]]
      expected = rows.mean(0) if len(rows) else np.zeros(3)
      np.testing.assert_allclose(protos[m, k], expected, rtol=1e-5, atol=1e-6)


_jit_prototypes = jax.jit(lambda f, l, m: prototype.prototypes(f, l, 4, m))


def test_distance_options_and_zero_distance_gradient():
  features = jnp.array([[[1.0, 2.0], [0.0, 0.0]]])
  protos = jnp.array([[[1.0, 2.0], [3.0, 4.0]]])
  np.testing.assert_allclose(prototype.prototype_logits(features, protos, squared=True),
                             [[[0.0, -8.0], [-5.0, -25.0]]])
  np.testing.assert_allclose(prototype.prototype_logits(features, protos, temperature=0.5),
                             [[[0.0, -2 * np.sqrt(8)], [-2 * np.sqrt(5), -10.0]]], rtol=1e-6)
  grad = jax.grad(lambda f: jnp.sum(prototype.prototype_logits(f, protos)))(features)
  assert np.all(np.isfinite(grad))   # the original's sqrt gives NaN at distance 0


def test_window_mask_entropy_and_jit():
  rng = np.random.default_rng(0)
  features = jnp.asarray(rng.normal(size=(3, 8, 4)), jnp.float32)
  protos = jnp.asarray(rng.normal(size=(3, 5, 4)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 5, 8))
  fused = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
  @jax.jit
  def run(epoch, mask, weight):
    loss, stats = prototype.pmr_loss(fused, features, protos, labels, epoch=epoch, end_epoch=10,
                                     mask=mask, entropy_weight=weight, entropy_end_epoch=5)
    logits = prototype.prototype_logits(features, protos)
    entropy = prototype.prototype_entropy(logits)
    masked_ce = prototype.prototype_cross_entropy(logits[0, 1:], labels[1:])
    return loss, stats, entropy, masked_ce

  full = jnp.ones((3, 8), bool)
  inside, stats, entropy, masked_ce = run(3, full, 0.0)
  outside, outside_stats, _, _ = run(11, full, 0.0)
  assert inside.dtype == jnp.float32 and stats.scores.dtype == jnp.float32
  assert np.all(outside_stats.coefficients == 0)
  log_probability = jax.nn.log_softmax(fused)
  fused_ce = -jnp.mean(jnp.take_along_axis(log_probability, labels[:, None], -1))
  np.testing.assert_allclose(outside, fused_ce, rtol=1e-6)
  np.testing.assert_allclose(inside, fused_ce + jnp.sum(stats.coefficients * stats.prototype_ce),
                             rtol=1e-6)
  assert int(jnp.sum(stats.coefficients > 0)) == 2
  # Entropy term: only for the best modality, only before entropy_end_epoch.
  regularised = run(3, full, 0.5)[0]
  best = int(jnp.argmax(stats.scores))
  np.testing.assert_allclose(regularised, inside - 0.5 * entropy[best], rtol=1e-6)
  np.testing.assert_allclose(run(7, full, 0.5)[0], inside, rtol=1e-6)
  # A masked sample leaves that modality's score and PCE.
  masked = run(3, full.at[0, 0].set(False), 0.0)[1]
  np.testing.assert_allclose(masked.prototype_ce[0], masked_ce, rtol=1e-6)


def test_errors():
  features = jnp.ones((2, 4, 3))
  protos = jnp.ones((2, 5, 3))
  labels = jnp.zeros((4,), jnp.int32)
  with pytest.raises(ValueError, match='labels must lie in'):
    prototype.prototypes(features, jnp.array([0, 1, 2, 7]), 5)
  with pytest.raises(ValueError, match='labels must have shape'):
    prototype.prototypes(features, jnp.zeros((3,), jnp.int32), 5)
  with pytest.raises(ValueError, match='mask must have shape'):
    prototype.prototypes(features, labels, 5, jnp.ones((2, 3), bool))
  with pytest.raises(ValueError, match='old and new must have the same shape'):
    prototype.update_prototypes(protos, protos[:, :2])
  with pytest.raises(ValueError, match='momentum must lie in'):
    prototype.update_prototypes(protos, protos, 1.5)
  with pytest.raises(ValueError, match='share the leading dims and D'):
    prototype.prototype_logits(features, jnp.ones((2, 5, 4)))
  with pytest.raises(ValueError, match='fused_logits must have shape'):
    prototype.pmr_loss(jnp.ones((4, 6)), features, protos, labels, epoch=0)
  with pytest.raises(ValueError, match='prototypes must have shape'):
    prototype.pmr_loss(jnp.ones((4, 5)), features, jnp.ones((3, 5, 3)), labels, epoch=0)
  with pytest.raises(ValueError, match='scores must have shape'):
    prototype.rebalance_coefficients(jnp.ones((2, 2)))
  with pytest.raises(ValueError, match='temperature must be > 0'):
    prototype.prototype_logits(features, protos, temperature=0.0)
  with pytest.raises(TypeError, match='logits must be a floating-point array'):
    prototype.prototype_entropy(jnp.ones((4, 5), jnp.int32))
  with pytest.raises(ValueError, match=r'mask must have shape \[N\] or \[M, N\]'):
    prototype.class_counts(labels, 5, jnp.ones((2, 3), bool))
  with pytest.raises(ValueError, match=r'labels must have shape \[N\]'):
    prototype.class_counts(jnp.zeros((2, 4), jnp.int32), 5)


def test_update_prototypes_with_traced_momentum_and_counts():
  old, new = jnp.zeros((2, 3, 2)), jnp.ones((2, 3, 2))
  labels = jnp.array([0, 0, 2, 2])
  mask = jnp.array([[True, True, True, False], [False, False, True, True]])
  counts = prototype.class_counts(labels, 3, mask)
  np.testing.assert_array_equal(counts, [[2, 0, 1], [0, 0, 2]])
  updated = jax.jit(prototype.update_prototypes)(old, new, 0.25, counts)
  np.testing.assert_allclose(updated[:, :, 0], [[0.75, 0, 0.75], [0, 0, 0.75]])
