"""The one entry to lqmm's data sets: `load(name, protocol)` returns `Splits`.

`load` builds the TFDS data set if needed, reads it with `tfds.data_source` (no TensorFlow),
makes the data set's train/validation/test split, fits the scaling on the training split only
and returns `Splits` of numpy batches::

    splits = load('handwritten')             # stratified 1,400 / 200 / 400, min-max scaling
    splits.train  # {'inputs': {'pix': f32[1400, 240], ...}, 'mask': {'pix': bool[1400], ...},
                  #  'label': i32[1400]}

`DATASETS` is the registry of every name `load` knows: each `DatasetSpec` says the data set's
modalities, task, number of classes, protocols and defaults. `read` returns a data set's raw
TFDS splits (unsplit, unscaled). Arrays of one's own go through `lqmm.data.from_arrays`.

Defaults (`None` for `validation_fraction`, `test_fraction` or `scaling` means these):

| name | protocol | validation | test | scaling |
|---|---|---|---|---|
| handwritten | stratified (default) | 0.1 of all | 0.2 of all | minmax |
| handwritten | tmc | 0.1 of TMC's 1,600 train | TMC's 400 | minmax |
| handwritten_fac_mor | stratified (default), tmc | as handwritten | as handwritten | standard |
| handwritten_pix_zer | stratified (default), tmc | as handwritten | as handwritten | standard |
| handwritten_kar_fou | stratified (default), tmc | as handwritten | as handwritten | standard |
| rosmap | original | 0.1 of the 245 train | the 106 test | minmax |
| diabetes | random | 0.2 of all | 0.2 of all | standard (inputs and target) |
| av_digits | fsdd | fixed 300 | fixed 300 | standard (audio only) |
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lqmm import checks
from lqmm.data import av_digits
from lqmm.data import builders
from lqmm.data import diabetes
from lqmm.data import files
from lqmm.data import splitting
from lqmm.data.handwritten_pairs import HANDWRITTEN_IMBALANCED_PAIRS

Batch = dict


@dataclasses.dataclass(frozen=True)
class Protocol:
  """One way of splitting a data set, with its default fractions.

  Attributes:
    description: how the split is made.
    validation_fraction: the default validation fraction; None when the validation split is
      fixed (then `load` accepts only `validation_fraction=None`).
    test_fraction: the default test fraction; None when the test split is published or fixed
      (then `load` accepts only `test_fraction=None`).
  """
  description: str
  validation_fraction: float | None
  test_fraction: float | None


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What `load` knows about one data set.

  Attributes:
    description: one line on the data.
    modalities: the modalities in canonical (fusion) order; `load`'s default.
    task: 'classification' or 'regression'.
    num_classes: the number of classes; None for regression.
    protocols: `{name: Protocol}`; the first is the default.
    scaling: the default scaling.
    scalings: the valid scalings.
    options: the extra keyword options of `load` for this data set, with their defaults.
    read: `(spec, protocol, *, seed, data_dir, manual_dir, allow_download) -> {split: batch}`,
      the raw TFDS splits (see `read`).
    build: `(spec, *, name, protocol, order, seed, validation_fraction, test_fraction,
      scaling, data_dir, manual_dir, allow_download, **options) -> Splits`, called by `load`
      with checked arguments.
  """
  description: str
  modalities: tuple[str, ...]
  task: str
  num_classes: int | None
  protocols: dict[str, Protocol]
  scaling: str
  scalings: tuple[str, ...]
  options: dict[str, Any]
  read: Callable[..., dict[str, Batch]] = dataclasses.field(repr=False)
  build: Callable[..., splitting.Splits] = dataclasses.field(repr=False)

  @property
  def default_protocol(self) -> str:
    """The protocol `load` uses when none is given."""
    return next(iter(self.protocols))

  def defaults(self, protocol: str | None = None) -> dict[str, Any]:
    """`load`'s defaults for `protocol` (None: the default protocol), options included.

    >>> DATASETS['rosmap'].defaults()['validation_fraction']
    0.1
    """
    protocol = self.default_protocol if protocol is None else protocol
    spec = checks.lookup(self.protocols, protocol, 'protocol')
    return {'protocol': protocol, 'modalities': self.modalities,
            'validation_fraction': spec.validation_fraction,
            'test_fraction': spec.test_fraction, 'scaling': self.scaling, **self.options}


def _read_tfds(spec: DatasetSpec, protocol: str, *, builder: type,
               configs: dict[str, tuple[str | None, dict[str, str]]], seed: int, data_dir,
               manual_dir, allow_download: bool) -> dict[str, Batch]:
  """Reads the TFDS splits of a feature-vector data set in file order (see `read`)."""
  del seed  # the raw data do not depend on it
  config, split_names = configs[protocol]
  dataset = builder(config=config, data_dir=data_dir, manual_dir=manual_dir,
                    allow_download=allow_download)
  prepared = files.prepared_records(dataset, tuple(split_names.values()))
  out = {}
  for split, tfds_split in split_names.items():
    records = prepared[tfds_split]
    out[split] = {
        'inputs': {view: np.stack([r[view] for r in records]) for view in spec.modalities},
        'mask': {view: np.ones(len(records), bool) for view in spec.modalities},
        'label': np.asarray([r['label'] for r in records], np.int32),
    }
  return out


def _build_feature_vectors(spec: DatasetSpec, *, name: str, protocol: str,
                           order: tuple[str, ...], seed: int, validation_fraction: float,
                           test_fraction: float | None, scaling: str, data_dir, manual_dir,
                           allow_download: bool) -> splitting.Splits:
  """Splits Handwritten or ROSMAP: stratified over all rows, or validation carved from train.

  A protocol without a published test split (`test_fraction` not None) is split into
  train/validation/test with `stratified_split` over all rows; one with a published test split
  keeps it and carves `validation_fraction` of the training rows out as validation, stratified.
  """
  raw = spec.read(spec, protocol, seed=seed, data_dir=data_dir, manual_dir=manual_dir,
                  allow_download=allow_download)
  split = None
  if test_fraction is None:
    train, test = raw['train'], raw['test']
    train_rows, validation_rows = splitting.stratified_split(
        train['label'], [1 - validation_fraction, validation_fraction], seed=seed)
    lost = np.setdiff1d(train['label'], train['label'][train_rows])
    if lost.size:
      raise ValueError(f'validation_fraction {validation_fraction!r} leaves no training example of '
                       f'class(es) {lost.tolist()} in the {len(train["label"])} published training '
                       f'examples of {name!r}; lower it.')
    num_train = len(train['label'])
    split = {'train': train_rows, 'validation': validation_rows,
             'test': num_train + np.arange(len(test['label']))}
    whole = {'inputs': {view: np.concatenate([train['inputs'][view], test['inputs'][view]])
                        for view in order},
             'label': np.concatenate([train['label'], test['label']])}
  else:
    (whole,) = raw.values()
  splits = splitting.from_arrays(
      {view: whole['inputs'][view] for view in order}, whole['label'], order=order,
      task=spec.task, num_classes=spec.num_classes, validation_fraction=validation_fraction,
      test_fraction=0.0 if test_fraction is None else test_fraction, split=split, seed=seed,
      scaling=scaling, name=name)
  return dataclasses.replace(splits, protocol=protocol)


def _read_diabetes(spec, protocol, *, seed, data_dir, manual_dir, allow_download):
  del spec, protocol, seed, manual_dir, allow_download  # the data ship with lqmm
  return {'full': diabetes.read_diabetes(data_dir=data_dir)}


def _read_av_digits(spec, protocol, *, seed, data_dir, manual_dir, allow_download):
  del spec, protocol
  return av_digits.read_av_digits(seed=seed, data_dir=data_dir, manual_dir=manual_dir,
                                  allow_download=allow_download)


_STRATIFIED = Protocol(
    'The embedded UCI copy (2,000 samples) split into train/validation/test with a seeded '
    'stratified split of all samples.', validation_fraction=0.1, test_fraction=0.2)
_TMC = Protocol(
    "TMC's published 1,600/400 train/test split (handwritten_6views.mat); validation is a "
    'seeded stratified fraction of the 1,600 training samples.', validation_fraction=0.1,
    test_fraction=None)
_HANDWRITTEN_CONFIGS = {'stratified': ('uci', {'full': 'full'}),
                        'tmc': ('tmc', {'train': 'train', 'test': 'test'})}


def _handwritten(description: str, views: Sequence[str], scaling: str) -> DatasetSpec:
  return DatasetSpec(
      description=description, modalities=tuple(views), task='classification', num_classes=10,
      protocols={'stratified': _STRATIFIED, 'tmc': _TMC}, scaling=scaling,
      scalings=splitting.SCALINGS, options={},
      read=functools.partial(_read_tfds, builder=builders.Handwritten,
                             configs=_HANDWRITTEN_CONFIGS),
      build=_build_feature_vectors)


#: Every data set `load` knows, by name.
DATASETS: dict[str, DatasetSpec] = {
    'handwritten': _handwritten(
        'UCI Multiple Features: 2,000 handwritten digits, six feature views, 10 classes.',
        builders.HANDWRITTEN_VIEWS, 'minmax'),
    **{f'handwritten_{pair}': _handwritten(
        f'Handwritten\'s imbalanced view pair {views[0]} (strong) + {views[1]} (weak); see '
        '`lqmm.data.HANDWRITTEN_IMBALANCED_PAIRS`.', views, 'standard')
       for pair, views in HANDWRITTEN_IMBALANCED_PAIRS.items()},
    'rosmap': DatasetSpec(
        description="MOGONET's ROSMAP: mRNA, DNA methylation and miRNA (200 features each) of "
                    '351 subjects; normal control vs Alzheimer\'s disease.',
        modalities=tuple(builders.ROSMAP_VIEWS), task='classification', num_classes=2,
        protocols={'original': Protocol(
            "MOGONET's published 245/106 train/test split; validation is a seeded stratified "
            'fraction of the 245 training subjects.', validation_fraction=0.1,
            test_fraction=None)},
        scaling='minmax', scalings=splitting.SCALINGS, options={},
        read=functools.partial(_read_tfds, builder=builders.Rosmap,
                               configs={'original': (None, {'train': 'train', 'test': 'test'})}),
        build=_build_feature_vectors),
    'diabetes': DatasetSpec(
        description='Efron et al.\'s diabetes regression: 442 patients, clinical (4) and blood '
                    'serum (6) variables, disease progression after one year.',
        modalities=tuple(diabetes.DIABETES_MODALITIES), task='regression', num_classes=None,
        protocols={'random': Protocol(
            'A seeded random split of the 442 patients (`lqmm.data.random_split`).',
            validation_fraction=0.2, test_fraction=0.2)},
        scaling='standard', scalings=splitting.SCALINGS, options={'scale_target': True},
        read=_read_diabetes, build=diabetes.build_splits),
    'av_digits': DatasetSpec(
        description='Spoken digits (FSDD audio) paired by label with MNIST-5k images; the seed '
                    'draws the pairing and the validation takes.',
        modalities=('audio', 'image'), task='classification', num_classes=10,
        protocols={'fsdd': Protocol(
            "FSDD's test takes 0-4 (300 clips), 5 validation takes per speaker and digit drawn "
            'with the seed (300), the other 2,400 for training.', validation_fraction=None,
            test_fraction=None)},
        scaling='standard', scalings=av_digits.AUDIO_SCALINGS,
        options={'audio': 'log_mel', 'flatten_image': False, 'log_mel_options': None},
        read=_read_av_digits, build=av_digits.build_splits),
}


def _spec_and_protocol(name: str, protocol: str | None) -> tuple[DatasetSpec, str]:
  spec = checks.lookup(DATASETS, name, 'dataset')
  protocol = spec.default_protocol if protocol is None else protocol
  checks.lookup(spec.protocols, protocol, f'protocol of {name!r}')
  return spec, protocol


def load(name: str, protocol: str | None = None, *, modalities: Sequence[str] | None = None,
         seed: int = 0, validation_fraction: float | None = None,
         test_fraction: float | None = None, scaling: str | None = None, data_dir=None,
         manual_dir=None, allow_download: bool = True, **options) -> splitting.Splits:
  """Loads a registered data set, splits it, and scales it with training statistics only.

  Protocols without a published test split (Handwritten `stratified`, diabetes `random`) split
  all samples into train/validation/test with `seed` (stratified by class for
  classification), `validation_fraction` and `test_fraction` being fractions of all samples.
  Protocols with a published test split (Handwritten `tmc`, ROSMAP `original`) keep it and
  carve the validation split out of the training split (`validation_fraction` of the training
  samples, stratified); their `test_fraction` must be None. AV digits' split is fixed (the seed
  draws its pairing and validation takes): both fractions must be None. The module docstring
  lists every default.

  Args:
    name: a key of `DATASETS`.
    protocol: a key of the data set's `protocols`; None takes its first.
    modalities: the modalities to keep, in fusion order; None keeps the data set's
      `modalities`.
    seed: non-negative integer seed of the split (for AV digits, of the pairing).
    validation_fraction: fraction held out for model selection (0 for none); None takes the
      protocol's default.
    test_fraction: test fraction for protocols without a published test split; None takes the
      protocol's default.
    scaling: 'minmax' (to [0, 1]), 'standard' (zero mean, unit variance) or 'none', fitted on
      the training split; None takes the data set's default. AV digits scales only its audio
      ('standard' or 'none'); images are always `pixel / 255`.
    data_dir: TFDS data directory (default: TFDS's, `~/tensorflow_datasets`).
    manual_dir: folder with raw files (default: `$LQMM_MANUAL_DIR`); e.g. `../shared/data`.
    allow_download: whether a builder may fetch missing raw files from the public origin.
    **options: the data set's own options (`DATASETS[name].options`): diabetes
      `scale_target` (standardise the target, default True); AV digits `audio` ('log_mel' or
      'waveform'), `flatten_image` (images as `[N, 784]`) and `log_mel_options` (overrides of
      `lqmm.data.av_digits.LOG_MEL_OPTIONS`).

  Returns:
    `Splits` with float32 inputs.

  Raises:
    KeyError: an unknown data set, protocol, modality, scaling or option (the message lists
      the valid ones).
    ValueError: empty or repeated `modalities`, a bad seed or fraction (outside `[0, 1)`,
      NaN, not a real number, fractions that leave no training data, or a fraction given for a
      published or fixed split).
    FileNotFoundError: the raw files are neither in `manual_dir` nor downloadable; the message
      says what to do.
  """
  spec, protocol = _spec_and_protocol(name, protocol)
  order = spec.modalities if modalities is None else splitting.check_order(
      modalities, spec.modalities, 'modalities', f'modality of {name!r}')
  scaling = spec.scaling if scaling is None else splitting.check_name(
      scaling, spec.scalings, 'scaling')
  for option in options:
    if option not in spec.options:
      valid = ', '.join(sorted(spec.options)) or 'none (it takes no options)'
      raise KeyError(f'Unknown option {option!r} of {name!r}; valid names: {valid}.')
  defaults = spec.protocols[protocol]
  fractions = {}
  for argument, value, default in (
      ('validation_fraction', validation_fraction, defaults.validation_fraction),
      ('test_fraction', test_fraction, defaults.test_fraction)):
    if default is None and value is not None:
      kind = 'validation' if argument == 'validation_fraction' else 'test'
      raise ValueError(f'{argument} must be None for {name!r} protocol {protocol!r}: its '
                       f'{kind} split is fixed ({defaults.description}); got {value!r}.')
    fractions[argument] = default if value is None else splitting.check_fraction(value, argument)
  if (defaults.test_fraction is not None and
      fractions['validation_fraction'] + fractions['test_fraction'] >= 1):
    raise ValueError('validation_fraction + test_fraction must be < 1 to leave training data; '
                     f'got {fractions["validation_fraction"]!r} + {fractions["test_fraction"]!r}.')
  return spec.build(spec, name=name, protocol=protocol, order=order,
                    seed=splitting.check_seed(seed), scaling=scaling, data_dir=data_dir,
                    manual_dir=manual_dir, allow_download=allow_download, **fractions,
                    **{**spec.options, **options})


def read(name: str, protocol: str | None = None, *, seed: int = 0, data_dir=None,
         manual_dir=None, allow_download: bool = True) -> dict[str, Batch]:
  """Builds (once) and reads a data set's raw TFDS splits: in file order, unsplit, unscaled.

  Args:
    name: a key of `DATASETS`.
    protocol: a key of the data set's `protocols`; None takes its first.
    seed: AV digits' pairing seed (the other data sets' raw data do not depend on it).
    data_dir, manual_dir, allow_download: see `load`.

  Returns:
    `{split: batch}`: `'full'` for Handwritten `stratified` and diabetes, `'train'` and
    `'test'` for the published splits, and `'train'`, `'validation'`, `'test'` for AV digits;
    float64 feature vectors (int16 waveforms and uint8 images for AV digits), all-True masks,
    and `'label'` (i32) or `'target'` (f64).

  Raises:
    KeyError: an unknown `name` or `protocol` (the message lists the valid ones).
    ValueError: a bad seed.
    FileNotFoundError: the raw files are neither in `manual_dir` nor downloadable.
  """
  spec, protocol = _spec_and_protocol(name, protocol)
  return spec.read(spec, protocol, seed=splitting.check_seed(seed), data_dir=data_dir,
                   manual_dir=manual_dir, allow_download=allow_download)


def load_from(section) -> splitting.Splits:
  """`load` with the `data` section of an experiment config (`lqmm.train.default_config`).

  Reads `name`, `protocol`, `modalities`, `split_seed` (as `seed`), `validation_fraction`,
  `test_fraction`, `scaling`, `data_dir`, `manual_dir`, `allow_download` and, when present,
  `options` (the data set's extra arguments); missing keys take `load`'s defaults.

  Example: `splits = lqmm.data.load_from(config.data)`.
  """
  get = lambda key, default=None: (section.get(key, default) if hasattr(section, 'get')
                                   else getattr(section, key, default))
  options = get('options')
  options = dict(options.to_dict() if hasattr(options, 'to_dict') else options or {})
  return load(get('name'), get('protocol'), modalities=get('modalities'),
              seed=get('split_seed', 0), validation_fraction=get('validation_fraction'),
              test_fraction=get('test_fraction'), scaling=get('scaling'),
              data_dir=get('data_dir'), manual_dir=get('manual_dir'),
              allow_download=get('allow_download', True), **options)

