"""Runs the original DCP (`model_multiview.DCPMultiView.train_coreview`) on given inputs, on CPU.

Executed by the PyTorch interpreter (Python 3.11, torch CPU, numpy, scipy, scikit-learn), not by
lqmm's. The original code is Lin et al., "Dual Contrastive Prediction for Incomplete Multi-View
Representation Learning" (TPAMI 2022), XLearning-SCU/2022-TPAMI-DCP at d7a4b47: `model.py`,
`model_multiview.py`, `loss.py` and `utils/next_batch.py` are imported unmodified from
`--dcp-dir`, and `DCPMultiView(config).train_coreview(...)` is called as
`run_clustering_multiview.py` calls it, once per condition of the inputs file.

Deviations from `run_clustering_multiview.py`, and nothing else:
1. The views and masks come from the inputs file (lqmm's preprocessing: each view min-max scaled
   over its present rows, missing rows 0; Handwritten has no DCP loader or config) and the
   config is given here (DCP's Scene_15 settings, `configs/default.py`'s `dcp` section).
2. `print_num` = the number of epochs, so the original evaluates once, after the last epoch (the
   result it reports); its `clustering.get_score` (k-means with 10 initialisations, then its
   metrics, which need `munkres`) is replaced by a function that records the representation;
   the runner then clusters it with scikit-learn's `KMeans(n_clusters, n_init=10)` as
   `utils/clustering.py` does and scores ACC (Hungarian, scipy) and NMI (scikit-learn,
   arithmetic), the originals' definitions.
3. CPU; `torch.manual_seed(seed + c)` and `np.random.seed(seed + c)` before condition c (the
   original seeds once per run from its config).
`utils.classify` (supervised only) is an empty stand-in.

Timing per condition: `train_s` / `train_cpu_s` around `train_coreview` (training plus the one
evaluation forward), `kmeans_s` apart. Thread variables default to `--threads`.

Inputs file (`.npz`): `x{v}` float32 [C, N, d_v] per view, `mask` bool [C, N, V], `labels` [N].

Usage:
  /work/torch-venv/bin/python benchmarks/_run_original_dcp.py --dcp-dir <checkout> \
      --inputs /tmp/dcp_inputs.npz --epochs 300 --start-prediction 100 --out /tmp/dcp.json
"""

import argparse
import json
import os
import pathlib
import sys
import time
import types

# The helpers shared with the reference-vector generators (the stand-in modules).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'tests' / 'reference'))
import original_code  # pylint: disable=g-import-not-at-top,wrong-import-position


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--dcp-dir', required=True, type=pathlib.Path)
  parser.add_argument('--inputs', required=True, type=pathlib.Path)
  parser.add_argument('--out', required=True, type=pathlib.Path)
  parser.add_argument('--epochs', type=int, default=300)
  parser.add_argument('--start-prediction', type=int, default=100)
  parser.add_argument('--latent-dim', type=int, default=128)
  parser.add_argument('--learning-rate', type=float, default=1e-4)
  parser.add_argument('--batch-size', type=int, default=256)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--threads', type=int, default=os.cpu_count())
  args = parser.parse_args()
  for name in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(name, str(args.threads))

  import numpy as np  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from scipy import optimize  # pylint: disable=import-outside-toplevel
  from sklearn import cluster as sk_cluster  # pylint: disable=import-outside-toplevel
  from sklearn import metrics as sk_metrics  # pylint: disable=import-outside-toplevel

  torch.set_num_threads(args.threads)
  sys.path.insert(0, str(args.dcp_dir))
  original_code.empty_submodules('utils', ('classify', 'clustering'))
  import model_multiview  # pylint: disable=import-outside-toplevel

  data = np.load(args.inputs)
  labels = np.asarray(data['labels'])
  masks = np.asarray(data['mask'])
  num_views = masks.shape[2]
  num_clusters = int(np.unique(labels).size)
  records = []
  for c in range(masks.shape[0]):
    views = [torch.tensor(np.asarray(data[f'x{v}'][c]), dtype=torch.float32)
             for v in range(num_views)]
    config = {
        'type': 'CV', 'view': num_views, 'print_num': args.epochs, 'seed': args.seed,
        'training': {'lr': args.learning_rate, 'start_dual_prediction': args.start_prediction,
                     'batch_size': args.batch_size, 'epoch': args.epochs, 'alpha': 10,
                     'lambda1': 0.1, 'lambda2': 0.1},
        'Autoencoder': {**{f'arch{v + 1}': [int(x.shape[1]), 1024, 1024, 1024, args.latent_dim]
                           for v, x in enumerate(views)},
                        'activations': 'relu', 'batchnorm': True},
        'Prediction': {f'arch{v + 1}': [128, 256, 128] for v in range(num_views)}}
    torch.manual_seed(args.seed + c)
    np.random.seed(args.seed + c)
    captured = {}

    def capture(representation, *unused, _captured=captured):
      _captured['x'] = np.asarray(representation[0])
      return {}

    model_multiview.clustering.get_score = capture
    model = model_multiview.DCPMultiView(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    logger = types.SimpleNamespace(info=lambda *unused: None)
    metrics = {'acc': [0.0], 'nmi': [0.0], 'ARI': [0.0], 'f-mea': [0.0]}
    complete = int(masks[c].all(axis=1).sum())
    start, cpu = time.perf_counter(), time.process_time()
    model.train_coreview(config, logger, metrics, views, [labels],
                         torch.tensor(masks[c].astype(np.int64)), optimizer, 'cpu')
    train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    predicted = sk_cluster.KMeans(num_clusters, n_init=10).fit(captured['x']).predict(
        captured['x'])
    kmeans_s = time.perf_counter() - start
    table = sk_metrics.confusion_matrix(labels, predicted)
    rows, cols = optimize.linear_sum_assignment(-table)
    records.append({
        'condition': c, 'complete_samples': complete,
        'batches_per_epoch': max(-(-complete // args.batch_size) - 1, 0),
        'acc': float(table[rows, cols].sum() / labels.size),
        'nmi_arithmetic': float(sk_metrics.normalized_mutual_info_score(labels, predicted)),
        'train_s': train_s, 'train_cpu_s': train_cpu_s, 'kmeans_s': kmeans_s})
    print(json.dumps(records[-1]), file=sys.stderr)
  args.out.write_text(json.dumps({'torch': torch.__version__, 'threads': args.threads,
                                  'epochs': args.epochs, 'records': records}, indent=1))


if __name__ == '__main__':
  main()
