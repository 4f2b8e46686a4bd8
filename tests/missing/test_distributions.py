"""lqmm.missing.distributions against UIMC's original imputation and its own moments."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.missing import distributions

VECTORS = pathlib.Path(__file__).parents[1] / 'reference' / 'data' / 'uimc_vectors.npz'
REGULARIZATION = 1e-3  # the original's reg_param


@pytest.fixture(scope='module')
def reference():
  with np.load(VECTORS) as saved:
    return dict(saved)


def _split(reference, rows):
  inputs = {str(v): jnp.asarray(reference[f'x/{v}'][rows], jnp.float32) for v in range(3)}
  mask = {str(v): jnp.asarray(reference['mask'][rows, v]) for v in range(3)}
  return inputs, mask


def test_class_gaussians_match_the_original_with_its_indexing(reference):
  """The code's class Gaussians (indexing slip included) for every missing training entry."""
  train = reference['train_index']
  inputs, mask = _split(reference, train)
  labels = jnp.asarray(reference['labels'][train])
  gaussians = distributions.class_gaussians(inputs, mask, labels, num_classes=3,
                                            regularization=REGULARIZATION,
                                            faithful_indexing=True)
  compared = 0
  for v in range(3):
    rows = reference[f'train/{v}/rows']
    mean, tril, _ = gaussians[str(v)]
    label = np.asarray(labels)[rows]
    np.testing.assert_allclose(mean[label], reference[f'train/{v}/mean'], rtol=1e-4, atol=1e-5)
    cov = np.einsum('nij,nkj->nik', tril[label], tril[label])
    np.testing.assert_allclose(cov, reference[f'train/{v}/cov'], rtol=1e-4, atol=1e-5)
    compared += len(rows)
  assert compared == 38


def test_paper_class_gaussians_use_the_class_rows_that_have_the_view(reference):
  train = reference['train_index']
  inputs, mask = _split(reference, train)
  labels = np.asarray(reference['labels'][train])
  paper = distributions.class_gaussians(inputs, mask, jnp.asarray(labels), num_classes=3,
                                        regularization=REGULARIZATION)
  code = distributions.class_gaussians(inputs, mask, jnp.asarray(labels), num_classes=3,
                                       regularization=REGULARIZATION, faithful_indexing=True)
  for v in range(3):
    for c in range(3):
      rows = np.asarray(inputs[str(v)])[(labels == c) & np.asarray(mask[str(v)])]
      np.testing.assert_allclose(paper[str(v)].mean[c], rows.mean(0), rtol=1e-5, atol=1e-5)
      cov = np.atleast_2d(np.cov(rows, rowvar=False)) + REGULARIZATION * np.eye(rows.shape[1])
      tril = paper[str(v)].scale_tril[c]
      np.testing.assert_allclose(tril @ tril.T, cov, rtol=1e-4, atol=1e-5)
      assert int(paper[str(v)].count[c]) == len(rows)
    # The slip gives other means (the data's classes are shifted by their label).
    assert not np.allclose(paper[str(v)].mean, code[str(v)].mean, atol=1e-2)


def test_neighbour_gaussians_match_the_original(reference):
  """Union of the k nearest training rows through each present view, as the original."""
  test, train = reference['test_index'], reference['train_index']
  inputs, mask = _split(reference, test)
  reference_inputs, reference_mask = _split(reference, train)
  sets = distributions.neighbour_sets(inputs, mask, reference_inputs=reference_inputs,
                                      reference_mask=reference_mask, k=int(reference['k']))
  compared = 0
  for v in range(3):
    rows = reference[f'test/{v}/rows']
    index, weight = sets[str(v)]
    weights = np.zeros((len(test), len(train)), np.float32)
    np.add.at(weights, (np.arange(len(test))[:, None].repeat(index.shape[1], 1),
                        np.asarray(index)), np.asarray(weight))
    assert weights.max() == 1  # a row reached through two views counts once
    mean, cov = distributions.gaussian_moments(reference_inputs[str(v)], weights[rows])
    width = cov.shape[-1]
    np.testing.assert_allclose(mean, reference[f'test/{v}/mean'], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(cov) + REGULARIZATION * np.eye(width),
                               reference[f'test/{v}/cov'], rtol=1e-4, atol=1e-5)
    compared += len(rows)
  assert compared == 23


def test_gaussian_moments_equal_numpy_with_frequency_weights():
  rng = np.random.default_rng(0)
  rows = rng.normal(size=(12, 3))
  weights = rng.integers(0, 3, size=(4, 12))
  mean, cov = distributions.gaussian_moments(jnp.asarray(rows, jnp.float32),
                                             jnp.asarray(weights, jnp.float32))
  for w, m, c in zip(weights, mean, cov):
    np.testing.assert_allclose(m, np.average(rows, axis=0, weights=w), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, np.cov(rows, rowvar=False, fweights=w), rtol=1e-4, atol=1e-5)


def _toy(num_rows=40, seed=0):
  rng = np.random.default_rng(seed)
  labels = np.arange(num_rows) % 2
  inputs = {'a': jnp.asarray(rng.normal(size=(num_rows, 2)) + 3 * labels[:, None], jnp.float32),
            'b': jnp.asarray(rng.normal(size=(num_rows, 3)) - 2 * labels[:, None], jnp.float32)}
  mask = {'a': jnp.asarray(np.arange(num_rows) % 3 != 0),
          'b': jnp.asarray(np.arange(num_rows) % 3 != 1)}
  return inputs, mask, jnp.asarray(labels)


def test_neighbour_draws_have_the_estimated_moments():
  inputs, mask, _ = _toy()
  draws = distributions.sample_neighbours(
      jax.random.key(0), inputs, mask, reference_inputs=inputs, reference_mask=mask, k=4,
      num_draws=20000, regularization=0.5)
  sets = distributions.neighbour_sets(inputs, mask, reference_inputs=inputs,
                                      reference_mask=mask, k=4)
  for view, x in inputs.items():
    present = np.asarray(mask[view])
    np.testing.assert_array_equal(np.asarray(draws[view])[:, present],
                                  np.broadcast_to(np.asarray(x)[present],
                                                  (20000, present.sum(), x.shape[1])))
    row = int(np.flatnonzero(~present)[0])
    index, weight = sets[view]
    dense = np.zeros(x.shape[0], np.float32)
    np.add.at(dense, np.asarray(index[row]), np.asarray(weight[row]))
    mean, cov = distributions.gaussian_moments(x, dense)
    sample = np.asarray(draws[view][:, row])
    np.testing.assert_allclose(sample.mean(0), mean, atol=0.05)
    np.testing.assert_allclose(np.cov(sample, rowvar=False),
                               cov + 0.5 * np.eye(x.shape[1]), atol=0.08)


def test_class_draws_fill_missing_rows_from_their_class():
  inputs, mask, labels = _toy()
  gaussians = distributions.class_gaussians(inputs, mask, labels, num_classes=2)
  draws = distributions.sample_class_conditional(jax.random.key(1), inputs, mask, labels,
                                                 gaussians, num_draws=4000)
  for view in inputs:
    missing = np.flatnonzero(~np.asarray(mask[view]))
    for row in missing[:3]:
      np.testing.assert_allclose(np.asarray(draws[view][:, row]).mean(0),
                                 gaussians[view].mean[int(labels[row])], atol=0.1)
    assert np.array_equal(np.asarray(draws[view][0])[np.asarray(mask[view])],
                          np.asarray(inputs[view])[np.asarray(mask[view])])


def test_class_draws_through_the_class_table_have_the_same_distribution():
  inputs, mask, labels = _toy()
  gaussians = distributions.class_gaussians(inputs, mask, labels, num_classes=2)
  train_rows = np.arange(30)
  table = distributions.class_rows(labels, 2, rows=train_rows, size=16)
  assert table.shape == (2, 16) and set(table[table >= 0].tolist()) == set(train_rows.tolist())
  draws = distributions.sample_class_conditional(jax.random.key(1), inputs, mask, labels,
                                                 gaussians, num_draws=4000,
                                                 rows_by_class=jnp.asarray(table))
  for view in inputs:
    missing_rows = np.flatnonzero(~np.asarray(mask[view]))
    listed = [row for row in missing_rows if row in set(train_rows.tolist())]
    unlisted = [row for row in missing_rows if row not in set(train_rows.tolist())]
    row = listed[0]
    sample = np.asarray(draws[view][:, row])
    np.testing.assert_allclose(sample.mean(0), gaussians[view].mean[int(labels[row])], atol=0.1)
    tril = np.asarray(gaussians[view].scale_tril[int(labels[row])])
    np.testing.assert_allclose(np.cov(sample, rowvar=False), tril @ tril.T, atol=0.15)
    # Rows outside the table (test rows) are left as given: never drawn with their labels.
    np.testing.assert_array_equal(np.asarray(draws[view][0])[unlisted],
                                  np.asarray(inputs[view])[unlisted])
  with pytest.raises(ValueError, match='smaller than the largest class'):
    distributions.class_rows(labels, 2, size=3)


def test_draws_are_pure_functions_of_the_key_and_vmap_over_keys():
  inputs, mask, _ = _toy()

  def draw(key):
    return distributions.sample_neighbours(key, inputs, mask, reference_inputs=inputs,
                                           reference_mask=mask, k=3, num_draws=2)['a']

  keys = jax.random.split(jax.random.key(3), 3)
  batched = jax.jit(jax.vmap(draw))(keys)
  np.testing.assert_allclose(batched[1], draw(keys[1]), rtol=1e-5, atol=1e-5)
  assert not np.allclose(batched[0], batched[1])


def test_bad_inputs_name_the_argument():
  inputs, mask, labels = _toy()
  with pytest.raises(ValueError, match='k must be <= 40'):
    distributions.neighbour_sets(inputs, mask, reference_inputs=inputs, reference_mask=mask,
                                 k=41)
  few = {'a': mask['a'] & (jnp.arange(40) < 3), 'b': mask['b']}
  with pytest.raises(ValueError, match="view 'a' has fewer than two rows of class"):
    distributions.class_gaussians(inputs, few, labels, num_classes=2)
  with pytest.raises(ValueError, match='labels must lie in'):
    distributions.class_gaussians(inputs, mask, labels + 1, num_classes=2)
  with pytest.raises(KeyError, match='gaussians has no view'):
    distributions.sample_class_conditional(jax.random.key(0), inputs, mask, labels, {},
                                           num_draws=1)
  empty_row = {'a': mask['a'].at[0].set(False), 'b': mask['b'].at[0].set(False)}
  with pytest.raises(ValueError, match='mask: row 0 has no present view'):
    distributions.sample_neighbours(jax.random.key(0), inputs, empty_row,
                                    reference_inputs=inputs, reference_mask=mask, k=2,
                                    num_draws=1)
  with pytest.raises(ValueError, match='at least two views'):
    distributions.neighbour_sets({'a': inputs['a']}, {'a': mask['a']},
                                 reference_inputs={'a': inputs['a']},
                                 reference_mask={'a': mask['a']}, k=2)
  with pytest.raises(ValueError, match='weights must be non-negative'):
    distributions.gaussian_moments(jnp.ones((3, 2)), jnp.array([1.0, -1.0, 0.0]))
