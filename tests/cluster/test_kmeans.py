"""k-means and spectral clustering against scikit-learn, and their invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import cluster as sk_cluster
from sklearn import datasets

from lqmm import cluster
from lqmm import metrics


def _digits():
  x, y = datasets.load_digits(return_X_y=True)
  return (x / 16).astype(np.float32), y


def test_kmeans_matches_sklearn_inertia_on_digits():
  x, y = _digits()
  ours = cluster.kmeans(jnp.asarray(x), 10, key=jax.random.key(0), num_restarts=10)
  theirs = sk_cluster.KMeans(10, n_init=10, random_state=0).fit(x)
  # Same objective at the optimum both reach, within 1% (different random streams).
  assert abs(float(ours.inertia) - theirs.inertia_) / theirs.inertia_ < 0.01
  assert abs(metrics.clustering_accuracy(y, np.asarray(ours.labels))
             - metrics.clustering_accuracy(y, theirs.labels_)) < 0.05
  # The reported inertia is that of the returned labels and centres.
  distances = ((x[:, None, :] - np.asarray(ours.centers)[None]) ** 2).sum(-1)
  np.testing.assert_array_equal(np.asarray(ours.labels), distances.argmin(1))
  np.testing.assert_allclose(float(ours.inertia), distances.min(1).sum(), rtol=1e-4)


def test_kmeans_trace_is_non_increasing_and_centres_are_fixed_points():
  x, _ = _digits()
  result = cluster.kmeans(jnp.asarray(x), 10, key=jax.random.key(3), num_restarts=2, tol=0.0,
                          max_iter=100)
  trace = np.asarray(result.trace)
  assert np.all(np.diff(trace) <= 1e-3 * trace[0])
  assert float(result.inertia) <= trace[int(result.num_iterations) - 1] * (1 + 1e-6)
  labels = np.asarray(result.labels)
  if int(result.num_iterations) < 100:  # converged: every centre is its cluster's mean
    for k in range(10):
      np.testing.assert_allclose(np.asarray(result.centers)[k], x[labels == k].mean(0),
                                 atol=1e-4)


def test_zero_weight_rows_neither_seed_nor_move_centres():
  x, _ = _digits()
  weights = np.ones(len(x), np.float32)
  weights[::3] = 0
  garbage = x.copy()
  garbage[::3] = 1e3  # what a zero-filled or corrupt missing row may hold
  kwargs = dict(key=jax.random.key(1), num_restarts=3)
  clean = cluster.kmeans(jnp.asarray(x), 10, weights=jnp.asarray(weights), **kwargs)
  dirty = cluster.kmeans(jnp.asarray(garbage), 10, weights=jnp.asarray(weights), **kwargs)
  np.testing.assert_allclose(np.asarray(clean.centers), np.asarray(dirty.centers), atol=1e-5)
  np.testing.assert_allclose(float(clean.inertia), float(dirty.inertia), rtol=1e-5)
  # The weighted objective counts only positive-weight rows.
  distances = ((x[:, None, :] - np.asarray(clean.centers)[None]) ** 2).sum(-1).min(1)
  np.testing.assert_allclose(float(clean.inertia), (weights * distances).sum(), rtol=1e-4)


def test_empty_cluster_is_reseeded_at_the_farthest_sample():
  x = np.array([[0.0], [0.1], [0.2], [10.0], [10.1]], np.float32)
  init = np.array([[0.1], [10.05], [1000.0]], np.float32)  # the third centre attracts nothing
  result = cluster.kmeans(jnp.asarray(x), 3, key=jax.random.key(0), num_restarts=1, init=init)
  assert np.unique(np.asarray(result.labels)).size == 3
  assert float(result.inertia) < 0.05


def test_kmeans_plus_plus_spreads_seeds_and_skips_zero_weights():
  x = np.concatenate([np.zeros((50, 2)), np.full((50, 2), 10.0), np.full((50, 2), -10.0)])
  weights = np.ones(150, np.float32)
  weights[100:] = 0
  seeds = cluster.kmeans_plus_plus(jnp.asarray(x, jnp.float32), 2, key=jax.random.key(0),
                                   weights=jnp.asarray(weights))
  assert sorted(np.asarray(seeds)[:, 0].tolist()) == [0.0, 10.0]


def test_kmeans_vmaps_over_keys_and_weights():
  x, _ = _digits()
  x = jnp.asarray(x[:200])
  weights = jnp.stack([jnp.ones(200), jnp.ones(200).at[:50].set(0)])
  keys = jax.random.split(jax.random.key(0), 2)
  batched = jax.vmap(lambda k, w: cluster.kmeans(x, 5, key=k, weights=w, num_restarts=2))(
      keys, weights)
  single = cluster.kmeans(x, 5, key=keys[1], weights=weights[1], num_restarts=2)
  np.testing.assert_allclose(float(batched.inertia[1]), float(single.inertia), rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(batched.labels[1]), np.asarray(single.labels))


def test_spectral_clustering_recovers_noisy_blocks_like_sklearn():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(4), 30)
  affinity = (labels[:, None] == labels[None, :]) * 0.8 + rng.uniform(0, 0.3, (120, 120))
  affinity = ((affinity + affinity.T) / 2).astype(np.float32)
  ours = cluster.spectral_clustering(jnp.asarray(affinity), 4, key=jax.random.key(0))
  theirs = sk_cluster.SpectralClustering(4, affinity='precomputed', random_state=0).fit(
      affinity).labels_
  assert metrics.adjusted_rand_index(labels, np.asarray(ours)) == 1.0
  assert metrics.adjusted_rand_index(labels, theirs) == 1.0
  # The embedding is the row-normalised top eigenvectors of the normalised affinity, up to
  # a rotation of the eigenbasis (so compare Gram matrices).
  degree = affinity.sum(1)
  normalized = affinity / np.sqrt(np.outer(degree, degree))
  top = np.linalg.eigh(normalized.astype(np.float64))[1][:, -4:]
  top /= np.linalg.norm(top, axis=1, keepdims=True)
  embedding = np.asarray(cluster.spectral_embedding(jnp.asarray(affinity), 4), np.float64)
  np.testing.assert_allclose(embedding @ embedding.T, top @ top.T, atol=1e-3)


@pytest.mark.parametrize('call, match', [
    (lambda: cluster.kmeans(jnp.ones((3, 2)), 4, key=jax.random.key(0)), 'num_clusters'),
    (lambda: cluster.kmeans(jnp.ones((3, 2)).at[0, 0].set(jnp.nan), 2, key=jax.random.key(0)),
     'x'),
    (lambda: cluster.kmeans(jnp.ones((3, 2)), 2, key=jax.random.key(0),
                            weights=jnp.array([1.0, -1.0, 1.0])), 'weights'),
    (lambda: cluster.kmeans(jnp.ones((3, 2)), 3, key=jax.random.key(0),
                            weights=jnp.array([1.0, 0.0, 1.0])), 'weights'),
    (lambda: cluster.kmeans(jnp.ones((3, 2)), 2, key=jax.random.key(0),
                            init=jnp.ones((3, 2))), 'init'),
    (lambda: cluster.kmeans(jnp.ones((3, 2)), 2, key=0), 'key'),
    (lambda: cluster.spectral_clustering(jnp.array([[1.0, 2.0], [0.0, 1.0]]), 2,
                                         key=jax.random.key(0)), 'symmetric'),
    (lambda: cluster.spectral_embedding(-jnp.ones((2, 2)), 1), 'affinity'),
    (lambda: cluster.spectral_embedding(jnp.ones((2, 3)), 1), 'affinity'),
])
def test_bad_input_names_the_argument(call, match):
  with pytest.raises((ValueError, TypeError), match=match):
    call()
