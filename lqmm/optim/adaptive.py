"""Adaptive gradient modulation (AGM): Shapley mono-modal outputs and exponential coefficients.

AGM decomposes the fused output into mono-modal outputs with Shapley values over modality
subsets (absent modalities zeroed at the input), scores each modality by the cross-entropy of its
mono-modal output, and compares the current imbalance with its running average over training:

    ratio_m   = exp(M / (M - 1) * (mean_j s_j - s_m))        (s: mean CE of mono output m)
    target_m  = the same with the running means of the scores
    k_m       = exp(alpha * min(target_m - ratio_m, cap))

A modality that is currently doing better than usual (lower loss, larger ratio) gets `k < 1`,
one doing worse gets `k > 1`. The running means are cumulative means over every step since the
start of training, updated after the coefficients (the first step's target is 1).

The original applies `k_m` through backward hooks on the mono-modal outputs: the gradient reaching
output m is multiplied by `k_m` (`scale_gradient`, to use inside a loss as
`sum_m scale_gradient(mono[m], k[m])`). `scale_by_agm` is the optimizer-side form lqmm uses by
default: it scales modality m's encoder gradient by `k_m`, composing with any model like OGM.
Both forms compute the same coefficients and running state (`agm_step`), checked against
lihong2303/AGM_ICCV2023.

Constants of the original that vary by data set are arguments: `cap` (10 for CREMA-D, 7 for
UR-Funny, none for AV-MNIST), `clamp` (true-class probabilities below 1e-8 are clamped in the
score for CREMA-D, not for UR-Funny).

References:
  Li, Li, Hu, Yang, Hou and Liu, "Boosting Multi-modal Model Performance with Adaptive Gradient
  Modulation", ICCV 2023.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lqmm import checks
from lqmm import valuation
from lqmm.optim import extra_args

__all__ = ['AGMState', 'ScaleByAGMState', 'agm', 'agm_step', 'imbalance_ratios', 'init_agm',
           'mono_outputs', 'mono_scores', 'scale_by_agm', 'scale_gradient']


def mono_outputs(subset_outputs: jax.Array) -> jax.Array:
  """AGM's mono-modal outputs: the Shapley value of each modality plus `f(empty) / M`.

  They sum over modalities to the full-set output, which is how the original splits the fused
  logits.

  Args:
    subset_outputs: `[2^M, ..., K]` outputs of the model on every modality subset, in
      `lqmm.valuation.subset_masks` order (bit m of the row index = modality m present; row 0
      the empty set, the last row the full set).

  Returns:
    `[M, ..., K]` mono-modal outputs.

  Raises:
    ValueError: `subset_outputs` has no dimension, a number of rows that is not a power of two
      `>= 4` (M >= 2), or (concrete) NaN or infinite values.
    TypeError: `subset_outputs` is not floating-point.

  Example:
    >>> outputs = jnp.array([[0.0], [1.0], [3.0], [6.0]])  # f({}), f({0}), f({1}), f({0,1})
    >>> mono_outputs(outputs)[:, 0]
    Array([2., 4.], dtype=float32)
  """
  checks.check_rank_at_least(subset_outputs, 1, 'subset_outputs', '[2^M, ..., K]')
  rows = jnp.shape(subset_outputs)[0]
  if rows < 4 or rows & (rows - 1):
    raise ValueError(f'subset_outputs must have 2^M rows (one per modality subset) with M >= 2; '
                     f'got shape {jnp.shape(subset_outputs)}.')
  checks.check_floating(subset_outputs, 'subset_outputs')
  checks.check_finite(subset_outputs, 'subset_outputs')
  phi = valuation.shapley_values(subset_outputs)
  num_modalities = phi.shape[0]
  return phi + (subset_outputs[0] / num_modalities)[None].astype(phi.dtype)


def mono_scores(mono_logits: jax.Array, labels: jax.Array, *,
                clamp: float | None = 1e-8) -> jax.Array:
  """Batch-mean cross-entropy of each mono-modal output, `[M]`.

  Args:
    mono_logits: `[M, B, K]` logits (`-inf` is a zero probability).
    labels: `[B]`.
    clamp: true-class probabilities below it count as `clamp` (the CREMA-D code's 1e-8), or
      None for no clamp (UR-Funny).

  Returns:
    `[M]` scores (lower = the modality fits the batch better).

  Raises:
    ValueError: `mono_logits` is not `[M, B, K]`, has an empty batch, or (concrete) holds NaN
      or `+inf`; `labels` is not `[B]` or out of range; `clamp` is not in `(0, 1]`.
    TypeError: `mono_logits` is not floating-point or `labels` not integer.
  """
  if jnp.ndim(mono_logits) != 3:
    raise ValueError(f'mono_logits must have shape [M, B, K]; got shape {jnp.shape(mono_logits)}.')
  checks.check_nonempty(mono_logits, 'mono_logits', axis=1)
  mono_logits = checks.as_log_probs(mono_logits, 'mono_logits', '[M, B, K]', 3)
  checks.check_labels(labels, jnp.shape(mono_logits)[-1], jnp.shape(mono_logits)[1:2])
  if clamp is not None:
    checks.check_scalar(clamp, 'clamp', low=0, high=1, low_open=True)
  log_probs = jax.nn.log_softmax(mono_logits, axis=-1)
  true_class = jnp.take_along_axis(log_probs, labels[None, :, None], axis=-1)[..., 0]
  if clamp is not None:
    true_class = jnp.maximum(true_class, jnp.log(jnp.asarray(clamp, true_class.dtype)))
  return -true_class.mean(axis=1)


def imbalance_ratios(scores: jax.Array) -> jax.Array:
  """`exp(M / (M - 1) * (mean(s) - s_m))`: above 1 for modalities with lower loss than the rest.

  Args:
    scores: `[M]` mono scores (`mono_scores`), M >= 2.

  Returns:
    `[M]` ratios.

  Raises:
    ValueError: `scores` is not `[M]` with M >= 2 or (concrete) holds NaN or infinity.
    TypeError: `scores` is not floating-point.
  """
  if jnp.ndim(scores) != 1 or jnp.shape(scores)[0] < 2:
    raise ValueError(f'scores must have shape [M] with M >= 2; got shape {jnp.shape(scores)}.')
  checks.check_floating(scores, 'scores')
  checks.check_finite(scores, 'scores')
  return _imbalance_ratios(scores)


def _imbalance_ratios(scores: jax.Array) -> jax.Array:
  """`imbalance_ratios` without the checks (the scores of `agm_step` are computed, not given)."""
  num_modalities = scores.shape[0]
  return jnp.exp(num_modalities / (num_modalities - 1) * (scores.mean() - scores))


def _check_alpha_cap(alpha, cap) -> None:
  """Raises ValueError for a concrete negative, NaN or infinite `alpha` or a NaN `cap`."""
  checks.check_scalar(alpha, 'alpha', low=0)
  if cap is not None:
    checks.check_values(
        lambda value: f'cap must be a number (or None for no cap); got {value.item()!r}.'
        if np.any(np.isnan(value)) else None, cap)


class AGMState(NamedTuple):
  """AGM's running state.

  Attributes:
    count: `i32[]` steps so far.
    running_scores: `[M]` cumulative mean of the mono scores over all steps.
    coefficients: `[M]` the coefficients of the last step (1 before the first).
    scores: `[M]` the mono scores of the last step.
  """
  count: jax.Array
  running_scores: jax.Array
  coefficients: jax.Array
  scores: jax.Array


def init_agm(num_modalities: int, dtype=jnp.float32) -> AGMState:
  """The state before the first step: zero running scores, unit coefficients."""
  if num_modalities < 2:
    raise ValueError(f'num_modalities must be >= 2; got {num_modalities}.')
  zeros = jnp.zeros((num_modalities,), dtype)
  return AGMState(jnp.zeros([], jnp.int32), zeros, jnp.ones_like(zeros), zeros)


def agm_step(state: AGMState, mono_logits: jax.Array, labels: jax.Array, *, alpha,
             cap: float | None = 10.0, clamp: float | None = 1e-8) -> AGMState:
  """One AGM update: this step's coefficients from its scores and the running means.

  Args:
    state: the running state (`init_agm`).
    mono_logits: `[M, B, K]` mono-modal outputs of this step (`mono_outputs`), treated as
      constants.
    labels: `[B]`.
    alpha: modulation strength (the original's default 1.0), >= 0. A concrete negative, NaN
      or infinite alpha raises; a traced one (e.g. under `optax.inject_hyperparams`) cannot, so
      a negative value is clipped to 0 (no modulation), as in `lqmm.optim.ogm_coefficients`.
    cap: upper bound of the exponent's argument (CREMA-D 10, UR-Funny 7), or None.
    clamp: see `mono_scores`.

  Returns:
    The new state; `state.coefficients` are this step's `k_m`.

  Raises:
    ValueError: a concrete negative, NaN or infinite `alpha`, a NaN `cap`, or bad `mono_logits`,
      `labels` or `clamp` (see `mono_scores`).
    TypeError: see `mono_scores`.
  """
  _check_alpha_cap(alpha, cap)
  alpha = jnp.maximum(alpha, 0.0)  # the documented rule for traced values
  mono_logits = jax.lax.stop_gradient(mono_logits)
  scores = mono_scores(mono_logits, labels, clamp=clamp).astype(state.running_scores.dtype)
  gap = _imbalance_ratios(state.running_scores) - _imbalance_ratios(scores)
  if cap is not None:
    gap = jnp.minimum(gap, cap)
  coefficients = jnp.exp(alpha * gap).astype(state.coefficients.dtype)
  count = state.count + 1
  weight = 1 / count.astype(scores.dtype)
  running = state.running_scores * (1 - weight) + scores * weight
  return AGMState(count, running, coefficients, scores)


def scale_gradient(x: jax.Array, scale: jax.Array) -> jax.Array:
  """Identity forward; the backward multiplies the incoming gradient by `scale` (no grad to it).

  AGM's original hooks: `fused = sum_m scale_gradient(mono[m], k[m])`. A negative `scale`
  reverses the gradient (a gradient reversal layer), a documented use; a scalar `x` is fine.

  Args:
    x: the floating-point array the gradient flows through.
    scale: the gradient factor: a Python, NumPy or JAX scalar, or an array broadcasting
      against `x`.

  Returns:
    `x` unchanged.

  Raises:
    TypeError: `x` is not floating-point (no gradient flows through integers) or `scale` is
      not a real number.
    ValueError: a concrete `x` or `scale` holds NaN or infinity. The checks run at call time on
      concrete values; under `jax.jit` they are skipped.
  """
  checks.check_floating(x, 'x')
  checks.check_finite(x, 'x')
  checks.check_scalar(scale, 'scale')
  return _scale_gradient(x, jnp.asarray(scale))


@jax.custom_vjp
def _scale_gradient(x: jax.Array, scale: jax.Array) -> jax.Array:
  del scale
  return x


def _scale_gradient_fwd(x, scale):
  return x, scale


def _scale_gradient_bwd(scale, cotangent):
  return (cotangent * scale.astype(cotangent.dtype), jnp.zeros_like(scale))


_scale_gradient.defvjp(_scale_gradient_fwd, _scale_gradient_bwd)


class ScaleByAGMState(NamedTuple):
  """State of `scale_by_agm`: the shared AGM state of all modalities."""
  agm: AGMState


def scale_by_agm(modality: int, num_modalities: int, *, alpha: float = 1.0,
                 cap: float | None = 10.0, clamp: float | None = 1e-8,
                 start_epoch: int | None = None, end_epoch: int | None = None,
                 stale_outside_window: bool = False) -> optax.GradientTransformationExtraArgs:
  """AGM for one modality's parameters: scales its gradient by `k_modality` (use in a partition).

  `update` takes the keyword-only extra args `mono_logits: [M, B, K]` (`mono_outputs` of the
  step; stop-gradient), `labels: [B]` and, with a window, `epoch`. Every modality's transform
  keeps the same running state, so they agree on every coefficient.

  Args:
    modality: index of this transform's modality in `mono_logits`.
    num_modalities: M.
    alpha, cap, clamp: see `agm_step`.
    start_epoch, end_epoch: inclusive modulation window, or None for always.
    stale_outside_window: the original's behaviour: after the window the last in-window
      coefficient keeps applying (its hooks are never reset). By default the gradient passes
      unchanged outside the window.

  Returns:
    An `optax.GradientTransformationExtraArgs`.

  Raises:
    ValueError: a bad `modality` or `num_modalities`, a concrete negative, NaN or infinite
      `alpha`, a NaN `cap`, or a `clamp` outside `(0, 1]`.

  Example:
    >>> tx = scale_by_agm(0, 2)
    >>> params = {'w': jnp.ones(3)}
    >>> logits = jnp.array([[[3.0, 0.0]], [[0.0, 0.0]]])
    >>> updates, state = tx.update(params, tx.init(params), mono_logits=logits,
    ...                            labels=jnp.array([0]))
    >>> state.agm.coefficients.shape
    (2,)
  """
  extra_args.check_modality(modality, num_modalities)
  _check_alpha_cap(alpha, cap)
  if clamp is not None:
    checks.check_scalar(clamp, 'clamp', low=0, high=1, low_open=True)

  def init_fn(params):
    del params
    return ScaleByAGMState(init_agm(num_modalities))

  def update_fn(updates, state, params=None, *, mono_logits=None, labels=None, epoch=None,
                **other_extra_args):
    del params, other_extra_args
    extra_args.require('scale_by_agm', mono_logits=mono_logits, labels=labels)
    extra_args.check_stacked(mono_logits, 'mono_logits', num_modalities)
    active = extra_args.window_active('scale_by_agm', epoch, start_epoch, end_epoch)
    new = agm_step(state.agm, mono_logits, labels, alpha=alpha, cap=cap, clamp=clamp)
    if stale_outside_window:
      coefficients = jnp.where(active, new.coefficients, state.agm.coefficients)
    else:
      coefficients = jnp.where(active, new.coefficients, 1.0)
    new = new._replace(coefficients=coefficients)
    coefficient = coefficients[modality]
    scaled = jax.tree.map(lambda g: (coefficient * g.astype(jnp.float32)).astype(g.dtype),
                          updates)
    return scaled, ScaleByAGMState(new)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def agm(param_labels: Any, modalities, *, others=None, **kwargs
        ) -> optax.GradientTransformationExtraArgs:
  """`scale_by_agm` over a whole parameter tree, one per modality (see `lqmm.optim.ogm`)."""
  return extra_args.partition_by_modality(
      param_labels, modalities, lambda index: scale_by_agm(index, len(modalities), **kwargs),
      others)
