"""CML regulariser: parity with QingyangZhang/CML (CPM-Nets and MIWAE code), properties, errors."""

import hypothesis
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.losses import calibration
from tests import helpers

vectors = helpers.vectors_fixture('balance_losses_vectors.npz')


def _value_and_grad(logits, labels, **kwargs):
  total = lambda z: jnp.sum(calibration.calibration_loss(z, labels, **kwargs))
  return jax.jit(jax.value_and_grad(total))(logits)


@pytest.mark.parametrize('inputs', [2, 3])
def test_cpm_variant_matches_rank_loss(vectors, x64, inputs):
  del x64
  pre = f'cml_cpm_S{inputs}'
  logits = jnp.asarray(vectors[f'{pre}_logits'])
  labels = jnp.asarray(vectors[f'{pre}_labels'])
  value, grad = _value_and_grad(logits, labels, variant='cpm')
  np.testing.assert_allclose(value, vectors[f'{pre}_loss'], rtol=1e-12)
  np.testing.assert_allclose(grad, vectors[f'{pre}_grad_logits'], rtol=1e-10, atol=1e-13)
  # The upstream float32 run agrees to float32 precision.
  value32, _ = _value_and_grad(jnp.asarray(vectors[f'{pre}_logits_f32']), labels, variant='cpm')
  np.testing.assert_allclose(value32, vectors[f'{pre}_loss_f32'], rtol=1e-5)


def test_cpm_cases_exercise_the_exemption(vectors):
  logits, labels = vectors['cml_cpm_S3_logits'], vectors['cml_cpm_S3_labels']
  correct = logits.argmax(-1) == labels
  assert np.any(correct[1:] & ~correct[:-1])     # exempted samples occur


@pytest.mark.parametrize('tag', ['S3_eps0', 'S3_eps0p05', 'S2_eps0'])
def test_miwae_variant_matches_the_training_loop(vectors, x64, tag):
  del x64
  pre = f'cml_miwae_{tag}'
  logits = jnp.asarray(vectors[f'{pre}_logits'])
  labels = jnp.asarray(vectors[f'{pre}_labels'])
  tolerance = float(vectors[f'{pre}_tolerance'])
  value, grad = _value_and_grad(logits, labels, variant='miwae', tolerance=tolerance)
  np.testing.assert_allclose(value, vectors[f'{pre}_loss'], rtol=1e-12)
  np.testing.assert_allclose(grad, vectors[f'{pre}_grad_logits'], rtol=1e-10, atol=1e-13)


@hypothesis.settings(max_examples=20)
@hypothesis.given(st.integers(0, 2**31 - 1), st.floats(0.0, 0.2))
def test_zero_when_confidence_never_rises(seed, tolerance):
  rng = np.random.default_rng(seed)
  logits = jnp.asarray(rng.normal(size=(3, 6, 4)), jnp.float32)
  # Scaling logits toward 0 lowers the max-probability: a monotone chain.
  chain = logits[0][None] * jnp.array([1.0, 0.6, 0.2])[:, None, None]
  labels = jnp.asarray(rng.integers(0, 4, 6))
  for variant in calibration.VARIANTS:
    loss = _jit_loss(chain, labels, variant, tolerance)
    np.testing.assert_array_equal(loss, np.zeros(6, np.float32))
  reversed_chain = chain[::-1]
  assert float(jnp.sum(_jit_loss(reversed_chain, labels, 'plain', 0.0))) > 0


_JIT_LOSS = jax.jit(calibration.calibration_loss, static_argnames='variant')


def _jit_loss(logits, labels, variant, tolerance):
  return _JIT_LOSS(logits, labels, variant=variant, tolerance=tolerance)


def test_plain_is_the_hinge_on_confidences():
  logits = jnp.array([[[2.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 3.0]]])
  confidence = calibration.max_probability(logits)
  expected = jnp.maximum(confidence[1] - confidence[0] - 0.01, 0)
  np.testing.assert_allclose(calibration.calibration_loss(logits, tolerance=0.01), expected,
                             rtol=1e-6)


def test_miwae_holds_the_larger_input_for_wrong_samples():
  # Both inputs wrong (label 0, predictions 1): only the subset's confidence gets gradient
  # from the second hinge; the first hinge is off (larger input wrong).
  logits = jnp.array([[[0.0, 1.0]], [[0.0, 2.0]]])
  grad = jax.grad(lambda z: jnp.sum(calibration.calibration_loss(
      z, jnp.array([0]), variant='miwae')))(logits)
  assert np.all(grad[0] == 0) and np.any(grad[1] != 0)


def test_nested_subset_masks():
  masks = calibration.nested_subset_masks(4, (3, 5), key=jax.random.key(1))
  assert masks.shape == (4, 4, 3, 5) and masks.dtype == jnp.bool_
  np.testing.assert_array_equal(masks.sum(axis=1), np.broadcast_to(
      np.arange(4, 0, -1)[:, None, None], (4, 3, 5)))
  assert np.all(masks[1:] <= masks[:-1])                 # nested
  other = calibration.nested_subset_masks(4, (3, 5), key=jax.random.key(2))
  assert not np.array_equal(masks, other)                # per-sample random orders


def test_dtype():
  logits = jnp.zeros((2, 3, 4), jnp.bfloat16)
  assert calibration.calibration_loss(logits).dtype == jnp.float32
  assert calibration.calibration_loss(logits.astype(jnp.float32)).dtype == jnp.float32


def test_errors():
  logits = jnp.zeros((2, 3, 4))
  with pytest.raises(ValueError, match=r'logits must have shape \[S, B, K\]'):
    calibration.calibration_loss(jnp.zeros((1, 3, 4)))
  with pytest.raises(ValueError, match=r'logits must have shape \[S, B, K\]'):
    calibration.calibration_loss(jnp.zeros((3, 4)))
  with pytest.raises(ValueError, match='variant must be one of'):
    calibration.calibration_loss(logits, variant='bogus')
  with pytest.raises(ValueError, match='labels are required'):
    calibration.calibration_loss(logits, variant='cpm')
  with pytest.raises(ValueError, match='labels must have shape'):
    calibration.calibration_loss(logits, jnp.zeros((2,), jnp.int32), variant='cpm')
  with pytest.raises(ValueError, match='labels must lie in'):
    calibration.calibration_loss(logits, jnp.array([0, 1, 4]), variant='miwae')
  with pytest.raises(ValueError, match='num_modalities must be >= 2'):
    calibration.nested_subset_masks(1, 3, key=jax.random.key(0))
