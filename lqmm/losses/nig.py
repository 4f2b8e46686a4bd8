"""Losses for Normal-Inverse-Gamma regression heads (deep evidential regression, MoNIG).

For a target `y` and `NIG(gamma, nu, alpha, beta)`, the marginal likelihood of `y` is a Student-t
with `2 alpha` degrees of freedom; its negative log is, with `omega = 2 beta (1 + nu)`,

    nll = log(pi / nu) / 2 - alpha log(omega) + (alpha + 1/2) log(nu (y - gamma)^2 + omega)
          + lgamma(alpha) - lgamma(alpha + 1/2).

The evidence regulariser `|y - gamma| (2 nu + alpha)` penalises evidence spent on wrong
predictions; MoNIG weights it by `risk` (default 0.01). The subgradient of `|y - gamma|` at 0 is
taken as 0 (as in PyTorch). MoNIG trains on the sum of this loss over every modality's NIG and over
the fused NIG (`mixture_loss`).

References:
  Amini, Schwarting, Soleimany, Rus. "Deep Evidential Regression." NeurIPS 2020.
  Ma, Han, Zhang, Zhang, Fu, Zhou, Hu. "Trustworthy Multimodal Regression with Mixture of
    Normal-inverse Gamma Distributions." NeurIPS 2021.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm import special
from lqmm.fusion import nig as nig_lib

__all__ = ['evidence_regularizer', 'mixture_loss', 'negative_log_likelihood', 'nig_loss']


def _prepare(nig: nig_lib.NIG, targets) -> tuple[nig_lib.NIG, jax.Array]:
  nig = nig_lib.as_nig(nig)
  for field in ('nu', 'beta'):  # the Student-t density needs nu > 0 and beta > 0
    checks.check_values(
        lambda values, field=field: (
            f'nig.{field} must be > 0 for a loss (the Student-t density is undefined at 0); got '
            f'minimum {values.min().item()!r}.' if values.size and values.min() <= 0 else None),
        getattr(nig, field))
  if jnp.shape(targets) != jnp.shape(nig.gamma):
    raise ValueError(f'targets must have the shape of nig.gamma {jnp.shape(nig.gamma)}; got '
                     f'shape {jnp.shape(targets)}.')
  checks.check_floating(targets, 'targets')
  checks.check_finite(targets, 'targets')
  return nig, checks.upcast(targets).astype(nig.gamma.dtype)


def _abs(x: jax.Array) -> jax.Array:
  """`|x|` with subgradient 0 at 0."""
  return jnp.sign(x) * x


def negative_log_likelihood(nig: nig_lib.NIG, targets: jax.Array) -> jax.Array:
  """Per-element Student-t negative log-likelihood of `targets` under `nig`, `[..., D]`.

  Args:
    nig: `NIG` with fields `[..., D]`: `gamma` the predicted mean (any finite real, negative
      included), `nu > 0`, `alpha > 1`, `beta > 0`.
    targets: `[..., D]` regression targets.

  Returns:
    `[..., D]` losses.

  Raises:
    ValueError: shapes differ, or concrete fields or targets hold NaN or infinity, or break the
      bounds above (checked by `lqmm.fusion.nig.as_nig`).
    TypeError: `nig` is not an `NIG`, or a field or `targets` is not floating-point.

  Example:
    >>> import jax.numpy as jnp
    >>> nig = nig_lib.NIG(*jnp.array([[0.], [1.], [2.], [1.]]))
    >>> negative_log_likelihood(nig, jnp.array([0.])).round(4)
    Array([0.9808], dtype=float32)
  """
  nig, targets = _prepare(nig, targets)
  omega = 2 * nig.beta * (1 + nig.nu)
  return (0.5 * jnp.log(np.pi / nig.nu) - nig.alpha * jnp.log(omega) +
          (nig.alpha + 0.5) * jnp.log(nig.nu * (targets - nig.gamma)**2 + omega) +
          special.lgamma(nig.alpha) - special.lgamma(nig.alpha + 0.5))


def evidence_regularizer(nig: nig_lib.NIG, targets: jax.Array) -> jax.Array:
  """Per-element `|y - gamma| (2 nu + alpha)`, `[..., D]`.

  Args:
    nig: `NIG` with fields `[..., D]` (as in `negative_log_likelihood`; `gamma` may be any
      finite real).
    targets: `[..., D]` regression targets.

  Returns:
    `[..., D]` non-negative regularisers.

  Raises:
    ValueError: as `negative_log_likelihood`.
    TypeError: as `negative_log_likelihood`.
  """
  nig, targets = _prepare(nig, targets)
  return _abs(targets - nig.gamma) * (2 * nig.nu + nig.alpha)


def nig_loss(nig: nig_lib.NIG, targets: jax.Array, *, risk: float = 0.01) -> jax.Array:
  """MoNIG's per-element criterion: `nll + risk * |y - gamma| (2 nu + alpha)`, `[..., D]`.

  The original averages this over the batch (its `criterion_nig`).

  Args:
    nig: `NIG` with fields `[..., D]` (as in `negative_log_likelihood`; `gamma` may be any
      finite real).
    targets: `[..., D]`.
    risk: weight of the evidence regulariser, `>= 0`.

  Returns:
    `[..., D]` losses.

  Raises:
    ValueError: a negative or NaN `risk`, or invalid `nig` / `targets` (see
      `negative_log_likelihood`).
  """
  checks.check_scalar(risk, 'risk', low=0)
  return negative_log_likelihood(nig, targets) + risk * evidence_regularizer(nig, targets)


def mixture_loss(nig: nig_lib.NIG, targets: jax.Array, mask: jax.Array | None = None, *,
                 risk: float = 0.01) -> tuple[jax.Array, nig_lib.NIG]:
  """MoNIG's training objective: every modality's loss plus the fused distribution's, `[..., D]`.

  Args:
    nig: `NIG` with fields `[M, ..., D]` (as in `negative_log_likelihood`; `gamma` may be any
      finite real).
    targets: `[..., D]`.
    mask: optional bool `[M, ...]`; missing modalities add no loss and are not fused.
    risk: weight of the evidence regulariser, `>= 0`.

  Returns:
    `(loss [..., D], fused NIG)`, the loss summed over modalities and the fused term; average it
    over the batch as the original does.

  Raises:
    ValueError: a negative or NaN `risk`, invalid `nig`, `targets` or `mask`.
  """
  checks.check_rank_at_least(nig.gamma, 2, 'nig.gamma', '[M, ..., D]')
  checks.check_scalar(risk, 'risk', low=0)
  fused = nig_lib.fuse(nig, mask)
  per_modality = nig_loss(nig, jnp.broadcast_to(targets, jnp.shape(nig.gamma)), risk=risk)
  if mask is not None:
    per_modality = jnp.where(mask[..., None], per_modality, 0)
  return jnp.sum(per_modality, axis=0) + nig_loss(fused, targets, risk=risk), fused
