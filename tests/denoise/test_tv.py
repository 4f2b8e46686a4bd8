"""TV denoising against scikit-image's `denoise_tv_chambolle`, and TV fusion's laws."""

import pathlib

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from lqmm import denoise
from lqmm.denoise import tv as tv_lib

VECTORS = pathlib.Path(__file__).parents[1] / 'reference' / 'data' / 'tv_vectors.npz'
CASES = ('camera_eps', 'camera_fixed', 'camera_strong', 'volume', 'signal', 'tiny_cap')


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(VECTORS))


def _settings(ref, name):
  return dict(weight=float(ref[name + '_weight']), eps=float(ref[name + '_eps']),
              max_num_iter=int(ref[name + '_max_num_iter']))


@pytest.mark.parametrize('name', CASES)
def test_tv_chambolle_equals_scikit_image_in_float64(ref, name, x64):
  del x64
  out = denoise.tv_chambolle(ref[name + '_image'], **_settings(ref, name))
  assert out.dtype == jnp.float64
  np.testing.assert_allclose(out, ref[name + '_out'], rtol=0, atol=1e-14)


@pytest.mark.parametrize('name', CASES)
def test_tv_chambolle_equals_scikit_image_in_float32(ref, name):
  out = denoise.tv_chambolle(ref[name + '_image'].astype(np.float32), **_settings(ref, name))
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, ref[name + '_out32'], rtol=0, atol=1e-6)


def test_the_stopping_rule_stops_where_scikit_image_does(ref, x64):
  """scikit-image's default run on the camera crop equals exactly one fixed-length run, of
  fewer than max_num_iter iterations, and not its neighbours."""
  del x64
  image, target = ref['camera_eps_image'], ref['camera_eps_out']
  weight = float(ref['camera_eps_weight'])
  # Every fixed-length result at once: iterate n's image is what max_num_iter=n returns.
  tau = 1.0 / (2 * image.ndim)

  def step(p, _):
    out, _, p = tv_lib._chambolle_iteration(  # pylint: disable=protected-access
        jnp.asarray(image), p, weight, tau)
    return p, out

  _, outputs = jax.lax.scan(step, jnp.zeros((image.ndim,) + image.shape), None, length=200)
  errors = np.abs(np.asarray(outputs) - target).max(axis=(1, 2))
  stop = int(np.argmin(errors)) + 1
  assert errors[stop - 1] < 1e-14 and stop < 200
  assert errors[stop - 2] > 1e-7 and errors[stop] > 1e-7
  # The public fixed-length run of that many iterations is the same image.
  fixed = denoise.tv_chambolle(image, weight=weight, eps=0.0, max_num_iter=stop)
  np.testing.assert_allclose(fixed, target, rtol=0, atol=1e-14)


def test_one_iteration_returns_the_input_unchanged(ref, x64):
  # The image of iteration 0 is computed before its dual update: the input itself.
  del x64
  image = ref['camera_eps_image']
  np.testing.assert_array_equal(denoise.tv_chambolle(image, weight=0.3, max_num_iter=1), image)


def test_channel_axis_denoises_each_channel(ref, x64):
  del x64
  image = ref['camera_eps_image']
  stacked = np.stack([image, image[::-1]], axis=-1)
  out = denoise.tv_chambolle(stacked, weight=0.1, channel_axis=-1)
  np.testing.assert_allclose(out[..., 0], ref['camera_eps_out'], atol=1e-14)
  np.testing.assert_allclose(out[..., 1], denoise.tv_chambolle(image[::-1], weight=0.1),
                             atol=1e-14)


def test_tv_chambolle_vmaps_and_differentiates_with_fixed_iterations(ref, x64):
  del x64
  images = jnp.stack([ref['tiny_cap_image'], ref['tiny_cap_image'][::-1]])
  batched = jax.vmap(lambda x: denoise.tv_chambolle(x, weight=0.2, eps=2e-4))(images)
  for index in range(2):
    np.testing.assert_allclose(batched[index], denoise.tv_chambolle(images[index], weight=0.2),
                               atol=1e-14)
  loss = lambda w: jnp.sum(denoise.tv_chambolle(images[0], weight=w, eps=0.0,  # noqa: E731
                                                max_num_iter=30) ** 2)
  grad = jax.grad(loss)(0.2)
  numeric = (loss(0.2 + 1e-6) - loss(0.2 - 1e-6)) / 2e-6
  np.testing.assert_allclose(grad, numeric, rtol=1e-6)


# ------------------------------------------------------------------ operators


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(st.integers(0, 2**31 - 1), st.integers(1, 3))
def test_divergence_is_minus_the_adjoint_of_the_gradient(seed, ndim):
  rng = np.random.default_rng(seed)
  shape = (5, 6, 4)[:ndim]         # one shape per rank: one compilation each
  u, p = rng.normal(size=shape), rng.normal(size=(ndim,) + shape)
  with jax.enable_x64(True):
    left = float(jnp.sum(denoise.gradient(u) * p))
    right = -float(jnp.sum(u * denoise.divergence(p)))
  assert left == pytest.approx(right, rel=1e-10, abs=1e-10)


# ------------------------------------------------------------------ TV fusion


def _scene(seed=0, shape=(24, 20)):
  rng = np.random.default_rng(seed)
  clean = (np.indices(shape).sum(0) // 6 % 2).astype(np.float64)
  stds = np.array([0.1, 0.2, 0.8])
  images = clean[None] + stds[:, None, None] * rng.normal(size=(3,) + shape)
  return clean, images, 1.0 / stds ** 2


def test_one_image_with_unit_weight_reaches_the_rof_minimiser(x64):
  del x64
  _, images, _ = _scene()
  fused = denoise.tv_fusion(images[2:], jnp.ones(1), lam=0.3, num_iter=3000)
  rof = denoise.tv_chambolle(images[2], weight=0.3, eps=0.0, max_num_iter=3000)
  np.testing.assert_allclose(fused.image, rof, atol=1e-3)   # Chambolle converges slowly
  energy = lambda u: denoise.tv_fusion_energy(u, images[2:], jnp.ones(1), lam=0.3)  # noqa: E731
  assert float(energy(fused.image)) == pytest.approx(float(energy(rof)), rel=1e-6)


@hypothesis.settings(max_examples=10, deadline=None)
@hypothesis.given(st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_scalar_weights_equal_one_image_at_the_weighted_mean(seed, lam):
  _, images, weights = _scene(seed % 1000, (10, 9))
  with jax.enable_x64(True):
    fused = denoise.tv_fusion(images, weights, lam=lam, num_iter=50)
    mean = np.tensordot(weights, images, 1) / weights.sum()
    single = denoise.tv_fusion(mean[None], jnp.array([weights.sum()]), lam=lam, num_iter=50)
    np.testing.assert_allclose(fused.image, single.image, atol=1e-10)
    # The energies differ by the constant 1/2 sum_m w_m ||f_m - mean||^2.
    constant = 0.5 * np.sum(weights[:, None, None] * (images - mean) ** 2)
    np.testing.assert_allclose(fused.energy - single.energy, constant, rtol=1e-9)


def test_distance_to_the_saddle_point_never_increases(x64):
  """Chambolle-Pock is a proximal point method in the metric M = [[I/tau, -K^T], [-K,
  I/sigma]] (K = grad): ||z_n - z*||_M never increases (Fejer monotonicity)."""
  del x64
  _, images, _ = _scene(3, (12, 10))
  weights = np.random.default_rng(4).uniform(0.0, 2.0, images.shape)   # per pixel
  tau, sigma = 0.2, 0.6                                                # 8 tau sigma < 1
  star = denoise.tv_fusion(images, weights, lam=0.2, num_iter=20000, tau=tau, sigma=sigma)
  distances = []
  for steps in (1, 2, 3, 5, 8, 13, 21, 34):    # a subsequence of a monotone sequence
    run = denoise.tv_fusion(images, weights, lam=0.2, num_iter=steps, tau=tau, sigma=sigma)
    du, dp = np.asarray(run.image - star.image), np.asarray(run.dual - star.dual)
    cross = np.sum(np.asarray(denoise.gradient(jnp.asarray(du))) * dp)
    distances.append(np.sum(du * du) / tau + np.sum(dp * dp) / sigma - 2 * cross)
  assert np.all(np.diff(distances) <= 1e-9 * distances[0])
  assert distances[-1] < 0.5 * distances[0]


def test_default_steps_make_the_iterates_invariant_to_the_weights_scale(x64):
  del x64
  _, images, weights = _scene(9, (10, 12))
  plain = denoise.tv_fusion(images, weights, lam=0.5, num_iter=30)
  scaled = denoise.tv_fusion(images, 1000.0 * weights, lam=500.0, num_iter=30)
  np.testing.assert_allclose(scaled.image, plain.image, atol=1e-10)
  np.testing.assert_allclose(scaled.energy, 1000.0 * plain.energy, rtol=1e-10)


def test_fusion_beats_every_input_and_the_mean_on_a_noisy_scene(x64):
  del x64
  clean, images, weights = _scene(5)
  fused = denoise.tv_fusion(images, weights, lam=0.5, num_iter=300).image
  error = lambda u: float(np.sqrt(np.mean((np.asarray(u) - clean) ** 2)))  # noqa: E731
  assert error(fused) < min(error(x) for x in images)
  assert error(fused) < error(images.mean(0))


def test_weights_and_lam_are_learnable(x64):
  del x64
  clean, images, weights = _scene(6, (10, 8))

  def loss(log_weights, lam):
    fused = denoise.tv_fusion(images, jnp.exp(log_weights), lam=lam, num_iter=40).image
    return jnp.mean((fused - clean) ** 2)

  log_weights = jnp.log(jnp.asarray(weights))
  grads = jax.grad(loss, argnums=(0, 1))(log_weights, 0.3)
  step = 1e-6
  for index in range(3):
    bump = jnp.zeros(3).at[index].set(step)
    numeric = (loss(log_weights + bump, 0.3) - loss(log_weights - bump, 0.3)) / (2 * step)
    np.testing.assert_allclose(grads[0][index], numeric, rtol=1e-5, atol=1e-12)
  numeric = (loss(log_weights, 0.3 + step) - loss(log_weights, 0.3 - step)) / (2 * step)
  np.testing.assert_allclose(grads[1], numeric, rtol=1e-5)


def test_fusion_vmaps_over_a_batch(x64):
  del x64
  _, images, weights = _scene(7, (8, 8))
  batch = jnp.stack([images, images[:, ::-1]])
  batched = jax.vmap(lambda x: denoise.tv_fusion(x, weights, lam=0.2, num_iter=20))(batch)
  for index in range(2):
    single = denoise.tv_fusion(batch[index], weights, lam=0.2, num_iter=20)
    np.testing.assert_allclose(batched.image[index], single.image, atol=1e-12)
    np.testing.assert_allclose(batched.energy[index], single.energy, rtol=1e-12)


def test_zero_lam_returns_the_weighted_mean_and_zero_weight_pixels_are_inpainted(x64):
  del x64
  _, images, weights = _scene(8, (8, 8))
  fused = denoise.tv_fusion(images, weights, lam=0.0, num_iter=5)
  np.testing.assert_allclose(fused.image, np.tensordot(weights, images, 1) / weights.sum(),
                             atol=1e-12)
  holes = np.ones(images.shape)
  holes[:, 3, 4] = 0.0                                        # no sensor sees this pixel
  fused = denoise.tv_fusion(images, holes, lam=0.1, num_iter=500)
  assert np.isfinite(np.asarray(fused.image)).all()
  neighbours = np.asarray(fused.image)[[2, 4, 3, 3], [4, 4, 3, 5]]
  assert neighbours.min() - 1e-6 <= float(fused.image[3, 4]) <= neighbours.max() + 1e-6


@pytest.mark.parametrize('call, match', [
    (lambda x: denoise.tv_chambolle(x.astype(np.uint8)), 'image'),
    (lambda x: denoise.tv_chambolle(x, weight=0.0), 'weight'),
    (lambda x: denoise.tv_chambolle(x, weight=np.float32(np.nan)), 'weight'),
    (lambda x: denoise.tv_chambolle(x, eps=-1.0), 'eps'),
    (lambda x: denoise.tv_chambolle(x, max_num_iter=0), 'max_num_iter'),
    (lambda x: denoise.tv_chambolle(x.at[0, 0].set(jnp.nan)), 'image'),
    (lambda x: denoise.tv_chambolle(x, channel_axis=2), 'channel_axis'),
    (lambda x: denoise.tv_chambolle(jnp.zeros((0, 3))), 'image'),
    (lambda x: denoise.tv_fusion(x[0], jnp.ones(6), lam=0.1), 'images'),
    (lambda x: denoise.tv_fusion(jnp.stack([x, x]), jnp.ones(3), lam=0.1), 'weights'),
    (lambda x: denoise.tv_fusion(jnp.stack([x, x]), jnp.ones((2, 4, 4)), lam=0.1), 'weights'),
    (lambda x: denoise.tv_fusion(jnp.stack([x, x]), jnp.array([1.0, -1.0]), lam=0.1),
     'weights'),
    (lambda x: denoise.tv_fusion(jnp.stack([x, x]), jnp.array([1.0, jnp.nan]), lam=0.1),
     'weights'),
    (lambda x: denoise.tv_fusion(jnp.stack([x, x]), jnp.ones(2), lam=-0.1), 'lam'),
    (lambda x: denoise.tv_fusion(jnp.stack([x, x]), jnp.ones(2), lam=0.1, tau=1.0,
                                 sigma=1.0), 'tau'),
    (lambda x: denoise.tv_fusion(jnp.stack([x, x]), jnp.ones(2), lam=0.1, num_iter=0),
     'num_iter'),
    (lambda x: denoise.tv_fusion(jnp.stack([x, x]), jnp.ones(2), lam=0.1, tau=0.1), 'sigma'),
    (lambda x: denoise.tv_fusion_energy(jnp.zeros(3), jnp.stack([x, x]), jnp.ones(2), lam=0.1),
     'u'),
    (lambda x: denoise.divergence(jnp.zeros((3, 5, 5))), 'p'),
])
def test_bad_input_names_the_argument(call, match):
  image = jnp.asarray(np.random.default_rng(0).uniform(size=(5, 6)), jnp.float32)
  with pytest.raises((ValueError, TypeError), match=match):
    call(image)
