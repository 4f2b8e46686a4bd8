"""Flax NNX modules: evidential heads, the multi-view model and torch-style initialisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lqmm import nn


def test_multi_view_model_outputs_nonnegative_evidence_in_order():
  model = nn.MultiViewEvidential({'a': 3, 'b': 5}, ('b', 'a'), 4, hidden=(8,), rngs=nnx.Rngs(0))
  inputs = {'a': jnp.ones((7, 3)), 'b': -jnp.ones((7, 5))}
  evidence = model(inputs)
  assert evidence.shape == (2, 7, 4) and bool(jnp.all(evidence >= 0))
  np.testing.assert_allclose(evidence[1], model.heads['a'](inputs['a']))


def test_torch_linear_init_bounds_and_single_draw():
  abstract = nnx.state(nnx.eval_shape(
      lambda: nn.MultiViewEvidential({'a': 400, 'b': 4}, ('a', 'b'), 10, rngs=nnx.Rngs(0))),
                       nnx.Param)
  params = nn.torch_linear_init(abstract, key=jax.random.key(1))
  pure = nnx.to_pure_dict(params)
  for view, fan_in in (('a', 400), ('b', 4)):
    layer = pure['heads'][view]['layers'][0]
    bound = 1 / np.sqrt(fan_in)
    for leaf in (layer['kernel'], layer['bias']):
      assert np.all(np.abs(leaf) <= bound) and np.max(np.abs(leaf)) > 0.8 * bound
  np.testing.assert_allclose(np.std(pure['heads']['a']['layers'][0]['kernel']),
                             1 / np.sqrt(3 * 400), rtol=0.05)  # U(-b, b) has std b / sqrt(3)
  again = nn.torch_linear_init(abstract, key=jax.random.key(1))
  jax.tree.map(np.testing.assert_array_equal, params, again)


def test_torch_linear_init_rejects_other_parameters():
  with pytest.raises(ValueError, match='only linear kernels and biases'):
    nn.torch_linear_init({'embedding': jnp.ones(3)}, key=jax.random.key(0))
  with pytest.raises(ValueError, match='only linear kernels and biases'):  # a bias alone
    nn.torch_linear_init({'layer': {'bias': jnp.ones(3)}}, key=jax.random.key(0))


def test_torch_linear_init_sets_normalisation_layers_as_torch():
  params = {'linear': {'kernel': jnp.zeros((4, 3)), 'bias': jnp.zeros(3)},
            'norm': {'scale': jnp.zeros(3), 'bias': jnp.ones(3)}}
  drawn = nn.torch_linear_init(params, key=jax.random.key(0))
  np.testing.assert_array_equal(drawn['norm']['scale'], np.ones(3))
  np.testing.assert_array_equal(drawn['norm']['bias'], np.zeros(3))
  # The linear layer's draw is the one it gets without the normalisation layer.
  alone = nn.torch_linear_init({'linear': params['linear']}, key=jax.random.key(0))
  np.testing.assert_array_equal(drawn['linear']['kernel'], alone['linear']['kernel'])
  assert np.all(np.abs(drawn['linear']['kernel']) <= 0.5)  # 1 / sqrt(fan_in = 4)


def test_errors_name_the_problem():
  with pytest.raises(KeyError, match="Unknown view 'c' in order"):
    nn.MultiViewEvidential({'a': 3}, ('a', 'c'), 2, rngs=nnx.Rngs(0))
  model = nn.MultiViewEvidential({'a': 3}, ('a',), 2, rngs=nnx.Rngs(0))
  with pytest.raises(KeyError, match="inputs has no view 'a'"):
    model({'b': jnp.ones((1, 3))})
  with pytest.raises(KeyError, match='Unknown evidence activation'):
    nn.EvidentialHead(3, 2, evidence='sigmoid', rngs=nnx.Rngs(0))


def test_uimc_head_is_sigmoid_then_squared_softplus():
  head = nn.EvidentialHead(3, 2, hidden=(4,), evidence='softplus_squared',
                           hidden_activation='sigmoid', rngs=nnx.Rngs(0))
  x = jnp.array([[0.5, -1.0, 2.0]])
  first, last = head.layers
  expected = jnp.square(jax.nn.softplus(last(jax.nn.sigmoid(first(x)))))
  np.testing.assert_allclose(head(x), expected, rtol=1e-6)
  relu = nn.EvidentialHead(3, 2, hidden=(4,), evidence='softplus_squared', rngs=nnx.Rngs(0))
  assert not np.allclose(relu(x), expected)  # same weights, ReLU between the layers
  with pytest.raises(KeyError, match='Unknown hidden activation'):
    nn.EvidentialHead(3, 2, hidden_activation='gelu', rngs=nnx.Rngs(0))


def test_cpm_decoders_reconstruct_each_view_linearly_with_output_dropout():
  decoders = nn.CPMDecoders({'a': 3, 'b': 5}, ('a', 'b'), latent_dim=4, hidden=6, dropout=0.5,
                            rngs=nnx.Rngs(0))
  latent = jnp.ones((2, 4))
  out = decoders(latent)
  assert out['a'].shape == (2, 3) and out['b'].shape == (2, 5)
  # Linear in the latent (no activation between the two layers): f(2h) - f(0) = 2 (f(h) - f(0)).
  zero = decoders(jnp.zeros((2, 4)))
  np.testing.assert_allclose(decoders(2 * latent)['a'] - zero['a'], 2 * (out['a'] - zero['a']),
                             rtol=1e-5, atol=1e-6)
  dropped = decoders(latent, key=jax.random.key(0))['b']
  kept = np.asarray(dropped) != 0
  assert 0 < kept.mean() < 1
  np.testing.assert_allclose(np.asarray(dropped)[kept], 2 * np.asarray(out['b'])[kept], rtol=1e-6)


def test_xavier_uniform_init_has_the_glorot_bound():
  decoders = nn.CPMDecoders({'a': 300}, ('a',), latent_dim=100, hidden=200, rngs=nnx.Rngs(0))
  params = nn.xavier_uniform_init(nnx.state(decoders, nnx.Param), key=jax.random.key(1))
  kernel = np.asarray(params['layers']['a'][1]['kernel'][...])
  bound = (6 / (200 + 300)) ** 0.5
  assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.95 * bound
  np.testing.assert_allclose(kernel.std(), bound / 3 ** 0.5, rtol=0.05)
  assert not np.asarray(params['layers']['a'][1]['bias'][...]).any()


def _incomplete_batch():
  rng = np.random.default_rng(0)
  inputs = {'a': jnp.asarray(rng.normal(size=(6, 3)), jnp.float32),
            'b': jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)}
  mask = jnp.array([[True, True, False, True, False, False],
                    [True, False, True, True, True, False]])
  return inputs, mask


def test_masked_fusion_ignores_missing_views_and_imputer_keeps_present_ones():
  inputs, mask = _incomplete_batch()
  changed = {'a': jnp.where(mask[0][:, None], inputs['a'], 99.0),
             'b': jnp.where(mask[1][:, None], inputs['b'], -99.0)}
  fusion = nn.MaskedFusionNet({'a': 3, 'b': 4}, ('a', 'b'), 5, hidden=(8,), rngs=nnx.Rngs(0))
  np.testing.assert_allclose(fusion(inputs, mask), fusion(changed, mask), rtol=1e-6)
  imputer = nn.CrossViewImputer({'a': 3, 'b': 4}, ('a', 'b'), hidden=(8, 2), rngs=nnx.Rngs(0))
  filled = imputer.impute(changed, mask)
  for index, view in enumerate(('a', 'b')):
    present = np.asarray(mask[index])
    np.testing.assert_array_equal(np.asarray(filled[view])[present],
                                  np.asarray(inputs[view])[present])
    assert np.all(np.abs(np.asarray(filled[view])[~present]) < 50)  # predicted, not the 99s
  np.testing.assert_allclose(filled['a'], imputer.impute(inputs, mask)['a'], rtol=1e-6)


def test_present_subset_keeps_a_view_of_every_row_that_has_one():
  _, mask = _incomplete_batch()
  many = jnp.tile(mask, (1, 500))
  subset = nn.incomplete.present_subset(jax.random.key(0), many, keep=0.3)
  assert not np.any(np.asarray(subset) & ~np.asarray(many))
  has_view = np.asarray(many).any(0)
  np.testing.assert_array_equal(np.asarray(subset).any(0), has_view)
  # Rows with two views: each kept with probability 0.3, plus the fallback when both drop.
  two = np.asarray(many).sum(0) == 2
  rate = np.asarray(subset)[:, two].mean()
  assert abs(rate - (0.3 + 0.49 / 2)) < 0.03
  with pytest.raises(ValueError, match='keep'):
    nn.incomplete.present_subset(jax.random.key(0), mask, keep=0.0)


def test_bfloat16_matmuls_give_float32_evidence_close_to_float32():
  """`compute_dtype=jnp.bfloat16`: the same parameters, bfloat16 operands with float32
  accumulation, float32 evidence within bfloat16's rounding of the float32 model's."""
  inputs = {'a': jax.random.uniform(jax.random.key(1), (16, 30)),
            'b': jax.random.uniform(jax.random.key(2), (16, 7))}
  exact = nn.MultiViewEvidential({'a': 30, 'b': 7}, ('a', 'b'), 4, hidden=(8,),
                                 rngs=nnx.Rngs(0))
  low = nn.MultiViewEvidential({'a': 30, 'b': 7}, ('a', 'b'), 4, hidden=(8,),
                               compute_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  evidence, rounded = exact(inputs), low(inputs)
  assert rounded.dtype == jnp.float32 and rounded.shape == evidence.shape == (2, 16, 4)
  np.testing.assert_allclose(rounded, evidence, rtol=0.05, atol=0.02)
  assert not np.array_equal(rounded, evidence)            # the matmuls did run in bfloat16
  for bad in ('int8', 'float33'):
    with pytest.raises(TypeError, match='compute_dtype must be None or a floating dtype'):
      nn.EvidentialHead(3, 2, compute_dtype=bad, rngs=nnx.Rngs(0))
