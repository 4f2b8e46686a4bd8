"""`Splits`, the one type every data entry returns, and `from_arrays` for a user's own arrays.

A `Splits` holds three batches (train, validation, test) of numpy arrays keyed by modality::

    {'inputs': {'left': f32[N, 8, 4], ...}, 'mask': {'left': bool[N], ...}, 'label': i32[N]}

(`'target': f32[N]` instead of `'label'` for regression) plus what a model needs to know about
them: the modality order, the task, the number of classes, the per-example shapes and the
scaling fitted on the training split. `lqmm.data.load` returns one for every registered data
set; `from_arrays` makes one from arrays in memory::

    splits = from_arrays({'left': images[:, :, :4], 'right': images[:, :, 4:]}, labels)
    splits.sizes  # {'train': ..., 'validation': ..., 'test': ...}

The helpers that both use are public too: `stratified_split` and `random_split` draw the rows,
`take` selects rows of a batch, `fit_scaling` fits per-feature statistics on the training
inputs and `apply_scaling` applies them.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from lqmm import checks

Batch = dict

#: The tasks a `Splits` can hold, with the key of its batches' targets.
TASKS = {'classification': 'label', 'regression': 'target'}
#: Per-feature input scalings (see `fit_scaling`).
SCALINGS = ('minmax', 'standard', 'none')
#: The three parts of every `Splits`, in order.
SPLIT_NAMES = ('train', 'validation', 'test')


@dataclasses.dataclass(frozen=True, eq=False)
class Splits:
  """A data set ready for training: three batches of numpy arrays and what they hold.

  Attributes:
    train, validation, test: batches `{'inputs': {m: f32[N, ...]}, 'mask': {m: bool[N]},
      'label': i32[N]}` for classification, or with `'target': f32[N]` for regression; AV
      digits batches also keep a `'meta'` entry. `validation` (or `test`) may have zero rows.
    order: the modality order (the fusion order), the keys of `inputs` and `mask`.
    task: 'classification' or 'regression'.
    num_classes: the number of classes; None for regression.
    shapes: `{modality: per-example shape}`, e.g. `{'pix': (240,)}`.
    scaling: `{modality: (shift, scale)}` fitted on the training split, as applied to the
      inputs: `x -> (x - shift) / scale`, each broadcastable to one example.
    target_scaling: for regression, the `(shift, scale)` of the target (the original units
      are `target * scale + shift`; `(0.0, 1.0)` when the target is not scaled); None for
      classification.
    name: the data set's name (a key of `lqmm.data.DATASETS`, or the name given to
      `from_arrays`).
    protocol: the split protocol; None for `from_arrays`.

  Raises:
    ValueError: an unknown task, `num_classes` that does not fit the task, or `order` and
      `shapes` naming different modalities.
  """
  train: Batch
  validation: Batch
  test: Batch
  order: tuple[str, ...]
  task: str
  num_classes: int | None
  shapes: dict[str, tuple[int, ...]]
  scaling: dict[str, tuple[np.ndarray, np.ndarray]]
  target_scaling: tuple[float, float] | None
  name: str
  protocol: str | None

  def __post_init__(self):
    if self.task not in TASKS:
      raise ValueError(f'task must be one of {", ".join(TASKS)}; got {self.task!r}.')
    if (self.num_classes is None) != (self.task == 'regression'):
      raise ValueError(f'num_classes must be None for regression and an int for classification; '
                       f'got task {self.task!r} with num_classes {self.num_classes!r}.')
    if (self.target_scaling is None) != (self.task == 'classification'):
      raise ValueError('target_scaling must be None for classification and (shift, scale) for '
                       f'regression; got task {self.task!r} with target_scaling '
                       f'{self.target_scaling!r}.')
    if tuple(self.shapes) != tuple(self.order):
      raise ValueError(f'shapes must name the modalities of order {self.order}, in that order; '
                       f'got {tuple(self.shapes)}.')

  @property
  def target_key(self) -> str:
    """The batches' key of the targets: 'label' (classification) or 'target' (regression)."""
    return TASKS[self.task]

  @property
  def dims(self) -> dict[str, int]:
    """`{modality: feature width}` of flat (1-D per example) modalities.

    Raises:
      ValueError: a modality whose examples are not 1-D (use `shapes` for those).
    """
    for modality, shape in self.shapes.items():
      if len(shape) != 1:
        raise ValueError(f'dims needs 1-D examples, but modality {modality!r} has per-example '
                         f'shape {shape}; use shapes instead.')
    return {modality: shape[0] for modality, shape in self.shapes.items()}

  @property
  def sizes(self) -> dict[str, int]:
    """`{'train': n, 'validation': n, 'test': n}`, the number of examples of each split."""
    return {split: len(getattr(self, split)[self.target_key]) for split in SPLIT_NAMES}


def take(batch: Batch, indices) -> Batch:
  """Selects rows `indices` of every array of a (nested) batch.

  Args:
    batch: a dict whose leaves are arrays with the examples on axis 0 (`inputs`, `mask`,
      `label` or `target`, and any other entry such as `meta`).
    indices: integer row indices or a bool row mask.

  Returns:
    A batch of the same structure.

  >>> take({'inputs': {'a': np.arange(4)}, 'label': np.arange(4) * 10}, [3, 1])['label'].tolist()
  [30, 10]
  """
  return {key: take(value, indices) if isinstance(value, dict) else value[indices]
          for key, value in batch.items()}


def stratified_split(labels: np.ndarray, fractions: Sequence[float], *, seed: int):
  """Splits row indices into parts with the given fractions, stratified by label.

  Within each class the rows are shuffled with `seed`, and the part sizes are apportioned by
  largest remainder, so every part gets (as nearly as possible) the class proportions.

  Args:
    labels: int `[N]`.
    fractions: part fractions summing to 1.
    seed: integer seed of the shuffle.

  Returns:
    A list of sorted index arrays, one per fraction.

  Raises:
    ValueError: negative fractions, or fractions that do not sum to 1.

  >>> [part.tolist() for part in stratified_split(np.array([0, 0, 1, 1]), [0.5, 0.5], seed=0)]
  [[0, 2], [1, 3]]
  """
  fractions = np.asarray(fractions, np.float64)
  if np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
    raise ValueError(f'fractions must be non-negative and sum to 1; got {fractions.tolist()}.')
  rng = np.random.default_rng(seed)
  parts = [[] for _ in fractions]
  for label in np.unique(labels):
    rows = rng.permutation(np.flatnonzero(labels == label))
    exact = fractions * len(rows)
    sizes = np.floor(exact).astype(int)
    remainder = len(rows) - sizes.sum()
    sizes[np.argsort(-(exact - sizes), kind='stable')[:remainder]] += 1
    for part, chunk in zip(parts, np.split(rows, np.cumsum(sizes)[:-1])):
      part.extend(chunk.tolist())
  return [np.sort(np.asarray(part, np.int64)) for part in parts]


def random_split(num_rows: int, *, seed: int, validation_fraction: float,
                 test_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A seeded random split of `range(num_rows)` into sorted train/validation/test rows.

  The test and validation parts get `round(fraction * num_rows)` rows; training gets the rest.

  Args:
    num_rows: the number of rows `N`.
    seed: integer seed of the permutation.
    validation_fraction, test_fraction: fractions in `[0, 1)`.

  Returns:
    `(train, validation, test)`, sorted int64 row indices.

  Raises:
    ValueError: a fraction outside `[0, 1)`, or fractions that leave no training rows.

  >>> [part.tolist() for part in random_split(5, seed=0, validation_fraction=0.2,
  ...                                          test_fraction=0.2)]
  [[0, 1, 3], [4], [2]]
  """
  validation_fraction = check_fraction(validation_fraction, 'validation_fraction')
  test_fraction = check_fraction(test_fraction, 'test_fraction')
  num_test = round(test_fraction * num_rows)
  num_validation = round(validation_fraction * num_rows)
  if num_test + num_validation >= num_rows:
    raise ValueError('validation_fraction + test_fraction must leave training rows; got '
                     f'{validation_fraction!r} + {test_fraction!r} of {num_rows} rows.')
  permutation = np.random.default_rng(seed).permutation(num_rows)
  test, validation, train = np.split(permutation, [num_test, num_test + num_validation])
  return np.sort(train), np.sort(validation), np.sort(test)


def fit_scaling(inputs: dict[str, np.ndarray],
                kind: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Fits per-feature `(shift, scale)` on training inputs: `x -> (x - shift) / scale`.

  `minmax` maps the training range of each feature to [0, 1] (TMC's MinMaxScaler), `standard`
  to zero mean and unit variance (population standard deviation); constant features get
  scale 1. `none` gives shift 0 and scale 1.

  Args:
    inputs: `{modality: [N, ...]}` training inputs (N >= 1).
    kind: one of `SCALINGS`.

  Returns:
    `{modality: (shift, scale)}`, each of the per-example shape `[...]`.

  Raises:
    KeyError: an unknown `kind` (the message lists the valid ones).

  >>> shift, scale = fit_scaling({'a': np.array([[0.0], [2.0]])}, 'minmax')['a']
  >>> shift.tolist(), scale.tolist()
  ([0.0], [2.0])
  """
  check_name(kind, SCALINGS, 'scaling')
  stats = {}
  for modality, x in inputs.items():
    if kind == 'minmax':
      shift, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
    elif kind == 'standard':
      shift, scale = x.mean(axis=0), x.std(axis=0)
    else:
      shift, scale = np.zeros(x.shape[1:]), np.ones(x.shape[1:])
    stats[modality] = (shift, np.where(scale > 0, scale, 1.0))
  return stats


def apply_scaling(batch: Batch, stats, dtype=np.float32) -> Batch:
  """Applies `fit_scaling`'s statistics to a batch's inputs and casts them to `dtype`.

  Args:
    batch: a batch with `inputs` `{modality: [N, ...]}`.
    stats: `{modality: (shift, scale)}` for every modality of `inputs`.
    dtype: the dtype of the scaled inputs.

  Returns:
    The batch with scaled inputs; its other entries are unchanged.

  >>> stats = {'a': (np.array([1.0]), np.array([2.0]))}
  >>> apply_scaling({'inputs': {'a': np.array([[3.0]])}}, stats)['inputs']['a'].tolist()
  [[1.0]]
  """
  inputs = {modality: ((x - stats[modality][0]) / stats[modality][1]).astype(dtype)
            for modality, x in batch['inputs'].items()}
  return {**batch, 'inputs': inputs}


# ---------------------------------------------------------------------------------------------
# Argument checks shared with `lqmm.data.load`.


def check_name(value, valid: Sequence[str], what: str) -> str:
  """Returns `value` if it is one of `valid`, else raises KeyError listing them."""
  if not isinstance(value, str) or value not in valid:
    raise KeyError(f'Unknown {what} {value!r}; valid names: {", ".join(sorted(valid))}.')
  return value


def check_fraction(value, name: str) -> float:
  """Returns a fraction in `[0, 1)` as a Python float, else raises ValueError naming it.

  Python, NumPy and JAX real scalars are accepted; bools, strings, arrays with more than one
  element, NaN and values outside `[0, 1)` are not.
  """
  array = None if isinstance(value, (bool, np.bool_, str, bytes)) else np.asarray(value)
  if (array is None or array.ndim != 0 or array.dtype == np.bool_ or
      not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating))):
    raise ValueError(f'{name} must be a real number in [0, 1); got {value!r}.')
  fraction = float(array)
  if not 0 <= fraction < 1:  # also rejects NaN
    raise ValueError(f'{name} must lie in [0, 1); got {value!r}.')
  return fraction


def check_seed(value, name: str = 'seed') -> int:
  """Returns a non-negative integer seed as a Python int, else raises ValueError naming it."""
  array = None if isinstance(value, (bool, np.bool_, str, bytes)) else np.asarray(value)
  if (array is None or array.ndim != 0 or not np.issubdtype(array.dtype, np.integer) or
      int(array) < 0):
    raise ValueError(f'{name} must be a non-negative integer; got {value!r}.')
  return int(array)


def check_order(order, valid: Sequence[str], name: str, what: str) -> tuple[str, ...]:
  """Checks a non-empty sequence of distinct modality names, each one of `valid`.

  Args:
    order: the names given by the caller.
    valid: the valid names.
    name: the argument's name for the messages (e.g. 'modalities').
    what: how the KeyError calls an entry (e.g. "modality of 'handwritten'").

  Returns:
    `order` as a tuple.

  Raises:
    ValueError: a string instead of a sequence of names, an empty sequence or a repeated name.
    KeyError: an unknown name (the message lists the valid ones).
  """
  if isinstance(order, (str, bytes)) or not isinstance(order, Iterable):
    raise ValueError(f'{name} must be a sequence of modality names such as '
                     f'{tuple(valid)[:2]}; got {order!r}.')
  order = tuple(order)
  if not order:
    raise ValueError(f'{name} must name at least one modality; got an empty {name}. Valid '
                     f'names: {", ".join(sorted(valid))}.')
  for entry in order:
    check_name(entry, valid, what)
  repeated = sorted({entry for entry in order if order.count(entry) > 1})
  if repeated:
    raise ValueError(f'{name} must not repeat a modality; got {order} (repeated: '
                     f'{", ".join(repeated)}).')
  return order


# ---------------------------------------------------------------------------------------------
# from_arrays.


def from_arrays(inputs: Mapping[str, np.ndarray], targets, *,
                masks: Mapping[str, np.ndarray] | None = None,
                order: Sequence[str] | None = None, task: str | None = None,
                num_classes: int | None = None, validation_fraction: float = 0.1,
                test_fraction: float = 0.2, split: Mapping[str, np.ndarray] | None = None,
                seed: int = 0, scaling: str = 'standard', name: str = 'arrays') -> Splits:
  """Makes `Splits` from a user's own arrays: splits, fits the scaling on train, scales.

  Without `split`, classification is split with `stratified_split` (fractions
  `[1 - validation_fraction - test_fraction, validation_fraction, test_fraction]` of all
  rows, every class in proportion) and regression with `random_split`, both seeded with
  `seed`. The input scaling is fitted on the training split only, on its present entries
  when `masks` are given; absent entries are set to 0 after scaling (their values are never
  read, so they may be NaN). For regression the target is standardised with the training
  split's mean and standard deviation unless `scaling == 'none'` (`target_scaling` records
  both).

  Args:
    inputs: `{modality: [N, ...]}` real arrays, one row per example.
    targets: `[N]` integer class labels (classification) or real values (regression).
    masks: optional `{modality: bool[N]}`, True where the modality is present; a modality
      without a mask is present everywhere.
    order: the modalities to keep, in fusion order; None keeps all in the order of `inputs`.
    task: 'classification' or 'regression'; None infers it from the dtype of `targets`
      (integers and bools: classification; floating point: regression).
    num_classes: the number of classes (classification only); None takes `max(targets) + 1`.
    validation_fraction: fraction of all rows held out for model selection (0 for none);
      ignored when `split` is given.
    test_fraction: fraction of all rows held out for the test; ignored when `split` is given.
    split: optional `{'train', 'validation', 'test'}` -> int row indices (disjoint, within
      `[0, N)`; validation and test may be empty) instead of the fractions; the rows keep the
      given order.
    seed: integer seed of the split.
    scaling: 'standard' (zero mean, unit variance per feature), 'minmax' (to [0, 1]) or 'none'.
    name: the name recorded in the returned `Splits`.

  Returns:
    `Splits` with float32 inputs, bool masks and int32 labels or float32 targets;
    `protocol` None.

  Raises:
    ValueError: an empty `inputs`, arrays whose row counts disagree, non-finite present
      inputs or targets, non-integer class labels, labels outside `[0, num_classes)`, bad
      fractions or seed, a split whose indices overlap or fall outside `[0, N)`, a class with
      too few examples for the stratified split, or a modality with no present training row.
    TypeError: a mask that is not bool, or non-numeric inputs or targets.
    KeyError: an unknown task, scaling, or modality in `order` or `masks` (the message lists
      the valid ones).

  >>> splits = from_arrays({'a': np.arange(20.0).reshape(10, 2)}, np.arange(10) % 2,
  ...                      validation_fraction=0.2, test_fraction=0.2)
  >>> splits.sizes, splits.dims, splits.num_classes
  ({'train': 6, 'validation': 2, 'test': 2}, {'a': 2}, 2)
  """
  order, inputs = _check_inputs(inputs, order)
  num_rows = len(next(iter(inputs.values())))
  task, targets, num_classes = _check_targets(targets, task, num_classes, num_rows)
  masks = _check_masks(masks, inputs, order, num_rows)
  check_name(scaling, SCALINGS, 'scaling')
  if not isinstance(name, str) or not name:
    raise ValueError(f'name must be a non-empty string; got {name!r}.')
  if split is not None:
    rows = _check_split(split, num_rows)
  else:
    validation_fraction = check_fraction(validation_fraction, 'validation_fraction')
    test_fraction = check_fraction(test_fraction, 'test_fraction')
    seed = check_seed(seed)
    if task == 'classification':
      rows = _stratified_rows(targets, validation_fraction, test_fraction, seed)
    else:
      rows = dict(zip(SPLIT_NAMES, random_split(
          num_rows, seed=seed, validation_fraction=validation_fraction,
          test_fraction=test_fraction)))
  for modality in order:
    if not masks[modality][rows['train']].any():
      raise ValueError(f'masks[{modality!r}] marks modality {modality!r} absent in every '
                       'training row; its scaling cannot be fitted. Give it present training '
                       'rows or leave it out of order.')
  return build_splits(inputs, masks, targets, rows, order=order, task=task,
                      num_classes=num_classes, scaling=scaling,
                      scale_target=scaling != 'none', name=name, protocol=None)


def build_splits(inputs: dict[str, np.ndarray], masks: dict[str, np.ndarray],
                 targets: np.ndarray, rows: dict[str, np.ndarray], *, order: tuple[str, ...],
                 task: str, num_classes: int | None, scaling: str, scale_target: bool,
                 name: str, protocol: str | None) -> Splits:
  """Takes the rows of each split, fits the scaling on train and returns `Splits`.

  The arguments are assumed valid (`from_arrays` and `lqmm.data.load` check them).

  Args:
    inputs: `{modality: f64[N, ...]}` in `order`.
    masks: `{modality: bool[N]}` in `order`.
    targets: `i32[N]` labels or `f64[N]` regression targets.
    rows: `{'train', 'validation', 'test'}` -> row indices.
    order, task, num_classes, name, protocol: recorded in the `Splits`.
    scaling: one of `SCALINGS`, fitted on the present training entries.
    scale_target: standardise a regression target with the training mean and std.

  Returns:
    `Splits` with float32 inputs.
  """
  whole = {'inputs': inputs, 'mask': masks, TASKS[task]: targets}
  parts = {split: take(whole, rows[split]) for split in SPLIT_NAMES}
  complete = all(mask.all() for mask in masks.values())
  train = parts['train']
  stats = fit_scaling(train['inputs'] if complete else {
      modality: x[train['mask'][modality]] for modality, x in train['inputs'].items()}, scaling)
  parts = {split: apply_scaling(batch, stats) for split, batch in parts.items()}
  if not complete:
    for batch in parts.values():
      batch['inputs'] = {modality: np.where(
          batch['mask'][modality].reshape((-1,) + (1,) * (x.ndim - 1)), x, np.float32(0))
                         for modality, x in batch['inputs'].items()}
  target_scaling = None
  if task == 'regression':
    shift, scale = 0.0, 1.0
    if scale_target:
      shift, scale = float(train['target'].mean()), float(train['target'].std())
      scale = scale if scale > 0 else 1.0
    target_scaling = (shift, scale)
    for split, batch in parts.items():
      batch['target'] = ((batch['target'] - shift) / scale).astype(np.float32)
  return Splits(
      train=parts['train'], validation=parts['validation'], test=parts['test'], order=order,
      task=task, num_classes=num_classes,
      shapes={modality: tuple(inputs[modality].shape[1:]) for modality in order},
      scaling=stats, target_scaling=target_scaling, name=name, protocol=protocol)


def _check_inputs(inputs, order) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
  """Checks `inputs` and `order`; returns the order and the kept inputs as float64."""
  if not isinstance(inputs, Mapping):
    raise ValueError(f'inputs must be a dict {{modality: [N, ...] array}}; got '
                     f'{type(inputs).__name__}.')
  if not inputs:
    raise ValueError('inputs must hold at least one modality; got an empty dict.')
  for modality in inputs:
    if not isinstance(modality, str) or not modality:
      raise ValueError(f'inputs must be keyed by non-empty modality names; got key '
                       f'{modality!r}.')
  order = tuple(inputs) if order is None else check_order(order, tuple(inputs), 'order',
                                                          'modality in order')
  arrays = {}
  for modality in order:
    x = np.asarray(inputs[modality])
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or
                                   np.issubdtype(x.dtype, np.floating)):
      raise TypeError(f'inputs[{modality!r}] must be an integer or floating-point array; got '
                      f'dtype {x.dtype}.')
    if x.ndim < 1:
      raise ValueError(f'inputs[{modality!r}] must be [N, ...] with one row per example; got '
                       f'shape {x.shape}.')
    arrays[modality] = x.astype(np.float64, copy=False)
  shapes = {modality: x.shape for modality, x in arrays.items()}
  if len({shape[0] for shape in shapes.values()}) > 1:
    raise ValueError(f'inputs must have the same number of rows N in every modality; got '
                     f'shapes {shapes}.')
  if not shapes[order[0]][0]:
    raise ValueError(f'inputs must hold at least one example; got shapes {shapes}.')
  return order, arrays


def _check_targets(targets, task, num_classes, num_rows):
  """Checks `targets` against `task` and `num_classes`; returns `(task, targets, classes)`."""
  targets = np.asarray(targets)
  if targets.dtype == np.bool_:
    targets = targets.astype(np.int64)
  if not (np.issubdtype(targets.dtype, np.integer) or np.issubdtype(targets.dtype, np.floating)):
    raise TypeError(f'targets must be integer class labels or real regression targets; got '
                    f'dtype {targets.dtype}.')
  if targets.shape != (num_rows,):
    raise ValueError(f'targets must have shape [N] = ({num_rows},), one per row of inputs; got '
                     f'shape {targets.shape}.')
  if task is None:
    task = 'classification' if np.issubdtype(targets.dtype, np.integer) else 'regression'
  check_name(task, tuple(TASKS), 'task')
  checks.check_finite(targets, 'targets')
  if task == 'regression':
    if num_classes is not None:
      raise ValueError(f'num_classes must be None for regression; got {num_classes!r}.')
    return task, targets.astype(np.float64), None
  if not np.issubdtype(targets.dtype, np.integer):
    fractional = targets[targets != np.round(targets)]
    if fractional.size:
      raise ValueError('targets must hold integer class labels for classification; got '
                       f'non-integer value(s) such as {fractional[0]!r}. Pass '
                       "task='regression' for real-valued targets.")
  labels = targets.astype(np.int64)
  if num_classes is None:
    num_classes = int(labels.max()) + 1
  elif (isinstance(num_classes, (bool, np.bool_)) or
        not isinstance(num_classes, numbers.Integral) or num_classes < 1):
    raise ValueError(f'num_classes must be a positive integer; got {num_classes!r}.')
  if labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(f'targets must lie in [0, num_classes) = [0, {num_classes}); got values in '
                     f'[{labels.min()}, {labels.max()}].')
  return task, labels.astype(np.int32), int(num_classes)


def _check_masks(masks, inputs, order, num_rows) -> dict[str, np.ndarray]:
  """Checks `masks`; returns one bool `[N]` mask per modality of `order` (True = present)."""
  masks = {} if masks is None else masks
  if not isinstance(masks, Mapping):
    raise ValueError(f'masks must be a dict {{modality: bool[N]}} or None; got '
                     f'{type(masks).__name__}.')
  for modality in masks:
    check_name(modality, tuple(inputs), 'modality in masks')
  out = {}
  for modality in order:
    mask = np.ones(num_rows, bool) if modality not in masks else np.asarray(masks[modality])
    if mask.dtype != np.bool_:
      raise TypeError(f'masks[{modality!r}] must be a bool array (True = present); got dtype '
                      f'{mask.dtype}.')
    if mask.shape != (num_rows,):
      raise ValueError(f'masks[{modality!r}] must have shape [N] = ({num_rows},); got shape '
                       f'{mask.shape}.')
    present = inputs[modality][mask]
    if not np.all(np.isfinite(present)):
      bad = int(np.size(present) - np.count_nonzero(np.isfinite(present)))
      raise ValueError(f'inputs[{modality!r}] holds {bad} NaN or infinite value(s) in present '
                       'rows; expected finite values (mark missing rows absent in masks).')
    out[modality] = mask
  return out


def _check_split(split, num_rows) -> dict[str, np.ndarray]:
  """Checks a user's `{'train', 'validation', 'test'}` -> row indices; returns int64 arrays."""
  if not isinstance(split, Mapping) or set(split) != set(SPLIT_NAMES):
    keys = sorted(split) if isinstance(split, Mapping) else type(split).__name__
    raise ValueError(f'split must be a dict with exactly the keys {", ".join(SPLIT_NAMES)}; '
                     f'got {keys}.')
  rows = {}
  for part in SPLIT_NAMES:
    indices = np.asarray(split[part])
    if indices.size == 0:
      indices = indices.astype(np.int64)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
      raise ValueError(f"split[{part!r}] must be a 1-D array of integer row indices; got "
                       f'shape {indices.shape} and dtype {indices.dtype}.')
    if indices.size and (indices.min() < 0 or indices.max() >= num_rows):
      raise ValueError(f'split[{part!r}] must index rows in [0, {num_rows}); got values in '
                       f'[{indices.min()}, {indices.max()}].')
    if len(np.unique(indices)) != len(indices):
      raise ValueError(f'split[{part!r}] repeats a row index; each row may be used once.')
    rows[part] = indices.astype(np.int64)
  if not len(rows['train']):
    raise ValueError("split['train'] must hold at least one row; got none.")
  for index, first in enumerate(SPLIT_NAMES):
    for second in SPLIT_NAMES[index + 1:]:
      shared = np.intersect1d(rows[first], rows[second])
      if shared.size:
        raise ValueError(f'split[{first!r}] and split[{second!r}] overlap in {shared.size} '
                         f'row(s), e.g. row {shared[0]}; the parts must be disjoint.')
  return rows


def _stratified_rows(labels, validation_fraction, test_fraction, seed) -> dict[str, np.ndarray]:
  """`stratified_split` of all rows into train/validation/test, checking every class fits."""
  if validation_fraction + test_fraction >= 1:
    raise ValueError('validation_fraction + test_fraction must be < 1 to leave training data; '
                     f'got {validation_fraction!r} + {test_fraction!r}.')
  fractions = [1 - validation_fraction - test_fraction, validation_fraction, test_fraction]
  rows = dict(zip(SPLIT_NAMES, stratified_split(labels, fractions, seed=seed)))
  needed = sum(fraction > 0 for fraction in fractions)
  classes, counts = np.unique(labels, return_counts=True)
  in_train = np.isin(classes, labels[rows['train']])
  for label, count, trained in zip(classes, counts, in_train):
    if count < needed or not trained:
      raise ValueError(
          f'targets has {count} example(s) of class {label}, too few for a stratified split '
          f'with fractions train {fractions[0]:.3g}, validation {validation_fraction:.3g}, test '
          f'{test_fraction:.3g}: each class needs at least one example per non-empty part and '
          'one in train. Lower validation_fraction or test_fraction, drop the class, or pass '
          'split=.')
  return rows
