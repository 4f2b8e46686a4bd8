"""Methods x seeds on one data set, through the one training loop, scored by a suite.

`run(config, workdir)` is what `python -m lqmm.bench` calls. For every method of
`config.methods`, `config.train.num_seeds` seeds train together through `lqmm.train.fit` (seeds
under `jax.vmap`, epochs under `lax.scan`, checkpoints per method in the workdir, metrics in
`metrics.jsonl` and TensorBoard); every `config.train.eval_every` epochs each seed scores its
validation split and the best parameters are kept (never the test split). The suite then scores
the kept parameters on the test split and writes the report:

- `fusion` (`lqmm.bench.fusion_suite`): late-fusion rules under clean, noisy, missing and
  quality-varying test data (`lqmm.bench.conditions`); `results.md`, `results.csv`,
  `robustness.png`.
- `imbalance` (`lqmm.bench.imbalance_suite`): balanced-learning methods, each modality also
  trained alone as the reference of the linear-probe gap; `results.md`, `results.csv`,
  `imbalance.png`.

The grid across processes (fusion suite). Its units are the methods, each with one of
`config.seed_blocks` contiguous blocks of its seeds (default 1: all seeds together). With
`$LQMM_SHARD_COUNT` = S independent processes (`python -m lqmm.launch --grid --processes=S --
python -m lqmm.bench ...`; on other hosts set `$LQMM_SHARD_INDEX` and `$LQMM_SHARD_COUNT`
yourself, the workdir shared), process i trains and scores every S-th unit. Each unit has its
own folder `units/<method>_seeds_<lo>-<hi>` (checkpoints, metrics, `result.pkl`; a rerun skips
finished units and resumes the others). Shard 0 then waits for every unit (at most
`config.grid_wait_s`), concatenates each method's seed blocks and writes the one report. Seed s
keeps its key wherever it trains, so the merged table is the unsplit run's, up to the
float round-off of vmapping another number of seeds.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm import checks
from lqmm import data
from lqmm import nn
from lqmm import train
from lqmm.bench import conditions as conditions_lib
from lqmm.bench import fusion_suite
from lqmm.bench import imbalance_suite
from lqmm.bench import methods as methods_lib
from lqmm.bench import report

SUITES = {'fusion': fusion_suite, 'imbalance': imbalance_suite}
OPTIMIZERS = ('adam', 'sgd')
#: What a rerun in the same workdir may change: the test conditions and the report.
RESUMABLE = ('eval', 'train.stop_after_epochs', 'train.num_devices', 'seed_blocks',
             'grid_wait_s')


class MethodResult(NamedTuple):
  """One method's per-seed outcome.

  Attributes:
    scores: the suite's test scores (`{condition: {metric: [S]}}` for `fusion`,
      `{metric: [S, ...]}` for `imbalance`).
    best_epoch: i32[S], the epoch of the kept parameters.
    history: `lqmm.train.FitResult.history` (per-epoch training metrics, validation metrics).
    compile_s: seconds of compilation.
    run_s: seconds of training, all seeds together.
  """
  scores: Any
  best_epoch: np.ndarray
  history: dict[str, np.ndarray]
  compile_s: float
  run_s: float


def make_optimizer(config) -> optax.GradientTransformation:
  """`config.optim`: Adam or SGD (momentum 0.9) with coupled L2 weight decay."""
  name = checks.lookup({name: name for name in OPTIMIZERS}, config.name, 'optimizer')
  base = (optax.sgd(config.learning_rate, momentum=0.9) if name == 'sgd'
          else optax.adam(config.learning_rate))
  return optax.chain(optax.add_decayed_weights(config.weight_decay), base)


def resolve(suite: str, name: str, kwargs: Mapping[str, Any] | None = None
            ) -> methods_lib.Method:
  """`METHODS[name](**kwargs)` of a suite; `alone:<index>` (imbalance) trains one modality."""
  module = checks.lookup(SUITES, suite, 'suite')
  if suite == 'imbalance' and name.startswith('alone:'):
    return imbalance_suite.alone(int(name.split(':', 1)[1]))
  factory = checks.lookup(module.METHODS, name, f'{suite} method')
  return factory(**dict(kwargs or {}))


def _device_splits(splits: data.Splits) -> dict:
  """The training and validation inputs and labels as device arrays (for the hooks)."""
  return {split: {'inputs': jax.tree.map(jnp.asarray, getattr(splits, split)['inputs']),
                  'label': jnp.asarray(getattr(splits, split)['label'])}
          for split in ('train', 'validation')}


def train_method(suite: str, method: methods_lib.Method, splits: data.Splits, config, *,
                 workdir=None, writer=None, name: str | None = None,
                 teachers: jax.Array | None = None, progress: bool = True
                 ) -> train.FitResult:
  """Trains `config.train.num_seeds` seeds of `method` on `splits` with `lqmm.train.fit`.

  Args:
    suite: 'fusion' or 'imbalance' (which network and validation metric).
    method: the method.
    splits: the data.
    config: the harness config (`model`, `optim`, `train` sections are read).
    workdir: checkpoints go to `<workdir>/checkpoints/<name>` (None: no checkpoints).
    writer: the metric writer (records prefixed `<name>/`).
    name: the method's name in logs and checkpoints.
    teachers: `[S, M, N, D]` unimodal teachers' features for methods with `hooks.teachers`.
    progress: show the progress bar.

  Returns:
    The `lqmm.train.FitResult`.
  """
  module = SUITES[suite]
  order = splits.order
  if method.hooks.teachers and teachers is None:
    raise ValueError('this method distils from unimodal teachers: pass teachers '
                     '[num_seeds, M, N, D] (lqmm.bench.run computes them from the alone runs).')
  graphdef, abstract = nnx.split(
      nnx.eval_shape(lambda: module.make_network(splits, config, method, jax.random.key(0))),
      nnx.Param)
  base = make_optimizer(config.optim)
  info = methods_lib.Info(len(order), splits.num_classes, splits.sizes['train'],
                          features=config.model.get('features'))

  def init(key, seed_teachers=None):
    # `key` is fold_in(seed_key, 0): the parameters draw from it directly (the stream the
    # harness has always used, so the fusion suite's numbers are those of its earlier loop).
    if method.network.get('own_init'):   # modules with their own initialisers (MBT's)
      params = nnx.state(module.make_network(splits, config, method, key), nnx.Param)
    else:
      params = nn.torch_linear_init(abstract, key=key)
    tx = base
    if method.transform is not None:
      tx = optax.chain(method.transform(abstract, order, jax.random.fold_in(key, 1)), base)
    extra = (() if method.hooks.init is None
             else method.hooks.init(info._replace(teachers=seed_teachers)))
    return train.TrainState.create(params=params, tx=tx, graphdef=graphdef, extra=extra)

  device_splits = _device_splits(splits)

  def epoch_start(state, key):
    epoch_data = module.epoch_data(state.model(), device_splits, method)
    return state.replace(extra=method.hooks.epoch_start(state.extra, epoch_data, state.epoch,
                                                        key))

  def epoch_rows(state):
    return method.hooks.epoch_rows(state.extra)

  train_data = {key: splits.train[key] for key in ('inputs', 'mask', 'label')}
  return train.fit(
      init, methods_lib.make_train_step(method, order), train_data, config=config.train,
      workdir=workdir, eval_step=module.make_eval_step(method, device_splits),
      validation_data=splits.validation,
      epoch_start=None if method.hooks.epoch_start is None else epoch_start,
      epoch_rows=None if method.hooks.epoch_rows is None else epoch_rows, writer=writer,
      name=None if name is None else name.replace(':', '_'),
      seed_data=teachers if method.hooks.teachers else None, progress=progress)


def check(config) -> None:
  """Validates a harness config before anything is written."""
  settings = train.check_config(config)
  if not settings.select:
    raise ValueError('config.train.select must name the validation metric that picks the kept '
                     "parameters (e.g. ('accuracy',)); the harness never scores the last epoch "
                     'blindly.')
  if not settings.drop_remainder:
    raise ValueError('config.train.drop_remainder must be True: the methods\' losses average '
                     'over the batch and do not read the weights of padded rows.')
  module = checks.lookup(SUITES, config.suite, 'suite')
  train.check_integer(config.get('seed_blocks', 1), 'config.seed_blocks', minimum=1)
  train.check_number(config.get('grid_wait_s', 1.0), 'config.grid_wait_s', minimum=0.0,
                     open_minimum=True)
  shards = train.grid_shard()[1]
  if config.suite != 'fusion' and (shards > 1 or config.get('seed_blocks', 1) > 1):
    raise ValueError('A grid split ($LQMM_SHARD_COUNT > 1 or config.seed_blocks > 1) runs the '
                     "fusion suite only: the imbalance suite's methods need its alone runs "
                     'first.')
  if not config.methods:
    raise ValueError('config.methods must name at least one method; valid names: '
                     f'{", ".join(sorted(module.METHODS))}.')
  for name in config.method_kwargs:
    checks.lookup(module.METHODS, name, f'{config.suite} method (in config.method_kwargs)')
  kwargs = config.method_kwargs.to_dict()
  for name in config.methods:  # builds every method now: a bad argument fails before training
    try:
      resolve(config.suite, name, kwargs.get(name))
    except TypeError as error:
      raise TypeError(f'config.method_kwargs.{name}: {error}') from None
  checks.lookup({name: name for name in OPTIMIZERS}, config.optim.name, 'optimizer')
  train.check_number(config.optim.learning_rate, 'config.optim.learning_rate', minimum=0.0,
                     open_minimum=True)
  train.check_number(config.optim.weight_decay, 'config.optim.weight_decay', minimum=0.0)
  if config.suite == 'fusion':
    for key in ('noise_stds', 'quality_stds'):
      train.check_numbers(config.eval[key], f'config.eval.{key}', minimum=0.0)
    train.check_numbers(config.eval.missing_rates, 'config.eval.missing_rates', minimum=0.0,
                        maximum=1.0)
    for protocol in config.eval.get('protocols', ()):
      checks.lookup(conditions_lib.PROTOCOLS, protocol, 'missing-data protocol')
    train.check_numbers(config.eval.get('protocol_rates', ()), 'config.eval.protocol_rates',
                        minimum=0.0, maximum=1.0)
    train.check_numbers(config.eval.get('protocol_noise_stds', ()),
                        'config.eval.protocol_noise_stds', minimum=0.0)
    train.check_numbers(config.eval.get('conflict_fractions', ()),
                        'config.eval.conflict_fractions', minimum=0.0, maximum=1.0)
    train.check_number(config.eval.get('conflict_noise_std', 0.5),
                       'config.eval.conflict_noise_std', minimum=0.0)
    train.check_number(config.eval.get('conflict_noise_fraction', 0.1),
                       'config.eval.conflict_noise_fraction', minimum=0.0, maximum=1.0)
    for key in ('noise_combination_stds', 'noise_sample_stds'):
      train.check_numbers(config.eval.get(key, ()), f'config.eval.{key}', minimum=0.0)
    if config.eval.get('noise_combination_views') is not None:
      train.check_integer(config.eval.noise_combination_views,
                          'config.eval.noise_combination_views', minimum=1)
    train.check_number(config.eval.get('noise_sample_fraction', 0.5),
                       'config.eval.noise_sample_fraction', minimum=0.0, maximum=1.0)
  else:
    train.check_integer(config.eval.probe_steps, 'config.eval.probe_steps', minimum=1)
    train.check_number(config.eval.probe_l2, 'config.eval.probe_l2', minimum=0.0)


def _check_protocol_rates(conditions, num_modalities: int) -> None:
  """Entries and per-view deletion keep a modality per sample: rates up to (M - 1) / M."""
  high = (num_modalities - 1) / num_modalities
  for condition in conditions:
    if condition.protocol in ('entries', 'per_view') and condition.level > high + 1e-9:
      raise ValueError(f'config.eval.protocol_rates: {condition.level} is infeasible for the '
                       f'{condition.protocol!r} protocol with {num_modalities} modalities (every '
                       f'sample keeps one: at most {high:.4g}).')


# ---------------------------------------------------------------- the grid across processes
def grid_units(names: Sequence[str], num_seeds: int, seed_blocks: int
               ) -> list[tuple[str, int, int]]:
  """The grid's units `(method, first seed, stop seed)`: every method with each of
  `seed_blocks` contiguous blocks of its seeds, in method order."""
  bounds = np.linspace(0, num_seeds, min(seed_blocks, num_seeds) + 1).round().astype(int)
  return [(name, int(lo), int(hi)) for name in names
          for lo, hi in zip(bounds[:-1], bounds[1:])]


def _unit_folder(workdir, unit: tuple[str, int, int]):
  name, lo, hi = unit
  return (train.checkpoint.resolve_workdir(workdir) / 'units' /
          f'{name.replace(":", "_")}_seeds_{lo}-{hi}')


def _run_unit(config, splits, conditions, unit, workdir, eval_key, log) -> None:
  """Trains and scores one unit in its own folder; its result lands in `result.pkl`."""
  name, lo, hi = unit
  folder = _unit_folder(workdir, unit)
  if (folder / 'result.pkl').exists():
    log(f'{name} seeds {lo}-{hi}: already done ({folder})')
    return
  unit_config = config.copy_and_resolve_references()
  unit_config.unlock()
  unit_config.train.seed = config.train.seed + lo      # seed s keeps its key(seed + s)
  unit_config.train.num_seeds = hi - lo
  method = resolve(config.suite, name, config.method_kwargs.to_dict().get(name))
  writer = train.MetricWriter(folder)
  writer.start(unit_config.to_dict(), resumable=RESUMABLE)
  try:
    fitted = train_method(config.suite, method, splits, unit_config, workdir=folder,
                          writer=writer, name=name)
    scores = fusion_suite.score(method, fitted.selected_state(), splits, conditions,
                                key=eval_key, ece_bins=config.eval.ece_bins)
  finally:
    writer.close()
  result = MethodResult(jax.tree.map(np.asarray, scores), np.asarray(fitted.best_epoch),
                        fitted.history, fitted.compile_s, fitted.run_s)
  partial = folder / 'result.pkl.partial'
  partial.write_bytes(pickle.dumps(tuple(result)))
  partial.rename(folder / 'result.pkl')                  # whole, or not there
  log(f'{name} seeds {lo}-{hi}: done')


def _merge_units(names, units, workdir, *, wait_s: float, log) -> dict[str, MethodResult]:
  """Every method's result, its seed blocks concatenated, once every unit has its result
  (waits up to `wait_s`, polling)."""
  folders = {unit: _unit_folder(workdir, unit) / 'result.pkl' for unit in units}
  deadline, said = time.monotonic() + wait_s, False
  while not all(path.exists() for path in folders.values()):
    if time.monotonic() > deadline:
      missing = [str(path.parent) for path in folders.values() if not path.exists()]
      raise TimeoutError(f'{len(missing)} units of the grid have no result after {wait_s:g} s '
                         f'(for example {missing[0]}); rerun their shards, then this one.')
    if not said:
      log(f'waiting for the other shards ({sum(not p.exists() for p in folders.values())} '
          'units left)')
      said = True
    time.sleep(1.0)
  results = {}
  for name in names:
    parts = [MethodResult(*pickle.loads(folders[unit].read_bytes()))
             for unit in units if unit[0] == name]
    concat = lambda *leaves: np.concatenate(leaves, axis=0)  # noqa: E731
    results[name] = MethodResult(
        jax.tree.map(concat, *[part.scores for part in parts]),
        concat(*[part.best_epoch for part in parts]),
        {key: concat(*[part.history[key] for part in parts]) for key in parts[0].history},
        sum(part.compile_s for part in parts), sum(part.run_s for part in parts))
  return results


def run(config, workdir, *, log: Callable[[str], None] = print) -> dict[str, MethodResult]:
  """Trains and scores every method of `config.methods` on one data set; writes the report.

  Args:
    config: a harness config (`lqmm/bench/configs/*.py`): `suite`, `data`, `model`, `optim`,
      `train`, `eval`, `methods`, `method_kwargs`.
    workdir: the output folder (checkpoints, metrics, results).
    log: where the one-line summary per method goes.

  Returns:
    `{method: MethodResult}` (with `alone:<m>` entries for the imbalance suite).

  Raises:
    KeyError: an unknown suite, method, optimizer or data set name (listing the valid ones).
    ValueError: an invalid setting, naming its config key.
  """
  check(config)
  splits = data.load_from(config.data)
  conditions = None
  if config.suite == 'fusion':
    noise_one = config.eval.noise_one_modality or splits.order[0]
    checks.check_order((noise_one,), dict.fromkeys(splits.order), 'the data')
    conditions = conditions_lib.grid(tuple(config.eval.noise_stds),
                                     tuple(config.eval.missing_rates),
                                     tuple(config.eval.quality_stds), noise_one=noise_one)
    conditions += conditions_lib.protocol_grid(
        tuple(config.eval.get('protocols', ())), tuple(config.eval.get('protocol_rates', ())),
        tuple(config.eval.get('protocol_noise_stds', (0.0,))))
    conditions += conditions_lib.conflictive(
        tuple(config.eval.get('conflict_fractions', ())),
        noise_std=config.eval.get('conflict_noise_std', 0.5),
        noise_fraction=config.eval.get('conflict_noise_fraction', 0.1))
    conditions += conditions_lib.noise_combinations(
        tuple(config.eval.get('noise_combination_stds', ())),
        config.eval.get('noise_combination_views'))
    conditions += conditions_lib.noise_samples(
        tuple(config.eval.get('noise_sample_stds', ())),
        config.eval.get('noise_sample_fraction', 0.5))
    _check_protocol_rates(conditions, len(splits.order))
    views = config.eval.get('noise_combination_views')
    if views is not None and views > len(splits.order):
      raise ValueError(f'config.eval.noise_combination_views: {views} noisy views per '
                       f'combination, but the data has {len(splits.order)} modalities.')
  eval_key = jax.random.key(config.train.seed + 10_000)
  shard, shards = train.grid_shard()
  if shards > 1 or config.get('seed_blocks', 1) > 1:
    # The grid split: this process trains every `shards`-th unit in its own folder; shard 0
    # then merges every unit into the one report.
    names = list(config.methods)
    units = grid_units(names, config.train.num_seeds, config.get('seed_blocks', 1))
    for unit in units[shard::shards]:
      _run_unit(config, splits, conditions, unit, workdir, eval_key, log)
    if shard != 0:
      return {}
    results = _merge_units(names, units, workdir, wait_s=config.get('grid_wait_s', 86400.0),
                           log=log)
    for name, result in results.items():
      log(report.one_line(config.suite, name, result, splits.order))
    report.write(config, splits, results, conditions, workdir)
    return results
  writer = train.MetricWriter(workdir)
  writer.start(config.to_dict(), resumable=RESUMABLE)
  kwargs = config.method_kwargs.to_dict()
  names = list(config.methods)
  if config.suite == 'imbalance':
    names = [f'alone:{index}' for index in range(len(splits.order))] + names
  results: dict[str, MethodResult] = {}
  alone_states, teachers = {}, None
  try:
    for name in names:
      method = resolve(config.suite, name, kwargs.get(name))
      if method.hooks.teachers and teachers is None:
        teachers = imbalance_suite.teacher_features(alone_states, splits)
      fitted = train_method(config.suite, method, splits, config, workdir=workdir,
                            writer=writer, name=name, teachers=teachers)
      state = fitted.selected_state()
      if config.suite == 'fusion':
        scores = fusion_suite.score(method, state, splits, conditions, key=eval_key,
                                    ece_bins=config.eval.ece_bins)
      else:
        scores = imbalance_suite.score(method, state, splits, config)
        if name.startswith('alone:'):
          alone_states[int(name.split(':', 1)[1])] = state
      results[name] = MethodResult(scores, fitted.best_epoch, fitted.history, fitted.compile_s,
                                   fitted.run_s)
      log(report.one_line(config.suite, name, results[name], splits.order))
  finally:
    writer.close()
  report.write(config, splits, results, conditions, workdir)
  return results
