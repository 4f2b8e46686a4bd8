"""Multimodal Dynamics: parity with TencentAILabHealthcare/mmdynamics (forward, loss, gradients,
three Adam steps), masks, and the clean detached-target variant."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm import nn
from lqmm.nn import dynamics
from tests import helpers

vectors = helpers.vectors_fixture('mmdynamics_vectors.npz')
ORDER = ('v0', 'v1', 'v2')
# torch module name -> attribute of MultimodalDynamics.
MODULES = {'FeatureInforEncoder': 'gates', 'FeatureEncoder': 'encoders',
           'TCPClassifierLayer': 'classifiers', 'TCPConfidenceLayer': 'confidences'}


def _model(vectors, prefix='param'):
  """The model with the original's parameters (torch [out, in] weights -> [in, out] kernels)."""
  dims = {name: vectors[f'input/x{index}'].shape[1] for index, name in enumerate(ORDER)}
  hidden = vectors[f'{prefix}/FeatureEncoder.0.clf.0.weight'].shape[0]
  model = nn.MultimodalDynamics(dims, ORDER, 2, hidden=hidden, dropout=0.0, rngs=nnx.Rngs(0))
  for torch_name, attribute in MODULES.items():
    for index, name in enumerate(ORDER):
      layer = getattr(model, attribute)[name]
      layer.kernel = nnx.Param(jnp.asarray(vectors[f'{prefix}/{torch_name}.{index}.clf.0.weight'].T))
      layer.bias = nnx.Param(jnp.asarray(vectors[f'{prefix}/{torch_name}.{index}.clf.0.bias']))
  model.fusion.kernel = nnx.Param(jnp.asarray(vectors[f'{prefix}/MMClasifier.0.clf.0.weight'].T))
  model.fusion.bias = nnx.Param(jnp.asarray(vectors[f'{prefix}/MMClasifier.0.clf.0.bias']))
  return model


def _inputs(vectors):
  return ({name: jnp.asarray(vectors[f'input/x{index}']) for index, name in enumerate(ORDER)},
          jnp.asarray(vectors['input/labels']).astype(jnp.int32))


def _torch_grads(vectors, params):
  """The stored torch gradients laid out like `params` (nnx.State)."""
  model = _model(vectors, 'grad')
  return nnx.split(model, nnx.Param)[1]


def test_forward_and_loss_terms_match(vectors, x64):
  del x64
  model = _model(vectors)
  inputs, labels = _inputs(vectors)
  graphdef, params = nnx.split(model, nnx.Param)
  outputs = jax.jit(lambda params: nnx.merge(graphdef, params)(inputs))(params)
  np.testing.assert_allclose(outputs.logits, vectors['train/logits'], rtol=1e-12, atol=1e-13)
  np.testing.assert_allclose(outputs.logits, vectors['infer/logits'], rtol=1e-12, atol=1e-13)
  for index in range(3):
    np.testing.assert_allclose(outputs.gates[index], vectors[f'train/gate_v{index}'], rtol=1e-12)
    np.testing.assert_allclose(outputs.modality_logits[index],
                               vectors[f'train/tcp_logits_v{index}'], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(outputs.confidence[index], vectors[f'train/tcp_conf_v{index}'],
                               rtol=1e-12, atol=1e-13)
  terms = dynamics.loss_terms(outputs, labels)
  np.testing.assert_allclose(terms['fused_ce'], vectors['train/loss_mm_ce'], rtol=1e-12)
  for index in range(3):
    np.testing.assert_allclose(terms['gate'][index], vectors[f'train/loss_gate_v{index}'],
                               rtol=1e-12)
    np.testing.assert_allclose(terms['confidence'][index],
                               vectors[f'train/loss_conf_mse_v{index}'], rtol=1e-12)
    np.testing.assert_allclose(terms['modality_ce'][index],
                               vectors[f'train/loss_tcp_ce_v{index}'], rtol=1e-12)
  np.testing.assert_allclose(terms['total'], vectors['train/loss'], rtol=1e-13)


def _loss_and_grads(model, inputs, labels, detach_target=False):
  graphdef, params = nnx.split(model, nnx.Param)

  def objective(params):
    outputs = nnx.merge(graphdef, params)(inputs)
    return dynamics.loss_terms(outputs, labels, detach_target=detach_target)['total']

  return graphdef, params, jax.jit(jax.value_and_grad(objective))(params)


def test_gradients_match(vectors, x64):
  del x64
  inputs, labels = _inputs(vectors)
  _, params, (_, grads) = _loss_and_grads(_model(vectors), inputs, labels)
  expected = _torch_grads(vectors, params)
  for actual, reference in zip(jax.tree.leaves(grads), jax.tree.leaves(expected)):
    np.testing.assert_allclose(actual, reference, rtol=1e-10,
                               atol=1e-12 * max(np.abs(reference).max(), 1e-30))


def test_three_adam_steps_with_coupled_weight_decay_match(vectors, x64):
  del x64
  inputs, labels = _inputs(vectors)
  graphdef, params = nnx.split(_model(vectors), nnx.Param)
  optimizer = optax.chain(optax.add_decayed_weights(1e-4), optax.adam(1e-4))
  opt_state = optimizer.init(params)

  def objective(params):
    return dynamics.loss_terms(nnx.merge(graphdef, params)(inputs), labels)['total']

  @jax.jit
  def step(params, opt_state):
    value, grads = jax.value_and_grad(objective)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return value, optax.apply_updates(params, updates), opt_state

  with jax.numpy_dtype_promotion('standard'):  # optax's Adam fails under strict promotion
    for index in range(3):
      value, params, opt_state = step(params, opt_state)
      np.testing.assert_allclose(value, vectors['adam/loss'][index], rtol=1e-11)
  expected = nnx.split(_model(vectors, 'adam/param'), nnx.Param)[1]
  for actual, reference in zip(jax.tree.leaves(params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(actual, reference, rtol=1e-9, atol=1e-12)


def test_detached_target_trains_the_classifiers_only_through_their_ce(vectors, x64):
  del x64
  inputs, labels = _inputs(vectors)
  model = _model(vectors)
  _, _, (_, attached) = _loss_and_grads(model, inputs, labels)
  _, _, (_, detached) = _loss_and_grads(model, inputs, labels, detach_target=True)
  difference = attached['classifiers']['v0']['kernel'][...] - detached['classifiers']['v0'][
      'kernel'][...]
  assert np.abs(difference).max() > 1e-6
  # The confidence heads get the same gradient either way.
  np.testing.assert_allclose(attached['confidences']['v0']['kernel'][...],
                             detached['confidences']['v0']['kernel'][...], rtol=1e-12)


def test_missing_modality_has_zero_confidence_and_no_influence(vectors):
  model = _model(vectors)
  inputs, _ = _inputs(vectors)
  inputs = jax.tree.map(lambda x: x.astype(jnp.float32), inputs)
  mask = jnp.ones((3, 16), bool).at[1].set(False)
  outputs = model(inputs, mask)
  np.testing.assert_array_equal(outputs.confidence[1], 0.0)
  changed = dict(inputs, v1=inputs['v1'] * 5 + 3)
  np.testing.assert_allclose(model(changed, mask).logits, outputs.logits, rtol=1e-6)


def test_bfloat16_matmuls_stay_close(vectors):
  model = _model(vectors)
  inputs, _ = _inputs(vectors)
  inputs = jax.tree.map(lambda x: x.astype(jnp.float32), inputs)
  reference = np.asarray(model(inputs).logits)
  model.compute_dtype = jnp.bfloat16
  low = np.asarray(model(inputs).logits)
  assert low.dtype == np.float32
  # Measured: max |error| = 6.2e-4 against max |logit| = 0.067, i.e. 0.9 % of the scale (bf16
  # keeps 8 significant bits, 0.4 % per rounding). The bound is about 3x that; the floor fails
  # when the matmuls are not run in bfloat16 at all (the float32 result is reproduced exactly).
  scale = np.abs(reference).max()
  error = np.abs(low - reference).max()
  assert 1e-3 * scale < error < 0.03 * scale, (error, scale)


def test_xavier_init_has_the_right_scale():
  model = nnx.eval_shape(lambda: nn.MultimodalDynamics({'a': 200}, ('a',), 2, hidden=1000,
                                                       rngs=nnx.Rngs(0)))
  _, abstract = nnx.split(model, nnx.Param)
  params = dynamics.xavier_normal_init(abstract, key=jax.random.key(0))
  kernel = np.asarray(params['encoders']['a']['kernel'][...])
  np.testing.assert_allclose(kernel.std(), (2 / 1200)**0.5, rtol=0.02)
  np.testing.assert_array_equal(params['encoders']['a']['bias'][...], 0.0)


def test_keep_mask_rate_and_independence():
  keep, rate = dynamics.keep_mask(jax.random.key(0), (3, 100, 1000), 0.5)
  assert rate == 0.5 and keep.shape == (3, 100, 1000)
  assert abs(float(keep.mean()) - 0.5) < 0.005
  # Neighbouring elements (bytes of one draw) are uncorrelated.
  flat = np.asarray(keep).reshape(-1).astype(np.float64)
  assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01
  keep, rate = dynamics.keep_mask(jax.random.key(1), (7, 13), 0.1)
  assert rate == round(25.6) / 256 and keep.shape == (7, 13)


def test_dropout_changes_training_outputs_only_with_a_key(vectors):
  model = _model(vectors)
  model.dropout = 0.5
  inputs, _ = _inputs(vectors)
  inputs = jax.tree.map(lambda x: x.astype(jnp.float32), inputs)
  deterministic = model(inputs).logits
  np.testing.assert_array_equal(model(inputs).logits, deterministic)
  assert not np.allclose(model(inputs, dropout_key=jax.random.key(0)).logits, deterministic)
