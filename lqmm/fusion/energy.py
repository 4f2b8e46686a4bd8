"""Energy-weighted late fusion (QMF): each modality is weighted by its negative free energy.

For modality m with logits `z_m [..., K]`, the free energy is `E_m = -logsumexp_k(z_mk)`, which is
low on in-distribution, high-quality inputs. QMF weights each modality by its scaled negative
energy and sums the logits,

    c_m = logsumexp_k(z_mk) / T,         fused = sum_m c_m z_m,

with `T = 10` in the original. The weights are not normalised and may be negative (when every
logit is very negative). A missing modality gets weight 0 (the identity of the sum), so an
all-missing row fuses to 0. `stop_gradient=True` (default, the text-image variant of
QingyangZhang/QMF) treats `c_m` as a constant inside the fusion; `False` lets the fused loss also
train the weights (the RGB-D variant). Either way `c_m` is what the ranking regulariser
(`lqmm.losses.ranking`) orders against each sample's loss history.

References:
  Zhang, Wu, Zhang, Liu, Hu, Zhang, Bian, Fu, Zhou. "Provable Dynamic Fusion for Low-Quality
    Multimodal Data." ICML 2023.
  Liu, Wang, Owens, Li. "Energy-based Out-of-distribution Detection." NeurIPS 2020.
"""

from __future__ import annotations

import jax

from lqmm import checks
from lqmm.fusion import weighted

__all__ = ['confidence', 'fuse', 'weights']


def confidence(logits: jax.Array, *, temperature: float = 10.0) -> jax.Array:
  """QMF's confidence `logsumexp_k(z_k) / T` (the negative energy over T), `[...]`.

  Args:
    logits: `[..., K]`.
    temperature: the divisor T (> 0).

  Returns:
    `[...]`.

  Example:
    >>> import jax.numpy as jnp
    >>> [round(value, 4) for value in confidence(jnp.array([[0., 0.], [5., 5.]])).tolist()]
    [0.0693, 0.5693]
  """
  checks.check_rank_at_least(logits, 1, 'logits', '[..., K]')
  checks.check_floating(logits, 'logits')
  checks.check_finite(logits, 'logits')
  checks.check_scalar(temperature, 'temperature', low=0, low_open=True)
  return jax.nn.logsumexp(checks.upcast(logits), axis=-1) / temperature


def weights(logits: jax.Array, mask: jax.Array | None = None, *, temperature: float = 10.0,
            stop_gradient: bool = True) -> jax.Array:
  """Per-modality, per-sample fusion weights `[M, ...]`; 0 where a modality is missing."""
  checks.check_rank_at_least(logits, 2, 'logits', '[M, ..., K]')
  return weighted.finish_weights(confidence(logits, temperature=temperature), mask,
                                 stop_gradient=stop_gradient)


def fuse(logits: jax.Array, mask: jax.Array | None = None, *, temperature: float = 10.0,
         stop_gradient: bool = True) -> jax.Array:
  """QMF fusion `sum_m c_m z_m` of logits `[M, ..., K]` -> `[..., K]`.

  Args:
    logits: `[M, ..., K]` per-modality logits.
    mask: optional bool `[M, ...]`, True = present; all-missing rows return 0.
    temperature: the divisor T of the confidence.
    stop_gradient: treat the weights as constants in the fusion's backward pass.

  Returns:
    Fused logits `[..., K]`.

  Raises:
    ValueError: `logits` has fewer than 2 dims or holds NaN/inf, `mask` has the wrong shape,
      or the concrete fused logits overflowed the dtype. The weight `c_m` grows with the
      logits, so `c_m z_m` is about `max(z)^2 / T`: in float32 logits beyond about 5e19
      overflow (fuse in float64 with `jax.enable_x64`, or bound the logits). The overflow
      check needs concrete values; under `jax.jit` it is skipped (use
      `lqmm.debug` or test `jnp.isfinite`).

  Example:
    >>> import jax.numpy as jnp
    >>> logits = jnp.array([[[2., 0.]], [[0., 0.]]])  # [M=2, B=1, K=2]
    >>> [round(value, 4) for value in fuse(logits)[0].tolist()]
    [0.4254, 0.0]
  """
  modality_weights = weights(logits, mask, temperature=temperature, stop_gradient=stop_gradient)
  fused = weighted.weighted_sum(checks.upcast(logits), modality_weights)
  weighted.check_fused(fused, 'logits')
  return fused
