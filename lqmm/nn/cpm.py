"""CPM-Nets' per-view decoders: from one latent vector per sample back to each view.

CPM-Nets (Zhang et al. 2019) has no encoder: every training sample owns a latent vector `h_n`
(a parameter, stored in the method's state), and one decoder per view maps `h_n` to that view.
The reconstruction loss counts only the views sample n has, so no missing view is ever
imputed; a test sample's latent is fitted to its present views with the decoders fixed.

References:
  Zhang, Han, Fu, Zhou, Hu. "CPM-Nets: Cross Partial Multi-View Networks." NeurIPS 2019
    (original code: hanmenghan/CPM_Nets, `util/model.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lqmm import checks


def _linear(in_features: int, out_features: int, rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(in_features, out_features, rngs=rngs,
                    kernel_init=nnx.initializers.variance_scaling(1.0, 'fan_avg', 'uniform'),
                    bias_init=nnx.initializers.zeros_init())


class CPMDecoders(nnx.Module):
  """One decoder per view, `[B, latent_dim] -> {view: [B, d_view]}`.

  As the original: two linear layers with no activation between them (the decoder is linear
  in `h`; the hidden width only factorises it) and dropout on the output. Glorot-uniform
  kernels and zero biases (`lqmm.nn.xavier_uniform_init` draws the same distribution).

  Args:
    dims: `{view: width}`.
    order: the views, in order.
    latent_dim: width of the latent vectors (the original: 128).
    hidden: the first layer's width (the original: 150).
    dropout: the output's dropout rate (the original keeps 0.9: rate 0.1).
    rngs: NNX random streams.
  """

  def __init__(self, dims: Mapping[str, int], order: Sequence[str], *, latent_dim: int,
               hidden: int = 150, dropout: float = 0.1, rngs: nnx.Rngs):
    checks.check_order(order, dims, 'dims', kind='view')
    checks.check_scalar(dropout, 'dropout', low=0, high=1, high_open=True)
    self.order = tuple(order)
    self.dropout = float(dropout)
    self.layers = nnx.Dict({
        view: nnx.List([_linear(latent_dim, hidden, rngs), _linear(hidden, dims[view], rngs)])
        for view in self.order})

  def __call__(self, latent: jax.Array, *, key: jax.Array | None = None) -> dict[str, jax.Array]:
    """Reconstructions `{view: [B, d_view]}`; dropout only when a `key` is given."""
    out = {}
    for index, view in enumerate(self.order):
      first, second = self.layers[view]
      x = second(first(latent))
      if key is not None and self.dropout > 0:
        keep = jax.random.bernoulli(jax.random.fold_in(key, index), 1 - self.dropout, x.shape)
        x = jnp.where(keep, x / (1 - self.dropout), 0)
      out[view] = x
    return out
