"""Reference vectors for lqmm.denoise.tv_chambolle from scikit-image's `denoise_tv_chambolle`.

Runs in a scratch environment with scikit-image (not a dependency of lqmm):

    /work/torch-venv/bin/pip install scikit-image==0.26.0
    /work/torch-venv/bin/python tests/reference/generate_tv_vectors.py \
        --out tests/reference/data/tv_vectors.npz

See PROVENANCE_tv.md.
"""

import argparse

import numpy as np
import skimage
from skimage import data
from skimage import restoration

#: (name, shape or image, weight, eps, max_num_iter).
CASES = [
    ('camera_eps', 'camera', 0.1, 2e-4, 200),      # skimage's defaults: stops early
    ('camera_fixed', 'camera', 0.15, 0.0, 25),     # eps = 0: every iteration runs
    ('camera_strong', 'camera', 0.5, 1e-3, 200),
    ('volume', (12, 14, 10), 0.2, 2e-4, 200),      # 3-D
    ('signal', (300,), 0.3, 2e-4, 100),            # 1-D
    ('tiny_cap', (9, 11), 0.05, 2e-4, 3),          # the iteration cap binds
]


def _image(spec, rng):
  if spec == 'camera':
    # A 96 x 128 crop of scikit-image's bundled camera image, in [0, 1], with Gaussian noise.
    clean = data.camera()[200:296, 180:308].astype(np.float64) / 255.0
    return clean + 0.1 * rng.standard_normal(clean.shape)
  blocks = (np.indices(spec).sum(0) // 4 % 2).astype(np.float64)
  return blocks + 0.2 * rng.standard_normal(spec)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--out', required=True)
  args = parser.parse_args()
  rng = np.random.default_rng(20261207)
  out = {'skimage_version': skimage.__version__}
  for name, spec, weight, eps, max_num_iter in CASES:
    image = _image(spec, rng)
    result = restoration.denoise_tv_chambolle(image, weight=weight, eps=eps,
                                              max_num_iter=max_num_iter)
    out.update({f'{name}_image': image, f'{name}_weight': weight, f'{name}_eps': eps,
                f'{name}_max_num_iter': max_num_iter, f'{name}_out': result})
    # float32 input: scikit-image computes in float32.
    image32 = image.astype(np.float32)
    out[f'{name}_out32'] = restoration.denoise_tv_chambolle(
        image32, weight=weight, eps=eps, max_num_iter=max_num_iter)
    print(name, image.shape, float(np.abs(result - image).mean()))
  np.savez_compressed(args.out, **out)
  print('wrote', args.out, len(out), 'arrays')


if __name__ == '__main__':
  main()
