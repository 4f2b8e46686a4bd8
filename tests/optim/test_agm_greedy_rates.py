"""AGM, the greedy schedule and per-modality learning rates: behaviour beyond the parity vectors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lqmm import optim
from lqmm import valuation


@pytest.mark.parametrize('num_modalities', [2, 3])
def test_mono_outputs_split_an_additive_model_exactly(num_modalities):
  keys = jax.random.split(jax.random.key(0), 2)
  parts = jax.random.normal(keys[0], (num_modalities, 5, 4))
  constant = jax.random.normal(keys[1], (5, 4))
  masks = valuation.subset_masks(num_modalities)
  subsets = jnp.einsum('sm,mbk->sbk', masks.astype(jnp.float32), parts) + constant[None]
  mono = optim.mono_outputs(subsets)
  np.testing.assert_allclose(mono, parts + constant[None] / num_modalities, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(mono.sum(0), subsets[-1], rtol=1e-5, atol=1e-5)


def test_agm_slows_the_modality_that_fits_better_than_usual():
  labels = jnp.arange(8, dtype=jnp.int32) % 2
  mono = jnp.stack([4 * jax.nn.one_hot(labels, 2), jnp.zeros((8, 2))])
  state = optim.agm_step(optim.adaptive.init_agm(2), mono, labels, alpha=1.0)
  assert float(state.coefficients[0]) < 1 < float(state.coefficients[1])
  np.testing.assert_allclose(state.running_scores, state.scores)
  # Once the running mean has caught up with a steady imbalance, the coefficients return to 1.
  for _ in range(200):
    state = optim.agm_step(state, mono, labels, alpha=1.0)
  np.testing.assert_allclose(state.coefficients, [1.0, 1.0], atol=1e-2)


def test_scale_gradient_scales_only_the_backward_pass():
  x = jnp.array([1.0, -2.0])
  np.testing.assert_array_equal(optim.scale_gradient(x, jnp.float32(3.0)), x)
  grad = jax.grad(lambda x: jnp.sum(optim.scale_gradient(x, jnp.float32(3.0)) ** 2))(x)
  np.testing.assert_allclose(grad, 3 * 2 * x)


def test_agm_wrapper_partitions_by_label():
  params = {'audio': jnp.ones(3), 'visual': jnp.ones(3), 'head': jnp.ones(2)}
  labels = {'audio': 'audio', 'visual': 'visual', 'head': 'shared'}
  tx = optim.agm(labels, ('audio', 'visual'), alpha=1.0)
  targets = jnp.arange(8, dtype=jnp.int32) % 2
  mono = jnp.stack([4 * jax.nn.one_hot(targets, 2), jnp.zeros((8, 2))])
  updates, state = tx.update(params, tx.init(params), mono_logits=mono, labels=targets)
  coefficients = state.inner_states['audio'].inner_state.agm.coefficients
  np.testing.assert_allclose(updates['audio'], coefficients[0] * params['audio'], rtol=1e-6)
  np.testing.assert_allclose(updates['visual'], coefficients[1] * params['visual'], rtol=1e-6)
  np.testing.assert_array_equal(updates['head'], params['head'])


def test_greedy_needs_every_group_and_params():
  params = {'a': jnp.ones(2), 'b': jnp.ones(2)}
  tx = optim.greedy_schedule({'a': 'main:0', 'b': 'main:1'})
  with pytest.raises(ValueError, match='bypass:0'):
    tx.update(params, tx.init(params), params, epoch=0)
  with pytest.raises(TypeError, match='params'):
    tx.update(params, tx.init(params), epoch=0)
  with pytest.raises(TypeError, match='epoch'):
    tx.update(params, tx.init(params), params)


def test_greedy_waits_for_start_epoch_then_curates_for_window_steps():
  labels = {'a': 'main:0', 'b': 'main:1', 'x': 'bypass:0', 'y': 'bypass:1'}
  params = jax.tree.map(lambda _: jnp.ones(2), labels)
  grads = {'a': jnp.ones(2), 'b': jnp.ones(2), 'x': 3 * jnp.ones(2), 'y': jnp.ones(2)}
  tx = optim.greedy_schedule(labels, window=3, start_epoch=1)
  state = tx.init(params)
  _, state = tx.update(grads, state, params, epoch=0)
  assert not bool(state.curating)
  history = []
  for _ in range(5):
    _, state = tx.update(grads, state, params, epoch=1)
    history.append((bool(state.curating), int(state.caring)))
  # Trigger, three curation steps (the third one ends the window), then a new trigger.
  assert history == [(True, 0), (True, 0), (True, 0), (False, 0), (True, 0)]


def test_greedy_group_labels_label_a_greedy_net():
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from lqmm import nn  # pylint: disable=g-import-not-at-top
  order = ('video', 'audio')
  model = nn.GreedyNet({'audio': (3,), 'video': (4,)}, order, 2, features=4, hidden=6,
                       rngs=nnx.Rngs(0))
  params = nnx.state(model, nnx.Param)
  labels = optim.greedy_group_labels(params, order)
  by_path = {optim.leaf_path(path): label
             for path, label in jax.tree_util.tree_flatten_with_path(labels)[0]}
  assert by_path['encoders/video/0/kernel/value'] == 'main:0'
  assert by_path['encoders/audio/1/bias/value'] == 'main:1'
  assert by_path['mmtm/excite/1/kernel/value'] == 'bypass:1'
  assert by_path['mmtm/squeeze/kernel/value'] == 'bypass:all'
  assert {label for path, label in by_path.items() if path.startswith('auxiliary/')} == {'other'}
  # The labels drive the schedule: every group it needs is there.
  tx = optim.greedy_schedule(labels)
  tx.update(params, tx.init(params), params, epoch=0)
  with pytest.raises(KeyError, match="encoder for modality 'audio'"):
    optim.greedy_group_labels(params, ('video',))


def test_conditional_utilization():
  rates = optim.conditional_utilization(jnp.array([0.9, 0.8]), jnp.array([0.9, 0.4]))
  np.testing.assert_allclose(rates, [0.0, 0.5])


def test_modality_learning_rates_scale_each_group():
  params = {'audio': jnp.ones(2), 'visual': jnp.ones(2), 'head': jnp.ones(2)}
  labels = {'audio': 'audio', 'visual': 'visual', 'head': 'shared'}
  tx = optax.chain(optax.sgd(1.0), optim.modality_learning_rates(labels, {'audio': 0.5}))
  updates, _ = tx.update(params, tx.init(params))
  np.testing.assert_allclose(updates['audio'], -0.5)
  np.testing.assert_allclose(updates['visual'], -1.0)
  with pytest.raises(ValueError, match='depth'):
    optim.modality_learning_rates(labels, {'depth': 2.0})


def test_validation_trend_follows_mslr():
  tx = optim.scale_by_validation_trend(0, 2, initial=0.9, window=2)
  grads = {'w': jnp.ones(2)}
  state = tx.init(grads)
  accuracies = [[0.5, 0.5], [0.6, 0.5], [0.7, 0.5], [0.8, 0.5], [0.8, 0.5]]
  factors = []
  for epoch, accuracy in enumerate(accuracies):
    for _ in range(2):  # two steps per epoch see the same previous-epoch accuracy
      updates, state = tx.update(grads, state, epoch=epoch,
                                 unimodal_accuracy=jnp.asarray(accuracy))
    factors.append(float(updates['w'][0]))
  # The value passed during epoch e is epoch e-1's accuracy, so epoch 0's is ignored. Epochs
  # 1-2 fill the memory (0.6, 0.7); epoch 3 compares 0.8 with mean(0.6, 0.7), then the window
  # slides: epoch 4 compares 0.8 with mean(0.7, 0.8).
  np.testing.assert_allclose(factors, [0.9, 0.9, 0.9, 0.9 * 0.8 / 0.65, 0.9 * 0.8 / 0.75],
                             rtol=1e-5)


def test_bad_agm_inputs_raise_naming_the_argument():
  labels = jnp.arange(4, dtype=jnp.int32) % 2
  mono = jnp.zeros((2, 4, 2))
  state = optim.adaptive.init_agm(2)
  with pytest.raises(ValueError, match='subset_outputs must have at least 1'):
    optim.mono_outputs(jnp.float32(1.0))
  with pytest.raises(ValueError, match='subset_outputs must have 2\\^M rows'):
    optim.mono_outputs(jnp.ones((3, 2)))
  with pytest.raises(TypeError, match='subset_outputs must be a floating-point'):
    optim.mono_outputs(jnp.ones((4, 2), jnp.int32))
  with pytest.raises(ValueError, match='subset_outputs holds 1 NaN'):
    optim.mono_outputs(jnp.ones((4, 2)).at[0, 0].set(jnp.nan))
  with pytest.raises(ValueError, match='mono_logits holds NaN'):
    optim.adaptive.mono_scores(mono.at[0, 0, 0].set(jnp.nan), labels)
  with pytest.raises(ValueError, match='mono_logits holds \\+inf'):
    optim.adaptive.mono_scores(mono.at[0, 0, 0].set(jnp.inf), labels)
  with pytest.raises(TypeError, match='mono_logits must be a floating-point'):
    optim.adaptive.mono_scores(mono.astype(jnp.int32), labels)
  with pytest.raises(ValueError, match='mono_logits has an empty batch'):
    optim.adaptive.mono_scores(mono[:, :0], labels[:0])
  with pytest.raises(ValueError, match='clamp must lie in \\(0, 1\\]'):
    optim.adaptive.mono_scores(mono, labels, clamp=0.0)
  with pytest.raises(ValueError, match='scores must have shape \\[M\\] with M >= 2'):
    optim.adaptive.imbalance_ratios(jnp.float32(1.0))
  with pytest.raises(ValueError, match='scores holds 1 NaN'):
    optim.adaptive.imbalance_ratios(jnp.array([1.0, jnp.nan]))
  for alpha in (-1.0, np.float32(np.nan), jnp.float32(-1.0)):
    with pytest.raises(ValueError, match='alpha must be >= 0'):
      optim.agm_step(state, mono, labels, alpha=alpha)
    with pytest.raises(ValueError, match='alpha must be >= 0'):
      optim.scale_by_agm(0, 2, alpha=alpha)
  with pytest.raises(ValueError, match='cap must be a number'):
    optim.scale_by_agm(0, 2, cap=float('nan'))
  optim.scale_by_agm(0, 2, cap=float('inf'))  # no cap in effect


def test_agm_clips_a_traced_negative_alpha_to_no_modulation():
  labels = jnp.arange(8, dtype=jnp.int32) % 2
  mono = jnp.stack([4 * jax.nn.one_hot(labels, 2), jnp.zeros((8, 2))])
  step = jax.jit(lambda alpha: optim.agm_step(optim.adaptive.init_agm(2), mono, labels,
                                              alpha=alpha))
  np.testing.assert_allclose(step(-1.0).coefficients, [1.0, 1.0])


def test_scale_gradient_checks_and_gradient_reversal():
  x = jnp.array([1.0, -2.0])
  with pytest.raises(ValueError, match='x holds 1 NaN'):
    optim.scale_gradient(x.at[0].set(jnp.nan), 1.0)
  with pytest.raises(TypeError, match='x must be a floating-point'):
    optim.scale_gradient(jnp.array([1, 2]), 1.0)
  with pytest.raises(ValueError, match='scale must be finite'):
    optim.scale_gradient(x, np.float32(np.nan))
  # A negative scale reverses the gradient; a Python scale works too, also under jit.
  grad = jax.jit(jax.grad(lambda x: jnp.sum(optim.scale_gradient(x, -1.0) ** 2)))(x)
  np.testing.assert_allclose(grad, -2 * x)
  np.testing.assert_array_equal(optim.scale_gradient(jnp.float32(2.0), 0.5), 2.0)


def test_bad_greedy_and_trend_inputs_raise_naming_the_argument():
  for label in (optim.greedy.main_label, optim.greedy.bypass_label):
    with pytest.raises(ValueError, match='modality must be a non-negative index'):
      label(np.int32(-1))
    with pytest.raises(TypeError, match='modality must be a non-negative integer'):
      label(1.0)
  assert optim.greedy.main_label(jnp.int32(1)) == 'main:1'
  good = jnp.array([0.9, 0.8])
  with pytest.raises(ValueError, match='accuracy must have at least 1'):
    optim.conditional_utilization(jnp.float32(0.9), good)
  with pytest.raises(TypeError, match='accuracy_flow_off must be a floating-point'):
    optim.conditional_utilization(good, jnp.array([1, 0]))
  with pytest.raises(ValueError, match='accuracy must be > 0'):
    optim.conditional_utilization(jnp.array([0.0, 0.8]), good)
  with pytest.raises(ValueError, match='accuracy_flow_off must be >= 0 and finite'):
    optim.conditional_utilization(good, jnp.array([jnp.inf, 0.8]))
  with pytest.raises(ValueError, match='same shape'):
    optim.conditional_utilization(good, jnp.array([0.9, 0.8, 0.7]))
  with pytest.raises(ValueError, match='num_modalities must be >= 1'):
    optim.scale_by_validation_trend(0, -1)
  with pytest.raises(ValueError, match='modality must index one of num_modalities=2'):
    optim.scale_by_validation_trend(2, 2)
  for initial in (-1.0, np.float32(np.nan), jnp.float32(-1.0)):
    with pytest.raises(ValueError, match='initial must be >= 0'):
      optim.scale_by_validation_trend(0, 2, initial=initial)
