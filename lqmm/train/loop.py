"""The one training loop: seeds under `jax.vmap`, epochs under `lax.scan`, selection on validation.

An experiment supplies three top-level functions and `fit` does the rest::

    def init(key) -> TrainState                                  # one seed
    def train_step(state, batch, key) -> (state, metrics)        # one minibatch
    def eval_step(state, batch) -> metrics                        # a whole split

    result = train.fit(init, train_step, splits.train, config=config.train, workdir=workdir,
                       eval_step=eval_step, validation_data=splits.validation, writer=writer)

What `fit` does, for `num_seeds` seeds at once (one compiled program):

- **Batches.** Every epoch the training rows are permuted (key `fold_in(fold_in(seed_key, 1),
  epoch)`) and cut into minibatches gathered from the device-resident training data. A batch is
  the data's dict plus `'index'` (training-set rows, i32[B]), `'position'` (positions in the
  epoch's row list, i32[B]) and `'weight'` (f32[B]: 0 for the rows that pad the last partial
  batch, 1 otherwise; with `drop_remainder` the partial batch is dropped and every weight is 1).
  Batches are split over the mesh's data axis.
- **Keys.** Seed s has `seed_key = jax.random.key(seed + s)`; `init` gets `fold_in(seed_key,
  0)`, `train_step` gets `fold_in(fold_in(seed_key, 2), state.step)` and `epoch_start` gets
  `fold_in(fold_in(seed_key, 3), epoch)`, so a resumed run needs no saved key. (A
  `train_step` that does not call `apply_gradients` leaves `state.step` as it was, and the
  next step gets the same key.)
- **Hooks.** `epoch_start(state, key) -> state` runs before every epoch (PMR's prototypes,
  G-Blend's weights, sample-level valuation: any method state computed from the whole data);
  `epoch_rows(state) -> i32[N']` picks the epoch's training rows (default: all, once each).
  Methods that change the step itself plug in through the loss (in `train_step`), the optax
  chain (in `TrainState.tx`, with extra args passed to `apply_gradients`) or these two hooks.
- **Selection.** Every `eval_every` epochs `eval_step` scores the validation split; the
  parameters with the best `select` metrics are kept per seed (never the test split). An empty
  validation split with a non-empty `select` is an error.
- **Checkpoints and resume.** With a `workdir`, the carry (state and kept parameters) is saved
  with Orbax every `checkpoint_every_epochs` and at the end, with checksums; a rerun resumes
  from the newest intact checkpoint (damaged or partially written newer ones are skipped with a
  warning and renamed; none intact is an error, see `lqmm.train.checkpoint`) and the metric
  log is rewound to it, so nothing is logged twice.
- **Logging.** Per call: the seed-mean of each train metric of the call's last epoch and of the
  last validation metrics to `metrics.jsonl` and TensorBoard; a progress bar with epochs/s, ETA
  and compile time kept apart; the NaN guard raises naming the metrics, the epoch range and
  the newest checkpoint that verified against its checksums.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lqmm.train import checkpoint as checkpoint_lib
from lqmm.train import config as config_lib
from lqmm.train import mesh as mesh_lib
from lqmm.train import progress as progress_lib
from lqmm.train.state import TrainState


class StopRequested(Exception):
  """Raised by `fit` after the checkpoint at `stop_after_epochs` (a simulated kill)."""


class FitResult(NamedTuple):
  """What `fit` returns; arrays have a leading seed axis S.

  Attributes:
    state: the final `TrainState` of every seed.
    params: the kept parameters: the best on validation per seed with `select`, else the final.
    best_epoch: i32[S], the epoch of the kept parameters.
    history: `{'train/<metric>': [S, epochs], 'validation/<metric>': [S, evaluations]}` (numpy):
      the epoch means of the training metrics and every validation score. A run with a
      workdir saves it beside its checkpoints, so a resumed run returns all epochs.
    start_epoch: the epoch training started from (> 0 after a resume).
    compile_s: seconds spent compiling.
    run_s: seconds spent training (compilation excluded).
  """
  state: TrainState
  params: Any
  best_epoch: np.ndarray
  history: dict[str, np.ndarray]
  start_epoch: int
  compile_s: float
  run_s: float

  def selected_state(self) -> TrainState:
    """The final states with the kept parameters (what to evaluate on the test split).

    Only `params` is replaced: `extra`, `opt_state`, `step` and `epoch` stay the final ones.
    """
    return self.state.replace(params=self.params)


def _num_rows(data) -> int:
  leaves = jax.tree.leaves(data)
  if not leaves:
    raise ValueError('train_data holds no arrays.')
  sizes = {int(np.shape(leaf)[0]) for leaf in leaves}
  if len(sizes) > 1:
    raise ValueError('Every array of the data must have the same number of rows; got '
                     f'{sorted(sizes)}.')
  return sizes.pop()


def _better(score: jax.Array, best: jax.Array) -> jax.Array:
  """Lexicographic `score > best` over the last axis (earlier entries dominate)."""
  better = jnp.zeros((), bool)
  tied = jnp.ones((), bool)
  for index in range(score.shape[-1]):
    better = better | (tied & (score[index] > best[index]))
    tied = tied & (score[index] == best[index])
  return better


def _score(metrics: Mapping[str, jax.Array], select: tuple[str, ...]) -> jax.Array:
  values = []
  for entry in select:
    name = entry.lstrip('-')
    if name not in metrics:
      raise KeyError(f'select names the validation metric {name!r}, but eval_step returns '
                     f'{sorted(metrics)}.')
    value = jnp.asarray(metrics[name], jnp.float32)
    values.append(-value if entry.startswith('-') else value)
  return jnp.stack(values)


def _epoch_batches(num_rows: int, batch_size: int, drop_remainder: bool, key, shuffle: bool):
  """Positions `[steps, B]` and weights `[steps, B]` of one epoch over `num_rows` rows."""
  positions = (jax.random.permutation(key, num_rows) if shuffle
               else jnp.arange(num_rows, dtype=jnp.int32))
  if drop_remainder:
    steps = num_rows // batch_size
    if not steps:
      raise ValueError(f'The epoch has {num_rows} rows, fewer than config.train.batch_size = '
                       f'{batch_size}, and drop_remainder drops them all.')
    positions = positions[:steps * batch_size]
    weights = jnp.ones(positions.shape, jnp.float32)
  else:
    steps = -(-num_rows // batch_size)
    padding = steps * batch_size - num_rows
    weights = (jnp.arange(steps * batch_size) < num_rows).astype(jnp.float32)
    positions = jnp.concatenate([positions, jnp.zeros(padding, positions.dtype)])
  return positions.reshape(steps, batch_size), weights.reshape(steps, batch_size)


def _save_history(directory, history: Mapping[str, list[np.ndarray]]) -> None:
  """Writes the per-seed history so far beside the checkpoints (process 0)."""
  if jax.process_index() != 0:
    return
  import io  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  np.savez(buffer, **{key: np.concatenate(values, axis=1) for key, values in history.items()})
  _history_path(directory).write_bytes(buffer.getvalue())


def _history_path(directory):
  """`<checkpoints>_history.npz` beside (not inside) the Orbax checkpoint folder."""
  return directory.parent / f'{directory.name}_history.npz'


def _history_length(key: str, epochs: int, block: int) -> int:
  """Columns of `key`'s history after `epochs` epochs (validation: one per block)."""
  return epochs if key.startswith('train/') else epochs // block


def _load_history(directory, start_epoch: int, block: int) -> dict[str, list[np.ndarray]]:
  """The saved history cut at `start_epoch` (it may run past the checkpoint), or `{}`."""
  path = _history_path(directory)
  if not path.exists():
    return {}
  import io  # pylint: disable=g-import-not-at-top
  with np.load(io.BytesIO(path.read_bytes())) as saved:
    return {key: [values[:, :_history_length(key, start_epoch, block)]]
            for key, values in saved.items()}


def _pad_history(history, loaded, start_epoch: int, block: int) -> dict[str, list[np.ndarray]]:
  """Fills with NaN the epochs before `start_epoch` that a resumed run could not load (no
  saved history, or a shorter one), so column e of a history is always epoch e + 1
  (validation: evaluation e + 1)."""
  out = {}
  for key, values in history.items():
    prefix = list(values[:1]) if key in loaded else []
    rest = list(values[len(prefix):])
    missing = _history_length(key, start_epoch, block) - sum(v.shape[1] for v in prefix)
    if missing > 0:
      like = (prefix or rest)[0]
      dtype = np.result_type(like.dtype, np.float32)
      prefix = [value.astype(dtype) for value in prefix]
      prefix.append(np.full((like.shape[0], missing) + like.shape[2:], np.nan, dtype))
    out[key] = prefix + rest
  return out


def _checkpoint_note(checkpointer, carry) -> str:
  """For the NaN guard: the newest checkpoint that verified against its checksums (all were
  saved before the bad range), or that none did; '' without a workdir."""
  if checkpointer is None:
    return ''
  checkpointer.wait()
  step = checkpointer.newest_intact_step(carry)
  if step is None:
    return f' No checkpoint in {checkpointer.directory} verifies against its checksums.'
  return (f' The newest intact checkpoint (verified against its checksums) is '
          f'{checkpointer.directory / str(step)}, after epoch {step}.')


def fit(init: Callable[[jax.Array], TrainState],
        train_step: Callable[[TrainState, dict, jax.Array], tuple[TrainState, Mapping]],
        train_data: Mapping, *, config: Mapping, workdir=None,
        eval_step: Callable[[TrainState, dict], Mapping] | None = None,
        validation_data: Mapping | None = None,
        epoch_start: Callable[[TrainState, jax.Array], TrainState] | None = None,
        epoch_rows: Callable[[TrainState], jax.Array] | None = None,
        mesh=None, writer=None, name: str | None = None, seed_data=None,
        progress: bool = True) -> FitResult:
  """Trains `config.num_seeds` seeds together; see the module docstring.

  Args:
    init: `key -> TrainState` for one seed (e.g. `TrainState.create(...)`), or
      `(key, seed_data) -> TrainState` when `seed_data` is given.
    train_step: `(state, batch, key) -> (state, metrics)` for one minibatch; `metrics` is a dict
      of scalars, averaged over the epoch's steps.
    train_data: the training split, a dict of arrays with a common leading axis N (for
      example `splits.train`); placed on the devices once.
    config: the loop settings (an experiment's `config.train`; see `LoopSettings`).
    workdir: folder for checkpoints (auto-resume), or None for none.
    eval_step: `(state, batch) -> metrics` on a whole split, or None.
    validation_data: the validation split for `eval_step`.
    epoch_start: `(state, key) -> state` before every epoch, or None.
    epoch_rows: `state -> i32[N']` training rows of the epoch, or None (all rows).
    mesh: the device mesh (default: `make_mesh(config.num_devices)`).
    writer: a `MetricWriter` for `metrics.jsonl`/TensorBoard, or None.
    name: prefix of the logged metrics and sub-folder of the checkpoints, when one experiment
      trains several models (e.g. `'baseline'`).
    seed_data: per-seed inputs of `init` (e.g. each seed's teacher features), a pytree whose
      leaves have the leading axis `num_seeds`; or None.
    progress: show the progress bar.

  Returns:
    A `FitResult`.

  Raises:
    TypeError, ValueError, KeyError: invalid settings (naming the `config.train` key), an empty
      validation split with `select`, a `select` metric that `eval_step` does not return.
      Without `select`, an empty validation split only turns the validation logging off.
    FloatingPointError: a non-finite train or validation metric (the NaN guard).
    CheckpointError: the workdir holds checkpoints, but none is intact.
    StopRequested: after the checkpoint at `config.stop_after_epochs`.
  """
  settings = config_lib.loop_settings(config)
  num_rows = _num_rows(train_data)
  has_validation = validation_data is not None and _num_rows(validation_data) > 0
  if settings.select and not (eval_step is not None and has_validation):
    raise ValueError(
        f'config.train.select={settings.select!r} picks the kept parameters on the validation '
        'split, but ' + ('no eval_step was given.' if eval_step is None else
                         'the validation split is empty (config.data.validation_fraction = 0?).')
        + ' Hold out a validation split (validation_fraction > 0) with an eval_step, or keep the '
        'last epoch (select=()).')
  # Without selection, validation is only logged, and skipped when there is none.
  validated = eval_step is not None and has_validation
  if validated:
    config_lib.check_eval_divides(settings)
  block = settings.eval_every if validated else 1
  batch_size = num_rows if settings.batch_size is None else settings.batch_size
  if batch_size > num_rows and settings.drop_remainder:
    raise ValueError(f'config.train.batch_size ({batch_size}) exceeds the {num_rows} training '
                     'rows, and drop_remainder drops every batch.')
  if settings.stop_after_epochs is not None and workdir is None:
    raise ValueError('config.train.stop_after_epochs stops after a checkpoint (a simulated '
                     'kill); it needs a workdir.')
  mesh = mesh if mesh is not None else mesh_lib.make_mesh(settings.num_devices)
  mesh_lib.check_divisible(batch_size, mesh, 'config.train.batch_size')
  batch_sharding = mesh_lib.data_sharding(mesh)
  replicated = mesh_lib.replicated(mesh)
  if jax.process_count() > 1:
    # Each process keeps its block of the rows; a batch gathers across processes.
    train_data = mesh_lib.shard_rows(train_data, mesh)
  else:
    train_data = jax.device_put(train_data, replicated)
  if validated:
    validation_data = jax.device_put(validation_data, replicated)
  data = (train_data, validation_data if validated else None)
  prefix = f'{name}/' if name else ''

  # ---------------------------------------------------------------- one seed, one epoch
  def run_epoch(state: TrainState, seed_key, train_data):
    epoch = state.epoch
    if epoch_start is not None:
      state = epoch_start(state, jax.random.fold_in(jax.random.fold_in(seed_key, 3), epoch))
    rows = (jnp.arange(num_rows, dtype=jnp.int32) if epoch_rows is None
            else jnp.asarray(epoch_rows(state), jnp.int32))
    positions, weights = _epoch_batches(
        rows.shape[0], batch_size, settings.drop_remainder,
        jax.random.fold_in(jax.random.fold_in(seed_key, 1), epoch), settings.shuffle)

    def step(state, chunk):
      position, weight = chunk
      index = rows[position]
      batch = dict(jax.tree.map(lambda x: x[index], train_data))
      batch.update(index=index, position=position, weight=weight)
      batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
      key = jax.random.fold_in(jax.random.fold_in(seed_key, 2), state.step)
      state, metrics = train_step(state, batch, key)
      return state, dict(metrics)

    state, metrics = jax.lax.scan(step, state, (positions, weights))
    return state.replace(epoch=epoch + 1), jax.tree.map(lambda x: jnp.mean(x, axis=0), metrics)

  # ---------------------------------------------------------------- one seed, one block
  def run_block(carry, seed_key, data):
    train_data, validation_data = data
    state, metrics = jax.lax.scan(lambda s, _: run_epoch(s, seed_key, train_data),
                                  carry['state'], None, length=block)
    out = {'train': metrics}
    best = carry['best']
    if validated:
      scores = dict(eval_step(state, validation_data))
      out['validation'] = scores
      if settings.select:
        score = _score(scores, settings.select)
        better = _better(score, best['score'])
        keep = lambda new, old: jnp.where(better, new, old)
        best = {'params': jax.tree.map(keep, state.params, best['params']),
                'score': keep(score, best['score']), 'epoch': keep(state.epoch, best['epoch'])}
    return {'state': state, 'best': best}, out

  # Replicated outputs: every process reads the metrics and holds the whole carry.
  @functools.partial(jax.jit, static_argnames='num_blocks', out_shardings=replicated)
  def run_call(carry, seed_keys, data, num_blocks):
    # The data are arguments, not closed over: a multi-process global array cannot be a
    # constant of the program.
    def one_seed(carry, seed_key):
      carry, out = jax.lax.scan(lambda c, _: run_block(c, seed_key, data), carry, None,
                                length=num_blocks)
      out['train'] = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), out['train'])
      return carry, out
    return jax.vmap(one_seed)(carry, seed_keys)

  def init_carry(seed_key, data_s):
    init_key = jax.random.fold_in(seed_key, 0)
    state = init(init_key) if seed_data is None else init(init_key, data_s)
    best = None
    if settings.select:
      best = {'params': state.params,
              'score': jnp.full((len(settings.select),), -jnp.inf, jnp.float32),
              'epoch': jnp.zeros([], jnp.int32)}
    return {'state': state, 'best': best}

  # ---------------------------------------------------------------- state and resume
  seed_keys = jax.vmap(jax.random.key)(settings.seed + jnp.arange(settings.num_seeds))
  if seed_data is not None:
    sizes = {int(np.shape(leaf)[0]) for leaf in jax.tree.leaves(seed_data)}
    if sizes != {settings.num_seeds}:
      raise ValueError(f'seed_data must have a leading axis of num_seeds = {settings.num_seeds}; '
                       f'got {sorted(sizes)}.')
  carry = jax.jit(jax.vmap(init_carry), out_shardings=replicated)(seed_keys, seed_data)
  checkpointer = None
  if workdir is not None:
    folder = checkpoint_lib.resolve_workdir(workdir)
    checkpointer = checkpoint_lib.Checkpointer(folder, subdir=name)
    carry = checkpointer.restore_or(carry)
  start_epoch = int(np.asarray(carry['state'].epoch)[0])
  if writer is not None:
    writer.rewind(start_epoch, prefix=prefix)
  history: dict[str, list[np.ndarray]] = {}
  if checkpointer is not None and start_epoch > 0:
    history = _load_history(checkpointer.directory, start_epoch, block)
  loaded = set(history)

  # ---------------------------------------------------------------- loop
  bar = progress_lib.Progress(settings.num_epochs, initial=start_epoch, unit='epoch',
                              disable=not progress)
  compiled = {}
  epoch = start_epoch
  stopped = False
  try:
    while epoch < settings.num_epochs:
      num_epochs = min(settings.epochs_per_call, settings.num_epochs - epoch)
      num_blocks = num_epochs // block
      if num_blocks not in compiled:
        with bar.compiling():
          compiled[num_blocks] = run_call.lower(carry, seed_keys, data,
                                                num_blocks=num_blocks).compile()
      carry, out = compiled[num_blocks](carry, seed_keys, data)
      out = jax.tree.map(np.asarray, out)
      for split, metrics in out.items():
        for metric, values in metrics.items():
          history.setdefault(f'{split}/{metric}', []).append(values)
      try:
        progress_lib.check_finite(
            {f'{split}/{metric}': values for split, metrics in out.items()
             for metric, values in metrics.items()},
            first_step=epoch + 1, last_step=epoch + num_epochs)
      except FloatingPointError as error:
        raise FloatingPointError(f'{error}{_checkpoint_note(checkpointer, carry)}') from None
      epoch += num_epochs
      if writer is not None:
        record = {f'{prefix}train/{metric}': values[:, -1].mean()
                  for metric, values in out['train'].items() if np.ndim(values) == 2}
        record.update({f'{prefix}validation/{metric}': values[:, -1].mean()
                       for metric, values in out.get('validation', {}).items()
                       if np.ndim(values) == 2})
        writer.write(epoch, record)
      shown = {metric: values[:, -1].mean() for metric, values in out['train'].items()
               if np.ndim(values) == 2}
      bar.update(num_epochs, dict(list(shown.items())[:2]))
      if checkpointer is not None and (epoch % settings.checkpoint_every_epochs == 0 or
                                       epoch == settings.num_epochs):
        _save_history(checkpointer.directory, history)  # before the checkpoint it belongs to
        checkpointer.save(epoch, carry)
        if (settings.stop_after_epochs is not None and epoch >= settings.stop_after_epochs and
            epoch < settings.num_epochs):
          stopped = True
          break
  finally:
    # Also on errors (e.g. the NaN guard): finish pending checkpoint writes.
    bar.close()
    if checkpointer is not None:
      checkpointer.close()
  if stopped:
    raise StopRequested(f'stopped after epoch {epoch} (config.train.stop_after_epochs)')
  timing = bar.summary()
  state = carry['state']
  history = _pad_history(history, loaded, start_epoch, block)
  if settings.select:
    params, best_epoch = carry['best']['params'], np.asarray(carry['best']['epoch'])
  else:
    params, best_epoch = state.params, np.asarray(state.epoch)
  return FitResult(
      state=state, params=params, best_epoch=best_epoch,
      history={key: np.concatenate(values, axis=1) for key, values in history.items()},
      start_epoch=start_epoch, compile_s=timing['compile_s'], run_s=timing['run_s'])


def evaluate(eval_step: Callable, state: TrainState, batch: Mapping, *, levels=None,
             key: jax.Array | None = None,
             seeds_per_call: int | None = None) -> dict[str, np.ndarray]:
  """`eval_step` on `batch` for every seed of a stacked `state` (leading axis S), as numpy.

  Without `levels`: `eval_step(state, batch) -> metrics`, returning `[S, ...]` arrays, e.g.
  `train.evaluate(eval_step, result.selected_state(), splits.test)`.

  With `levels` (a sweep of a degradation: noise stds, missing rates): `eval_step(state, batch,
  level, level_key) -> metrics` for every level, returning `[S, L, ...]` arrays. Level l uses
  `fold_in(key, l)` for every seed, so all seeds see the same degraded data (a paired
  comparison).

  With `seeds_per_call`, the seeds are evaluated that many at a time (`lax.map` over chunks
  of a vmap), for an `eval_step` whose memory per seed is large (e.g. many imputation draws).

  Raises:
    ValueError: `levels` without `key`; `seeds_per_call` < 1.
  """
  batch = jax.tree.map(jnp.asarray, batch)
  if seeds_per_call is not None:
    seeds_per_call = config_lib.check_integer(seeds_per_call, 'seeds_per_call', minimum=1)

  def over_seeds(function, state, *args):
    if seeds_per_call is None:
      return jax.vmap(function, in_axes=(0,) + (None,) * len(args))(state, *args)
    return jax.lax.map(lambda one: function(one, *args), state, batch_size=seeds_per_call)

  if levels is None:
    scores = jax.jit(lambda state, batch: over_seeds(eval_step, state, batch))(state, batch)
    return jax.tree.map(np.asarray, dict(scores))
  if key is None:
    raise ValueError('evaluate with levels needs a key (one noise draw per level).')
  levels = jnp.asarray(levels, jnp.float32)
  keys = jax.vmap(lambda index: jax.random.fold_in(key, index))(jnp.arange(levels.size))
  over_levels = jax.vmap(eval_step, in_axes=(None, None, 0, 0))
  scores = jax.jit(lambda *args: over_seeds(over_levels, *args))(state, batch, levels, keys)
  return jax.tree.map(np.asarray, dict(scores))
