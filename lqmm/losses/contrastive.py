"""Contrastive losses between views.

`mutual_information_loss` is COMPLETER's and DCP's cross-view contrastive loss: each view's
code is a probability vector over L "clusters" (a softmax), the batch defines their joint
distribution, and the loss rewards mutual information between the two views' codes and the
entropy of each code (the entropy term keeps every sample from collapsing onto one cluster):

    P = sym(sum_b w_b z1_b z2_b^T) / total,  p = row sums of P (= column sums)
    loss = -I(Z1; Z2) - alpha (H(Z1) + H(Z2))
         = -sum_ij P_ij (log P_ij - (alpha + 1) log p_i - (alpha + 1) log p_j)

with P, p_i and p_j clamped from below at `eps` (the originals' `sys.float_info.epsilon`),
so that an empty cell adds nothing instead of NaN. It is a loss of the batch, not of each
sample.

Checked against the original `instance_contrastive_Loss` (XLearning-SCU/2022-TPAMI-DCP at
d7a4b47, the same function as COMPLETER's `crossview_contrastive_Loss`): values and gradients
to float64 round-off, `tests/reference/PROVENANCE_dcp.md`.

References:
  Lin, Gou, Liu, Li, Lv, Peng. "COMPLETER: Incomplete Multi-view Clustering via Contrastive
  Prediction." CVPR 2021 (Eq. 3: alpha = 9).
  Lin, Gou, Liu, Li, Lv, Peng. "Dual Contrastive Prediction for Incomplete Multi-View
  Representation Learning." TPAMI 2022 (its code's `lamb = alpha + 1 = 10`).
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp

from lqmm import checks

__all__ = ['mutual_information_loss']


def mutual_information_loss(z1: jax.Array, z2: jax.Array, *, alpha: float = 9.0,
                            weights: jax.Array | None = None,
                            eps: float = sys.float_info.epsilon) -> jax.Array:
  """`-I(Z1; Z2) - alpha (H(Z1) + H(Z2))` of two views' codes over a batch (COMPLETER, DCP).

  Args:
    z1: `[B, L]` probability codes of the first view (rows of a softmax).
    z2: `[B, L]` the second view's codes of the same samples.
    alpha: the entropy weight (COMPLETER's alpha, 9; DCP's configs write `alpha = 10` for the
      coefficient `alpha + 1` of the log-marginals, which is this `alpha = 9`).
    weights: optional `[B]` non-negative row weights (0 drops a row: a sample missing either
      view, or a row padding the batch); None counts every row once.
    eps: the lower clamp of the joint and marginal probabilities.

  Returns:
    A scalar.

  Raises:
    ValueError: shapes that differ, an empty batch, codes outside [0, 1] or not finite,
      negative weights, a negative alpha, or weights that are all zero.

  Example:
    >>> import jax.numpy as jnp
    >>> z = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> round(float(mutual_information_loss(z, z, alpha=0.0)), 4)  # -I(Z1; Z2) = -log 2
    -0.6931
  """
  z1 = checks.as_probabilities(z1, 'z1', '[B, L]', rank=2)
  z2 = checks.as_probabilities(z2, 'z2', '[B, L]', rank=2)
  if z1.ndim != 2 or z1.shape != z2.shape:
    raise ValueError(f'z1 and z2 must be [B, L] codes of the same shape; got {z1.shape} and '
                     f'{z2.shape}.')
  checks.check_nonempty(z1, 'z1')
  checks.check_scalar(alpha, 'alpha', low=0)
  checks.check_scalar(eps, 'eps', low=0, low_open=True)
  dtype = jnp.result_type(z1, z2)
  if weights is None:
    weights = jnp.ones(z1.shape[0], dtype)
  else:
    weights = checks.as_floats(weights, 'weights', '[B]')
    if weights.shape != z1.shape[:1]:
      raise ValueError(f'weights must have shape [B] = {z1.shape[:1]}; got {weights.shape}.')

    def find_problem(values):
      if values.size and values.min() < 0:
        return f'weights must be non-negative; got a minimum of {values.min().item()!r}.'
      if values.size and not values.any():
        return 'weights are all zero: no sample has both views, so there is no joint.'
      return None

    checks.check_values(find_problem, weights)
  return _mutual_information_loss(z1.astype(dtype), z2.astype(dtype), weights.astype(dtype),
                                  alpha, eps)


def _mutual_information_loss(z1, z2, weights, alpha, eps):
  joint = (z1 * weights[:, None]).T @ z2                       # [L, L]
  joint = (joint + joint.T) / 2
  joint = joint / jnp.sum(joint)
  p_i = jnp.sum(joint, axis=1, keepdims=True)
  p_j = jnp.sum(joint, axis=0, keepdims=True)
  joint, p_i, p_j = (jnp.where(x < eps, jnp.asarray(eps, x.dtype), x) for x in (joint, p_i, p_j))
  return -jnp.sum(joint * (jnp.log(joint) - (alpha + 1) * jnp.log(p_j)
                           - (alpha + 1) * jnp.log(p_i)))
