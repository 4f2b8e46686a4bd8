"""IMSC_AGL and PIC against the transcription of their MATLAB originals, and their laws."""

import functools
import pathlib

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from lqmm import cluster
from lqmm import metrics
from lqmm.cluster import graph_consensus
from lqmm.cluster import solvers

VECTORS = pathlib.Path(__file__).parents[1] / 'reference' / 'data' / 'graph_vectors.npz'

# The private steps the parity tests compare, jitted (one compilation each, not one per op).
# pylint: disable=protected-access
_prepare = jax.jit(graph_consensus._agl_prepare, static_argnums=(2, 3))
_pic_graphs = jax.jit(graph_consensus._pic_graphs, static_argnums=2)
_pic_fuse = jax.jit(graph_consensus._pic_fuse, static_argnums=5)
_spectra = jax.jit(jax.vmap(graph_consensus._spectrum))
_qp_simplex = jax.jit(graph_consensus._qp_simplex)
_f_step = jax.jit(graph_consensus._f_step, static_argnums=3)
_top_eigenspace = jax.jit(graph_consensus._top_eigenspace)
_top_eigenvectors = jax.jit(graph_consensus._top_eigenvectors, static_argnums=1)
_laplacian = jax.jit(graph_consensus._laplacian)
_threshold_or_zero = jax.jit(graph_consensus._threshold_or_zero)
_threshold_singular_values = jax.jit(graph_consensus._threshold_singular_values)


@functools.partial(jax.jit, static_argnums=2)
def _raw_graphs(views, mask, k):
  return jnp.stack([graph_consensus._adaptive_graph(
      graph_consensus._zscore_samples(x, mask[:, v]), mask[:, v], k) for v, x in enumerate(views)])
# pylint: enable=protected-access


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(VECTORS))


def _case(ref, case):
  prefix = f'case{case}_'
  views = [jnp.asarray(ref[prefix + f'x{v}']) for v in range(int(ref[prefix + 'num_views']))]
  return prefix, views, jnp.asarray(ref[prefix + 'mask'])


def _projector(embedding):
  embedding = np.asarray(embedding)
  return embedding @ embedding.T


# ------------------------------------------------------------------ IMSC_AGL parity


@pytest.mark.parametrize('case', [0, 1])
@pytest.mark.parametrize('faithful', [True, False])
def test_imsc_agl_equals_the_original_in_float64(ref, case, faithful, x64):
  del x64
  prefix, views, mask = _case(ref, case)
  params = {name: float(ref[prefix + name]) for name in ('lam1', 'lam2', 'lam3', 'mu', 'rho')}
  result = cluster.imsc_agl(views, mask, 3, max_iter=int(ref[prefix + 'max_iter']), tol=0.0,
                            faithful=faithful, k_neighbours=int(ref[prefix + 'knn']), **params)
  mode = prefix + ('faithful_' if faithful else 'intent_')
  trace = ref[mode + 'trace']
  assert int(result.num_iterations) == trace.size
  np.testing.assert_allclose(result.trace, trace, rtol=1e-10)
  factors = result.solution
  # Eigenvector bases are arbitrary: compare projectors.
  np.testing.assert_allclose(_projector(factors.embedding), _projector(ref[mode + 'embedding']),
                             atol=1e-12)
  for v in range(len(views)):
    np.testing.assert_allclose(_projector(factors.embeddings[v]),
                               _projector(ref[mode + 'embeddings'][v]), atol=1e-12)
    # The original's [n_v, n_v] matrices sit in the present block; the rest is zero.
    for ours, name in ((factors.representations, 'z'), (factors.graphs, 'w'),
                       (factors.low_rank, 's')):
      np.testing.assert_allclose(ours[v], ref[mode + name][v], atol=1e-12)
    np.testing.assert_allclose(factors.errors[v], ref[mode + f'e{v}'], atol=1e-12)
  if faithful:   # the original returns the last view's F
    np.testing.assert_allclose(_projector(factors.embedding), _projector(factors.embeddings[-1]),
                               atol=1e-12)


def test_imsc_agl_initial_graphs_and_embeddings_equal_the_original(ref, x64):
  del x64
  prefix, views, mask = _case(ref, 0)
  views, weights = solvers.check_views(views, mask)
  _, graphs, embeddings = _prepare(views, weights, 3, int(ref[prefix + 'knn']))
  np.testing.assert_array_equal(np.stack(graphs), ref[prefix + 'z_ini'])
  for v in range(len(views)):
    np.testing.assert_allclose(_projector(embeddings[v]), _projector(ref[prefix + 'f_ini'][v]),
                               atol=1e-10)
    # solveF skips the null space: the missing samples' unit vectors and the constant vector.
    assert np.abs(np.asarray(embeddings[v])[~np.asarray(mask[:, v])]).max() < 1e-10


def test_imsc_agl_stops_on_the_absolute_change_after_the_second_iteration(ref, x64):
  del x64
  prefix, views, mask = _case(ref, 1)
  trace = ref[prefix + 'intent_trace']
  changes = np.abs(np.diff(trace))                 # changes[t - 2] = |obj_t - obj_{t-1}|
  ordered = np.sort(changes[1:])
  params = {name: float(ref[prefix + name]) for name in ('lam1', 'lam2', 'lam3', 'mu', 'rho')}
  # A tolerance between two later changes, and one that the second iteration's change already
  # meets (the loop must not stop before the third).
  assert changes[0] < changes[1]
  for tol in ((ordered[len(ordered) // 2] + ordered[len(ordered) // 2 + 1]) / 2,
              (changes[0] + changes[1]) / 2):
    expected = next(t for t in range(3, trace.size + 1) if changes[t - 2] < tol)
    result = cluster.imsc_agl(views, mask, 3, max_iter=int(ref[prefix + 'max_iter']),
                              tol=float(tol), k_neighbours=int(ref[prefix + 'knn']), **params)
    assert int(result.num_iterations) == expected
    np.testing.assert_allclose(result.trace[:expected], trace[:expected], rtol=1e-10)
    np.testing.assert_allclose(result.trace[expected:], trace[expected - 1], rtol=1e-10)


# ------------------------------------------------------------------ PIC parity


@pytest.mark.parametrize('case', [0, 1])
def test_pic_equals_the_original_in_float64(ref, case, x64):
  del x64
  prefix, views, mask = _case(ref, case)
  k = int(ref[prefix + 'pic_k'])
  views, weights = solvers.check_views(views, mask)
  np.testing.assert_allclose(_raw_graphs(views, mask, k), ref[prefix + 'pic_raw'], atol=1e-13)
  graphs, affinities = _pic_graphs(views, weights, k)
  np.testing.assert_allclose(graphs, ref[prefix + 'pic_graphs'], atol=1e-13)
  np.testing.assert_allclose(affinities, ref[prefix + 'pic_affinities'], atol=1e-13)
  values, _ = _spectra(affinities)
  np.testing.assert_allclose(values, ref[prefix + 'pic_values'], atol=1e-12)
  # The weights depend on the eigenvector signs (row sums of U): pass the original's through.
  embedding, view_weights, fused, _ = _pic_fuse(
      jnp.asarray(ref[prefix + 'pic_affinities']), jnp.asarray(ref[prefix + 'pic_vectors']),
      jnp.asarray(ref[prefix + 'pic_values']), jnp.asarray(float(ref[prefix + 'pic_beta'])),
      jnp.asarray(True), 3)
  np.testing.assert_allclose(view_weights, ref[prefix + 'pic_weights'], atol=1e-12)
  np.testing.assert_allclose(fused, ref[prefix + 'pic_fused'], atol=1e-13)
  np.testing.assert_allclose(_projector(embedding), _projector(ref[prefix + 'pic_embedding']),
                             atol=1e-11)
  top = ref[prefix + 'pic_top']
  rows = top / np.maximum(np.linalg.norm(top, axis=1, keepdims=True), 1e-10)
  np.testing.assert_allclose(_projector(embedding), _projector(rows), atol=1e-11)


def test_pic_default_weights_do_not_depend_on_the_eigenvector_basis(ref, x64):
  del x64
  prefix, views, mask = _case(ref, 0)
  affinities = jnp.asarray(ref[prefix + 'pic_affinities'])
  ours = _spectra(affinities)
  theirs = (jnp.asarray(ref[prefix + 'pic_values']), jnp.asarray(ref[prefix + 'pic_vectors']))
  # NumPy's SVD and eigh with the sign rule give different signs (and bases in repeated
  # eigenvalues): the faithful weights differ, the default ones do not.
  results = {(name, faithful): _pic_fuse(affinities, vectors, values, jnp.asarray(0.1),
                                         jnp.asarray(faithful), 3)
             for name, (values, vectors) in (('ours', ours), ('theirs', theirs))
             for faithful in (True, False)}
  np.testing.assert_allclose(results['ours', False][1], results['theirs', False][1], atol=1e-12)
  assert np.abs(results['ours', True][1] - results['theirs', True][1]).max() > 1e-3
  public = cluster.pic(views, mask, 3, faithful=True).solution
  np.testing.assert_allclose(public.weights, results['ours', True][1], atol=1e-12)


def test_pic_public_path_is_consistent(ref, x64):
  del x64
  prefix, views, mask = _case(ref, 0)
  result = cluster.pic(views, mask, 3)
  fusion = result.solution
  np.testing.assert_allclose(fusion.graphs, ref[prefix + 'pic_graphs'], atol=1e-13)
  weights = np.asarray(fusion.weights)
  assert weights.min() >= 0 and abs(weights.sum() - 1) < 1e-12
  np.testing.assert_allclose(fusion.fused, np.einsum('v,vnm->nm', weights,
                                                     ref[prefix + 'pic_affinities']), atol=1e-13)
  np.testing.assert_allclose(np.linalg.norm(fusion.embedding, axis=1), 1.0, atol=1e-12)
  assert int(result.num_iterations) == 1 and int(result.nan_iteration) == 0


# ------------------------------------------------------------------ laws


def _sort_projection(values):
  """The textbook sort-based projection of a vector onto the probability simplex."""
  ordered = np.sort(values)[::-1]
  sums = np.cumsum(ordered) - 1
  ranks = np.arange(1, values.size + 1)
  last = np.nonzero(ordered - sums / ranks > 0)[0][-1]
  return np.maximum(values - sums[last] / (last + 1), 0)


@hypothesis.settings(max_examples=25)
@hypothesis.given(st.integers(0, 2**31 - 1), st.floats(0.1, 100.0))
def test_project_rows_to_simplex_is_the_masked_euclidean_projection(seed, scale):
  rng = np.random.default_rng(seed)
  values = (scale * rng.normal(size=(6, 9))).astype(np.float32)
  mask = rng.uniform(size=(6, 9)) > 0.4
  mask[0] = False                                            # a row with nothing allowed
  projected = np.asarray(cluster.project_rows_to_simplex(jnp.asarray(values), jnp.asarray(mask)))
  assert np.all(projected >= 0) and np.all(projected[~mask] == 0)
  np.testing.assert_array_equal(projected[0], 0.0)
  for row in range(1, 6):
    if mask[row].any():
      np.testing.assert_allclose(projected[row].sum(), 1.0, rtol=1e-5)
      np.testing.assert_allclose(projected[row][mask[row]], _sort_projection(
          values[row][mask[row]].astype(np.float64)), atol=1e-5 * max(1.0, scale))


def test_project_rows_to_simplex_needs_few_rounds_and_no_sort_on_ties():
  # Equal entries, a row whose answer keeps everything, and one that keeps a single entry.
  values = jnp.array([[0.2, 0.2, 0.2, 0.2, 0.2], [1.0, 1.0, 1.0, -5.0, 0.0],
                      [0.1, 0.2, 0.3, 0.4, 9.0]])
  projected = np.asarray(cluster.project_rows_to_simplex(values))
  np.testing.assert_allclose(projected, [[0.2] * 5, [1 / 3] * 3 + [0.0, 0.0],
                                         [0.0, 0.0, 0.0, 0.0, 1.0]], atol=1e-7)


def test_projection_of_a_non_finite_row_is_nan_for_the_guards():
  # pylint: disable-next=protected-access
  out = np.asarray(graph_consensus._project_rows(
      jnp.array([[1.0, jnp.inf, 0.0], [0.5, 0.2, 0.1]]), jnp.ones((2, 3), bool)))
  assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


# s_max is 10.6 and the bound 30.8: a threshold inside the spectrum, one between the two
# (the SVD runs and gives 0) and one above the bound (the SVD is skipped).
@pytest.mark.parametrize('tau, skipped', [(4.0, False), (20.0, False), (40.0, True)])
def test_threshold_or_zero_equals_the_svd_path(tau, skipped):
  matrix = jnp.asarray(np.random.default_rng(3).normal(size=(30, 30)), jnp.float32)
  bound = np.sqrt(np.abs(matrix).sum(0).max() * np.abs(matrix).sum(1).max())
  assert (bound <= tau) == skipped
  out, nuclear = _threshold_or_zero(matrix, jnp.float32(tau))
  expected, expected_nuclear = _threshold_singular_values(matrix, jnp.float32(tau))
  np.testing.assert_allclose(out, expected, atol=1e-6)
  np.testing.assert_allclose(nuclear, expected_nuclear, rtol=1e-6)


def _f_step_problem(dtype, num_samples=300, num_clusters=6, lam3=100.0, seed=0):
  """The F-step's matrix `lam3 T T^T - lam1 L(W)` for a random sparse simplex graph W (with
  missing samples' rows and columns zero), the start T and the shift."""
  rng = np.random.default_rng(seed)
  target = np.linalg.qr(rng.normal(size=(num_samples, num_clusters)))[0]
  graph = np.where(rng.uniform(size=(num_samples,) * 2) < 8 / num_samples,
                   rng.uniform(size=(num_samples,) * 2), 0.0)
  graph[:, :3] += 0.5 * (rng.uniform(size=(num_samples, 3)) < 0.3)   # hubs: large degrees
  graph[-20:], graph[:, -20:] = 0.0, 0.0                               # missing samples
  graph /= np.maximum(graph.sum(1, keepdims=True), 1e-12)
  laplacian = _laplacian(jnp.asarray(graph, dtype))
  matrix = lam3 * jnp.asarray(target @ target.T, dtype) - 0.1 * laplacian
  return matrix, jnp.asarray(target, dtype), 0.1 * jnp.max(jnp.diagonal(laplacian))


@pytest.mark.parametrize('dtype, atol', [(jnp.float32, 2e-5), (jnp.float64, 1e-12)])
def test_f_step_subspace_iteration_spans_the_top_eigenvectors(dtype, atol, request):
  if dtype == jnp.float64:
    request.getfixturevalue('x64')
  matrix, target, shift = _f_step_problem(dtype)
  expected = _projector(_top_eigenvectors(matrix, 6))
  basis, settled = _top_eigenspace(matrix, target, shift)
  assert bool(settled)
  np.testing.assert_allclose(np.asarray(basis.T @ basis), np.eye(6), atol=10 * atol)
  np.testing.assert_allclose(_projector(basis), expected, atol=atol)
  np.testing.assert_allclose(_projector(_f_step(matrix, target, shift, 6)), expected, atol=atol)


def test_f_step_falls_back_to_eigh_when_the_iteration_does_not_settle(x64):
  del x64
  # lam3 below the Laplacian part: no gap to iterate across within the step cap.
  matrix, target, shift = _f_step_problem(jnp.float64, lam3=1e-4, seed=1)
  _, settled = _top_eigenspace(matrix, target, shift)
  assert not bool(settled)
  np.testing.assert_allclose(_projector(_f_step(matrix, target, shift, 6)),
                             _projector(_top_eigenvectors(matrix, 6)), atol=1e-10)


@hypothesis.settings(max_examples=25)
@hypothesis.given(st.integers(0, 2**31 - 1), st.floats(0.0, 3.0))
def test_singular_value_threshold_shrinks_the_singular_values(seed, tau):
  rng = np.random.default_rng(seed)
  matrix = rng.normal(size=(7, 7))
  matrix[2] = 0.0                                            # a missing sample's row and column
  matrix[:, 2] = 0.0
  out = np.asarray(cluster.singular_value_threshold(jnp.asarray(matrix, jnp.float32), tau))
  left, values, right = np.linalg.svd(matrix)
  np.testing.assert_allclose(np.linalg.svd(out, compute_uv=False),
                             np.maximum(values - tau, 0), atol=1e-5)
  np.testing.assert_allclose(out, (left * np.maximum(values - tau, 0)) @ right, atol=1e-5)
  assert np.abs(out[2]).max() < 1e-6 and np.abs(out[:, 2]).max() < 1e-6
  # The zero row and column do not change the other singular values.
  inner = np.delete(np.delete(matrix, 2, 0), 2, 1)
  np.testing.assert_allclose(np.linalg.svd(inner, compute_uv=False), values[:6], atol=1e-10)


@hypothesis.settings(max_examples=20)
@hypothesis.given(st.integers(0, 2**31 - 1), st.integers(2, 5))
def test_pic_quadratic_programme_meets_the_kkt_conditions(seed, num_views):
  rng = np.random.default_rng(seed)
  factor = rng.normal(size=(num_views, num_views))
  hessian = factor @ factor.T + 0.1 * np.eye(num_views)
  linear = 3 * rng.normal(size=num_views)
  with jax.enable_x64(True):
    weights = np.asarray(_qp_simplex(jnp.asarray(hessian), jnp.asarray(linear)))
  assert weights.min() >= 0 and abs(weights.sum() - 1) < 1e-12
  gradient = hessian @ weights - linear
  level = gradient[weights > 1e-9].mean()
  np.testing.assert_allclose(gradient[weights > 1e-9], level, atol=1e-8)
  assert np.all(gradient[weights <= 1e-9] >= level - 1e-8)


def test_knn_and_adaptive_graphs_on_a_small_example():
  x = jnp.array([[0.0], [0.0], [1.0], [3.0], [7.0]])          # rows 0 and 1 tie
  present = jnp.array([True, True, True, True, False])
  graph = np.asarray(cluster.knn_graph(x, present, 1))
  # Rows 0 and 1 pick each other and themselves; row 2 picks itself and row 0 (first index
  # on the tie with row 1); row 3 picks itself and row 2.
  expected = np.zeros((5, 5))
  for i, j in ((0, 1), (2, 0), (3, 2)):
    expected[i, j] = expected[j, i] = 1
  np.testing.assert_array_equal(graph, expected)
  # Adaptive neighbours of [0, 0.5, 2, 5]: k = 1 puts all the weight on the nearest other.
  x = jnp.array([[0.0], [0.5], [2.0], [5.0], [7.0]])
  adaptive = np.asarray(cluster.adaptive_neighbour_graph(x, present, 1))
  expected = np.zeros((5, 5))
  expected[[0, 1, 2, 3], [1, 0, 1, 2]] = 1
  np.testing.assert_allclose(adaptive, expected, atol=1e-6)
  # k = 2: weights (d_3 - d_j) / (2 d_3 - d_1 - d_2); row 0: d = 0.25, 4, 25.
  adaptive = np.asarray(cluster.adaptive_neighbour_graph(x, present, 2))
  np.testing.assert_allclose(adaptive[0, :4], [0, 24.75 / 45.75, 21 / 45.75, 0], rtol=1e-6)


# ------------------------------------------------------------------ behaviour
# At the parity cases' shapes and static arguments (N = 45, dims 5, 7, 4, K = 3, IMSC_AGL with
# 15 neighbours and 15 iterations, PIC with its default 13), in float64: the tests share the
# parity tests' compilations.


def _blocks(seed=0, rate=0.1):
  """Three well-separated blocks of 15 samples."""
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(3), 15)
  views = [rng.normal(size=(3, d))[labels] + 0.1 * rng.normal(size=(45, d)) for d in (5, 7, 4)]
  mask = rng.uniform(size=(45, 3)) > rate
  mask[~mask.any(1), 0] = True
  return [jnp.asarray(x) for x in views], mask, labels


def _imsc(views, mask, **kwargs):
  # solveF skips the initial graph's null space, which holds the cluster indicators when the
  # kNN graph falls apart into the blocks: 15 neighbours link each sample to its whole block
  # and to a few samples beyond, so the graph is connected and the next eigenvectors carry
  # the blocks (with the survey's 5 neighbours IMSC_AGL fails on such blocks, as the original).
  return cluster.imsc_agl(views, mask, 3, max_iter=15, k_neighbours=15, **kwargs)


def _pic(views, mask):
  return cluster.pic(views, mask, 3)


def test_both_solvers_recover_well_separated_blocks(x64):
  del x64
  views, mask, labels = _blocks()
  for result in (_imsc(views, jnp.asarray(mask)), _pic(views, jnp.asarray(mask))):
    embedding = cluster.normalize_samples(result.solution.embedding)
    found = cluster.kmeans(embedding, 3, key=jax.random.key(0)).labels
    assert metrics.normalized_mutual_info(labels, np.asarray(found)) == pytest.approx(1.0)


def test_missing_rows_values_do_not_matter_and_stay_out_of_the_graphs(x64):
  del x64
  views, mask, _ = _blocks(1, rate=0.3)
  dirty = [jnp.where(jnp.asarray(mask[:, v, None]), x, 1e3) for v, x in enumerate(views)]
  for solve in (_imsc, _pic):
    clean, other = solve(views, jnp.asarray(mask)), solve(dirty, jnp.asarray(mask))
    np.testing.assert_array_equal(clean.trace, other.trace)
  graphs = np.asarray(_imsc(views, jnp.asarray(mask)).solution.graphs)
  for v in range(len(views)):
    missing = ~mask[:, v]
    assert np.all(graphs[v][missing] == 0) and np.all(graphs[v][:, missing] == 0)
    np.testing.assert_allclose(graphs[v][~missing].sum(1), 1.0, rtol=1e-10)


def test_vmap_over_masks_equals_a_loop(x64):
  del x64
  views, _, _ = _blocks(2)
  rng = np.random.default_rng(3)
  masks = rng.uniform(size=(2, 45, 3)) > 0.3
  masks[:, :, 0] |= ~masks.any(2)
  for solve in (_imsc, _pic):
    batched = jax.jit(jax.vmap(lambda mask, solve=solve: solve(views, mask)))(jnp.asarray(masks))
    for index in range(masks.shape[0]):
      single = solve(views, jnp.asarray(masks[index]))
      np.testing.assert_allclose(batched.trace[index], single.trace, rtol=1e-9)
      np.testing.assert_allclose(_projector(batched.solution.embedding[index]),
                                 _projector(single.solution.embedding), atol=1e-9)


def test_imsc_agl_capacity_is_only_a_layout(x64):
  """Spare slots change nothing; too few slots under a transformation give a NaN objective."""
  del x64
  views, mask, _ = _blocks(4, rate=0.4)
  largest = int(mask.sum(0).max())
  assert largest < 45
  tight = _imsc(views, jnp.asarray(mask))                      # capacity = largest
  roomy = _imsc(views, jnp.asarray(mask), capacity=45)
  np.testing.assert_allclose(roomy.trace, tight.trace, rtol=1e-10)
  for name in ('representations', 'graphs', 'low_rank'):
    np.testing.assert_allclose(getattr(roomy.solution, name), getattr(tight.solution, name),
                               atol=1e-12)
  short = jax.jit(lambda m: _imsc(views, m, capacity=largest - 1))(jnp.asarray(mask))
  assert int(short.nan_iteration) == 1
  with pytest.raises(FloatingPointError, match='iteration 1'):
    cluster.raise_if_not_finite(short, 'imsc_agl')


def test_permuting_the_samples_permutes_the_results(x64):
  del x64
  views, mask, _ = _blocks(4, rate=0.3)
  order = np.random.default_rng(5).permutation(45)
  for solve in (_imsc, _pic):
    plain = solve(views, jnp.asarray(mask))
    permuted = solve([x[order] for x in views], jnp.asarray(mask[order]))
    np.testing.assert_allclose(permuted.trace, plain.trace, rtol=1e-9)
    np.testing.assert_allclose(_projector(permuted.solution.embedding),
                               _projector(plain.solution.embedding)[np.ix_(order, order)],
                               atol=1e-9)


def test_nan_objective_names_the_iteration(x64):
  del x64
  views, mask, _ = _blocks()
  with pytest.raises(FloatingPointError, match='imsc_agl.*iteration 1'):
    _imsc(views, jnp.asarray(mask), lam1=1e308)     # lam1 / mu overflows


def test_initial_embedding_skips_the_null_space_in_float32():
  # In float32 the null eigenvalues of a kNN Laplacian reach ~1e-5, above the original's 1e-6.
  views, mask, _ = _blocks(6, rate=0.3)
  views, weights = solvers.check_views([x.astype(jnp.float32) for x in views],
                                       jnp.asarray(mask))
  _, _, embeddings = _prepare(views, weights, 3, 15)
  for v in range(3):
    assert np.abs(np.asarray(embeddings[v])[~mask[:, v]]).max() < 1e-4
    present = np.asarray(embeddings[v])[mask[:, v]]
    # Orthogonal to the constant vector over the present samples (the graph is connected).
    assert np.abs(present.sum(0)).max() < 1e-4


@pytest.mark.parametrize('call, match', [
    (lambda v, m: cluster.imsc_agl(v, m, 46), 'num_clusters'),
    (lambda v, m: cluster.imsc_agl(v, m.at[:, 1].set(False), 3), 'no present sample'),
    (lambda v, m: cluster.imsc_agl([v[0].at[0, 0].set(jnp.nan), *v[1:]], m.at[0, 0].set(True),
                                   3), r'views\[0\]'),
    (lambda v, m: cluster.imsc_agl(v, m, 3, k_neighbours=45), 'k_neighbours'),
    (lambda v, m: cluster.imsc_agl(v, m.at[5:, 2].set(False).at[5:, 0].set(True), 3),
     'k_neighbours'),
    (lambda v, m: cluster.imsc_agl(v, m, 3, lam1=0.0), 'lam1'),
    (lambda v, m: cluster.imsc_agl(v, m, 3, lam3=-1.0), 'lam3'),
    (lambda v, m: cluster.imsc_agl(v, m, 3, mu=0.0), 'mu'),
    (lambda v, m: cluster.imsc_agl(v, m, 3, rho=0.9), 'rho'),
    (lambda v, m: cluster.imsc_agl(v, m, 3, capacity=46), 'capacity must be at most N'),
    (lambda v, m: cluster.imsc_agl(v, m.at[:, 0].set(True), 3, capacity=44),
     'capacity = 44 is below the 45'),
    (lambda v, m: cluster.imsc_agl(v, m, 3, capacity=2.5), 'capacity'),
    (lambda v, m: cluster.pic(v, m, 46), 'num_clusters'),
    (lambda v, m: cluster.pic(v, m.at[:, 0].set(False).at[:, 1].set(True), 3),
     'no present sample'),
    (lambda v, m: cluster.pic(v, m, 3, k_neighbours=44), 'k_neighbours'),
    (lambda v, m: cluster.pic([v[0][:, :1], *v[1:]], m, 3), r'views\[0\]'),
    (lambda v, m: cluster.pic(v, m, 3, beta=-0.1), 'beta'),
    (lambda v, m: cluster.pic(v, m.astype(jnp.int32), 3), 'mask'),
])
def test_bad_input_names_the_argument(call, match):
  views, mask, _ = _blocks()
  with pytest.raises((ValueError, TypeError), match=match):
    call(views, jnp.asarray(mask))
