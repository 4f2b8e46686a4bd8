"""Multimodal bottleneck transformer (MBT) for M modalities, with scenic's parameter names.

Each modality is cut into patches (2-D for images and spectrograms `[B, H, W, C]`, 3-D tubelets
for video `[B, T, H, W, C]`), gets a class token and a learned positional embedding, and runs
through its own pre-LayerNorm ViT blocks. Up to `fusion_layer` the modalities are separate;
from there every modality's block runs on `[own tokens, bottleneck tokens]` and the shared
bottleneck becomes the mean of the modalities' updated copies, so information crosses between
modalities only through the few bottleneck tokens. The logits are the mean over modalities of
a shared linear head on each modality's class token.

Parameter names and shapes follow scenic's MBT (`scenic/projects/mbt/model.py`, commit
4a38d47) with `classifier='token'`, so a scenic checkpoint's `params` tree loads with
`load_scenic_params` and no renaming: the modality named `primary` ('rgb') owns the unsuffixed
names (`embedding`, `cls`, `Transformer/posembed_input`, `Transformer/encoderblock_{l}`), every
other modality m the suffixed ones (`embedding_m`, `clsm`, `posembed_input_m`,
`encoderblock_{l}_m`); `bottleneck` holds `n_bottlenecks + 1` tokens, as scenic's. Parity of
the forward pass with scenic's own model: `tests/reference/PROVENANCE_mbt.md`.

Missing modalities (`mask: bool [M, B]`): an absent modality's bottleneck copy is left out of
the mean (per sample; a sample with no present modality keeps its bottleneck unchanged) and its
logits are left out of the mean over modalities (a sample with none gets zero logits). An
absent modality is thus never attended to by the others.

Differences from scenic: no stochastic depth (scenic's per-example layer drop, which it does
not rescale) and no `pre_logits` layer; dropout acts on the attention output and the MLP
(`dropout_rate`), as scenic's `dropout_rate`.

Reference:
  Nagrani, Yang, Arnab, Jansen, Schmid, Sun, "Attention Bottlenecks for Multimodal Fusion",
  NeurIPS 2021.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lqmm import checks
from lqmm.nn import exchange

__all__ = ['MBT', 'load_scenic_params']


def _suffix(name: str, primary: str) -> str:
  return '' if name == primary else f'_{name}'


class PositionEmbedding(nnx.Module):
  """A learned `(1, N, D)` embedding added to the tokens (scenic's `pos_embedding`)."""

  def __init__(self, num_tokens: int, dim: int, *, rngs: nnx.Rngs):
    self.pos_embedding = nnx.Param(
        nnx.initializers.normal(0.02)(rngs.params(), (1, num_tokens, dim), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    return x + self.pos_embedding[...].astype(x.dtype)


class MlpBlock(nnx.Module):
  """`Dense_1(gelu_tanh(Dense_0(x)))` with dropout after each (scenic's `MlpBlock`)."""

  def __init__(self, dim: int, mlp_dim: int, *, dropout_rate: float, rngs: nnx.Rngs):
    init = nnx.initializers.xavier_uniform()
    bias = nnx.initializers.normal(1e-6)
    self.Dense_0 = nnx.Linear(dim, mlp_dim, kernel_init=init, bias_init=bias, rngs=rngs)
    self.Dense_1 = nnx.Linear(mlp_dim, dim, kernel_init=init, bias_init=bias, rngs=rngs)
    # No random state kept when there is no dropout (rate 0 never draws).
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs if dropout_rate > 0 else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = self.dropout(jax.nn.gelu(self.Dense_0(x), approximate=True))
    return self.dropout(self.Dense_1(h))


class EncoderBlock(nnx.Module):
  """A pre-LayerNorm ViT block (scenic's `Encoder1DBlock` names; LayerNorm epsilon 1e-6)."""

  def __init__(self, dim: int, *, num_heads: int, mlp_dim: int, dropout_rate: float,
               attention_dropout_rate: float, rngs: nnx.Rngs):
    self.LayerNorm_0 = nnx.LayerNorm(dim, epsilon=1e-6, rngs=rngs)
    self.MultiHeadDotProductAttention_0 = nnx.MultiHeadAttention(
        num_heads, dim, qkv_features=dim, out_features=dim, decode=False,
        dropout_rate=attention_dropout_rate, broadcast_dropout=False,
        kernel_init=nnx.initializers.xavier_uniform(), rngs=rngs)
    self.LayerNorm_1 = nnx.LayerNorm(dim, epsilon=1e-6, rngs=rngs)
    self.MlpBlock_0 = MlpBlock(dim, mlp_dim, dropout_rate=dropout_rate, rngs=rngs)
    # No random state kept when there is no dropout (rate 0 never draws).
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs if dropout_rate > 0 else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.LayerNorm_0(x)
    x = x + self.dropout(self.MultiHeadDotProductAttention_0(y, y, y))
    return x + self.MlpBlock_0(self.LayerNorm_1(x))


class PatchEmbedding(nnx.Module):
  """Non-overlapping patches (2-D) or tubelets (3-D) to tokens, one matmul: a stride-`window`
  'VALID' convolution with scenic's `embedding` parameters (`kernel [*window, C, D]`, `bias`).
  """

  def __init__(self, window: Sequence[int], channels: int, dim: int, *, rngs: nnx.Rngs):
    self.window = tuple(int(w) for w in window)
    self.kernel = nnx.Param(nnx.initializers.lecun_normal()(
        rngs.params(), self.window + (channels, dim), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((dim,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    """`[B, *spatial, C]` -> `[B, N, D]` (row-major over the patch grid)."""
    batch, *spatial, channels = x.shape
    grid = [size // w for size, w in zip(spatial, self.window)]
    x = x[(slice(None),) + tuple(slice(0, g * w) for g, w in zip(grid, self.window))]
    shape = [batch]
    for g, w in zip(grid, self.window):
      shape += [g, w]
    x = x.reshape(shape + [channels])
    rank = len(grid)
    order = [0] + [1 + 2 * i for i in range(rank)] + [2 + 2 * i for i in range(rank)] + [
        1 + 2 * rank]
    size = 1
    for w in self.window:
      size *= w
    patches = x.transpose(order).reshape(batch, -1, size * channels)
    kernel = self.kernel[...].reshape(size * channels, -1).astype(x.dtype)
    return patches @ kernel + self.bias[...].astype(x.dtype).reshape(1, 1, -1)


class _Transformer(nnx.Module):
  """The container scenic calls `Transformer`: positional embeddings, blocks, final norm."""


class MBT(nnx.Module):
  """Attention bottlenecks for M modalities (scenic's MBT with `classifier='token'`).

  Args:
    shapes: `{modality: per-sample input shape}`: `(H, W, C)` for 2-D inputs (scenic's
      spectrogram `(time, mel, 3)`), `(T, H, W, C)` for video.
    order: the modalities' order (scenic's `modality_fusion`).
    num_classes: K.
    patch_size: scenic's `patches.size = (fh, fw, ft)`: 2-D inputs use `(fh, fw)`, video
      `(ft, fh, fw)` tubelets.
    hidden_size: D.
    num_heads: attention heads.
    mlp_dim: the blocks' MLP width.
    num_layers: L.
    fusion_layer: the first layer with bottleneck fusion (L = no fusion before the head).
    n_bottlenecks: bottleneck tokens (one more is held, as scenic's).
    dropout_rate: dropout on the attention output and in the MLP.
    attention_dropout_rate: dropout on the attention weights.
    primary: the modality that owns scenic's unsuffixed parameter names.
    rngs: NNX random streams.
  """

  def __init__(self, shapes: Mapping[str, Sequence[int]], order: Sequence[str],
               num_classes: int, *, patch_size: Sequence[int] = (16, 16, 2),
               hidden_size: int = 768, num_heads: int = 12, mlp_dim: int = 3072,
               num_layers: int = 12, fusion_layer: int = 8, n_bottlenecks: int = 4,
               dropout_rate: float = 0.0, attention_dropout_rate: float = 0.0,
               primary: str = 'rgb', rngs: nnx.Rngs):
    checks.check_order(order, shapes, 'shapes')
    if len(order) < 2:
      raise ValueError(f'order must name at least 2 modalities; got {tuple(order)}.')
    for value, name in ((num_classes, 'num_classes'), (hidden_size, 'hidden_size'),
                        (num_heads, 'num_heads'), (mlp_dim, 'mlp_dim'),
                        (num_layers, 'num_layers'), (n_bottlenecks, 'n_bottlenecks')):
      checks.check_integer(value, name, minimum=1)
    checks.check_integer(fusion_layer, 'fusion_layer', minimum=0)
    if fusion_layer > num_layers:
      raise ValueError(f'fusion_layer must lie in [0, num_layers = {num_layers}]; got '
                       f'{fusion_layer}.')
    if hidden_size % num_heads:
      raise ValueError(f'num_heads {num_heads} must divide hidden_size {hidden_size}.')
    if len(patch_size) != 3:
      raise ValueError(f'patch_size must be scenic\'s (fh, fw, ft); got {tuple(patch_size)}.')
    for rate, name in ((dropout_rate, 'dropout_rate'),
                       (attention_dropout_rate, 'attention_dropout_rate')):
      checks.check_scalar(rate, name, low=0, high=1, high_open=True)
    fh, fw, ft = (int(p) for p in patch_size)
    self.order, self.primary = tuple(order), primary
    self.num_layers, self.fusion_layer = num_layers, fusion_layer
    self.shapes = {name: tuple(int(s) for s in shapes[name]) for name in order}
    self.Transformer = _Transformer()
    tokens = {}
    for name in order:
      shape, suffix = self.shapes[name], _suffix(name, primary)
      if len(shape) == 3:
        window = (fh, fw)
      elif len(shape) == 4:
        window = (ft, fh, fw)
      else:
        raise ValueError(f'shapes[{name!r}] must be (H, W, C) or (T, H, W, C); got {shape}.')
      grid = [size // w for size, w in zip(shape[:-1], window)]
      if min(grid) < 1:
        raise ValueError(f'shapes[{name!r}] = {shape} is smaller than its patch {window}.')
      tokens[name] = 1
      for g in grid:
        tokens[name] *= g
      setattr(self, 'embedding' + suffix, PatchEmbedding(window, shape[-1], hidden_size,
                                                         rngs=rngs))
      setattr(self, 'cls' + ('' if name == primary else name),
              nnx.Param(jnp.zeros((1, 1, hidden_size), jnp.float32)))
      setattr(self.Transformer, 'posembed_input' + suffix,
              PositionEmbedding(tokens[name] + 1, hidden_size, rngs=rngs))
      for layer in range(num_layers):
        setattr(self.Transformer, f'encoderblock_{layer}{suffix}', EncoderBlock(
            hidden_size, num_heads=num_heads, mlp_dim=mlp_dim, dropout_rate=dropout_rate,
            attention_dropout_rate=attention_dropout_rate, rngs=rngs))
    self.num_tokens = tokens
    self.Transformer.encoder_norm = nnx.LayerNorm(hidden_size, epsilon=1e-6, rngs=rngs)
    self.bottleneck = nnx.Param(nnx.initializers.normal(0.02)(
        rngs.params(), (1, n_bottlenecks + 1, hidden_size), jnp.float32))
    self.output_projection = nnx.Linear(hidden_size, num_classes,
                                        kernel_init=nnx.initializers.zeros, rngs=rngs)

  def _tokens(self, name: str, x: jax.Array) -> jax.Array:
    suffix = _suffix(name, self.primary)
    tokens = getattr(self, 'embedding' + suffix)(x)
    cls = getattr(self, 'cls' + ('' if name == self.primary else name))[...].astype(x.dtype)
    tokens = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, cls.shape[-1])), tokens],
                             axis=1)
    return getattr(self.Transformer, 'posembed_input' + suffix)(tokens)

  def encode(self, inputs: Mapping[str, jax.Array], mask: jax.Array | None = None
             ) -> list[jax.Array]:
    """Every modality's encoded tokens `[B, 1 + N_m, D]` (class token first, after
    `encoder_norm`)."""
    batch = checks.check_modality_inputs(inputs, self.order, self.shapes)
    num = len(self.order)
    present = exchange.presence(mask, num, batch)
    x = [self._tokens(name, jnp.asarray(inputs[name])) for name in self.order]
    dtype = x[0].dtype
    bottleneck = jnp.broadcast_to(self.bottleneck[...].astype(dtype),
                                  (batch,) + self.bottleneck.shape[1:])
    weights = present.astype(dtype).reshape(num, batch, 1, 1)
    count = jnp.sum(weights, axis=0)
    for layer in range(self.num_layers):
      blocks = [getattr(self.Transformer, f'encoderblock_{layer}{_suffix(name, self.primary)}')
                for name in self.order]
      if layer < self.fusion_layer:
        x = [block(tokens) for block, tokens in zip(blocks, x)]
        continue
      updates = []
      for index, (block, tokens) in enumerate(zip(blocks, x)):
        out = block(jnp.concatenate([tokens, bottleneck], axis=1))
        x[index] = out[:, :tokens.shape[1]]
        updates.append(out[:, tokens.shape[1]:])
      total = jnp.sum(jnp.where(weights > 0, jnp.stack(updates), 0), axis=0)
      bottleneck = jnp.where(count > 0, total / jnp.maximum(count, 1), bottleneck)
    return [self.Transformer.encoder_norm(tokens) for tokens in x]

  def modality_logits(self, inputs: Mapping[str, jax.Array], mask: jax.Array | None = None
                      ) -> jax.Array:
    """`[M, B, K]`: the shared head on every modality's class token (scenic's training
    outputs, each trained against the labels)."""
    return jnp.stack([self.output_projection(tokens[:, 0]) for tokens in
                      self.encode(inputs, mask)])

  def __call__(self, inputs: Mapping[str, jax.Array], mask: jax.Array | None = None
               ) -> jax.Array:
    """Logits `[B, K]`: the mean of `modality_logits` over the present modalities."""
    logits = self.modality_logits(inputs, mask)
    num, batch = logits.shape[:2]
    present = (jnp.ones((num, batch), jnp.bool_) if mask is None else jnp.asarray(mask))
    weights = present.astype(logits.dtype)[..., None]
    total = jnp.sum(jnp.where(weights > 0, logits, 0), axis=0)
    return total / jnp.maximum(jnp.sum(weights, axis=0), 1)


def _flatten(tree, prefix=()):
  if isinstance(tree, Mapping):
    out = {}
    for key, value in tree.items():
      out.update(_flatten(value, prefix + (str(key),)))
    return out
  return {prefix: tree}


def load_scenic_params(model: MBT, params: Mapping) -> None:
  """Loads a scenic MBT `params` tree (e.g. a checkpoint's `optimizer.target`) into `model`.

  The names are scenic's, so no renaming happens: every scenic path must exist in the model
  with the same shape and every model parameter must be given; otherwise a ValueError lists
  the differences (nothing is loaded then).
  """
  state = nnx.state(model, nnx.Param)
  ours = {}
  for path, leaf in nnx.to_flat_state(state):
    ours[tuple(str(p) for p in path)] = (path, leaf)
  given = _flatten(params)
  missing = sorted('/'.join(k) for k in ours if k not in given)
  extra = sorted('/'.join(k) for k in given if k not in ours)
  shapes = sorted(f'{"/".join(k)}: {tuple(jnp.shape(v))} for {tuple(ours[k][1].shape)}'
                  for k, v in given.items() if k in ours and
                  tuple(jnp.shape(v)) != tuple(ours[k][1].shape))
  if missing or extra or shapes:
    raise ValueError('params do not match this MBT: '
                     + '; '.join(part for part in (
                         f'missing {missing}' if missing else '',
                         f'unknown {extra}' if extra else '',
                         f'shapes differ {shapes}' if shapes else '') if part))
  for name, (_, leaf) in ours.items():
    leaf.set_value(jnp.asarray(given[name]))
  nnx.update(model, state)
