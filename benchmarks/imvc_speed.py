"""Incomplete multi-view clustering: lqmm's one-call sweeps beside per-run reference code.

Measures, on this machine, one after the other:

  1. each solver method of `experiments/imvc_handwritten` over its whole sweep (4 rates x 10
     folds, CDIMC-net's protocol) as one compiled call: compile seconds apart, then wall and
     CPU seconds of the run;
  2. the NumPy transcription of DAIMC's MATLAB code (`tests/reference/transcribed/daimc.py`,
     float64, the parity reference; MATLAB itself does not run here), from the same kind of
     initialisation (scikit-learn k-means, 20 restarts, per view), on `--reference-runs`
     conditions of the sweep, timed per condition; likewise FIMVC-VIA's transcription
     (`transcribed/anchor.py`, a loop over samples for the Z-step as the MATLAB) with the
     experiment's settings and scikit-learn k-means (20 restarts), when `fimvc_via` is run;
  3. k-means: `lqmm.cluster.kmeans` (10 restarts, vmapped) against scikit-learn's `KMeans`
     (n_init=10) on the five concatenated views, per run.

Ratios are per condition (per run). The load average is printed first: run it on an idle
machine.

Usage:
  .venv/bin/python benchmarks/imvc_speed.py --manual-dir ../shared/data \
      --out benchmarks/results/imvc_speed.json
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'tests' / 'reference'))
from benchmarks import summary  # pylint: disable=g-import-not-at-top,wrong-import-position


def _clock():
  return time.perf_counter(), time.process_time()


def _since(start):
  return time.perf_counter() - start[0], time.process_time() - start[1]


def sweep_inputs(manual_dir: str, num_folds: int | None = None):
  """The experiment's default config (`num_folds` per rate if given), its views and labels,
  and every condition's mask `[C, N, V]` with its key, in the experiment's order."""
  import jax  # pylint: disable=g-import-not-at-top
  from experiments.imvc_handwritten import train  # pylint: disable=g-import-not-at-top
  from experiments.imvc_handwritten.configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.unlock()
  config.data.manual_dir = manual_dir
  if num_folds is not None:
    config.missing.num_folds = num_folds
  config.lock()
  views, labels_true = train.load_views(config)
  masks, _ = train.make_masks(config, labels_true.shape[0])
  flat = jax.numpy.asarray(masks.reshape(-1, *masks.shape[2:]))
  keys = jax.random.split(jax.random.key(config.seed), flat.shape[0])
  return config, views, labels_true, flat, keys


def time_sweep(method: str, inputs) -> dict:
  """`method`'s whole sweep as one compiled call: its timing, per-condition seconds and mean
  ACC (a fraction)."""
  from experiments.imvc_handwritten import train  # pylint: disable=g-import-not-at-top
  config, views, labels_true, flat, keys = inputs
  labels, _, timing = train.sweep(method, views, flat, keys, config=config, num_clusters=10)
  accuracy = float(np.mean(train.score(labels_true, labels)['acc']))
  return dict(timing, conditions=int(flat.shape[0]), mean_acc=accuracy,
              per_condition_s=timing['run_s'] / flat.shape[0],
              per_condition_cpu_s=timing['run_cpu_s'] / flat.shape[0])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--manual-dir', required=True)
  parser.add_argument('--methods', default='bsv,concat,daimc')
  parser.add_argument('--reference-runs', type=int, default=2)
  parser.add_argument('--out', default=None)
  parser.add_argument('--summary', default=None, help="the speed table's record (JSON)")
  args = parser.parse_args()
  load_before = os.getloadavg()[0]
  print(f'load average before: {os.getloadavg()}; {os.cpu_count()} CPUs; '
        f'{platform.processor() or platform.machine()}')

  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from sklearn import cluster as sk_cluster  # pylint: disable=g-import-not-at-top
  from lqmm import cluster  # pylint: disable=g-import-not-at-top
  from lqmm import metrics  # pylint: disable=g-import-not-at-top
  from transcribed import anchor as anchor_ref  # pylint: disable=g-import-not-at-top
  from transcribed import daimc as daimc_ref  # pylint: disable=g-import-not-at-top

  inputs = sweep_inputs(args.manual_dir)
  config, views, labels_true, flat, _ = inputs
  rows = {}
  for method in args.methods.split(','):
    rows[method] = time_sweep(method, inputs)
    print(method, rows[method])

  # DAIMC's transcription, per condition, on the first conditions of the sweep.
  reference = []
  for index in range(args.reference_runs):
    mask = np.asarray(flat[index])
    start = _clock()
    x_list = [np.asarray(cluster.normalize_samples(x), np.float64).T for x in views]
    w_list = [mask[:, v].astype(np.float64) for v in range(mask.shape[1])]
    x_list, w_list = daimc_ref.preprocess(x_list, w_list)

    def sk_kmeans(samples, k):
      fitted = sk_cluster.KMeans(k, n_init=20, random_state=index).fit(samples)
      return fitted.labels_, fitted.cluster_centers_

    bases, consensus, regressions = daimc_ref.newinit(x_list, w_list, 10, sk_kmeans)
    _, consensus, _, trace = daimc_ref.daimc(x_list, w_list, bases, consensus, regressions,
                                             config.daimc.alpha, config.daimc.beta)
    found = sk_cluster.KMeans(10, n_init=1, random_state=index).fit(consensus).labels_
    wall, cpu = _since(start)
    reference.append({'wall_s': wall, 'cpu_s': cpu, 'iterations': len(trace),
                      'acc': float(metrics.clustering_accuracy(labels_true, found))})
    print('DAIMC transcription', reference[-1])

  # FIMVC-VIA's transcription, per condition, from random anchor rows.
  anchor_reference = []
  settings = config.fimvc_via
  num_anchors = settings.anchors_per_cluster * 10
  for index in range(args.reference_runs if 'fimvc_via' in rows else 0):
    mask = np.asarray(flat[index])
    rng = np.random.default_rng(index)
    start = _clock()
    data = [np.where(mask[:, v, None], np.asarray(x, np.float64), np.nan).T
            for v, x in enumerate(views)]
    xs, ind = anchor_ref.findindex(data, [np.flatnonzero(mask[:, v])
                                          for v in range(mask.shape[1])])
    z_init = np.zeros((num_anchors, mask.shape[0]))
    z_init[np.arange(num_anchors), rng.choice(mask.shape[0], num_anchors, replace=False)] = 1
    result = anchor_ref.missingalgo_qp(xs, 10, settings.lam, num_anchors, ind, z_init=z_init)
    embedding = result['UU'] / np.linalg.norm(result['UU'], axis=1, keepdims=True)
    found = sk_cluster.KMeans(10, n_init=settings.restarts,
                              random_state=index).fit(embedding).labels_
    wall, cpu = _since(start)
    anchor_reference.append({'wall_s': wall, 'cpu_s': cpu, 'iterations': result['iter'],
                             'acc': float(metrics.clustering_accuracy(labels_true, found))})
    print('FIMVC-VIA transcription', anchor_reference[-1])

  # k-means alone on the concatenated views.
  concat = jnp.concatenate([cluster.normalize_samples(x) for x in views], axis=1)
  program = jax.jit(lambda key: cluster.kmeans(concat, 10, key=key, num_restarts=10).inertia)
  jax.block_until_ready(program(jax.random.key(0)))
  start = _clock()
  ours = [float(program(jax.random.key(seed))) for seed in range(5)]
  ours_wall, ours_cpu = _since(start)
  start = _clock()
  theirs = [sk_cluster.KMeans(10, n_init=10, random_state=seed).fit(np.asarray(concat)).inertia_
            for seed in range(5)]
  theirs_wall, theirs_cpu = _since(start)
  kmeans_row = {'lqmm_wall_s': ours_wall / 5, 'lqmm_cpu_s': ours_cpu / 5,
                'sklearn_wall_s': theirs_wall / 5, 'sklearn_cpu_s': theirs_cpu / 5,
                'lqmm_inertia': float(np.mean(ours)), 'sklearn_inertia': float(np.mean(theirs))}
  print('kmeans', kmeans_row)

  reference_wall = float(np.mean([run['wall_s'] for run in reference]))
  reference_cpu = float(np.mean([run['cpu_s'] for run in reference]))
  lines = [f'load average before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}', '',
           '| work | lqmm per condition (wall / CPU s) | reference per condition '
           '(wall / CPU s) | speed-up (wall / CPU) |', '|---|---|---|---|']
  if 'daimc' in rows:
    daimc = rows['daimc']
    lines.append(f'| DAIMC, {daimc["conditions"]} conditions in one call '
                 f'({daimc["run_s"]:.1f} s wall, {daimc["compile_s"]:.1f} s compile) | '
                 f'{daimc["per_condition_s"]:.2f} / {daimc["per_condition_cpu_s"]:.2f} | '
                 f'{reference_wall:.2f} / {reference_cpu:.2f} (NumPy transcription) | '
                 f'{reference_wall / daimc["per_condition_s"]:.1f}x / '
                 f'{reference_cpu / daimc["per_condition_cpu_s"]:.1f}x |')
  if anchor_reference:
    row = rows['fimvc_via']
    wall = float(np.mean([run['wall_s'] for run in anchor_reference]))
    cpu = float(np.mean([run['cpu_s'] for run in anchor_reference]))
    lines.append(f'| FIMVC-VIA, {row["conditions"]} conditions in one call '
                 f'({row["run_s"]:.1f} s wall, {row["compile_s"]:.1f} s compile) | '
                 f'{row["per_condition_s"]:.3f} / {row["per_condition_cpu_s"]:.3f} | '
                 f'{wall:.2f} / {cpu:.2f} (NumPy transcription) | '
                 f'{wall / row["per_condition_s"]:.1f}x / '
                 f'{cpu / row["per_condition_cpu_s"]:.1f}x |')
  lines.append(f'| k-means, 10 restarts, N = 2000, D = 643 | {kmeans_row["lqmm_wall_s"]:.3f} / '
               f'{kmeans_row["lqmm_cpu_s"]:.3f} | {kmeans_row["sklearn_wall_s"]:.3f} / '
               f'{kmeans_row["sklearn_cpu_s"]:.3f} (scikit-learn) | '
               f'{kmeans_row["sklearn_wall_s"] / kmeans_row["lqmm_wall_s"]:.1f}x / '
               f'{kmeans_row["sklearn_cpu_s"] / kmeans_row["lqmm_cpu_s"]:.1f}x |')
  for method in ('bsv', 'concat'):
    if method in rows:
      row = rows[method]
      lines.append(f'| {method}, {row["conditions"]} conditions in one call | '
                   f'{row["per_condition_s"]:.3f} / {row["per_condition_cpu_s"]:.3f} | | |')
  table = '\n'.join(lines)
  print(table)
  records = []
  transcription = 'NumPy float64 transcription of the MATLAB (tests/reference/transcribed)'
  if 'daimc' in rows:
    records.append(summary.row(
        f'DAIMC, Handwritten, {rows["daimc"]["conditions"]} conditions in one call',
        'CPU-s per condition', rows['daimc']['per_condition_cpu_s'],
        original=f'{transcription}, {len(reference)} condition(s)',
        original_value=reference_cpu, accuracy=f'lqmm ACC {100 * rows["daimc"]["mean_acc"]:.2f} '
        f'(sweep) / transcription {100 * np.mean([run["acc"] for run in reference]):.2f} '
        f'({len(reference)} condition(s))'))
  if anchor_reference:
    records.append(summary.row(
        f'FIMVC-VIA, Handwritten, {rows["fimvc_via"]["conditions"]} conditions in one call',
        'CPU-s per condition', rows['fimvc_via']['per_condition_cpu_s'],
        original=f'{transcription}, {len(anchor_reference)} condition(s)',
        original_value=float(np.mean([run['cpu_s'] for run in anchor_reference]))))
  records.append(summary.row(
      'k-means, 10 restarts, N = 2000, D = 643', 'CPU-s per run', kmeans_row['lqmm_cpu_s'],
      original='scikit-learn KMeans(n_init=10)', original_value=kmeans_row['sklearn_cpu_s'],
      accuracy=f'inertia lqmm {kmeans_row["lqmm_inertia"]:.1f} / scikit-learn '
      f'{kmeans_row["sklearn_inertia"]:.1f}'))
  for method in ('bsv', 'concat'):
    if method in rows:
      records.append(summary.row(
          f'{method}, Handwritten, {rows[method]["conditions"]} conditions in one call',
          'CPU-s per condition', rows[method]['per_condition_cpu_s'],
          accuracy=f'ACC {100 * rows[method]["mean_acc"]:.2f}'))
  summary.write(args.summary, 'imvc_speed', records, load_before=load_before)
  if args.out:
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(
        {'sweeps': rows, 'daimc_transcription': reference,
         'fimvc_via_transcription': anchor_reference, 'kmeans': kmeans_row,
         'table': table}, indent=1))


if __name__ == '__main__':
  main()
