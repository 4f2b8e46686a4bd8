"""OGM / OGM-GE: coefficients, the faithful rule, noise, epoch window, labels and composition."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from lqmm import optim
from lqmm.nn import heads


def _params():
  keys = jax.random.split(jax.random.key(3), 2)
  return {'conv': jax.random.normal(keys[0], (3, 3, 4, 8)),
          'dense': jax.random.normal(keys[1], (16, 8))}


def _logits(leader: int | None, num_modalities=2, batch=64, classes=4):
  """Unimodal logits where modality `leader` is confidently right and the rest uninformative."""
  labels = jnp.arange(batch, dtype=jnp.int32) % classes
  logits = jnp.zeros((num_modalities, batch, classes))
  if leader is not None:
    logits = logits.at[leader].set(3.0 * jax.nn.one_hot(labels, classes))
  return logits, labels


def test_scores_are_true_class_probabilities():
  logits, labels = _logits(leader=0)
  scores = optim.modality_scores(logits, labels)
  expected = jnp.exp(3.0) / (jnp.exp(3.0) + 3)
  np.testing.assert_allclose(scores, [expected, 0.25], rtol=1e-6)
  np.testing.assert_allclose(optim.modality_scores(logits, labels, reduction='sum'),
                             64 * scores, rtol=1e-6)
  with pytest.raises(ValueError, match='labels'):
    optim.modality_scores(logits, labels[:3])
  with pytest.raises(ValueError, match='reduction'):
    optim.modality_scores(logits, labels, reduction='max')


@given(st.lists(st.floats(0.01, 1.0), min_size=2, max_size=5), st.floats(0.0, 5.0))
def test_clean_coefficients_suppress_only_the_leaders(scores, alpha):
  scores = jnp.asarray(scores, jnp.float32)
  coefficients = optim.ogm_coefficients(scores, alpha=alpha)
  ratios = optim.modulation.dominance_ratios(scores)
  assert bool(jnp.all((coefficients >= 0) & (coefficients <= 1)))  # tanh saturates to 1
  assert bool(jnp.all(jnp.where(ratios <= 1, coefficients == 1, True)))
  # The more a modality leads, the smaller its coefficient.
  order = jnp.argsort(ratios)
  assert bool(jnp.all(jnp.diff(coefficients[order]) <= 1e-6))


def test_clean_coefficients_are_continuous_at_a_tie_and_faithful_ones_jump():
  near_tie = jnp.array([1.0, 1.0 + 1e-4])
  clean = optim.ogm_coefficients(near_tie, alpha=0.8)
  np.testing.assert_allclose(clean, [1.0, 1.0], atol=1e-3)
  faithful = optim.ogm_coefficients(near_tie, alpha=0.8, faithful=True)
  np.testing.assert_allclose(faithful, [1.0, 1 - np.tanh(0.8 * (1 + 1e-4))], rtol=1e-5)


def test_faithful_rule_matches_the_original_formula_and_tie_suppresses_the_first():
  for s0, s1 in [(3.0, 5.0), (5.0, 3.0), (4.0, 4.0)]:
    alpha = 0.7
    ratio_v = s1 / s0
    if ratio_v > 1:
      expected = [1.0, 1 - np.tanh(alpha * ratio_v)]
    else:
      expected = [1 - np.tanh(alpha * (1 / ratio_v)), 1.0]
    got = optim.ogm_coefficients(jnp.array([s0, s1]), alpha=alpha, faithful=True)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
  with pytest.raises(ValueError, match='two-modality'):
    optim.ogm_coefficients(jnp.ones(3), alpha=1.0, faithful=True)


def test_ogm_scales_the_leading_modality_gradient():
  logits, labels = _logits(leader=1)
  params = _params()
  for modality in (0, 1):
    tx = optim.scale_by_ogm(modality, 2, key=jax.random.key(0), alpha=0.8,
                            generalization_enhancement=False)
    updates, state = tx.update(params, tx.init(params), params, unimodal_logits=logits,
                               labels=labels)
    k = state.coefficients[modality]
    for name in params:
      np.testing.assert_allclose(updates[name], k * params[name], rtol=1e-6)
  assert float(state.coefficients[0]) == 1.0 and float(state.coefficients[1]) < 1.0


def test_faithful_modulates_conv_kernels_only():
  logits, labels = _logits(leader=1)
  params = _params()
  tx = optim.scale_by_ogm(1, 2, key=jax.random.key(0), alpha=0.8, faithful=True,
                          generalization_enhancement=False)
  updates, state = tx.update(params, tx.init(params), params, unimodal_logits=logits,
                             labels=labels)
  np.testing.assert_allclose(updates['conv'], state.coefficients[1] * params['conv'], rtol=1e-6)
  np.testing.assert_array_equal(updates['dense'], params['dense'])


def test_clean_noise_vanishes_without_suppression_and_faithful_noise_does_not():
  logits, labels = _logits(leader=1)
  grads = {'conv': jax.random.normal(jax.random.key(5), (8, 8, 16, 16))}
  # Modality 0 lags: clean OGM-GE leaves it untouched.
  clean = optim.scale_by_ogm(0, 2, key=jax.random.key(0), alpha=0.8)
  updates, _ = clean.update(grads, clean.init(grads), unimodal_logits=logits, labels=labels)
  np.testing.assert_array_equal(updates['conv'], grads['conv'])
  # The original adds std(g) + 1e-8 noise to both modalities' conv kernels.
  faithful = optim.scale_by_ogm(0, 2, key=jax.random.key(0), alpha=0.8, faithful=True)
  updates, _ = faithful.update(grads, faithful.init(grads), unimodal_logits=logits,
                               labels=labels)
  noise = updates['conv'] - grads['conv']
  np.testing.assert_allclose(jnp.std(noise), jnp.std(grads['conv'], ddof=1), rtol=0.03)


def test_clean_noise_keeps_the_second_moment():
  logits, labels = _logits(leader=1)
  grads = {'conv': jax.random.normal(jax.random.key(5), (8, 8, 16, 16))}
  tx = optim.scale_by_ogm(1, 2, key=jax.random.key(0), alpha=0.8)
  updates, state = tx.update(grads, tx.init(grads), unimodal_logits=logits, labels=labels)
  k = state.coefficients[1]
  assert float(k) < 0.5
  noise = updates['conv'] - k * grads['conv']
  np.testing.assert_allclose(jnp.std(noise), jnp.std(grads['conv']) * jnp.sqrt(1 - k**2),
                             rtol=0.03)
  np.testing.assert_allclose(jnp.mean(updates['conv']**2), jnp.mean(grads['conv']**2), rtol=0.05)


def test_noise_is_fresh_each_step_and_reproducible_from_the_key():
  logits, labels = _logits(leader=1)
  grads = {'w': jax.random.normal(jax.random.key(4), (32, 32))}
  tx = optim.scale_by_ogm(1, 2, key=jax.random.key(0), alpha=0.8)
  state = tx.init(grads)
  first, state = tx.update(grads, state, unimodal_logits=logits, labels=labels)
  second, _ = tx.update(grads, state, unimodal_logits=logits, labels=labels)
  again, _ = tx.update(grads, tx.init(grads), unimodal_logits=logits, labels=labels)
  assert not np.allclose(first['w'], second['w'])
  np.testing.assert_array_equal(first['w'], again['w'])


def test_epoch_window_is_inclusive():
  logits, labels = _logits(leader=1)
  grads = {'w': jnp.ones((4, 4))}
  tx = optim.scale_by_ogm(1, 2, key=jax.random.key(0), alpha=0.8, start_epoch=2, end_epoch=4)
  step = jax.jit(lambda epoch: tx.update(grads, tx.init(grads), unimodal_logits=logits,
                                         labels=labels, epoch=epoch))
  for epoch, inside in [(1, False), (2, True), (4, True), (5, False)]:
    updates, state = step(jnp.int32(epoch))
    assert bool(jnp.all(updates['w'] == grads['w'])) != inside
    assert (float(state.coefficients[1]) < 1) == inside


def test_three_modalities_with_partition_and_labels_from_an_nnx_model():

  class Model(nnx.Module):

    def __init__(self, rngs):
      self.audio = nnx.Linear(3, 4, rngs=rngs)
      self.visual = nnx.Linear(5, 4, rngs=rngs)
      self.text = nnx.Linear(2, 4, rngs=rngs)
      self.head = nnx.Linear(12, 6, rngs=rngs)

    def __call__(self, inputs):
      features = [self.audio(inputs['audio']), self.visual(inputs['visual']),
                  self.text(inputs['text'])]
      unimodal = heads.split_linear_head(features, self.head.kernel[...], self.head.bias[...])
      return unimodal.sum(0), unimodal

  model = Model(nnx.Rngs(0))
  graphdef, params = nnx.split(model, nnx.Param)
  names = ('audio', 'visual', 'text')
  labels = optim.modality_labels(params, {name: f'^{name}/' for name in names})
  tx = optax.chain(optim.ogm(labels, names, key=jax.random.key(1), alpha=1.0),
                   optax.sgd(0.1))
  opt_state = tx.init(params)
  keys = jax.random.split(jax.random.key(2), 3)
  inputs = {'audio': jax.random.normal(keys[0], (8, 3)),
            'visual': jax.random.normal(keys[1], (8, 5)),
            'text': jax.random.normal(keys[2], (8, 2))}
  targets = jnp.arange(8, dtype=jnp.int32) % 6

  @jax.jit
  def step(params, opt_state):
    def loss_fn(params):
      fused, unimodal = nnx.merge(graphdef, params)(inputs)
      loss = optax.softmax_cross_entropy_with_integer_labels(fused, targets).mean()
      return loss, unimodal
    (loss, unimodal), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params,
                                   unimodal_logits=jax.lax.stop_gradient(unimodal),
                                   labels=targets)
    return optax.apply_updates(params, updates), opt_state, loss

  for _ in range(3):
    params, opt_state, loss = step(params, opt_state)
  assert bool(jnp.isfinite(loss))
  inner = opt_state[0].inner_states
  coefficients = inner['visual'].inner_state.coefficients
  assert coefficients.shape == (3,)
  np.testing.assert_array_equal(coefficients, inner['audio'].inner_state.coefficients)


def test_modality_labels_on_linen_style_dicts_and_errors():
  params = {'params': {'audio_encoder': {'Conv_0': {'kernel': 1.0}},
                       'visual_encoder': {'Dense_0': {'kernel': 2.0}},
                       'head': {'kernel': 3.0}}}
  labels = optim.modality_labels(params, {'audio': 'audio_encoder/', 'visual': 'visual_encoder/'})
  assert labels['params']['audio_encoder']['Conv_0']['kernel'] == 'audio'
  assert labels['params']['head']['kernel'] == optim.SHARED
  with pytest.raises(ValueError, match='match no parameter path'):
    optim.modality_labels(params, {'audio': 'audio_encoder/', 'depth': 'depth_encoder/'})
  with pytest.raises(ValueError, match='several modalities'):
    optim.modality_labels(params, {'a': 'encoder', 'b': 'Conv'})
  with pytest.raises(ValueError, match='default'):
    optim.modality_labels(params, {'shared': 'head'})


def test_bad_arguments_raise_clear_errors():
  with pytest.raises(ValueError, match='modality'):
    optim.scale_by_ogm(2, 2, key=jax.random.key(0))
  with pytest.raises(ValueError, match='two-modality'):
    optim.scale_by_ogm(0, 3, key=jax.random.key(0), faithful=True)
  with pytest.raises(TypeError, match='typed PRNG key'):
    optim.scale_by_ogm(0, 2, key=jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match='alpha'):
    optim.scale_by_ogm(0, 2, key=jax.random.key(0), alpha=-1.0)
  tx = optim.scale_by_ogm(0, 3, key=jax.random.key(0))
  logits, labels = _logits(leader=0)
  with pytest.raises(ValueError, match='unimodal_logits'):
    tx.update({'w': jnp.ones(2)}, tx.init({'w': jnp.ones(2)}), unimodal_logits=logits,
              labels=labels)
  with pytest.raises(ValueError, match='label no leaf'):
    optim.ogm({'w': 'audio'}, ('audio', 'visual'), key=jax.random.key(0))


@pytest.mark.parametrize('alpha', [-1.0, np.float32(-1.0), jnp.float32(-0.5), float('nan')])
def test_negative_alpha_raises_for_every_concrete_scalar(alpha):
  with pytest.raises(ValueError, match='alpha must be >= 0'):
    optim.ogm_coefficients(jnp.array([0.7, 0.3]), alpha=alpha)
  with pytest.raises(ValueError, match='alpha must be >= 0'):
    optim.scale_by_ogm(0, 2, key=jax.random.key(0), alpha=alpha)


def test_negative_alpha_through_inject_hyperparams():
  """inject_hyperparams: a negative alpha raises at init (concrete there); set later in the
  state it is traced, and the documented rule clips it to 0 (no modulation), where it used to
  give coefficients above 1 and NaN noise."""
  params = {'w': jnp.ones(3)}
  logits = jnp.array([[[2.0, 0.0]], [[0.0, 0.0]]])  # modality 0 dominates
  static = ('modality', 'num_modalities', 'faithful', 'generalization_enhancement',
            'start_epoch', 'end_epoch')
  factory = optax.inject_hyperparams(optim.scale_by_ogm, static_args=static)
  with pytest.raises(ValueError, match='alpha must be >= 0'):
    factory(modality=0, num_modalities=2, key=jax.random.key(0), alpha=-1.0).init(params)
  tx = factory(modality=0, num_modalities=2, key=jax.random.key(0), alpha=0.5)
  state = tx.init(params)
  state.hyperparams['alpha'] = jnp.float32(-1.0)
  with jax.numpy_dtype_promotion('standard'):
    updates, _ = jax.jit(lambda g, s: tx.update(g, s, params, unimodal_logits=logits,
                                                labels=jnp.array([0])))(params, state)
  np.testing.assert_allclose(updates['w'], params['w'])  # coefficient 1, noise std 0


def test_bad_scores_logits_and_gradients_raise_naming_the_argument():
  labels = jnp.array([0, 1])
  logits = jnp.zeros((2, 2, 3))
  with pytest.raises(ValueError, match='unimodal_logits holds NaN'):
    optim.modulation.modality_scores(logits.at[0, 0, 0].set(jnp.nan), labels)
  with pytest.raises(ValueError, match='unimodal_logits holds \\+inf'):
    optim.modulation.modality_scores(logits.at[0, 0, 0].set(jnp.inf), labels)
  with pytest.raises(ValueError, match='unimodal_logits has an empty batch'):
    optim.modulation.modality_scores(logits[:, :0], labels[:0])
  # -inf logits are zero probabilities: fine.
  scores = optim.modulation.modality_scores(logits.at[0, 0, 2].set(-jnp.inf), labels)
  assert bool(jnp.isfinite(scores).all())
  with pytest.raises(ValueError, match='scores must have shape \\[M\\]'):
    optim.modulation.dominance_ratios(jnp.float32(0.5))
  with pytest.raises(TypeError, match='scores must be a floating-point'):
    optim.modulation.dominance_ratios(jnp.array([1, 2]))
  with pytest.raises(ValueError, match='scores must be >= 0 and finite'):
    optim.modulation.dominance_ratios(jnp.array([0.5, jnp.nan]))
  gradient = jnp.array([1.0, -1.0, 2.0])
  with pytest.raises(ValueError, match='gradient holds 1 NaN'):
    optim.modulation.ge_noise_std(gradient.at[0].set(jnp.nan), 0.5)
  with pytest.raises(TypeError, match='gradient must be a floating-point'):
    optim.modulation.ge_noise_std(gradient.astype(jnp.int32), 0.5)
  for coefficient in (-1.0, np.float32(np.nan), jnp.float32(1.5)):
    with pytest.raises(ValueError, match=r'coefficient must lie in \[0, 1\]'):
      optim.modulation.ge_noise_std(gradient, coefficient)
  with pytest.raises(ValueError, match='gradient needs at least two entries'):
    optim.modulation.ge_noise_std(jnp.float32(1.0), 0.5, faithful=True)
  # A single-entry leaf has standard deviation 0: no clean GE noise.
  assert float(optim.modulation.ge_noise_std(jnp.float32(1.0), 0.5)) == 0.0
