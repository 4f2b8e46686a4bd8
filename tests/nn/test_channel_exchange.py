"""CEN's channel exchange, shared-convolution / private-norm layers, bottleneck and sparsity
penalty against the original.

Reference vectors: `tests/reference/data/cen_vectors.npz`, generated from yikaiw/CEN (commit
0088d87) by `tests/reference/generate_cen_vectors.py` (`tests/reference/PROVENANCE_cen.md`).
The original is NCHW; lqmm is channels-last, so maps are transposed `[M, B, C, H, W] ->
[M, B, H, W, C]` and convolution kernels `[out, in, kh, kw] -> [kh, kw, in, out]`.
"""

import pathlib

import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import strategies as st

from lqmm import nn

VECTORS = pathlib.Path(__file__).parents[1] / 'reference' / 'data' / 'cen_vectors.npz'


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(VECTORS))


def _last(x):
  """`[M, B, C, H, W]` -> `[M, B, H, W, C]`."""
  return jnp.asarray(np.moveaxis(x, 2, -1))


def _kernel(weight):
  return jnp.asarray(weight.transpose(2, 3, 1, 0))


def _set_norms(layer, ref, pre):
  for m, norm in enumerate(layer.norms):
    for name, key in (('scale', 'gamma'), ('bias', 'beta'), ('mean', 'running_mean'),
                      ('var', 'running_var')):
      getattr(norm, name).set_value(jnp.asarray(ref[f'{pre}_{key}'][m]))


@pytest.mark.parametrize('k', [0, 1])
def test_exchange_and_its_gradient_equal_the_original(ref, k, x64):
  threshold = float(ref['exchange_thresholds'][k])
  x, gamma = _last(ref['exchange_x']), jnp.asarray(ref['exchange_gamma'])
  cotangent = _last(ref['exchange_cotangent'])
  out, vjp = jax.vjp(lambda x: nn.exchange.channel_exchange(x, gamma, threshold=threshold), x)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(_last(ref[f'exchange_t{k}_out'])))
  np.testing.assert_array_equal(np.asarray(vjp(cotangent)[0]),
                                np.asarray(_last(ref[f'exchange_t{k}_grad'])))
  np.testing.assert_array_equal(np.abs(ref['exchange_gamma']) >= threshold,
                                ref[f'exchange_t{k}_keep'])


@pytest.mark.parametrize('mode', ['eval', 'train'])
def test_shared_conv_private_norms_equal_the_original(ref, mode, x64):
  layer = nn.exchange.SharedConvNorm(6, 8, 3, num_modalities=2, rngs=nnx.Rngs(0))
  layer.conv.kernel.set_value(_kernel(ref['parallel_conv_weight']))
  _set_norms(layer, ref, 'parallel')
  if mode == 'eval':
    layer.eval()
  x, cotangent = _last(ref['parallel_x']), _last(ref['parallel_cotangent'])

  def objective(layer, x):
    out = layer(x)
    return jnp.sum(out * cotangent), out

  # One forward and backward, as the original's; in training mode it updates the statistics.
  (_, out), (grad_params, grad_x) = nnx.value_and_grad(objective, argnums=(0, 1),
                                                       has_aux=True)(layer, x)
  pre = f'parallel_{mode}'
  tol = dict(rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(np.asarray(out), np.asarray(_last(ref[f'{pre}_out'])), **tol)
  np.testing.assert_allclose(np.asarray(grad_x), np.asarray(_last(ref[f'{pre}_grad_x'])), **tol)
  np.testing.assert_allclose(np.asarray(grad_params['conv']['kernel'][...]),
                             np.asarray(_kernel(ref[f'{pre}_grad_conv_weight'])), **tol)
  for m in range(2):
    norm = grad_params['norms'][m]
    np.testing.assert_allclose(np.asarray(norm['scale'][...]), ref[f'{pre}_grad_gamma'][m], **tol)
    np.testing.assert_allclose(np.asarray(norm['bias'][...]), ref[f'{pre}_grad_beta'][m], **tol)
  if mode == 'train':   # the running statistics as torch updates them
    for m, norm in enumerate(layer.norms):
      np.testing.assert_allclose(np.asarray(norm.mean[...]),
                                 ref['parallel_train_new_running_mean'][m], **tol)
      np.testing.assert_allclose(np.asarray(norm.var[...]),
                                 ref['parallel_train_new_running_var'][m], **tol)


@pytest.mark.parametrize('mode', ['eval', 'train'])
def test_bottleneck_equals_the_original(ref, mode, x64):
  block = nn.exchange.ExchangeBottleneck(16, 4, num_modalities=2,
                                         threshold=float(ref['block_threshold']),
                                         rngs=nnx.Rngs(0))
  for index in (1, 2, 3):
    layer = getattr(block, f'conv{index}')
    layer.conv.kernel.set_value(_kernel(ref[f'block_conv{index}_weight']))
    _set_norms(layer, ref, f'block_bn{index}')
  if mode == 'eval':
    block.eval()
  out = nnx.jit(lambda block, x: block(x))(block, _last(ref['block_x']))
  np.testing.assert_allclose(np.asarray(out), np.asarray(_last(ref[f'block_{mode}_out'])),
                             rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('num', [2, 3])
def test_sparsity_equals_the_original(ref, num, x64):
  pre = f'slim_m{num}'
  gamma = jnp.asarray(ref[f'{pre}_gamma'])
  selected = nn.exchange.channel_sparsity_mask(num, gamma.shape[-1], num_layers=gamma.shape[0],
                                               faithful=True)
  np.testing.assert_array_equal(np.asarray(selected), ref[f'{pre}_mask'])
  weight = 2e-4
  penalty, grad = jax.value_and_grad(
      lambda g: nn.exchange.channel_sparsity(g, weight=weight, faithful=True))(gamma)
  # The stored penalty is the original's sum of |gamma| (its training loop applies lambda).
  np.testing.assert_allclose(float(penalty) / weight, float(ref[f'{pre}_penalty']), rtol=1e-13)
  np.testing.assert_array_equal(np.asarray(grad) / weight, ref[f'{pre}_grad'])
  if num == 2:   # for two streams the default parts are the original's halves
    np.testing.assert_array_equal(
        np.asarray(nn.exchange.channel_sparsity_mask(2, gamma.shape[-1],
                                                     num_layers=gamma.shape[0])),
        ref[f'{pre}_mask'])


def test_default_parts_are_disjoint_and_cover_the_channels():
  for num, channels in ((2, 8), (3, 7), (4, 10), (5, 3)):
    selected = np.asarray(nn.exchange.channel_sparsity_mask(num, channels))[0]
    np.testing.assert_array_equal(selected.sum(0), np.ones(channels, int))


# ---------------------------------------------------------------- laws
@hypothesis.settings(max_examples=20)
@hypothesis.given(st.integers(2, 4).flatmap(lambda num: st.tuples(
    hnp.arrays(np.float32, (num, 2, 3, 2), elements=st.floats(-10, 10, width=32)),
    hnp.arrays(np.float32, (num, 2), elements=st.floats(-0.125, 0.125, width=32)),
    hnp.arrays(np.bool_, (num, 2)))))
def test_exchange_laws(case):
  features, scales, mask = case
  threshold = 0.03
  out = np.asarray(nn.exchange.channel_exchange(features, scales, mask, threshold=threshold))
  num = features.shape[0]
  for m in range(num):
    for b in range(features.shape[1]):
      present = [j for j in range(num) if j != m and mask[j, b]]
      for c in range(features.shape[-1]):
        if abs(scales[m, c]) >= threshold or not present:
          np.testing.assert_array_equal(out[m, b, ..., c], features[m, b, ..., c])
        else:
          np.testing.assert_allclose(out[m, b, ..., c], features[present, b, ..., c].mean(0),
                                     rtol=1e-5, atol=1e-5)


def test_missing_stream_is_no_source_and_out_of_the_statistics():
  block = nn.exchange.ExchangeBottleneck(8, 2, num_modalities=3, rngs=nnx.Rngs(0))
  block.conv2.norms[0].scale.set_value(jnp.zeros(2))       # stream 0 gives up both channels
  x = jax.random.normal(jax.random.key(0), (3, 2, 4, 4, 8))
  mask = jnp.array([[True, True], [True, True], [False, True]])
  run = nnx.jit(lambda block, x: block(x, mask))
  out = run(nnx.clone(block), x)
  changed = run(nnx.clone(block), x.at[2, 0].set(50.0))
  # Sample 0 lacks stream 2: its values reach neither the exchange nor the norms' statistics.
  np.testing.assert_allclose(np.asarray(out[:2]), np.asarray(changed[:2]), rtol=1e-6,
                             atol=1e-6)


@pytest.mark.parametrize('call, match', [
    (lambda: nn.exchange.channel_exchange(jnp.ones((2, 3, 4)), jnp.ones((2, 5))),
     r'scales must be .* \[M, C\] = \(2, 4\)'),
    (lambda: nn.exchange.channel_exchange(jnp.ones((1, 3, 4)), jnp.ones((1, 4))),
     'at least 2 modalities'),
    (lambda: nn.exchange.channel_exchange(jnp.ones((2, 3, 4)), jnp.ones((2, 4)),
                                          threshold=np.float64(-1.0)), 'threshold'),
    (lambda: nn.exchange.channel_exchange(jnp.ones((2, 3, 4)), jnp.ones((2, 4)),
                                          jnp.ones((2, 3))), 'mask must be a bool'),
    (lambda: nn.exchange.channel_sparsity(jnp.ones(4)), r'\[M, C\] or \[L, M, C\]'),
    (lambda: nn.exchange.channel_sparsity(jnp.ones((2, 4)), weight=float('nan')), 'weight'),
    (lambda: nn.exchange.SharedConvNorm(3, 4, 2, num_modalities=2, rngs=nnx.Rngs(0)),
     'kernel_size must be odd'),
    (lambda: nn.exchange.SharedConvNorm(3, 4, 3, num_modalities=2, rngs=nnx.Rngs(0))(
        jnp.ones((2, 1, 4, 4, 5))), r'x must be \[2, B, H, W, 3\]'),
    (lambda: nn.exchange.ExchangeBottleneck(8, 2, num_modalities=1, rngs=nnx.Rngs(0)),
     'num_modalities'),
])
def test_bad_input_names_the_argument(call, match):
  with pytest.raises((ValueError, TypeError), match=match):
    call()


def test_nan_in_an_absent_row_stays_out_of_the_statistics():
  layer = nn.exchange.SharedConvNorm(3, 4, 3, num_modalities=2, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 3, 4, 4, 3)).at[1, 0].set(jnp.nan)
  mask = jnp.array([[True, True, True], [False, True, True]])
  out = layer(x, mask)
  assert np.all(np.isfinite(np.asarray(out[1, 1:]))) and np.all(np.isfinite(np.asarray(out[0])))
