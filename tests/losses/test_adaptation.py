"""READ's test-time adaptation: its losses and its continual Adam steps on the selected
parameters, against the original code.

Reference vectors: `tests/reference/data/read_vectors.npz` from XLearning-SCU/2024-ICLR-READ
(commit 2f11912) by `tests/reference/generate_read_vectors.py` (`PROVENANCE_read.md`).
"""

import pathlib
import re

import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import strategies as st

from lqmm import losses
from lqmm import optim

VECTORS = pathlib.Path(__file__).parents[1] / 'reference' / 'data' / 'read_vectors.npz'
CASES = ['mixed', 'confident', 'uncertain', 'tie']
SETTINGS = ['default', 'g0p5', 'bal0', 'g0p2_bal2']


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(VECTORS))


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('setting', SETTINGS)
def test_losses_and_gradients_equal_the_original(ref, case, setting, x64):
  gamma = float(ref[f'setting_{setting}_gamma'])
  weight = float(ref[f'setting_{setting}_bal_weight'])
  logits = jnp.asarray(ref[f'loss_{case}_logits'])
  pre = f'loss_{case}_{setting}'
  np.testing.assert_allclose(float(losses.adaptation.reliability_aware(logits, gamma=gamma)),
                             float(ref[f'{pre}_ra']), rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(float(losses.adaptation.balance_entropy(logits)),
                             float(ref[f'{pre}_bal']), rtol=1e-12)
  loss, grad = jax.value_and_grad(lambda z: losses.adaptation.read_loss(
      z, gamma=gamma, balance_weight=weight))(logits)
  np.testing.assert_allclose(float(loss), float(ref[f'{pre}_loss']), rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(np.asarray(grad), ref[f'{pre}_grad'], rtol=1e-10, atol=1e-14)


def test_three_continual_steps_equal_the_original(ref, x64):
  """Adam 1e-4 on a linear head over concat(audio, video), one step per batch, no reset; the
  batch is scored by a second forward after its update."""
  params = {'head': {'w': jnp.asarray(ref['step_w0']), 'b': jnp.asarray(ref['step_b0'])},
            'encoder': {'w': jnp.ones(3, jnp.float64)}}            # frozen: never moves
  b1, b2 = (float(v) for v in ref['step_betas'])
  tx = optim.adapt_selected(optax.adam(float(ref['step_lr']), b1=b1, b2=b2,
                                          eps=float(ref['step_eps'])), params, '^head/')
  state = tx.init(params)

  def forward(params, a, v):
    return jnp.concatenate([a, v], -1) @ params['head']['w'].T + params['head']['b'][None, :]

  for step in range(3):
    a, v = jnp.asarray(ref['step_a'][step]), jnp.asarray(ref['step_v'][step])
    np.testing.assert_allclose(np.asarray(forward(params, a, v)),
                               ref['step_outputs_before'][step], rtol=1e-12)
    grads = jax.grad(lambda p: losses.adaptation.read_loss(forward(p, a, v)))(params)
    with jax.numpy_dtype_promotion('standard'):   # optax's Adam: floats with an int32 count
      updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(np.asarray(params['head']['w']), ref['step_w_after'][step],
                               rtol=1e-12)
    np.testing.assert_allclose(np.asarray(params['head']['b']), ref['step_b_after'][step],
                               rtol=1e-12)
    np.testing.assert_allclose(np.asarray(forward(params, a, v)),
                               ref['step_outputs_after'][step], rtol=1e-12)
  np.testing.assert_array_equal(np.asarray(params['encoder']['w']), 1.0)


@pytest.mark.parametrize('depth', ['d11', 'd9'])
def test_path_pattern_selects_the_originals_parameters(ref, depth):
  """On the original model's parameter names, READ's rule is a pattern on the paths."""
  names = [str(n) for n in ref[f'select_{depth}_names']]
  params = {name.replace('.', '/'): jnp.zeros(1) for name in names}
  tx = optim.adapt_selected(optax.sgd(1.0), params,
                               r'(^|/)blocks_u/0/attn/(q|k|v)/(weight|bias)$')
  grads = {name: jnp.ones(1) for name in params}
  updates, _ = tx.update(grads, tx.init(params), params)
  selected = np.array([float(updates[name.replace('.', '/')][0]) != 0 for name in names])
  np.testing.assert_array_equal(selected, ref[f'select_{depth}_selected'])
  assert sorted(n for n, s in zip(names, selected) if s) == sorted(
      str(n) for n in ref[f'select_{depth}_collect_order'])


def test_a_pattern_that_selects_nothing_is_an_error():
  with pytest.raises(ValueError, match='match no parameter path'):
    optim.adapt_selected(optax.sgd(1.0), {'encoder': {'w': jnp.ones(2)}}, '^fusion/')


@hypothesis.given(hnp.arrays(np.float64, (6, 4), elements=st.floats(-8, 8)))
def test_reliability_term_sign_follows_gamma(logits):
  """The descent direction in the confidence m is log(gamma / m): sharpen above gamma."""
  with jax.enable_x64(True):
    z = jnp.asarray(logits)
    m = np.asarray(jax.nn.softmax(z)).max(-1)
    grad_m = np.log(losses.adaptation.GAMMA / m) / m.size
    value = float(losses.adaptation.reliability_aware(z))
    np.testing.assert_allclose(value, np.mean(m * (1 - np.log(m) - 1)), rtol=1e-10, atol=1e-12)
    assert np.all((grad_m > 0) == (m < losses.adaptation.GAMMA))


@pytest.mark.parametrize('call, match', [
    (lambda: losses.adaptation.read_loss(jnp.ones((2, 3, 4))), re.escape('[B, K]')),
    (lambda: losses.adaptation.read_loss(jnp.ones((2, 3)), gamma=0.0), 'gamma'),
    (lambda: losses.adaptation.read_loss(jnp.ones((2, 3)), balance_weight=-1.0),
     'balance_weight'),
    (lambda: losses.adaptation.read_loss(jnp.full((2, 3), jnp.nan)), 'NaN'),
])
def test_bad_input_names_the_argument(call, match):
  with pytest.raises((ValueError, TypeError), match=match):
    call()


def test_gamma_may_be_traced():
  logits = jax.random.normal(jax.random.key(0), (4, 3))
  value = jax.jit(lambda g: losses.adaptation.read_loss(logits, gamma=g))(jnp.float32(0.5))
  np.testing.assert_allclose(float(value), float(losses.adaptation.read_loss(logits, gamma=0.5)),
                             rtol=1e-6)
