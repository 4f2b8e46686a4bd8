"""RCML's conflictive opinion aggregation and its degree of conflict (Xu et al., AAAI 2024).

Reliable Conflictive Multi-view Learning fuses the views' Dirichlet opinions (evidence `e_m =
alpha_m - 1`, beliefs `b = e / S`, uncertainty `u = K / S`) by averaging belief fusion applied
view after view, as its code does: `e <- e_1`, then `e <- (e + e_m) / 2` for m = 2..M, so the
last view weighs 1/2 and the first two 1/2^(M-1) each (for two views, the plain average). A
missing view is skipped (the running average continues with the next present one); a sample
with no present view gets the vacuous opinion (`alpha = 1`).

Its consistency term is the degree of conflict between every pair of views,

    DC_i = sum_{m, n} PD(m, n) CC(m, n),   PD = sum_k |p_mk - p_nk| / 2 / (M - 1),
                                           CC = (1 - u_m)(1 - u_n),

with `p = alpha / S` the projected probabilities (the m = n terms are 0); RCML trains with the
batch mean of DC times gamma (1) beside the evidential losses of every view and of the fused
opinion (`lqmm.losses.evidential`). Over present views only, M being their number.

Checked against the authors' code (jiajunsi/RCML: `model.RCML.forward`, `loss_function
.get_dc_loss` and `get_loss`): `tests/reference/PROVENANCE_rcml.md`.

Reference:
  Xu, Si, Guan, Zhao, Li, Wang, Luo. "Reliable Conflictive Multi-view Learning." AAAI 2024.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lqmm import checks

__all__ = ['degree_of_conflict', 'fuse']


def _inputs(alpha, mask):
  alpha = checks.as_dirichlet(alpha, 'alpha', '[M, ..., K]', rank=2)
  present = jnp.ones(alpha.shape[:-1], bool) if mask is None else mask
  checks.check_mask(present, jnp.shape(alpha)[:-1])
  return alpha, present


def fuse(alpha: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """RCML's sequential averaging of M opinions `[M, ..., K]` in modality order.

  Args:
    alpha: Dirichlet parameters `[M, ..., K]`, modality axis first, `alpha >= 1`.
    mask: optional bool `[M, ...]`, True = present.

  Returns:
    Fused Dirichlet parameters `[..., K]`: `1 + e`, with `e` the running average above.

  Raises:
    ValueError: `alpha` of fewer than 2 dims, a `mask` of the wrong shape, concrete `alpha`
      with NaN, infinity or values below 1. TypeError: a non-bool mask.

  Example:
    >>> import jax.numpy as jnp
    >>> fuse(jnp.array([[5., 1.], [1., 1.], [3., 3.]])).tolist()
    [3.0, 2.0]
  """
  alpha, present = _inputs(alpha, mask)
  evidence = alpha - 1

  def step(carry, inputs):
    running, started = carry
    e, here = inputs
    here = here[..., None]
    updated = jnp.where(started[..., None], (running + e) / 2, e)
    return (jnp.where(here, updated, running), started | here[..., 0]), None

  init = (jnp.zeros(alpha.shape[1:], alpha.dtype), jnp.zeros(alpha.shape[1:-1], bool))
  (fused, _), _ = jax.lax.scan(step, init, (evidence, present))
  return fused + 1


def degree_of_conflict(alpha: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """RCML's degree of conflict of each sample's views, `[...]` (0 with fewer than 2 views).

  Args:
    alpha: Dirichlet parameters `[M, ..., K]`, `alpha >= 1`.
    mask: optional bool `[M, ...]`, True = present.

  Returns:
    `sum_{m, n present} PD(m, n) (1 - u_m)(1 - u_n)` with `PD` the halved L1 distance of the
    projected probabilities divided by (present views - 1). RCML's loss term is its batch
    mean.

  Raises:
    as `fuse`.

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(degree_of_conflict(jnp.array([[9., 1.], [1., 9.]]))), 4)
    1.024
  """
  alpha, present = _inputs(alpha, mask)
  strength = jnp.sum(alpha, axis=-1, keepdims=True)
  probability = alpha / strength                                        # [M, ..., K]
  belief_mass = 1 - alpha.shape[-1] / strength[..., 0]                  # 1 - u, [M, ...]
  weight = jnp.where(present, belief_mass, 0.0)
  distance = jnp.sum(jnp.abs(probability[:, None] - probability[None, :]), axis=-1) / 2
  count = jnp.sum(present, axis=0).astype(alpha.dtype)
  total = jnp.sum(distance * weight[:, None] * weight[None, :], axis=(0, 1))
  return jnp.where(count > 1, total / jnp.maximum(count - 1, 1), 0.0)
