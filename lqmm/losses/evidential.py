"""Evidential classification losses on Dirichlet parameters (Sensoy et al.; TMC).

A classifier outputs non-negative evidence `e [..., K]`; `alpha = e + 1` parameterises a
Dirichlet over class probabilities with strength `S = sum_k alpha_k`. Both losses add a
regulariser that pushes misleading evidence to zero: the KL divergence from the uniform
Dirichlet `Dir(1)` to `Dir(alpha_tilde)`, where `alpha_tilde = y + (1 - y) * alpha` keeps the
non-target parameters and removes the target class's evidence, weighted by `kl_weight`
(annealed from 0 to 1 with `annealing_weight`).

References:
  Sensoy, Kaplan, Kandemir. "Evidential Deep Learning to Quantify Classification Uncertainty."
    NeurIPS 2018.
  Han, Zhang, Fu, Zhou. "Trusted Multi-View Classification." ICLR 2021.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm import special

__all__ = ['annealing_weight', 'ce_loss', 'kl_to_uniform', 'mse_loss']


def _prepare(alpha, labels):
  """Validates the inputs; returns alpha upcast to at least float32 and one-hot labels."""
  checks.check_rank_at_least(alpha, 1, 'alpha', '[..., K]')
  checks.check_dirichlet(alpha, 'alpha')
  alpha = checks.upcast(alpha)
  num_classes = jnp.shape(alpha)[-1]
  checks.check_labels(labels, num_classes, jnp.shape(alpha)[:-1])
  return alpha, jax.nn.one_hot(labels, num_classes, dtype=alpha.dtype)


def kl_to_uniform(alpha: jax.Array) -> jax.Array:
  """KL divergence `KL(Dir(alpha) || Dir(1))` over the last axis.

  Computed as `g(S, K) - sum_k g(alpha_k, 1) - lgamma(K)` with `special.dirichlet_kl_term`,
  an algebraically equal form of the textbook one without its catastrophic cancellation: the
  KL and its gradient stay accurate and finite for any finite alpha (e.g. the saturated output
  of `dempster_shafer.fuse`), where the textbook form loses float32 entirely beyond a strength
  `S` of about 1e8, and it costs no more.

  Args:
    alpha: Dirichlet parameters `[..., K]`, `alpha > 0` and finite.

  Returns:
    `[...]`, non-negative, zero iff `alpha == 1`.

  Raises:
    ValueError: `alpha` has no class axis, or concrete `alpha` holds NaN, infinity or a value
      `<= 0`.
    TypeError: `alpha` is not a floating-point array.

  Example:
    >>> import jax.numpy as jnp
    >>> abs(float(kl_to_uniform(jnp.ones(4)))) < 1e-5
    True
  """
  checks.check_rank_at_least(alpha, 1, 'alpha', '[..., K]')
  checks.check_floating(alpha, 'alpha')

  def find_problem(values):
    if not np.all(np.isfinite(values)):
      bad = int(values.size - np.count_nonzero(np.isfinite(values)))
      return f'alpha holds {bad} NaN or infinite value(s); expected finite values.'
    if values.size and values.min() <= 0:
      return (f'alpha must be Dirichlet parameters > 0; got minimum {values.min().item()!r}.')
    return None

  checks.check_values(find_problem, alpha)
  return _kl_to_uniform(checks.upcast(alpha))


def _kl_to_uniform(alpha: jax.Array) -> jax.Array:
  """`kl_to_uniform` of validated `alpha`."""
  num_classes = jnp.shape(alpha)[-1]
  strength = jnp.sum(alpha, axis=-1)
  return (special.dirichlet_kl_term(strength, float(num_classes))
          - jnp.sum(special.dirichlet_kl_term(alpha, 1.0), axis=-1)
          - special.lgamma(jnp.asarray(num_classes, alpha.dtype)))


def _misleading_kl(alpha: jax.Array, one_hot: jax.Array) -> jax.Array:
  """KL of the Dirichlet with the target-class evidence removed, `[...]`."""
  return _kl_to_uniform(one_hot + (1 - one_hot) * alpha)


def ce_loss(alpha: jax.Array, labels: jax.Array, *, kl_weight) -> jax.Array:
  """Evidential cross-entropy: the expected negative log-likelihood under `Dir(alpha)` plus KL.

      loss = digamma(S) - digamma(alpha_y) + kl_weight * KL(Dir(alpha_tilde) || Dir(1))

  Equal to TMC's `ce_loss(p, alpha, c, global_step, annealing_step)` with
  `kl_weight = annealing_weight(global_step, annealing_step)`.

  Args:
    alpha: Dirichlet parameters `[..., K]`, `alpha = evidence + 1 >= 1`.
    labels: integer classes `[...]` in `[0, K)`.
    kl_weight: scalar weight of the KL regulariser (keyword-only; may be traced).

  Returns:
    Per-sample losses `[...]`.

  Raises:
    ValueError: shapes disagree, or concrete inputs hold NaN, alpha < 1, labels out of range,
      or a negative or NaN `kl_weight`.

  Example:
    >>> import jax.numpy as jnp
    >>> ce_loss(jnp.array([[1., 1.]]), jnp.array([0]), kl_weight=1.0).round(4)
    Array([1.], dtype=float32)
  """
  alpha, one_hot = _prepare(alpha, labels)
  strength = jnp.sum(alpha, axis=-1)
  target = jnp.take_along_axis(alpha, labels[..., None], axis=-1)[..., 0]
  checks.check_scalar(kl_weight, 'kl_weight', low=0)
  likelihood = special.digamma(strength) - special.digamma(target)
  return likelihood + jnp.asarray(kl_weight, alpha.dtype) * _misleading_kl(alpha, one_hot)


def mse_loss(alpha: jax.Array, labels: jax.Array, *, kl_weight) -> jax.Array:
  """Evidential squared error: the expected Brier score under `Dir(alpha)` plus KL.

      loss = sum_k (y_k - p_k)^2 + p_k (1 - p_k) / (S + 1) + kl_weight * KL(...),  p = alpha / S

  Equal to TMC's `mse_loss(p, alpha, c, global_step, annealing_step)`.

  Args:
    alpha: Dirichlet parameters `[..., K]`, `alpha >= 1`.
    labels: integer classes `[...]` in `[0, K)`.
    kl_weight: scalar weight of the KL regulariser (keyword-only; may be traced).

  Returns:
    Per-sample losses `[...]`.

  Raises:
    ValueError: as for `ce_loss`.

  Example:
    >>> import jax.numpy as jnp
    >>> mse_loss(jnp.array([[1., 1.]]), jnp.array([0]), kl_weight=0.0).round(4)
    Array([0.6667], dtype=float32)
  """
  alpha, one_hot = _prepare(alpha, labels)
  strength = jnp.sum(alpha, axis=-1, keepdims=True)
  probability = alpha / strength
  error = jnp.sum((one_hot - probability) ** 2, axis=-1)
  variance = jnp.sum(probability * (1 - probability) / (strength + 1), axis=-1)
  kl = _misleading_kl(alpha, one_hot)
  checks.check_scalar(kl_weight, 'kl_weight', low=0)
  return error + variance + jnp.asarray(kl_weight, alpha.dtype) * kl


def annealing_weight(step, annealing_steps):
  """The KL annealing coefficient `min(1, step / annealing_steps)`.

  TMC passes the 1-based epoch as `step`, so its first epoch already has weight
  `1 / annealing_steps`; pass `epoch + 1` to reproduce that.

  Args:
    step: the current step or epoch (scalar, may be traced), >= 0.
    annealing_steps: the number of steps to reach weight 1, > 0.

  Returns:
    A scalar in `[0, 1]` of the default float dtype (float64 under `jax_enable_x64`).

  Raises:
    ValueError: a concrete `step` is negative or NaN, or `annealing_steps` is not positive.

  Example:
    >>> annealing_weight(10, 50)
    Array(0.2, dtype=float32)
  """
  checks.check_scalar(step, 'step', low=0)
  checks.check_scalar(annealing_steps, 'annealing_steps', low=0, low_open=True)
  dtype = jnp.result_type(float)
  ratio = jnp.asarray(step, dtype) / jnp.asarray(annealing_steps, dtype)
  return jnp.minimum(jnp.asarray(1, dtype), ratio)
