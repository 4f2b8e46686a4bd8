"""COMPLETER / DCP: the contrastive loss, BatchNorm, the networks and the whole DCP objective.

Parity with the original PyTorch code (XLearning-SCU/2022-TPAMI-DCP at d7a4b47) through
`tests/reference/data/dcp_vectors.npz` (generator: `tests/reference/generate_dcp_vectors.py`,
provenance: `tests/reference/PROVENANCE_dcp.md`); laws with hypothesis.
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

from lqmm import losses
from lqmm import nn
from lqmm.nn import incomplete

VECTORS = pathlib.Path(__file__).resolve().parents[1] / 'reference' / 'data' / 'dcp_vectors.npz'


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(VECTORS))


def _torch_modules(state: dict, prefix: str) -> tuple[list, list]:
  """The original Sequential's linear layers and BatchNorms, in order, from its state dict."""
  linear, norms = {}, {}
  for key, value in state.items():
    if not key.startswith(prefix):
      continue
    index, name = key[len(prefix):].split('.')
    if name == 'running_mean':
      norms.setdefault(int(index), {})['mean'] = value
    elif name == 'running_var':
      norms.setdefault(int(index), {})['var'] = value
    elif name == 'weight' and value.ndim == 2:
      linear.setdefault(int(index), {})['kernel'] = value.T
    else:
      target = norms if f'{prefix}{index}.running_mean' in state else linear
      target.setdefault(int(index), {})['scale' if name == 'weight' else 'bias'] = value
  return [linear[i] for i in sorted(linear)], [norms[i] for i in sorted(norms)]


def _load(layers, norms, state: dict, prefix: str) -> None:
  linear, stats = _torch_modules(state, prefix)
  assert len(linear) == len(layers) and len(stats) == len(norms)
  for layer, values in zip(layers, linear):
    layer.kernel.set_value(jnp.asarray(values['kernel']))
    layer.bias.set_value(jnp.asarray(values['bias']))
  for norm, values in zip(norms, stats):
    for name in ('scale', 'bias', 'mean', 'var'):
      getattr(norm, name).set_value(jnp.asarray(values[name]))


def _load_autoencoder(module, state, prefix=''):
  _load(module.encoder, module.encoder_norms, state, prefix + '_encoder.')
  _load(module.decoder, module.decoder_norms, state, prefix + '_decoder.')


def _state(ref, prefix):
  return {key[len(prefix):]: value for key, value in ref.items() if key.startswith(prefix)}


def _check_stats(layers_norms, state, prefix):
  for norms, part in layers_norms:
    _, stats = _torch_modules(state, prefix + part)
    for norm, values in zip(norms, stats):
      np.testing.assert_allclose(norm.mean[...], values['mean'], rtol=1e-10, atol=1e-12)
      np.testing.assert_allclose(norm.var[...], values['var'], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- the loss
def test_loss_and_gradients_equal_the_original(ref, x64):
  for case in range(int(ref['loss_num_cases'])):
    z1, z2 = jnp.asarray(ref[f'loss_{case}_z1']), jnp.asarray(ref[f'loss_{case}_z2'])
    alpha = float(ref[f'loss_{case}_lamb']) - 1
    value, grads = jax.jit(jax.value_and_grad(
        lambda a, b: losses.contrastive.mutual_information_loss(a, b, alpha=alpha),
        argnums=(0, 1)))(z1, z2)
    np.testing.assert_allclose(value, ref[f'loss_{case}_value'], rtol=1e-12)
    np.testing.assert_allclose(grads[0], ref[f'loss_{case}_grad_z1'], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads[1], ref[f'loss_{case}_grad_z2'], rtol=1e-9, atol=1e-12)


@hypothesis.given(hnp.arrays(np.float64, (9, 4), elements=st.floats(-3, 3)),
                  hnp.arrays(np.float64, (9, 4), elements=st.floats(-3, 3)),
                  st.permutations(range(9)), st.floats(0, 10))
def test_loss_is_symmetric_and_ignores_row_order(a, b, order, alpha):
  with jax.enable_x64(True):
    z1, z2 = jax.nn.softmax(jnp.asarray(a), axis=1), jax.nn.softmax(jnp.asarray(b), axis=1)
    loss = losses.contrastive.mutual_information_loss
    value = loss(z1, z2, alpha=alpha)
    order = np.asarray(order)
    np.testing.assert_allclose(loss(z2, z1, alpha=alpha), value, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(loss(z1[order], z2[order], alpha=alpha), value, rtol=1e-10,
                               atol=1e-12)


@hypothesis.given(hnp.arrays(np.float64, (8, 3), elements=st.floats(-3, 3)),
                  hnp.arrays(np.float64, (8, 3), elements=st.floats(-3, 3)),
                  hnp.arrays(np.bool_, 8))
def test_zero_weight_rows_are_dropped_rows(a, b, keep):
  hypothesis.assume(keep.any())
  with jax.enable_x64(True):
    z1, z2 = jax.nn.softmax(jnp.asarray(a), axis=1), jax.nn.softmax(jnp.asarray(b), axis=1)
    loss = losses.contrastive.mutual_information_loss
    weighted = loss(z1, z2, weights=jnp.asarray(keep, jnp.float64))
    np.testing.assert_allclose(weighted, loss(z1[keep], z2[keep]), rtol=1e-10, atol=1e-12)


def test_loss_is_minus_information_minus_entropies(x64):
  """Without clamping (all cells positive), the loss is -I - alpha (H1 + H2), from the joint."""
  key1, key2 = jax.random.split(jax.random.key(3))
  z1 = jax.nn.softmax(jax.random.normal(key1, (30, 5), jnp.float64), axis=1)
  z2 = jax.nn.softmax(jax.random.normal(key2, (30, 5), jnp.float64), axis=1)
  joint = z1.T @ z2
  joint = (joint + joint.T) / 2
  joint = joint / joint.sum()
  marginal = joint.sum(1)
  entropy = -jnp.sum(marginal * jnp.log(marginal))
  information = jnp.sum(joint * jnp.log(joint / jnp.outer(marginal, marginal)))
  for alpha in (0.0, 9.0):
    np.testing.assert_allclose(losses.contrastive.mutual_information_loss(z1, z2, alpha=alpha),
                               -information - alpha * 2 * entropy, rtol=1e-12)


# ---------------------------------------------------------------- BatchNorm and the networks
@nnx.jit
def _autoencode(autoencoder, x):
  code = autoencoder.encode(x)
  return code, autoencoder.decode(code)


@nnx.jit
def _call(module, x):
  return module(x)


@nnx.jit
def _losses(network, inputs, mask):
  return network.losses(inputs, mask, alpha=9.0)


@nnx.jit
def _represent(network, inputs, mask):
  return network.represent(inputs, mask)


def test_autoencoder_and_predictor_equal_the_original_in_both_modes(ref, x64):
  autoencoder = incomplete.SoftmaxAutoencoder(12, 6, hidden=(16, 16, 16), rngs=nnx.Rngs(0))
  predictor = incomplete.LatentPredictor(6, hidden=(8, 10, 8), rngs=nnx.Rngs(0))
  _load_autoencoder(autoencoder, _state(ref, 'ae_initial/'))
  _load(predictor.encoder, predictor.encoder_norms, _state(ref, 'pred_initial/'), '_encoder.')
  _load(predictor.decoder, predictor.decoder_norms, _state(ref, 'pred_initial/'), '_decoder.')
  code, decoded = _autoencode(autoencoder, jnp.asarray(ref['ae_x_train']))
  np.testing.assert_allclose(code, ref['ae_train_out0'], rtol=1e-10, atol=1e-13)
  np.testing.assert_allclose(decoded, ref['ae_train_out1'], rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(_call(predictor, jnp.asarray(ref['pred_x_train'])),
                             ref['pred_train_out0'], rtol=1e-10, atol=1e-13)
  _check_stats([(autoencoder.encoder_norms, '_encoder.'), (autoencoder.decoder_norms,
                                                           '_decoder.')],
               _state(ref, 'ae_final/'), '')
  _check_stats([(predictor.encoder_norms, '_encoder.'), (predictor.decoder_norms, '_decoder.')],
               _state(ref, 'pred_final/'), '')
  autoencoder.eval()
  predictor.eval()
  code, decoded = _autoencode(autoencoder, jnp.asarray(ref['ae_x_eval']))
  np.testing.assert_allclose(code, ref['ae_eval_out0'], rtol=1e-10, atol=1e-13)
  np.testing.assert_allclose(decoded, ref['ae_eval_out1'], rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(_call(predictor, jnp.asarray(ref['pred_x_eval'])),
                             ref['pred_eval_out0'], rtol=1e-10, atol=1e-13)


def test_masked_batchnorm_is_batchnorm_of_the_present_rows(x64):
  x = jax.random.normal(jax.random.key(0), (12, 3), jnp.float64)
  keep = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0], bool)
  masked, plain = nn.norm.BatchNorm(3), nn.norm.BatchNorm(3)
  for norm in (masked, plain):
    for name in ('scale', 'bias', 'mean', 'var'):
      getattr(norm, name).set_value(getattr(norm, name)[...].astype(jnp.float64))
  np.testing.assert_allclose(masked(x, jnp.asarray(keep))[keep], plain(x[keep]), rtol=1e-12)
  np.testing.assert_allclose(masked.var[...], plain.var[...], rtol=1e-12)
  before = masked.mean[...]
  masked(x, jnp.zeros(12, bool))  # no present row: the running statistics stay
  np.testing.assert_array_equal(masked.mean[...], before)


def _dcp_network(ref, mode):
  dims = {f'v{v}': int(ref[f'mv_x{v}'].shape[1]) for v in range(3)}
  network = nn.DualPredictionNet(dims, tuple(dims), latent_dim=6, hidden=(16, 16, 16),
                                 predictor_hidden=(8, 10, 8),
                                 pairing='core' if mode == 'cv' else 'all', rngs=nnx.Rngs(0))
  return network


def _load_dcp(network, state):
  for v, view in enumerate(network.order):
    _load_autoencoder(network.autoencoders[view], state, f'autoencoder{v}.')
  for source, target in network.ordered_pairs():
    predictor = network.predictors[f'{source}_to_{target}']
    prefix = f'Prediction_{source[1:]}_{target[1:]}.'
    _load(predictor.encoder, predictor.encoder_norms, state, prefix + '_encoder.')
    _load(predictor.decoder, predictor.decoder_norms, state, prefix + '_decoder.')


@pytest.mark.parametrize('mode', ['cv', 'cg'])
def test_dcp_objective_and_representation_equal_the_original(ref, mode, x64):
  """The total loss on every batch the original trained on, then its k-means input."""
  network = _dcp_network(ref, mode)
  _load_dcp(network, _state(ref, f'{mode}_initial/'))
  for index in range(int(ref[f'{mode}_num_batches'])):
    inputs = {f'v{v}': jnp.asarray(ref[f'{mode}_batch{index}_x{v}']) for v in range(3)}
    size = inputs['v0'].shape[0]
    terms = _losses(network, inputs, jnp.ones((3, size), bool))
    total = terms['contrastive'] + 0.1 * terms['reconstruction'] + 0.1 * terms['prediction']
    np.testing.assert_allclose(total, ref[f'{mode}_batch{index}_loss'], rtol=1e-10)
  # The running statistics after the original's epoch equal ours after the same batches.
  _check_stats([(network.autoencoders['v0'].encoder_norms, '_encoder.')],
               _state(ref, f'{mode}_final/'), 'autoencoder0.')
  _load_dcp(network, _state(ref, f'{mode}_final/'))
  network.eval()
  inputs = {f'v{v}': jnp.asarray(ref[f'mv_x{v}']) for v in range(3)}
  represented = _represent(network, inputs, jnp.asarray(ref['mv_mask'].T, bool))
  np.testing.assert_allclose(represented, ref[f'{mode}_representation'], rtol=1e-9, atol=1e-12)


def test_missing_rows_change_nothing_in_training_terms():
  """Rows without a view give the same terms as the batch without those rows (masked BN)."""
  dims = {'a': 5, 'b': 4, 'c': 3}
  network = nn.DualPredictionNet(dims, tuple(dims), latent_dim=4, hidden=(6,),
                                 predictor_hidden=(5,), pairing='all', rngs=nnx.Rngs(1))
  keys = jax.random.split(jax.random.key(0), 3)
  inputs = {view: jax.random.normal(key, (10, d)) for key, (view, d) in zip(keys, dims.items())}
  complete = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1, 1], bool)
  mask = jnp.asarray(np.tile(complete, (3, 1)))
  garbage = {view: jnp.where(complete[:, None], x, 1e3) for view, x in inputs.items()}
  masked = _losses(network, garbage, mask)
  dropped = _losses(network, {view: x[complete] for view, x in inputs.items()},
                    jnp.ones((3, int(complete.sum())), bool))
  for name in masked:
    np.testing.assert_allclose(masked[name], dropped[name], rtol=2e-5)


def test_bad_arguments_name_themselves():
  with pytest.raises(ValueError, match='at least two views'):
    nn.DualPredictionNet({'a': 3}, ('a',), latent_dim=2, rngs=nnx.Rngs(0))
  with pytest.raises(KeyError, match='pairing'):
    nn.DualPredictionNet({'a': 3, 'b': 2}, ('a', 'b'), latent_dim=2, pairing='ring',
                         rngs=nnx.Rngs(0))
  z = jax.nn.softmax(jnp.ones((4, 3)), axis=1)
  with pytest.raises(ValueError, match='same shape'):
    losses.contrastive.mutual_information_loss(z, z[:3])
  with pytest.raises(ValueError, match='z1'):
    losses.contrastive.mutual_information_loss(z - 1, z)
  with pytest.raises(ValueError, match='weights'):
    losses.contrastive.mutual_information_loss(z, z, weights=jnp.zeros(4))
  with pytest.raises(ValueError, match='alpha'):
    losses.contrastive.mutual_information_loss(z, z, alpha=-1.0)
