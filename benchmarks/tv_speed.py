"""TV denoising: `lqmm.denoise.tv_chambolle` beside scikit-image's `denoise_tv_chambolle`.

scikit-image is not an lqmm dependency: its side runs in another interpreter
(`benchmarks/_run_skimage_tv.py`, e.g. the PyTorch reference venv with scikit-image 0.26),
which also writes the test images (noisy crops of scikit-image's bundled camera and astronaut
images, float64). Both denoise the same images with the same arguments, once with
scikit-image's stopping rule (eps = 2e-4) and once with every iteration run (eps = 0); lqmm
one image at a time (compiled once, compilation reported apart) and the whole batch as one
vmapped call. Each side keeps its fastest of `--repeats` passes. Prints the largest difference
between the outputs, wall and CPU seconds per image and the ratios. The load average is
printed first: run it on an idle machine.

Usage:
  .venv/bin/python benchmarks/tv_speed.py --reference-python /work/torch-venv/bin/python \
      --out benchmarks/results/tv_speed.json
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import summary  # pylint: disable=g-import-not-at-top,wrong-import-position


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--reference-python', required=True)
  parser.add_argument('--size', type=int, default=256)
  parser.add_argument('--count', type=int, default=8)
  parser.add_argument('--weight', type=float, default=0.1)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--out', default=None)
  parser.add_argument('--summary', default=None, help="the speed table's record (JSON)")
  args = parser.parse_args()
  load_before = os.getloadavg()[0]
  print(f'load average before: {os.getloadavg()}; {os.cpu_count()} CPUs; '
        f'{platform.processor() or platform.machine()}', flush=True)
  with tempfile.TemporaryDirectory() as scratch:
    path = pathlib.Path(scratch) / 'skimage.npz'
    subprocess.run([args.reference_python, str(ROOT / 'benchmarks' / '_run_skimage_tv.py'),
                    '--out', str(path), '--size', str(args.size), '--count', str(args.count),
                    '--weight', str(args.weight), '--repeats', str(args.repeats)], check=True)
    reference = dict(np.load(path))

  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_enable_x64', True)
  from lqmm import denoise  # pylint: disable=g-import-not-at-top

  images = reference['images']
  rows = {}
  for eps, tag in ((2e-4, 'default'), (0.0, 'fixed')):
    single = jax.jit(lambda image, eps=eps: denoise.tv_chambolle(image, weight=args.weight,
                                                                  eps=eps))
    batch = jax.jit(jax.vmap(lambda image, eps=eps: denoise.tv_chambolle(
        image, weight=args.weight, eps=eps)))
    start = time.perf_counter()
    jax.block_until_ready(single(images[0]))
    jax.block_until_ready(batch(images))
    compile_s = time.perf_counter() - start
    timings = []
    for _ in range(args.repeats):   # the fastest repeat (the others met a busier machine)
      start, cpu = time.perf_counter(), time.process_time()
      outputs = [jax.block_until_ready(single(image)) for image in images]
      single_wall, single_cpu = time.perf_counter() - start, time.process_time() - cpu
      start, cpu = time.perf_counter(), time.process_time()
      batched = jax.block_until_ready(batch(images))
      timings.append((single_wall, single_cpu, time.perf_counter() - start,
                      time.process_time() - cpu))
    single_wall, single_cpu, batch_wall, batch_cpu = min(timings)
    count = len(images)
    theirs_wall = float(reference[f'{tag}_wall_s'].mean())
    theirs_cpu = float(reference[f'{tag}_cpu_s'].mean())
    rows[tag] = {
        'eps': eps, 'images': count, 'compile_s': compile_s,
        'max_abs_diff': float(np.abs(np.stack(outputs) - reference[f'{tag}_out']).max()),
        'max_abs_diff_batched': float(np.abs(np.asarray(batched) - reference[f'{tag}_out'])
                                      .max()),
        'lqmm_wall_s': single_wall / count, 'lqmm_cpu_s': single_cpu / count,
        'lqmm_batch_wall_s': batch_wall / count, 'lqmm_batch_cpu_s': batch_cpu / count,
        'skimage_wall_s': theirs_wall, 'skimage_cpu_s': theirs_cpu}
    print(tag, rows[tag], flush=True)
  lines = [f'load average before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}', '',
           f'| {args.size} x {args.size} float64, weight {args.weight} | scikit-image per image '
           '(wall / CPU s) | lqmm one at a time | lqmm vmapped batch | speed-up one / batch '
           '(wall) | largest difference |', '|---|---|---|---|---|---|']
  for tag, row in rows.items():
    lines.append(
        f'| eps = {row["eps"]:g} ({"stopping rule" if row["eps"] else "200 iterations"}) | '
        f'{row["skimage_wall_s"]:.4f} / {row["skimage_cpu_s"]:.4f} | '
        f'{row["lqmm_wall_s"]:.4f} / {row["lqmm_cpu_s"]:.4f} | '
        f'{row["lqmm_batch_wall_s"]:.4f} / {row["lqmm_batch_cpu_s"]:.4f} | '
        f'{row["skimage_wall_s"] / row["lqmm_wall_s"]:.1f}x / '
        f'{row["skimage_wall_s"] / row["lqmm_batch_wall_s"]:.1f}x | '
        f'{max(row["max_abs_diff"], row["max_abs_diff_batched"]):.1e} |')
  table = '\n'.join(lines)
  print(table)
  records = []
  for row in rows.values():
    what = 'stopping rule' if row['eps'] else '200 iterations'
    for key, how in (('lqmm_cpu_s', 'one at a time'), ('lqmm_batch_cpu_s', 'vmapped batch')):
      records.append(summary.row(
          f'TV denoising (Chambolle), {args.size} x {args.size} float64, eps = {row["eps"]:g} '
          f'({what}), {how}', 'CPU-s per image', row[key],
          original='scikit-image denoise_tv_chambolle', original_value=row['skimage_cpu_s'],
          accuracy=f'largest difference '
          f'{max(row["max_abs_diff"], row["max_abs_diff_batched"]):.1e}'))
  summary.write(args.summary, 'tv_speed', records, load_before=load_before)
  if args.out:
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps({'rows': rows, 'table': table}, indent=1))


if __name__ == '__main__':
  main()
