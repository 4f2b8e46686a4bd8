"""Cross-view retrieval with shuffled training pairs: InfoNCE, hinge, RINCE and NCR co-teaching.

Protocol: Handwritten's pix and fou views (`lqmm.data.load`, stratified 1400 / 200 / 400,
standardised on the training split) are the two modalities; the i-th pix row and the i-th fou
row are a true pair. For each noise rate r, `int(r N)` random training pairs have their fou rows
permuted among themselves (NCR's `data.py` scheme; a pair that keeps its own row by chance stays
clean), with keys `fold_in(key(noise.seed), 1000 r)`; the validation and test pairs stay clean.
Every method trains the same dual encoder (per view: Linear-ReLU layers of `model.hidden`, a
Linear to `model.embedding`, L2 normalisation; cosine scores within a batch), `config.train
.num_seeds` seeds together with `lqmm.train.fit`, batches of 128 (the last partial batch
dropped, as a contrastive batch needs full rows), Adam:

- `info_nce`: symmetric InfoNCE (`lqmm.losses.matching.info_nce`), temperature 0.1.
- `hinge`: VSE++'s hinge with the hardest negative (`vse_hinge_loss`), margin 0.2.
- `rince`: symmetric RINCE (`robust_info_nce`), q 0.5, lam 0.01, temperature 0.1.
- `ncr`: NCR (Huang et al. 2021) on the shared loop: two dual encoders; `warmup_epochs` of the
  mean-negative hinge; then, before every epoch, each network's per-pair loss (NCR's
  `eval_loss`: the mean hinge costs of the pair, here against every training pair rather than
  the 128 of a batch) is split by `lqmm.denoise.clean_probability` / `split_clean`, and each
  network trains on the other's split: clean pairs with the rectified label
  `p + (1 - p) prediction` (`rectify_labels`), noisy pairs (from half the epochs on) with the
  two networks' mean prediction, both through the hardest-negative hinge with exponential
  soft margins. Test scores are the mean of the two networks' (NCR's evaluation).

Scores: R@1/5/10 image-to-text (pix query, fou gallery) and back on the 400 clean test pairs,
rsum (`lqmm.metrics.retrieval_recall`), mean +- 95% interval over seeds; and, for every method,
how well its final per-pair training loss separates the shuffled pairs: the GMM clean split's
precision and recall against the true clean pairs (NCR: network A's split).

    python -m experiments.ncr_handwritten.train \
        --config=experiments/ncr_handwritten/configs/default.py --workdir=$PWD/workdir/ncr
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm import checks
from lqmm import data
from lqmm import denoise
from lqmm import metrics
from lqmm import nn
from lqmm import train
from lqmm.bench import report
from lqmm.losses import matching

# ---------------------------------------------------------------- names
METHODS = {'info_nce': 'InfoNCE', 'hinge': 'VSE++ hinge (hardest negative)',
           'rince': 'RINCE', 'ncr': 'NCR co-teaching'}
RESUMABLE = ('train.stop_after_epochs',)
KS = (1, 5, 10)


# ---------------------------------------------------------------- data
def shuffle_pairs(second: np.ndarray, rate: float, key) -> tuple[np.ndarray, np.ndarray]:
  """NCR's noise: `int(rate N)` random rows of the second view permuted among themselves.

  Returns the noisy second view and the source row of every row (`source[i] != i`: shuffled).
  """
  count = second.shape[0]
  pick_key, permute_key = jax.random.split(key)
  chosen = np.asarray(jax.random.permutation(pick_key, count))[:int(rate * count)]
  source = np.arange(count)
  source[chosen] = chosen[np.asarray(jax.random.permutation(permute_key, chosen.size))]
  return second[source], source


# ---------------------------------------------------------------- model
class DualEncoders(nnx.Module):
  """`copies` dual encoders: per view Linear-ReLU layers, a Linear, L2 normalisation."""

  def __init__(self, dims: dict, order, *, hidden, embedding: int, copies: int,
               rngs: nnx.Rngs):
    self.order = tuple(order)
    self.towers = nnx.List([
        nnx.List([nnx.List([nn.torch_linear(a, b, rngs=rngs) for a, b in zip(w, w[1:])])
                  for w in ((dims[view], *hidden, embedding) for view in self.order)])
        for _ in range(copies)])

  def __call__(self, inputs) -> jax.Array:
    """`[copies, 2, B, E]` unit-norm embeddings of the two views."""
    out = []
    for towers in self.towers:
      views = []
      for view, layers in zip(self.order, towers):
        x = inputs[view]
        for index, layer in enumerate(layers):
          x = layer(x)
          if index < len(layers) - 1:
            x = jax.nn.relu(x)
        views.append(x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12))
      out.append(jnp.stack(views))
    return jnp.stack(out)


def scores_of(state, params, inputs) -> jax.Array:
  """`[copies, B, B]` cosine scores, first view's rows against the second view's columns."""
  embeddings = state.model(params)(inputs)
  return jnp.einsum('cie,cje->cij', embeddings[:, 0], embeddings[:, 1])


def make_init(dims, order, config, method: str, num_rows: int):
  copies = 2 if method == 'ncr' else 1
  extra = {'epoch': jnp.int32(-1), 'probability': jnp.ones((copies, num_rows)),
           'clean': jnp.ones((copies, num_rows), bool)}
  return train.initializer(
      lambda: DualEncoders(dims, order, hidden=config.model.hidden,
                           embedding=config.model.embedding, copies=copies,
                           rngs=nnx.Rngs(0)),
      optax.adam(config.optim.learning_rate), init_params=nn.torch_linear_init, extra=extra)


# ---------------------------------------------------------------- losses
def method_loss(method: str, scores: jax.Array, config) -> jax.Array:
  """The batch loss of a single-network method from its `[B, B]` scores."""
  settings = config.contrastive
  if method == 'info_nce':
    forward = matching.info_nce(scores, temperature=settings.temperature)
    backward = matching.info_nce(scores.T, temperature=settings.temperature)
    return (jnp.mean(forward) + jnp.mean(backward)) / 2
  if method == 'rince':
    kwargs = dict(q=settings.q, lam=settings.lam, temperature=settings.temperature)
    return (jnp.mean(matching.robust_info_nce(scores, **kwargs))
            + jnp.mean(matching.robust_info_nce(scores.T, **kwargs))) / 2
  return jnp.mean(matching.vse_hinge_loss(scores, margin=config.ncr.margin))


def ncr_loss(scores: jax.Array, extra, rows, config) -> jax.Array:
  """NCR's co-teaching loss of both networks on one batch (`scores` `[2, B, B]`)."""
  settings = config.ncr
  warmup = jnp.sum(jax.vmap(lambda s: jnp.mean(matching.vse_hinge_loss(
      s, margin=settings.margin, negatives='mean')))(scores))
  predictions = jax.lax.stop_gradient(jax.vmap(functools.partial(
      matching.correspondence_scores, margin=settings.margin))(scores))      # [2, B]
  unlabeled_on = extra['epoch'] >= config.train.num_epochs // 2
  total = 0.0
  for net, other in ((0, 1), (1, 0)):
    # Each network's split was made from the other network's losses (co_teaching_split).
    probability = extra['probability'][net][rows]
    clean = extra['clean'][net][rows]
    labeled = matching.rectify_labels(probability, jnp.ones_like(probability),
                                      predictions[net])
    unlabeled = (predictions[net] + predictions[other]) / 2
    targets = jnp.where(clean, labeled, unlabeled)
    weights = jnp.where(clean, 1.0, jnp.where(unlabeled_on, 1.0, 0.0))
    per_pair = matching.vse_hinge_loss(scores[net], margin=settings.margin, labels=targets,
                                       soft_margin=settings.soft_margin)
    total = total + jnp.sum(weights * per_pair) / rows.shape[0]
  return jnp.where(extra['epoch'] < settings.warmup_epochs, warmup, total)


def train_step(state, batch, key, *, config, method: str):
  del key

  def loss_fn(params):
    scores = scores_of(state, params, batch['inputs'])
    if method == 'ncr':
      return ncr_loss(scores, state.extra, batch['index'], config)
    return method_loss(method, scores[0], config)

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads), {'loss': loss}


def pair_losses(state, inputs, margin) -> jax.Array:
  """`[copies, N]` NCR's per-pair `eval_loss` (mean hinge costs) against every other pair."""
  scores = scores_of(state, state.params, inputs)
  return jax.vmap(lambda s: matching.vse_hinge_loss(s, margin=margin, negatives='mean'))(scores)


def ncr_epoch_start(state, key, *, inputs, config):
  """Advances the epoch; after the warm-up, each network's clean split for the other."""
  del key
  epoch = state.extra['epoch'] + 1
  losses = pair_losses(state, inputs, config.ncr.margin)
  probability, clean = denoise.co_teaching_split(losses, threshold=config.ncr.p_threshold)
  active = epoch >= config.ncr.warmup_epochs
  extra = dict(state.extra, epoch=epoch,
               probability=jnp.where(active, probability, state.extra['probability']),
               clean=jnp.where(active, clean, state.extra['clean']))
  return state.replace(extra=extra)


def epoch_counter(state, key):
  del key
  return state.replace(extra=dict(state.extra, epoch=state.extra['epoch'] + 1))


# ---------------------------------------------------------------- evaluation
def evaluate(states, splits, clean_truth, config) -> dict:
  """Retrieval on the clean test pairs and the split quality on the training pairs, per seed."""
  test_scores = jax.jit(jax.vmap(lambda state: jnp.mean(
      scores_of(state, state.params, splits.test['inputs']), axis=0)))(states)
  losses = jax.jit(jax.vmap(lambda state: pair_losses(
      state, splits.train['inputs'], config.ncr.margin)[0]))(states)
  out = {name: [] for name in ('precision', 'recall')}
  for seed in range(test_scores.shape[0]):
    result = metrics.retrieval_recall(np.asarray(test_scores[seed]), ks=KS)
    for name, value in result.items():
      out.setdefault(name, []).append(value)
    split = np.asarray(denoise.split_clean(denoise.clean_probability(losses[seed]),
                                           config.ncr.p_threshold))
    hits = np.sum(split & clean_truth)
    out['precision'].append(float(100 * hits / max(split.sum(), 1)))
    out['recall'].append(float(100 * hits / max(clean_truth.sum(), 1)))
  return out


# ---------------------------------------------------------------- config check
def check(config) -> None:
  """Validates the config before anything is written."""
  train.check_config(config)
  if tuple(config.data.modalities) != tuple(dict.fromkeys(config.data.modalities)) or len(
      config.data.modalities) != 2:
    raise ValueError(f'config.data.modalities must name two different views (the pair); got '
                     f'{config.data.modalities}.')
  if not config.methods:
    raise ValueError('config.methods is empty; name at least one of ' + ', '.join(METHODS))
  for method in config.methods:
    checks.lookup(METHODS, method, 'method')
  if not config.noise.rates:
    raise ValueError('config.noise.rates is empty.')
  train.check_numbers(config.noise.rates, 'config.noise.rates', minimum=0.0, maximum=0.99)
  train.check_integer(config.noise.seed, 'config.noise.seed', minimum=0)
  train.check_integer(config.model.embedding, 'config.model.embedding', minimum=1)
  for width in config.model.hidden:
    train.check_integer(width, 'config.model.hidden', minimum=1)
  train.check_number(config.optim.learning_rate, 'config.optim.learning_rate', minimum=0,
                     open_minimum=True)
  for name in ('temperature', 'lam', 'q'):
    train.check_number(config.contrastive[name], f'config.contrastive.{name}', minimum=0,
                       maximum=None if name == 'temperature' else 1.0, open_minimum=True)
  train.check_number(config.ncr.margin, 'config.ncr.margin', minimum=0, open_minimum=True)
  train.check_number(config.ncr.p_threshold, 'config.ncr.p_threshold', minimum=0, maximum=1)
  checks.lookup(matching.SOFT_MARGINS, config.ncr.soft_margin, 'config.ncr.soft_margin')
  train.check_integer(config.ncr.warmup_epochs, 'config.ncr.warmup_epochs', minimum=0)
  if not config.train.drop_remainder:
    raise ValueError('config.train.drop_remainder must be True: a contrastive batch needs '
                     'every row to be a real pair.')


# ---------------------------------------------------------------- train and evaluate
def train_and_evaluate(config, workdir) -> dict:
  """Every method at every noise rate, `num_seeds` seeds each; returns the test results."""
  check(config)
  splits = data.load_from(config.data)
  first, second = splits.order
  writer = train.MetricWriter(workdir)
  writer.start(config.to_dict(), resumable=RESUMABLE)
  results = {'dataset': splits.name, 'order': list(splits.order), 'sizes': splits.sizes,
             'num_seeds': config.train.num_seeds, 'epochs': config.train.num_epochs,
             'rates': [float(rate) for rate in config.noise.rates], 'runs': {}}
  for rate in config.noise.rates:
    key = jax.random.fold_in(jax.random.key(config.noise.seed), int(round(1000 * rate)))
    noisy, source = shuffle_pairs(np.asarray(splits.train['inputs'][second]), rate, key)
    clean_truth = source == np.arange(source.size)
    train_data = dict(splits.train, inputs=dict(splits.train['inputs'], **{second: noisy}))
    inputs = {view: jnp.asarray(value) for view, value in train_data['inputs'].items()}
    for method in config.methods:
      name = f'{method}_rate{rate:g}'
      init = make_init(splits.dims, splits.order, config, method, source.size)
      start = (functools.partial(ncr_epoch_start, inputs=inputs, config=config)
               if method == 'ncr' else epoch_counter)
      fitted = train.fit(init, functools.partial(train_step, config=config, method=method),
                         train_data, config=config.train, workdir=workdir, writer=writer,
                         name=name, epoch_start=start)
      outcome = evaluate(fitted.state, splits, clean_truth, config)
      outcome.update({'shuffled': int((~clean_truth).sum()),
                      'train_compile_s': fitted.compile_s, 'train_run_s': fitted.run_s})
      results['runs'][name] = outcome
      writer.write(config.train.num_epochs, {f'{name}/rsum': float(np.mean(outcome['rsum']))})
  writer.close()
  train.write_results(workdir, table=make_table(results), results=results)
  return results


# ---------------------------------------------------------------- report
def make_table(results) -> str:
  first, second = results['order']
  lines = [f'Cross-view retrieval on {results["dataset"]} ({first} <-> {second}), '
           f'{results["sizes"]["test"]} clean test pairs, {results["num_seeds"]} seeds, '
           f'{results["epochs"]} epochs; mean ± 95% CI over seeds. i2t: {first} queries; '
           'split precision / recall: the GMM clean split of the final per-pair training loss '
           'against the unshuffled pairs.', '',
           '| shuffled | method | i2t R@1 | i2t R@5 | i2t R@10 | t2i R@1 | t2i R@5 | t2i R@10 '
           '| rsum | split precision | split recall |', '|' + '---|' * 11]
  for name, outcome in results['runs'].items():
    method, rate = name.rsplit('_rate', 1)
    cells = [report.mean_interval(outcome[f'{direction}_r{k}'], 1)
             for direction in ('i2t', 't2i') for k in KS]
    lines.append(f'| {float(rate):.0%} | {METHODS[method]} | ' + ' | '.join(cells) + ' | '
                 f'{report.mean_interval(outcome["rsum"], 1)} | '
                 f'{report.mean_interval(outcome["precision"], 1)} | '
                 f'{report.mean_interval(outcome["recall"], 1)} |')
  return '\n'.join(lines)


if __name__ == '__main__':
  train.run_experiment(train_and_evaluate)
