"""Batch normalisation with PyTorch's running statistics and a row mask.

`BatchNorm` normalises `[B, C]` features like `torch.nn.BatchNorm1d`, and channels-last maps
`[B, H, W, C]` like `torch.nn.BatchNorm2d` (eps 1e-5, momentum 0.1
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

import math

import jax
import jax.numpy as jnp
from flax import nnx

from lqmm import checks

__all__ = ['BatchNorm']


class BatchNorm(nnx.Module):
  """`torch.nn.BatchNorm1d` / `2d` over the last axis of `[B, ..., C]`, with a row mask.

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
    """Normalised `[B, ..., C]`; `mask` bool `[B]` (True = counts in the batch statistics).

    Feature maps `[B, H, W, C]` are normalised per channel over the batch and the spatial
    positions, as `torch.nn.BatchNorm2d` (the unbiased count is B H W).
    """
    if jnp.ndim(x) < 2:
      raise ValueError(f'x must be [B, ..., C]; got shape {jnp.shape(x)}.')
    lead = (1,) * (x.ndim - 1)
    if self.use_running_average:
      mean, var = self.mean[...], self.var[...]
    else:
      axes = tuple(range(x.ndim - 1))
      weight = (jnp.ones(x.shape[:1], x.dtype) if mask is None
                else jnp.asarray(mask).astype(x.dtype))
      weight = weight.reshape(x.shape[:1] + lead)
      count = jnp.sum(weight) * math.prod(x.shape[1:-1])
      safe = jnp.maximum(count, 1)
      counted = jnp.where(weight > 0, x, 0)          # a left-out row's NaN stays out
      mean = jnp.sum(weight * counted, axis=axes) / safe
      var = jnp.sum(weight * (counted - mean.reshape(lead + (-1,))) ** 2, axis=axes) / safe
      unbiased = var * count / jnp.maximum(count - 1, 1)
      momentum = jnp.where(count > 0, self.momentum, 0.0).astype(self.mean[...].dtype)
      self.mean[...] = (1 - momentum) * self.mean[...] + momentum * mean
      self.var[...] = (1 - momentum) * self.var[...] + momentum * unbiased
    inverse = jax.lax.rsqrt(var + self.epsilon) * self.scale[...]
    return ((x - mean.reshape(lead + (-1,))) * inverse.reshape(lead + (-1,)) +
            self.bias[...].reshape(lead + (-1,)))
