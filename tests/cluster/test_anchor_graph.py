"""FIMVC-VIA (anchor-graph incomplete clustering) against the transcription of its MATLAB
original, and its laws."""

import pathlib

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from lqmm import cluster
from lqmm import metrics

VECTORS = pathlib.Path(__file__).parents[1] / 'reference' / 'data' / 'anchor_vectors.npz'


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(VECTORS))


def _projector(embedding):
  embedding = np.asarray(embedding)
  return embedding @ embedding.T


@pytest.mark.parametrize('case', [0, 1])
def test_fimvc_via_equals_the_original_in_float64(ref, case, x64):
  del x64
  prefix = f'case{case}_'
  views = [jnp.asarray(ref[prefix + f'x{v}']) for v in range(int(ref[prefix + 'num_views']))]
  result = cluster.fimvc_via(views, jnp.asarray(ref[prefix + 'mask']), 3,
                             num_anchors=int(ref[prefix + 'num_anchors']),
                             lam=float(ref[prefix + 'lam']),
                             anchor_rows=jnp.asarray(ref[prefix + 'anchor_rows']))
  iterations = int(ref[prefix + 'iterations'])
  assert int(result.num_iterations) == iterations
  np.testing.assert_allclose(result.trace[:iterations], ref[prefix + 'trace'], rtol=1e-11)
  factors = result.solution
  np.testing.assert_allclose(factors.graph, ref[prefix + 'graph'], atol=1e-11)
  np.testing.assert_allclose(factors.view_weights, ref[prefix + 'view_weights'], rtol=1e-11)
  for v, anchors in enumerate(factors.anchors):
    np.testing.assert_allclose(anchors, ref[prefix + f'anchors{v}'], atol=1e-10)
  np.testing.assert_allclose(_projector(factors.embedding), _projector(ref[prefix + 'embedding']),
                             atol=1e-10)


def _blocks(seed=0, rate=0.2, num_samples=60, dims=(8, 9, 7)):
  """Three well separated blocks in every view; a mask that leaves every sample a view."""
  rng = np.random.default_rng(seed)
  labels = np.arange(num_samples) % 3
  views = [jnp.asarray(rng.normal(0, 5, (3, dim))[labels] + rng.normal(0, 0.3, (num_samples, dim)))
           for dim in dims]
  mask = rng.uniform(size=(num_samples, len(dims))) > rate
  mask[~mask.any(1), 0] = True
  return views, mask, labels


def _solve(views, mask, **kwargs):
  kwargs.setdefault('anchor_rows', jnp.arange(0, 60, 10))
  return cluster.fimvc_via(views, mask, 3, num_anchors=6, **kwargs)


@hypothesis.settings(max_examples=10, deadline=None)
@hypothesis.given(st.integers(0, 2**31 - 1), st.floats(0.01, 10.0), st.floats(0.0, 0.5))
def test_objective_never_increases_and_the_factors_stay_feasible(seed, lam, rate):
  # Every d_v >= m: each block update is that block's exact minimiser.
  views, mask, _ = _blocks(seed, rate)
  with jax.enable_x64(True):
    views = [x.astype(jnp.float64) for x in views]
    result = _solve(views, jnp.asarray(mask), lam=lam, tol=0.0, max_iter=12)
    trace = np.asarray(result.trace)
    graph, weights = np.asarray(result.solution.graph), np.asarray(result.solution.view_weights)
    anchors = [np.asarray(a) for a in result.solution.anchors]
  assert trace.dtype == np.float64 and int(result.num_iterations) == 12
  assert np.all(np.diff(trace) <= 1e-10 * np.abs(trace[:-1]))
  assert graph.min() >= 0 and np.allclose(graph.sum(1), 1.0)
  assert np.all(weights > 0) and np.isclose(weights.sum(), 1.0)
  for value in anchors:
    np.testing.assert_allclose(value @ value.T, np.eye(6), atol=1e-10)


def test_recovers_well_separated_blocks(x64):
  del x64
  views, mask, labels = _blocks(rate=0.3)
  result = _solve(views, jnp.asarray(mask))
  embedding = cluster.normalize_samples(result.solution.embedding)
  found = cluster.kmeans(embedding, 3, key=jax.random.key(0), num_restarts=5).labels
  assert metrics.normalized_mutual_info(labels, np.asarray(found)) == pytest.approx(1.0)


def test_missing_rows_values_do_not_matter(x64):
  del x64
  views, mask, _ = _blocks(1, rate=0.3)
  dirty = [jnp.where(jnp.asarray(mask[:, v, None]), x, 1e3) for v, x in enumerate(views)]
  clean, other = _solve(views, jnp.asarray(mask)), _solve(dirty, jnp.asarray(mask))
  np.testing.assert_array_equal(clean.trace, other.trace)
  np.testing.assert_array_equal(clean.solution.graph, other.solution.graph)


def test_vmap_over_masks_and_anchor_rows_equals_a_loop(x64):
  del x64
  views, _, _ = _blocks(2)
  rng = np.random.default_rng(3)
  masks = rng.uniform(size=(3, 60, 3)) > 0.3
  masks[:, :, 0] |= ~masks.any(2)
  rows = np.stack([rng.choice(60, 6, replace=False) for _ in range(3)])
  batched = jax.jit(jax.vmap(lambda mask, rows: _solve(views, mask, anchor_rows=rows)))(
      jnp.asarray(masks), jnp.asarray(rows))
  for index in range(masks.shape[0]):
    single = _solve(views, jnp.asarray(masks[index]), anchor_rows=jnp.asarray(rows[index]))
    np.testing.assert_allclose(batched.trace[index], single.trace, rtol=1e-9)
    assert int(batched.num_iterations[index]) == int(single.num_iterations)
    np.testing.assert_allclose(batched.solution.graph[index], single.solution.graph, atol=1e-9)


def test_permuting_the_samples_permutes_the_graph(x64):
  del x64
  views, mask, _ = _blocks(4, rate=0.3)
  order = np.random.default_rng(5).permutation(60)
  rows = np.arange(0, 60, 10)
  plain = _solve(views, jnp.asarray(mask), anchor_rows=jnp.asarray(rows))
  inverse = np.argsort(order)
  permuted = _solve([x[order] for x in views], jnp.asarray(mask[order]),
                    anchor_rows=jnp.asarray(inverse[rows]))
  np.testing.assert_allclose(permuted.trace, plain.trace, rtol=1e-9)
  np.testing.assert_allclose(permuted.solution.graph, np.asarray(plain.solution.graph)[order],
                             atol=1e-9)


def test_default_anchor_rows_are_the_first_rows(x64):
  del x64
  views, mask, _ = _blocks(6)
  default = cluster.fimvc_via(views, jnp.asarray(mask), 3, num_anchors=6)
  explicit = _solve(views, jnp.asarray(mask), anchor_rows=jnp.arange(6))
  np.testing.assert_array_equal(default.trace, explicit.trace)


def test_nan_objective_names_the_iteration(x64):
  del x64
  views, mask, _ = _blocks()
  with pytest.raises(FloatingPointError, match='fimvc_via.*iteration 1'):
    _solve(views, jnp.asarray(mask), lam=1e308)


@pytest.mark.parametrize('call, match', [
    (lambda v, m: cluster.fimvc_via(v, m, 61, num_anchors=61), 'num_clusters'),
    (lambda v, m: cluster.fimvc_via(v, m, 3, num_anchors=2), 'num_anchors'),
    (lambda v, m: cluster.fimvc_via(v, m, 3, num_anchors=61), 'num_anchors'),
    (lambda v, m: cluster.fimvc_via(v, m.at[:, 1].set(False).at[:, 0].set(True), 3,
                                    num_anchors=6), 'no present sample'),
    (lambda v, m: cluster.fimvc_via([v[0].at[0, 0].set(jnp.nan), *v[1:]], m.at[0, 0].set(True),
                                    3, num_anchors=6), r'views\[0\]'),
    (lambda v, m: cluster.fimvc_via(v, m, 3, num_anchors=6, lam=0.0), 'lam'),
    (lambda v, m: cluster.fimvc_via(v, m, 3, num_anchors=6, lam=np.float32(np.nan)), 'lam'),
    (lambda v, m: cluster.fimvc_via(v, m, 3, num_anchors=6, tol=-1.0), 'tol'),
    (lambda v, m: cluster.fimvc_via(v, m, 3, num_anchors=6, anchor_rows=jnp.arange(5)),
     'anchor_rows'),
    (lambda v, m: cluster.fimvc_via(v, m, 3, num_anchors=6, anchor_rows=jnp.arange(6) + 55),
     'anchor_rows'),
    (lambda v, m: cluster.fimvc_via(v, m, 3, num_anchors=6,
                                    anchor_rows=jnp.array([0, 1, 2, 3, 4, 4])), 'distinct'),
    (lambda v, m: cluster.fimvc_via(v, m, 3, num_anchors=6, anchor_rows=jnp.arange(6.0)),
     'anchor_rows'),
    (lambda v, m: cluster.fimvc_via(v, m.astype(jnp.int32), 3, num_anchors=6), 'mask'),
])
def test_bad_input_names_the_argument(call, match):
  views, mask, _ = _blocks()
  with pytest.raises((ValueError, TypeError), match=match):
    call(views, jnp.asarray(mask))
