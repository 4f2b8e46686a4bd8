"""Batch normalisation with PyTorch's running statistics and a row mask.

`BatchNorm` normalises `[B, C]` features like `torch.nn.BatchNorm1d` (eps 1e-5, momentum 0.1
on the new value, running variance updated with the unbiased batch variance, affine scale and
bias), so that ports of PyTorch models keep their numbers; `flax.nnx.BatchNorm` differs in the
momentum's convention and updates the running variance with the biased one. A row mask keeps
the rows of a missing view (or rows that pad a batch) out of the statistics: the statistics
are those of the present rows, and a batch without any leaves the running statistics as they
were.

Training mode (the default) normalises with the batch statistics and updates the running ones
(`nnx.BatchStat` variables, kept in `lqmm.train.TrainState.model_state`); `model.eval()` sets
`use_running_average` and normalises with the running statistics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lqmm import checks

__all__ = ['BatchNorm']


class BatchNorm(nnx.Module):
  """`torch.nn.BatchNorm1d` over the last axis of `[B, C]`, with an optional row mask.

  Args:
    features: C.
    momentum: weight of the new batch statistics in the running ones (torch's 0.1).
    epsilon: added to the variance (torch's 1e-5).
    use_running_average: normalise with the running statistics (evaluation mode).
  """

  def __init__(self, features: int, *, momentum: float = 0.1, epsilon: float = 1e-5,
               use_running_average: bool = False):
    checks.check_integer(features, 'features', minimum=1)
    checks.check_scalar(momentum, 'momentum', low=0, high=1)
    checks.check_scalar(epsilon, 'epsilon', low=0, low_open=True)
    self.scale = nnx.Param(jnp.ones(features, jnp.float32))
    self.bias = nnx.Param(jnp.zeros(features, jnp.float32))
    self.mean = nnx.BatchStat(jnp.zeros(features, jnp.float32))
    self.var = nnx.BatchStat(jnp.ones(features, jnp.float32))
    self.momentum = float(momentum)
    self.epsilon = float(epsilon)
    self.use_running_average = use_running_average

  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Normalised `[B, C]`; `mask` bool `[B]` (True = counts in the batch statistics)."""
    if self.use_running_average:
      mean, var = self.mean[...], self.var[...]
    else:
      weight = (jnp.ones(x.shape[:1], x.dtype) if mask is None
                else jnp.asarray(mask).astype(x.dtype))
      count = jnp.sum(weight)
      safe = jnp.maximum(count, 1)
      mean = jnp.sum(weight[:, None] * x, axis=0) / safe
      var = jnp.sum(weight[:, None] * (x - mean[None, :]) ** 2, axis=0) / safe
      unbiased = var * count / jnp.maximum(count - 1, 1)
      momentum = jnp.where(count > 0, self.momentum, 0.0).astype(self.mean[...].dtype)
      self.mean[...] = (1 - momentum) * self.mean[...] + momentum * mean
      self.var[...] = (1 - momentum) * self.var[...] + momentum * unbiased
    inverse = jax.lax.rsqrt(var + self.epsilon) * self.scale[...]
    return (x - mean[None, :]) * inverse[None, :] + self.bias[...][None, :]
