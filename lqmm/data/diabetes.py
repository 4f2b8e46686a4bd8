"""The diabetes regression data (Efron et al. 2004) as two modalities: clinical and blood serum.

442 patients; ten baseline variables; the target is a quantitative measure of disease
progression one year after baseline. lqmm ships the raw (unscaled) files of scikit-learn (see
`package_data/diabetes/SOURCE.md`) and splits the variables into two modalities:

- `clinical` (4): age, sex, body mass index, average blood pressure;
- `serum` (6): the six blood serum measurements s1-s6.

`Diabetes` is a TFDS builder (array_record, `Tensor` features, no TensorFlow) with one split
`full`. `read_diabetes` reads it in file order; `lqmm.data.load('diabetes')` makes a seeded
train/validation/test split and standardises inputs and target with statistics of the training
split only::

    splits = lqmm.data.load('diabetes', seed=0)
    splits.train  # {'inputs': {'clinical': f32[266, 4], 'serum': f32[266, 6]},
                  #  'mask': {'clinical': bool[266], 'serum': bool[266]}, 'target': f32[266]}
    shift, scale = splits.target_scaling
    prediction * scale + shift  # back to the original units

References:
  Efron, Hastie, Johnstone, Tibshirani. "Least Angle Regression." Annals of Statistics 32(2),
  407-499 (2004).
"""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow_datasets as tfds

from lqmm.data import files
from lqmm.data import splitting

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


def read_diabetes(*, data_dir=None) -> Batch:
  """Builds (once) and reads all 442 patients in file order, unscaled.

  Args:
    data_dir: TFDS data directory (default: TFDS's, `~/tensorflow_datasets`).

  Returns:
    `{'inputs': {'clinical': f64[442, 4], 'serum': f64[442, 6]}, 'mask': {name: bool[442]},
    'target': f64[442]}` with all-True masks.
  """
  records = files.prepared_records(Diabetes(data_dir=data_dir), ('full',))['full']
  return {
      'inputs': {name: np.stack([r[name] for r in records]) for name in DIABETES_MODALITIES},
      'mask': {name: np.ones(len(records), bool) for name in DIABETES_MODALITIES},
      'target': np.asarray([r['target'] for r in records], np.float64),
  }


def build_splits(spec, *, name: str, protocol: str, order: tuple[str, ...], seed: int,
                 validation_fraction: float, test_fraction: float, scaling: str, data_dir,
                 manual_dir, allow_download: bool, scale_target: bool) -> splitting.Splits:
  """The diabetes entry of `lqmm.data.DATASETS`: a seeded random split, scaled on train.

  Called by `lqmm.data.load('diabetes', ...)` with checked arguments. The 442 patients are split
  with `lqmm.data.random_split`; the inputs are scaled with `scaling` fitted on the training
  split, and the target is standardised with the training split's mean and (population)
  standard deviation when `scale_target`.

  Args:
    spec: the `DatasetSpec` (unused: everything it says is in the other arguments).
    name, protocol: recorded in the returned `Splits`.
    order: the modalities to keep, in fusion order.
    seed: seed of the random split.
    validation_fraction, test_fraction: fractions of the 442 patients.
    scaling: input scaling ('standard', 'minmax' or 'none').
    data_dir: TFDS data directory.
    manual_dir, allow_download: unused (the data ship with lqmm).
    scale_target: standardise the target (else its `target_scaling` is `(0.0, 1.0)`).

  Returns:
    `Splits` with float32 inputs and target.

  Raises:
    ValueError: fractions that leave no training rows.
  """
  del spec, manual_dir, allow_download  # the data ship with lqmm
  rows = dict(zip(splitting.SPLIT_NAMES, splitting.random_split(
      _NUM_PATIENTS, seed=seed, validation_fraction=validation_fraction,
      test_fraction=test_fraction)))
  whole = read_diabetes(data_dir=data_dir)
  return splitting.build_splits(
      {modality: whole['inputs'][modality] for modality in order},
      {modality: whole['mask'][modality] for modality in order}, whole['target'], rows,
      order=order, task='regression', num_classes=None, scaling=scaling,
      scale_target=bool(scale_target), name=name, protocol=protocol)
