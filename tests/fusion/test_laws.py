"""The algebraic law suite, run over every associative fusion rule of lqmm.fusion.

Each case gives a `FusionRule`, a hypothesis strategy of valid stacked inputs `[M, B, K]` (a pytree
for NIG), and, where the module has one, its closed-form `fuse(x, mask)`. Laws: commutativity,
associativity, identity on both sides, permutation invariance of `fuse`, mask equivalence (masking
equals fusing only the present modalities), all-missing rows give the identity, and the closed
form equals the generic tree reduction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special

from lqmm.fusion import base
from lqmm.fusion import baselines
from lqmm.fusion import bayes
from lqmm.fusion import dempster_shafer
from lqmm.fusion import nig
from lqmm.fusion import noisy_or
from lqmm.fusion import product
from lqmm.fusion import subjective_logic

BATCH, CLASSES = 3, 4
_LOG_PRIOR = np.log(np.array([0.1, 0.2, 0.3, 0.4]))


@dataclasses.dataclass(frozen=True)
class Case:
  rule: base.FusionRule
  inputs: Callable[[int], st.SearchStrategy]   # num_modalities -> strategy of numpy pytrees
  fuse: Callable | None = None                  # closed form (x, mask) -> fused
  rtol: float = 1e-8
  atol: float = 1e-9


def _floats(low, high):
  return st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)


def _arrays(num_modalities, low, high, shape=(BATCH, CLASSES)):
  return hnp.arrays(np.float64, (num_modalities,) + shape, elements=_floats(low, high))


def _log_probs(num_modalities):
  return _arrays(num_modalities, -20, 20).map(lambda logits: special.log_softmax(logits, -1))


def _nigs(num_modalities):
  shape = (BATCH, 1)
  return st.tuples(_arrays(num_modalities, -10, 10, shape), _arrays(num_modalities, 1e-3, 50, shape),
                   _arrays(num_modalities, 1.001, 50, shape),
                   _arrays(num_modalities, 0, 50, shape)).map(lambda fields: nig.NIG(*fields))


CASES = {
    'dempster_shafer': Case(dempster_shafer.RULE, lambda m: _arrays(m, 0, 1e3).map(lambda e: e + 1),
                            dempster_shafer.fuse),
    'cumulative': Case(subjective_logic.RULE,
                       lambda m: _arrays(m, 0, 1e3).map(lambda e: e + 1),
                       subjective_logic.fuse),
    'product_of_experts': Case(product.RULE, _log_probs, product.fuse, rtol=1e-7, atol=1e-7),
    'sum': Case(baselines.RULE, lambda m: _arrays(m, -1e3, 1e3), None),
    'nig': Case(nig.RULE, _nigs, nig.fuse, rtol=1e-7, atol=1e-7),
    'noisy_or': Case(noisy_or.RULE, lambda m: _arrays(m, 0, 1), None),
    'bayes': Case(bayes.rule(log_prior=_LOG_PRIOR), _log_probs,
                  lambda x, mask=None: bayes.fuse(x, mask, log_prior=_LOG_PRIOR), rtol=1e-7,
                  atol=1e-7),
}


def _close(actual, expected, case):
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=case.rtol, atol=case.atol)


def _take(x, index):
  return jax.tree.map(lambda leaf: jnp.asarray(leaf)[index], x)


def _given(num_modalities, extra=None):
  """Runs the test for every case with hypothesis-drawn inputs of `num_modalities`."""
  def decorator(test):
    @pytest.mark.parametrize('name', sorted(CASES))
    @hypothesis.settings(max_examples=25)  # 7 laws x 7 rules: keep the suite's runtime small
    @hypothesis.given(data=st.data())
    def wrapper(name, data):
      case = CASES[name]
      x = data.draw(case.inputs(num_modalities))
      with jax.enable_x64(True):
        test(case, jax.tree.map(jnp.asarray, x), data)
    wrapper.__name__ = test.__name__
    return wrapper
  return decorator


@_given(2)
def test_commutative(case, x, data):
  del data
  _close(case.rule.combine(_take(x, 0), _take(x, 1)), case.rule.combine(_take(x, 1), _take(x, 0)),
         case)


@_given(3)
def test_associative(case, x, data):
  del data
  a, b, c = _take(x, 0), _take(x, 1), _take(x, 2)
  combine = case.rule.combine
  _close(combine(combine(a, b), c), combine(a, combine(b, c)), case)


@_given(1)
def test_identity_on_both_sides(case, x, data):
  del data
  a = _take(x, 0)
  identity = case.rule.identity_like(a)
  _close(case.rule.combine(a, identity), a, case)
  _close(case.rule.combine(identity, a), a, case)


@_given(4)
def test_fuse_is_permutation_invariant(case, x, data):
  permutation = data.draw(st.permutations(range(4)))
  shuffled = _take(x, jnp.asarray(permutation))
  _close(base.fuse(case.rule, x), base.fuse(case.rule, shuffled), case)
  if case.fuse is not None:
    _close(case.fuse(x), case.fuse(shuffled), case)


@_given(4)
def test_mask_equals_fusing_the_present_modalities(case, x, data):
  mask = data.draw(hnp.arrays(bool, (4, BATCH)))
  generic = base.fuse(case.rule, x, jnp.asarray(mask))
  closed = None if case.fuse is None else case.fuse(x, jnp.asarray(mask))
  for row in range(BATCH):
    present = np.flatnonzero(mask[:, row])
    row_x = _take(x, (slice(None), slice(row, row + 1)))
    if present.size:
      expected = base.fuse(case.rule, _take(row_x, jnp.asarray(present)))
    else:
      expected = case.rule.identity_like(_take(row_x, 0))
    _close(_take(generic, slice(row, row + 1)), expected, case)
    if closed is not None:
      _close(_take(closed, slice(row, row + 1)), expected, case)


@_given(3)
def test_all_missing_rows_give_the_identity(case, x, data):
  del data
  mask = jnp.zeros((3, BATCH), bool)
  expected = case.rule.identity_like(_take(x, 0))
  _close(base.fuse(case.rule, x, mask), expected, case)
  if case.fuse is not None:
    fused = case.fuse(x, mask)
    _close(fused, expected, case)
    assert not any(np.any(np.isnan(leaf)) for leaf in jax.tree.leaves(fused))


@_given(5)
def test_closed_form_equals_the_tree_reduction(case, x, data):
  del data
  if case.fuse is None:
    pytest.skip('no closed form')
  _close(case.fuse(x), base.fuse(case.rule, x), case)
