"""Incomplete Handwritten: imputation + late fusion, TMC with masks and UIMC, over eta x seeds.

One linear file; fork it. Sections: names, conditions, preparation, model, step, evaluation,
train_and_evaluate, report. Every (missing rate, seed) pair is one "seed" of `lqmm.train.fit`:
its mask, split, scaling and imputation live in the state's `extra`, so a method's whole sweep
is one compiled program.

    python -m experiments.uimc_handwritten.train \
        --config=experiments/uimc_handwritten/configs/default.py --workdir=$PWD/workdir/uimc
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm import checks
from lqmm import data
from lqmm import metrics
from lqmm import missing
from lqmm import nn
from lqmm import train
from lqmm.bench import report
from lqmm.fusion import dempster_shafer
from lqmm.fusion import energy
from lqmm.losses import cpm
from lqmm.losses import evidential
from lqmm.losses import ranking
from lqmm.missing import distributions
from lqmm.missing import impute

# ---------------------------------------------------------------- names
METHODS = {
    'zero': 'zero imputation + late fusion',
    'mean': 'mean imputation + late fusion',
    'knn': 'k-NN imputation + late fusion',
    'tmc_masks': 'TMC with masks (missing views dropped)',
    'uimc': 'UIMC (imputation as distributions)',
    'cpm_nets': 'CPM-Nets (imputation-free latent)',
    'masked_fusion': 'mask-weighted deep fusion (imputation-free)',
    'learned': 'learned cross-view imputation + late fusion',
    'qmf_masks': 'QMF with masks (energy-weighted late fusion, missing views dropped)',
}
# Methods whose inputs keep their missing views (and masks) into training.
MASKED = ('uimc', 'tmc_masks', 'cpm_nets', 'masked_fusion', 'learned', 'qmf_masks')
AGGREGATES = ('vote', 'confidence', 'mean')
# Protocol -> what its rate means. 'cpm', 'completer', 'dcp': the published NumPy generators
# replayed bit for bit after np.random.seed(seed); 'per_view', 'samples': lqmm's JAX ones.
PROTOCOLS = {'cpm': 'entries', 'completer': 'completer', 'dcp': 'samples',
             'per_view': 'per_view', 'samples': 'samples'}
RESUMABLE = ('train.num_epochs', 'train.stop_after_epochs', 'train.num_devices', 'eval')


# ---------------------------------------------------------------- conditions
def legacy_split(num_rows: int, train_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
  """UIMC's `build_ad_dataset` split after `np.random.seed(seed)`: training rows in draw
  order, test rows sorted."""
  rng = np.random.RandomState(seed)
  train_rows = rng.choice(num_rows, int(np.ceil(num_rows * train_fraction)), replace=False)
  test_rows = np.setdiff1d(np.arange(num_rows), train_rows)
  return train_rows.astype(np.int32), test_rows.astype(np.int32)


def draw_mask(protocol: str, num_rows: int, num_views: int, rate: float,
              seed: int) -> np.ndarray:
  """One protocol's bool `[N, V]` mask (True = present) for `rate` and `seed`."""
  if protocol in ('cpm', 'completer', 'dcp'):
    return missing.legacy_mask(protocol, num_rows, num_views, rate, seed=seed)
  generator = (missing.per_view_mask if protocol == 'per_view'
               else missing.incomplete_samples_mask)
  return np.asarray(generator(jax.random.key(seed), num_rows, num_views, rate))


def make_conditions(config, num_rows: int, num_views: int) -> tuple[dict, list[dict]]:
  """Masks and splits of every (protocol, rate, seed), `[C, ...]` numpy, and their specs."""
  arrays = {'mask': [], 'train_rows': [], 'test_rows': []}
  specs = []
  for protocol in config.missing.protocols:
    for rate in config.missing.rates:
      for offset in range(config.train.num_seeds):
        seed = config.train.seed + offset
        arrays['mask'].append(draw_mask(protocol, num_rows, num_views, rate, seed))
        train_rows, test_rows = legacy_split(num_rows, config.missing.train_fraction, seed)
        arrays['train_rows'].append(train_rows)
        arrays['test_rows'].append(test_rows)
        specs.append(missing.MissingSpec(protocol, float(rate), PROTOCOLS[protocol], 1,
                                         seed).to_dict())
  arrays = {name: np.stack(values) for name, values in arrays.items()}
  arrays['condition'] = np.arange(len(specs), dtype=np.int32)
  return arrays, specs


# ---------------------------------------------------------------- preparation
def _standardize(inputs, weights):
  """Per-view mean and population std over the rows with weight 1 (StandardScaler)."""
  scale = {}
  for view, x in inputs.items():
    w = weights[view].astype(x.dtype)[:, None]
    count = jnp.maximum(jnp.sum(w), 1)
    mean = jnp.sum(w * x, 0, keepdims=True) / count
    std = jnp.sqrt(jnp.sum(w * (x - mean) ** 2, 0, keepdims=True) / count)
    scale[view] = (mean, jnp.where(std > 0, std, 1))
  return {view: (x - scale[view][0]) / scale[view][1] for view, x in inputs.items()}


def prepare(condition, raw, labels, *, config, method: str, order, num_classes: int):
  """One condition's `extra`: its mask, split, and scaled (and imputed) inputs `[N, d]`."""
  mask = {view: condition['mask'][:, index] for index, view in enumerate(order)}
  in_train = jnp.zeros(labels.shape, bool).at[condition['train_rows']].set(True)
  faithful = method == 'uimc' and config.uimc.faithful
  if faithful:  # the original scales all rows, test rows and missing values included
    weights = {view: jnp.ones(labels.shape, bool) for view in order}
  else:
    weights = {view: in_train & mask[view] for view in order}
  if method == 'zero':
    raw = impute.zeros(raw, mask)
  inputs = _standardize(raw, weights)
  extra = {'mask': condition['mask'], 'train_rows': condition['train_rows'],
           'test_rows': condition['test_rows'], 'condition': condition['condition']}
  train_mask = {view: mask[view] & in_train for view in order}
  if method == 'mean':
    inputs = impute.means(inputs, mask, impute.fit_means(inputs, train_mask))
  elif method == 'knn':
    inputs = impute.knn(inputs, mask, reference_inputs=inputs, reference_mask=train_mask,
                        k=config.knn.k)
  elif method == 'uimc':
    rows = condition['train_rows']
    extra['gaussians'] = distributions.class_gaussians(
        {view: inputs[view][rows] for view in order},
        {view: mask[view][rows] for view in order}, labels[rows],
        num_classes=num_classes, regularization=config.uimc.regularization,
        faithful_indexing=config.uimc.faithful)
  if method in MASKED:  # missing rows are never read: zero them
    extra['inputs'] = {view: jnp.where(mask[view][:, None], inputs[view], 0) for view in order}
    if method == 'uimc':  # each epoch's draws (uimc_epoch_start) and the rows per class
      extra['drawn'] = extra['inputs']
      extra['class_rows'] = condition['class_rows']
    if faithful:  # the code's fixed copies: every incomplete training row num_draws times
      extra.update(virtual_rows(condition, labels.shape[0], config.uimc.num_draws))
      extra['copy_key'] = jax.random.fold_in(jax.random.key(config.train.seed),
                                             condition['condition'])
  else:
    extra['inputs'] = inputs
    extra['mask'] = jnp.ones_like(condition['mask'])  # imputed: every view present
  return extra


def _gather(extra, rows, order):
  """A condition's prepared inputs `{view: [B, d]}` and presence mask `[M, B]` at `rows`."""
  return {view: extra['inputs'][view][rows] for view in order}, extra['mask'][rows].T


def _evidential_loss(state, params, inputs, labels, weight, kl_weight, *, fusion_mask=None,
                     view_weight=None):
  """The weighted mean over the batch of every view's evidential loss (times `view_weight`)
  plus that of their Dempster-Shafer fusion."""
  alpha, fused = _fused(state, params, inputs, fusion_mask)
  views = evidential.ce_loss(alpha, jnp.broadcast_to(labels, alpha.shape[:-1]),
                             kl_weight=kl_weight)
  if view_weight is not None:
    views = views * view_weight
  per_sample = jnp.sum(views, 0) + evidential.ce_loss(fused, labels, kl_weight=kl_weight)
  return jnp.sum(per_sample * weight) / jnp.maximum(jnp.sum(weight), 1)


def virtual_rows(condition, num_rows: int, copies: int) -> dict:
  """The original's expanded training set as virtual rows `copy * N + row`: complete training
  rows once (copy 0), incomplete ones `copies` times; the valid ones first, then padding."""
  rows = condition['train_rows']
  incomplete = ~jnp.all(condition['mask'][rows], axis=1)
  copy = jnp.arange(copies)
  valid = (copy[:, None] == 0) | incomplete[None, :]  # [copies, R]
  ids = (copy[:, None] * num_rows + rows[None, :]).reshape(-1)
  order = jnp.argsort(~valid.reshape(-1), stable=True)
  return {'virtual_rows': ids[order].astype(jnp.int32),
          'num_virtual': jnp.sum(valid).astype(jnp.int32)}


def faithful_epoch_rows(state):
  """This epoch's virtual rows: the valid ones in a random order, then the padding."""
  extra = state.extra
  size = extra['virtual_rows'].shape[0]
  score = jax.random.uniform(jax.random.fold_in(extra['copy_key'], state.epoch), (size,))
  score = jnp.where(jnp.arange(size) < extra['num_virtual'], score, 2.0)
  return extra['virtual_rows'][jnp.argsort(score)]


def faithful_train_step(state, batch, key, *, config):
  """The original's training step: a batch of the fixed copies (each missing view of copy c
  of row n drawn once, from its class's Gaussian, with the key (condition, n, c)); padding
  rows weigh 0 and a batch of padding only changes nothing."""
  del key
  order = tuple(config.data.modalities)
  extra = state.extra
  num_rows = extra['mask'].shape[0]
  virtual, labels = batch['index'], batch['label']
  rows, copy = virtual % num_rows, virtual // num_rows
  weight = batch['weight'] * (batch['position'] < extra['num_virtual']).astype(jnp.float32)
  given, present = _gather(extra, rows, order)
  inputs = {}
  for index, view in enumerate(order):
    mean, scale_tril, _ = extra['gaussians'][view]
    keys = jax.vmap(lambda row, c: jax.random.fold_in(jax.random.fold_in(
        jax.random.fold_in(extra['copy_key'], index), row), c))(rows, copy)
    noise = jax.vmap(lambda k: jax.random.normal(k, mean.shape[-1:]))(keys)
    drawn = mean[labels] + jnp.einsum('nde,ne->nd', scale_tril[labels], noise)
    inputs[view] = jnp.where(present[index][:, None], given[view], drawn)
  kl_weight = evidential.annealing_weight(state.epoch + 1, config.train.annealing_epochs)

  loss, grads = jax.value_and_grad(_evidential_loss, argnums=1)(
      state, state.params, inputs, labels, weight, kl_weight)
  updated = state.apply_gradients(grads)
  real = jnp.sum(weight) > 0
  return jax.tree.map(lambda new, old: jnp.where(real, new, old), updated, state), {'loss': loss}


# ---------------------------------------------------------------- model
def make_init(dims, order, num_classes: int, config, method: str):
  """`(key, extra) -> TrainState`: UIMC's per-view heads (torch-initialised), or CPM-Nets'
  decoders with every row's latent vector and its optimizer state in `extra`."""
  if method == 'cpm_nets':
    settings = config.cpm
    make = train.initializer(
        lambda: nn.CPMDecoders(dims, order, latent_dim=settings.latent_dim,
                               hidden=settings.hidden, dropout=settings.dropout,
                               rngs=nnx.Rngs(0)),
        optax.adam(settings.learning_rate), init_params=nn.xavier_uniform_init)

    def init(key, extra):
      num_rows = extra['mask'].shape[0]
      bound = (6.0 / (num_rows + settings.latent_dim)) ** 0.5  # the original's xavier_init
      latent = jax.random.uniform(jax.random.fold_in(key, 1), (num_rows, settings.latent_dim),
                                  minval=-bound, maxval=bound)
      extra = dict(extra, latent=latent,
                   latent_opt=optax.adam(settings.learning_rate).init(latent))
      return make(key).replace(extra=extra)
    return init
  tx = optax.chain(optax.add_decayed_weights(config.optim.weight_decay),
                   optax.adam(config.optim.learning_rate))
  if method == 'qmf_masks':
    build = lambda: nn.LateFusionNet(dims, order, num_classes, hidden=config.model.hidden,
                                     rngs=nnx.Rngs(0))
    make = train.initializer(build, tx, init_params=nn.torch_linear_init)

    def init(key, extra):
      history = ranking.init_history(extra['mask'].shape[0], len(order))
      return make(key).replace(extra=dict(extra, history=history))
    return init
  if method == 'masked_fusion':
    build = lambda: nn.MaskedFusionNet(dims, order, num_classes, hidden=config.model.hidden,
                                       rngs=nnx.Rngs(0))
  elif method == 'learned_imputer':
    build = lambda: nn.CrossViewImputer(dims, order, hidden=config.learned.hidden,
                                        rngs=nnx.Rngs(0))
    tx = optax.adam(config.learned.learning_rate)
  else:
    build = lambda: nn.MultiViewEvidential(
        dims, order, num_classes, hidden=config.model.hidden, evidence=config.model.evidence,
        hidden_activation=config.model.hidden_activation, rngs=nnx.Rngs(0))
  make = train.initializer(build, tx, init_params=nn.torch_linear_init)

  def init(key, extra):
    return make(key).replace(extra=extra)
  return init


def _fused(state, params, inputs, mask):
  """Per-view Dirichlet parameters `[M, B, K]` and their Dempster-Shafer fusion `[B, K]`."""
  model = state.model(params)
  alpha = model(inputs) + 1
  return alpha, dempster_shafer.fuse(alpha, mask)


# ---------------------------------------------------------------- step
def _reconstruction(state, params, latent, inputs, present, key=None):
  """CPM-Nets' reconstruction error of the present views, summed over rows and features."""
  model = state.model(params)
  outputs = model(latent, key=key)
  return sum(jnp.sum(jnp.where(present[index][:, None], (outputs[view] - inputs[view]) ** 2, 0))
             for index, view in enumerate(model.order))


def cpm_train_step(state, batch, key, *, config, num_classes: int):
  """One CPM-Nets epoch on the whole training split: `steps` Adam steps on the decoders
  (reconstruction), then `steps` on the training latents (reconstruction + lamb x the
  classification hinge)."""
  order = tuple(config.data.modalities)
  settings = config.cpm
  rows, labels = batch['index'], batch['label']
  inputs, present = _gather(state.extra, rows, order)

  def network_step(state, step_key):
    loss, grads = jax.value_and_grad(
        lambda params: _reconstruction(state, params, state.extra['latent'][rows], inputs,
                                       present, step_key))(state.params)
    return state.apply_gradients(grads), loss

  state, reconstruction = jax.lax.scan(network_step, state,
                                       jax.random.split(key, settings.steps))
  optimizer = optax.adam(settings.learning_rate)

  def latent_step(carry, step_key):
    latent, opt_state = carry

    def loss_fn(latent):
      mine = latent[rows]
      return (_reconstruction(state, state.params, mine, inputs, present, step_key) +
              settings.lamb * jnp.sum(cpm.classification_loss(mine, labels,
                                                              num_classes=num_classes)))
    loss, grads = jax.value_and_grad(loss_fn)(latent)
    updates, opt_state = optimizer.update(grads, opt_state, latent)
    return (optax.apply_updates(latent, updates), opt_state), loss

  (latent, opt_state), total = jax.lax.scan(
      latent_step, (state.extra['latent'], state.extra['latent_opt']),
      jax.random.split(jax.random.fold_in(key, 1), settings.steps))
  state = state.replace(extra=dict(state.extra, latent=latent, latent_opt=opt_state))
  return state, {'loss': total[-1], 'reconstruction': reconstruction[-1]}


def imputer_train_step(state, batch, key, *, config):
  """Reconstructs every present view from a random subset of the present views."""
  order = tuple(config.data.modalities)
  rows = batch['index']
  inputs, present = _gather(state.extra, rows, order)
  shown = nn.incomplete.present_subset(key, present, config.learned.keep)

  def loss_fn(params):
    predicted = state.model(params)(inputs, shown)
    errors = jnp.stack([jnp.mean((predicted[view] - inputs[view]) ** 2, -1) for view in order])
    weight = present * batch['weight'][None, :]
    return jnp.sum(errors * weight) / jnp.maximum(jnp.sum(weight), 1)

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads), {'loss': loss}


def impute_learned(state, extra, *, order):
  """One condition's inputs with every missing view predicted by its trained imputer."""
  inputs = state.model(state.params).impute(extra['inputs'], extra['mask'].T)
  return dict(extra, inputs={view: inputs[view] for view in order},
              mask=jnp.ones_like(extra['mask']))


def qmf_train_step(state, batch, key, *, config):
  """QMF with masks: the present views' cross-entropies, that of the energy-weighted fusion
  of the present views, and the ranking regulariser on each view's loss history."""
  del key
  order = tuple(config.data.modalities)
  rows, labels, weight = batch['index'], batch['label'], batch['weight']
  inputs, present = _gather(state.extra, rows, order)
  valid = present.astype(jnp.float32) * weight[None, :]
  history = state.extra['history']

  def loss_fn(params):
    logits, _ = state.model(params)(inputs)
    unimodal = optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.broadcast_to(labels, logits.shape[:-1]))
    updated = ranking.update_history(history, rows, unimodal * valid)
    confidence = energy.confidence(logits)
    ranks = jax.vmap(lambda c, h, m: ranking.ranking_loss(c, ranking.History(h), rows, mask=m))(
        confidence, updated.cumulative_loss, present)
    fused = optax.softmax_cross_entropy_with_integer_labels(energy.fuse(logits, present), labels)
    total = (jnp.sum(unimodal * valid) + jnp.sum(fused * weight)) / jnp.sum(weight)
    return total + config.qmf.rank_weight * jnp.sum(ranks), updated

  (loss, updated), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads)
  return state.replace(extra=dict(state.extra, history=updated)), {'loss': loss}


def masked_fusion_train_step(state, batch, key, *, config):
  """Cross-entropy of the mask-weighted fusion network."""
  del key
  order = tuple(config.data.modalities)
  rows = batch['index']
  inputs, present = _gather(state.extra, rows, order)

  def loss_fn(params):
    logits = state.model(params)(inputs, present)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
    return jnp.sum(losses * batch['weight']) / jnp.sum(batch['weight'])

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads), {'loss': loss}


def uimc_epoch_start(state, key, *, config, labels):
  """Draws every missing training view from its class's Gaussian, once per epoch (each
  training row is visited once per epoch, so this is a fresh draw per visit)."""
  order = tuple(config.data.modalities)
  extra = state.extra
  mask = {view: extra['mask'][:, index] for index, view in enumerate(order)}
  draws = distributions.sample_class_conditional(
      key, extra['inputs'], mask, labels, extra['gaussians'], num_draws=1,
      rows_by_class=extra['class_rows'])
  return state.replace(extra=dict(extra, drawn={view: draws[view][0] for view in order}))


def train_step(state, batch, key, *, config, method: str):
  """Evidential loss of every (present) view and of the fusion (UIMC: on this epoch's draws)."""
  order = tuple(config.data.modalities)
  rows, labels = batch['index'], batch['label']
  extra = state.extra
  inputs, present = _gather(extra, rows, order)  # present: [M, B]
  if method == 'uimc':  # this epoch's draw of every missing training view
    inputs = {view: extra['drawn'][view][rows] for view in order}
  masked = method == 'tmc_masks'  # missing views: no evidence in the fusion, no loss
  kl_weight = evidential.annealing_weight(state.epoch + 1, config.train.annealing_epochs)
  loss, grads = jax.value_and_grad(_evidential_loss, argnums=1)(
      state, state.params, inputs, labels, batch['weight'], kl_weight,
      fusion_mask=present if masked else None,
      view_weight=present.astype(jnp.float32) if masked else None)
  return state.apply_gradients(grads), {'loss': loss}


# ---------------------------------------------------------------- evaluation
def _aggregate(fused: jax.Array, how: str) -> jax.Array:
  """Class scores `[B, K]` from the fused opinions of the draws `[S, B, K]`."""
  num_classes = fused.shape[-1]
  if how == 'vote':  # the original: the most frequent argmax (ties: the lowest class)
    return jnp.sum(jax.nn.one_hot(jnp.argmax(fused, -1), num_classes), 0)
  probabilities = dempster_shafer.expected_probability(fused)
  if how == 'mean':
    return jnp.mean(probabilities, 0)
  _, uncertainty = dempster_shafer.opinion(fused)  # [S, B]
  confidence = 1 - uncertainty
  return jnp.sum(confidence[..., None] * probabilities, 0) / jnp.sum(confidence, 0)[..., None]


def _cpm_eval(state, all_labels, inputs, present, *, config, num_classes: int):
  """Fits the test rows' latents to their present views (decoders fixed, no dropout), then
  predicts the class whose training latents are most similar on average."""
  settings = config.cpm
  extra = state.extra
  optimizer = optax.adam(settings.learning_rate)
  latent = extra['latent'][extra['test_rows']]  # never updated in training: the initial draw

  def step(carry, _):
    latent, opt_state = carry
    grads = jax.grad(lambda h: _reconstruction(state, state.params, h, inputs, present))(latent)
    updates, opt_state = optimizer.update(grads, opt_state, latent)
    return (optax.apply_updates(latent, updates), opt_state), None

  (latent, _), _ = jax.lax.scan(step, (latent, optimizer.init(latent)), None,
                                length=settings.test_steps)
  train_rows = extra['train_rows']
  scores = cpm.class_mean_similarity(latent, extra['latent'][train_rows],
                                     all_labels[train_rows], num_classes=num_classes)
  return {'accuracy': metrics.accuracy(scores, all_labels[extra['test_rows']])}


def eval_step(state, batch, *, config, method: str, num_classes: int):
  """Test accuracy of one condition (its test rows and mask)."""
  order = tuple(config.data.modalities)
  extra = state.extra
  rows = extra['test_rows']
  labels = batch['label'][rows]
  inputs, present = _gather(extra, rows, order)
  if method == 'cpm_nets':
    return _cpm_eval(state, batch['label'], inputs, present, config=config,
                     num_classes=num_classes)
  if method == 'masked_fusion':
    logits = state.model(state.params)(inputs, present)
    return {'accuracy': metrics.accuracy(logits, labels)}
  if method == 'qmf_masks':
    logits, _ = state.model(state.params)(inputs)
    return {'accuracy': metrics.accuracy(energy.fuse(logits, present), labels)}
  if method != 'uimc':
    fusion_mask = present if method == 'tmc_masks' else None
    _, fused = _fused(state, state.params, inputs, fusion_mask)
    _, uncertainty = dempster_shafer.opinion(fused)
    return {'accuracy': metrics.accuracy(fused, labels), 'uncertainty': jnp.mean(uncertainty)}
  train_rows = extra['train_rows']
  mask = {view: present[index] for index, view in enumerate(order)}
  reference_mask = {view: extra['mask'][train_rows, index] for index, view in enumerate(order)}
  key = jax.random.fold_in(jax.random.key(config.eval.seed), extra['condition'])
  draws = distributions.sample_neighbours(
      key, inputs, mask, reference_inputs={view: extra['inputs'][view][train_rows]
                                           for view in order},
      reference_mask=reference_mask, k=config.uimc.k, num_draws=config.uimc.num_draws,
      regularization=config.uimc.regularization)
  if config.uimc.faithful:  # the original refits the scaling on the imputed test draws
    draws = {view: (x - x.mean((0, 1), keepdims=True)) / jnp.where(
        x.std((0, 1), keepdims=True) > 0, x.std((0, 1), keepdims=True), 1)
             for view, x in draws.items()}
  fused = jax.vmap(lambda one: _fused(state, state.params, one, None)[1])(draws)  # [S, B, K]
  scores = {f'accuracy_{how}': metrics.accuracy(_aggregate(fused, how), labels)
            for how in AGGREGATES}
  _, uncertainty = dempster_shafer.opinion(fused)
  how = 'vote' if config.uimc.faithful else config.uimc.aggregate
  return dict(scores, accuracy=scores[f'accuracy_{how}'], uncertainty=jnp.mean(uncertainty),
              accuracy_per_draw=jnp.mean(jax.vmap(metrics.accuracy, (0, None))(fused, labels)))


def check(config) -> None:
  """Validates the config before anything is written."""
  train.check_config(config)
  for method in config.methods:
    checks.lookup(METHODS, method, 'method')
  if not config.methods:
    raise ValueError('config.methods is empty; name at least one of ' + ', '.join(METHODS))
  if not config.missing.protocols:
    raise ValueError('config.missing.protocols is empty; name at least one of ' +
                     ', '.join(PROTOCOLS))
  checks.lookup(dict.fromkeys(AGGREGATES), config.uimc.aggregate, 'UIMC aggregate')
  if not config.missing.rates:
    raise ValueError('config.missing.rates is empty.')
  num_views = len(config.data.modalities)
  for protocol in config.missing.protocols:
    checks.lookup(PROTOCOLS, protocol, 'missing-data protocol')
    # Every sample keeps a view: entries and per-view deletion stop at (V - 1) / V.
    high = (num_views - 1) / num_views if protocol in ('cpm', 'per_view') else 1.0
    for rate in config.missing.rates:
      train.check_number(rate, f'config.missing.rates (protocol {protocol!r})', minimum=0,
                         maximum=high)
  train.check_number(config.missing.train_fraction, 'config.missing.train_fraction',
                     minimum=0, maximum=1, open_minimum=True)
  for name in ('num_draws', 'k'):
    train.check_integer(config.uimc[name], f'config.uimc.{name}', minimum=1)
  train.check_integer(config.knn.k, 'config.knn.k', minimum=1)
  train.check_number(config.uimc.regularization, 'config.uimc.regularization', minimum=0)
  train.check_integer(config.train.annealing_epochs, 'config.train.annealing_epochs', minimum=1)
  train.check_integer(config.eval.seeds_per_call, 'config.eval.seeds_per_call', minimum=1)
  train.check_number(config.qmf.rank_weight, 'config.qmf.rank_weight', minimum=0)
  train.check_integer(config.learned.num_epochs, 'config.learned.num_epochs', minimum=1)
  train.check_number(config.learned.keep, 'config.learned.keep', minimum=0, maximum=1,
                     open_minimum=True)
  train.check_number(config.learned.learning_rate, 'config.learned.learning_rate', minimum=0,
                     open_minimum=True)
  for name in ('latent_dim', 'hidden', 'num_epochs', 'steps', 'test_steps'):
    train.check_integer(config.cpm[name], f'config.cpm.{name}', minimum=1)
  train.check_number(config.cpm.learning_rate, 'config.cpm.learning_rate', minimum=0,
                     open_minimum=True)
  train.check_number(config.cpm.lamb, 'config.cpm.lamb', minimum=0)
  train.check_number(config.cpm.dropout, 'config.cpm.dropout', minimum=0, maximum=0.99)


# ---------------------------------------------------------------- train and evaluate
def train_and_evaluate(config, workdir) -> dict:
  """Trains every method on every (rate, seed) and returns the test accuracies `[R, S]`."""
  check(config)
  order = tuple(config.data.modalities)
  full = data.read(config.data.name, config.data.protocol, data_dir=config.data.data_dir,
                   manual_dir=config.data.manual_dir,
                   allow_download=config.data.allow_download)['full']
  raw = {view: jnp.asarray(full['inputs'][view], jnp.float32) for view in order}
  labels = jnp.asarray(full['label'], jnp.int32)
  num_classes = int(labels.max()) + 1
  num_rows = labels.shape[0]
  conditions, specs = make_conditions(config, num_rows, len(order))
  largest = int(np.bincount(np.asarray(labels)).max())
  conditions['class_rows'] = np.stack([
      distributions.class_rows(labels, num_classes, rows=rows, size=largest)
      for rows in conditions['train_rows']])
  shape = (len(config.missing.protocols), len(config.missing.rates), config.train.num_seeds)
  num_seeds = config.train.num_seeds
  writer = train.MetricWriter(workdir)
  writer.start(config.to_dict(), resumable=RESUMABLE)
  loop = dict(config.train.to_dict(), num_seeds=len(specs))
  dims = {view: raw[view].shape[1] for view in order}
  results = {'dataset': config.data.name, 'order': list(order), 'num_classes': num_classes,
             'protocols': list(config.missing.protocols),
             'rates': [float(rate) for rate in config.missing.rates],
             'seeds': [config.train.seed + s for s in range(num_seeds)], 'specs': specs,
             'epochs': config.train.num_epochs, 'methods': {}}
  for method in config.methods:
    prepare_all = jax.jit(jax.vmap(functools.partial(
        prepare, raw=raw, labels=labels, config=config, method=method, order=order,
        num_classes=num_classes)))
    extra = prepare_all({name: jnp.asarray(value) for name, value in conditions.items()})
    if method == 'learned':  # first the imputer, on the training rows only
      imputer = train.fit(
          make_init(dims, order, num_classes, config, 'learned_imputer'),
          functools.partial(imputer_train_step, config=config), {'label': labels},
          config=dict(loop, num_epochs=config.learned.num_epochs), workdir=workdir,
          writer=writer, name='learned_imputer', seed_data=extra,
          epoch_rows=lambda state: state.extra['train_rows'])
      extra = jax.jit(jax.vmap(functools.partial(impute_learned, order=order)))(
          imputer.state, extra)
    if method == 'cpm_nets':  # full-batch epochs of its own
      step = functools.partial(cpm_train_step, config=config, num_classes=num_classes)
      settings = dict(loop, num_epochs=config.cpm.num_epochs,
                      batch_size=int(conditions['train_rows'].shape[1]))
    elif method == 'masked_fusion':
      step = functools.partial(masked_fusion_train_step, config=config)
      settings = loop
    elif method == 'qmf_masks':
      step = functools.partial(qmf_train_step, config=config)
      settings = loop
    else:
      step = functools.partial(train_step, config=config, method=method)
      settings = loop
    epoch_start = (functools.partial(uimc_epoch_start, config=config, labels=labels)
                   if method == 'uimc' else None)
    train_data, epoch_rows = {'label': labels}, lambda state: state.extra['train_rows']
    if method == 'uimc' and config.uimc.faithful:  # the code's fixed copies, its own order
      step = functools.partial(faithful_train_step, config=config)
      settings = dict(loop, shuffle=False)
      train_data = {'label': jnp.tile(labels, config.uimc.num_draws)}
      epoch_rows, epoch_start = faithful_epoch_rows, None
    result = train.fit(
        make_init(dims, order, num_classes, config, method), step, train_data,
        config=settings, workdir=workdir, writer=writer, name=method, seed_data=extra,
        epoch_rows=epoch_rows, epoch_start=epoch_start)
    scores = train.evaluate(functools.partial(eval_step, config=config, method=method,
                                              num_classes=num_classes),
                            result.state, {'label': labels},
                            seeds_per_call=config.eval.seeds_per_call)
    results['methods'][method] = {
        'epochs': settings['num_epochs'], 'start_epoch': result.start_epoch,
        'train_compile_s': result.compile_s,
        'train_run_s': result.run_s,
        'test': {name: value.reshape(shape).tolist() for name, value in scores.items()}}
    accuracy = scores['accuracy'].reshape(shape).mean(-1)
    writer.write(config.train.num_epochs, {
        f'{method}/test/{protocol}/rate_{rate:g}/accuracy': accuracy[p, r]
        for p, protocol in enumerate(results['protocols'])
        for r, rate in enumerate(results['rates'])})
  writer.close()
  # A resumed run continues the method it stopped in; those after it start from 0.
  results['start_epoch'] = max(outcome['start_epoch'] for outcome in results['methods'].values())
  train.write_results(workdir, table=make_table(results), results=results,
                      figures={'accuracy.png': make_plot(results)})
  return results


# ---------------------------------------------------------------- report
def make_table(results) -> str:
  """Test accuracy (%) per protocol, method and missing rate: mean ± 95% t-interval."""
  rates = results['rates']
  lines = [f'{results["dataset"]}: test accuracy (%), masks on training and test rows, '
           f'{len(results["seeds"])} seeds (mean ± 95% t-interval); training seconds for the '
           'whole sweep of every protocol (compilation excluded).']
  for index, protocol in enumerate(results['protocols']):
    lines += ['', f'Protocol {protocol!r}: the rate is the {PROTOCOLS[protocol]} rate '
              f'({missing.MEANINGS[PROTOCOLS[protocol]]}).', '',
              '| method | ' + ' | '.join(f'rate {rate:g}' for rate in rates) +
              ' | epochs | train s |', '|---|' + '---|' * (len(rates) + 2)]
    for method, outcome in results['methods'].items():
      accuracy = 100 * np.asarray(outcome['test']['accuracy'])[index]
      cells = [report.mean_interval(row) for row in accuracy]
      lines.append(f'| {METHODS[method]} | ' + ' | '.join(cells) +
                   f' | {outcome["epochs"]} | {outcome["train_run_s"]:.1f} |')
      if method == 'uimc':
        for how in AGGREGATES:
          values = 100 * np.asarray(outcome['test'][f'accuracy_{how}'])[index]
          cells = [report.mean_interval(row) for row in values]
          lines.append(f'| &nbsp;&nbsp;UIMC, draws combined by {how} | ' +
                       ' | '.join(cells) + ' | | |')
  return '\n'.join(lines)


def make_plot(results):
  """Accuracy against the rate per method, one panel per protocol (shared y-range), mean and
  95% t-interval over seeds."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  rates = np.asarray(results['rates'])
  protocols = results['protocols']
  figure = Figure(figsize=(4.5 * len(protocols) + 1, 3.8), dpi=120)
  axes = np.atleast_1d(figure.subplots(1, len(protocols), sharey=True))
  for index, (axis, protocol) in enumerate(zip(axes, protocols)):
    for method, outcome in results['methods'].items():
      accuracy = 100 * np.asarray(outcome['test']['accuracy'])[index]
      intervals = [report.interval(row) for row in accuracy]
      means = [mean for mean, _ in intervals]
      halves = [0 if math.isnan(half) else half for _, half in intervals]
      axis.errorbar(rates, means, yerr=halves, marker='o', capsize=3, label=METHODS[method])
    axis.set_xlabel(f'{protocol}: {PROTOCOLS[protocol]} rate')
    axis.set_title(missing.MEANINGS[PROTOCOLS[protocol]], fontsize=8)
  axes[0].set_ylabel('test accuracy (%)')
  axes[0].legend(fontsize=6)
  figure.suptitle(f'{results["dataset"]}, mean ± 95% interval over {len(results["seeds"])} '
                  'seeds', fontsize=9)
  figure.tight_layout()
  return figure


if __name__ == '__main__':
  train.run_experiment(train_and_evaluate)
