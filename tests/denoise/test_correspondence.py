"""NCR's clean/noisy split: the two-component GMM against scikit-learn, and its laws."""

import warnings

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st
from sklearn import cluster as sk_cluster
from sklearn import mixture

from lqmm import denoise


def _losses(rng, n=None):
  """NCR-like per-pair losses: a clean gamma bulk and a shifted noisy group, shuffled."""
  n = int(rng.choice([60, 250, 700])) if n is None else n   # few shapes: few compilations
  noisy = int(n * rng.uniform(0.1, 0.7))
  losses = np.concatenate([rng.gamma(2.0, 0.05, n - noisy),
                           rng.normal(rng.uniform(0.3, 1.0), rng.uniform(0.05, 0.2), noisy)])
  rng.shuffle(losses)
  return losses


def _sklearn(x, random_state, **kwargs):
  settings = dict(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4)
  settings.update(kwargs)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')     # ConvergenceWarning after 10 iterations
    return mixture.GaussianMixture(random_state=random_state, **settings).fit(x[:, None])


def _seeds(x, random_state):
  """The k-means++ seeds scikit-learn's GaussianMixture(random_state) starts its KMeans from
  (KMeans centres the data before seeding)."""
  centres, _ = sk_cluster.kmeans_plusplus((x - x.mean())[:, None], 2, random_state=random_state)
  return centres[:, 0] + x.mean()


def test_clean_probability_equals_ncr_with_scikit_learn(x64):
  del x64
  rng = np.random.default_rng(20261207)
  higher_index_clean = 0
  for draw in range(40):
    losses = _losses(rng)
    x = (losses - losses.min()) / (losses.max() - losses.min())
    for random_state in (0, 1):
      fit = _sklearn(x, random_state)
      expected = fit.predict_proba(x[:, None])[:, fit.means_.argmin()]
      higher_index_clean += int(fit.means_.argmin() == 1)
      ours = denoise.clean_probability(losses, kmeans_centers=_seeds(x, random_state))
      np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12, err_msg=str(draw))
  # The clean component sits at either index in these fits.
  assert 10 < higher_index_clean < 70


def test_gaussian_mixture_equals_scikit_learn_with_its_defaults_and_inits(x64):
  del x64
  rng = np.random.default_rng(3)
  for draw in range(10):
    x = _losses(rng)
    inits = {} if draw % 2 == 0 else {
        'weights_init': np.array([0.7, 0.3]), 'means_init': np.array([[0.1], [0.6]]),
        'precisions_init': np.array([[[80.0]], [[20.0]]])}
    fit = _sklearn(x, draw, max_iter=100, tol=1e-3, reg_covar=1e-6, **inits)
    ours = denoise.gaussian_mixture_1d(x, kmeans_centers=_seeds(x, draw), **inits)
    np.testing.assert_allclose(ours.weights, fit.weights_, rtol=1e-10)
    np.testing.assert_allclose(ours.means, fit.means_[:, 0], rtol=1e-10)
    np.testing.assert_allclose(ours.variances, fit.covariances_[:, 0, 0], rtol=1e-9)
    np.testing.assert_allclose(ours.responsibilities, fit.predict_proba(x[:, None]),
                               atol=1e-10)
    assert int(ours.num_iterations) == fit.n_iter_
    assert bool(ours.converged) == fit.converged_
    np.testing.assert_allclose(ours.lower_bound, fit.lower_bound_, rtol=1e-10)


def test_the_default_optimal_split_is_what_kmeans_reaches_at_its_optimum(x64):
  del x64
  rng = np.random.default_rng(5)
  agreed = 0
  for draw in range(30):
    losses = _losses(rng)
    x = (losses - losses.min()) / (losses.max() - losses.min())
    labels = np.asarray(denoise.two_means_labels(x))
    # The optimal split: no threshold between sorted values has a lower within-group SSE.
    inertia = sum(((x[labels == c] - x[labels == c].mean()) ** 2).sum() for c in (0, 1))
    kmeans = sk_cluster.KMeans(2, n_init=1, random_state=draw).fit(x[:, None])
    assert inertia <= kmeans.inertia_ + 1e-12
    if np.isclose(kmeans.inertia_, inertia, rtol=1e-12, atol=0):
      agreed += 1
      fit = _sklearn(x, draw)
      np.testing.assert_allclose(denoise.clean_probability(losses),
                                 fit.predict_proba(x[:, None])[:, fit.means_.argmin()],
                                 atol=1e-12)
  assert agreed >= 20


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(st.integers(0, 2**31 - 1), st.floats(0.5, 20.0), st.floats(-5.0, 5.0))
def test_clean_probability_ignores_affine_rescaling_of_the_losses(seed, scale, shift):
  losses = _losses(np.random.default_rng(seed), 200)
  with jax.enable_x64(True):
    plain = np.asarray(denoise.clean_probability(losses))
    moved = np.asarray(denoise.clean_probability(scale * losses + shift))
  np.testing.assert_allclose(moved, plain, atol=1e-8)
  assert plain.min() >= 0 and plain.max() <= 1


def test_noisy_pairs_get_low_clean_probability():
  rng = np.random.default_rng(7)
  clean = rng.gamma(2.0, 0.05, 400)
  noisy = rng.normal(0.8, 0.1, 100)
  probability = np.asarray(denoise.clean_probability(np.concatenate([clean, noisy])))
  split = np.asarray(denoise.split_clean(jnp.asarray(probability)))
  assert split[:400].mean() > 0.97 and split[400:].mean() < 0.03


def test_key_seeding_is_reproducible_and_vmaps():
  rng = np.random.default_rng(8)
  batch = jnp.asarray(np.stack([_losses(rng, 300) for _ in range(3)]), jnp.float32)
  keys = jax.random.split(jax.random.key(0), 3)
  batched = jax.vmap(lambda losses, key: denoise.clean_probability(losses, key=key))(batch, keys)
  for index in range(3):
    single = denoise.clean_probability(batch[index], key=keys[index])
    np.testing.assert_allclose(batched[index], single, atol=1e-5)   # float32


def test_split_falls_back_to_the_lowest_percent_when_nothing_looks_noisy():
  probability = jnp.linspace(0.6, 1.0, 300)
  split = np.asarray(denoise.split_clean(probability, 0.5))
  assert (~split).sum() == 3 + 1        # everything at or below the 3rd smallest (300 // 100)
  np.testing.assert_array_equal(denoise.split_clean(jnp.array([0.2, 0.8])), [False, True])


def test_co_teaching_gives_each_network_the_other_networks_split():
  rng = np.random.default_rng(9)
  losses = jnp.asarray(np.stack([_losses(rng, 250), _losses(rng, 250)]), jnp.float32)
  probability, clean = denoise.co_teaching_split(losses, threshold=0.4, reg_covar=1e-3)
  for net, other in ((0, 1), (1, 0)):
    expected = denoise.clean_probability(losses[other], reg_covar=1e-3)
    np.testing.assert_allclose(probability[net], expected, atol=1e-5)
    np.testing.assert_array_equal(clean[net], denoise.split_clean(expected, 0.4))
  # Swapping the networks swaps the splits.
  swapped, _ = denoise.co_teaching_split(losses[::-1], reg_covar=1e-3)
  np.testing.assert_allclose(swapped, probability[::-1], atol=1e-5)
  # It jits (as in a training step); EM's tol-based stop makes float32 jit and eager results
  # differ slightly, the split agrees on nearly every sample.
  _, jitted = jax.jit(lambda x: denoise.co_teaching_split(x, threshold=0.4, reg_covar=1e-3))(
      losses)
  assert np.mean(np.asarray(jitted) == np.asarray(clean)) > 0.98


@pytest.mark.parametrize('call, match', [
    (lambda: denoise.co_teaching_split(jnp.ones((3, 5))), r'\[2, N\]'),
    (lambda: denoise.co_teaching_split(jnp.arange(5.0)), r'\[2, N\]'),
    (lambda: denoise.co_teaching_split(jnp.stack([jnp.arange(5.0), jnp.full(5, 0.3)])),
     r'losses\[1\]'),
    (lambda: denoise.co_teaching_split(jnp.ones((2, 5)).at[0, 1].set(jnp.nan)), 'losses'),
    (lambda: denoise.co_teaching_split(jnp.arange(10.0).reshape(2, 5), threshold=1.5),
     'threshold'),
    (lambda: denoise.clean_probability(jnp.full(10, 0.3)), 'losses'),
    (lambda: denoise.clean_probability(jnp.array([0.3])), 'losses'),
    (lambda: denoise.clean_probability(jnp.ones((3, 2))), 'losses'),
    (lambda: denoise.clean_probability(jnp.array([0.1, jnp.nan, 0.5])), 'losses'),
    (lambda: denoise.clean_probability(jnp.arange(5.0), weights_init=[0.7, 0.7]),
     'weights_init'),
    (lambda: denoise.clean_probability(jnp.arange(5.0), precisions_init=[1.0, -1.0]),
     'precisions_init'),
    (lambda: denoise.clean_probability(jnp.arange(5.0), means_init=[0.1, 0.2, 0.3]),
     'means_init'),
    (lambda: denoise.clean_probability(jnp.arange(5.0), kmeans_centers=[0.1]),
     'kmeans_centers'),
    (lambda: denoise.clean_probability(jnp.arange(5.0), reg_covar=-1.0), 'reg_covar'),
    (lambda: denoise.gaussian_mixture_1d(jnp.arange(5.0), max_iter=0), 'max_iter'),
    (lambda: denoise.split_clean(jnp.array([0.5, 1.5])), 'probability'),
    (lambda: denoise.split_clean(jnp.array([0.5]), threshold=2.0), 'threshold'),
])
def test_bad_input_names_the_argument(call, match):
  with pytest.raises((ValueError, TypeError), match=match):
    call()
