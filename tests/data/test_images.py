"""The embedded test images: the bytes scikit-image ships, read as float32 in [0, 1]."""

import hashlib
import importlib.resources

import numpy as np
import pytest

from lqmm import data

SHA256 = {'camera': 'b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a',
          'coins': 'f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba'}


@pytest.mark.parametrize('name', sorted(data.IMAGES))
def test_images_are_the_recorded_files_as_8_bit_levels(name):
  file, shape, _ = data.IMAGES[name]
  raw = (importlib.resources.files('lqmm.data') / 'package_data' / 'images' / file).read_bytes()
  assert hashlib.sha256(raw).hexdigest() == SHA256[name]
  image = data.load_image(name)
  assert image.shape == shape and image.dtype == np.float32
  levels = image * 255
  np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)
  assert 0.0 <= image.min() < 0.1 and 0.9 < image.max() <= 1.0


def test_unknown_image_lists_the_known_ones():
  with pytest.raises(KeyError, match='camera'):
    data.load_image('lena')
