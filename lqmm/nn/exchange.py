"""Feature exchange between modality streams: CEN's channel exchange, TokenFusion's token exchange.

Several modality streams of the same layout (tokens at the same positions, channels-last) run
through shared layers with private normalisations, and a stream's uninformative features are
replaced by the other streams' features at the same positions.

- `channel_exchange` (pure `jax.numpy`): each stream's channels whose batch-norm scale is
  below a threshold in magnitude are replaced by the mean of the other present streams' same
  channel (CEN). `channel_sparsity` is CEN's L1 penalty on disjoint parts of the streams'
  scales, which decides which channels each stream gives up; `SharedConvNorm` is a convolution
  shared by the streams followed by private batch norms, and `ExchangeBottleneck` CEN's ResNet
  bottleneck with the exchange after its second norm.
- `token_exchange` (pure `jax.numpy`): each stream's tokens whose score falls below a
  threshold are replaced by the mean of the other present streams' tokens at that position.
- `TokenScorer`: the per-modality score predictor (LayerNorm and a four-layer GELU MLP to two
  logits; the score is the first class's probability).
- `TokenFusionBlock`: a SegFormer (Mix Transformer) block whose attention output is scaled by
  the scores and exchanged before the residual add; attention, MLP and the spatial-reduction
  convolution are shared by the streams, the LayerNorms are private.
- `score_sparsity`: the L1 penalty on the scores that pushes streams to exchange.

Multi-stream layout: the modality axis first, `tokens: [M, B, N, C]`, `scores: [M, B, N]`, and
the presence mask `mask: bool [M, B]` (True = present). A missing modality is never the source
of a replacement; its own output is computed (static shapes) but carries no information, and a
stream with no other present stream keeps its own tokens.

The original codes (CEN, commit 0088d87; TokenFusion, commit 3834ccf) handle exactly two
streams (a third is silently dropped); with M = 2 and both present the functions here equal
them (`tests/reference/PROVENANCE_cen.md`, `PROVENANCE_tokenfusion.md`). For M > 2 the mean of
the other present streams is the rule CEN's paper states; neither code has it.

References:
  Wang, Huang, Sun, Xu, Rong, Huang, "Deep Multimodal Fusion by Channel Exchanging",
  NeurIPS 2020.
  Wang, Chen, Huang, Sun, Huang, Wang, "Multimodal Token Fusion for Vision Transformers",
  CVPR 2022.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lqmm import checks
from lqmm.nn import conv as conv_lib
from lqmm.nn.norm import BatchNorm

__all__ = ['CHANNEL_THRESHOLD', 'ExchangeBottleneck', 'SharedConvNorm', 'TOKEN_THRESHOLD',
           'TokenFusionBlock', 'TokenScorer', 'channel_exchange', 'channel_sparsity',
           'channel_sparsity_mask', 'exchange_share', 'other_mean', 'presence', 'score_sparsity',
           'token_exchange']

#: CEN's threshold on the batch-norm scales (semantic segmentation; 0.01 for translation).
CHANNEL_THRESHOLD = 0.02
#: TokenFusion's threshold on the scores (hard-coded in its attention layer).
TOKEN_THRESHOLD = 0.02


def _check_streams(x, name: str, layout: str, rank: int) -> None:
  checks.check_rank_at_least(x, rank, name, layout)
  checks.check_floating(x, name)
  if jnp.shape(x)[0] < 2:
    raise ValueError(f'{name} must stack at least 2 modalities along axis 0 of {layout}; got '
                     f'shape {jnp.shape(x)}.')


def presence(mask, num_modalities: int, batch: int, name: str = 'mask') -> jax.Array:
  """The presence mask bool `[M, B]` (all present when `mask` is None), checked: a mask of
  another shape or dtype raises naming `name`."""
  if mask is None:
    return jnp.ones((num_modalities, batch), jnp.bool_)
  checks.check_mask(mask, (num_modalities, batch), name)
  return jnp.asarray(mask)


def other_mean(values: jax.Array, present: jax.Array) -> tuple[jax.Array, jax.Array]:
  """For every stream m, the mean over the other present streams of `values [M, B, ..., C]`
  and how many there are (`[M, B, ..., 1]`); `present` is bool `[M, B]` (or already
  broadcastable, `[M, B, 1, ..., 1]`). With one other stream the mean is its values exactly
  (selected, not summed with zeros); with none it is 0 and the count 0. The replacement rule
  of channel exchange, token exchange and CSSA's channel switching."""
  num = values.shape[0]
  present = present.reshape(present.shape + (1,) * (values.ndim - present.ndim))
  others = jnp.logical_and(~jnp.eye(num, dtype=jnp.bool_).reshape(
      (num, num) + (1,) * (values.ndim - 1)), present[None])        # [M, M, B, 1...]
  count = jnp.sum(others, axis=1).astype(values.dtype)               # [M, B, 1...]
  total = jnp.sum(jnp.where(others, values[None], 0), axis=1)
  return total / jnp.maximum(count, 1), count


def channel_exchange(features: jax.Array, scales: jax.Array, mask: jax.Array | None = None, *,
                     threshold: float = CHANNEL_THRESHOLD) -> jax.Array:
  """Replaces every stream's channels of small batch-norm scale by the other streams' (CEN).

  `out[m, ..., c] = features[m, ..., c]` where `|scales[m, c]| >= threshold`, else the mean of
  `features[j, ..., c]` over the other present streams j (for two streams, the other one's
  channel; both below the threshold swap, as the original). `features` are the batch norms'
  outputs (after the affine), so a replaced channel is the other stream's `gamma x + beta`. A
  stream keeps its channels where no other stream is present; a NaN scale gives a NaN channel.
  The selection passes no gradient to the scales (only `channel_sparsity` moves them).

  Args:
    features: channels-last `[M, B, ..., C]`, M >= 2.
    scales: the streams' batch-norm scales `[M, C]`.
    mask: optional bool `[M, B]`, True = present; absent streams are never a source.
    threshold: keep where `|scale| >= threshold` (0.02 in CEN's segmentation).

  Returns:
    `[M, B, ..., C]`, the exchanged features.

  Example:
    >>> import jax.numpy as jnp
    >>> features = jnp.array([[[1.0, 2.0]], [[10.0, 20.0]]])      # [M=2, B=1, C=2]
    >>> scales = jnp.array([[1.0, 0.001], [0.5, 0.7]])
    >>> channel_exchange(features, scales)[:, 0]
    Array([[ 1., 20.],
           [10., 20.]], dtype=float32)
  """
  _check_streams(features, 'features', '[M, B, ..., C]', 3)
  num, channels = jnp.shape(features)[0], jnp.shape(features)[-1]
  if tuple(jnp.shape(scales)) != (num, channels):
    raise ValueError(f'scales must be the streams\' batch-norm scales [M, C] = {(num, channels)};'
                     f' got shape {tuple(jnp.shape(scales))}.')
  checks.check_floating(scales, 'scales')
  checks.check_scalar(threshold, 'threshold', low=0)
  features, scales = jnp.asarray(features), jnp.asarray(scales)
  present = presence(mask, num, features.shape[1])
  replacement, count = other_mean(features, present)
  scales = scales.reshape((num,) + (1,) * (features.ndim - 2) + (channels,))
  replace = jnp.logical_and(jnp.abs(scales) < threshold, count > 0)
  out = jnp.where(replace, replacement, features)
  return jnp.where(jnp.isnan(scales), jnp.nan, out).astype(features.dtype)


def channel_sparsity_mask(num_modalities: int, channels: int, *, num_layers: int = 1,
                          faithful: bool = False) -> jax.Array:
  """Which batch-norm scales CEN's sparsity penalty acts on, bool `[L, M, C]`.

  Default: the channels are split into M contiguous parts, part m from `floor(m C / M)` to
  `floor((m + 1) C / M)`, and stream m is penalised on part m in every layer: disjoint parts, so
  every channel keeps one stream that does not give it up. For two streams these are CEN's
  halves (the first stream on `[0, C // 2)`, the second on `[C // 2, C)`).

  `faithful=True`: the original's selection for any M. It counts the (layer, stream) scale
  vectors in order, k = l M + m, and penalises the first half `[0, C // 2)` where k is even and
  the second half where k is odd; for odd M the halves alternate across layers (equal to the
  default for M = 2).
  """
  checks.check_integer(num_modalities, 'num_modalities', minimum=2)
  checks.check_integer(channels, 'channels', minimum=1)
  checks.check_integer(num_layers, 'num_layers', minimum=1)
  index = jnp.arange(channels)
  if faithful:
    k = jnp.arange(num_layers)[:, None] * num_modalities + jnp.arange(num_modalities)[None]
    first = (index < channels // 2)[None, None]
    return jnp.where((k % 2 == 0)[..., None], first, ~first)
  part = jnp.arange(num_modalities)
  low = (part * channels) // num_modalities
  high = ((part + 1) * channels) // num_modalities
  selected = (index[None] >= low[:, None]) & (index[None] < high[:, None])     # [M, C]
  return jnp.broadcast_to(selected[None], (num_layers, num_modalities, channels))


def channel_sparsity(scales, *, weight: float = 2e-4, faithful: bool = False) -> jax.Array:
  """CEN's L1 penalty on the batch-norm scales of disjoint channel parts of the streams.

  `weight * sum |gamma|` over the scales that `channel_sparsity_mask` selects: an unnormalised
  sum (CEN's default weight 2e-4; its training script adds the penalty once per output, i.e.
  M + 1 times). The gradient at a scale of exactly 0 is 0, as torch's `abs`.

  Args:
    scales: `[M, C]` for one layer or `[L, M, C]` for L layers of the same width (stack layers
      of different widths as separate calls and add them; with `faithful=True` the layer index
      counts, so pass every layer in the network's order).
    weight: lambda.
    faithful: the original's alternating halves (see `channel_sparsity_mask`).
  """
  checks.check_scalar(weight, 'weight', low=0)
  checks.check_floating(scales, 'scales')
  if jnp.ndim(scales) not in (2, 3):
    raise ValueError(f'scales must be [M, C] or [L, M, C]; got shape {jnp.shape(scales)}.')
  scales = jnp.asarray(scales)
  layers = scales[None] if scales.ndim == 2 else scales
  selected = channel_sparsity_mask(layers.shape[1], layers.shape[2], num_layers=layers.shape[0],
                                   faithful=faithful)
  magnitude = jax.lax.stop_gradient(jnp.sign(layers)) * layers
  return weight * jnp.sum(jnp.where(selected, magnitude, 0))


def token_exchange(tokens: jax.Array, scores: jax.Array, mask: jax.Array | None = None, *,
                   threshold: float = TOKEN_THRESHOLD) -> jax.Array:
  """Replaces every stream's low-score tokens by the other streams' tokens (TokenFusion).

  `out[m, b, n] = tokens[m, b, n]` where `scores[m, b, n] >= threshold`, else the mean of
  `tokens[j, b, n]` over the other present streams j. Only stream m's own score decides; with
  two streams whose scores are both below the threshold, their tokens swap (as the original).
  A stream keeps its tokens where no other stream is present. A NaN score gives a NaN token
  (the original writes 0; lqmm does not hide it).

  Args:
    tokens: `[M, B, N, C]` (any token axes between B and C), M >= 2.
    scores: `[M, B, N]`, the tokens' shape without C.
    mask: optional bool `[M, B]`, True = present; absent streams are never a source.
    threshold: keep where `score >= threshold` (0.02 in TokenFusion).

  Returns:
    `[M, B, N, C]`, the exchanged tokens.

  Example:
    >>> import jax.numpy as jnp
    >>> tokens = jnp.array([[[[1.0], [2.0]]], [[[10.0], [20.0]]]])   # [2, 1, 2, 1]
    >>> scores = jnp.array([[[0.9, 0.01]], [[0.01, 0.9]]])
    >>> token_exchange(tokens, scores)[:, 0, :, 0]
    Array([[ 1., 20.],
           [ 1., 20.]], dtype=float32)
  """
  _check_streams(tokens, 'tokens', '[M, B, N, C]', 3)
  if tuple(jnp.shape(scores)) != tuple(jnp.shape(tokens)[:-1]):
    raise ValueError(f'scores must have the shape of tokens without the channel axis, '
                     f'{tuple(jnp.shape(tokens)[:-1])}; got {tuple(jnp.shape(scores))}.')
  checks.check_floating(scores, 'scores')
  checks.check_scalar(threshold, 'threshold', low=0, high=1)
  tokens, scores = jnp.asarray(tokens), jnp.asarray(scores)
  present = presence(mask, tokens.shape[0], tokens.shape[1])
  replacement, count = other_mean(tokens, present)
  replace = jnp.logical_and(scores[..., None] < threshold, count > 0)
  out = jnp.where(replace, replacement, tokens)
  return jnp.where(jnp.isnan(scores)[..., None], jnp.nan, out).astype(tokens.dtype)


def score_sparsity(scores, *, weight: float = 1e-4) -> jax.Array:
  """`weight * sum |s|` over every score array of `scores` (one array or a pytree: the blocks).

  TokenFusion's regulariser: an unnormalised sum over blocks, modalities, batch and tokens
  (its default weight 1e-4; its README trains with 1e-6). The gradient lowers the scores, so
  more tokens are exchanged. At a score of exactly 0 the gradient is 0, as in torch.
  """
  checks.check_scalar(weight, 'weight', low=0)
  leaves = jax.tree.leaves(scores)
  if not leaves:
    raise ValueError('scores holds no arrays.')
  for leaf in leaves:
    checks.check_floating(leaf, 'scores')
  # |s| as sign(s) * s: the subgradient at 0 is 0, as torch's `abs` (jnp.abs's is 1).
  return weight * sum(jnp.sum(jax.lax.stop_gradient(jnp.sign(leaf)) * leaf) for leaf in leaves)


def _linear(in_features: int, out_features: int, *, rngs: nnx.Rngs,
            use_bias: bool = True) -> nnx.Linear:
  """SegFormer's linear layer initialisation: truncated normal, std 0.02; zero bias."""
  return nnx.Linear(in_features, out_features, use_bias=use_bias, rngs=rngs,
                    kernel_init=nnx.initializers.truncated_normal(0.02))


class SharedConvNorm(nnx.Module):
  """A convolution shared by M streams, then a private batch norm per stream (CEN's layers).

  Stride 1, 'SAME' padding (the im2col `lqmm.nn.conv.conv2d`); the norms are
  `lqmm.nn.BatchNorm` (torch's running statistics; `model.eval()` switches to them). A
  missing stream's rows stay out of its norm's batch statistics.

  Args:
    in_features: input channels.
    out_features: output channels.
    kernel_size: the square kernel's size (odd: torch's padding k // 2 is 'SAME').
    num_modalities: M.
    use_bias: a bias in the convolution (ResNet's convolutions have none).
    rngs: NNX random streams.
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, *,
               num_modalities: int, use_bias: bool = False, rngs: nnx.Rngs):
    checks.check_integer(in_features, 'in_features', minimum=1)
    checks.check_integer(out_features, 'out_features', minimum=1)
    checks.check_integer(kernel_size, 'kernel_size', minimum=1)
    checks.check_integer(num_modalities, 'num_modalities', minimum=2)
    if kernel_size % 2 == 0:
      raise ValueError(f'kernel_size must be odd (a centred kernel); got {kernel_size}.')
    self.in_features = in_features
    self.conv = nnx.Conv(in_features, out_features, (kernel_size, kernel_size),
                         padding='SAME', use_bias=use_bias, rngs=rngs)
    self.norms = nnx.List([BatchNorm(out_features) for _ in range(num_modalities)])

  @property
  def scales(self) -> jax.Array:
    """The streams' batch-norm scales `[M, C]` (what CEN thresholds and penalises)."""
    return jnp.stack([norm.scale[...] for norm in self.norms])

  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """`[M, B, H, W, out]` from `x [M, B, H, W, in]`; `mask` bool `[M, B]` (statistics)."""
    _check_streams(x, 'x', '[M, B, H, W, C]', 5)
    if x.shape[0] != len(self.norms) or x.shape[-1] != self.in_features:
      raise ValueError(f'x must be [{len(self.norms)}, B, H, W, {self.in_features}] for this '
                       f'layer; got shape {tuple(x.shape)}.')
    present = presence(mask, x.shape[0], x.shape[1])
    bias = None if self.conv.bias is None else self.conv.bias[...]
    h = conv_lib.conv2d(x, self.conv.kernel[...], bias)
    return jnp.stack([norm(h[index], present[index]) for index, norm in enumerate(self.norms)])


class ExchangeBottleneck(nnx.Module):
  """CEN's ResNet bottleneck over M streams: shared convolutions, private norms, exchange.

  `h = relu(bn1_m(conv1x1(x_m)))`, `h = bn2_m(conv3x3(h))`, then `channel_exchange` by the
  `bn2` scales, `h = bn3_m(conv1x1(relu(h)))`, `out_m = relu(h + x_m)` (stride 1, no
  down-sampling, so the output width equals the input's: `features = 4 * planes` in ResNet).

  Args:
    features: the input and output channels.
    planes: the inner width.
    num_modalities: M.
    threshold: the exchange threshold on `|bn2 scale|`.
    rngs: NNX random streams.
  """

  def __init__(self, features: int, planes: int, *, num_modalities: int,
               threshold: float = CHANNEL_THRESHOLD, rngs: nnx.Rngs):
    checks.check_scalar(threshold, 'threshold', low=0)
    self.threshold = float(threshold)
    self.conv1 = SharedConvNorm(features, planes, 1, num_modalities=num_modalities, rngs=rngs)
    self.conv2 = SharedConvNorm(planes, planes, 3, num_modalities=num_modalities, rngs=rngs)
    self.conv3 = SharedConvNorm(planes, features, 1, num_modalities=num_modalities, rngs=rngs)

  @property
  def scales(self) -> jax.Array:
    """The `bn2` scales `[M, planes]`: the exchanged channels and the penalised ones."""
    return self.conv2.scales

  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """`[M, B, H, W, features]`; `mask` bool `[M, B]`: absent streams are no source."""
    h = jax.nn.relu(self.conv1(x, mask))
    h = channel_exchange(self.conv2(h, mask), self.scales, mask, threshold=self.threshold)
    h = self.conv3(jax.nn.relu(h), mask)
    return jax.nn.relu(h + x)


class TokenScorer(nnx.Module):
  """Per-modality token scores: LayerNorm, then C -> C -> C/2 -> C/4 -> 2 with GELU between.

  The score is the probability of the first logit, `sigmoid(z_0 - z_1)`; every modality has
  its own network (TokenFusion's `PredictorLG`, LayerNorm epsilon 1e-5, exact GELU).

  Args:
    dim: C, the token width (at least 4).
    num_modalities: M.
    rngs: NNX random streams.
  """

  def __init__(self, dim: int, num_modalities: int, *, rngs: nnx.Rngs):
    checks.check_integer(dim, 'dim', minimum=4)
    checks.check_integer(num_modalities, 'num_modalities', minimum=2)
    widths = (dim, dim, dim // 2, dim // 4, 2)
    self.dim = dim
    self.norms = nnx.List([nnx.LayerNorm(dim, epsilon=1e-5, rngs=rngs)
                           for _ in range(num_modalities)])
    self.layers = nnx.List([
        nnx.List([_linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
        for _ in range(num_modalities)])

  def logits(self, tokens: jax.Array) -> jax.Array:
    """The two logits `[M, B, N, 2]` of every token."""
    _check_streams(tokens, 'tokens', '[M, B, N, C]', 3)
    if tokens.shape[0] != len(self.norms) or tokens.shape[-1] != self.dim:
      raise ValueError(f'tokens must be [{len(self.norms)}, B, N, {self.dim}] for this scorer; '
                       f'got shape {tuple(tokens.shape)}.')
    out = []
    for index, norm in enumerate(self.norms):
      h = norm(tokens[index])
      layers = self.layers[index]
      for layer in layers[:-1]:
        h = jax.nn.gelu(layer(h), approximate=False)
      out.append(layers[-1](h))
    return jnp.stack(out)

  def __call__(self, tokens: jax.Array) -> jax.Array:
    """Scores `[M, B, N]` in (0, 1) of tokens `[M, B, N, C]`."""
    z = self.logits(tokens)
    return jax.nn.sigmoid(z[..., 0] - z[..., 1])


class TokenFusionBlock(nnx.Module):
  """A Mix Transformer block over M streams with TokenFusion's exchange.

  For every stream m (tokens `x_m [B, N, C]` on an `H x W` grid, `N = H W`):
  `a_m = proj(attention(LN1_m(x_m)))` (self-attention within the stream; keys and values from a
  `sr x sr` stride-`sr` convolution of the grid followed by a private LayerNorm when
  `sr_ratio > 1`), `e = token_exchange(a * s, s, mask)`, `x'_m = x_m + e_m`,
  `y_m = x'_m + fc2(GELU(dwconv3x3(fc1(LN2_m(x'_m)))))`. Without scores the block is a plain
  SegFormer block per stream (no scaling, no exchange). Every weight is shared by the
  streams except the LayerNorms (epsilon 1e-6).

  Args:
    dim: C.
    num_modalities: M (at least 2).
    num_heads: attention heads (dividing C).
    mlp_ratio: the MLP's hidden width over C.
    sr_ratio: spatial reduction of keys and values (1 = none).
    qkv_bias: biases in the query and key-value layers.
    threshold: the exchange threshold (0.02 in TokenFusion).
    rngs: NNX random streams.
  """

  def __init__(self, dim: int, *, num_modalities: int, num_heads: int, mlp_ratio: float = 4.0,
               sr_ratio: int = 1, qkv_bias: bool = True, threshold: float = TOKEN_THRESHOLD,
               rngs: nnx.Rngs):
    checks.check_integer(dim, 'dim', minimum=1)
    checks.check_integer(num_modalities, 'num_modalities', minimum=2)
    checks.check_integer(num_heads, 'num_heads', minimum=1)
    checks.check_integer(sr_ratio, 'sr_ratio', minimum=1)
    checks.check_scalar(mlp_ratio, 'mlp_ratio', low=0, low_open=True)
    checks.check_scalar(threshold, 'threshold', low=0, high=1)
    if dim % num_heads:
      raise ValueError(f'num_heads {num_heads} must divide dim {dim}.')
    hidden = int(dim * mlp_ratio)
    if hidden < 1:
      raise ValueError(f'mlp_ratio {mlp_ratio} leaves no hidden unit for dim {dim}.')
    norms = lambda: nnx.List([nnx.LayerNorm(dim, epsilon=1e-6, rngs=rngs)  # noqa: E731
                              for _ in range(num_modalities)])
    self.dim, self.num_heads, self.sr_ratio = dim, num_heads, sr_ratio
    self.threshold = float(threshold)
    self.norm1, self.norm2 = norms(), norms()
    self.q = _linear(dim, dim, use_bias=qkv_bias, rngs=rngs)
    self.kv = _linear(dim, 2 * dim, use_bias=qkv_bias, rngs=rngs)
    self.proj = _linear(dim, dim, rngs=rngs)
    if sr_ratio > 1:
      self.sr = nnx.Conv(dim, dim, (sr_ratio, sr_ratio), strides=sr_ratio, padding='VALID',
                         rngs=rngs)
      self.sr_norm = norms()
    self.fc1 = _linear(dim, hidden, rngs=rngs)
    self.dwconv = nnx.Conv(hidden, hidden, (3, 3), padding=1, feature_group_count=hidden,
                           rngs=rngs)
    self.fc2 = _linear(hidden, dim, rngs=rngs)

  def _per_stream(self, norms, x: jax.Array) -> jax.Array:
    return jnp.stack([norm(x[index]) for index, norm in enumerate(norms)])

  def _reduce(self, grid: jax.Array) -> jax.Array:
    """The stride-`sr` convolution of `[..., H, W, C]` as one matmul over the patches."""
    r = self.sr_ratio
    *lead, height, width, channels = grid.shape
    rows, cols = height // r, width // r
    patches = grid[..., :rows * r, :cols * r, :].reshape(*lead, rows, r, cols, r, channels)
    patches = jnp.swapaxes(patches, -4, -3).reshape(*lead, rows, cols, r * r * channels)
    kernel = self.sr.kernel[...].reshape(r * r * channels, channels)
    return patches @ kernel + self.sr.bias[...].reshape((1,) * (len(lead) + 2) + (channels,))

  def _dwconv(self, grid: jax.Array) -> jax.Array:
    """The 3 x 3 depth-wise convolution (padding 1) of `[..., H, W, D]` as shifted sums."""
    height, width = grid.shape[-3:-1]
    pads = [(0, 0)] * (grid.ndim - 3) + [(1, 1), (1, 1), (0, 0)]
    padded = jnp.pad(grid, pads)
    lead = (1,) * (grid.ndim - 1)
    kernel = self.dwconv.kernel[...]                                   # [3, 3, 1, D]
    out = sum(padded[..., i:i + height, j:j + width, :] * kernel[i, j, 0].reshape(lead + (-1,))
              for i in range(3) for j in range(3))
    return out + self.dwconv.bias[...].reshape(lead + (-1,))

  def attention(self, x: jax.Array, height: int, width: int) -> jax.Array:
    """`proj(attention(LN1_m(x_m)))` of every stream, `[M, B, N, C]` (before any exchange)."""
    h = self._per_stream(self.norm1, x)
    num, batch, tokens, dim = h.shape
    heads, head_dim = self.num_heads, dim // self.num_heads
    q = self.q(h).reshape(num, batch, tokens, heads, head_dim)
    source = h
    if self.sr_ratio > 1:
      reduced = self._reduce(h.reshape(num, batch, height, width, dim))
      source = self._per_stream(self.sr_norm, reduced.reshape(num, batch, -1, dim))
    kv = self.kv(source).reshape(num, batch, source.shape[2], 2, heads, head_dim)
    k, v = kv[..., 0, :, :], kv[..., 1, :, :]
    logits = jnp.einsum('mbnhd,mbkhd->mbhnk', q, k) * head_dim ** -0.5
    out = jnp.einsum('mbhnk,mbkhd->mbnhd', jax.nn.softmax(logits, axis=-1), v)
    return self.proj(out.reshape(num, batch, tokens, dim))

  def __call__(self, x: jax.Array, scores: jax.Array | None = None,
               mask: jax.Array | None = None, *, height: int, width: int) -> jax.Array:
    """The block's output `[M, B, N, C]` for tokens `x [M, B, N, C]` on an `height x width` grid.

    Args:
      x: the streams' tokens, `N = height * width` (row-major).
      scores: optional `[M, B, N]` (e.g. from `TokenScorer` on `x`): scale the attention output
        and exchange the tokens below the threshold.
      mask: optional bool `[M, B]` presence (only with `scores`).
      height: H.
      width: W.
    """
    _check_streams(x, 'x', '[M, B, N, C]', 4)
    if x.shape[0] != len(self.norm1) or x.shape[-1] != self.dim:
      raise ValueError(f'x must be [{len(self.norm1)}, B, N, {self.dim}] for this block; got '
                       f'shape {tuple(x.shape)}.')
    checks.check_integer(height, 'height', minimum=1)
    checks.check_integer(width, 'width', minimum=1)
    if height * width != x.shape[2]:
      raise ValueError(f'height * width must equal the token count {x.shape[2]}; got '
                       f'{height} x {width}.')
    if mask is not None and scores is None:
      raise ValueError('mask needs scores: without scores the block exchanges nothing.')
    a = self.attention(x, height, width)
    if scores is not None:
      a = token_exchange(a * scores[..., None], scores, mask, threshold=self.threshold)
    x = x + a
    h = self.fc1(self._per_stream(self.norm2, x))
    num, batch = h.shape[:2]
    h = self._dwconv(h.reshape(num, batch, height, width, -1)).reshape(h.shape)
    return x + self.fc2(jax.nn.gelu(h, approximate=False))


def exchange_share(scores, *, threshold: float = TOKEN_THRESHOLD) -> jax.Array:
  """The share of scores below the threshold, i.e. of tokens exchanged (a training diagnostic)."""
  leaves: Sequence[jax.Array] = jax.tree.leaves(scores)
  if not leaves:
    raise ValueError('scores holds no arrays.')
  below = sum(jnp.sum(leaf < threshold) for leaf in leaves)
  return below / sum(leaf.size for leaf in leaves)
