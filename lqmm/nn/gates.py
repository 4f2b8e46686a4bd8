"""Heuristic and attention gates over M channels-last modality streams.

- `l1_activity_weights` / `l1_activity_fusion` (pure `jax.numpy`): DenseFuse's l1-norm rule.
  Each stream's activity at a position is the l1 norm of its channels, optionally averaged over
  a `(2r + 1) x (2r + 1)` block; the fused map is the activity-weighted sum of the streams.
- `illumination_weight` and `IlluminationGate`: the illumination-aware gate as MBNet's code
  computes it (the public implementation of IAF R-CNN's idea): the colour and thermal streams
  are scaled by `sigmoid(day)` and `sigmoid(night)`, and the decision-level weight of the colour
  stream is `0.5 + (scale * absolute + bias) * (tanh(day) - tanh(night)) / 2` with learnable
  `scale` and `bias`.
- `eca_attention`, `channel_switch`, `spatial_attention_fusion` and `CSSA`: channel switching
  and spatial attention (CSSA): per-stream ECA channel attention, a stream's channels of low
  attention taken from the other streams, then the streams averaged under a parameter-free
  spatial attention `sigmoid(mean) * sigmoid(max)` over all streams' channels.

Layout: `features: [M, B, H, W, C]` (any positional axes between B and C), the presence mask
`mask: bool [M, B]`. A missing stream is never a source of a switched channel, takes no part in
the pooled statistics and gets weight 0; a sample with no present stream fuses to zeros (the
identity of a weighted sum), never NaN.

Provenance (`tests/reference/PROVENANCE_feature_fusion.md`): DenseFuse's TensorFlow `L1_norm`
(hli1221/imagefusion_densefuse, commit ef23f0f; its released code uses r = 0; the r = 1 block
average is commented out in its first commit), MBNet's gate (CalayZhou/MBNet, commit 18674e3),
and CSSA as two public reimplementations compute it (artrela/mulitmodal-cssa, commit 38a895a;
goodcasper/CSSA-Pytorch, commit 5e9a618): the CSSA authors' code is not public, nor is IAF
R-CNN's. All originals are bimodal; M > 2 and the masks are lqmm's generalisation.

References:
  Li, Wu, "DenseFuse: A Fusion Approach to Infrared and Visible Images", IEEE TIP 2019.
  Li, Song, Tong, Tang, "Illumination-aware Faster R-CNN for Robust Multispectral Pedestrian
  Detection", Pattern Recognition 2019.
  Zhou, Chen, Cao, "Improving Multispectral Pedestrian Detection by Addressing Modality
  Imbalance Problems", ECCV 2020 (MBNet).
  Cao, Bin, Hamari, Blasch, Liu, "Multimodal Object Detection by Channel Switching and Spatial
  Attention", CVPR Workshops 2023.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from lqmm import checks
from lqmm.nn import exchange

__all__ = ['CSSA', 'IlluminationGate', 'channel_switch', 'eca_attention', 'eca_kernel_size',
           'illumination_weight', 'l1_activity_fusion', 'l1_activity_weights',
           'spatial_attention_fusion']


def _check_features(features, name: str = 'features', rank: int = 3) -> jax.Array:
  checks.check_rank_at_least(features, rank, name, '[M, B, ..., C]')
  checks.check_floating(features, name)
  if jnp.shape(features)[0] < 1:
    raise ValueError(f'{name} holds no modality (axis 0 of [M, B, ..., C] is empty).')
  return jnp.asarray(features)


def _presence(mask, features: jax.Array) -> jax.Array:
  """bool `[M, B, 1, ..., 1]` broadcastable against `features`."""
  num, batch = features.shape[:2]
  return exchange.presence(mask, num, batch).reshape((num, batch) + (1,) * (features.ndim - 2))


# ---------------------------------------------------------------- DenseFuse's l1-norm rule
def _block_mean(activity: jax.Array, radius: int) -> jax.Array:
  """The mean over `(2r + 1)^2` blocks of `[..., H, W]`, edges padded symmetrically (the edge
  sample repeated, scipy's `convolve2d(boundary='symm')` in DenseFuse's first commit)."""
  if radius == 0:
    return activity
  pads = [(0, 0)] * (activity.ndim - 2) + [(radius, radius)] * 2
  padded = jnp.pad(activity, pads, mode='symmetric')
  height, width = activity.shape[-2:]
  size = 2 * radius + 1
  total = sum(padded[..., i:i + height, j:j + width] for i in range(size) for j in range(size))
  return total / size ** 2


def l1_activity_weights(features: jax.Array, mask: jax.Array | None = None, *,
                        radius: int = 0) -> jax.Array:
  """DenseFuse's per-position weights `[M, B, H, W]`: normalised l1 activities.

  `A_m = sum_c |x_m[..., c]|`, block-averaged over `(2 radius + 1)^2` positions, and
  `w_m = A_m / sum_j A_j` over the present streams. Where no present stream has any activity
  (every feature is 0 there) the present streams get equal weights: the fused value is 0
  either way, and the original's 0 / 0 = NaN is avoided. Absent streams get weight 0.

  Args:
    features: `[M, B, H, W, C]` (the spatial block needs two positional axes when radius > 0;
      with radius 0 any positional axes work).
    mask: optional bool `[M, B]`, True = present.
    radius: r of the block average (0 = none, as DenseFuse's released code).
  """
  features = _check_features(features)
  checks.check_integer(radius, 'radius', minimum=0)
  if radius and features.ndim < 5:
    raise ValueError(f'radius > 0 needs features [M, B, H, W, C]; got shape {features.shape}.')
  present = _presence(mask, features)[..., 0]
  features = jnp.where(present[..., None], features, 0)      # an absent stream's NaN stays out
  activity = _block_mean(jnp.sum(jnp.abs(features), axis=-1), radius)
  activity = jnp.where(present, activity, 0)
  total = jnp.sum(activity, axis=0, keepdims=True)
  count = jnp.sum(present, axis=0, keepdims=True).astype(activity.dtype)
  equal = jnp.where(present, 1 / jnp.maximum(count, 1), 0).astype(activity.dtype)
  return jnp.where(total > 0, activity / jnp.where(total > 0, total, 1), equal)


def l1_activity_fusion(features: jax.Array, mask: jax.Array | None = None, *,
                       radius: int = 0) -> jax.Array:
  """`sum_m w_m x_m`, `[B, H, W, C]`, with `l1_activity_weights` (DenseFuse's l1-norm rule).

  Example:
    >>> import jax.numpy as jnp
    >>> features = jnp.array([[[[1.0, 1.0]]], [[[3.0, -1.0]]]])    # [M=2, B=1, P=1, C=2]
    >>> l1_activity_fusion(features)                                # weights 2/6 and 4/6
    Array([[[ 2.3333333 , -0.33333334]]], dtype=float32)
  """
  weights = l1_activity_weights(features, mask, radius=radius)
  features = jnp.asarray(features)
  present = _presence(mask, features)
  return jnp.sum(weights[..., None] * jnp.where(present, features, 0), axis=0)


# ---------------------------------------------------------------- the illumination gate
def illumination_weight(day: jax.Array, night: jax.Array, absolute: jax.Array, *,
                        scale=1.0, bias=0.0) -> jax.Array:
  """MBNet's weight of the colour stream: `0.5 + (scale a + bias) (tanh(day) - tanh(night)) / 2`.

  `day`, `night` are the illumination network's two (ReLU) outputs, trained as the logits of
  day / night; `absolute` in (0, 1) is its confidence branch. Equal `day` and `night` give 0.5.
  Nothing clamps the result: a trained `scale > 1` or `bias != 0` can leave [0, 1], as in the
  original. The thermal stream's weight is `1 - w`.
  """
  for value, name in ((day, 'day'), (night, 'night'), (absolute, 'absolute')):
    checks.check_floating(value, name)
  day, night, absolute = jnp.asarray(day), jnp.asarray(night), jnp.asarray(absolute)
  checks.check_broadcastable(day, night, 'day', 'night')
  checks.check_broadcastable(day, absolute, 'day', 'absolute')
  alpha = scale * absolute + bias
  return 0.5 + alpha * (jnp.tanh(day) - jnp.tanh(night)) / 2


class IlluminationGate(nnx.Module):
  """The illumination-aware gate over a colour and a thermal stream (MBNet's arithmetic).

  `__call__` scales the colour features by `sigmoid(day)` and the thermal ones by
  `sigmoid(night)` (per sample), and returns the colour stream's decision weight
  `illumination_weight(day, night, absolute, scale, bias)`, with `scale` (initially 1) and
  `bias` (initially 0) learnable. The illumination network that gives `day`, `night` and
  `absolute` is the model's own (MBNet: a small CNN on the colour image).
  """

  def __init__(self):
    self.scale = nnx.Param(jnp.ones((), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((), jnp.float32))

  def __call__(self, features: jax.Array, day: jax.Array, night: jax.Array,
               absolute: jax.Array, mask: jax.Array | None = None
               ) -> tuple[jax.Array, jax.Array]:
    """`(gated features [2, B, ..., C], colour weight [B])` for features `[2, B, ..., C]`
    (colour first) and per-sample `day`, `night`, `absolute` `[B]`.

    `mask` (optional bool `[2, B]`): an absent stream's gated features are zeros and the
    decision weight goes to the other stream (colour weight 1 without thermal, 0 without
    colour; 0.5 when both are absent, where nothing is left to weigh).
    """
    features = _check_features(features)
    if features.shape[0] != 2:
      raise ValueError(f'features must stack the colour and the thermal stream, [2, B, ..., C];'
                       f' got shape {features.shape}.')
    batch = features.shape[1]
    for value, name in ((day, 'day'), (night, 'night'), (absolute, 'absolute')):
      if tuple(jnp.shape(value)) != (batch,):
        raise ValueError(f'{name} must be one value per sample, shape ({batch},); got '
                         f'{tuple(jnp.shape(value))}.')
    gates = jax.nn.sigmoid(jnp.stack([jnp.asarray(day), jnp.asarray(night)]))
    gated = features * gates.reshape(gates.shape + (1,) * (features.ndim - 2))
    dtype = jnp.result_type(day)
    weight = illumination_weight(day, night, absolute, scale=self.scale[...].astype(dtype),
                                 bias=self.bias[...].astype(dtype))
    if mask is not None:
      present = _presence(mask, features)
      gated = jnp.where(present, gated, 0)
      colour, thermal = jnp.asarray(mask)[0], jnp.asarray(mask)[1]
      weight = jnp.where(colour & ~thermal, 1.0, jnp.where(
          thermal & ~colour, 0.0, jnp.where(colour & thermal, weight, 0.5))).astype(weight.dtype)
    return gated, weight


# ---------------------------------------------------------------- CSSA
def eca_kernel_size(channels: int, *, gamma: int = 2, b: int = 1, faithful: bool = False) -> int:
  """ECA's adaptive 1-D kernel size: `t = int(|log2(C) / gamma + b / gamma|)`, made odd.

  ECA-Net makes an even `t` odd with `t + 1`; `faithful=True` follows artrela's CSSA notebook,
  which uses `t - 1` (C = 256 gives 3 there, 5 in ECA-Net) and is at least 1 here.
  """
  checks.check_integer(channels, 'channels', minimum=1)
  t = int(abs(math.log2(channels) / gamma + b / gamma))
  if t % 2 == 0:
    t = t - 1 if faithful else t + 1
  return max(t, 1)


def eca_attention(features: jax.Array, kernel: jax.Array, bias: jax.Array | None = None
                  ) -> jax.Array:
  """ECA channel attention `[..., C]` of maps `[..., H, W, C]`: sigmoid of a 1-D convolution
  (zero padding k // 2, cross-correlation as torch's `Conv1d`) along the channels of the
  spatial means. `kernel: [k]`, odd k; `bias`: optional scalar."""
  checks.check_rank_at_least(features, 3, 'features', '[..., H, W, C]')
  kernel = jnp.asarray(kernel)
  if kernel.ndim != 1 or kernel.shape[0] % 2 == 0:
    raise ValueError(f'kernel must be a 1-D kernel of odd size; got shape {kernel.shape}.')
  pooled = jnp.mean(features, axis=(-3, -2))
  half = kernel.shape[0] // 2
  padded = jnp.pad(pooled, [(0, 0)] * (pooled.ndim - 1) + [(half, half)])
  channels = pooled.shape[-1]
  out = sum(kernel[i] * padded[..., i:i + channels] for i in range(kernel.shape[0]))
  if bias is not None:
    out = out + jnp.asarray(bias)
  return jax.nn.sigmoid(out)


def channel_switch(features: jax.Array, attention: jax.Array, mask: jax.Array | None = None, *,
                   threshold: float, inclusive: bool = False) -> jax.Array:
  """Each stream's channels of low attention replaced by the other present streams' (CSSA).

  Stream m's channel c (per sample) becomes the mean of the other present streams' channel c
  where `attention[m, b, c] < threshold` (`<=` with `inclusive=True`, as goodcasper's
  reimplementation); every switch reads the unswitched inputs. A stream with no other present
  stream keeps its channels. The attention passes no gradient through the switch.

  Args:
    features: `[M, B, ..., C]`.
    attention: `[M, B, C]`.
    mask: optional bool `[M, B]`.
    threshold: the switching threshold (2e-3 in artrela's CSSA configuration).
    inclusive: switch at equality too.
  """
  features = _check_features(features)
  num, batch, channels = features.shape[0], features.shape[1], features.shape[-1]
  if tuple(jnp.shape(attention)) != (num, batch, channels):
    raise ValueError(f'attention must be [M, B, C] = {(num, batch, channels)}; got '
                     f'{tuple(jnp.shape(attention))}.')
  checks.check_scalar(threshold, 'threshold')
  replacement, count = exchange.other_mean(features, _presence(mask, features))
  attention = jnp.asarray(attention).reshape((num, batch) + (1,) * (features.ndim - 3) +
                                             (channels,))
  low = attention <= threshold if inclusive else attention < threshold
  switched = jnp.where(jnp.logical_and(low, count > 0), replacement, features)
  return jnp.where(jnp.isnan(attention), jnp.nan, switched).astype(features.dtype)


def spatial_attention_fusion(features: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """CSSA's parameter-free spatial attention and fusion, `[B, ..., C]`.

  `a = sigmoid(mean) * sigmoid(max)`, the mean and max per position over all channels of all
  present streams, and the fused map `mean_m (a x_m)` over the present streams. A sample with
  no present stream fuses to zeros.
  """
  features = _check_features(features)
  present = _presence(mask, features)
  count = jnp.sum(present, axis=0)                                       # [B, 1, ..., 1]
  channels = features.shape[-1]
  mean = (jnp.sum(jnp.where(present, features, 0), axis=(0, -1)) /
          jnp.maximum(count[..., 0] * channels, 1).astype(features.dtype))
  low = jnp.asarray(-jnp.inf, features.dtype)
  peak = jnp.max(jnp.where(present, features, low), axis=(0, -1))
  peak = jnp.where(count[..., 0] > 0, peak, 0)
  attention = (jax.nn.sigmoid(mean) * jax.nn.sigmoid(peak))[..., None]
  total = jnp.sum(jnp.where(present, features, 0), axis=0)
  return attention * total / jnp.maximum(count, 1).astype(features.dtype)


class CSSA(nnx.Module):
  """Channel switching and spatial attention over M streams of C channels.

  Per stream an ECA kernel (no bias by default) gives the channel attention; `channel_switch`
  replaces the channels below the threshold; `spatial_attention_fusion` fuses. The ECA
  parameters reach the output only through the switch's comparison, so the task loss gives
  them no gradient (true of both public reimplementations; they stay at their initialisation
  unless trained by another loss).

  Args:
    channels: C.
    num_modalities: M.
    kernel_size: the ECA kernel (odd); None = `eca_kernel_size(C)`.
    threshold: switch where the attention is below it (2e-3 as artrela's configuration).
    inclusive: switch at equality too (goodcasper's `<= 0.5`).
    use_bias: a bias in the ECA convolution (goodcasper's kernel-1 convolution has one).
    rngs: NNX random streams.
  """

  def __init__(self, channels: int, *, num_modalities: int, kernel_size: int | None = None,
               threshold: float = 2e-3, inclusive: bool = False, use_bias: bool = False,
               rngs: nnx.Rngs):
    checks.check_integer(channels, 'channels', minimum=1)
    checks.check_integer(num_modalities, 'num_modalities', minimum=2)
    checks.check_scalar(threshold, 'threshold', low=0, high=1)
    size = eca_kernel_size(channels) if kernel_size is None else kernel_size
    checks.check_integer(size, 'kernel_size', minimum=1)
    if size % 2 == 0:
      raise ValueError(f'kernel_size must be odd; got {size}.')
    bound = 1 / math.sqrt(size)                 # torch's Conv1d(1, 1, k) initialisation
    self.channels, self.threshold, self.inclusive = channels, float(threshold), inclusive
    self.kernels = nnx.Param(jax.random.uniform(rngs.params(), (num_modalities, size),
                                                jnp.float32, -bound, bound))
    self.biases = (nnx.Param(jax.random.uniform(rngs.params(), (num_modalities,), jnp.float32,
                                                -bound, bound)) if use_bias else None)

  def attention(self, features: jax.Array) -> jax.Array:
    """The streams' ECA channel attention `[M, B, C]`."""
    features = _check_features(features, rank=5)
    num = self.kernels.shape[0]
    if features.shape[0] != num or features.shape[-1] != self.channels:
      raise ValueError(f'features must be [{num}, B, H, W, {self.channels}] for this module; '
                       f'got shape {features.shape}.')
    return jnp.stack([eca_attention(features[m], self.kernels[m],
                                    None if self.biases is None else self.biases[m])
                      for m in range(num)])

  def __call__(self, features: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The fused map `[B, H, W, C]` of `features [M, B, H, W, C]`."""
    switched = channel_switch(features, self.attention(features), mask,
                              threshold=self.threshold, inclusive=self.inclusive)
    return spatial_attention_fusion(switched, mask)
