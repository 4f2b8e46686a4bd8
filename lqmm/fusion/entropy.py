"""Entropy-weighted late fusion: a modality's weight falls as its predictive entropy rises.

For modality m with class probabilities `p_m = softmax(z_m)`, the normalised entropy is
`h_m = H(p_m) / log K` in [0, 1]; its confidence is `c_m = 1 - h_m` (1 for a one-hot prediction,
0 for the uniform). The fused logits are the confidence-weighted sum `sum_m c_m z_m` (Eq. 11 of
the survey with entropy weights), or with `normalize=True` the convex combination. A missing
modality gets weight 0 (the identity of the sum), so an all-missing row fuses to 0. With
`stop_gradient=True` (the default) the weights act as per-sample constants, as QMF does with its
energy weights; the modality heads are then trained only through their logits.

References:
  Zhang, Wang, Zhang, et al. "Multimodal Fusion on Low-quality Data: A Comprehensive Survey."
    2024 (entropy-based dynamic weighting).
  Tian, Wang, Kira. "UNO: Uncertainty-aware Noisy-Or Multimodal Fusion for Unanticipated Input
    Degradation." ICRA 2020 (entropy as a per-sample quality signal).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm.fusion import weighted

__all__ = ['fuse', 'normalized_entropy', 'weights']


def normalized_entropy(logits: jax.Array) -> jax.Array:
  """`H(softmax(logits)) / log K` over the last axis, in [0, 1].

  Args:
    logits: `[..., K]`, K >= 2.

  Returns:
    `[...]`.

  Raises:
    ValueError: K < 2 or concrete `logits` hold NaN or infinity.

  Example:
    >>> import jax.numpy as jnp
    >>> normalized_entropy(jnp.zeros(4))
    Array(1., dtype=float32)
  """
  checks.check_rank_at_least(logits, 1, 'logits', '[..., K]')
  num_classes = jnp.shape(logits)[-1]
  if num_classes < 2:
    raise ValueError(f'logits must have K >= 2 classes on the last axis; got shape '
                     f'{jnp.shape(logits)}.')
  checks.check_floating(logits, 'logits')
  checks.check_finite(logits, 'logits')
  logits = checks.upcast(logits)
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)
  return entropy / np.log(num_classes)


def weights(logits: jax.Array, mask: jax.Array | None = None, *,
            stop_gradient: bool = True) -> jax.Array:
  """Per-sample entropy confidences `1 - H(p_m) / log K`, `[M, ...]`; 0 where missing.

  Args:
    logits: `[M, ..., K]` per-modality logits.
    mask: optional bool `[M, ...]`, True = present.
    stop_gradient: treat the weights as constants in the backward pass.

  Returns:
    `[M, ...]` weights in [0, 1].
  """
  checks.check_rank_at_least(logits, 2, 'logits', '[M, ..., K]')
  return weighted.finish_weights(1 - normalized_entropy(logits), mask, stop_gradient=stop_gradient)


def fuse(logits: jax.Array, mask: jax.Array | None = None, *, normalize: bool = False,
         stop_gradient: bool = True) -> jax.Array:
  """Entropy-weighted late fusion of logits `[M, ..., K]` -> `[..., K]`.

  Args:
    logits: `[M, ..., K]` per-modality logits.
    mask: optional bool `[M, ...]`, True = present; all-missing rows return 0.
    normalize: divide by the summed weights (a convex combination of logits).
    stop_gradient: treat the weights as constants in the backward pass.

  Returns:
    Fused logits `[..., K]`.

  Raises:
    ValueError: `logits` has fewer than 2 dims, K < 2, concrete `logits` hold NaN or
      infinity, `mask` has the wrong shape, or the concrete fused logits overflowed the dtype
      (a sum of M logits beyond about 3e38 in float32: fuse in float64 with `jax.enable_x64`,
      or bound the logits). Under `jax.jit` the overflow check is skipped.

  Example:
    >>> import jax.numpy as jnp
    >>> logits = jnp.array([[[4., 0.]], [[0., 0.]]])  # confident, then uniform modality
    >>> [round(value, 3) for value in fuse(logits)[0].tolist()]
    [3.48, 0.0]
  """
  modality_weights = weights(logits, mask, stop_gradient=stop_gradient)
  fused = weighted.weighted_sum(checks.upcast(logits), modality_weights, normalize=normalize)
  weighted.check_fused(fused, 'logits')
  return fused
