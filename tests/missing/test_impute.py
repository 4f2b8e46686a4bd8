"""lqmm.missing.impute: zero, mean, k-NN (against a brute-force NumPy version), Soft-Impute."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm.missing import impute

RNG = np.random.default_rng(0)


def _data(num_rows=40, widths=(3, 5), missing=0.3, seed=0):
  rng = np.random.default_rng(seed)
  inputs = {f'v{i}': jnp.asarray(rng.normal(size=(num_rows, width)), jnp.float32)
            for i, width in enumerate(widths)}
  mask = {name: jnp.asarray(rng.uniform(size=num_rows) > missing) for name in inputs}
  return inputs, mask


def test_zeros_and_means_fill_only_missing_rows():
  inputs, mask = _data()
  train, train_mask = _data(seed=1)
  means = impute.fit_means(train, train_mask)
  for filled, fill in ((impute.zeros(inputs, mask), lambda view: 0.0),
                       (impute.means(inputs, mask, means), lambda view: means[view])):
    for view in inputs:
      present = np.asarray(mask[view])
      np.testing.assert_array_equal(filled[view][present], inputs[view][present])
      np.testing.assert_allclose(filled[view][~present],
                                 np.broadcast_to(fill(view), filled[view][~present].shape))
  expected = {view: np.asarray(train[view])[np.asarray(train_mask[view])].mean(0)
              for view in train}
  for view in train:
    np.testing.assert_allclose(means[view], expected[view], rtol=1e-5)


def _knn_reference(inputs, mask, reference, reference_mask, view, k):
  """Brute force: per row, candidates with `view`, distance over shared views."""
  views = sorted(inputs)
  out = np.array(inputs[view])
  for row in np.flatnonzero(~np.asarray(mask[view])):
    distances = []
    for candidate in np.flatnonzero(np.asarray(reference_mask[view])):
      shared = [v for v in views if mask[v][row] and reference_mask[v][candidate]]
      if not shared:
        continue
      distances.append((np.mean([np.mean((np.asarray(inputs[v][row]) -
                                          np.asarray(reference[v][candidate]))**2)
                                 for v in shared]), candidate))
    if distances:
      nearest = [candidate for _, candidate in sorted(distances)[:k]]
      out[row] = np.asarray(reference[view])[nearest].mean(0)
    else:
      out[row] = np.asarray(reference[view])[np.asarray(reference_mask[view])].mean(0)
  return out


@pytest.mark.parametrize('k', [1, 3])
def test_knn_matches_brute_force(k):
  inputs, mask = _data(num_rows=25, widths=(2, 3, 4), missing=0.4, seed=2)
  reference, reference_mask = _data(num_rows=30, widths=(2, 3, 4), missing=0.3, seed=3)
  filled = jax.jit(lambda *args: impute.knn(*args[:2], reference_inputs=args[2],
                                            reference_mask=args[3], k=k))(
                                                inputs, mask, reference, reference_mask)
  for view in inputs:
    np.testing.assert_allclose(filled[view],
                               _knn_reference(inputs, mask, reference, reference_mask, view, k),
                               rtol=1e-4, atol=1e-5)


def test_soft_impute_recovers_a_low_rank_matrix():
  rng = np.random.default_rng(4)
  full = rng.normal(size=(200, 2)) @ rng.normal(size=(2, 12))
  inputs = {'a': jnp.asarray(full[:, :5], jnp.float32), 'b': jnp.asarray(full[:, 5:], jnp.float32)}
  mask = {'a': jnp.asarray(rng.uniform(size=200) > 0.3),
          'b': jnp.asarray(rng.uniform(size=200) > 0.3)}
  mask['b'] = mask['b'] | ~mask['a']  # every row keeps a view
  filled, steps = impute.low_rank(inputs, mask, shrinkage=0.5, transductive=True)
  assert 1 < int(steps) <= 100
  mean_filled = impute.means(inputs, mask, impute.fit_means(inputs, mask))
  for view in inputs:
    missing = ~np.asarray(mask[view])
    truth = np.asarray(inputs[view])[missing]
    error = np.sqrt(np.mean((np.asarray(filled[view])[missing] - truth)**2))
    baseline = np.sqrt(np.mean((np.asarray(mean_filled[view])[missing] - truth)**2))
    assert error < 0.2 * baseline
    np.testing.assert_array_equal(filled[view][~missing], inputs[view][~missing])


def test_errors():
  inputs, mask = _data()
  with pytest.raises(ValueError, match='transductive=True'):
    impute.low_rank(inputs, mask, shrinkage=0.5)
  with pytest.raises(ValueError, match='k must be >= 1'):
    impute.knn(inputs, mask, reference_inputs=inputs, reference_mask=mask, k=0)
  with pytest.raises(KeyError, match='mask must have the views'):
    impute.zeros(inputs, {'v0': mask['v0']})
  with pytest.raises(ValueError, match="mask\\['v0'\\] has no present row"):
    impute.fit_means(inputs, dict(mask, v0=jnp.zeros(40, bool)))
  with pytest.raises(ValueError, match="inputs\\['v0'\\] \\(its present rows\\) holds"):
    impute.zeros(dict(inputs, v0=inputs['v0'].at[np.argmax(mask['v0'])].set(np.nan)), mask)
  # A NaN in a missing row is fine: it is replaced.
  row = int(np.argmin(mask['v0']))
  filled = impute.zeros(dict(inputs, v0=inputs['v0'].at[row].set(np.nan)), mask)
  assert np.all(np.isfinite(filled['v0']))
