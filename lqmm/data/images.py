"""Grey-level test images shipped with lqmm (scikit-image's bundled camera and coins).

For denoising and fusion experiments: `load_image('camera')` returns the image as float32
values in [0, 1]. The files and their licences: `package_data/images/SOURCE.md`.
"""

from __future__ import annotations

import importlib.resources

import numpy as np

from lqmm import checks

__all__ = ['IMAGES', 'load_image']

#: name -> (file, shape, what it shows).
IMAGES = {
    'camera': ('camera.png', (512, 512), 'a photographer with a camera on a tripod (CC0)'),
    'coins': ('coins.png', (303, 384), 'Greek coins from Pompeii (no known restrictions)'),
}


def load_image(name: str) -> np.ndarray:
  """The test image `name` (a key of `IMAGES`) as float32 `[H, W]` in [0, 1] (8-bit / 255).

  Raises:
    KeyError: an unknown name (the message lists the known ones).

  Example:
    >>> image = load_image('coins')
    >>> image.shape, image.dtype.name, float(image.max()) <= 1.0
    ((303, 384), 'float32', True)
  """
  file, shape, _ = checks.lookup(IMAGES, name, 'image')
  from matplotlib import image as mpl_image  # pylint: disable=g-import-not-at-top
  path = importlib.resources.files('lqmm.data') / 'package_data' / 'images' / file
  with importlib.resources.as_file(path) as local:
    values = mpl_image.imread(local)   # 8-bit grey PNG -> float32 value / 255
  if values.shape != shape:
    raise ValueError(f'{file} has shape {values.shape}, expected {shape}; the package data '
                     'is damaged, reinstall lqmm.')
  return np.round(values * 255.0).astype(np.float32) / np.float32(255.0)
