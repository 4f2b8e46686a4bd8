"""The diabetes regression data (Efron et al. 2004) as two modalities: clinical and blood serum.

442 patients; ten baseline variables; the target is a quantitative measure of disease
progression one year after baseline. lqmm ships the raw (unscaled) files of scikit-learn (see
`package_data/diabetes/SOURCE.md`) and splits the variables into two modalities:

- `clinical` (4): age, sex, body mass index, average blood pressure;
- `serum` (6): the six blood serum measurements s1-s6.

`Diabetes` is a TFDS builder (array_record, `Tensor` features, no TensorFlow) with one split
`full`. `load_diabetes` reads it in file order; `prepare_diabetes` makes a seeded
train/validation/test split and standardises inputs and target with statistics of the training
split only::

    splits = prepare_diabetes(seed=0)
    splits.train  # {'inputs': {'clinical': f32[266, 4], 'serum': f32[266, 6]},
                  #  'mask': {'clinical': bool[266], 'serum': bool[266]}, 'target': f32[266]}
    splits.target_std * prediction + splits.target_mean  # back to the original units

References:
  Efron, Hastie, Johnstone, Tibshirani. "Least Angle Regression." Annals of Statistics 32(2),
  407-499 (2004).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

from lqmm import _checks
from lqmm.data import loading

PACKAGE_DATA = pathlib.Path(__file__).parent / 'package_data' / 'diabetes'

#: The ten columns of the raw file, in file order.
DIABETES_COLUMNS = ('age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6')
#: The modalities in fusion order, with the raw columns each one holds.
DIABETES_MODALITIES = {'clinical': ('age', 'sex', 'bmi', 'bp'),
                       'serum': ('s1', 's2', 's3', 's4', 's5', 's6')}
_NUM_PATIENTS = 442

Batch = dict


class Diabetes(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Efron et al.'s diabetes data: 442 patients, clinical and serum modalities, one target.

  Every example holds `clinical` float64 `[4]`, `serum` float64 `[6]`, the raw `target` and the
  patient's row `index` in the original file. The data come from the copy lqmm ships; no network
  and no manual directory are needed.
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}

  def __init__(self, **kwargs):
    kwargs.setdefault('file_format', 'array_record')
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    # Bytes encoding stores the float64 values exactly (the default encoding keeps float32).
    features = {name: tfds.features.Tensor(shape=(len(columns),), dtype=np.float64,
                                           encoding=tfds.features.Encoding.BYTES)
                for name, columns in DIABETES_MODALITIES.items()}
    features['target'] = tfds.features.Tensor(shape=(), dtype=np.float64,
                                              encoding=tfds.features.Encoding.BYTES)
    features['index'] = tfds.features.Scalar(dtype=np.int64)
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict(features),
        homepage='https://www4.stat.ncsu.edu/~boos/var.select/diabetes.html',
        citation='Efron, Hastie, Johnstone, Tibshirani. "Least Angle Regression." Annals of '
                 'Statistics 32(2), 407-499 (2004).',
        description='442 diabetes patients: clinical (age, sex, bmi, bp) and blood serum '
                    '(s1-s6) baseline variables; target: disease progression one year after '
                    'baseline. Raw values from scikit-learn\'s diabetes_data_raw.csv.gz.')

  def _split_generators(self, dl_manager):
    del dl_manager  # the data ship with lqmm
    return {'full': self._generate_examples(*_read_raw())}

  def _generate_examples(self, inputs, target):  # pylint: disable=arguments-differ
    for row, value in enumerate(target):
      example = {name: columns[row] for name, columns in inputs.items()}
      yield row, {**example, 'target': float(value), 'index': row}


def _read_raw() -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Reads the embedded files into `({modality: float64 [442, d]}, float64 [442])`."""
  table = np.loadtxt(PACKAGE_DATA / 'diabetes_data_raw.csv.gz', dtype=np.float64, ndmin=2)
  target = np.loadtxt(PACKAGE_DATA / 'diabetes_target.csv.gz', dtype=np.float64, ndmin=1)
  if table.shape != (_NUM_PATIENTS, len(DIABETES_COLUMNS)) or target.shape != (_NUM_PATIENTS,):
    raise ValueError(f'The embedded diabetes files have shapes {table.shape} and {target.shape}; '
                     f'expected ({_NUM_PATIENTS}, {len(DIABETES_COLUMNS)}) and '
                     f'({_NUM_PATIENTS},). Reinstall lqmm.')
  inputs = {name: table[:, [DIABETES_COLUMNS.index(column) for column in columns]]
            for name, columns in DIABETES_MODALITIES.items()}
  return inputs, target


def load_diabetes(*, data_dir=None) -> Batch:
  """Builds (once) and reads all 442 patients in file order, unscaled.

  Args:
    data_dir: TFDS data directory (default: TFDS's, `~/tensorflow_datasets`).

  Returns:
    `{'inputs': {'clinical': f64[442, 4], 'serum': f64[442, 6]}, 'mask': {name: bool[442]},
    'target': f64[442]}` with all-True masks.
  """
  builder = Diabetes(data_dir=data_dir)
  tfds.display_progress_bar(False)
  builder.download_and_prepare()
  source = builder.as_data_source()['full']
  records = source.__getitems__(range(len(source)))
  records = [records[i] for i in np.argsort([r['index'] for r in records], kind='stable')]
  return {
      'inputs': {name: np.stack([r[name] for r in records]) for name in DIABETES_MODALITIES},
      'mask': {name: np.ones(len(records), bool) for name in DIABETES_MODALITIES},
      'target': np.asarray([r['target'] for r in records], np.float64),
  }


@dataclasses.dataclass(frozen=True)
class DiabetesSplits:
  """The diabetes data split and scaled for training.

  Attributes:
    train, validation, test: batches `{'inputs', 'mask', 'target'}` (float32 inputs and
      target, bool masks).
    order: the modality order (the fusion order).
    dims: `{modality: feature width}`.
    rows: `{split: int64 [N_split]}`, each sample's row in the original file.
    target_mean, target_std: the training target's mean and standard deviation; the original
      units are `target_std * target + target_mean` (0 and 1 without target scaling).
  """
  train: Batch
  validation: Batch
  test: Batch
  order: tuple[str, ...]
  dims: dict[str, int]
  rows: dict[str, np.ndarray]
  target_mean: float
  target_std: float


def split_rows(num_rows: int, *, seed: int, validation_fraction: float,
               test_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A seeded random split of `range(num_rows)` into sorted train/validation/test rows.

  The test and validation parts get `round(fraction * num_rows)` rows; training gets the rest.

  Raises:
    ValueError: a fraction outside `[0, 1)`, or fractions that leave no training rows.
  """
  for argument, value in (('validation_fraction', validation_fraction),
                          ('test_fraction', test_fraction)):
    if not 0 <= value < 1:
      raise ValueError(f'{argument} must lie in [0, 1); got {value!r}.')
  num_test = round(test_fraction * num_rows)
  num_validation = round(validation_fraction * num_rows)
  if num_test + num_validation >= num_rows:
    raise ValueError('validation_fraction + test_fraction must leave training rows; got '
                     f'{validation_fraction!r} + {test_fraction!r} of {num_rows} rows.')
  permutation = np.random.default_rng(seed).permutation(num_rows)
  test, validation, train = np.split(permutation, [num_test, num_test + num_validation])
  return np.sort(train), np.sort(validation), np.sort(test)


def prepare_diabetes(*, seed: int = 0, validation_fraction: float = 0.2,
                     test_fraction: float = 0.2, scaling: str = 'standard',
                     scale_target: bool = True, modalities: Sequence[str] | None = None,
                     data_dir=None) -> DiabetesSplits:
  """Loads the diabetes data, splits it with `seed`, and scales it with training statistics.

  Args:
    seed: seed of the random split (see `split_rows`).
    validation_fraction: fraction of the 442 patients held out for model selection.
    test_fraction: fraction of the 442 patients held out for the test.
    scaling: input scaling fitted on the training split: 'standard' (zero mean, unit variance
      per feature), 'minmax' or 'none' (see `lqmm.data.fit_scaling`).
    scale_target: standardise the target with the training split's mean and standard
      deviation (population std, `ddof=0`).
    modalities: the modalities to keep, in fusion order; None keeps ('clinical', 'serum').
    data_dir: TFDS data directory.

  Returns:
    `DiabetesSplits` with float32 inputs and target.

  Raises:
    KeyError: unknown modality or scaling (the message lists the valid ones).
    ValueError: invalid fractions (see `split_rows`).
  """
  order = tuple(modalities) if modalities is not None else tuple(DIABETES_MODALITIES)
  for name in order:
    _checks.lookup(DIABETES_MODALITIES, name, 'modality of the diabetes data')
  _checks.lookup({name: name for name in loading.SCALINGS}, scaling, 'scaling')
  whole = load_diabetes(data_dir=data_dir)
  rows = dict(zip(('train', 'validation', 'test'), split_rows(
      len(whole['target']), seed=seed, validation_fraction=validation_fraction,
      test_fraction=test_fraction)))
  parts = {split: {'inputs': {name: whole['inputs'][name][index] for name in order},
                   'mask': {name: whole['mask'][name][index] for name in order},
                   'target': whole['target'][index]}
           for split, index in rows.items()}
  stats = loading.fit_scaling(parts['train']['inputs'], scaling)
  train_target = parts['train']['target']
  mean, std = (float(train_target.mean()), float(train_target.std())) if scale_target else (
      0.0, 1.0)
  scaled = {split: {**loading.apply_scaling(batch, stats),
                    'target': ((batch['target'] - mean) / std).astype(np.float32)}
            for split, batch in parts.items()}
  return DiabetesSplits(
      train=scaled['train'], validation=scaled['validation'], test=scaled['test'], order=order,
      dims={name: len(DIABETES_MODALITIES[name]) for name in order}, rows=rows,
      target_mean=mean, target_std=std)
