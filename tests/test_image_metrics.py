"""PSNR and SSIM against scikit-image's `metrics`, and their laws."""

import pathlib

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from lqmm import metrics

VECTORS = pathlib.Path(__file__).parent / 'reference' / 'data' / 'image_metric_vectors.npz'


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(VECTORS))


@pytest.mark.parametrize('name', ['camera', 'camera_w11', 'volume', 'signal'])
def test_psnr_and_ssim_equal_scikit_image(ref, name, x64):
  del x64
  reference, image = ref[name + '_reference'], ref[name + '_image']
  data_range = float(ref[name + '_range'])
  psnr = metrics.peak_signal_noise_ratio(reference, image, data_range=data_range)
  ssim = metrics.structural_similarity(reference, image, data_range=data_range,
                                       win_size=int(ref[name + '_win']))
  np.testing.assert_allclose(psnr, ref[name + '_psnr'], rtol=1e-13)
  np.testing.assert_allclose(ssim, ref[name + '_ssim'], rtol=0, atol=1e-12)


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(st.integers(0, 2**31 - 1), st.floats(0.01, 1.0))
def test_ssim_is_symmetric_bounded_and_one_only_for_equal_images(seed, noise):
  rng = np.random.default_rng(seed)
  x = rng.uniform(size=(12, 13))
  y = np.clip(x + noise * rng.normal(size=x.shape), 0, 1)
  with jax.enable_x64(True):
    forward = float(metrics.structural_similarity(x, y, data_range=1.0))
    backward = float(metrics.structural_similarity(y, x, data_range=1.0))
    same = float(metrics.structural_similarity(x, x, data_range=1.0))
  assert forward == pytest.approx(backward, abs=1e-12)
  assert -1.0 <= forward < 1.0 and same == pytest.approx(1.0, abs=1e-12)


def test_psnr_falls_by_20_db_per_tenfold_error_and_vmaps():
  x = jnp.zeros((5, 8, 8))
  errors = jnp.array([0.001, 0.01, 0.1, 1.0, 10.0])
  noisy = x + errors[:, None, None]
  psnr = jax.vmap(lambda a, b: metrics.peak_signal_noise_ratio(a, b, data_range=1.0))(x, noisy)
  np.testing.assert_allclose(np.diff(np.asarray(psnr)), -20.0, rtol=1e-5)
  assert np.isinf(float(metrics.peak_signal_noise_ratio(x[0], x[0], data_range=1.0)))


@pytest.mark.parametrize('call, match', [
    (lambda x: metrics.structural_similarity(x, x[:-1], data_range=1.0), 'same shape'),
    (lambda x: metrics.structural_similarity(x[:5], x[:5], data_range=1.0), 'win_size'),
    (lambda x: metrics.structural_similarity(x, x, data_range=1.0, win_size=6), 'win_size'),
    (lambda x: metrics.structural_similarity(x, x, data_range=0.0), 'data_range'),
    (lambda x: metrics.peak_signal_noise_ratio(x, x.astype(jnp.int32), data_range=1.0),
     'image'),
    (lambda x: metrics.peak_signal_noise_ratio(x.at[0, 0].set(jnp.nan), x, data_range=1.0),
     'reference'),
])
def test_bad_input_names_the_argument(call, match):
  image = jnp.asarray(np.random.default_rng(0).uniform(size=(9, 9)), jnp.float32)
  with pytest.raises((ValueError, TypeError), match=match):
    call(image)
