"""`lqmm.nn.FeatureFusionNet`: every family's outputs, presence masks, DynMM's routed inference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lqmm import nn
from lqmm.nn import feature_fusion

SHAPES = {'image': (12, 10), 'vector': (7,), 'other': (9,)}
KWARGS = {'grid': 2, 'channels': (4, 8), 'hidden': (16,), 'num_heads': 2, 'mbt_layers': 2,
          'mbt_fusion_layer': 1, 'gate_hidden': 8, 'gate_pool': 2}


def _net(fusion, order=('image', 'vector'), seed=0, **kwargs):
  return nn.FeatureFusionNet({name: SHAPES[name] for name in order}, order, 5, fusion=fusion,
                             rngs=nnx.Rngs(seed), **(KWARGS | kwargs))


def _inputs(order, batch=6, seed=1):
  keys = jax.random.split(jax.random.key(seed), len(order))
  return {name: jax.random.normal(key, (batch,) + SHAPES[name])
          for key, name in zip(keys, order)}


@pytest.mark.parametrize('fusion', feature_fusion.FUSIONS)
def test_outputs_and_gradients_are_finite(fusion):
  order = ('image', 'vector', 'other')
  model = _net(fusion, order)
  inputs = _inputs(order)
  mask = jnp.ones((len(order), 6), bool).at[0, :3].set(False)
  key = jax.random.key(2) if fusion == 'dynmm' else None
  out = model(inputs, mask, key=key)
  num = len(order) + 1 if fusion == 'dynmm' else len(order)
  assert out.logits.shape == (6, 5)
  assert out.modality_logits.shape == (num, 6, 5)
  assert np.all(np.isfinite(out.logits))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  target = jax.random.normal(jax.random.key(3), (6, 5))   # MBT's head starts at zero

  def loss(params):
    model = nnx.merge(graphdef, params, rest, copy=True)
    return jnp.sum(model(inputs, mask, key=key).logits * target)

  grads = jax.jit(jax.grad(loss))(params)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert any(np.any(g != 0) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize('fusion', ['late', 'gated', 'cen', 'tokenfusion', 'mbt', 'dynmm'])
def test_an_absent_modality_never_reaches_the_output(fusion):
  order = ('image', 'vector', 'other')
  model = _net(fusion, order)
  model.eval()
  inputs = _inputs(order)
  mask = jnp.ones((3, 6), bool).at[1, ::2].set(False)
  changed = dict(inputs, vector=inputs['vector'].at[::2].set(jnp.nan))
  np.testing.assert_array_equal(model(inputs, mask).logits, model(changed, mask).logits)


def test_late_fusion_is_the_mean_of_the_present_modalities_logits():
  model = _net('late')
  inputs = _inputs(('image', 'vector'))
  mask = jnp.ones((2, 6), bool).at[0, :2].set(False)
  out = model(inputs, mask)
  np.testing.assert_allclose(out.logits[:2], out.modality_logits[1, :2], rtol=1e-6)
  np.testing.assert_allclose(out.logits[2:], out.modality_logits[:, 2:].mean(0), rtol=1e-6)


def test_gate_weights_sum_to_one_over_present_modalities():
  model = _net('gated', ('image', 'vector', 'other'))
  mask = jnp.ones((3, 6), bool).at[2, 1:4].set(False)
  weights = model(_inputs(('image', 'vector', 'other')), mask).weights
  np.testing.assert_allclose(weights.sum(0), 1, rtol=1e-6)
  assert np.all(weights[2, 1:4] == 0) and np.all(weights[:, 0] > 0)


def test_cen_batch_statistics_leave_absent_rows_out():
  model = _net('cen')
  inputs = _inputs(('image', 'vector'))
  mask = jnp.ones((2, 6), bool).at[0, 4:].set(False)
  model(inputs, mask)
  first = jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))
  again = _net('cen')
  changed = dict(inputs, image=inputs['image'].at[4:].multiply(100.0))
  again(changed, mask)
  second = jax.tree.map(np.asarray, nnx.state(again, nnx.BatchStat))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), first, second)


def test_dynmm_routed_inference_equals_running_every_expert():
  order = ('image', 'vector', 'other')
  model = _net('dynmm', order)
  inputs = _inputs(order, batch=32, seed=4)
  mask = jnp.ones((3, 32), bool).at[0, :16].set(False).at[2, 8:12].set(False)
  reference = model(inputs, mask).logits                 # argmax expert, every expert run
  logits, stats, choice = model.infer(inputs, mask)
  np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-6)
  # An expert that reads an absent modality is never chosen (experts: image, vector, other,
  # all).
  assert not np.any(choice[:16] == 0) and not np.any(choice[8:12] == 2)
  assert stats.flops <= stats.flops_all and sum(stats.rows) == 32
  costs = model.costs
  assert len(costs) == 4 and costs[-1] >= max(costs[:-1]) > 0


def test_dynmm_training_mixture_is_a_convex_combination_of_experts():
  model = _net('dynmm')
  out = model(_inputs(('image', 'vector')), key=jax.random.key(0), temperature=0.5)
  np.testing.assert_allclose(out.weights.sum(-1), 1, rtol=1e-5)
  np.testing.assert_allclose(out.logits, jnp.einsum('be,ebk->bk', out.weights,
                                                    out.modality_logits), rtol=1e-5, atol=1e-6)


def test_penalties_are_the_families_sparsity_terms():
  inputs = _inputs(('image', 'vector'))
  assert float(_net('late')(inputs).penalty) == 0.0
  cen = _net('cen')
  np.testing.assert_allclose(cen(inputs).penalty, nn.exchange.channel_sparsity(
      cen.block.scales, weight=2e-4), rtol=1e-6)
  assert float(_net('tokenfusion', token_weight=0.0)(inputs).penalty) == 0.0
  assert float(_net('tokenfusion')(inputs).penalty) > 0.0


@pytest.mark.parametrize('kwargs, error, match', [
    ({'fusion': 'unknown'}, KeyError, 'fusion'),
    ({'fusion': 'mbt', 'num_heads': 3}, ValueError, 'num_heads'),
    ({'fusion': 'late', 'grid': 4}, ValueError, 'grid'),
    ({'fusion': 'late', 'cen_weight': -1.0}, ValueError, 'cen_weight'),
    ({'fusion': 'late', 'channels': ()}, ValueError, 'channels'),
])
def test_bad_settings_name_the_argument(kwargs, error, match):
  with pytest.raises(error, match=match):
    _net(**kwargs)


def test_bad_inputs_name_the_argument():
  with pytest.raises(ValueError, match='order'):
    nn.FeatureFusionNet({'image': (12, 10)}, ('image',), 5, rngs=nnx.Rngs(0), **KWARGS)
  with pytest.raises(KeyError, match='shapes'):
    nn.FeatureFusionNet({'image': (12, 10)}, ('image', 'vector'), 5, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='input shape'):
    nn.FeatureFusionNet({'a': (2, 3, 4), 'b': (3,)}, ('a', 'b'), 5, rngs=nnx.Rngs(0))
  model = _net('late')
  inputs = _inputs(('image', 'vector'))
  with pytest.raises(ValueError, match=r"inputs\['vector'\]"):
    model(dict(inputs, vector=inputs['vector'][:, :3]))
  with pytest.raises(ValueError, match='batch size'):
    model(dict(inputs, vector=inputs['vector'][:3]))
  with pytest.raises(ValueError, match='mask'):
    model(inputs, jnp.ones((3, 6), bool))
  with pytest.raises(ValueError, match='dynmm'):
    model.infer(inputs)
