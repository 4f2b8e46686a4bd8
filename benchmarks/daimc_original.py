"""DAIMC's original MATLAB code under GNU Octave on CDIMC-net's Handwritten protocol, scored
the way lqmm's `imvc_handwritten` scores its own DAIMC.

Why: lqmm's DAIMC stays 4-11 points below CDIMC-net's published DAIMC row although it equals a
float64 transcription of the MATLAB code. This runs the original code itself (the survey
toolbox's `DAIMC/newinit.m` and `DAIMC/DAIMC.m`, unchanged, through
`benchmarks/_run_original_daimc.m`) on the same 40 conditions as the experiment (the published
folds at p = 0.3, the experiment's generated masks elsewhere). Its consensus V is then
clustered several ways: the Octave k-means the driver reports (one replicate), scikit-learn's
and lqmm's k-means with one replicate (10 seeds, the mean) and with 20 restarts. This
separates the factorisation from the k-means step.

Needs GNU Octave with the statistics and control packages (Debian: octave,
octave-statistics, octave-control) and a checkout of DarrenZZhang/TSCMA23-Survey_IMC.

Usage:
  .venv/bin/python benchmarks/daimc_original.py --manual-dir ../shared/data \
      --original-dir <TSCMA23-Survey_IMC checkout> --out benchmarks/results/daimc_original.json
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
from benchmarks import imvc_speed  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import summary  # pylint: disable=g-import-not-at-top,wrong-import-position

RATES = (0.1, 0.3, 0.5, 0.7)
PUBLISHED_ACC = {0.1: (88.86, 0.63), 0.3: (86.73, 0.79), 0.5: (81.92, 0.88),
                 0.7: (60.44, 6.87)}


def export(manual_dir: str, folder: pathlib.Path, num_folds: int) -> None:
  """hw5.mat (CDIMC-net's five views as float64, labels 1-10) and the experiment's masks."""
  import scipy.io  # pylint: disable=g-import-not-at-top
  from experiments.imvc_handwritten import train  # pylint: disable=g-import-not-at-top
  from experiments.imvc_handwritten.configs import default  # pylint: disable=g-import-not-at-top
  source = scipy.io.loadmat(pathlib.Path(manual_dir) / 'handwritten' / 'handwritten-5view.mat')
  views = np.empty((1, source['X'].shape[1]), dtype=object)
  for v in range(views.shape[1]):
    views[0, v] = source['X'][0, v].astype(np.float64)   # uint8 / uint16 views in the file
  # Labels 1-10: the toolbox's RandIndex indexes a contingency table by label.
  scipy.io.savemat(folder / 'hw5.mat', {'X': views, 'truth': source['Y'].astype(float) + 1})
  config = default.get_config()
  config.unlock()
  config.data.manual_dir = manual_dir
  config.missing.num_folds = num_folds
  masks, _ = train.make_masks(config, source['Y'].size)                  # [R, F, N, V]
  for rate, rate_masks in zip(config.missing.rates, masks):
    folds = np.empty((1, rate_masks.shape[0]), dtype=object)
    for f, mask in enumerate(rate_masks):
      folds[0, f] = mask.astype(np.float64)
    scipy.io.savemat(folder / f'hw5_percentDel_{rate:g}.mat', {'folds': folds})


def score(path: pathlib.Path, restarts_seeds: int) -> dict:
  """ACC and NMI_max (%) of every k-means variant on one condition's V."""
  import jax  # pylint: disable=g-import-not-at-top
  import scipy.io  # pylint: disable=g-import-not-at-top
  from sklearn import cluster as sk_cluster  # pylint: disable=g-import-not-at-top
  from lqmm import cluster, metrics  # pylint: disable=g-import-not-at-top
  saved = scipy.io.loadmat(path)
  v, truth = saved['V'], saved['truth'].ravel().astype(int)

  def measure(labels):
    labels = np.asarray(labels).astype(int)
    return (100 * float(metrics.clustering_accuracy(truth, labels)),
            100 * float(metrics.normalized_mutual_info(truth, labels, average_method='max')))

  out = {'octave_kmeans': measure(saved['labels'].ravel()),
         'seconds': float(saved['seconds'].ravel()[0])}
  single = [measure(sk_cluster.KMeans(10, n_init=1, random_state=s).fit_predict(v))
            for s in range(restarts_seeds)]
  out['sklearn_1'] = tuple(np.mean(single, axis=0))
  out['sklearn_20'] = measure(sk_cluster.KMeans(10, n_init=20, random_state=0).fit_predict(v))
  x = jax.numpy.asarray(v, jax.numpy.float32)
  single = [measure(cluster.kmeans(x, 10, key=jax.random.key(s), num_restarts=1).labels)
            for s in range(restarts_seeds)]
  out['lqmm_1'] = tuple(np.mean(single, axis=0))
  out['lqmm_20'] = measure(cluster.kmeans(x, 10, key=jax.random.key(0), num_restarts=20).labels)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--manual-dir', required=True)
  parser.add_argument('--original-dir', required=True,
                      help='checkout of DarrenZZhang/TSCMA23-Survey_IMC')
  parser.add_argument('--octave', default='octave')
  parser.add_argument('--folds', type=int, default=10)
  parser.add_argument('--work-dir', default=None, help='keeps the exported data and V files')
  parser.add_argument('--seeds', type=int, default=10, help='one-replicate k-means draws')
  parser.add_argument('--out', default=None)
  parser.add_argument('--summary', default=None, help="the speed table's record (JSON)")
  args = parser.parse_args()
  load_before = os.getloadavg()[0]
  print(f'load average before: {os.getloadavg()}; {os.cpu_count()} CPUs; '
        f'{platform.processor() or platform.machine()}', flush=True)
  folder = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix='daimc-original-'))
  folder.mkdir(parents=True, exist_ok=True)
  export(args.manual_dir, folder, args.folds)
  env = dict(os.environ, ORIGINAL=str(pathlib.Path(args.original_dir).resolve()),
             DATA=str(folder), OUT=str(folder), RATES=f'[{" ".join(map(str, RATES))}]',
             FOLDS=f'1:{args.folds}')
  start = time.perf_counter()
  subprocess.run([args.octave, '--no-gui', '-q', str(ROOT / 'benchmarks' /
                                                     '_run_original_daimc.m')],
                 env=env, check=True)
  print(f'Octave: {time.perf_counter() - start:.0f} s wall for {len(RATES) * args.folds} '
        'conditions', flush=True)
  results = {rate: [score(folder / f'V_{rate:g}_{f}.mat', args.seeds)
                    for f in range(1, args.folds + 1)] for rate in RATES}
  names = ('octave_kmeans', 'sklearn_1', 'lqmm_1', 'sklearn_20', 'lqmm_20')
  print('\nACC (%) of k-means on the original DAIMC consensus V, mean +- std over folds')
  print('| k-means | ' + ' | '.join(f'p = {rate:g}' for rate in RATES) + ' |')
  print('|---|' + '---|' * len(RATES))
  for name in names:
    cells = []
    for rate in RATES:
      acc = np.array([row[name][0] for row in results[rate]])
      cells.append(f'{acc.mean():.2f} +- {acc.std(ddof=1):.2f}')
    print(f'| {name} | ' + ' | '.join(cells) + ' |')
  print('| published | ' + ' | '.join(f'{m} +- {s}' for m, s in
                                     (PUBLISHED_ACC[rate] for rate in RATES)) + ' |')
  seconds = [row['seconds'] for rate in RATES for row in results[rate]]
  print(f'\nOriginal DAIMC (newinit + DAIMC) CPU seconds per condition in Octave: '
        f'{np.mean(seconds):.1f} (min {np.min(seconds):.1f}, max {np.max(seconds):.1f})')
  # lqmm's DAIMC (the experiment's settings, its one-replicate k-means included) on the same
  # conditions, as one compiled call.
  ours = imvc_speed.time_sweep('daimc', imvc_speed.sweep_inputs(args.manual_dir, args.folds))
  print(f'lqmm DAIMC on the same conditions, one call: {ours["per_condition_cpu_s"]:.2f} CPU-s '
        f'/ {ours["per_condition_s"]:.2f} s per condition (compile {ours["compile_s"]:.1f} s), '
        f'ACC {100 * ours["mean_acc"]:.2f}: '
        f'{np.mean(seconds) / ours["per_condition_cpu_s"]:.1f}x in CPU seconds')
  octave = subprocess.run([args.octave, '--version'], capture_output=True, text=True,
                          check=True).stdout.splitlines()[0]
  original_acc = np.mean([row['lqmm_1'][0] for rate in RATES for row in results[rate]])
  summary.write(args.summary, 'daimc_original', [summary.row(
      f'DAIMC, Handwritten, {len(RATES) * args.folds} conditions', 'CPU-s per condition',
      ours['per_condition_cpu_s'],
      original=f'survey toolbox newinit.m + DAIMC.m (fe22317), {octave}',
      original_value=float(np.mean(seconds)),
      accuracy=f'ACC lqmm {100 * ours["mean_acc"]:.2f} / original V with lqmm k-means '
      f'(1 replicate) {original_acc:.2f}',
      notes='the original without its k-means (Octave cputime of newinit and DAIMC), lqmm with '
      'its one-replicate k-means')], load_before=load_before)
  if args.out:
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(
        {f'{rate:g}': rows for rate, rows in results.items()}, indent=1) + '\n')


if __name__ == '__main__':
  main()
