"""Uncertainty-aware noisy-or fusion (UNO) with entropy-based likelihood flattening.

Noisy-or treats each modality's class probability as an independent cause of the class:

    f_k = 1 - prod_m (1 - p_mk),      p_k(fused) = f_k / sum_j f_j.

The unnormalised `f` is commutative and associative with identity 0 (`RULE`): a missing modality
contributes probability 0, and an all-missing row fuses to the uniform distribution. `fuse`
applies the final normalisation once; every value stays in [0, 1], so it cannot overflow.

UNO first flattens over-confident predictions on degraded inputs: with `H_m` modality m's mean
predictive entropy over a sample (over its pixels for segmentation) and `mu_m`, `sigma_m` the mean
and population std of that entropy over clean training data,

    D_m = mu_m / (max(0, H_m - mu_m - sigma_m) + mu_m),     z_m <- D_m z_m,

so a sample within one std of the usual entropy keeps its logits (`D = 1`) and a more uncertain
one is pushed toward the uniform. UNO-IC then rebalances for class imbalance with the training
label prior `pi` and a strength `beta` in [0, 1]:

    r_k ∝ q_k / pi_k,      o_k ∝ q_k^(1 - beta) r_k^beta       (a class with pi_k = 0 gets 0).

Faithful to GT-RIPL/UNO-IC: `clip_probability=1e-9` reproduces its clamp inside the entropy; the
default computes the exact entropy (the two differ by less than 1e-7 nats). The original applies
one modality's statistics to all other modalities by name; lqmm takes one `(mu, sigma)` per
modality.

References:
  Tian, Wang, Kira. "UNO: Uncertainty-aware Noisy-Or Multimodal Fusion for Unanticipated Input
    Degradation." ICRA 2020.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm.fusion import base

__all__ = ['RULE', 'combine', 'entropy_statistics', 'flattening_factor', 'fuse', 'mean_entropy',
           'rebalance', 'uno']


def combine(probs_a: jax.Array, probs_b: jax.Array) -> jax.Array:
  """Unnormalised noisy-or of two modalities: `1 - (1 - p_a)(1 - p_b)`, `[..., K]`.

  Example:
    >>> import jax.numpy as jnp
    >>> combine(jnp.array([0.5, 0.5]), jnp.array([0.8, 0.2]))
    Array([0.9, 0.6], dtype=float32)
  """
  probs_a = checks.as_probabilities(probs_a, 'probs_a')
  probs_b = checks.as_probabilities(probs_b, 'probs_b')
  checks.check_broadcastable(probs_a, probs_b, 'probs_a', 'probs_b')
  return _union(probs_a, probs_b)


def _union(a: jax.Array, b: jax.Array) -> jax.Array:
  """`1 - (1 - a)(1 - b)` as `a + b (1 - a)`: non-negative terms, so exact near 0."""
  return a + b * (1 - a)


RULE = base.FusionRule(combine=combine, identity_like=jnp.zeros_like)


def fuse(probs: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Noisy-or fusion of M modalities' class probabilities, normalised over classes.

  Args:
    probs: `[M, ..., K]` class probabilities.
    mask: optional bool `[M, ...]`, True = present. All-missing rows return the uniform.

  Returns:
    `[..., K]` fused class probabilities.

  Raises:
    ValueError: `probs` is not in [0, 1], has fewer than 2 dims, or `mask` has the wrong shape.

  Example:
    >>> import jax.numpy as jnp
    >>> [round(value, 4) for value in fuse(jnp.array([[0.5, 0.5], [0.8, 0.2]])).tolist()]
    [0.6, 0.4]
  """
  probs = checks.as_probabilities(probs, 'probs', '[M, ..., K]', 2)
  checks.check_stacked(probs, 'probs')
  probs = base.apply_mask(RULE, probs, mask)
  # 1 - prod(1 - p) as a balanced tree of a + b (1 - a): relative accuracy near 0, absolute
  # near 1, no logarithms; the barrier keeps XLA from recomputing the tree in the row sum.
  noisy_or = jax.lax.optimization_barrier(base.tree_reduce(_union, probs))
  total = jnp.sum(noisy_or, axis=-1, keepdims=True)
  uniform = jnp.full_like(noisy_or, 1 / probs.shape[-1])
  return jnp.where(total > 0, noisy_or / jnp.where(total > 0, total, 1), uniform)


def mean_entropy(logits: jax.Array, *, spatial_axes: Sequence[int] = (),
                 clip_probability: float | None = None) -> jax.Array:
  """Per-sample predictive entropy (nats) of `softmax(logits)`, averaged over `spatial_axes`.

  Args:
    logits: `[..., K]`, class axis last.
    spatial_axes: axes (of `logits`, not counting the class axis) to average over, e.g. the
      pixel axes of a segmentation map.
    clip_probability: if set, probabilities below it are raised to it first (UNO-IC's 1e-9).

  Returns:
    The entropy with the class axis and `spatial_axes` removed.
  """
  logits = checks.as_floats(logits, 'logits', '[..., K]')
  probs = jax.nn.softmax(logits, axis=-1)
  if clip_probability is None:
    entropy = -jnp.sum(probs * jax.nn.log_softmax(logits, axis=-1), axis=-1)
  else:
    clipped = jnp.maximum(probs, clip_probability)
    entropy = -jnp.sum(clipped * jnp.log(clipped), axis=-1)
  return jnp.mean(entropy, axis=tuple(spatial_axes)) if spatial_axes else entropy


def entropy_statistics(entropy: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean and population std of per-sample entropies over clean (training) data.

  Args:
    entropy: `[M, N]` per-modality, per-sample entropies (`mean_entropy` of each modality).

  Returns:
    `(mean [M], std [M])`.

  Raises:
    ValueError: `entropy` is not `[M, N]` with N >= 1, or holds NaN or infinity.
    TypeError: `entropy` is not floating-point.
  """
  if jnp.ndim(entropy) != 2:
    raise ValueError(f'entropy must have shape [M, N]; got shape {jnp.shape(entropy)}.')
  checks.check_nonempty(entropy, 'entropy', axis=1, what='sample axis N')
  entropy = checks.as_floats(entropy, 'entropy', '[M, N]', rank=2)
  return jnp.mean(entropy, axis=1), jnp.std(entropy, axis=1)


def flattening_factor(entropy: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
  """UNO's likelihood-flattening factor `D = mu / (max(0, H - mu - sigma) + mu)`, in (0, 1].

  Args:
    entropy: `[M, ...]` per-sample entropies.
    mean: `[M]` each modality's clean-data mean entropy, `> 0`.
    std: `[M]` each modality's clean-data entropy std.

  Returns:
    `[M, ...]`; multiply modality m's logits by it.
  """
  checks.check_rank_at_least(entropy, 1, 'entropy', '[M, ...]')
  num_modalities = jnp.shape(entropy)[0]
  for name, value in (('mean', mean), ('std', std)):
    if jnp.shape(value) != (num_modalities,):
      raise ValueError(f'{name} must have shape ({num_modalities},), one statistic per modality; '
                       f'got shape {jnp.shape(value)}.')
  checks.check_floating(entropy, 'entropy')
  checks.check_finite(entropy, 'entropy')
  checks.check_floating(mean, 'mean')
  checks.check_floating(std, 'std')
  checks.check_scalar(mean, 'mean', low=0, low_open=True)
  checks.check_scalar(std, 'std', low=0)
  extra = (1,) * (jnp.ndim(entropy) - 1)
  mean = jnp.reshape(checks.upcast(mean), (-1,) + extra)
  std = jnp.reshape(checks.upcast(std), (-1,) + extra)
  return mean / (jnp.maximum(0, entropy - mean - std) + mean)


def rebalance(probs: jax.Array, prior: jax.Array, beta: float) -> jax.Array:
  """UNO-IC's imbalance calibration: `o ∝ q^(1 - beta) (q / prior)^beta` (normalised).

  Args:
    probs: `[..., K]` class probabilities.
    prior: `[K]` training label frequencies; a class with prior 0 gets probability 0.
    beta: calibration strength in [0, 1] (0 = no change).

  Returns:
    `[..., K]` calibrated probabilities.

  Raises:
    ValueError: `prior` has the wrong shape, a negative, NaN or infinite entry, or no positive
      entry; `beta` outside `[0, 1]`; invalid `probs`.
  """
  probs = checks.as_probabilities(probs)
  if jnp.shape(prior) != jnp.shape(probs)[-1:]:
    raise ValueError(f'prior must have shape ({jnp.shape(probs)[-1]},); got '
                     f'{jnp.shape(prior)}.')
  checks.check_floating(prior, 'prior')
  checks.check_scalar(prior, 'prior', low=0)
  checks.check_values(
      lambda values: ('prior must have at least one positive entry (label frequencies); got all '
                      'zeros.' if values.size and not np.any(values > 0) else None), prior)
  checks.check_scalar(beta, 'beta', low=0, high=1)
  prior = jnp.reshape(checks.upcast(prior).astype(probs.dtype), (1,) * (probs.ndim - 1) + (-1,))
  inverse = jnp.where(prior > 0, 1 / jnp.where(prior > 0, prior, 1), 0)
  reweighted = probs * inverse
  reweighted = reweighted / jnp.sum(reweighted, axis=-1, keepdims=True)
  calibrated = probs**(1 - beta) * reweighted**beta
  return calibrated / jnp.sum(calibrated, axis=-1, keepdims=True)


def uno(logits: jax.Array, mask: jax.Array | None = None, *, mean: jax.Array, std: jax.Array,
        prior: jax.Array | None = None, beta: float | None = None,
        spatial_axes: Sequence[int] = (), clip_probability: float | None = None) -> jax.Array:
  """The full UNO pipeline: flatten each modality by its entropy, (rebalance,) noisy-or fuse.

  Args:
    logits: `[M, B, *spatial, K]` per-modality logits.
    mask: optional bool `[M, B, *spatial]`, True = present.
    mean: `[M]` clean-data mean entropies (`entropy_statistics`).
    std: `[M]` clean-data entropy stds.
    prior: optional `[K]` label prior for UNO-IC; needs `beta`.
    beta: UNO-IC calibration strength.
    spatial_axes: the spatial axes of each modality's `[B, *spatial, K]` logits (e.g. (1, 2)).
    clip_probability: UNO-IC's entropy clamp (1e-9) for exact parity; None = exact entropy.

  Returns:
    `[B, *spatial, K]` fused class probabilities.

  Example:
    >>> import jax.numpy as jnp
    >>> logits = jnp.array([[[4., 0.]], [[0., 1.]]])  # [M=2, B=1, K=2]
    >>> fused = uno(logits, mean=jnp.array([0.3, 0.3]), std=jnp.array([0.1, 0.1]))
    >>> [round(value, 3) for value in fused[0].tolist()]
    [0.601, 0.399]
  """
  checks.check_rank_at_least(logits, 3, 'logits', '[M, B, ..., K]')
  if (prior is None) != (beta is None):
    raise ValueError('prior and beta go together (UNO-IC); pass both or neither.')
  entropy = mean_entropy(logits, spatial_axes=tuple(axis + 1 for axis in spatial_axes),
                         clip_probability=clip_probability)
  factor = flattening_factor(entropy, mean, std)
  factor = jnp.reshape(factor, jnp.shape(factor) + (1,) * (jnp.ndim(logits) - factor.ndim))
  probs = jax.nn.softmax(checks.upcast(logits) * factor, axis=-1)
  if prior is not None:
    probs = rebalance(probs, prior, beta)
  return fuse(probs, mask)
