r"""Fusing noisy sensors of one scene: each sensor, plain and weighted means, TV-denoised mean,
weighted TV fusion.

The survey's variational fusion-and-denoising (its Eq. 1-2) on real images: scikit-image's
camera and coins (`lqmm.data.load_image`), each seen by M = 4 sensors with Gaussian noise of
known std (0.1, 0.1, 0.1 and one much worse sensor at 0.5), 5 noise draws per image. Methods:
the plain mean; the inverse-variance weighted mean; scikit-image's TV denoising of the plain
mean (`lqmm.denoise.tv_chambolle`, its defaults eps 2e-4 and 200 iterations); weighted TV
fusion (`lqmm.denoise.tv_fusion`, weights 1 / std^2, 300 Chambolle-Pock steps). Each TV
method's strength is chosen on a separate calibration draw (key offset 10**6) from a grid of
ROF weights (for TV fusion, lam = the ROF weight x the total weight, so the grids match).

Variants: (none) the full images, 5 draws; `stripes`: per-pixel noise: 4 sensors of std 0.1,
sensor m with std 0.5 on the first m quarters of the columns (band b has 3 - b bad sensors, so
the noise left after weighting changes across the image: only per-pixel data weights follow
it); `smoke`: 48 x 64 crops, 2 draws, short grid, few steps
(the test suite runs it).

    python -m experiments.tv_fusion.train --config=experiments/tv_fusion/configs/default.py \
        --workdir=$PWD/workdir/tv_fusion

Measured (2-core x86_64 CPU, one run each, another job beside it; README.md has the tables):
PSNR dB on camera / coins, default: plain mean 17.57 / 17.56, weighted mean 24.83 / 24.83,
TV-denoised mean 27.76 / 26.28, TV-denoised weighted mean 31.02 / 30.02, weighted TV fusion
31.04 / 30.01 (the same minimiser with one weight per sensor); `stripes`: TV-denoised weighted
mean 29.71 / 28.65, weighted TV fusion 30.96 / 29.35. 23.5 s wall for the default command.
"""

import ml_collections

from lqmm import train

VARIANTS = ('', 'stripes', 'smoke')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the experiment configuration for variant `arg` (None, 'stripes' or 'smoke')."""
  arg = arg or ''
  if arg not in VARIANTS:
    raise KeyError(f'Unknown config variant {arg!r}; valid variants: "", "stripes", "smoke".')
  config = train.default_config()
  config.data.update({'name': 'images', 'modalities': ('camera', 'coins')})
  # Crop every image to its top-left [H, W] (None: the whole image).
  config.crop = ml_collections.config_dict.placeholder(tuple)
  # 'uniform': sensor m has std stds[m] everywhere; 'stripes': std stds[m] except bad_std on
  # the first m of M column bands (per-pixel weights; see train.noise_maps).
  config.sensors = ml_collections.ConfigDict({'stds': (0.1, 0.1, 0.1, 0.5),
                                              'layout': 'uniform', 'bad_std': 0.5})
  config.seed = 0
  config.draws = 5
  config.methods = ('mean', 'weighted_mean', 'tv_mean', 'tv_weighted_mean', 'tv_fusion')
  # ROF weights tried on the calibration draw (tv_fusion: lam = weight x sum of the weights).
  config.grid = (0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.16, 0.2)
  config.tv = ml_collections.ConfigDict({'eps': 2e-4, 'max_num_iter': 200, 'num_iter': 300})
  if arg == 'stripes':
    config.sensors.update({'stds': (0.1, 0.1, 0.1, 0.1), 'layout': 'stripes', 'bad_std': 0.5})
  if arg == 'smoke':
    config.crop = (48, 64)
    config.draws = 2
    config.grid = (0.05, 0.1)
    config.tv.update({'max_num_iter': 20, 'num_iter': 30})
  config.lock()
  return config
