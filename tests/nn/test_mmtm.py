"""MMTM's two gate forms against the authors' and the greedy learner's code.

Reference vectors: `tests/reference/data/mmtm_vectors.npz`, generated from haamoon/mmtm
(commit 1c81cfe) and nyukat/greedy_multimodal_learning (commit a190e03) by
`tests/reference/generate_mmtm_vectors.py` (`tests/reference/PROVENANCE_mmtm.md`). Both codes
gate with a sigmoid; the paper's `2 sigmoid` is checked on the original's stored excitations.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lqmm.nn import mmtm

VECTORS = pathlib.Path(__file__).parents[1] / 'reference' / 'data' / 'mmtm_vectors.npz'
CASES = ['haamoon_5d4d', 'haamoon_5d2d', 'greedy_4d4d']


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(VECTORS))


def _last(x):
  """Channels-first `[B, C, ...]` to channels-last `[B, ..., C]`."""
  return jnp.asarray(np.moveaxis(x, 1, -1))


def _module(ref, pre, gate):
  visual, skeleton, ratio, _ = (int(v) for v in ref[f'{pre}_config'])
  module = mmtm.MMTM([visual, skeleton], ratio=ratio, gate=gate, rngs=nnx.Rngs(0))
  for layer, name in ((module.squeeze, 'fc_squeeze'), (module.excite[0], 'fc_visual'),
                      (module.excite[1], 'fc_skeleton')):
    layer.kernel.set_value(jnp.asarray(ref[f'{pre}__{name}.weight'].T))
    layer.bias.set_value(jnp.asarray(ref[f'{pre}__{name}.bias']))
  return module


@pytest.mark.parametrize('pre', CASES)
def test_sigmoid_gate_equals_the_original(ref, pre, x64):
  module = _module(ref, pre, 'sigmoid')
  x = [_last(ref[f'{pre}_visual']), _last(ref[f'{pre}_skeleton'])]
  cot = [_last(ref[f'{pre}_cot_visual']), _last(ref[f'{pre}_cot_skeleton'])]

  def objective(module, x):
    out, gates = module(x)
    return sum(jnp.sum(o * c) for o, c in zip(out, cot)), (out, gates)

  (value, (out, gates)), (grad_module, grad_x) = nnx.value_and_grad(
      objective, argnums=(0, 1), has_aux=True)(module, x)
  tol = dict(rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(float(value), float(ref[f'{pre}_objective']), rtol=1e-12)
  for index, name in enumerate(('visual', 'skeleton')):
    np.testing.assert_allclose(np.asarray(gates[index]), ref[f'{pre}_gate_{name}'], **tol)
    np.testing.assert_allclose(np.asarray(out[index]), np.asarray(_last(ref[f'{pre}_out_{name}'])),
                               **tol)
    np.testing.assert_allclose(np.asarray(grad_x[index]),
                               np.asarray(_last(ref[f'{pre}_grad_{name}'])), **tol)
  for layer, name in (('squeeze', 'fc_squeeze'), ('excite', 'fc_visual'),
                      ('excite', 'fc_skeleton')):
    grads = grad_module[layer] if layer == 'squeeze' else grad_module[layer][
        0 if name == 'fc_visual' else 1]
    np.testing.assert_allclose(np.asarray(grads['kernel'][...]),
                               ref[f'{pre}_grad__{name}.weight'].T, **tol)
    np.testing.assert_allclose(np.asarray(grads['bias'][...]), ref[f'{pre}_grad__{name}.bias'],
                               **tol)


@pytest.mark.parametrize('pre', CASES[:2])
def test_double_sigmoid_gate_is_twice_the_sigmoid_of_the_originals_excitation(ref, pre, x64):
  module = _module(ref, pre, 'double_sigmoid')
  x = [_last(ref[f'{pre}_visual']), _last(ref[f'{pre}_skeleton'])]
  out, gates = module(x)
  for index, name in enumerate(('visual', 'skeleton')):
    expected = 2 / (1 + np.exp(-ref[f'{pre}_logit_{name}']))
    np.testing.assert_allclose(np.asarray(gates[index]), expected, rtol=1e-12)
    gate = expected.reshape(expected.shape[:1] + (1,) * (x[index].ndim - 2) + expected.shape[1:])
    np.testing.assert_allclose(np.asarray(out[index]), np.asarray(x[index]) * gate, rtol=1e-12)


def test_double_sigmoid_passes_features_through_at_zero_excitation():
  module = mmtm.MMTM([3, 2], gate='double_sigmoid', rngs=nnx.Rngs(0))
  for layer in module.excite:
    layer.kernel.set_value(jnp.zeros_like(layer.kernel[...]))
    layer.bias.set_value(jnp.zeros_like(layer.bias[...]))
  x = [jax.random.normal(jax.random.key(0), (2, 4, 3)), jnp.ones((2, 2))]
  out, _ = module(x)
  np.testing.assert_allclose(np.asarray(out[0]), np.asarray(x[0]), rtol=1e-6)


def test_unknown_gate_lists_the_valid_names():
  with pytest.raises(KeyError, match="Unknown gate 'tanh'; valid names: double_sigmoid, sigmoid"):
    mmtm.MMTM([3, 3], gate='tanh', rngs=nnx.Rngs(0))


def test_absent_modality_reaches_no_gate_and_passes_unchanged():
  module = mmtm.MMTM([3, 2, 4], rngs=nnx.Rngs(1))
  key = jax.random.key(0)
  x = [jax.random.normal(jax.random.fold_in(key, m), (2, 5, c)) for m, c in enumerate((3, 2, 4))]
  mask = jnp.array([[True, True], [False, True], [True, True]])
  out, _ = module(x, mask=mask)
  moved = list(x)
  moved[1] = moved[1].at[0].set(100.0)
  changed, _ = module(moved, mask=mask)
  for m in (0, 2):
    np.testing.assert_array_equal(np.asarray(out[m][0]), np.asarray(changed[m][0]))
  np.testing.assert_array_equal(np.asarray(changed[1][0]), np.asarray(moved[1][0]))
  with pytest.raises(ValueError, match='mask must have shape'):
    module(x, mask=jnp.ones((3, 3), jnp.bool_))
