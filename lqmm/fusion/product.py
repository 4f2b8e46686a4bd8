"""Product of experts: categorical (log-probabilities add) and Gaussian (precisions add).

Categorical: each modality predicts class log-probabilities `log p_m [..., K]`; the product of
experts is `p ∝ prod_m p_m`, i.e. `log p = log_softmax(sum_m log p_m)`. Commutative and
associative on normalised log-probabilities, with the uniform distribution `-log K` as identity
(what a missing modality contributes; an all-missing row returns the uniform).

Gaussian: each modality predicts a mean and variance; the product of the densities is Gaussian
with precision `sum_m 1/var_m` and precision-weighted mean. Missing modalities contribute zero
precision; an all-missing row returns mean 0 and variance `+inf` (the flat prior).

References:
  Hinton. "Training Products of Experts by Minimizing Contrastive Divergence." Neural
    Computation 2002.
  Wu, Goodman. "Multimodal Generative Models for Scalable Weakly-Supervised Learning." NeurIPS
    2018 (Gaussian product of experts over modalities).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm.fusion import base

__all__ = ['RULE', 'combine', 'fuse', 'fuse_gaussian', 'identity_like']


def identity_like(log_probs: jax.Array) -> jax.Array:
  """The uniform distribution `-log K` shaped like `log_probs [..., K]` (only its shape is read)."""
  checks.check_rank_at_least(log_probs, 1, 'log_probs', '[..., K]')
  return jnp.full_like(log_probs, -np.log(jnp.shape(log_probs)[-1]))


def combine(log_probs_a: jax.Array, log_probs_b: jax.Array) -> jax.Array:
  """Product of two categorical experts: `log_softmax(log p_a + log p_b)`.

  Args:
    log_probs_a: log-probabilities `[..., K]` (logits are accepted too: the result is the same).
    log_probs_b: log-probabilities `[..., K]`, broadcastable with `log_probs_a`.

  Returns:
    Normalised log-probabilities `[..., K]`.

  Raises:
    ValueError: the class axes differ, leading dims do not broadcast, an input holds NaN, or
      the concrete result is NaN (see `fuse`).

  Example:
    >>> import jax.numpy as jnp
    >>> fused = combine(jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.2, 0.8])))
    >>> [round(value, 4) for value in jnp.exp(fused).tolist()]
    [0.2, 0.8]
  """
  log_probs_a, log_probs_b = checks.as_pair(log_probs_a, log_probs_b, 'log_probs_a',
                                            'log_probs_b', validate=checks.as_log_probs)
  fused = jax.nn.log_softmax(log_probs_a + log_probs_b, axis=-1)
  checks.check_fused_log_probs(fused, 'log_probs_a and log_probs_b')
  return fused


RULE = base.FusionRule(combine=combine, identity_like=identity_like)


def fuse(log_probs: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Product of M categorical experts `[M, ..., K]` in one step; missing ones are uniform.

  Args:
    log_probs: log-probabilities or logits `[M, ..., K]`.
    mask: optional bool `[M, ...]`, True = present; all-missing rows return the uniform.

  Returns:
    Normalised log-probabilities `[..., K]`.

  Raises:
    ValueError: `log_probs` has fewer than 2 dims or holds NaN, `mask` has the wrong shape, or
      a concrete fused row is NaN: every class's summed log-probability is `-inf`, because the
      experts' supports are disjoint or the sum overflowed the dtype (the experts' inputs are
      summed unnormalised, so log-probabilities or logits beyond about 3e38 / M in magnitude
      in float32: fuse in float64 with `jax.enable_x64`, or clip them). The check
      needs concrete values; under `jax.jit` it is skipped and such a row is NaN (use
      `lqmm.debug` there).

  Example:
    >>> import jax.numpy as jnp
    >>> fused = fuse(jnp.log(jnp.array([[0.5, 0.5], [0.2, 0.8]])))
    >>> [round(value, 4) for value in jnp.exp(fused).tolist()]
    [0.2, 0.8]
  """
  log_probs = checks.as_log_probs(log_probs, 'log_probs', '[M, ..., K]', 2)
  checks.check_stacked(log_probs, 'log_probs')
  # Each expert's normaliser is constant over classes and cancels in the final log_softmax:
  # one balanced-tree sum (fused by XLA into one pass over the input), then one normalisation
  # (the barrier keeps XLA from recomputing the sum inside the normalisation's reductions).
  summed = base.tree_reduce(jnp.add, base.apply_mask(RULE, log_probs, mask))
  fused = jax.nn.log_softmax(jax.lax.optimization_barrier(summed), axis=-1)
  checks.check_fused_log_probs(fused, 'log_probs')
  return fused


def fuse_gaussian(mean: jax.Array, variance: jax.Array,
                  mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """Product of M Gaussian experts: precision-weighted mean and summed precision.

  Args:
    mean: `[M, ..., D]` per-modality means.
    variance: `[M, ..., D]` per-modality variances, `> 0`.
    mask: optional bool `[M, ...]`, True = present.

  Returns:
    `(mean [..., D], variance [..., D])`; all-missing rows give `(0, +inf)`.

  Raises:
    ValueError: shapes differ, `mask` has the wrong shape, concrete `variance <= 0` or NaN, or
      the concrete fused mean overflowed the dtype (precisions `1 / variance` or
      precision-weighted means beyond about 3e38 in float32: fuse in float64 with
      `jax.enable_x64`, or bound the variances from below). Under `jax.jit` the overflow
      check is skipped.

  Example:
    >>> import jax.numpy as jnp
    >>> fuse_gaussian(jnp.array([[0.], [3.]]), jnp.array([[1.], [2.]]))
    (Array([1.], dtype=float32), Array([0.6666667], dtype=float32))
  """
  checks.check_rank_at_least(mean, 2, 'mean', '[M, ..., D]')
  if jnp.shape(mean) != jnp.shape(variance):
    raise ValueError(f'mean and variance must have the same shape; got {jnp.shape(mean)} and '
                     f'{jnp.shape(variance)}.')
  checks.as_floats(mean, 'mean', '[M, ..., D]', rank=2)
  checks.as_floats(variance, 'variance', '[M, ..., D]', rank=2)
  checks.check_values(
      lambda values: (f'variance must be > 0; got minimum {values.min().item()!r}.'
                      if values.size and values.min() <= 0 else None), variance)
  mean, variance = checks.upcast(mean), checks.upcast(variance)
  present = jnp.ones(mean.shape[:-1], bool) if mask is None else mask
  checks.check_mask(present, jnp.shape(mean)[:-1])
  precision_m = jnp.where(present[..., None], 1 / variance, 0)
  precision = jnp.sum(precision_m, axis=0)
  safe = jnp.where(precision > 0, precision, 1)
  fused_mean = jnp.where(precision > 0, jnp.sum(precision_m * mean, axis=0) / safe, 0)
  checks.check_fused(fused_mean, 'mean and variance', quantity='precision-weighted mean',
                     remedy='bound the variances from below and the means in magnitude')
  return fused_mean, jnp.where(precision > 0, 1 / safe, jnp.inf)
