"""DAIMC against the transcription of its MATLAB original, and its invariants."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm import cluster
from lqmm.cluster import factorization

VECTORS = pathlib.Path(__file__).parents[1] / 'reference' / 'data' / 'imvc_vectors.npz'


def _daimc_case(ref, case):
  prefix = f'daimc{case}_'
  num_views = int(ref[prefix + 'num_views'])
  views = [ref[prefix + f'x{v}'] for v in range(num_views)]
  return prefix, num_views, views, ref[prefix + 'mask']


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(VECTORS))


@pytest.mark.parametrize('case', [0, 1, 2])
def test_daimc_equals_the_original_in_float64(ref, case, x64):
  del x64
  prefix, num_views, views, mask = _daimc_case(ref, case)
  views = [jnp.asarray(x) for x in views]
  init = factorization._init_from_partitions(  # pylint: disable=protected-access
      views, [jnp.asarray(ref[prefix + f'kmeans_labels{v}']) for v in range(num_views)],
      [jnp.asarray(ref[prefix + f'kmeans_centres{v}']) for v in range(num_views)], 3)
  np.testing.assert_allclose(init.consensus, ref[prefix + 'init_consensus'], rtol=1e-10)
  for v in range(num_views):
    np.testing.assert_allclose(init.bases[v], ref[prefix + f'init_basis{v}'], rtol=1e-10)
    # The original's Woodbury form divides by the 1e-5 ridge: it loses ~1e-7 of accuracy.
    regression = ref[prefix + f'init_regression{v}']
    np.testing.assert_allclose(init.regressions[v], regression, rtol=1e-5,
                               atol=1e-6 * np.abs(regression).max())
  # The loop from the original's own initial factors.
  init = cluster.DAIMCFactors(
      tuple(jnp.asarray(ref[prefix + f'init_basis{v}']) for v in range(num_views)),
      jnp.asarray(ref[prefix + 'init_consensus']),
      tuple(jnp.asarray(ref[prefix + f'init_regression{v}']) for v in range(num_views)))
  result = cluster.daimc(views, jnp.asarray(mask), init, alpha=float(ref[prefix + 'alpha']),
                         beta=float(ref[prefix + 'beta']), max_iter=8)
  trace = ref[prefix + 'trace']
  assert int(result.num_iterations) == trace.size
  np.testing.assert_allclose(result.trace[:trace.size], trace, rtol=1e-6)
  np.testing.assert_allclose(result.solution.consensus, ref[prefix + 'consensus'], rtol=1e-5,
                             atol=1e-10)
  for v in range(num_views):
    basis = ref[prefix + f'basis{v}']
    np.testing.assert_allclose(result.solution.bases[v], basis, rtol=1e-5,
                               atol=1e-6 * np.abs(basis).max())


@pytest.mark.parametrize('case', [1])
def test_daimc_float32_tracks_the_original(ref, case):
  prefix, num_views, views, mask = _daimc_case(ref, case)
  views = [jnp.asarray(x, jnp.float32) for x in views]
  init = factorization._init_from_partitions(  # pylint: disable=protected-access
      views, [jnp.asarray(ref[prefix + f'kmeans_labels{v}']) for v in range(num_views)],
      [jnp.asarray(ref[prefix + f'kmeans_centres{v}'], jnp.float32) for v in range(num_views)],
      3)
  result = cluster.daimc(views, jnp.asarray(mask), init, alpha=float(ref[prefix + 'alpha']),
                         beta=float(ref[prefix + 'beta']), max_iter=8, tol=0.0)
  trace = ref[prefix + 'trace']
  np.testing.assert_allclose(result.trace[:trace.size], trace, rtol=2e-3)


def _blocks(seed, num_samples=90, dims=(6, 9, 5), rate=0.3):
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(3), num_samples // 3)
  views = [np.abs(rng.normal(size=(3, d)))[labels] + 0.2 * rng.uniform(size=(num_samples, d))
           for d in dims]
  mask = rng.uniform(size=(num_samples, len(dims))) > rate
  mask[~mask.any(1), 0] = True
  views = [cluster.normalize_samples(jnp.asarray(x, jnp.float32)) for x in views]
  return views, jnp.asarray(mask), labels


def test_daimc_objective_trace_is_non_increasing_and_reported_correctly():
  views, mask, _ = _blocks(0)
  init = cluster.daimc_init(views, mask, 3, key=jax.random.key(0))
  result = cluster.daimc(views, mask, init, alpha=1e-1, beta=1e1, max_iter=25, tol=0.0)
  trace = np.asarray(result.trace)
  assert np.all(np.diff(trace) <= 1e-5 * trace[0]), trace
  recomputed = cluster.daimc_objective(views, mask, result.solution, alpha=1e-1, beta=1e1)
  np.testing.assert_allclose(recomputed, trace[-1], rtol=1e-4)
  np.testing.assert_allclose(jnp.sum(result.solution.consensus, axis=0), 1.0, rtol=1e-5)


def test_daimc_ignores_the_values_of_missing_rows():
  views, mask, _ = _blocks(1)
  init = cluster.daimc_init(views, mask, 3, key=jax.random.key(0))
  dirty = [jnp.where(mask[:, v, None], x, 7.0) for v, x in enumerate(views)]
  clean = cluster.daimc(views, mask, init, alpha=1.0, beta=1.0, max_iter=5)
  other = cluster.daimc(dirty, mask, init, alpha=1.0, beta=1.0, max_iter=5)
  np.testing.assert_allclose(clean.trace, other.trace, rtol=1e-6)


def test_daimc_vmaps_over_masks_and_recovers_blocks():
  views, _, labels = _blocks(2)
  rng = np.random.default_rng(3)
  masks = rng.uniform(size=(3, 90, 3)) > 0.3
  masks[:, :, 0] |= ~masks.any(2)
  masks = jnp.asarray(masks)

  def run(mask, key):
    init = cluster.daimc_init(views, mask, 3, key=key)
    return cluster.daimc(views, mask, init, alpha=1e-1, beta=1e1)

  keys = jax.random.split(jax.random.key(0), 3)
  batched = jax.jit(jax.vmap(run))(masks, keys)
  single = jax.jit(run)(masks[1], keys[1])
  # Equal while the objective falls steeply; on its plateau (iteration 10 on), rounding
  # differences between the batched and the single program grow by up to about 1e-3 (XLA's
  # optimisation level alone moves them), so the tail is compared at 5e-3.
  np.testing.assert_allclose(batched.trace[1][:10], single.trace[:10], rtol=1e-4)
  np.testing.assert_allclose(batched.trace[1], single.trace, rtol=5e-3)
  labels_pred = cluster.kmeans(single.solution.consensus, 3, key=jax.random.key(1)).labels
  from lqmm import metrics  # pylint: disable=g-import-not-at-top
  assert metrics.clustering_accuracy(labels, np.asarray(labels_pred)) > 0.9


def test_nan_objective_names_the_iteration():
  views, mask, _ = _blocks(4)
  init = cluster.daimc_init(views, mask, 3, key=jax.random.key(0))
  bad = init._replace(consensus=init.consensus.at[0, 0].set(jnp.inf))
  with pytest.raises(FloatingPointError, match='iteration 1'):
    cluster.daimc(views, mask, bad, alpha=1.0, beta=1.0)


@pytest.mark.parametrize('change, match', [
    (lambda v, m: (v[:1], m[:, :1]), 'at least two views'),
    (lambda v, m: (v, m.at[:, 1].set(False)), 'no present sample'),
    (lambda v, m: (v, m.at[0].set(False)), 'no present view'),
    (lambda v, m: ([v[0].at[0, 0].set(jnp.nan), *v[1:]], m.at[0, 0].set(True)), r'views\[0\]'),
    (lambda v, m: (v, m.astype(jnp.int32)), 'mask'),
    (lambda v, m: (v, m[:10]), 'mask'),
])
def test_daimc_bad_input_names_the_argument(change, match):
  views, mask, _ = _blocks(5)
  init = cluster.daimc_init(views, mask, 3, key=jax.random.key(0))
  views, mask = change(views, mask)
  with pytest.raises((ValueError, TypeError), match=match):
    cluster.daimc(views, mask, init, alpha=1.0, beta=1.0)


def test_daimc_init_rejects_more_clusters_than_samples():
  views, mask, _ = _blocks(6)
  with pytest.raises(ValueError, match='num_clusters'):
    cluster.daimc_init(views, mask, 91, key=jax.random.key(0))
  with pytest.raises(ValueError, match='alpha'):
    cluster.daimc(views, mask, cluster.daimc_init(views, mask, 3, key=jax.random.key(0)),
                  alpha=0.0, beta=1.0)


# ------------------------------------------------------------------ MIC


def _mic_case(ref, case):
  prefix = f'mic{case}_'
  num_views = int(ref[prefix + 'num_views'])
  return prefix, num_views, [jnp.asarray(ref[prefix + f'x{v}']) for v in range(num_views)]


@pytest.mark.parametrize('case', [0, 1])
def test_mic_equals_the_original_in_float64(ref, case, x64):
  del x64
  prefix, num_views, views = _mic_case(ref, case)
  mask = jnp.asarray(ref[prefix + 'mask'])
  np.testing.assert_allclose(cluster.mic_weights(mask),
                             np.stack([ref[prefix + f'weights{v}'] for v in range(num_views)],
                                      1), rtol=1e-6)
  init = cluster.MICFactors(
      tuple(jnp.asarray(ref[prefix + f'init_coefficients{v}']) for v in range(num_views)),
      tuple(jnp.asarray(ref[prefix + f'init_basis{v}']) for v in range(num_views)),
      jnp.zeros_like(jnp.asarray(ref[prefix + 'init_coefficients0'])))
  rounds, max_iter = int(ref[prefix + 'rounds']), int(ref[prefix + 'max_iter'])
  result = cluster.mic(views, mask, init, alpha=float(ref[prefix + 'alpha']),
                       beta=float(ref[prefix + 'beta']), rounds=rounds, max_iter=max_iter)
  # The original logs the objective at the start of each round: ours after each round.
  np.testing.assert_allclose(result.trace[:rounds - 1], ref[prefix + 'logs'][1:], rtol=1e-7)
  for v in range(num_views):
    np.testing.assert_allclose(result.solution.coefficients[v], ref[prefix + f'coefficients{v}'],
                               rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(result.solution.bases[v], ref[prefix + f'basis{v}'], rtol=1e-6,
                               atol=1e-12)
  np.testing.assert_allclose(result.solution.consensus, ref[prefix + 'consensus'], rtol=1e-6,
                             atol=1e-12)


@pytest.mark.parametrize('case', [0, 1])
def test_plain_nmf_equals_cais_nmf(ref, case, x64):
  del x64
  prefix, _, views = _mic_case(ref, case)
  filled = factorization._mean_filled(  # pylint: disable=protected-access
      views[0], jnp.asarray(ref[prefix + 'mask'][:, 0], jnp.float64))
  coefficients, basis = factorization._nmf(  # pylint: disable=protected-access
      filled, jnp.asarray(ref[prefix + 'nmf_init_coefficients']),
      jnp.asarray(ref[prefix + 'nmf_init_basis']), int(ref[prefix + 'max_iter']))
  np.testing.assert_allclose(basis, ref[prefix + 'nmf_basis'], rtol=1e-7, atol=1e-14)
  np.testing.assert_allclose(coefficients, ref[prefix + 'nmf_coefficients'], rtol=1e-7,
                             atol=1e-14)


def test_mic_clusters_blocks_and_rejects_negative_views():
  views, mask, labels = _blocks(7)
  views = [jnp.abs(x) for x in views]
  init = cluster.mic_init(views, mask, 3, key=jax.random.key(0), num_iterations=50)
  result = cluster.mic(views, mask, init, alpha=0.1, beta=0.01, rounds=10, max_iter=20)
  assert np.all(np.isfinite(np.asarray(result.trace)))
  found = cluster.kmeans(result.solution.consensus, 3, key=jax.random.key(1)).labels
  from lqmm import metrics  # pylint: disable=g-import-not-at-top
  assert metrics.clustering_accuracy(labels, np.asarray(found)) > 0.9
  with pytest.raises(ValueError, match='negative'):
    cluster.mic([views[0] - 1.0, *views[1:]], mask, init, alpha=0.1, beta=0.01)


# ------------------------------------------------------------------ OPIMC


@pytest.mark.parametrize('case', [0, 1])
def test_opimc_equals_the_original_in_float64(ref, case, x64):
  del x64
  from lqmm.cluster import online  # pylint: disable=g-import-not-at-top
  prefix = f'opimc{case}_'
  num_views = int(ref[prefix + 'num_views'])
  views = tuple(jnp.asarray(ref[prefix + f'x{v}']) for v in range(num_views))
  mask = jnp.asarray(ref[prefix + 'mask'])
  result = online._opimc_from(  # pylint: disable=protected-access
      views, mask.astype(jnp.float64), jnp.asarray(ref[prefix + 'order']),
      tuple(jnp.asarray(ref[prefix + f'first_basis{v}']) for v in range(num_views)),
      jnp.asarray(ref[prefix + 'first_indicator']), jnp.float64(ref[prefix + 'alpha']),
      jnp.float64(1e-6), int(ref[prefix + 'block']), 30, bool(ref[prefix + 'faithful']))
  np.testing.assert_array_equal(result.labels, ref[prefix + 'labels'])
  np.testing.assert_allclose(result.losses, ref[prefix + 'losses'], rtol=1e-8)
  for v in range(num_views):
    np.testing.assert_allclose(result.bases[v], ref[prefix + f'basis{v}'], rtol=1e-7,
                               atol=1e-12)


def test_opimc_clusters_blocks_and_vmaps():
  views, mask, labels = _blocks(8, num_samples=120)
  keys = jax.random.split(jax.random.key(0), 2)
  batched = jax.vmap(lambda key: cluster.opimc(views, mask, 3, key=key, block_size=20,
                                               alpha=1.0))(keys)
  single = cluster.opimc(views, mask, 3, key=keys[1], block_size=20, alpha=1.0)
  np.testing.assert_array_equal(batched.labels[1], single.labels)
  from lqmm import metrics  # pylint: disable=g-import-not-at-top
  assert metrics.clustering_accuracy(labels, np.asarray(single.labels)) > 0.8
  with pytest.raises(ValueError, match='block_size'):
    cluster.opimc(views, mask, 3, key=keys[0], block_size=2)


# ------------------------------------------------------------------ LF-IMVC


@pytest.mark.parametrize('case', [0, 1])
def test_late_fusion_equals_the_original_in_float64(ref, case, x64):
  del x64
  prefix = f'lfimvc{case}_'
  initial = jnp.asarray(ref[prefix + 'initial'])
  # Base partitions span the same space as the original's eigenvectors (signs are arbitrary).
  ours = cluster.base_partitions(jnp.asarray(ref[prefix + 'kernels']),
                                 jnp.asarray(ref[prefix + 'mask']), 3)
  for v in range(initial.shape[0]):
    np.testing.assert_allclose(ours[v] @ ours[v].T, initial[v] @ initial[v].T, atol=1e-6)
  result = cluster.late_fusion(initial, lam=float(ref[prefix + 'lam']))
  objective = ref[prefix + 'objective']
  assert int(result.num_iterations) == objective.size
  np.testing.assert_allclose(result.trace[:objective.size], objective, rtol=1e-9)
  np.testing.assert_allclose(result.solution.consensus, ref[prefix + 'consensus'], atol=1e-7)
  np.testing.assert_allclose(result.solution.partitions, ref[prefix + 'partitions'], atol=1e-7)


def test_late_fusion_objective_never_decreases_and_clusters_blocks():
  views, mask, labels = _blocks(9)
  kernels = cluster.cosine_kernels(views, mask)
  assert np.all(np.asarray(kernels)[:, ~np.asarray(mask[:, 0])][0] == 0)
  partitions = cluster.base_partitions(kernels, mask, 3)
  result = cluster.late_fusion(partitions, lam=0.5, tol=0.0, max_iter=30)
  trace = np.asarray(result.trace)
  assert np.all(np.diff(trace) >= -1e-5 * abs(trace[0]))
  consensus = np.asarray(result.solution.consensus)
  np.testing.assert_allclose(consensus.T @ consensus, np.eye(3), atol=1e-4)
  rows = consensus / np.linalg.norm(consensus, axis=1, keepdims=True)
  found = cluster.kmeans(jnp.asarray(rows), 3, key=jax.random.key(0)).labels
  from lqmm import metrics  # pylint: disable=g-import-not-at-top
  assert metrics.clustering_accuracy(labels, np.asarray(found)) > 0.9
