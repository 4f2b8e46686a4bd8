"""Convolution and pooling written for XLA:CPU: one matmul over shifted slices (im2col).

XLA:CPU runs `lax.conv_general_dilated` slowly inside a `while` loop (a scanned epoch) and
turns it into a grouped convolution under `jax.vmap` over seeds; its max-pool gradient is a
select-and-scatter. The same 'SAME' stride-1 convolution as one matmul of the `kh * kw` shifted
slices against the reshaped kernel, and a non-overlapping max-pool as a reshape and a max,
compile to dot products and reductions, which XLA:CPU runs fast everywhere and vmaps into
batched matmuls. Both take channels-last inputs and the kernels of `flax.nnx.Conv`
(`[kh, kw, C_in, C_out]`), so parameter trees and checkpoints do not change.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ['adaptive_avg_pool2d', 'conv2d', 'max_pool2d']


def conv2d(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None) -> jax.Array:
  """A stride-1 'SAME' 2-D convolution (cross-correlation, as `nnx.Conv`) by im2col.

  Args:
    x: `[B, H, W, C_in]` (any leading batch dims).
    kernel: `[kh, kw, C_in, C_out]`.
    bias: optional `[C_out]`.

  Returns:
    `[B, H, W, C_out]`, equal to `lax.conv_general_dilated(x, kernel, (1, 1), 'SAME',
    dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + bias` up to float rounding.

  Raises:
    ValueError: `x` without `[H, W, C]` trailing axes, or a kernel that is not 4-D or whose
      input channels differ from `x`'s.
  """
  if jnp.ndim(kernel) != 4:
    raise ValueError(f'kernel must be [kh, kw, C_in, C_out]; got shape {jnp.shape(kernel)}.')
  kh, kw, channels, features = jnp.shape(kernel)
  if jnp.ndim(x) < 3 or jnp.shape(x)[-1] != channels:
    raise ValueError(f'x must be [..., H, W, {channels}] for this kernel; got shape '
                     f'{jnp.shape(x)}.')
  height, width = jnp.shape(x)[-3:-1]
  # XLA's 'SAME': total padding k - 1 per axis, the smaller half before.
  pads = [(0, 0)] * (jnp.ndim(x) - 3) + [((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2),
                                          (0, 0)]
  padded = jnp.pad(x, pads)
  slices = [padded[..., i:i + height, j:j + width, :] for i in range(kh) for j in range(kw)]
  patches = jnp.concatenate(slices, axis=-1)                    # [..., H, W, kh kw C_in]
  out = patches @ kernel.reshape(kh * kw * channels, features)
  if bias is None:
    return out
  return out + jnp.reshape(bias, (1,) * (out.ndim - 1) + (features,))


def max_pool2d(x: jax.Array, window: int = 2) -> jax.Array:
  """Non-overlapping `window x window` max-pool of `[..., H, W, C]` (stride = window, trailing
  rows and columns that do not fill a window dropped, as `nnx.max_pool` with 'VALID')."""
  if jnp.ndim(x) < 3:
    raise ValueError(f'x must be [..., H, W, C]; got shape {jnp.shape(x)}.')
  *lead, height, width, channels = jnp.shape(x)
  rows, cols = height // window, width // window
  x = x[..., :rows * window, :cols * window, :]
  x = x.reshape(*lead, rows, window, cols, window, channels)
  return jnp.max(x, axis=(-4, -2))


def _pool_matrix(size: int, out: int, dtype) -> jax.Array:
  """`[out, size]`: row i averages positions `floor(i size / out)` to `ceil((i + 1) size / out)`
  (exclusive), torch's `adaptive_avg_pool` bins."""
  rows = []
  for i in range(out):
    start, end = (i * size) // out, -(-((i + 1) * size) // out)
    rows.append([1.0 / (end - start) if start <= j < end else 0.0 for j in range(size)])
  return jnp.asarray(rows, dtype)


def adaptive_avg_pool2d(x: jax.Array, output_size: tuple[int, int]) -> jax.Array:
  """Average-pools `[..., H, W, C]` to `[..., h, w, C]` with torch's adaptive bins.

  Output cell `(i, j)` is the mean of rows `floor(i H / h)` to `ceil((i + 1) H / h)` and the
  columns likewise (bins overlap when `h` does not divide `H`), as
  `torch.nn.functional.adaptive_avg_pool2d`; two small matmuls, so any grid of any input size.

  Raises:
    ValueError: `x` without `[H, W, C]` trailing axes, or an output size that is not two
      positive integers no larger than the input's.
  """
  if jnp.ndim(x) < 3:
    raise ValueError(f'x must be [..., H, W, C]; got shape {jnp.shape(x)}.')
  height, width = jnp.shape(x)[-3:-1]
  if (len(output_size) != 2 or any(not isinstance(s, int) or s < 1 for s in output_size)
      or output_size[0] > height or output_size[1] > width):
    raise ValueError(f'output_size must be two positive integers no larger than the input\'s '
                     f'[H, W] = [{height}, {width}]; got {output_size}.')
  rows = _pool_matrix(height, output_size[0], x.dtype)
  cols = _pool_matrix(width, output_size[1], x.dtype)
  return jnp.einsum('ih,...hwc,jw->...ijc', rows, x, cols)
