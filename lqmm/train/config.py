"""Validation of experiment configs, before anything is written to the workdir.

Every experiment's config has the sections `data`, `model`, `optim`, `train` and `eval`.
`loop_settings(config.train)` reads and checks the keys the training loop uses; `check_config`
checks the sections and the values shared by every experiment. Both raise errors that name the
config key (`config.train.num_epochs`, ...), for Python, NumPy and JAX scalars alike.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import ml_collections
import numpy as np

from lqmm.checks import check_integer  # noqa: F401 (part of this module's API)

SECTIONS = ('data', 'model', 'optim', 'train', 'eval')


class LoopSettings(NamedTuple):
  """The training loop's settings, read from `config.train` (defaults in brackets).

  Attributes:
    num_epochs: epochs to train (required).
    batch_size: minibatch size; None for the whole training split (full-batch steps).
    num_seeds: seeds trained together under `jax.vmap` [1].
    seed: the first seed; seed s uses `jax.random.key(seed + s)` [0].
    epochs_per_call: epochs compiled into one jitted call [num_epochs].
    checkpoint_every_epochs: checkpoint interval, a multiple of `epochs_per_call`
      [epochs_per_call].
    eval_every: validation interval in epochs; divides `epochs_per_call` and `num_epochs` [1].
    select: validation metrics that pick the kept parameters, compared in order (ties broken
      by the next); a leading '-' means lower is better; empty keeps the last epoch [()].
    drop_remainder: drop the last partial batch of an epoch instead of padding it with
      zero-weight rows [False].
    shuffle: reshuffle the training rows every epoch [True].
    stop_after_epochs: stop (raising `StopRequested`) after the first checkpoint at or after
      this epoch; simulates a killed run [None].
    num_devices: devices of the data-parallel mesh [all].
  """
  num_epochs: int
  batch_size: int | None
  num_seeds: int = 1
  seed: int = 0
  epochs_per_call: int | None = None
  checkpoint_every_epochs: int | None = None
  eval_every: int = 1
  select: tuple[str, ...] = ()
  drop_remainder: bool = False
  shuffle: bool = True
  stop_after_epochs: int | None = None
  num_devices: int | None = None


def check_number(value, name: str, *, minimum: float | None = None,
                 maximum: float | None = None, open_minimum: bool = False) -> float:
  """Returns `value` as a float, or raises naming `name` when it is not a finite number in range.

  Python, NumPy and 0-d JAX numbers are accepted; bools, NaN and infinities are not.
  """
  if isinstance(value, (bool, np.bool_)) or not (
      isinstance(value, numbers.Real) or
      (isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 0 and
       np.issubdtype(np.asarray(value).dtype, np.number))):
    raise TypeError(f'{name} must be a number; got {value!r} ({type(value).__name__}).')
  value = float(value)
  if not math.isfinite(value):
    raise ValueError(f'{name} must be finite; got {value}.')
  if minimum is not None and (value <= minimum if open_minimum else value < minimum):
    raise ValueError(f'{name} must be {">" if open_minimum else ">="} {minimum}; got {value}.')
  if maximum is not None and value > maximum:
    raise ValueError(f'{name} must be <= {maximum}; got {value}.')
  return value


def check_numbers(values, name: str, **limits) -> tuple[float, ...]:
  """`check_number` on every entry of a sequence; the message names the entry's index."""
  if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
    raise TypeError(f'{name} must be a sequence of numbers; got {values!r}.')
  return tuple(check_number(value, f'{name}[{index}]', **limits)
               for index, value in enumerate(values))


def _get(config: Mapping, key: str, default):
  value = config.get(key, default) if hasattr(config, 'get') else getattr(config, key, default)
  return default if value is None else value


def loop_settings(config: Mapping, *, prefix: str = 'config.train') -> LoopSettings:
  """Reads and checks the training loop's keys of `config` (an experiment's `config.train`).

  Keys the loop does not use (a loss's hyper-parameters, say) are left alone.

  Args:
    config: a mapping or `ConfigDict` with the `LoopSettings` fields.
    prefix: how error messages name `config`.

  Returns:
    The checked `LoopSettings`.

  Raises:
    KeyError: `num_epochs` is missing.
    TypeError, ValueError: a value of the wrong type or out of range, naming its key.
  """
  if _get(config, 'num_epochs', None) is None:
    raise KeyError(f'{prefix}.num_epochs is required by the training loop.')
  num_epochs = check_integer(_get(config, 'num_epochs', None), f'{prefix}.num_epochs', minimum=1)
  batch_size = _get(config, 'batch_size', None)
  if batch_size is not None:
    batch_size = check_integer(batch_size, f'{prefix}.batch_size', minimum=1)
  num_seeds = check_integer(_get(config, 'num_seeds', 1), f'{prefix}.num_seeds', minimum=1)
  seed = check_integer(_get(config, 'seed', 0), f'{prefix}.seed', minimum=0)
  epochs_per_call = check_integer(_get(config, 'epochs_per_call', num_epochs),
                                  f'{prefix}.epochs_per_call', minimum=1)
  checkpoint_every = check_integer(_get(config, 'checkpoint_every_epochs', epochs_per_call),
                                   f'{prefix}.checkpoint_every_epochs', minimum=1)
  if checkpoint_every % epochs_per_call:
    raise ValueError(f'{prefix}.checkpoint_every_epochs ({checkpoint_every}) must be a multiple '
                     f'of {prefix}.epochs_per_call ({epochs_per_call}).')
  eval_every = check_integer(_get(config, 'eval_every', 1), f'{prefix}.eval_every', minimum=1)
  select = _get(config, 'select', ())
  if isinstance(select, str):
    select = (select,) if select else ()
  select = tuple(select)
  for entry in select:
    if not isinstance(entry, str) or not entry.lstrip('-'):
      raise ValueError(f'{prefix}.select must hold metric names (a leading "-" for lower is '
                       f'better); got {select!r}.')
  stop_after = _get(config, 'stop_after_epochs', None)
  if stop_after is not None:
    stop_after = check_integer(stop_after, f'{prefix}.stop_after_epochs', minimum=1)
  num_devices = _get(config, 'num_devices', None)
  if num_devices is not None:
    num_devices = check_integer(num_devices, f'{prefix}.num_devices', minimum=1,
                                maximum=jax.device_count())
  devices = num_devices if num_devices is not None else jax.device_count()
  if batch_size is not None and batch_size % devices:
    raise ValueError(f'{prefix}.batch_size ({batch_size}) must be divisible by the {devices} '
                     f'devices of the data-parallel mesh; change it or set {prefix}.num_devices.')
  return LoopSettings(
      num_epochs=num_epochs, batch_size=batch_size, num_seeds=num_seeds, seed=seed,
      epochs_per_call=epochs_per_call, checkpoint_every_epochs=checkpoint_every,
      eval_every=eval_every, select=select,
      drop_remainder=bool(_get(config, 'drop_remainder', False)),
      shuffle=bool(_get(config, 'shuffle', True)), stop_after_epochs=stop_after,
      num_devices=num_devices)


def check_eval_divides(settings: LoopSettings, *, prefix: str = 'config.train') -> None:
  """Raises unless `eval_every` divides `epochs_per_call` and `num_epochs` (validated runs)."""
  for key in ('epochs_per_call', 'num_epochs'):
    if getattr(settings, key) % settings.eval_every:
      raise ValueError(f'{prefix}.eval_every ({settings.eval_every}) must divide '
                       f'{prefix}.{key} ({getattr(settings, key)}).')


def default_config() -> ml_collections.ConfigDict:
  """The one config schema: the five sections with the keys every experiment shares.

  `data`: name, protocol, modalities, split_seed, validation_fraction, test_fraction, scaling,
  data_dir, manual_dir, allow_download (None: the data set's default; see
  `lqmm.data.load`). `model`: empty (the experiment's own). `optim`: name, learning_rate,
  weight_decay. `train`: the `LoopSettings` keys. `eval`: empty. An experiment's
  `get_config` starts from it, sets its values and adds its own keys, then locks it.
  """
  placeholder = ml_collections.config_dict.placeholder
  config = ml_collections.ConfigDict()
  config.data = ml_collections.ConfigDict({
      'name': placeholder(str), 'protocol': placeholder(str), 'modalities': placeholder(tuple),
      'split_seed': 0, 'validation_fraction': placeholder(float),
      'test_fraction': placeholder(float), 'scaling': placeholder(str),
      'data_dir': placeholder(str), 'manual_dir': placeholder(str), 'allow_download': True})
  config.model = ml_collections.ConfigDict()
  config.optim = ml_collections.ConfigDict({'name': 'adam', 'learning_rate': 1e-3,
                                            'weight_decay': 0.0})
  config.train = ml_collections.ConfigDict({
      'num_epochs': placeholder(int), 'batch_size': placeholder(int), 'num_seeds': 1, 'seed': 0,
      'epochs_per_call': placeholder(int), 'checkpoint_every_epochs': placeholder(int),
      'eval_every': 1, 'select': (), 'drop_remainder': False, 'shuffle': True,
      'stop_after_epochs': placeholder(int), 'num_devices': placeholder(int)})
  config.eval = ml_collections.ConfigDict()
  return config


def make_smoke(config: ml_collections.ConfigDict, *, num_epochs: int = 4,
               every: int = 2) -> ml_collections.ConfigDict:
  """Shrinks `config.train` to a seconds-long run: 2 seeds, a call, check and checkpoint
  every `every` epochs (what every experiment's `:smoke` variant does)."""
  config.train.update({'num_epochs': num_epochs, 'num_seeds': 2, 'epochs_per_call': every,
                       'checkpoint_every_epochs': every, 'eval_every': every})
  return config


def check_config(config: Mapping) -> LoopSettings:
  """Checks an experiment config's sections and shared values; returns its `LoopSettings`.

  Checks: the five sections exist; `config.train` (see `loop_settings`); the data fractions
  (`config.data.validation_fraction` and `test_fraction`, when set, in [0, 1) and together
  below 1); the evaluation noise levels (`config.eval.noise_stds`, when present, finite and
  >= 0). Experiments call it before they write anything, so an invalid config exits non-zero
  with the workdir untouched.

  Raises:
    KeyError: a missing section.
    TypeError, ValueError: a bad value, naming its key.
  """
  for section in SECTIONS:
    if section not in config:
      raise KeyError(f'config has no {section!r} section; every experiment config has '
                     f'{", ".join(SECTIONS)}.')
  settings = loop_settings(config['train'])
  check_eval_divides(settings)
  fractions = 0.0
  for key in ('validation_fraction', 'test_fraction'):
    value = _get(config['data'], key, None)
    if value is not None:
      fractions += check_number(value, f'config.data.{key}', minimum=0.0, maximum=1.0)
      if value >= 1:
        raise ValueError(f'config.data.{key} must be < 1; got {value}.')
  if settings.select and _get(config['data'], 'validation_fraction', None) == 0:
    raise ValueError(f'config.train.select={settings.select!r} picks the kept parameters on the '
                     'validation split, but config.data.validation_fraction = 0 leaves none; '
                     'hold out a validation split or keep the last epoch (select=()).')
  if fractions >= 1:
    raise ValueError('config.data.validation_fraction + config.data.test_fraction must be < 1 '
                     f'to leave training data; got {fractions}.')
  for key, limits in (('learning_rate', {'minimum': 0.0, 'open_minimum': True}),
                      ('weight_decay', {'minimum': 0.0})):
    if _get(config['optim'], key, None) is not None:
      check_number(config['optim'][key], f'config.optim.{key}', **limits)
  if _get(config['eval'], 'noise_stds', None) is not None:
    check_numbers(config['eval']['noise_stds'], 'config.eval.noise_stds', minimum=0.0)
  return settings
