"""The optax transform battery of the conventions, run over every balance transform.

Each case builds a transform for ONE modality's subtree (what `optax.partition` hands it) and
the extra args its `update` needs. The battery checks: abstract init, dtype preserved, state
type stable (also under jit), use inside chain / partition / inject_hyperparams, a clear
error when a required extra arg is missing, and that the transform does what it claims on a
designed input (`ACTS`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lqmm import optim

M, B, K = 2, 6, 3


def _logits_and_labels():
  logits = jax.random.normal(jax.random.key(1), (M, B, K))
  labels = jnp.arange(B, dtype=jnp.int32) % K
  return {'unimodal_logits': logits, 'labels': labels}


@dataclasses.dataclass(frozen=True)
class Case:
  name: str
  make: Callable[..., optax.GradientTransformationExtraArgs]  # a partial: make(**hyperparams)
  extra_args: Callable[[], dict]
  required: tuple[str, ...]
  hyperparams: dict  # numeric hyper-parameters that inject_hyperparams may inject
  static: tuple[str, ...] = ()  # arguments that set state shapes (static_args)


def _greedy_groups(path: str) -> str:
  """Greedy groups of `_params()` (also under a partition's `audio/` prefix)."""
  if path.endswith('conv/kernel'):
    return 'main:0'
  if path.endswith('dense/kernel'):
    return 'main:1'
  return 'bypass:all'


CASES = [
    Case('ogm_ge', functools.partial(optim.scale_by_ogm, 0, M, key=jax.random.key(0)),
         _logits_and_labels, ('unimodal_logits', 'labels'), {'alpha': 0.5}),
    Case('ogm', functools.partial(optim.scale_by_ogm, 1, M, key=jax.random.key(0),
                                  generalization_enhancement=False),
         _logits_and_labels, ('unimodal_logits', 'labels'), {'alpha': 0.5}),
    Case('ogm_ge_faithful_window',
         functools.partial(optim.scale_by_ogm, 0, M, key=jax.random.key(0), faithful=True,
                           start_epoch=0, end_epoch=50),
         lambda: {**_logits_and_labels(), 'epoch': jnp.int32(3)},
         ('unimodal_logits', 'labels', 'epoch'), {'alpha': 0.5}),
    Case('agm', functools.partial(optim.scale_by_agm, 0, M),
         lambda: {'mono_logits': _logits_and_labels()['unimodal_logits'],
                  'labels': _logits_and_labels()['labels']},
         ('mono_logits', 'labels'), {'alpha': 1.0}),
    Case('agm_window_stale', functools.partial(optim.scale_by_agm, 1, M, start_epoch=0,
                                               end_epoch=2, stale_outside_window=True),
         lambda: {'mono_logits': _logits_and_labels()['unimodal_logits'],
                  'labels': _logits_and_labels()['labels'], 'epoch': jnp.int32(4)},
         ('mono_logits', 'labels', 'epoch'), {'alpha': 1.0}),
    Case('greedy', functools.partial(optim.greedy_schedule, _greedy_groups, M),
         lambda: {'epoch': jnp.int32(2)}, ('epoch',), {'epsilon': 0.01}),
    Case('validation_trend', functools.partial(optim.scale_by_validation_trend, 0, M),
         lambda: {'epoch': jnp.int32(7), 'unimodal_accuracy': jnp.array([0.5, 0.7])},
         ('epoch', 'unimodal_accuracy'), {'initial': 0.9}, static=('window',)),
]


def _params(dtype=jnp.float32):
  """A modality subtree with a conv kernel (4-D), a dense kernel and a bias."""
  keys = jax.random.split(jax.random.key(2), 3)
  return {'conv': {'kernel': jax.random.normal(keys[0], (3, 3, 2, 4), dtype)},
          'dense': {'kernel': jax.random.normal(keys[1], (5, 4), dtype),
                    'bias': jax.random.normal(keys[2], (4,), dtype)}}


def _ids(cases):
  return [case.name for case in cases]


@pytest.mark.parametrize('case', CASES, ids=_ids(CASES))
def test_abstract_init_matches_concrete(case):
  tx = case.make(**case.hyperparams)
  params = _params()
  abstract = jax.eval_shape(tx.init, params)
  concrete = tx.init(params)
  assert jax.tree.structure(abstract) == jax.tree.structure(concrete)
  for a, c in zip(jax.tree.leaves(abstract), jax.tree.leaves(concrete)):
    assert a.shape == c.shape and a.dtype == c.dtype


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize('case', CASES, ids=_ids(CASES))
def test_dtype_preserved_and_state_type_stable(case, dtype):
  tx = case.make(**case.hyperparams)
  params = _params(dtype)
  state = tx.init(params)
  grads = jax.tree.map(lambda p: p * 0.5, params)
  step = jax.jit(lambda g, s, p, extra: tx.update(g, s, p, **extra))
  for _ in range(2):
    updates, new_state = step(grads, state, params, case.extra_args())
    for u, g in zip(jax.tree.leaves(updates), jax.tree.leaves(grads)):
      assert u.dtype == g.dtype and u.shape == g.shape
      assert bool(jnp.all(jnp.isfinite(u.astype(jnp.float32))))
    assert type(new_state) is type(state)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(state)):
      assert a.dtype == b.dtype and a.shape == b.shape
    state = new_state


@pytest.mark.parametrize('case', CASES, ids=_ids(CASES))
def test_chain_partition_and_inject_hyperparams(case):
  params = {'audio': _params(), 'head': {'w': jnp.ones((4, 3))}}
  labels = {'audio': jax.tree.map(lambda _: 'audio', params['audio']),
            'head': {'w': 'shared'}}
  injected = optax.inject_hyperparams(case.make, static_args=case.static)(**case.hyperparams)
  tx = optax.chain(optax.partition({'audio': injected, 'shared': optax.identity()}, labels),
                   optax.sgd(1e-3, momentum=0.9))
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, state = jax.jit(lambda g, s, p: tx.update(g, s, p, **case.extra_args()))(
      grads, state, params)
  assert jax.tree.structure(updates) == jax.tree.structure(params)
  # The head is not modulated: SGD's first step is -lr * g there.
  assert jnp.allclose(updates['head']['w'], -1e-3, rtol=1e-4)
  # inject_hyperparams exposes the numeric hyper-parameters in the state.
  inner = state[0].inner_states['audio'].inner_state
  for name in case.hyperparams:
    assert name in inner.hyperparams


@pytest.mark.parametrize('case', CASES, ids=_ids(CASES))
def test_missing_extra_arg_raises(case):
  tx = case.make(**case.hyperparams)
  params = _params()
  state = tx.init(params)
  extra = case.extra_args()
  for name in case.required:
    partial = {k: v for k, v in extra.items() if k != name}
    with pytest.raises(TypeError, match=name):
      tx.update(params, state, params, **partial)


@pytest.mark.parametrize('case', CASES, ids=_ids(CASES))
def test_ignores_unrelated_extra_args(case):
  tx = case.make(**case.hyperparams)
  params = _params()
  updates, _ = tx.update(params, tx.init(params), params, unrelated=jnp.ones(3),
                         **case.extra_args())
  assert jax.tree.structure(updates) == jax.tree.structure(params)


# ------------------------------------------------------------------- each transform acts
# A transform that passes the battery above may still do nothing (optax.identity() passes it).
# Each case below feeds a designed input on which the transform must act, and checks the action
# it claims (and, where it claims one, that it leaves the gradient alone otherwise).


def _leading(modality: int):
  """Unimodal logits in which `modality` is confident and right, the other one uniform."""
  labels = jnp.arange(B, dtype=jnp.int32) % K
  logits = jnp.zeros((M, B, K)).at[modality].set(3.0 * jax.nn.one_hot(labels, K))
  return logits, labels


def _update(case, state=None, grads=None, **extra):
  """`(grads, updates, new_state)` of one update of `case`'s transform on `_params()`."""
  tx = case.make(**case.hyperparams)
  params = _params()
  grads = jax.tree.map(lambda p: 0.5 * p, params) if grads is None else grads
  updates, state = tx.update(grads, tx.init(params) if state is None else state, params, **extra)
  return grads, updates, state


def _assert_scaled(updates, grads, factor):
  jax.tree.map(lambda u, g: np.testing.assert_allclose(u, factor * g, rtol=1e-6, atol=1e-7),
               updates, grads)


def _assert_unchanged(updates, grads):
  jax.tree.map(np.testing.assert_array_equal, updates, grads)


def _acts_ogm_ge(case):
  logits, labels = _leading(0)
  grads, updates, state = _update(case, unimodal_logits=logits, labels=labels)
  coefficient = float(state.coefficients[0])
  assert coefficient < 1 and float(state.coefficients[1]) == 1  # the leader is slowed down
  for u, g in zip(jax.tree.leaves(updates), jax.tree.leaves(grads)):
    assert not np.allclose(u, g) and not np.allclose(u, coefficient * g)  # scaled, plus noise
  # A tie: nothing is suppressed, so there is no noise either.
  grads, updates, _ = _update(case, unimodal_logits=jnp.zeros((M, B, K)), labels=labels)
  _assert_unchanged(updates, grads)


def _acts_ogm(case):  # modality 1, no noise
  logits, labels = _leading(1)
  grads, updates, state = _update(case, unimodal_logits=logits, labels=labels)
  assert float(state.coefficients[1]) < 1 and float(state.coefficients[0]) == 1
  _assert_scaled(updates, grads, float(state.coefficients[1]))
  logits, labels = _leading(0)  # modality 1 trails: its gradient passes unchanged
  grads, updates, _ = _update(case, unimodal_logits=logits, labels=labels)
  _assert_unchanged(updates, grads)


def _acts_ogm_faithful(case):  # modality 0, conv kernels only, window [0, 50]
  logits, labels = _leading(0)
  grads, updates, state = _update(case, unimodal_logits=logits, labels=labels,
                                  epoch=jnp.int32(3))
  assert float(state.coefficients[0]) < 1
  assert not np.allclose(updates['conv']['kernel'], grads['conv']['kernel'])
  _assert_unchanged(updates['dense'], grads['dense'])  # 2-D and 1-D leaves are not touched
  grads, updates, _ = _update(case, unimodal_logits=logits, labels=labels, epoch=jnp.int32(51))
  _assert_unchanged(updates, grads)  # outside the window


def _acts_agm(case):  # modality 0
  logits, labels = _leading(0)
  grads, updates, state = _update(case, mono_logits=logits, labels=labels)
  coefficient = float(state.agm.coefficients[0])
  assert coefficient < 1  # doing better than its running average: slowed down
  _assert_scaled(updates, grads, coefficient)
  logits, labels = _leading(1)
  grads, updates, state = _update(case, mono_logits=logits, labels=labels)
  assert float(state.agm.coefficients[0]) > 1  # doing worse: sped up
  _assert_scaled(updates, grads, float(state.agm.coefficients[0]))


def _acts_agm_stale(case):  # modality 1, window [0, 2], the last coefficient kept after it
  logits, labels = _leading(1)
  grads, updates, state = _update(case, mono_logits=logits, labels=labels, epoch=jnp.int32(1))
  coefficient = float(state.agm.coefficients[1])
  assert coefficient < 1
  _assert_scaled(updates, grads, coefficient)
  grads, updates, _ = _update(case, state, mono_logits=jnp.zeros((M, B, K)), labels=labels,
                              epoch=jnp.int32(4))
  _assert_scaled(updates, grads, coefficient)


def _acts_greedy(case):
  params = _params()
  # Learning speeds |g|^2 / |w|^2: main 0 0.01, main 1 1, the shared bypass 0.25, so the BDRs
  # log10(bypass / main) are 1.4 and -0.6: a spread far above epsilon.
  grads = {'conv': {'kernel': 0.1 * params['conv']['kernel']},
           'dense': {'kernel': params['dense']['kernel'], 'bias': 0.5 * params['dense']['bias']}}
  grads, updates, state = _update(case, grads=grads, epoch=jnp.int32(2))
  _assert_unchanged(updates, grads)  # it only schedules
  np.testing.assert_allclose(state.balance, [np.log10(25.0), np.log10(0.25)], rtol=1e-5)
  assert bool(state.curating) and int(state.caring) == 0
  grads, updates, state = _update(case, epoch=jnp.int32(2))  # every speed 0.25: balanced
  assert not bool(state.curating)


def _acts_validation_trend(case):  # modality 0, initial 0.9, window 5
  accuracy = jnp.array([0.5, 0.7])
  grads, updates, state = _update(case, epoch=jnp.int32(0), unimodal_accuracy=accuracy)
  _assert_scaled(updates, grads, 0.9)
  for epoch in range(1, 6):  # fills the memory with 0.5
    _, _, state = _update(case, state, epoch=jnp.int32(epoch), unimodal_accuracy=accuracy)
  grads, updates, _ = _update(case, state, epoch=jnp.int32(6),
                              unimodal_accuracy=jnp.array([0.8, 0.7]))
  _assert_scaled(updates, grads, 0.9 * 0.8 / 0.5)  # improving on its memory: sped up


ACTS = {'ogm_ge': _acts_ogm_ge, 'ogm': _acts_ogm, 'ogm_ge_faithful_window': _acts_ogm_faithful,
        'agm': _acts_agm, 'agm_window_stale': _acts_agm_stale, 'greedy': _acts_greedy,
        'validation_trend': _acts_validation_trend}


@pytest.mark.parametrize('case', CASES, ids=_ids(CASES))
def test_transform_acts_on_a_designed_input(case):
  ACTS[case.name](case)
