"""Command line of the benchmark harness: `python -m lqmm.bench --help`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import time

from lqmm.bench import conditions as conditions_lib
from lqmm.bench import harness
from lqmm.bench import methods as methods_lib
from lqmm.bench import report


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m lqmm.bench', description=__doc__)
  parser.add_argument('--datasets', default='handwritten,rosmap',
                      help=f'comma-separated, from {sorted(harness.SETTINGS)}')
  parser.add_argument('--methods', default=','.join(methods_lib.METHODS),
                      help=f'comma-separated, from {sorted(methods_lib.METHODS)}')
  parser.add_argument('--seeds', type=int, default=5, help='seeds trained together per method')
  parser.add_argument('--seed', type=int, default=0, help='first seed')
  parser.add_argument('--out', required=True, help='output folder (created)')
  parser.add_argument('--manual-dir', default=os.environ.get('LQMM_MANUAL_DIR'),
                      help='folder with raw data files (default: $LQMM_MANUAL_DIR)')
  parser.add_argument('--data-dir', default=None, help='TFDS data directory')
  parser.add_argument('--smoke', action='store_true',
                      help='a seconds-long run: 2 seeds, few epochs, a reduced grid')
  args = parser.parse_args(argv)

  names = [name for name in args.methods.split(',') if name]
  for name in names:
    if name not in methods_lib.METHODS:
      parser.error(f'unknown method {name!r}; valid: {", ".join(sorted(methods_lib.METHODS))}')
  datasets = [name for name in args.datasets.split(',') if name]
  for name in datasets:
    if name not in harness.SETTINGS:
      parser.error(f'unknown dataset {name!r}; valid: {", ".join(sorted(harness.SETTINGS))}')
  seeds = 2 if args.smoke else args.seeds
  grid = (conditions_lib.grid(noise_stds=(0.5,), missing_rates=(0.4,), quality_stds=(1.0,))
          if args.smoke else conditions_lib.grid())
  out = pathlib.Path(args.out).expanduser().absolute()
  out.mkdir(parents=True, exist_ok=True)

  all_rows, sections, meta = [], [], {'seeds': seeds, 'methods': names, 'datasets': {}}
  start = time.perf_counter()
  for dataset in datasets:
    settings = harness.SETTINGS[dataset]
    if args.smoke:
      settings = dataclasses.replace(settings, epochs=4, eval_every=2)
    results, splits = harness.run(settings, names, grid, num_seeds=seeds, seed=args.seed,
                                  manual_dir=args.manual_dir, data_dir=args.data_dir)
    all_rows += report.rows(dataset, results)
    sections.append(report.markdown(dataset, results, grid, seeds))
    report.plot(dataset, results, grid, out / f'robustness_{dataset}.png')
    meta['datasets'][dataset] = {
        'settings': dataclasses.asdict(settings),
        'sizes': {split: int(len(getattr(splits, split)['label']))
                  for split in ('train', 'validation', 'test')}}
  meta['wall_s'] = time.perf_counter() - start
  (out / 'results.csv').write_text(report.to_csv(all_rows), encoding='utf-8')
  (out / 'results.md').write_text('\n'.join(sections), encoding='utf-8')
  (out / 'meta.json').write_text(json.dumps(meta, indent=1) + '\n', encoding='utf-8')
  print('\n'.join(sections))
  print(f'wrote {out} in {meta["wall_s"]:.0f} s')
  return 0


if __name__ == '__main__':
  sys.exit(main())
