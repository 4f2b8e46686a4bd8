"""Per-modality encoders and heads for late (decision-level) and intermediate fusion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lqmm import checks
from lqmm.nn.evidential import torch_linear


class ModalityNet(nnx.Module):
  """One modality's MLP encoder `[B, d] -> [B, hidden[-1]]` (ReLU) and linear head `-> [B, K]`.

  Args:
    in_features: input width d.
    num_classes: K.
    hidden: encoder widths (at least one).
    rngs: NNX random streams.
  """

  def __init__(self, in_features: int, num_classes: int, *, hidden: Sequence[int],
               rngs: nnx.Rngs):
    if not hidden:
      raise ValueError('hidden must name at least one encoder width; got an empty sequence.')
    widths = (in_features, *hidden)
    self.encoder = nnx.List([torch_linear(a, b, rngs=rngs) for a, b in zip(widths, widths[1:])])
    self.head = torch_linear(widths[-1], num_classes, rngs=rngs)

  def encode(self, x: jax.Array) -> jax.Array:
    for layer in self.encoder:
      x = jax.nn.relu(layer(x))
    return x

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns `(features [B, hidden[-1]], logits [B, K])`."""
    features = self.encode(x)
    return features, self.head(features)


class LateFusionNet(nnx.Module):
  """One `ModalityNet` per modality, plus an optional joint head on the concatenated features.

  Calling it returns `(logits [M, B, K], joint [B, K] or None)`: the per-modality decisions for
  late fusion and, with `joint=True`, the decision of a linear head on the concatenation of all
  modalities' features, where missing modalities contribute zeros (intermediate fusion).

  Args:
    dims: `{modality: input width}`.
    order: the modality order of the stacked output.
    num_classes: K.
    hidden: encoder widths shared by all modalities.
    joint: add the joint head.
    rngs: NNX random streams.
  """

  def __init__(self, dims: Mapping[str, int], order: Sequence[str], num_classes: int, *,
               hidden: Sequence[int] = (64,), joint: bool = False, rngs: nnx.Rngs):
    checks.check_order(order, dims, 'dims')
    self.order = tuple(order)
    self.nets = nnx.Dict({name: ModalityNet(dims[name], num_classes, hidden=hidden, rngs=rngs)
                          for name in self.order})
    self.joint = (torch_linear(len(self.order) * hidden[-1], num_classes, rngs=rngs)
                  if joint else None)

  def __call__(self, inputs: Mapping[str, jax.Array],
               mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array | None]:
    """Maps `{modality: [B, d_m]}` (and a bool `[M, B]` mask) to `(logits, joint)`."""
    checks.check_order(self.order, inputs, 'inputs')
    features, logits = zip(*(self.nets[name](inputs[name]) for name in self.order))
    joint = None
    if self.joint is not None:
      if mask is not None:
        features = [jnp.where(mask[index][:, None], feature, 0)
                    for index, feature in enumerate(features)]
      joint = self.joint(jnp.concatenate(features, axis=-1))
    return jnp.stack(logits), joint
