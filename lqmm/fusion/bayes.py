"""Bayesian product fusion of class posteriors with a prior and a background class (ProbEn).

If the modalities are conditionally independent given the class, their posteriors combine as

    p(y | x_1..x_M) ∝ prod_m p(y | x_m) / p(y)^(M - 1).

In log space this is a sum of log-likelihood ratios on top of the prior:
`log p = log_softmax(log pi + sum_m (log p_m - log pi))`. The rule is commutative and associative
with the prior as identity: a missing modality contributes the prior (no evidence), so an
all-missing row returns the prior. With a uniform prior it is the product of experts.

ProbEn fuses detectors' foreground class scores; a detector's scores leave the remaining mass to
a background class, `with_background` appends it (`1 - sum of foreground`, background last, as
detectron2 lays it out). The original uses a uniform prior (no division), which is the default
here.

References:
  Chen, Shi, Koniusz, Yang, Lin, Kong. "Multimodal Object Detection via Probabilistic
    Ensembling." ECCV 2022.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm.fusion import base

__all__ = ['RULE', 'combine', 'fuse', 'identity_like', 'rule', 'with_background']


def _log_prior(log_prior, num_classes: int, dtype) -> jax.Array:
  if log_prior is None:
    return jnp.full((num_classes,), -np.log(num_classes), dtype)
  if jnp.shape(log_prior) != (num_classes,):
    raise ValueError(f'log_prior must have shape ({num_classes},); got {jnp.shape(log_prior)}.')
  checks.as_log_probs(log_prior, 'log_prior', '[K]')
  checks.check_values(
      lambda values: ('log_prior gives every class zero probability (all -inf); a prior needs '
                      'at least one class with positive probability.'
                      if values.size and np.all(values == -np.inf) else None), log_prior)
  return jax.nn.log_softmax(checks.upcast(log_prior).astype(dtype))


def _expand(prior: jax.Array, like: jax.Array) -> jax.Array:
  """`prior [K]` reshaped to broadcast against `like [..., K]`."""
  return jnp.reshape(prior, (1,) * (jnp.ndim(like) - 1) + (-1,))


def identity_like(log_probs: jax.Array, *, log_prior: jax.Array | None = None) -> jax.Array:
  """The identity element, the prior `[K]` (None = uniform), shaped like `log_probs [..., K]`.

  Only the shape and dtype of `log_probs` are read.
  """
  checks.check_rank_at_least(log_probs, 1, 'log_probs', '[..., K]')
  checks.check_floating(log_probs, 'log_probs')
  prior = _log_prior(log_prior, jnp.shape(log_probs)[-1], jnp.result_type(log_probs))
  return jnp.broadcast_to(prior, jnp.shape(log_probs))


def combine(log_probs_a: jax.Array, log_probs_b: jax.Array, *,
            log_prior: jax.Array | None = None) -> jax.Array:
  """Bayesian product of two modalities' log-posteriors: `log_softmax(a + b - log prior)`.

  Args:
    log_probs_a: log-posteriors `[..., K]` (normalised).
    log_probs_b: log-posteriors `[..., K]`, broadcastable with `log_probs_a`.
    log_prior: optional `[K]` log class prior; None = uniform.

  Returns:
    Normalised fused log-posteriors `[..., K]`.

  Raises:
    ValueError: the class axes differ, leading dims do not broadcast, an input holds NaN,
      `log_prior` has the wrong shape, or the concrete result is NaN (see `fuse`).

  Example (a modality that repeats the prior adds no evidence):
    >>> import jax.numpy as jnp
    >>> prior = jnp.log(jnp.array([0.7, 0.3]))
    >>> fused = combine(jnp.log(jnp.array([0.9, 0.1])), prior, log_prior=prior)
    >>> [round(value, 4) for value in jnp.exp(fused).tolist()]
    [0.9, 0.1]
  """
  log_probs_a, log_probs_b = checks.as_pair(log_probs_a, log_probs_b, 'log_probs_a',
                                            'log_probs_b', validate=checks.as_log_probs)
  prior = _log_prior(log_prior, jnp.shape(log_probs_a)[-1], log_probs_a.dtype)
  fused = jax.nn.log_softmax(log_probs_a + log_probs_b - _expand(prior, log_probs_a), axis=-1)
  checks.check_fused_log_probs(fused, 'log_probs_a and log_probs_b')
  return fused


def rule(*, log_prior: jax.Array | None = None) -> base.FusionRule:
  """The Bayesian product rule for a class prior `[K]` (None = uniform) as a `FusionRule`.

  Example:
    >>> import jax.numpy as jnp
    >>> bayes = rule(log_prior=jnp.log(jnp.array([0.5, 0.5])))
    >>> fused = bayes.combine(jnp.log(jnp.array([0.8, 0.2])), jnp.log(jnp.array([0.8, 0.2])))
    >>> [round(value, 4) for value in jnp.exp(fused).tolist()]
    [0.9412, 0.0588]
  """
  if log_prior is not None:
    _log_prior(log_prior, jnp.shape(log_prior)[-1] if jnp.ndim(log_prior) else -1, jnp.float32)
  return base.FusionRule(combine=functools.partial(combine, log_prior=log_prior),
                         identity_like=functools.partial(identity_like, log_prior=log_prior))


#: The rule with a uniform prior (ProbEn's default).
RULE = rule()


def fuse(log_probs: jax.Array, mask: jax.Array | None = None, *,
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
      wrong shape, or a concrete fused row is NaN: every class's summed log-likelihood ratio
      is `-inf`, because the modalities' supports are disjoint or the sum overflowed the dtype
      (the inputs are summed unnormalised, so log-probabilities or logits beyond about
      3e38 / M in magnitude in float32: fuse in float64 with `jax.enable_x64`, or clip them).
      The check needs concrete values; under `jax.jit` it is skipped and such a row is NaN
      (turn on `lqmm.debug` there).

  Example:
    >>> import jax.numpy as jnp
    >>> log_probs = jnp.log(jnp.array([[0.8, 0.2], [0.8, 0.2]]))
    >>> fused = fuse(log_probs, log_prior=jnp.log(jnp.array([0.8, 0.2])))
    >>> [round(value, 4) for value in jnp.exp(fused).tolist()]
    [0.8, 0.2]
  """
  log_probs = checks.as_log_probs(log_probs, 'log_probs', '[M, ..., K]', 2)
  checks.check_stacked(log_probs, 'log_probs')
  prior = _log_prior(log_prior, jnp.shape(log_probs)[-1], log_probs.dtype)
  # Each modality's normaliser is constant over classes and cancels in the final log_softmax,
  # so the unnormalised log-posteriors enter a balanced-tree sum (one pass over the input); so
  # does the uniform prior, which then needs no arithmetic at all.
  ratio = log_probs if log_prior is None else log_probs - _expand(prior, log_probs)
  if mask is not None:
    checks.check_mask(mask, jnp.shape(log_probs)[:-1])
    ratio = jnp.where(mask[..., None], ratio, 0)
  summed = base.tree_reduce(jnp.add, ratio)
  if log_prior is not None:
    summed = _expand(prior, summed) + summed
  fused = jax.nn.log_softmax(jax.lax.optimization_barrier(summed), axis=-1)
  checks.check_fused_log_probs(fused, 'log_probs')
  return fused


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
  checks.check_rank_at_least(foreground, 1, 'foreground', '[..., K_fg]')
  checks.check_floating(foreground, 'foreground')
  checks.check_finite(foreground, 'foreground')
  foreground = checks.upcast(foreground)
  background = jnp.maximum(1 - jnp.sum(foreground, axis=-1, keepdims=True), 0)
  return jnp.concatenate([foreground, background], axis=-1)
