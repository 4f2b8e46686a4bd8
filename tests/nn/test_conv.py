"""The im2col convolution and reshape max-pool against XLA's convolution and `nnx.max_pool`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lqmm import nn
from lqmm.nn import conv


def _reference(x, kernel, bias):
  out = jax.lax.conv_general_dilated(x, kernel, (1, 1), 'SAME',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  return out + bias[..., None, None, None, :]


@pytest.mark.parametrize('height, width, kh, kw, channels', [
    (5, 7, 3, 3, 2), (1, 4, 3, 3, 1), (6, 6, 2, 4, 3), (4, 3, 1, 1, 2), (9, 2, 3, 2, 1)])
def test_conv2d_equals_xla_same_convolution(height, width, kh, kw, channels):
  keys = jax.random.split(jax.random.key(height * width + kh), 3)
  x = jax.random.normal(keys[0], (2, height, width, channels))
  kernel = jax.random.normal(keys[1], (kh, kw, channels, 4))
  bias = jax.random.normal(keys[2], (4,))
  np.testing.assert_allclose(conv.conv2d(x, kernel, bias), _reference(x, kernel, bias),
                             rtol=1e-5, atol=1e-5)


def test_gradients_and_vmap_match_xla():
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(keys[0], (3, 5, 5, 8, 2))      # a leading seed axis: [S, B, H, W, C]
  kernel = jax.random.normal(keys[1], (3, 3, 3, 2, 4))  # one kernel per seed
  bias = jnp.zeros((3, 4))

  def loss(f, x, kernel, bias):
    return jnp.sum(jnp.tanh(f(x, kernel, bias)))

  for argnum in (0, 1, 2):
    ours = jax.vmap(jax.grad(lambda *a: loss(conv.conv2d, *a), argnum))(x, kernel, bias)
    theirs = jax.vmap(jax.grad(lambda *a: loss(_reference, *a), argnum))(x, kernel, bias)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('shape', [(2, 8, 6, 3), (1, 7, 5, 2), (4, 2, 2, 1)])
def test_max_pool_equals_nnx_valid_pooling(shape):
  x = jax.random.normal(jax.random.key(1), shape)
  np.testing.assert_array_equal(
      conv.max_pool2d(x), nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2)))
  ours = jax.grad(lambda x: jnp.sum(conv.max_pool2d(x) ** 2))(x)
  theirs = jax.grad(lambda x: jnp.sum(nnx.max_pool(x, window_shape=(2, 2),
                                                   strides=(2, 2)) ** 2))(x)
  np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_conv_encoder_equals_its_nnx_conv_layers():
  encoder = nn.ConvEncoder((12, 10), 16, channels=(4, 8), rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(2), (3, 12, 10))

  def with_nnx(x):
    x = x[..., None]
    for layer in encoder.convs:
      x = nnx.max_pool(jax.nn.relu(layer(x)), window_shape=(2, 2), strides=(2, 2))
    return jax.nn.relu(encoder.out(x.reshape(x.shape[0], -1)))

  np.testing.assert_allclose(encoder(x), with_nnx(x), rtol=1e-5, atol=1e-6)
  # The parameters are still nnx.Conv's 4-D kernels (what OGM-GE modulates, what checkpoints hold).
  assert encoder.convs[0].kernel[...].shape == (3, 3, 1, 4)


@pytest.mark.parametrize('call, match', [
    (lambda: conv.conv2d(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 3, 4))), 'x must be'),
    (lambda: conv.conv2d(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2))), 'kernel'),
    (lambda: conv.max_pool2d(jnp.ones((4, 4))), 'x must be'),
])
def test_bad_shapes_name_the_argument(call, match):
  with pytest.raises(ValueError, match=match):
    call()


# torch 2.13.0+cpu, `torch.nn.functional.adaptive_avg_pool2d(torch.arange(35., dtype=float64)
# .reshape(1, 1, 5, 7), size)[0, 0]`, printed and pasted (the bins overlap for 5 -> 3, 7 -> 4).
_TORCH_ADAPTIVE = {
    (3, 4): [[4.0, 5.5, 7.5, 9.0], [14.5, 16.0, 18.0, 19.5], [25.0, 26.5, 28.5, 30.0]],
    (2, 3): [[8.0, 10.0, 12.0], [22.0, 24.0, 26.0]],
}


@pytest.mark.parametrize('size', sorted(_TORCH_ADAPTIVE))
def test_adaptive_avg_pool2d_equals_torch(size):
  x = jnp.arange(35, dtype=jnp.float32).reshape(1, 5, 7, 1)
  out = conv.adaptive_avg_pool2d(x, size)
  np.testing.assert_allclose(out[0, ..., 0], _TORCH_ADAPTIVE[size], rtol=1e-6)


def test_adaptive_avg_pool2d_divisible_is_block_mean_and_identity():
  x = jax.random.normal(jax.random.key(3), (2, 3, 8, 6, 4))
  blocks = x.reshape(2, 3, 4, 2, 3, 2, 4).mean(axis=(3, 5))
  np.testing.assert_allclose(conv.adaptive_avg_pool2d(x, (4, 3)), blocks, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(conv.adaptive_avg_pool2d(x, (8, 6)), x, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('size', [(0, 2), (9, 2), (2,), (2.0, 2)])
def test_adaptive_avg_pool2d_rejects_bad_sizes(size):
  with pytest.raises(ValueError, match='output_size'):
    conv.adaptive_avg_pool2d(jnp.zeros((1, 8, 6, 1)), size)
