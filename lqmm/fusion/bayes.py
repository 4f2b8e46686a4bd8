"""Bayesian product fusion of class posteriors with a prior and a background class (ProbEn).

If the modalities are conditionally independent given the class, their posteriors combine as

    p(y | x_1..x_M) ∝ prod_m p(y | x_m) / p(y)^(M - 1).

In log space this is a sum of log-likelihood ratios on top of the prior:
`log p = log_softmax(log pi + sum_m (log p_m - log pi))`. The rule is commutative and associative
with the prior as identity (a missing modality contributes no evidence, so an all-missing row
returns the prior). With a uniform prior it is the product of experts.

ProbEn fuses detectors' foreground class scores; a detector's scores leave the remaining mass to
a background class, `with_background` appends it (`1 - sum of foreground`, background last, as
detectron2 lays it out). The original uses a uniform prior (no division), which is the default
here.

References:
  Chen, Shi, Koniusz, Yang, Lin, Kong. "Multimodal Object Detection via Probabilistic
    Ensembling." ECCV 2022.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import _checks
from lqmm.fusion import base
from lqmm.fusion import product


def _log_prior(log_prior, num_classes: int, dtype) -> jax.Array:
  if log_prior is None:
    return jnp.full((num_classes,), -np.log(num_classes), dtype)
  if jnp.shape(log_prior) != (num_classes,):
    raise ValueError(f'log_prior must have shape ({num_classes},); got {jnp.shape(log_prior)}.')
  _checks.check_floating(log_prior, 'log_prior')
  return jax.nn.log_softmax(_checks.upcast(log_prior).astype(dtype))


def _expand(prior: jax.Array, like: jax.Array) -> jax.Array:
  """`prior [K]` reshaped to broadcast against `like [..., K]`."""
  return jnp.reshape(prior, (1,) * (jnp.ndim(like) - 1) + (-1,))


def rule(log_prior: jax.Array | None = None) -> base.FusionRule:
  """The Bayesian product rule for a class prior `[K]` (None = uniform).

  Example:
    >>> import jax.numpy as jnp
    >>> bayes = rule(jnp.log(jnp.array([0.5, 0.5])))
    >>> fused = bayes.combine(jnp.log(jnp.array([0.8, 0.2])), jnp.log(jnp.array([0.8, 0.2])))
    >>> [round(value, 4) for value in jnp.exp(fused).tolist()]
    [0.9412, 0.0588]
  """

  def combine(log_probs_a: jax.Array, log_probs_b: jax.Array) -> jax.Array:
    log_probs_a = product._check_log_probs(log_probs_a, 'log_probs_a', '[..., K]', 1)
    log_probs_b = product._check_log_probs(log_probs_b, 'log_probs_b', '[..., K]', 1)
    _checks.check_broadcastable(log_probs_a, log_probs_b, 'log_probs_a', 'log_probs_b')
    prior = _log_prior(log_prior, jnp.shape(log_probs_a)[-1], log_probs_a.dtype)
    return jax.nn.log_softmax(log_probs_a + log_probs_b - _expand(prior, log_probs_a), axis=-1)

  def identity_like(log_probs: jax.Array) -> jax.Array:
    prior = _log_prior(log_prior, jnp.shape(log_probs)[-1], jnp.result_type(log_probs))
    return jnp.broadcast_to(prior, jnp.shape(log_probs))

  return base.FusionRule(combine=combine, identity_like=identity_like)


def fuse(log_probs: jax.Array, mask: jax.Array | None = None,
         log_prior: jax.Array | None = None) -> jax.Array:
  """Fuses M modalities' class log-posteriors `[M, ..., K]` in one step.

  Args:
    log_probs: `[M, ..., K]` log-posteriors (need not be normalised; each is normalised first).
    mask: optional bool `[M, ...]`, True = present. All-missing rows return the prior.
    log_prior: optional `[K]` log class prior; None = uniform (ProbEn's default).

  Returns:
    `[..., K]` normalised fused log-posteriors.

  Raises:
    ValueError: `log_probs` has fewer than 2 dims or holds NaN, `mask` or `log_prior` has the
      wrong shape.
  """
  log_probs = product._check_log_probs(log_probs, 'log_probs', '[M, ..., K]', 2)
  prior = _log_prior(log_prior, jnp.shape(log_probs)[-1], log_probs.dtype)
  ratio = jax.nn.log_softmax(log_probs, axis=-1) - _expand(prior, log_probs)
  if mask is not None:
    _checks.check_mask(mask, jnp.shape(log_probs)[:-1])
    ratio = jnp.where(mask[..., None], ratio, 0)
  return jax.nn.log_softmax(_expand(prior, ratio[0]) + jnp.sum(ratio, axis=0), axis=-1)


def with_background(foreground: jax.Array) -> jax.Array:
  """Appends the background probability `1 - sum(foreground)` (clipped at 0) as the last class.

  Args:
    foreground: `[..., K_fg]` foreground class probabilities with sum <= 1.

  Returns:
    `[..., K_fg + 1]` probabilities, background last.

  Example:
    >>> import jax.numpy as jnp
    >>> with_background(jnp.array([0.5, 0.25]))
    Array([0.5 , 0.25, 0.25], dtype=float32)
  """
  _checks.check_rank_at_least(foreground, 1, 'foreground', '[..., K_fg]')
  _checks.check_floating(foreground, 'foreground')
  _checks.check_finite(foreground, 'foreground')
  foreground = _checks.upcast(foreground)
  background = jnp.maximum(1 - jnp.sum(foreground, axis=-1, keepdims=True), 0)
  return jnp.concatenate([foreground, background], axis=-1)
