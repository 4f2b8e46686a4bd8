"""Distillation losses: uni-modal teacher (UMT) feature distillation and logit distillation.

**Uni-Modal Teacher.** Each modality's encoder in the multi-modal (late-fusion) student is pulled
towards the features of a separately trained uni-modal teacher of that modality, next to the usual
cross-entropy of the fused prediction:

    loss = CE(fused logits, y) + weight * sum_m MSE(f_m^student, stop_gradient(f_m^teacher)),

where `f_m` are the encoder outputs that feed the fusion head (the pooled features, before the
classifier) and MSE is the mean of squared differences over the batch and the feature dims, with
no normalisation of the features. The teacher is frozen (its forward runs under `no_grad`).
`feature_distillation_loss` returns the second term per sample; its batch mean is the original's
term. The reference implementation (GeWu-Lab/BalanceBenchmark's `UMTTrainer`) uses `weight = 10`
(`scaling` in its trainer config) and applies the term from epoch `modulation_starts` to
`modulation_ends`.

**Logit distillation.** `kd_loss` is the soft-target loss of Hinton et al.:
`T^2 KL(softmax(t / T) || softmax(s / T))`, the `T^2` keeping gradient magnitudes comparable
across temperatures; its batch mean equals PyTorch's
`F.kl_div(log_softmax(s / T), softmax(t / T), reduction='batchmean') * T^2`.

References:
  Du, Teng, Li, Liu, Yuan, Wang, Yuan, Zhao. "On Uni-Modal Feature Learning in Supervised
    Multi-Modal Learning." ICML 2023.
  Hinton, Vinyals, Dean. "Distilling the Knowledge in a Neural Network." arXiv:1503.02531, 2015.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from lqmm import checks

__all__ = ['feature_distillation_loss', 'kd_loss']


def _check_temperature(temperature) -> None:
  if jnp.ndim(temperature) != 0:
    raise ValueError(f'temperature must be a scalar; got shape {jnp.shape(temperature)}.')
  checks.check_scalar(temperature, 'temperature', low=0, low_open=True)


def kd_loss(student_logits: jax.Array, teacher_logits: jax.Array, temperature, *,
            stop_teacher_gradient: bool = True) -> jax.Array:
  """Per-sample soft-target distillation loss `T^2 KL(p_teacher^T || p_student^T)`, `[...]`.

  Args:
    student_logits: `[..., K]` student logits.
    teacher_logits: `[..., K]` teacher logits.
    temperature: softmax temperature `T > 0`.
    stop_teacher_gradient: treat the teacher as a constant.

  Returns:
    `[...]` losses; zero where the two distributions agree.

  Raises:
    ValueError: shapes differ, concrete logits hold NaN or infinity, or `temperature` is not a
      scalar, is `<= 0`, NaN or infinite.
    TypeError: the logits are not floating-point arrays.

  Example:
    >>> import jax.numpy as jnp
    >>> loss = kd_loss(jnp.array([[1.0, 2.0]]), jnp.array([[2.0, 1.0]]), 2.0)
    >>> loss.shape, round(float(loss[0]), 4)
    ((1,), 0.4898)
  """
  if jnp.shape(student_logits) != jnp.shape(teacher_logits):
    raise ValueError(f'teacher_logits must have the shape of student_logits '
                     f'{jnp.shape(student_logits)}; got shape {jnp.shape(teacher_logits)}.')
  checks.check_rank_at_least(student_logits, 1, 'student_logits', '[..., K]')
  checks.check_floating(student_logits, 'student_logits')
  checks.check_floating(teacher_logits, 'teacher_logits')
  checks.check_finite(student_logits, 'student_logits')
  checks.check_finite(teacher_logits, 'teacher_logits')
  _check_temperature(temperature)
  dtype = jnp.result_type(checks.upcast(student_logits), checks.upcast(teacher_logits))
  student = checks.upcast(student_logits).astype(dtype)
  teacher = checks.upcast(teacher_logits).astype(dtype)
  if stop_teacher_gradient:
    teacher = jax.lax.stop_gradient(teacher)
  temperature = jnp.asarray(temperature, dtype)
  log_student = jax.nn.log_softmax(student / temperature, axis=-1)
  log_teacher = jax.nn.log_softmax(teacher / temperature, axis=-1)
  teacher_probs = jnp.exp(log_teacher)
  divergence = jnp.sum(teacher_probs * (log_teacher - log_student), axis=-1)
  return jnp.square(temperature) * divergence


def _modalities(features, name: str) -> list:
  """The per-modality entries of a stacked `[M, B, ...]` array or of a sequence."""
  if not hasattr(features, 'shape'):
    return list(features)
  checks.check_rank_at_least(features, 2, name, '[M, B, ...]')
  return [features[m] for m in range(jnp.shape(features)[0])]


def feature_distillation_loss(student_features: jax.Array | Sequence[jax.Array],
                              teacher_features: jax.Array | Sequence[jax.Array], *,
                              mask: jax.Array | None = None, weight: float = 1.0) -> jax.Array:
  """UMT's feature term `weight * sum_m mean_d (f_m^s - sg(f_m^t))^2` per sample, `[B]`.

  Args:
    student_features: the student's per-modality encoder outputs, either a stacked `[M, B, ...]`
      array or a sequence of M arrays `[B, ...]` (feature shapes may differ across modalities).
    teacher_features: the uni-modal teachers' outputs, same structure and shapes; never
      differentiated.
    mask: optional bool `[M, B]`; a missing modality adds 0 for that sample.
    weight: the distillation weight `>= 0` (the reference's `scaling`, 10 in its config).

  Returns:
    `[B]` per-sample losses (empty for an empty batch); their mean over the batch is the
    original's term when no entry is masked.

  Raises:
    ValueError: structures or shapes differ, a stacked input has fewer than 2 dims, concrete
      features hold NaN or infinity, `mask` has the wrong shape, or `weight` is negative, NaN
      or infinite.
    TypeError: the features are not floating-point arrays or `mask` is not bool.

  Example:
    >>> import jax.numpy as jnp
    >>> student = [jnp.zeros((2, 3)), jnp.ones((2, 4))]
    >>> teacher = [jnp.ones((2, 3)), jnp.ones((2, 4))]
    >>> feature_distillation_loss(student, teacher)
    Array([1., 1.], dtype=float32)
  """
  students = _modalities(student_features, 'student_features')
  teachers = _modalities(teacher_features, 'teacher_features')
  if not students:
    raise ValueError('student_features must hold at least one modality; got none.')
  if len(students) != len(teachers):
    raise ValueError(f'teacher_features must hold one entry per modality of student_features '
                     f'({len(students)}); got {len(teachers)}.')
  num_samples = jnp.shape(students[0])[0] if jnp.ndim(students[0]) else None
  for index, (student, teacher) in enumerate(zip(students, teachers)):
    if jnp.ndim(student) < 1 or jnp.shape(student)[0] != num_samples:
      raise ValueError(f'student_features[{index}] must have shape [B, ...] with B = '
                       f'{num_samples}; got shape {jnp.shape(student)}.')
    if jnp.shape(teacher) != jnp.shape(student):
      raise ValueError(f'teacher_features[{index}] must have the shape of '
                       f'student_features[{index}] {jnp.shape(student)}; got shape '
                       f'{jnp.shape(teacher)}.')
    if jnp.ndim(student) > 1 and math.prod(jnp.shape(student)[1:]) == 0:
      raise ValueError(f'student_features[{index}] has no feature entries (shape '
                       f'{jnp.shape(student)}); there is nothing to average over.')
    checks.check_floating(student, f'student_features[{index}]')
    checks.check_floating(teacher, f'teacher_features[{index}]')
  # One value check per argument when stacked, else one per modality.
  for name, features, entries in (('student_features', student_features, students),
                                  ('teacher_features', teacher_features, teachers)):
    if hasattr(features, 'shape'):
      checks.check_finite(features, name)
    else:
      for index, entry in enumerate(entries):
        checks.check_finite(entry, f'{name}[{index}]')
  if mask is not None:
    checks.check_mask(mask, (len(students), num_samples))
  checks.check_scalar(weight, 'weight', low=0)
  dtype = jnp.result_type(*[checks.upcast(x) for x in students + teachers])
  per_modality = []
  for student, teacher in zip(students, teachers):
    difference = (checks.upcast(student).astype(dtype) -
                  jax.lax.stop_gradient(checks.upcast(teacher).astype(dtype)))
    squared = jnp.square(difference).reshape((num_samples, math.prod(jnp.shape(student)[1:])))
    per_modality.append(jnp.mean(squared, axis=-1))
  stacked = jnp.stack(per_modality)
  if mask is not None:
    stacked = jnp.where(mask, stacked, 0)
  return jnp.asarray(weight, dtype) * jnp.sum(stacked, axis=0)
