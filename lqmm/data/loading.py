"""Loading lqmm's data sets as dict-of-modality batches with presence masks.

`prepare` is the one call experiments make: it builds the TFDS data set if needed, reads it with
`tfds.data_source` (no TensorFlow), makes the train/validation/test split, fits the scaling on
the training split only and returns `Splits` of batches::

    {'inputs': {'pix': f32[N, 240], ...}, 'mask': {'pix': bool[N], ...}, 'label': i32[N]}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

from lqmm import _checks
from lqmm.data import builders

Batch = dict


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """How to build one data set and which split protocols it offers.

  Attributes:
    builder: the TFDS builder class.
    order: canonical modality order (the fusion order of the experiments).
    num_classes: number of classes.
    protocols: `{protocol: (builder config or None, {lqmm split: TFDS split})}`; a protocol
      without a TFDS test split is split by `prepare` with a seeded stratified split.
  """
  builder: type
  order: tuple[str, ...]
  num_classes: int
  protocols: dict[str, tuple[str | None, dict[str, str]]]


DATASETS: dict[str, DatasetSpec] = {
    'handwritten': DatasetSpec(
        builder=builders.Handwritten, order=tuple(builders.HANDWRITTEN_VIEWS), num_classes=10,
        protocols={'stratified': ('uci', {'full': 'full'}),
                   'tmc': ('tmc', {'train': 'train', 'test': 'test'})}),
    'rosmap': DatasetSpec(
        builder=builders.Rosmap, order=tuple(builders.ROSMAP_VIEWS), num_classes=2,
        protocols={'original': (None, {'train': 'train', 'test': 'test'})}),
}

SCALINGS = ('minmax', 'standard', 'none')


@dataclasses.dataclass(frozen=True)
class Splits:
  """A data set ready for training: batches of numpy arrays and what they contain.

  Attributes:
    train, validation, test: batches `{'inputs', 'mask', 'label'}`; `validation` may be empty
      (zero rows) when `validation_fraction == 0`.
    order: the modality order.
    num_classes: number of classes.
    dims: `{modality: feature width}`.
  """
  train: Batch
  validation: Batch
  test: Batch
  order: tuple[str, ...]
  num_classes: int
  dims: dict[str, int]


def load(name: str, protocol: str | None = None, *, data_dir=None, manual_dir=None,
         allow_download: bool = True) -> dict[str, Batch]:
  """Builds (once) and reads a data set's TFDS splits into numpy batches in file order.

  Args:
    name: a key of `DATASETS` ('handwritten', 'rosmap').
    protocol: a key of the data set's `protocols`; None takes the first.
    data_dir: TFDS data directory (default: TFDS's, `~/tensorflow_datasets`).
    manual_dir: folder with raw files (default: `$LQMM_MANUAL_DIR`).
    allow_download: whether a builder may fetch missing raw files from the public origin.

  Returns:
    `{split: batch}` with unscaled float64 inputs and all-True masks.

  Raises:
    KeyError: unknown `name` or `protocol` (the message lists the valid ones).
    FileNotFoundError: the raw files are neither in `manual_dir` nor downloadable.
  """
  spec = _checks.lookup(DATASETS, name, 'dataset')
  protocol = protocol or next(iter(spec.protocols))
  config, split_names = _checks.lookup(spec.protocols, protocol, f'protocol of {name!r}')
  builder = spec.builder(config=config, data_dir=data_dir, manual_dir=manual_dir,
                         allow_download=allow_download)
  tfds.display_progress_bar(False)
  builder.download_and_prepare()
  sources = builder.as_data_source()
  out = {}
  for split, tfds_split in split_names.items():
    source = sources[tfds_split]
    records = source.__getitems__(range(len(source)))
    order = np.argsort([record['index'] for record in records], kind='stable')
    records = [records[i] for i in order]
    out[split] = {
        'inputs': {view: np.stack([r[view] for r in records]) for view in spec.order},
        'mask': {view: np.ones(len(records), bool) for view in spec.order},
        'label': np.asarray([r['label'] for r in records], np.int32),
    }
  return out


def take(batch: Batch, indices) -> Batch:
  """Selects rows `indices` of every array in a batch."""
  return {
      'inputs': {view: x[indices] for view, x in batch['inputs'].items()},
      'mask': {view: m[indices] for view, m in batch['mask'].items()},
      'label': batch['label'][indices],
  }


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


def fit_scaling(inputs: dict[str, np.ndarray], kind: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Fits per-feature `(shift, scale)` on training inputs: `x -> (x - shift) / scale`.

  `minmax` maps the training range of each feature to [0, 1] (TMC's MinMaxScaler), `standard`
  to zero mean and unit variance; constant features get scale 1.
  """
  _checks.lookup({k: k for k in SCALINGS}, kind, 'scaling')
  stats = {}
  for view, x in inputs.items():
    if kind == 'minmax':
      shift, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
    elif kind == 'standard':
      shift, scale = x.mean(axis=0), x.std(axis=0)
    else:
      shift, scale = np.zeros(x.shape[1:]), np.ones(x.shape[1:])
    stats[view] = (shift, np.where(scale > 0, scale, 1.0))
  return stats


def apply_scaling(batch: Batch, stats, dtype=np.float32) -> Batch:
  """Applies `fit_scaling`'s statistics to a batch and casts the inputs to `dtype`."""
  inputs = {view: ((x - stats[view][0]) / stats[view][1]).astype(dtype)
            for view, x in batch['inputs'].items()}
  return {**batch, 'inputs': inputs}


def prepare(name: str, protocol: str | None = None, *, seed: int = 0,
            validation_fraction: float = 0.1, test_fraction: float = 0.2,
            scaling: str = 'minmax', modalities: Sequence[str] | None = None,
            data_dir=None, manual_dir=None, allow_download: bool = True) -> Splits:
  """Loads a data set, splits it, and scales it with statistics of the training split only.

  Protocols whose TFDS data has no test split (Handwritten `stratified`) are split into
  train/validation/test with a seeded stratified split (`test_fraction`, `validation_fraction`
  of all samples). Protocols with a published test split (Handwritten `tmc`, ROSMAP
  `original`) keep it, and carve the validation split out of the training split
  (`validation_fraction` of the training samples).

  Args:
    name: data set name (see `DATASETS`).
    protocol: split protocol; None takes the data set's first.
    seed: seed of the stratified split(s).
    validation_fraction: fraction held out for model selection (0 for none).
    test_fraction: test fraction for protocols without a published test split.
    scaling: 'minmax' (to [0, 1]), 'standard' or 'none'.
    modalities: the modalities to keep, in fusion order; None keeps all in canonical order.
    data_dir, manual_dir, allow_download: see `load`.

  Returns:
    `Splits` with float32 inputs.

  Raises:
    KeyError: unknown data set, protocol, scaling or modality.
    FileNotFoundError: raw files unavailable (see `load`).
  """
  spec = _checks.lookup(DATASETS, name, 'dataset')
  order = tuple(modalities) if modalities is not None else spec.order
  for view in order:
    _checks.lookup({v: v for v in spec.order}, view, f'modality of {name!r}')
  if scaling not in SCALINGS:
    raise KeyError(f'Unknown scaling {scaling!r}; valid names: {", ".join(SCALINGS)}.')
  for argument, value in (('validation_fraction', validation_fraction),
                          ('test_fraction', test_fraction)):
    if not 0 <= value < 1:
      raise ValueError(f'{argument} must lie in [0, 1); got {value!r}.')
  if validation_fraction + test_fraction >= 1:
    raise ValueError('validation_fraction + test_fraction must be < 1 to leave training data; '
                     f'got {validation_fraction!r} + {test_fraction!r}.')
  raw = load(name, protocol, data_dir=data_dir, manual_dir=manual_dir,
             allow_download=allow_download)
  if 'test' in raw:
    train_rows, validation_rows = stratified_split(
        raw['train']['label'], [1 - validation_fraction, validation_fraction], seed=seed)
    train, validation, test = (take(raw['train'], train_rows),
                               take(raw['train'], validation_rows), raw['test'])
  else:
    (whole,) = raw.values()
    train_rows, validation_rows, test_rows = stratified_split(
        whole['label'], [1 - validation_fraction - test_fraction, validation_fraction,
                         test_fraction], seed=seed)
    train, validation, test = (take(whole, rows)
                               for rows in (train_rows, validation_rows, test_rows))
  keep = lambda batch: {'inputs': {v: batch['inputs'][v] for v in order},
                        'mask': {v: batch['mask'][v] for v in order}, 'label': batch['label']}
  train, validation, test = keep(train), keep(validation), keep(test)
  stats = fit_scaling(train['inputs'], scaling)
  return Splits(
      train=apply_scaling(train, stats), validation=apply_scaling(validation, stats),
      test=apply_scaling(test, stats), order=order, num_classes=spec.num_classes,
      dims={view: train['inputs'][view].shape[1] for view in order})
