"""Merges the parts of a sweep that ran as several `train.py` runs into one report.

A long sweep (IMSC_AGL's 40 conditions take hours on a small CPU) runs in parts: each part is a
`train.py` run with its own `--workdir` and `--config.missing.first_fold` / `num_folds` /
`rates`. This script reads each part's `results.json` and `config.json`, checks that the parts
are one sweep (the same dataset, views, methods and settings, apart from the rates and folds
they cover; no fold twice), concatenates the folds of every rate in fold order and writes
`results.md` and `results.json` into `--workdir`, in `train.py`'s format. Run seconds and CPU
seconds are the parts' sums (compilation too: each part compiles its own program); the
`parts` entry of `results.json` lists where each fold came from.

A rate may have a different number of folds from another; each cell is over its own rate's
folds. The k-means keys of a part follow that part's conditions (`train.py` splits
`config.seed` over the conditions it runs), so a merged fold equals the unsplit run's up to
the k-means seeding.

    python -m experiments.imvc_handwritten.merge --workdir=workdir/imsc_agl \\
        workdir/imsc_p01 workdir/imsc_p03_f0-4 workdir/imsc_p03_f5-9 ...
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from experiments.imvc_handwritten import train as imvc
from lqmm import train

#: config.json entries that may differ between the parts of one sweep.
PER_PART = ('missing.rates', 'missing.first_fold', 'missing.num_folds',
            'graph_conditions_per_step', 'data.manual_dir', 'data.data_dir')


def _flatten(tree, prefix=''):
  flat = {}
  for key, value in tree.items():
    name = f'{prefix}{key}'
    if isinstance(value, dict):
      flat.update(_flatten(value, name + '.'))
    else:
      flat[name] = value
  return flat


def _read(part: pathlib.Path) -> tuple[dict, dict]:
  for name in ('results.json', 'config.json'):
    if not (part / name).is_file():
      raise FileNotFoundError(f'part {part} has no {name}: is it a finished train.py run?')
  return (json.loads((part / 'results.json').read_text()),
          _flatten(json.loads((part / 'config.json').read_text())))


def merge(parts: list[pathlib.Path]) -> dict:
  """The merged `results` (as `train.py` writes them) of the parts' `results.json`."""
  if not parts:
    raise ValueError('merge needs at least one part.')
  first_results, first_config = _read(parts[0])
  shared = {key: value for key, value in first_config.items() if key not in PER_PART}
  rows = {}   # (rate, fold) -> (part, its results, its spec of the rate, rate index, fold index)
  loaded = []
  for part in parts:
    results, config = _read(part)
    differing = sorted(key for key in set(shared) | set(config)
                       if key not in PER_PART and config.get(key) != shared.get(key))
    if differing:
      raise ValueError(f'part {part} is not the same sweep as {parts[0]}: config entries '
                       f'{differing} differ.')
    for r, spec in enumerate(results['specs']):
      for f in range(spec['num_folds']):
        key = (round(spec['rate'], 6), spec['first_fold'] + f)
        if key in rows:
          raise ValueError(f'fold {key[1]} at rate {key[0]:g} is in both {rows[key][0]} and '
                           f'{part}.')
        rows[key] = (part, results, spec, r, f)
    loaded.append((part, results))
  rates = sorted({rate for rate, _ in rows})
  specs, merged_methods = [], {}
  methods = list(first_results['methods'])
  for rate in rates:
    folds = sorted(fold for r, fold in rows if r == rate)
    part_specs = [rows[(rate, fold)][2] for fold in folds]
    specs.append({'rate': rate,
                  'meaning': ', '.join(sorted({spec['meaning'] for spec in part_specs})),
                  'source': ', '.join(sorted({spec['source'] for spec in part_specs})),
                  'folds': folds, 'num_folds': len(folds)})
  for method in methods:
    test, trace, iterations = {}, [], []
    timing = {'compile_s': 0.0, 'run_s': 0.0, 'run_cpu_s': 0.0}
    for part, results in loaded:
      outcome = results['methods'][method]
      for name in timing:
        timing[name] += float(outcome['timing'].get(name, 0.0))
    for spec in specs:
      per_rate = {}
      rate_trace, rate_iterations = [], []
      for fold in spec['folds']:
        _, results, _, r, f = rows[(spec['rate'], fold)]
        outcome = results['methods'][method]
        for name, values in outcome['test'].items():
          per_rate.setdefault(name, []).append(values[r][f])
        if 'trace' in outcome:
          rate_trace.append(outcome['trace'][r][f])
          rate_iterations.append(outcome['num_iterations'][r][f])
      for name, values in per_rate.items():
        test.setdefault(name, []).append(values)
      trace.append(rate_trace)
      iterations.append(rate_iterations)
    merged_methods[method] = {'timing': timing, 'conditions': sum(
        len(spec['folds']) for spec in specs) * first_results['seeds'], 'test': test}
    if any(trace):
      merged_methods[method].update(trace=trace, num_iterations=iterations)
  folds_per_rate = {spec['num_folds'] for spec in specs}
  return {'dataset': first_results['dataset'], 'order': first_results['order'],
          'rates': rates, 'specs': specs,
          'num_folds': folds_per_rate.pop() if len(folds_per_rate) == 1 else
          [spec['num_folds'] for spec in specs],
          'seeds': first_results['seeds'], 'methods': merged_methods,
          'parts': [{'workdir': str(part), 'specs': results['specs']}
                    for part, results in loaded]}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--workdir', required=True, type=pathlib.Path,
                      help='where the merged results.md and results.json go')
  parser.add_argument('parts', nargs='+', type=pathlib.Path, help="the parts' workdirs")
  args = parser.parse_args(argv)
  try:
    results = merge(args.parts)
  except (FileNotFoundError, ValueError) as error:
    print(f'merge: {error}', file=sys.stderr)
    return 2
  train.write_results(args.workdir, table=imvc.make_table(results), results=results)
  return 0


if __name__ == '__main__':
  sys.exit(main())
