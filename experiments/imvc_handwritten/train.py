"""Incomplete multi-view clustering on Handwritten, CDIMC-net's protocol: solvers side by side.

Protocol (Wen et al., CDIMC-net, IJCAI 2020, Table 2): the five views pix, fou, fac, zer, kar
(no mor) of all 2,000 samples, a share p of each view's samples deleted (every sample keeps a
view), p in {0.1, 0.3, 0.5, 0.7}; at p = 0.3 the paper's 10 published folds
(`lqmm.data.mask_folds`), at the other rates `lqmm.missing.per_view_mask` (the same statistics,
drawn with JAX keys; Wen et al.'s generator is not published). Every method sees every sample
(clustering is transductive) and is scored on all of them with `lqmm.metrics`: ACC (Hungarian),
NMI with the `max` normalisation of the MATLAB toolbox the baseline rows were computed with and
with the `arithmetic` one of scikit-learn (CDIMC-net's own row), ARI and purity.

Each solver method's whole sweep (rates x folds x seeds) is one compiled call, `jax.vmap` over
the masks and keys:

- `bsv`: best single view, the survey toolbox's `BSV.m`: each view's samples scaled to unit
  norm, missing samples filled with the view's mean, k-means; the view with the best ACC is
  reported (an oracle choice, as published).
- `concat`: `Concat.m`: the same filled views concatenated, k-means.
- `daimc`: DAIMC (Hu and Chen, IJCAI 2018; `lqmm.cluster.daimc`) with the survey's
  `DAIMC_clustering.m` settings (alpha 1e-4, beta 1e4, 30 outer iterations), k-means on V.

    python -m experiments.imvc_handwritten.train \
        --config=experiments/imvc_handwritten/configs/default.py --workdir=$PWD/workdir/imvc
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm import cluster
from lqmm import data
from lqmm import metrics
from lqmm import missing
from lqmm import train
from lqmm.bench import report

# ---------------------------------------------------------------- names
METHODS = {
    'bsv': 'BSV (best single view, oracle choice)',
    'concat': 'Concat (mean-filled views concatenated)',
    'daimc': 'DAIMC',
}
#: Where the published folds replace the generator (rate -> mask_folds name).
PUBLISHED_FOLDS = {0.3: 'handwritten_cdimc_0.3'}
NMI_METHODS = ('max', 'arithmetic')
RESUMABLE = ()


# ---------------------------------------------------------------- data
def load_views(config) -> tuple[tuple[jax.Array, ...], np.ndarray]:
  """The configured views `[N, d_v]` (float32, raw) and the labels `[N]`."""
  full = data.read(config.data.name, config.data.protocol, data_dir=config.data.data_dir,
                   manual_dir=config.data.manual_dir,
                   allow_download=config.data.allow_download)['full']
  views = tuple(jnp.asarray(full['inputs'][view], jnp.float32) for view in
                config.data.modalities)
  return views, np.asarray(full['label'])


def make_masks(config, num_samples: int) -> tuple[np.ndarray, list[dict]]:
  """Presence masks bool `[R, F, N, V]` (rates x folds) and the spec of every rate."""
  order = tuple(config.data.modalities)
  masks, specs = [], []
  for rate in config.missing.rates:
    name = PUBLISHED_FOLDS.get(round(float(rate), 6))
    if name is not None and config.missing.published_folds:
      folds = data.mask_folds(name, manual_dir=config.data.manual_dir,
                              data_dir=config.data.data_dir,
                              allow_download=config.data.allow_download)
      if folds.order != order:
        raise ValueError(f'config.data.modalities {order} must be the published folds\' view '
                         f'order {folds.order} at rate {rate}.')
      rate_masks = folds.masks[:config.missing.num_folds]
      source = f'published folds {name}'
    else:
      keys = [jax.random.fold_in(jax.random.key(config.missing.seed), 1000 * int(100 * rate) + f)
              for f in range(config.missing.num_folds)]
      rate_masks = np.stack([np.asarray(missing.per_view_mask(key, num_samples, len(order), rate))
                             for key in keys])
      source = f'lqmm.missing.per_view_mask, keys fold_in(key({config.missing.seed}), ...)'
    masks.append(rate_masks)
    specs.append({'rate': float(rate), 'meaning': 'per_view', 'source': source,
                  'num_folds': int(rate_masks.shape[0])})
  return np.stack(masks), specs


# ---------------------------------------------------------------- methods
def _filled(views, mask):
  """Each view's rows scaled to unit norm, missing rows replaced by the present rows' mean."""
  out = []
  for v, x in enumerate(views):
    x = cluster.normalize_samples(x)
    present = mask[:, v, None]
    mean = jnp.sum(jnp.where(present, x, 0.0), axis=0) / jnp.sum(present)
    out.append(jnp.where(present, x, mean[None, :]))
  return out


def run_bsv(views, mask, key, *, config, num_clusters: int):
  """Labels of every single view `[V, N]` (the best view is chosen against the labels later)."""
  return jnp.stack([
      cluster.kmeans(x, num_clusters, key=jax.random.fold_in(key, v),
                     num_restarts=config.kmeans.restarts, max_iter=100).labels
      for v, x in enumerate(_filled(views, mask))])


def run_concat(views, mask, key, *, config, num_clusters: int):
  """Labels `[1, N]` of k-means on the concatenated filled views."""
  return cluster.kmeans(jnp.concatenate(_filled(views, mask), axis=1), num_clusters, key=key,
                        num_restarts=config.kmeans.restarts, max_iter=100).labels[None]


def run_daimc(views, mask, key, *, config, num_clusters: int):
  """Labels `[1, N]` of k-means on DAIMC's consensus, and its objective trace."""
  views = [cluster.normalize_samples(x) for x in views]
  init_key, kmeans_key = jax.random.split(key)
  init = cluster.daimc_init(views, mask, num_clusters, key=init_key,
                            num_restarts=config.daimc.init_restarts)
  result = cluster.daimc(views, mask, init, alpha=config.daimc.alpha, beta=config.daimc.beta,
                         max_iter=config.daimc.max_iter, tol=config.daimc.tol)
  labels = cluster.kmeans(result.solution.consensus, num_clusters, key=kmeans_key,
                          num_restarts=config.kmeans.restarts, max_iter=100).labels
  return labels[None], result


RUNNERS = {'bsv': run_bsv, 'concat': run_concat, 'daimc': run_daimc}


def sweep(method: str, views, masks: np.ndarray, keys, *, config, num_clusters: int):
  """Runs `method` on every mask `[C, N, V]` as one compiled call; labels `[C, L, N]`."""
  runner = functools.partial(RUNNERS[method], config=config, num_clusters=num_clusters)
  program = jax.jit(jax.vmap(runner, in_axes=(None, 0, 0)))
  start = time.perf_counter()
  compiled = program.lower(views, masks, keys).compile()
  compile_s = time.perf_counter() - start
  start, cpu = time.perf_counter(), time.process_time()
  output = jax.block_until_ready(compiled(views, masks, keys))
  timing = {'compile_s': compile_s, 'run_s': time.perf_counter() - start,
            'run_cpu_s': time.process_time() - cpu}
  labels, solver = output if isinstance(output, tuple) else (output, None)
  if solver is not None:
    cluster.raise_if_not_finite(solver, method)
  return np.asarray(labels), solver, timing


def score(labels_true: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
  """Metrics `[C]` of labels `[C, L, N]`; with L > 1 (BSV) the best-ACC labeling of each."""
  accuracy = metrics.clustering_accuracy(labels_true, labels)               # [C, L]
  best = np.argmax(accuracy, axis=1)
  chosen = labels[np.arange(labels.shape[0]), best]
  out = {'acc': accuracy[np.arange(labels.shape[0]), best],
         'ari': metrics.adjusted_rand_index(labels_true, chosen),
         'purity': metrics.purity(labels_true, chosen)}
  for method in NMI_METHODS:
    out[f'nmi_{method}'] = metrics.normalized_mutual_info(labels_true, chosen,
                                                          average_method=method)
  if labels.shape[1] > 1:
    out['view'] = best
  return out


# ---------------------------------------------------------------- config check
def check(config) -> None:
  """Validates the config before anything is written."""
  for section in ('data', 'missing', 'kmeans'):
    if section not in config:
      raise KeyError(f'config has no {section!r} section.')
  if not config.methods:
    raise ValueError('config.methods is empty; name at least one of ' + ', '.join(METHODS))
  for method in config.methods:
    checks.lookup(METHODS, method, 'method')
  num_views = len(config.data.modalities)
  if num_views < 2:
    raise ValueError(f'config.data.modalities must name at least two views; got '
                     f'{config.data.modalities}.')
  if not config.missing.rates:
    raise ValueError('config.missing.rates is empty.')
  high = (num_views - 1) / num_views  # per-view deletion: every sample keeps a view
  for rate in config.missing.rates:
    train.check_number(rate, 'config.missing.rates (per-view deletion: every sample keeps a '
                       f'view, so at most (V - 1) / V = {high:g})', minimum=0, maximum=high)
  train.check_integer(config.missing.num_folds, 'config.missing.num_folds', minimum=1)
  train.check_integer(config.missing.seed, 'config.missing.seed', minimum=0)
  train.check_integer(config.seeds, 'config.seeds', minimum=1)
  train.check_integer(config.kmeans.restarts, 'config.kmeans.restarts', minimum=1)
  train.check_integer(config.daimc.init_restarts, 'config.daimc.init_restarts', minimum=1)
  train.check_integer(config.daimc.max_iter, 'config.daimc.max_iter', minimum=1)
  for name in ('alpha', 'beta'):
    train.check_number(config.daimc[name], f'config.daimc.{name}', minimum=0,
                       open_minimum=True)
  train.check_number(config.daimc.tol, 'config.daimc.tol', minimum=0)


# ---------------------------------------------------------------- train and evaluate
def train_and_evaluate(config, workdir) -> dict:
  """Runs every method on every (rate, fold, seed); returns the metrics `[R, F, S]`."""
  check(config)
  views, labels_true = load_views(config)
  num_clusters = int(np.unique(labels_true).size)
  masks, specs = make_masks(config, labels_true.shape[0])                  # [R, F, N, V]
  num_rates, num_folds = masks.shape[:2]
  seeds = config.seeds
  shape = (num_rates, num_folds, seeds)
  flat_masks = jnp.asarray(np.repeat(masks[:, :, None], seeds, axis=2).reshape(
      -1, *masks.shape[2:]))
  keys = jax.random.split(jax.random.key(config.seed), flat_masks.shape[0])
  writer = train.MetricWriter(workdir)
  writer.start(config.to_dict(), resumable=RESUMABLE)
  results = {'dataset': config.data.name, 'order': list(config.data.modalities),
             'rates': [float(rate) for rate in config.missing.rates], 'specs': specs,
             'num_folds': int(num_folds), 'seeds': int(seeds), 'methods': {}}
  for method in config.methods:
    labels, solver, timing = sweep(method, views, flat_masks, keys, config=config,
                                   num_clusters=num_clusters)
    scores = score(labels_true, labels)
    outcome = {'timing': timing, 'conditions': int(flat_masks.shape[0]),
               'test': {name: value.reshape(shape).tolist() for name, value in scores.items()}}
    if solver is not None:
      outcome['trace'] = np.asarray(solver.trace).reshape(*shape, -1).tolist()
      outcome['num_iterations'] = np.asarray(solver.num_iterations).reshape(shape).tolist()
    results['methods'][method] = outcome
    writer.write(0, {f'{method}/rate_{rate:g}/{name}': float(np.mean(
        np.asarray(scores[name]).reshape(shape)[r])) for r, rate in enumerate(results['rates'])
                     for name in ('acc', 'nmi_max')})
  writer.close()
  train.write_results(workdir, table=make_table(results), results=results)
  return results


# ---------------------------------------------------------------- report
def make_table(results) -> str:
  """ACC and NMI (%) per method and rate: mean +- std over folds (and seeds), as the paper."""
  rates = results['rates']
  lines = [f'{results["dataset"]} ({", ".join(results["order"])}), per-view deletion rate p; '
           f'{results["num_folds"]} folds x {results["seeds"]} seeds per rate; mean +- std over '
           'all runs (the paper reports over folds); NMI_max = MI / max(H), the MATLAB '
           "toolbox's; NMI_arith = scikit-learn's default. Seconds for the whole sweep "
           '(compilation apart).', '']
  for name, title in (('acc', 'ACC'), ('nmi_max', 'NMI_max'), ('nmi_arithmetic', 'NMI_arith')):
    lines += [f'{title} (%)', '', '| method | ' + ' | '.join(f'p = {rate:g}' for rate in rates) +
              ' | run s | compile s |', '|---|' + '---|' * (len(rates) + 2)]
    for method, outcome in results['methods'].items():
      values = 100 * np.asarray(outcome['test'][name])
      cells = [report.mean_std(values[r].ravel(), ddof=1) for r in range(len(rates))]
      lines.append(f'| {METHODS[method]} | ' + ' | '.join(cells) +
                   f' | {outcome["timing"]["run_s"]:.1f} | {outcome["timing"]["compile_s"]:.1f} |')
    lines.append('')
  return '\n'.join(lines)


if __name__ == '__main__':
  train.run_experiment(train_and_evaluate)
