"""Distillation: parity with BalanceBenchmark's UMTTrainer.training_step and torch's KD formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.losses import distillation
from tests import helpers

vectors = helpers.vectors_fixture('balance_aux_vectors.npz')
MODALITIES = ('audio', 'visual')


def test_umt_objective_matches_training_step(vectors, x64):
  del x64
  labels = jnp.asarray(vectors['umt_labels'])
  teachers = [jnp.asarray(vectors[f'umt_teacher_{m}']) for m in MODALITIES]
  scaling = float(vectors['umt_scaling'])

  def objective(fused, students, teachers):
    log_probs = jax.nn.log_softmax(fused, axis=-1)
    ce = -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))
    return ce + jnp.mean(distillation.feature_distillation_loss(students, teachers,
                                                                weight=scaling))

  fused = jnp.asarray(vectors['umt_fused_logits'])
  students = [jnp.asarray(vectors[f'umt_student_{m}']) for m in MODALITIES]
  np.testing.assert_allclose(objective(fused, students, teachers), vectors['umt_loss'],
                             rtol=1e-12)
  grad_fused, grad_students, grad_teachers = jax.grad(objective, argnums=(0, 1, 2))(
      fused, students, teachers)
  np.testing.assert_allclose(grad_fused, vectors['umt_grad_fused'], rtol=1e-10, atol=1e-14)
  for m, grad in zip(MODALITIES, grad_students):
    np.testing.assert_allclose(grad, vectors[f'umt_grad_student_{m}'], rtol=1e-10, atol=1e-14)
  for grad in grad_teachers:  # the teacher is frozen
    np.testing.assert_array_equal(grad, 0)


@pytest.mark.parametrize('tag,temperature', [('T1', 1.0), ('T4', 4.0), ('T0p5', 0.5)])
def test_kd_loss_matches_torch_batchmean_kl(vectors, x64, tag, temperature):
  del x64
  student = jnp.asarray(vectors['kd_student'])
  teacher = jnp.asarray(vectors['kd_teacher'])

  def objective(student):
    return jnp.mean(distillation.kd_loss(student, teacher, temperature))

  np.testing.assert_allclose(objective(student), vectors[f'kd_{tag}_loss'], rtol=1e-12)
  np.testing.assert_allclose(jax.grad(objective)(student), vectors[f'kd_{tag}_grad'], rtol=1e-10,
                             atol=1e-14)


def test_kd_properties():
  logits = jax.random.normal(jax.random.key(0), (6, 5))
  np.testing.assert_allclose(distillation.kd_loss(logits, logits, 3.0), 0, atol=1e-6)
  other = jax.random.normal(jax.random.key(1), (6, 5))
  loss = jax.jit(distillation.kd_loss)(logits, other, 2.0)
  assert loss.shape == (6,) and loss.dtype == jnp.float32 and np.all(np.asarray(loss) >= 0)
  # The teacher gets no gradient by default, and does with stop_teacher_gradient=False.
  grad = jax.grad(lambda t: jnp.sum(distillation.kd_loss(logits, t, 2.0)))(other)
  np.testing.assert_array_equal(grad, 0)
  grad = jax.grad(lambda t: jnp.sum(distillation.kd_loss(logits, t, 2.0,
                                                         stop_teacher_gradient=False)))(other)
  assert np.any(np.asarray(grad) != 0)
  half = distillation.kd_loss(logits.astype(jnp.bfloat16), other.astype(jnp.bfloat16), 2.0)
  assert half.dtype == jnp.float32


def test_feature_distillation_layouts_mask_and_dtype():
  key_student, key_teacher = jax.random.split(jax.random.key(0))
  student = jax.random.normal(key_student, (3, 4, 6))
  teacher = jax.random.normal(key_teacher, (3, 4, 6))
  stacked = distillation.feature_distillation_loss(student, teacher, weight=2.0)
  listed = distillation.feature_distillation_loss(list(student), list(teacher), weight=2.0)
  np.testing.assert_allclose(stacked, listed, rtol=1e-6)
  np.testing.assert_allclose(stacked, 2 * jnp.sum(jnp.mean((student - teacher)**2, -1), 0),
                             rtol=1e-5)
  assert stacked.shape == (4,) and stacked.dtype == jnp.float32
  mask = jnp.array([[True] * 4, [False] * 4, [True] * 4])
  masked = jax.jit(distillation.feature_distillation_loss)(student, teacher, mask=mask)
  np.testing.assert_allclose(
      masked, distillation.feature_distillation_loss(student[::2], teacher[::2]), rtol=1e-6)
  np.testing.assert_allclose(distillation.feature_distillation_loss(student, student), 0)


def test_errors():
  with pytest.raises(ValueError, match='temperature must be > 0'):
    distillation.kd_loss(jnp.ones((2, 3)), jnp.ones((2, 3)), 0.0)
  with pytest.raises(ValueError, match='temperature must be a scalar'):
    distillation.kd_loss(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.ones((2, 1)))
  with pytest.raises(ValueError, match='teacher_logits must have the shape'):
    distillation.kd_loss(jnp.ones((2, 3)), jnp.ones((2, 4)), 1.0)
  with pytest.raises(ValueError, match=r'teacher_features\[1\] must have the shape'):
    distillation.feature_distillation_loss([jnp.ones((2, 3))] * 2,
                                           [jnp.ones((2, 3)), jnp.ones((2, 4))])
  with pytest.raises(ValueError, match='one entry per modality'):
    distillation.feature_distillation_loss([jnp.ones((2, 3))] * 2, [jnp.ones((2, 3))])
  with pytest.raises(ValueError, match=r'mask must have shape \(2, 2\)'):
    distillation.feature_distillation_loss([jnp.ones((2, 3))] * 2, [jnp.ones((2, 3))] * 2,
                                           mask=jnp.ones((2, 3), bool))
