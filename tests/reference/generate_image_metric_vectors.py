"""Reference values for lqmm.metrics.peak_signal_noise_ratio / structural_similarity from
scikit-image 0.26.0's `metrics` (run in a scratch environment with scikit-image; see
PROVENANCE_tv.md).

    /work/torch-venv/bin/python tests/reference/generate_image_metric_vectors.py \
        --out tests/reference/data/image_metric_vectors.npz
"""

import argparse

import numpy as np
from skimage import data
from skimage import metrics


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--out', required=True)
  args = parser.parse_args()
  rng = np.random.default_rng(20261207)
  clean = data.camera()[100:164, 200:280] / 255.0
  signal = np.sin(np.arange(50) / 5)
  cases = [
      ('camera', clean, clean + 0.1 * rng.standard_normal(clean.shape), 1.0, 7),
      ('camera_w11', clean, np.clip(clean + 0.3 * rng.standard_normal(clean.shape), 0, 1), 1.0,
       11),
      ('volume', rng.uniform(size=(9, 10, 11)), rng.uniform(size=(9, 10, 11)), 2.0, 7),
      ('signal', signal, signal + 0.2 * rng.standard_normal(50), 2.0, 5),
  ]
  out = {}
  for name, reference, image, data_range, win_size in cases:
    out.update({f'{name}_reference': reference, f'{name}_image': image,
                f'{name}_range': data_range, f'{name}_win': win_size,
                f'{name}_psnr': metrics.peak_signal_noise_ratio(reference, image,
                                                                data_range=data_range),
                f'{name}_ssim': metrics.structural_similarity(reference, image,
                                                              data_range=data_range,
                                                              win_size=win_size)})
    print(name, out[f'{name}_psnr'], out[f'{name}_ssim'])
  np.savez_compressed(args.out, **out)


if __name__ == '__main__':
  main()
