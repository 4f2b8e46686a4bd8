"""Metrics against direct NumPy computations."""

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lqmm import metrics


def _numpy_ece(probabilities, labels, num_bins):
  confidence = probabilities.max(-1)
  correct = probabilities.argmax(-1) == labels
  total = 0.0
  for low, high in zip(np.linspace(0, 1, num_bins + 1)[:-1], np.linspace(0, 1, num_bins + 1)[1:]):
    inside = (confidence > low) & (confidence <= high)
    if inside.any():
      total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
  return total


def test_ece_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(500, 7)) * 3
  probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  labels = rng.integers(0, 7, 500)
  ours = metrics.expected_calibration_error(jnp.asarray(probabilities, jnp.float32),
                                            jnp.asarray(labels, jnp.int32), num_bins=10)
  np.testing.assert_allclose(ours, _numpy_ece(probabilities, labels, 10), atol=1e-5)


@hypothesis.given(hnp.arrays(np.float32, 30, elements=st.floats(-3, 3, width=32, allow_subnormal=False)),
                  hnp.arrays(bool, 30))
def test_auroc_matches_pairwise_definition(scores, positives):
  hypothesis.assume(positives.any() and (~positives).any())
  pos, neg = scores[positives], scores[~positives]
  expected = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
  np.testing.assert_allclose(metrics.auroc(jnp.asarray(scores), jnp.asarray(positives)),
                             expected, rtol=1e-5)


def test_accuracy_and_uncertainty_auroc():
  scores = jnp.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
  labels = jnp.array([0, 1, 1, 1])
  assert float(metrics.accuracy(scores, labels)) == 0.75
  uncertainty = jnp.array([0.1, 0.2, 0.9, 0.3])  # the wrong prediction is the most uncertain
  assert float(metrics.uncertainty_auroc(uncertainty, scores, labels)) == 1.0


def test_vmaps_over_seeds():
  probabilities = jnp.full((3, 8, 4), 0.25)
  labels = jnp.zeros((8,), jnp.int32)
  values = jax.vmap(lambda p: metrics.expected_calibration_error(p, labels))(probabilities)
  # Every prediction is class 0 (argmax of ties) and correct, with confidence 0.25.
  np.testing.assert_allclose(values, np.full(3, 0.75))


def test_errors():
  with pytest.raises(ValueError, match=r'labels must have shape \(2,\)'):
    metrics.accuracy(jnp.ones((2, 3)), jnp.zeros(3, jnp.int32))
  with pytest.raises(ValueError, match='scores and positives must both have shape'):
    metrics.auroc(jnp.ones(3), jnp.ones(4, bool))


# ------------------------------------------------------------------ clustering agreement

from scipy import optimize  # noqa: E402
from sklearn import metrics as sk_metrics  # noqa: E402


def _sklearn_accuracy(labels_true, labels_pred):
  table = sk_metrics.cluster.contingency_matrix(labels_true, labels_pred)
  rows, columns = optimize.linear_sum_assignment(-table)
  return table[rows, columns].sum() / len(labels_true)


_LABELINGS = st.integers(1, 60).flatmap(lambda n: st.tuples(
    hnp.arrays(np.int64, n, elements=st.sampled_from([-3, 0, 2, 7, 8, 40])),
    hnp.arrays(np.int64, n, elements=st.integers(-2, 11))))


@hypothesis.given(_LABELINGS)
def test_clustering_metrics_equal_sklearn(labelings):
  labels_true, labels_pred = labelings
  for method in ('arithmetic', 'geometric', 'max', 'min'):
    np.testing.assert_allclose(
        metrics.normalized_mutual_info(labels_true, labels_pred, average_method=method),
        sk_metrics.normalized_mutual_info_score(labels_true, labels_pred,
                                                average_method=method), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        metrics.adjusted_mutual_info(labels_true, labels_pred, average_method=method),
        sk_metrics.adjusted_mutual_info_score(labels_true, labels_pred, average_method=method),
        rtol=1e-9, atol=1e-11)
  np.testing.assert_allclose(metrics.adjusted_rand_index(labels_true, labels_pred),
                             sk_metrics.adjusted_rand_score(labels_true, labels_pred),
                             rtol=1e-12, atol=1e-14)
  table = sk_metrics.cluster.contingency_matrix(labels_true, labels_pred)
  np.testing.assert_allclose(metrics.purity(labels_true, labels_pred),
                             table.max(axis=0).sum() / table.sum(), rtol=1e-12)
  np.testing.assert_allclose(metrics.clustering_accuracy(labels_true, labels_pred),
                             _sklearn_accuracy(labels_true, labels_pred), rtol=1e-12)
  ours, classes, clusters = metrics.contingency_table(labels_true, labels_pred)
  np.testing.assert_array_equal(ours, table)
  np.testing.assert_array_equal(classes, np.unique(labels_true))
  np.testing.assert_array_equal(clusters, np.unique(labels_pred))


def test_clustering_accuracy_rectangular_tables_count_unmatched_as_errors():
  labels_true = np.array([0] * 4 + [1] * 4)
  # Four clusters for two classes: only two can be matched; the other two are errors.
  labels_pred = np.array([5, 5, 9, 9, 1, 1, 3, 3])
  assert metrics.clustering_accuracy(labels_true, labels_pred) == 0.5
  assert metrics.purity(labels_true, labels_pred) == 1.0
  # One cluster for two classes: the unmatched class is wrong.
  assert metrics.clustering_accuracy(labels_true, np.zeros(8, int)) == 0.5
  # Non-contiguous values on both sides, a perfect relabelling.
  assert metrics.clustering_accuracy([10, 10, 30, 30], [-1, -1, 4, 4]) == 1.0


def test_clustering_metrics_batch_over_runs():
  rng = np.random.default_rng(1)
  labels_true = rng.integers(0, 5, 100)
  labels_pred = rng.integers(0, 7, (2, 3, 100))
  for name in ('clustering_accuracy', 'normalized_mutual_info', 'adjusted_mutual_info',
               'adjusted_rand_index', 'purity'):
    batched = getattr(metrics, name)(labels_true, labels_pred)
    assert batched.shape == (2, 3), name
    each = [[getattr(metrics, name)(labels_true, run) for run in runs] for runs in labels_pred]
    np.testing.assert_allclose(batched, each, rtol=1e-12, err_msg=name)
  # JAX arrays work too.
  assert metrics.clustering_accuracy(jnp.asarray(labels_true), jnp.asarray(labels_true)) == 1.0


def test_nmi_normalisations_differ_and_are_ordered():
  labels_true = np.repeat(np.arange(4), 25)
  labels_pred = np.concatenate([np.repeat(np.arange(3), 30), np.full(10, 3)])
  values = {method: metrics.normalized_mutual_info(labels_true, labels_pred,
                                                   average_method=method)
            for method in ('min', 'geometric', 'arithmetic', 'max')}
  assert values['min'] > values['geometric'] > values['arithmetic'] > values['max']


@pytest.mark.parametrize('bad, match', [
    (dict(labels_true=np.array([0.0, 1.0]), labels_pred=np.array([0, 1])), 'labels_true'),
    (dict(labels_true=np.array([0, 1]), labels_pred=np.array([0, 1, 1])), 'labels_pred'),
    (dict(labels_true=np.array([], int), labels_pred=np.array([], int)), 'labels_true'),
    (dict(labels_true=np.zeros((2, 4), int), labels_pred=np.zeros((3, 4), int)), 'labels_pred'),
])
def test_clustering_metrics_bad_input(bad, match):
  with pytest.raises((TypeError, ValueError), match=match):
    metrics.clustering_accuracy(**bad)


def test_nmi_unknown_average_method():
  with pytest.raises(ValueError, match='average_method'):
    metrics.normalized_mutual_info([0, 1], [0, 1], average_method='mean')
