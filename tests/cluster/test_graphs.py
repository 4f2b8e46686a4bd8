"""kNN graphs over present samples, their batch restrictions, and the deep-clustering losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from sklearn import neighbors

from lqmm import cluster
from lqmm import losses
from lqmm import nn


def test_knn_neighbours_equal_sklearn_among_present_rows():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(60, 4)).astype(np.float32)
  present = rng.uniform(size=60) > 0.3
  ours = np.asarray(cluster.knn_neighbours(jnp.asarray(x), jnp.asarray(present), 5))
  rows = np.flatnonzero(present)
  _, theirs = neighbors.NearestNeighbors(n_neighbors=5).fit(x[rows]).kneighbors(x[rows])
  np.testing.assert_array_equal(ours[rows], rows[theirs])
  assert np.all(ours[~present] == -1)
  assert np.all(ours[rows, 0] == rows)  # each present sample is its own first neighbour


def test_batch_adjacency_is_the_symmetric_knn_graph_restricted_to_the_batch():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(40, 3)).astype(np.float32)
  present = np.ones(40, bool)
  present[::7] = False
  lists = np.asarray(cluster.knn_neighbours(jnp.asarray(x), jnp.asarray(present), 4))
  dense = np.zeros((40, 40), bool)
  for i, row in enumerate(lists):
    dense[i, row[row >= 0]] = True
  dense = (dense | dense.T) & ~np.eye(40, dtype=bool)
  rows = rng.permutation(40)[:16]
  ours = np.asarray(cluster.batch_adjacency(jnp.asarray(lists), jnp.asarray(rows)))
  np.testing.assert_array_equal(ours, dense[np.ix_(rows, rows)].astype(np.float32))


def test_graph_smoothness_is_half_the_weighted_squared_distances():
  rng = np.random.default_rng(2)
  codes = rng.normal(size=(12, 3)).astype(np.float32)
  adjacency = rng.uniform(size=(12, 12)).astype(np.float32)
  adjacency = (adjacency + adjacency.T) / 2
  expected = 0.5 * sum(adjacency[i, j] * np.sum((codes[i] - codes[j]) ** 2)
                       for i in range(12) for j in range(12))
  np.testing.assert_allclose(losses.clustering.graph_smoothness(jnp.asarray(codes),
                                                                 jnp.asarray(adjacency)),
                             expected, rtol=1e-4)


def test_centroid_loss_and_self_paced_weights():
  codes = jnp.array([[0.0, 2.0], [1.0, 1.0], [4.0, 0.0]])
  centres = jnp.array([[0.0, 0.0], [4.0, 0.0]])
  labels = jnp.array([0, 0, 1])
  value = losses.clustering.centroid_loss(codes, centres, labels, jnp.array([1.0, 1.0, 0.0]))
  np.testing.assert_allclose(value, (4 / 2 + 2 / 2) / 2)
  assert float(losses.clustering.centroid_loss(codes, centres, labels, jnp.zeros(3))) == 0.0
  distances = np.array([0.1, 0.5, 0.9, 3.0, 0.2], np.float32)
  for iteration in (0, 50, 100):
    threshold = distances.mean() + iteration * distances.std(ddof=1) / 100
    np.testing.assert_array_equal(
        losses.clustering.self_paced_weights(jnp.asarray(distances), iteration, 100),
        (distances < threshold).astype(np.float32))


@pytest.mark.parametrize('call, match', [
    (lambda: losses.clustering.self_paced_weights(jnp.ones(1), 0, 10), 'distances'),
    (lambda: losses.clustering.self_paced_weights(jnp.ones(3), 0, 0), 'num_iterations'),
    (lambda: losses.clustering.centroid_loss(jnp.ones((2, 2)), jnp.ones((1, 3)),
                                             jnp.zeros(2, jnp.int32), jnp.ones(2)), 'centres'),
    (lambda: losses.clustering.graph_smoothness(jnp.ones((2, 2)), jnp.ones((3, 3))),
     'adjacency'),
    (lambda: cluster.knn_neighbours(jnp.ones((4, 2)), jnp.ones(4), 2), 'present'),
])
def test_bad_input_names_the_argument(call, match):
  with pytest.raises((ValueError, TypeError), match=match):
    call()


def test_multiview_autoencoder_is_cdimc_nets_network():
  dims = {'pix': 240, 'fou': 76, 'fac': 216, 'zer': 47, 'kar': 64}
  order = tuple(dims)
  abstract = nnx.eval_shape(lambda: nn.MultiViewAutoencoder(dims, order, latent_dim=10,
                                                             rngs=nnx.Rngs(0)))
  # Encoder widths round(0.8 d), round(0.8 d), 1500, 10; decoders 10, 10, 1500, ..., d.
  widths = {view: [layer.kernel.shape[1] for layer in abstract.encoders[view]]
            for view in order}
  assert widths['fou'] == [61, 61, 1500, 10] and widths['zer'] == [38, 38, 1500, 10]
  assert [layer.kernel.shape[1] for layer in abstract.decoders['pix']] == [
      10, 1500, 192, 192, 240]
  # A narrow copy with one jitted parameter draw (eager per-layer initialisation is slow).
  graphdef, shapes = nnx.split(nnx.eval_shape(lambda: nn.MultiViewAutoencoder(
      dims, order, latent_dim=10, width=32, rngs=nnx.Rngs(0))), nnx.Param)
  model = nnx.merge(graphdef, nn.xavier_uniform_init(shapes, key=jax.random.key(0)))
  rng = np.random.default_rng(0)
  inputs = {view: jnp.asarray(rng.normal(size=(6, d)), jnp.float32) for view, d in dims.items()}
  mask = jnp.asarray(rng.uniform(size=(5, 6)) > 0.4).at[0].set(True)
  codes, fused, outputs = model(inputs, mask)
  assert codes.shape == (5, 6, 10) and {v: o.shape for v, o in outputs.items()} == {
      view: (6, d) for view, d in dims.items()}
  weights = np.asarray(mask, np.float32)[..., None]
  np.testing.assert_allclose(fused, (weights * np.asarray(codes)).sum(0) / weights.sum(0),
                             rtol=1e-5, atol=1e-6)
  # A missing view's values do not reach the fused code.
  changed = dict(inputs, fou=jnp.where(mask[1][:, None], inputs['fou'], 100.0))
  np.testing.assert_allclose(model(changed, mask)[1], fused, rtol=1e-6)
