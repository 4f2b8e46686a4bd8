"""scikit-image's `denoise_tv_chambolle` on the benchmark's images (run by tv_speed.py).

Runs in an interpreter with scikit-image: writes the noisy test images (crops of the bundled
camera and astronaut images with Gaussian noise) and scikit-image's outputs and timings to
`--out` (npz).
"""

import argparse
import time

import numpy as np
from skimage import color
from skimage import data
from skimage import restoration


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--out', required=True)
  parser.add_argument('--size', type=int, default=256)
  parser.add_argument('--count', type=int, default=8)
  parser.add_argument('--weight', type=float, default=0.1)
  parser.add_argument('--max-num-iter', type=int, default=200)
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  sources = [data.camera() / 255.0, color.rgb2gray(data.astronaut())]
  images = []
  for index in range(args.count):
    source = sources[index % len(sources)]
    top, left = rng.integers(0, source.shape[0] - args.size, 2)
    clean = source[top:top + args.size, left:left + args.size]
    images.append(clean + 0.1 * rng.standard_normal(clean.shape))
  images = np.stack(images)
  out = {'images': images}
  for eps, tag in ((2e-4, 'default'), (0.0, 'fixed')):
    passes = []
    for _ in range(args.repeats):   # the fastest pass is kept
      results, walls, cpus = [], [], []
      for image in images:
        start, cpu = time.perf_counter(), time.process_time()
        results.append(restoration.denoise_tv_chambolle(
            image, weight=args.weight, eps=eps, max_num_iter=args.max_num_iter))
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
      passes.append((sum(walls), walls, cpus))
    _, walls, cpus = min(passes, key=lambda entry: entry[0])
    out.update({f'{tag}_out': np.stack(results), f'{tag}_wall_s': np.array(walls),
                f'{tag}_cpu_s': np.array(cpus)})
  np.savez(args.out, **out)


if __name__ == '__main__':
  main()
