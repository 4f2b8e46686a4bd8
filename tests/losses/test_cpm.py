"""lqmm.losses.cpm: CPM-Nets' class-mean similarity and classification hinge."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lqmm.losses import cpm

VECTORS = pathlib.Path(__file__).parents[1] / 'reference' / 'data' / 'cpm_vectors.npz'


def _brute_force_scores(query, reference, labels, num_classes, exclude_self):
  scores = np.full((len(query), num_classes), -np.inf)
  for q in range(len(query)):
    for c in range(num_classes):
      members = [m for m in range(len(reference)) if labels[m] == c and
                 not (exclude_self and m == q)]
      if members:
        scores[q, c] = np.mean([query[q] @ reference[m] for m in members])
  return scores


@given(st.integers(0, 10_000), st.booleans())
def test_class_mean_similarity_equals_brute_force(seed, exclude_self):
  rng = np.random.default_rng(seed)
  reference = rng.normal(size=(9, 3)).astype(np.float32)
  labels = rng.integers(0, 4, size=9)
  query = reference if exclude_self else rng.normal(size=(5, 3)).astype(np.float32)
  got = cpm.class_mean_similarity(jnp.asarray(query), jnp.asarray(reference),
                                  jnp.asarray(labels), num_classes=4, exclude_self=exclude_self)
  np.testing.assert_allclose(got, _brute_force_scores(query, reference, labels, 4, exclude_self),
                             rtol=1e-5, atol=1e-5)


def test_loss_is_the_hinge_and_zero_when_the_own_class_wins():
  # Two tight, well separated classes: every sample's own class mean wins by a margin.
  latent = jnp.array([[3.0, 0.0], [3.1, 0.1], [2.9, -0.1], [0.0, 3.0], [0.1, 3.1], [-0.1, 2.9]])
  labels = jnp.array([0, 0, 0, 1, 1, 1])
  np.testing.assert_array_equal(cpm.classification_loss(latent, labels, num_classes=2), 0)
  # Mixed labels: the hinge 1[wrong] + best - own, from brute-force class means.
  mixed = np.array([0, 1, 0, 1, 0, 1])
  scores = _brute_force_scores(np.asarray(latent), np.asarray(latent), mixed, 2, True)
  own = scores[np.arange(6), mixed]
  expected = np.maximum(0, (scores.argmax(1) != mixed) + scores.max(1) - own)
  assert expected.max() > 1  # some samples are misclassified
  loss = cpm.classification_loss(latent, jnp.asarray(mixed), num_classes=2)
  np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
  grads = jax.grad(lambda h: cpm.classification_loss(h, jnp.asarray(mixed),
                                                     num_classes=2).sum())(latent)
  assert np.all(np.isfinite(grads)) and np.abs(grads).sum() > 0


def test_matches_the_original_tensorflow_code():
  with np.load(VECTORS) as saved:
    reference = dict(saved)
  for case in range(int(reference['num_cases'])):
    latent = jnp.asarray(reference[f'{case}/h_train'])
    labels = jnp.asarray(reference[f'{case}/labels'] - 1)  # the original counts from 1
    loss = cpm.classification_loss(latent, labels, num_classes=int(reference[f'{case}/classes']))
    np.testing.assert_allclose(loss.sum(), reference[f'{case}/loss'], rtol=1e-4)
    scores = cpm.class_mean_similarity(jnp.asarray(reference[f'{case}/h_test']), latent, labels,
                                       num_classes=int(reference[f'{case}/classes']))
    np.testing.assert_array_equal(np.argmax(scores, 1) + 1, reference[f'{case}/predicted'])


def test_bad_inputs():
  latent = jnp.ones((4, 2))
  with pytest.raises(ValueError, match='alone in its class'):
    cpm.classification_loss(latent, jnp.array([0, 0, 0, 1]), num_classes=2)
  with pytest.raises(ValueError, match='exclude_self needs query to be reference'):
    cpm.class_mean_similarity(jnp.ones((3, 2)), latent, jnp.zeros(4, jnp.int32),
                              num_classes=1, exclude_self=True)
  with pytest.raises(ValueError, match='same width'):
    cpm.class_mean_similarity(jnp.ones((3, 3)), latent, jnp.zeros(4, jnp.int32), num_classes=1)
