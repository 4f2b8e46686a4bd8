"""Where DCP's clusters come from: a diagnosis of a finished `dcp` run of `train.py`.

Run it with the same flags as the `train.py` run whose workdir it reads (its config must
include `dcp`). It restores every condition's trained DCP from that workdir's checkpoint
(`fit_dcp` resumes and trains no further; it raises if the checkpoint is not at the last
epoch) and prints, per condition (the conditions in `train.py`'s order: rates, folds, seeds):

- `acc`, `nmi`: k-means (`config.dcp.kmeans_restarts`) on the representation `train.py`
  clusters (every view's code, missing codes predicted), scored against the digits;
- `nmi_pattern`: the same clusters scored against the missing-view pattern of each sample
  (which views it has, as a bit field): high when the clusters sort samples by what is missing
  rather than by digit;
- `view_acc`: per view, k-means on that view's own codes over the samples that have the view,
  scored on those samples (what each encoder learnt);
- `pred_cos`, `pair_cos`: per view other than the core, the mean cosine between the code
  predicted from the core view and the view's own code, over the samples with both, beside
  the mean cosine between the codes of two different such samples (how much a prediction
  says about its sample beyond the average code);
- `rows`: per view, the samples that have both it and the core view (the rows the
  contrastive and prediction terms train on).

    python -m experiments.imvc_handwritten.diagnose_dcp \\
        --config=experiments/imvc_handwritten/configs/default.py \\
        --config.data.manual_dir=../shared/data --config.methods='("dcp",)' ... \\
        --workdir=<the train.py run's workdir>
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np

from experiments.imvc_handwritten import train as imvc
from lqmm import cluster, metrics, train


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
  a = a / np.linalg.norm(a, axis=1, keepdims=True)
  b = b / np.linalg.norm(b, axis=1, keepdims=True)
  return float(np.mean(np.sum(a * b, axis=1)))


def diagnose(config, workdir) -> list[dict]:
  """Per-condition diagnostics of the `dcp` run in `workdir` (see the module docstring)."""
  imvc.check(config)
  if 'dcp' not in config.methods:
    raise ValueError(f'config.methods must include dcp (the run to diagnose); got '
                     f'{tuple(config.methods)}.')
  views, labels_true = imvc.load_views(config)
  num_clusters = int(np.unique(labels_true).size)
  masks, _ = imvc.make_masks(config, labels_true.shape[0])
  flat = jnp.asarray(np.repeat(masks[:, :, None], config.seeds, axis=2).reshape(
      -1, *masks.shape[2:]))
  keys = jax.random.split(jax.random.key(config.seed), flat.shape[0])
  result = imvc.fit_dcp(views, flat, config=config, workdir=workdir, writer=None)
  if int(np.max(np.asarray(result.state.epoch))) < config.dcp.epochs:
    raise ValueError(f'{workdir} holds no finished dcp run ({config.dcp.epochs} epochs).')
  order = tuple(config.data.modalities)
  rows = []
  for c in range(flat.shape[0]):
    state = jax.tree.map(lambda leaf, c=c: leaf[c], result.state)
    mask = np.asarray(flat[c])                                                  # [N, V]
    representation = imvc.dcp_representation(state, config=config)
    labels = np.asarray(cluster.kmeans(representation, num_clusters, key=keys[c],
                                       num_restarts=config.dcp.kmeans_restarts).labels)
    pattern = mask.astype(np.int64) @ (2 ** np.arange(mask.shape[1]))
    model = state.model()
    model.eval()
    inputs = {view: state.extra['inputs'][v] for v, view in enumerate(order)}
    codes = np.asarray(model.encode(inputs, jnp.asarray(mask.T)))               # [V, N, L]
    view_acc, pred_cos, pair_cos, pair_rows = {}, {}, {}, {}
    for v, view in enumerate(order):
      present = mask[:, v]
      own = cluster.kmeans(jnp.asarray(codes[v][present]), num_clusters, key=keys[c],
                           num_restarts=config.dcp.kmeans_restarts).labels
      view_acc[view] = float(metrics.clustering_accuracy(labels_true[present],
                                                         np.asarray(own)))
      if v == 0:
        continue
      both = present & mask[:, 0]
      pair_rows[view] = int(both.sum())
      if both.sum() < 2:
        continue
      predicted = np.asarray(model.predict(order[0], view, jnp.asarray(codes[0][both])))
      pred_cos[view] = _cosine(predicted, codes[v][both])
      pair_cos[view] = _cosine(codes[v][both], np.roll(codes[v][both], 1, axis=0))
    rows.append({
        'condition': c, 'acc': float(metrics.clustering_accuracy(labels_true, labels)),
        'nmi': float(metrics.normalized_mutual_info(labels_true, labels)),
        'nmi_pattern': float(metrics.normalized_mutual_info(pattern, labels)),
        'patterns': int(np.unique(pattern).size),
        'code_max': float(np.mean(np.max(codes, axis=-1)[mask.T])),
        'view_acc': view_acc, 'pred_cos': pred_cos, 'pair_cos': pair_cos, 'rows': pair_rows})
    print(json.dumps(rows[-1]), flush=True)
  return rows


if __name__ == '__main__':
  train.run_experiment(diagnose)
