"""Feature-level fusion families behind one network, for side-by-side runs with presence masks.

`FeatureFusionNet(shapes, order, num_classes, fusion=...)` gives every family the same
per-modality stems and differs only in how the modalities meet, so a comparison isolates the
fusion:

- **stems** (`TokenStem`): each modality to a `g x g` grid of C-wide tokens. A 2-D input
  `[H, W]` (a spectrogram, an image) goes through 3x3 conv + ReLU + 2x2 max-pool layers
  (`channels`; the im2col convolution of `lqmm.nn.conv`) and an adaptive average pool to the
  grid; a vector `[d]` through a ReLU MLP (`hidden`) to `g * g * C` features. `C = channels[-1]`.
- `'late'`: each modality's token grid flattened (`g * g * C` features), a private linear
  head; the fused logits are the mean of the present modalities' logits.
- `'gated'`: a quality gate per modality (a sigmoid of a learned linear score of its
  flattened features, IAF/MBNet style), normalised over the present modalities; the gated sum
  of the features goes through a shared head.
- `'cen'`: CEN's `ExchangeBottleneck` across the grids (shared convs, private batch norms,
  channels of small BN scale replaced by the other present streams'), then late heads; the
  penalty is CEN's `channel_sparsity` on the exchange norm's scales.
- `'tokenfusion'`: TokenFusion's `TokenScorer` and `TokenFusionBlock` (tokens of low score
  replaced by the other present streams' at the same position), then late heads; the penalty
  is `score_sparsity`.
- `'mbt'`: `lqmm.nn.MBT` on the token grids (1x1 patches, `mbt_layers` layers, bottleneck
  fusion from `mbt_fusion_layer`), scenic's mean of the modalities' class-token logits.
- `'dynmm'`: DynMM-style experts (each modality alone, and late fusion of all) picked per
  sample by a cheap gate on down-sampled raw inputs (`lqmm.nn.DynamicFusion`); training mixes
  the experts by Gumbel-softmax weights (`weights` in the outputs), inference runs only the
  chosen expert (`infer`). An expert that needs an absent modality is never chosen.

Every family except `'dynmm'` returns the per-modality logits `[M, B, K]` that its fused
prediction averages; a modality absent from the mask is zeroed at the input, never a source of
exchange or attention, and out of every mean. A sample with no present modality is an error of
the caller's mask (`lqmm.missing` masks keep one modality per sample); its outputs are the
network's output on all-zero inputs.

Which family keeps its accuracy when one modality per sample is noisy or missing is measured
in `experiments/feature_fusion`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from lqmm import checks
from lqmm.nn import conv as conv_lib
from lqmm.nn import exchange
from lqmm.nn import mbt as mbt_lib
from lqmm.nn import routing
from lqmm.nn.evidential import torch_linear

__all__ = ['FUSIONS', 'FeatureFusionNet', 'FusionOutputs', 'TokenStem']

FUSIONS = ('late', 'gated', 'cen', 'tokenfusion', 'mbt', 'dynmm')


class FusionOutputs(NamedTuple):
  """What `FeatureFusionNet` returns.

  Attributes:
    logits: `[B, K]` fused logits.
    modality_logits: `[M, B, K]` per-modality logits (`'dynmm'`: `[E, B, K]`, each expert's).
    penalty: scalar regulariser of the family (CEN's and TokenFusion's sparsity; 0 else).
    weights: `'gated'`: the gate weights `[M, B]`; `'dynmm'`: the experts' mixing weights
      `[B, E]`; else None.
  """
  logits: jax.Array
  modality_logits: jax.Array
  penalty: jax.Array
  weights: jax.Array | None = None


class TokenStem(nnx.Module):
  """One modality's input to a `[B, g, g, C]` token grid (see the module docstring).

  Args:
    shape: the per-sample input shape, `(H, W)` or `(d,)`.
    grid: g.
    channels: conv widths (2-D inputs); the last is the token width C for every input.
    hidden: MLP hidden widths (vector inputs).
    rngs: NNX random streams.
  """

  def __init__(self, shape: Sequence[int], *, grid: int, channels: Sequence[int],
               hidden: Sequence[int], rngs: nnx.Rngs):
    shape = tuple(int(s) for s in shape)
    self.shape, self.grid, self.width = shape, grid, int(channels[-1])
    if len(shape) == 2:
      widths = (1, *channels)
      self.convs = nnx.List([nnx.Conv(a, b, kernel_size=(3, 3), padding='SAME', rngs=rngs)
                             for a, b in zip(widths, widths[1:])])
      height, width = shape
      for _ in channels:
        height, width = height // 2, width // 2
      if min(height, width) < grid:
        raise ValueError(f'an input of shape {shape} pools to {height} x {width} after '
                         f'{len(channels)} conv layers, smaller than grid {grid}.')
    elif len(shape) == 1:
      sizes = (shape[0], *hidden, grid * grid * self.width)
      self.layers = nnx.List([torch_linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
    else:
      raise ValueError(f'a stem takes [H, W] or [d] inputs; got input shape {shape}.')

  def __call__(self, x: jax.Array) -> jax.Array:
    if len(self.shape) == 2:
      h = x[..., None]
      for layer in self.convs:
        h = conv_lib.max_pool2d(jax.nn.relu(conv_lib.conv2d(h, layer.kernel[...],
                                                            layer.bias[...])))
      return conv_lib.adaptive_avg_pool2d(h, (self.grid, self.grid))
    h = x
    for layer in self.layers:
      h = jax.nn.relu(layer(h))
    return h.reshape(x.shape[0], self.grid, self.grid, self.width)


def _flat(grid: jax.Array) -> jax.Array:
  return grid.reshape(grid.shape[0], -1)


def _masked_mean(values: jax.Array, present: jax.Array) -> jax.Array:
  """Mean of `values [M, B, ...]` over the present modalities (`present [M, B]`)."""
  weights = present.astype(values.dtype).reshape(present.shape + (1,) * (values.ndim - 2))
  total = jnp.sum(jnp.where(weights > 0, values, 0), axis=0)
  return total / jnp.maximum(jnp.sum(weights, axis=0), 1)


class _Expert(nnx.Module):
  """DynMM expert: late fusion of the modalities `names` (their stems and heads, shared with
  the other experts). Input `{'inputs': {m: [B, ...]}, 'present': bool [B, M]}`."""

  def __init__(self, names: Sequence[str], order: Sequence[str], stems, heads):
    self.names = tuple(names)
    self.index = tuple(order.index(name) for name in names)
    self.stems = nnx.Dict({name: stems[name] for name in names})
    self.heads = nnx.Dict({name: heads[name] for name in names})

  def __call__(self, batch) -> jax.Array:
    logits = jnp.stack([self.heads[name](_flat(self.stems[name](batch['inputs'][name])))
                        for name in self.names])
    present = jnp.stack([batch['present'][:, i] for i in self.index])
    return _masked_mean(logits, present)


class _Gate(nnx.Module):
  """DynMM's gate: a ReLU MLP on the down-sampled raw inputs and the presence bits; experts
  that need an absent modality get logit -1e9."""

  def __init__(self, shapes: Mapping[str, tuple], order: Sequence[str], needs, *, hidden: int,
               pool: int, rngs: nnx.Rngs):
    self.order, self.pool = tuple(order), pool
    size = len(order)
    for name in order:
      shape = shapes[name]
      size += (shape[0] // pool) * (shape[1] // pool) if len(shape) == 2 else shape[0]
    self.needs = tuple(tuple(row) for row in needs)      # [E][M] bool: expert e reads m
    self.hidden = torch_linear(size, hidden, rngs=rngs)
    self.out = torch_linear(hidden, len(needs), rngs=rngs)

  def __call__(self, batch) -> jax.Array:
    parts = []
    for name in self.order:
      x = batch['inputs'][name]
      if x.ndim == 3:
        p = self.pool
        rows, cols = x.shape[1] // p, x.shape[2] // p
        x = x[:, :rows * p, :cols * p].reshape(x.shape[0], rows, p, cols, p).mean(axis=(2, 4))
      parts.append(x.reshape(x.shape[0], -1))
    present = batch['present']
    parts.append(present.astype(parts[0].dtype))
    logits = self.out(jax.nn.relu(self.hidden(jnp.concatenate(parts, axis=-1))))
    needs = jnp.asarray(self.needs)                                   # [E, M]
    eligible = jnp.all(present[:, None, :] | ~needs[None], axis=-1)   # [B, E]
    return jnp.where(eligible, logits, jnp.asarray(-1e9, logits.dtype))


class FeatureFusionNet(nnx.Module):
  """Shared stems and one fusion family (see the module docstring).

  Args:
    shapes: `{modality: per-sample input shape}`, `(H, W)` or `(d,)`.
    order: the modalities' order (at least 2).
    num_classes: K.
    fusion: one of `FUSIONS`.
    grid: g, the token grid side.
    channels: stem conv widths; the last is the token width C.
    hidden: stem MLP hidden widths (vector inputs).
    num_heads: attention heads (`'tokenfusion'`, `'mbt'`; must divide C).
    cen_weight: CEN's sparsity weight (2e-4 in CEN).
    token_weight: TokenFusion's score-sparsity weight (1e-4 in TokenFusion).
    mbt_layers: MBT's layers.
    mbt_fusion_layer: MBT's first fusion layer.
    mbt_bottlenecks: MBT's bottleneck tokens.
    gate_hidden: DynMM gate's hidden width.
    gate_pool: DynMM gate's average-pool window on 2-D inputs.
    expert_costs: DynMM's per-sample expert costs (None: each expert's FLOPs on one row,
      from XLA's cost analysis of its compiled forward pass).
    rngs: NNX random streams.

  Raises:
    KeyError: an unknown `fusion` or a modality of `order` missing from `shapes`.
    ValueError: fewer than 2 modalities, an input shape the stems do not take, C not divisible
      by `num_heads`.
  """

  def __init__(self, shapes: Mapping[str, Sequence[int]], order: Sequence[str],
               num_classes: int, *, fusion: str = 'late', grid: int = 4,
               channels: Sequence[int] = (16, 32), hidden: Sequence[int] = (128,),
               num_heads: int = 2, cen_weight: float = 2e-4, token_weight: float = 1e-4,
               mbt_layers: int = 2, mbt_fusion_layer: int = 1, mbt_bottlenecks: int = 4,
               gate_hidden: int = 32, gate_pool: int = 4,
               expert_costs: Sequence[float] | None = None, rngs: nnx.Rngs):
    checks.lookup({name: name for name in FUSIONS}, fusion, 'fusion')
    checks.check_order(order, shapes, 'shapes')
    if len(order) < 2:
      raise ValueError(f'order must name at least 2 modalities; got {tuple(order)}.')
    checks.check_integer(num_classes, 'num_classes', minimum=2)
    checks.check_integer(grid, 'grid', minimum=1)
    checks.check_integer(num_heads, 'num_heads', minimum=1)
    for weight, name in ((cen_weight, 'cen_weight'), (token_weight, 'token_weight')):
      checks.check_scalar(weight, name, low=0)
    if not channels:
      raise ValueError('channels must name at least one width (the last is the token width).')
    width = int(channels[-1])
    if fusion in ('tokenfusion', 'mbt') and width % num_heads:
      raise ValueError(f'num_heads {num_heads} must divide the token width channels[-1] = '
                       f'{width}.')
    self.order, self.fusion, self.grid, self.width = tuple(order), fusion, grid, width
    self.cen_weight, self.token_weight = float(cen_weight), float(token_weight)
    self.shapes = {name: tuple(int(s) for s in shapes[name]) for name in order}
    num, features = len(order), grid * grid * width
    self.stems = nnx.Dict({name: TokenStem(self.shapes[name], grid=grid, channels=channels,
                                           hidden=hidden, rngs=rngs) for name in order})
    if fusion == 'gated':
      self.gates = nnx.Dict({name: torch_linear(features, 1, rngs=rngs) for name in order})
      self.head = torch_linear(features, num_classes, rngs=rngs)
    elif fusion == 'mbt':
      self.mbt = mbt_lib.MBT({name: (grid, grid, width) for name in order}, order, num_classes,
                             patch_size=(1, 1, 1), hidden_size=width, num_heads=num_heads,
                             mlp_dim=2 * width, num_layers=mbt_layers,
                             fusion_layer=mbt_fusion_layer, n_bottlenecks=mbt_bottlenecks,
                             primary=order[0], rngs=rngs)
    else:
      self.heads = nnx.Dict({name: torch_linear(features, num_classes, rngs=rngs)
                             for name in order})
    if fusion == 'cen':
      self.block = exchange.ExchangeBottleneck(width, max(width // 2, 1), num_modalities=num,
                                               rngs=rngs)
    elif fusion == 'tokenfusion':
      self.scorer = exchange.TokenScorer(width, num, rngs=rngs)
      self.block = exchange.TokenFusionBlock(width, num_modalities=num, num_heads=num_heads,
                                             rngs=rngs)
    elif fusion == 'dynmm':
      subsets = [(name,) for name in order] + [tuple(order)]
      experts = [_Expert(names, self.order, self.stems, self.heads) for names in subsets]
      needs = [[name in names for name in order] for names in subsets[:-1]] + [[False] * num]
      gate = _Gate(self.shapes, order, needs, hidden=gate_hidden, pool=gate_pool, rngs=rngs)
      if expert_costs is None:
        expert_costs = [_abstract_flops(expert, self._batch_spec(1)) for expert in experts]
      self.dynamic = routing.DynamicFusion(gate, experts, costs=expert_costs)

  @property
  def costs(self) -> tuple[float, ...]:
    """DynMM's per-sample expert costs (FLOPs unless given), in expert order."""
    return self.dynamic.costs

  def _batch_spec(self, rows: int):
    return {'inputs': {name: jax.ShapeDtypeStruct((rows,) + self.shapes[name], jnp.float32)
                       for name in self.order},
            'present': jax.ShapeDtypeStruct((rows, len(self.order)), jnp.bool_)}

  def _present(self, inputs, mask) -> jax.Array:
    batch = checks.check_modality_inputs(inputs, self.order, self.shapes)
    return exchange.presence(mask, len(self.order), batch)

  def routed_batch(self, inputs: Mapping[str, jax.Array], mask: jax.Array | None = None):
    """`'dynmm'`'s batch pytree `{'inputs': zeroed-where-absent inputs, 'present': [B, M]}`
    (rows leading, what the gate, the experts and `lqmm.nn.routing.dispatch` take)."""
    present = self._present(inputs, mask)
    return {'inputs': self._zeroed(inputs, present), 'present': present.T}

  def _zeroed(self, inputs, present):
    out = {}
    for index, name in enumerate(self.order):
      x = jnp.asarray(inputs[name])
      keep = present[index].reshape((-1,) + (1,) * (x.ndim - 1))
      out[name] = jnp.where(keep, x, jnp.zeros((), x.dtype))
    return out

  def __call__(self, inputs: Mapping[str, jax.Array], mask: jax.Array | None = None, *,
               key: jax.Array | None = None, temperature=1.0) -> FusionOutputs:
    """Outputs for `inputs {m: [B, ...]}` and presence `mask` bool `[M, B]` (None: all).

    `'dynmm'` with a `key` mixes every expert by Gumbel-softmax weights at `temperature`
    (training); without one it takes each row's argmax expert, computed by running every
    expert (`infer` runs only the chosen ones).
    """
    present = self._present(inputs, mask)
    zero = jnp.zeros((), jnp.float32)
    if self.fusion == 'dynmm':
      batch = {'inputs': self._zeroed(inputs, present), 'present': present.T}
      experts = jnp.stack([expert(batch) for expert in self.dynamic.experts])  # [E, B, K]
      gate = self.dynamic.gate(batch)
      if key is None:
        weights = jax.nn.one_hot(jnp.argmax(gate, axis=-1), gate.shape[-1], dtype=gate.dtype)
      else:
        weights = routing.gumbel_softmax(gate, key=key, temperature=temperature)
      return FusionOutputs(jnp.einsum('be,ebk->bk', weights, experts), experts, zero, weights)
    inputs = self._zeroed(inputs, present)
    if self.fusion == 'mbt':
      tokens = {name: self.stems[name](inputs[name]) for name in self.order}
      logits = self.mbt.modality_logits(tokens, present)
      return FusionOutputs(_masked_mean(logits, present), logits, zero)
    grids = jnp.stack([self.stems[name](inputs[name]) for name in self.order])  # [M,B,g,g,C]
    penalty = zero
    if self.fusion == 'cen':
      grids = self.block(grids, present)
      penalty = exchange.channel_sparsity(self.block.scales, weight=self.cen_weight)
    elif self.fusion == 'tokenfusion':
      num, batch = grids.shape[:2]
      tokens = grids.reshape(num, batch, self.grid * self.grid, self.width)
      scores = self.scorer(tokens)
      tokens = self.block(tokens, scores, present, height=self.grid, width=self.grid)
      grids = tokens.reshape(grids.shape)
      penalty = exchange.score_sparsity(scores, weight=self.token_weight)
    pooled = grids.reshape(grids.shape[:2] + (-1,))                          # [M, B, g g C]
    if self.fusion == 'gated':
      scores = jnp.stack([jax.nn.sigmoid(self.gates[name](pooled[i]))[:, 0]
                          for i, name in enumerate(self.order)])             # [M, B]
      scores = jnp.where(present, scores, 0)
      weights = scores / jnp.maximum(jnp.sum(scores, axis=0, keepdims=True), 1e-12)
      fused = jnp.einsum('mb,mbc->bc', weights, pooled)
      return FusionOutputs(self.head(fused), self.head(pooled), zero, weights)
    logits = jnp.stack([self.heads[name](pooled[i]) for i, name in enumerate(self.order)])
    return FusionOutputs(_masked_mean(logits, present), logits, penalty)

  def infer(self, inputs: Mapping[str, jax.Array], mask: jax.Array | None = None, *,
            bucket: int | None = None) -> tuple[jax.Array, routing.DispatchStats, jax.Array]:
    """`'dynmm'` inference that runs only each row's chosen expert: `(logits [B, K], stats,
    choice [B])` (`lqmm.nn.routing.dispatch`; `stats.flops` counts what ran)."""
    if self.fusion != 'dynmm':
      raise ValueError(f"infer routes rows to experts: only fusion='dynmm' has them; this "
                       f'network is {self.fusion!r}.')
    return self.dynamic.infer(self.routed_batch(inputs, mask), bucket=bucket)


def _abstract_flops(module: nnx.Module, batch) -> float:
  """XLA's FLOP count of `module(batch)` from shapes alone (usable while the module is being
  built abstractly, e.g. under `nnx.eval_shape`)."""
  graphdef, state = nnx.split(module)
  spec = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(jnp.shape(leaf), leaf.dtype), state)
  return routing.flops(lambda s, b: nnx.merge(graphdef, s)(b), spec, batch)
