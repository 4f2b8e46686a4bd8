"""RCML's conflictive aggregation and degree of conflict against the authors' code, and laws."""

import pathlib

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from lqmm import fusion
from lqmm.fusion import conflictive
from lqmm.losses import evidential

VECTORS = pathlib.Path(__file__).parents[1] / 'reference' / 'data' / 'rcml_vectors.npz'


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(VECTORS))


@pytest.mark.parametrize('case', range(3))
def test_fuse_and_conflict_equal_rcml(ref, case, x64):
  del x64
  prefix = f'case{case}_'
  alpha = ref[prefix + 'evidence'] + 1
  np.testing.assert_allclose(conflictive.fuse(alpha), ref[prefix + 'fused'] + 1, rtol=1e-13)
  np.testing.assert_allclose(jnp.mean(conflictive.degree_of_conflict(alpha)), ref[prefix + 'dc'],
                             rtol=1e-12)


@pytest.mark.parametrize('case', range(3))
def test_rcml_total_loss_is_the_evidential_losses_plus_the_conflict(ref, case, x64):
  """RCML's `get_loss`: the mean over the fused and every view's digamma evidential loss
  (TMC's `ce_loss`), plus gamma times the mean degree of conflict."""
  del x64
  prefix = f'case{case}_'
  alpha = jnp.asarray(ref[prefix + 'evidence'] + 1)
  labels = jnp.asarray(ref[prefix + 'labels'])
  # RCML builds its annealing coefficient in float32.
  weight = float(np.float32(min(1.0, float(np.float32(int(ref[prefix + 'epoch'])
                                                         / int(ref[prefix + 'annealing']))))))
  opinions = [conflictive.fuse(alpha)] + list(alpha)
  terms = [jnp.mean(evidential.ce_loss(a, labels, kl_weight=weight)) for a in opinions]
  total = (sum(terms) / len(terms)
           + float(ref[prefix + 'gamma']) * jnp.mean(conflictive.degree_of_conflict(alpha)))
  np.testing.assert_allclose(total, ref[prefix + 'loss'], rtol=1e-6)


def test_is_registered_and_two_views_average():
  alpha = jnp.array([[[3., 1.]], [[1., 5.]]])
  np.testing.assert_allclose(fusion.get('conflictive')(alpha), [[2., 3.]])
  np.testing.assert_allclose(fusion.get('conflictive')(alpha),
                             fusion.get('averaging')(alpha))


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(st.integers(0, 2**31 - 1), st.integers(2, 5))
def test_missing_views_are_skipped_and_weights_halve(seed, num_views):
  rng = np.random.default_rng(seed)
  alpha = 1 + rng.gamma(1.0, 2.0, (num_views, 3, 4))
  mask = rng.uniform(size=(num_views, 3)) > 0.4
  with jax.enable_x64(True):
    fused = np.asarray(conflictive.fuse(alpha, mask))
    dc = np.asarray(conflictive.degree_of_conflict(alpha, mask))
  for row in range(3):
    present = np.flatnonzero(mask[:, row])
    if present.size == 0:
      np.testing.assert_allclose(fused[row], 1.0)
      continue
    evidence = alpha[present[0], row] - 1
    for view in present[1:]:
      evidence = (evidence + alpha[view, row] - 1) / 2
    np.testing.assert_allclose(fused[row], evidence + 1, rtol=1e-12)
    # The conflict of the present views alone.
    sub = alpha[present, row][:, None]
    with jax.enable_x64(True):
      expected = (0.0 if present.size < 2 else
                  float(conflictive.degree_of_conflict(jnp.asarray(sub))[0]))
    np.testing.assert_allclose(dc[row], expected, rtol=1e-12, atol=1e-15)


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(st.integers(0, 2**31 - 1))
def test_conflict_is_zero_for_agreeing_views_and_bounded(seed):
  rng = np.random.default_rng(seed)
  one = 1 + rng.gamma(1.0, 2.0, (1, 5, 3))
  with jax.enable_x64(True):
    np.testing.assert_allclose(conflictive.degree_of_conflict(np.repeat(one, 3, axis=0)), 0.0,
                               atol=1e-15)
    many = 1 + rng.gamma(1.0, 5.0, (4, 5, 3))
    dc = np.asarray(conflictive.degree_of_conflict(many))
  # PD <= 1 and CC <= 1 for each of the M (M - 1) ordered pairs, divided by M - 1.
  assert np.all(dc >= 0) and np.all(dc <= 4.0)


@pytest.mark.parametrize('call, match', [
    (lambda: conflictive.fuse(jnp.array([0.5, 2.0])), 'alpha'),
    (lambda: conflictive.fuse(jnp.ones((2, 3, 4)) * 0.5), 'alpha'),
    (lambda: conflictive.fuse(jnp.ones((2, 3, 4)), jnp.ones((3, 2), bool)), 'mask'),
    (lambda: conflictive.degree_of_conflict(jnp.ones((2, 3, 4)).at[0, 0, 0].set(jnp.nan)),
     'alpha'),
])
def test_bad_input_names_the_argument(call, match):
  with pytest.raises((ValueError, TypeError), match=match):
    call()
