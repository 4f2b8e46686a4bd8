"""A jointly trained multimodal classifier laid out for the balanced-learning methods.

Every modality has an encoder to a `D`-wide feature; the fused decision is a linear head on the
concatenated features (OGM's `concat` fusion), so the unimodal logits that OGM, AGM and PMR
score are read off that head (`lqmm.nn.split_linear_head`). Each modality also has its own
auxiliary linear head, for unimodal losses (Gradient-Blending, distillation targets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from lqmm import checks
from lqmm.nn import conv as conv_lib
from lqmm.nn import heads as heads_lib
from lqmm.nn.evidential import torch_linear


class BalanceOutputs(NamedTuple):
  """What `BalanceNet` returns.

  Attributes:
    fused: `[B, K]` logits of the fused head.
    unimodal: `[M, B, K]` modality m's share of the fused logits (they sum to `fused`).
    auxiliary: `[M, B, K]` logits of each modality's own auxiliary head.
    features: `[M, B, D]` encoder features (zero where a modality was dropped).
    gates: cross-modal gates of models that have them (`GreedyNet`: the batch-mean MMTM gate of
      every modality, a tuple of `[C_m]`), else None.
  """
  fused: jax.Array
  unimodal: jax.Array
  auxiliary: jax.Array
  features: jax.Array
  gates: Any = None


class MLPEncoder(nnx.Module):
  """`[B, ...] -> [B, D]`: flattens, then ReLU layers of `hidden` widths and a ReLU output."""

  def __init__(self, in_features: int, features: int, *, hidden: Sequence[int],
               rngs: nnx.Rngs):
    widths = (in_features, *hidden, features)
    self.layers = nnx.List([torch_linear(a, b, rngs=rngs) for a, b in zip(widths, widths[1:])])

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.reshape(x.shape[0], -1)
    for layer in self.layers:
      x = jax.nn.relu(layer(x))
    return x


class ConvEncoder(nnx.Module):
  """`[B, H, W] -> [B, D]`: 3x3 conv + ReLU + 2x2 max-pool per entry of `channels`, then linear.

  Its conv kernels are 4-D, the parameters the original OGM-GE modulates. The parameters are
  `nnx.Conv`'s; the forward pass computes them by im2col (`lqmm.nn.conv`).
  """

  def __init__(self, shape: Sequence[int], features: int, *, channels: Sequence[int] = (16, 32),
               rngs: nnx.Rngs):
    if len(shape) != 2:
      raise ValueError(f'ConvEncoder needs [H, W] inputs; got input shape {tuple(shape)}.')
    widths = (1, *channels)
    self.convs = nnx.List([
        nnx.Conv(a, b, kernel_size=(3, 3), padding='SAME', rngs=rngs)
        for a, b in zip(widths, widths[1:])])
    height, width = shape
    for _ in channels:
      height, width = height // 2, width // 2
    self.out = torch_linear(height * width * widths[-1], features, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x[..., None]
    for conv in self.convs:
      # `nnx.Conv`'s parameters, computed by im2col (`lqmm.nn.conv`: several times faster on
      # XLA:CPU inside a scanned epoch and under vmap over seeds; the same values).
      x = conv_lib.max_pool2d(jax.nn.relu(conv_lib.conv2d(x, conv.kernel[...], conv.bias[...])))
    return jax.nn.relu(self.out(x.reshape(x.shape[0], -1)))


class BalanceNet(nnx.Module):
  """Encoders, a concatenation head and per-modality auxiliary heads.

  Args:
    shapes: `{modality: per-sample input shape}`, e.g. `{'audio': (32, 40), 'image': (28, 28)}`.
    order: modality order of the stacked outputs.
    num_classes: K.
    features: D, the width of every encoder's output.
    encoder: `'mlp'` or `'conv'` (2-D inputs only), or a `{modality: kind}` mapping.
    hidden: hidden widths of the MLP encoders.
    channels: conv widths of the conv encoders.
    head: `'linear'` (concatenation + linear layer) or `'cosine'` (MMCosine: each modality's
      normalised features against its normalised slice of the head's kernel, times
      `cosine_scale`; no bias).
    cosine_scale: MMCosine's scaling factor s.
    rngs: NNX random streams.

  Raises:
    KeyError: an unknown modality, encoder kind or head.
  """

  def __init__(self, shapes: Mapping[str, Sequence[int]], order: Sequence[str], num_classes: int,
               *, features: int = 64, encoder: str | Mapping[str, str] = 'mlp',
               hidden: Sequence[int] = (128,), channels: Sequence[int] = (16, 32),
               head: str = 'linear', cosine_scale: float = 10.0, rngs: nnx.Rngs):
    if head not in ('linear', 'cosine'):
      raise KeyError(f"Unknown head {head!r}; valid names: 'cosine', 'linear'.")
    checks.check_order(order, shapes, 'shapes')
    kinds = {name: encoder for name in order} if isinstance(encoder, str) else dict(encoder)
    encoders = {}
    for name in order:
      kind = kinds.get(name)
      if kind == 'mlp':
        size = 1
        for dim in shapes[name]:
          size *= dim
        encoders[name] = MLPEncoder(size, features, hidden=hidden, rngs=rngs)
      elif kind == 'conv':
        encoders[name] = ConvEncoder(shapes[name], features, channels=channels, rngs=rngs)
      else:
        raise KeyError(f"Unknown encoder kind {kind!r} for modality {name!r}; valid names: "
                       "'conv', 'mlp'.")
    self.order = tuple(order)
    self.head_kind = head
    self.cosine_scale = cosine_scale
    self.encoders = nnx.Dict(encoders)
    self.head = torch_linear(len(order) * features, num_classes, rngs=rngs)
    self.auxiliary = nnx.Dict({name: torch_linear(features, num_classes, rngs=rngs)
                               for name in order})

  def encode(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
    """`{modality: [B, ...]}` -> `[M, B, D]` features."""
    checks.check_order(self.order, inputs, 'inputs')
    return jnp.stack([self.encoders[name](inputs[name]) for name in self.order])

  def heads(self, features: jax.Array) -> BalanceOutputs:
    """Applies the fused and auxiliary heads to `[M, B, D]` features."""
    if self.head_kind == 'cosine':
      unimodal = heads_lib.modality_cosine_logits(features, self.head.kernel[...],
                                                  scale=self.cosine_scale)
    else:
      unimodal = heads_lib.split_linear_head(list(features), self.head.kernel[...],
                                             self.head.bias[...])
    auxiliary = jnp.stack([self.auxiliary[name](features[index])
                           for index, name in enumerate(self.order)])
    return BalanceOutputs(unimodal.sum(0), unimodal, auxiliary, features)

  def __call__(self, inputs: Mapping[str, jax.Array], keep: jax.Array | None = None
               ) -> BalanceOutputs:
    """Encodes and decides; `keep: bool [M, B]` zeroes dropped modalities' features."""
    features = self.encode(inputs)
    if keep is not None:
      features = jnp.where(keep[..., None], features, 0)
    return self.heads(features)
