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
- `opimc`: OPIMC (Hu and Chen, AAAI 2019; `lqmm.cluster.opimc`): one pass in blocks of 30
  over a random order, alpha 1 (the survey's 10 assigns every sample to one cluster here).
- `lf_imvc`: LF-IMVC (Liu et al., TPAMI 2019; `lqmm.cluster.late_fusion`) on per-view cosine
  kernels over the present samples, k-means (50 restarts, as the original) on the consensus.
- `pic`: PIC (Wang et al., IJCAI 2019; `lqmm.cluster.pic`): adaptive-neighbour graphs over
  each view's present samples, missing rows completed from the other views, view weights from
  the spectral-perturbation QP, k-means on the fused spectral embedding (the survey's k 13,
  beta 0.1).
- `imsc_agl`: IMSC_AGL (Wen et al., TCYB 2020; `lqmm.cluster.imsc_agl`) with the survey's
  settings, k-means on the consensus embedding (100 iterations of five [N, N] SVDs and
  eigendecompositions: about 15 minutes per condition on 2 cores, so not in the default list).
- `fimvc_via`: FIMVC-VIA (Liu et al., TNNLS 2022; `lqmm.cluster.fimvc_via`): one consensus
  anchor graph for every view (m = K anchors, lam 1), k-means (20 restarts) on its top-K left
  singular vectors; linear in N, so the whole sweep takes seconds.
- `mic`: MIC (Shao et al., ECML-PKDD 2015; `lqmm.cluster.mic`) on the views min-max scaled
  over their present samples, missing samples mean-filled and weighted n_v / N, k-means on
  the consensus.

The deep methods train every condition as one seed of `lqmm.train.fit`:

- `cdimc`: CDIMC-net (Wen et al., IJCAI 2020) as its code runs, in two phases: per-view
  autoencoders (`lqmm.nn.MultiViewAutoencoder`) on the views z-scored over their present rows
  (missing rows 0), the codes fused by a mask-weighted mean, pretrained with the masked
  reconstruction error plus a kNN-graph term (SGD with momentum, batches in the order of a
  k-means clustering of the concatenated views, never shuffled); k-means on the fused codes
  gives fixed centres; fine-tuning pulls each code toward its centre counting only the
  self-paced "easy" samples (`lqmm.losses.clustering`), labels and weights renewed every few
  epochs.
- `dcp`: DCP (Lin et al., TPAMI 2022; COMPLETER's loss and networks, `lqmm.nn.
  DualPredictionNet`) as `model_multiview.py` runs it: per-view autoencoders with softmax codes
  on the views min-max scaled over their present rows, the core view (pix) contrasted with and
  predicted from and to every other view, trained on the samples that have every view
  (`train_rows='complete'`; DCP's batches of the complete samples, its last batch dropped) or on
  every sample, each term over the rows with its views (`'pairs'`); every missing view's code
  recovered by prediction, the codes concatenated, k-means.

    python -m experiments.imvc_handwritten.train \
        --config=experiments/imvc_handwritten/configs/default.py --workdir=$PWD/workdir/imvc
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm import checks
from lqmm import cluster
from lqmm import data
from lqmm import losses
from lqmm import metrics
from lqmm import missing
from lqmm import nn
from lqmm import train
from lqmm.bench import report

# ---------------------------------------------------------------- names
METHODS = {
    'bsv': 'BSV (best single view, oracle choice)',
    'concat': 'Concat (mean-filled views concatenated)',
    'daimc': 'DAIMC',
    'mic': 'MIC',
    'opimc': 'OPIMC (one pass)',
    'lf_imvc': 'LF-IMVC (cosine kernels)',
    'pic': 'PIC',
    'imsc_agl': 'IMSC_AGL',
    'fimvc_via': 'FIMVC-VIA (anchor graph)',
    'cdimc': 'CDIMC-net (lqmm, seeded)',
    'dcp': 'DCP',
}
#: Where the published folds replace the generator (rate -> mask_folds name).
PUBLISHED_FOLDS = {0.3: 'handwritten_cdimc_0.3'}
NMI_METHODS = ('max', 'arithmetic')
#: Methods with [V, N, N] graphs or kernels per condition, swept a few conditions at a time.
GRAPH_METHODS = ('lf_imvc', 'pic', 'imsc_agl')
#: FIMVC-VIA's initial anchors: random rows (seeded per condition) or the first rows (the
#: original; on Handwritten, sorted by digit, all of them zeros).
ANCHOR_ROWS = ('random', 'first')
#: DCP's training rows: the samples with every view (the original) or every sample.
DCP_TRAIN_ROWS = ('complete', 'pairs')
RESUMABLE = ('train.stop_after_epochs',)


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
      first, stop = config.missing.first_fold, config.missing.first_fold + config.missing.num_folds
      if stop > folds.masks.shape[0]:
        raise ValueError(f'config.missing.first_fold + num_folds = {stop} exceeds the '
                         f'{folds.masks.shape[0]} published folds at rate {rate}.')
      rate_masks = folds.masks[first:stop]
      source = f'published folds {name}'
    else:
      keys = [jax.random.fold_in(jax.random.key(config.missing.seed), 1000 * int(100 * rate) + f)
              for f in range(config.missing.first_fold,
                             config.missing.first_fold + config.missing.num_folds)]
      rate_masks = np.stack([np.asarray(missing.per_view_mask(key, num_samples, len(order), rate))
                             for key in keys])
      source = f'lqmm.missing.per_view_mask, keys fold_in(key({config.missing.seed}), ...)'
    masks.append(rate_masks)
    specs.append({'rate': float(rate), 'meaning': 'per_view', 'source': source,
                  'first_fold': int(config.missing.first_fold),
                  'num_folds': int(rate_masks.shape[0])})
  return np.stack(masks), specs


# ---------------------------------------------------------------- methods
def _filled(views, mask):
  """Each view's rows scaled to unit norm, missing rows replaced by the present rows' mean
  (`lqmm.missing.impute`, fitted on this condition's present rows)."""
  names = [f'view{v}' for v in range(len(views))]
  inputs = {name: cluster.normalize_samples(x) for name, x in zip(names, views)}
  present = {name: mask[:, v] for v, name in enumerate(names)}
  filled = missing.impute.means(inputs, present, missing.impute.fit_means(inputs, present))
  return [filled[name] for name in names]


def _min_max_scaled(views, mask):
  """Each view's features scaled to [0, 1] over its present rows; missing rows 0."""
  scaled = []
  for v, x in enumerate(views):
    present = mask[:, v, None]
    low = jnp.min(jnp.where(present, x, jnp.inf), axis=0)
    high = jnp.max(jnp.where(present, x, -jnp.inf), axis=0)
    span = jnp.where(high > low, high - low, 1.0)
    scaled.append(jnp.where(present, (x - low[None, :]) / span[None, :], 0.0))
  return scaled


def _cluster_rows(embedding, num_clusters: int, key, restarts: int):
  """k-means labels `[N]` of a spectral embedding's rows scaled to unit norm."""
  return cluster.kmeans(cluster.normalize_samples(embedding), num_clusters, key=key,
                        num_restarts=restarts, max_iter=100).labels


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
  """Labels `[1, N]` of k-means on DAIMC's consensus, and its objective trace.

  With `config.daimc.restarts > 1`, DAIMC runs from that many initialisations and keeps the
  one with the lowest final objective (an unsupervised choice)."""
  views = [cluster.normalize_samples(x) for x in views]
  init_key, kmeans_key = jax.random.split(key)

  def solve(init_key):
    init = cluster.daimc_init(views, mask, num_clusters, key=init_key,
                              num_restarts=config.daimc.init_restarts)
    return cluster.daimc(views, mask, init, alpha=config.daimc.alpha, beta=config.daimc.beta,
                         max_iter=config.daimc.max_iter, tol=config.daimc.tol)

  runs = jax.vmap(solve)(jax.random.split(init_key, config.daimc.restarts))
  final = jnp.take_along_axis(runs.trace, runs.num_iterations[:, None] - 1, axis=1)[:, 0]
  result = jax.tree.map(lambda leaf: leaf[jnp.argmin(final)], runs)
  labels = cluster.kmeans(result.solution.consensus, num_clusters, key=kmeans_key,
                          num_restarts=config.kmeans.restarts, max_iter=100).labels
  return labels[None], result


def run_mic(views, mask, key, *, config, num_clusters: int):
  """Labels `[1, N]` of k-means on MIC's consensus, and its objective trace; every feature
  min-max scaled to [0, 1] over the present samples (MIC factorises non-negative data)."""
  scaled = _min_max_scaled(views, mask)
  init_key, kmeans_key = jax.random.split(key)
  init = cluster.mic_init(scaled, mask, num_clusters, key=init_key,
                          num_iterations=config.mic.init_iterations)
  result = cluster.mic(scaled, mask, init, alpha=config.mic.alpha, beta=config.mic.beta,
                       rounds=config.mic.rounds, max_iter=config.mic.max_iter)
  labels = cluster.kmeans(result.solution.consensus, num_clusters, key=kmeans_key,
                          num_restarts=config.kmeans.restarts, max_iter=100).labels
  return labels[None], result


def run_opimc(views, mask, key, *, config, num_clusters: int):
  """OPIMC's labels `[1, N]` (one pass over a random order; no k-means) and its result."""
  result = cluster.opimc(views, mask, num_clusters, key=key, alpha=config.opimc.alpha,
                         block_size=config.opimc.block_size, max_iter=config.opimc.max_iter,
                         faithful=config.opimc.faithful)
  return result.labels[None], result


def run_lf_imvc(views, mask, key, *, config, num_clusters: int):
  """Labels `[1, N]` of k-means on LF-IMVC's consensus (rows scaled to unit norm)."""
  partitions = cluster.base_partitions(cluster.cosine_kernels(views, mask), mask, num_clusters)
  result = cluster.late_fusion(partitions, lam=config.lf_imvc.lam,
                               max_iter=config.lf_imvc.max_iter)
  labels = _cluster_rows(result.solution.consensus, num_clusters, key,
                         config.lf_imvc.restarts)
  return labels[None], result


def run_pic(views, mask, key, *, config, num_clusters: int):
  """Labels `[1, N]` of k-means on PIC's embedding (rows scaled to unit norm)."""
  result = cluster.pic(views, mask, num_clusters, k_neighbours=config.pic.k_neighbours,
                       beta=config.pic.beta, faithful=config.pic.faithful)
  labels = _cluster_rows(result.solution.embedding, num_clusters, key, config.kmeans.restarts)
  return labels[None], result


def run_imsc_agl(views, mask, key, *, config, num_clusters: int, capacity: int | None = None):
  """Labels `[1, N]` of k-means on IMSC_AGL's embedding (rows scaled to unit norm), and its
  objective trace; `capacity`: slots per view (see `lqmm.cluster.imsc_agl`)."""
  settings = config.imsc_agl
  result = cluster.imsc_agl(views, mask, num_clusters, lam1=settings.lam1, lam2=settings.lam2,
                            lam3=settings.lam3, mu=settings.mu, rho=settings.rho,
                            k_neighbours=settings.k_neighbours, max_iter=settings.max_iter,
                            faithful=settings.faithful, capacity=capacity)
  labels = _cluster_rows(result.solution.embedding, num_clusters, key, config.kmeans.restarts)
  return labels[None], result


def run_fimvc_via(views, mask, key, *, config, num_clusters: int):
  """Labels `[1, N]` of k-means on FIMVC-VIA's anchor-graph embedding (rows scaled to unit
  norm), and its objective trace; the initial anchors are random rows or the first rows."""
  settings = config.fimvc_via
  anchor_key, kmeans_key = jax.random.split(key)
  num_anchors = settings.anchors_per_cluster * num_clusters
  if settings.anchor_rows == 'random':
    rows = jax.random.choice(anchor_key, mask.shape[0], (num_anchors,), replace=False)
  else:
    rows = jnp.arange(num_anchors)
  result = cluster.fimvc_via(views, mask, num_clusters, num_anchors=num_anchors,
                             lam=settings.lam, max_iter=settings.max_iter, tol=settings.tol,
                             anchor_rows=rows)
  labels = _cluster_rows(result.solution.embedding, num_clusters, kmeans_key, settings.restarts)
  return labels[None], result


RUNNERS = {'bsv': run_bsv, 'concat': run_concat, 'daimc': run_daimc, 'mic': run_mic,
           'opimc': run_opimc, 'lf_imvc': run_lf_imvc, 'pic': run_pic,
           'imsc_agl': run_imsc_agl, 'fimvc_via': run_fimvc_via}


# ---------------------------------------------------------------- CDIMC-net
def cdimc_prepare(mask, key, *, views, config, num_clusters: int) -> dict:
  """One condition's inputs: views z-scored on their present rows (missing rows 0), each view's
  kNN lists among its present rows, and the batch order (samples sorted by the k-means
  clustering of the concatenated mean-filled views, as the original)."""
  order = tuple(config.data.modalities)
  inputs = {}
  for v, (name, x) in enumerate(zip(order, views)):
    present = mask[:, v, None]
    count = jnp.sum(present)
    mean = jnp.sum(jnp.where(present, x, 0.0), axis=0) / count
    std = jnp.sqrt(jnp.sum(jnp.where(present, (x - mean[None, :]) ** 2, 0.0), axis=0) / count)
    std = jnp.where(std > 0, std, 1.0)
    inputs[name] = jnp.where(present, (x - mean[None, :]) / std[None, :], 0.0)
  filled = _filled(views, mask)
  neighbours = jnp.stack([cluster.knn_neighbours(x, mask[:, v], config.cdimc.k)
                          for v, x in enumerate(filled)])
  grouping = cluster.kmeans(jnp.concatenate(filled, axis=1), num_clusters, key=key,
                            num_restarts=config.cdimc.kmeans_restarts).labels
  return {'inputs': inputs, 'mask': mask, 'neighbours': neighbours,
          'order': jnp.argsort(grouping, stable=True).astype(jnp.int32)}


def _batch(extra, rows, order):
  """A batch's inputs `{view: [B, d]}` and presence bool `[V, B]`."""
  return {view: extra['inputs'][view][rows] for view in order}, extra['mask'][rows].T


def _graph_term(codes, extra, rows, weight):
  """The mean over views of `tr(Z_v^T L_v Z_v) / B` on the batch's kNN edges."""
  terms = []
  for v in range(codes.shape[0]):
    adjacency = cluster.batch_adjacency(extra['neighbours'][v], rows)
    adjacency = adjacency * weight[:, None] * weight[None, :]
    terms.append(losses.clustering.graph_smoothness(codes[v], adjacency))
  return sum(terms) / (codes.shape[0] * jnp.sum(weight))


def cdimc_pretrain_step(state, batch, key, *, config):
  """Masked reconstruction error of every view plus the kNN-graph term."""
  del key
  order = tuple(config.data.modalities)
  rows, weight = batch['index'], batch['weight']
  inputs, present = _batch(state.extra, rows, order)

  def loss_fn(params):
    codes, _, outputs = state.model(params)(inputs, present)
    # Each view's mean over [B, d] of the squared error on its present rows (the original
    # averages over the whole batch, missing rows counting as zeros).
    error = sum(jnp.sum(((outputs[view] - inputs[view]) * (present[v] * weight)[:, None]) ** 2)
                / (jnp.sum(weight) * inputs[view].shape[1]) for v, view in enumerate(order))
    graph = _graph_term(codes, state.extra, rows, weight)
    return error + config.cdimc.pretrain_gamma * graph, (error, graph)

  (loss, (error, graph)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  return state.apply_gradients(grads), {'loss': loss, 'reconstruction': error, 'graph': graph}


def _fused_codes(state):
  """The fused code of every sample, `[N, L]`, from the state's parameters and inputs."""
  codes = state.model().encode(state.extra['inputs'])
  return nn.incomplete.masked_mean(codes, state.extra['mask'].T)


def cdimc_epoch_start(state, key, *, config):
  """Every `epochs_per_iteration` epochs: labels and self-paced weights from the current codes
  (the threshold of outer iteration t = epoch / epochs_per_iteration - 1)."""
  del key
  every = config.cdimc.epochs_per_iteration
  epoch = state.epoch
  extra = state.extra
  fused = _fused_codes(state)
  distances = cluster.squared_distances(fused, extra['centres'])
  labels = jnp.argmin(distances, axis=1).astype(jnp.int32)
  nearest = jnp.min(distances, axis=1)
  iteration = epoch // every - 1
  weights = losses.clustering.self_paced_weights(nearest, jnp.maximum(iteration, 0),
                                                 config.cdimc.iterations)
  renew = (epoch > 0) & (epoch % every == 0)
  return state.replace(extra=dict(extra, labels=jnp.where(renew, labels, extra['labels']),
                                  weights=jnp.where(renew, weights, extra['weights'])))


def cdimc_finetune_step(state, batch, key, *, config):
  """The self-paced pull toward the fixed centres plus the kNN-graph term."""
  del key
  order = tuple(config.data.modalities)
  rows, weight = batch['index'], batch['weight']
  inputs, present = _batch(state.extra, rows, order)
  extra = state.extra

  def loss_fn(params):
    codes = state.model(params).encode(inputs)
    fused = nn.incomplete.masked_mean(codes, present)
    pull = losses.clustering.centroid_loss(fused, extra['centres'], extra['labels'][rows],
                                           extra['weights'][rows] * weight)
    graph = _graph_term(codes, extra, rows, weight)
    return pull + config.cdimc.finetune_gamma * graph, (pull, graph)

  (loss, (pull, graph)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  return state.apply_gradients(grads), {'loss': loss, 'pull': pull, 'graph': graph}


def run_cdimc(views, masks, keys, *, config, num_clusters: int, workdir, writer):
  """CDIMC-net on every condition: one seed of `lqmm.train.fit` per condition, two phases."""
  order = tuple(config.data.modalities)
  settings = config.cdimc
  start, cpu = time.perf_counter(), time.process_time()
  prepare_keys, kmeans_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
  extra = jax.jit(jax.vmap(functools.partial(cdimc_prepare, views=views, config=config,
                                             num_clusters=num_clusters)))(masks, prepare_keys)
  dims = {view: int(x.shape[1]) for view, x in zip(order, views)}
  build = lambda: nn.MultiViewAutoencoder(  # noqa: E731
      dims, order, latent_dim=num_clusters, hidden_fraction=settings.hidden_fraction,
      width=settings.width, rngs=nnx.Rngs(0))
  pretrain_init = train.initializer(
      build, optax.sgd(settings.pretrain_learning_rate, momentum=settings.pretrain_momentum),
      init_params=nn.xavier_uniform_init)
  loop = dict(config.train.to_dict(), num_seeds=int(masks.shape[0]),
              batch_size=settings.batch_size, shuffle=False)
  epoch_rows = lambda state: state.extra['order']  # noqa: E731
  pretrained = train.fit(
      lambda key, extra: pretrain_init(key).replace(extra=extra),
      functools.partial(cdimc_pretrain_step, config=config), {'label': jnp.zeros(
          masks.shape[1], jnp.int32)}, config=dict(loop, num_epochs=settings.pretrain_epochs),
      workdir=workdir, writer=writer, name='cdimc_pretrain', seed_data=extra,
      epoch_rows=epoch_rows)

  def centres_of(state, key):
    fused = _fused_codes(state)
    result = cluster.kmeans(fused, num_clusters, key=key,
                            num_restarts=settings.kmeans_restarts)
    return result.centers, result.labels

  centres, labels = jax.jit(jax.vmap(centres_of))(pretrained.state, kmeans_keys)
  extra = dict(extra, centres=centres, labels=labels,
               weights=jnp.ones(labels.shape, jnp.float32))
  graphdef = pretrained.state.graphdef
  tune_tx = optax.adam(settings.finetune_learning_rate)

  def finetune_init(key, seed_data):
    del key
    return train.TrainState.create(params=seed_data['params'], tx=tune_tx, graphdef=graphdef,
                                   extra=seed_data['extra'])

  tuned = train.fit(
      finetune_init, functools.partial(cdimc_finetune_step, config=config),
      {'label': jnp.zeros(masks.shape[1], jnp.int32)},
      config=dict(loop, num_epochs=settings.iterations * settings.epochs_per_iteration),
      workdir=workdir, writer=writer, name='cdimc_finetune',
      seed_data={'params': pretrained.state.params, 'extra': extra},
      epoch_start=functools.partial(cdimc_epoch_start, config=config), epoch_rows=epoch_rows)

  def final_labels(state):
    fused = _fused_codes(state)
    return jnp.argmin(cluster.squared_distances(fused, state.extra['centres']), axis=1)

  labels = jax.block_until_ready(jax.jit(jax.vmap(final_labels))(tuned.state))
  timing = {'compile_s': pretrained.compile_s + tuned.compile_s,
            'run_s': time.perf_counter() - start - pretrained.compile_s - tuned.compile_s,
            'run_cpu_s': time.process_time() - cpu,
            'pretrain_run_s': pretrained.run_s, 'finetune_run_s': tuned.run_s}
  initial = np.asarray(extra['labels'])
  return np.asarray(labels)[:, None], initial[:, None], timing


# ---------------------------------------------------------------- DCP (COMPLETER family)
def dcp_prepare(mask, *, views, config) -> dict:
  """One condition's inputs: each view min-max scaled over its present rows (missing rows 0),
  the mask, which samples have every view, and how many epoch positions DCP trains on with
  complete rows (ceil(n_c / B) - 1 batches of B: `next_batch_multiview` drops the last)."""
  inputs = _min_max_scaled(views, mask)
  complete = jnp.all(mask, axis=1)
  size = config.dcp.batch_size
  batches = jnp.maximum(-(-jnp.sum(complete) // size) - 1, 0)
  return {'inputs': inputs, 'mask': mask, 'complete': complete,
          'counted_rows': (batches * size).astype(jnp.int32),
          'order': jnp.arange(mask.shape[0], dtype=jnp.int32)}


def dcp_epoch_start(state, key, *, config):
  """Complete-rows training (DCP's): the epoch's rows are the complete samples in a random
  order, then the others (never reached: see `dcp_train_step`)."""
  if config.dcp.train_rows != 'complete':
    return state
  score = jnp.where(state.extra['complete'], jax.random.uniform(key, state.extra[
      'complete'].shape), 2.0)
  return state.replace(extra=dict(state.extra, order=jnp.argsort(score).astype(jnp.int32)))


def dcp_train_step(state, batch, key, *, config):
  """DCP's objective on a batch: contrastive + lambda2 reconstruction + lambda1 prediction
  (from epoch `start_prediction`). 'complete' rows: only the first ceil(n_c / B) - 1 batches
  of complete samples count (DCP's `next_batch_multiview` drops the last), the other steps
  change nothing; 'pairs': every row, each term over the rows that have its views."""
  del key
  settings = config.dcp
  order = tuple(config.data.modalities)
  rows, weight = batch['index'], batch['weight']
  extra = state.extra
  inputs = {view: extra['inputs'][v][rows] for v, view in enumerate(order)}
  present = extra['mask'][rows].T
  if settings.train_rows == 'complete':
    counted = (batch['position'] < extra['counted_rows']) & extra['complete'][rows]
    weight = weight * counted.astype(weight.dtype)
  predicting = (state.epoch >= settings.start_prediction).astype(jnp.float32)

  def loss_fn(params):
    model = state.model(params)
    terms = model.losses(inputs, present, alpha=settings.alpha, weights=weight)
    total = (terms['contrastive'] + settings.lambda2 * terms['reconstruction']
             + predicting * settings.lambda1 * terms['prediction'])
    return total, (terms, state.model_variables(model))

  (loss, (terms, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updated = state.apply_gradients(grads).replace(model_state=model_state)
  active = jnp.sum(weight) > 0
  state = jax.tree.map(lambda new, old: jnp.where(active, new, old), updated, state)
  return state, dict(terms, loss=loss, active=active.astype(jnp.float32))


def fit_dcp(views, masks, *, config, workdir, writer) -> train.FitResult:
  """Trains DCP on every condition `[C, N, V]`: one seed of `lqmm.train.fit` per condition
  (resumes from `workdir`'s checkpoint like every `fit`)."""
  order = tuple(config.data.modalities)
  settings = config.dcp
  extra = jax.jit(jax.vmap(functools.partial(dcp_prepare, views=views, config=config)))(masks)
  dims = {view: int(x.shape[1]) for view, x in zip(order, views)}
  build = lambda: nn.DualPredictionNet(  # noqa: E731
      dims, order, latent_dim=settings.latent_dim, hidden=tuple(settings.hidden),
      predictor_hidden=tuple(settings.predictor_hidden), pairing=settings.pairing,
      rngs=nnx.Rngs(0))
  init = train.initializer(build, optax.adam(settings.learning_rate),
                           init_params=nn.torch_linear_init)
  num_rows = int(masks.shape[1])
  if settings.train_rows == 'complete':
    # The epoch's rows: as many as the condition with the most counted rows trains on.
    rows = max(settings.batch_size, int(np.max(extra['counted_rows'])))
    epoch_rows = lambda state: state.extra['order'][:rows]  # noqa: E731
  else:
    epoch_rows = None
  loop = dict(config.train.to_dict(), num_seeds=int(masks.shape[0]),
              batch_size=settings.batch_size, num_epochs=settings.epochs,
              shuffle=settings.train_rows != 'complete')
  result = train.fit(lambda key, seed_extra: init(key).replace(extra=seed_extra),
                     functools.partial(dcp_train_step, config=config),
                     {'label': jnp.zeros(num_rows, jnp.int32)}, config=loop, workdir=workdir,
                     writer=writer, name='dcp', seed_data=extra,
                     epoch_start=functools.partial(dcp_epoch_start, config=config),
                     epoch_rows=epoch_rows)
  return result


def dcp_representation(state, *, config) -> jax.Array:
  """One trained condition's representation to cluster `[N, V * L]` (missing codes
  predicted), with the model in evaluation mode."""
  model = state.model()
  model.eval()
  inputs = {view: state.extra['inputs'][v] for v, view in enumerate(config.data.modalities)}
  return model.represent(inputs, state.extra['mask'].T)


def run_dcp(views, masks, keys, *, config, num_clusters: int, workdir, writer):
  """DCP on every condition, then k-means on each condition's representation."""
  start, cpu = time.perf_counter(), time.process_time()
  result = fit_dcp(views, masks, config=config, workdir=workdir, writer=writer)

  def final_labels(state, key):
    return cluster.kmeans(dcp_representation(state, config=config), num_clusters, key=key,
                          num_restarts=config.dcp.kmeans_restarts).labels

  compile_start = time.perf_counter()
  program = jax.jit(jax.vmap(final_labels)).lower(result.state, keys).compile()
  compile_s = result.compile_s + time.perf_counter() - compile_start
  labels = jax.block_until_ready(program(result.state, keys))
  timing = {'compile_s': compile_s, 'run_s': time.perf_counter() - start - compile_s,
            'run_cpu_s': time.process_time() - cpu, 'train_run_s': result.run_s}
  return np.asarray(labels)[:, None], timing


def sweep(method: str, views, masks: np.ndarray, keys, *, config, num_clusters: int):
  """Runs `method` on every mask `[C, N, V]` as one compiled call; labels `[C, L, N]`."""
  extra = {}
  if method == 'imsc_agl':
    # Slots per view: the most present samples of any view in the sweep (static).
    extra['capacity'] = int(np.asarray(masks).sum(axis=1).max())
  runner = functools.partial(RUNNERS[method], config=config, num_clusters=num_clusters,
                             **extra)
  if method in GRAPH_METHODS:
    # [V, N, N] graphs and their decompositions per condition: a few conditions at a time
    # (vmapped), the chunks in sequence, so that memory stays bounded; one at a time,
    # unbatched, for 1 and for IMSC_AGL (whose skips of SVDs and eigh are lax.conds, which
    # vmap would turn into selects that run both branches).
    per_step = 1 if method == 'imsc_agl' else config.graph_conditions_per_step
    program = jax.jit(lambda views, masks, keys: jax.lax.map(
        lambda inputs: runner(views, *inputs), (masks, keys),
        batch_size=None if per_step == 1 else per_step))
  else:
    program = jax.jit(jax.vmap(runner, in_axes=(None, 0, 0)))
  start = time.perf_counter()
  compiled = program.lower(views, masks, keys).compile()
  compile_s = time.perf_counter() - start
  start, cpu = time.perf_counter(), time.process_time()
  output = jax.block_until_ready(compiled(views, masks, keys))
  timing = {'compile_s': compile_s, 'run_s': time.perf_counter() - start,
            'run_cpu_s': time.process_time() - cpu}
  labels, solver = output if isinstance(output, tuple) else (output, None)
  if isinstance(solver, cluster.OPIMCResult):
    if np.any(np.asarray(solver.nan_block) > 0):
      raise FloatingPointError(f'{method}: a block loss became NaN (blocks '
                               f'{np.asarray(solver.nan_block).tolist()}).')
    solver = None
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
  train.check_integer(config.missing.first_fold, 'config.missing.first_fold', minimum=0)
  if config.missing.published_folds and any(
      round(float(rate), 6) in PUBLISHED_FOLDS for rate in config.missing.rates) and (
          config.missing.first_fold + config.missing.num_folds > 10):
    raise ValueError(f'config.missing.first_fold + num_folds must be at most 10 (the published '
                     f'folds); got {config.missing.first_fold} + {config.missing.num_folds}.')
  train.check_integer(config.missing.seed, 'config.missing.seed', minimum=0)
  train.check_integer(config.seeds, 'config.seeds', minimum=1)
  train.check_integer(config.kmeans.restarts, 'config.kmeans.restarts', minimum=1)
  train.check_integer(config.graph_conditions_per_step, 'config.graph_conditions_per_step',
                      minimum=1)
  train.check_integer(config.daimc.init_restarts, 'config.daimc.init_restarts', minimum=1)
  train.check_integer(config.daimc.restarts, 'config.daimc.restarts', minimum=1)
  train.check_integer(config.daimc.max_iter, 'config.daimc.max_iter', minimum=1)
  for name in ('alpha', 'beta'):
    train.check_number(config.daimc[name], f'config.daimc.{name}', minimum=0,
                       open_minimum=True)
  train.check_number(config.daimc.tol, 'config.daimc.tol', minimum=0)
  train.check_number(config.opimc.alpha, 'config.opimc.alpha', minimum=0, open_minimum=True)
  train.check_integer(config.opimc.block_size, 'config.opimc.block_size', minimum=2)
  train.check_integer(config.opimc.max_iter, 'config.opimc.max_iter', minimum=1)
  train.check_number(config.lf_imvc.lam, 'config.lf_imvc.lam', minimum=0, open_minimum=True)
  train.check_integer(config.pic.k_neighbours, 'config.pic.k_neighbours', minimum=1)
  train.check_number(config.pic.beta, 'config.pic.beta', minimum=0)
  for name in ('lam1', 'lam2', 'lam3', 'mu'):
    train.check_number(config.imsc_agl[name], f'config.imsc_agl.{name}', minimum=0,
                       open_minimum=True)
  train.check_number(config.imsc_agl.rho, 'config.imsc_agl.rho', minimum=1)
  for name in ('k_neighbours', 'max_iter'):
    train.check_integer(config.imsc_agl[name], f'config.imsc_agl.{name}', minimum=1)
  settings = config.fimvc_via
  train.check_integer(settings.anchors_per_cluster, 'config.fimvc_via.anchors_per_cluster',
                      minimum=1)
  train.check_number(settings.lam, 'config.fimvc_via.lam', minimum=0, open_minimum=True)
  train.check_number(settings.tol, 'config.fimvc_via.tol', minimum=0)
  for name in ('max_iter', 'restarts'):
    train.check_integer(settings[name], f'config.fimvc_via.{name}', minimum=1)
  checks.lookup(dict.fromkeys(ANCHOR_ROWS), settings.anchor_rows, 'config.fimvc_via.anchor_rows')
  train.check_integer(config.lf_imvc.max_iter, 'config.lf_imvc.max_iter', minimum=1)
  train.check_integer(config.lf_imvc.restarts, 'config.lf_imvc.restarts', minimum=1)
  for name in ('rounds', 'max_iter', 'init_iterations'):
    train.check_integer(config.mic[name], f'config.mic.{name}', minimum=1)
  train.check_number(config.mic.alpha, 'config.mic.alpha', minimum=0, open_minimum=True)
  train.check_number(config.mic.beta, 'config.mic.beta', minimum=0)
  if 'cdimc' in config.methods:
    settings = config.cdimc
    for name in ('k', 'kmeans_restarts', 'width', 'pretrain_epochs', 'iterations',
                 'epochs_per_iteration', 'batch_size'):
      train.check_integer(settings[name], f'config.cdimc.{name}', minimum=1)
    for name in ('pretrain_learning_rate', 'finetune_learning_rate', 'hidden_fraction'):
      train.check_number(settings[name], f'config.cdimc.{name}', minimum=0, open_minimum=True)
    for name in ('pretrain_gamma', 'finetune_gamma'):
      train.check_number(settings[name], f'config.cdimc.{name}', minimum=0)
    if not 0 <= train.check_number(settings.pretrain_momentum,
                                   'config.cdimc.pretrain_momentum') < 1:
      raise ValueError(f'config.cdimc.pretrain_momentum must lie in [0, 1); got '
                       f'{settings.pretrain_momentum}.')
    train.loop_settings(dict(config.train.to_dict(), num_epochs=settings.pretrain_epochs,
                             batch_size=settings.batch_size))
  if 'dcp' in config.methods:
    settings = config.dcp
    for name in ('latent_dim', 'epochs', 'batch_size', 'kmeans_restarts'):
      train.check_integer(settings[name], f'config.dcp.{name}', minimum=1)
    train.check_integer(settings.start_prediction, 'config.dcp.start_prediction', minimum=0)
    for name in ('hidden', 'predictor_hidden'):
      widths = tuple(settings[name])
      if not widths:
        raise ValueError(f'config.dcp.{name} must name at least one width; got ().')
      for width in widths:
        train.check_integer(width, f'config.dcp.{name}', minimum=1)
    train.check_number(settings.learning_rate, 'config.dcp.learning_rate', minimum=0,
                       open_minimum=True)
    for name in ('alpha', 'lambda1', 'lambda2'):
      train.check_number(settings[name], f'config.dcp.{name}', minimum=0)
    checks.lookup(dict.fromkeys(nn.incomplete.PAIRINGS), settings.pairing, 'config.dcp.pairing')
    checks.lookup(dict.fromkeys(DCP_TRAIN_ROWS), settings.train_rows, 'config.dcp.train_rows')
    train.loop_settings(dict(config.train.to_dict(), num_epochs=settings.epochs,
                             batch_size=settings.batch_size))


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
    extra_scores = {}
    if method == 'dcp':
      labels, timing = run_dcp(views, flat_masks, keys, config=config,
                               num_clusters=num_clusters, workdir=workdir, writer=writer)
      solver = None
    elif method == 'cdimc':
      labels, initial, timing = run_cdimc(views, flat_masks, keys, config=config,
                                          num_clusters=num_clusters, workdir=workdir,
                                          writer=writer)
      solver = None
      # The k-means on the pretrained codes, before fine-tuning (where merged digits show).
      extra_scores = {f'pretrained_{name}': value
                      for name, value in score(labels_true, initial).items()}
    else:
      labels, solver, timing = sweep(method, views, flat_masks, keys, config=config,
                                     num_clusters=num_clusters)
    scores = dict(score(labels_true, labels), **extra_scores)
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
  folds = results['num_folds']   # one count, or one per rate (a merged sweep, `merge.py`)
  folds = (' / '.join(str(count) for count in folds) if isinstance(folds, list) else folds)
  lines = [f'{results["dataset"]} ({", ".join(results["order"])}), per-view deletion rate p; '
           f'{folds} folds x {results["seeds"]} seeds per rate; mean +- std over '
           'all runs (the paper reports over folds); NMI_max = MI / max(H), the MATLAB '
           "toolbox's; NMI_arith = scikit-learn's default. Seconds for the whole sweep "
           '(compilation apart).', '']
  for name, title in (('acc', 'ACC'), ('nmi_max', 'NMI_max'), ('nmi_arithmetic', 'NMI_arith')):
    lines += [f'{title} (%)', '', '| method | ' + ' | '.join(f'p = {rate:g}' for rate in rates) +
              ' | run s | compile s |', '|---|' + '---|' * (len(rates) + 2)]
    for method, outcome in results['methods'].items():
      cells = [report.mean_std(100 * np.asarray(outcome['test'][name][r]).ravel(), ddof=1)
               for r in range(len(rates))]
      lines.append(f'| {METHODS[method]} | ' + ' | '.join(cells) +
                   f' | {outcome["timing"]["run_s"]:.1f} | {outcome["timing"]["compile_s"]:.1f} |')
    lines.append('')
  return '\n'.join(lines)


if __name__ == '__main__':
  train.run_experiment(train_and_evaluate)
