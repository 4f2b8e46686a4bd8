"""The diabetes data: the embedded files, the TFDS builder, `load('diabetes')`: split, scaling."""

import hashlib
import pathlib
import re

import numpy as np
import pytest

from lqmm import data
from lqmm.data import diabetes


@pytest.fixture(scope='module')
def whole(tfds_dir):
  return diabetes.read_diabetes(data_dir=tfds_dir)


def test_embedded_files_match_their_recorded_sha256():
  folder = pathlib.Path(diabetes.PACKAGE_DATA)
  recorded = dict(re.findall(r'\| `(diabetes_\w+\.csv\.gz)` \| `([0-9a-f]{64})`',
                             (folder / 'SOURCE.md').read_text()))
  assert sorted(recorded) == ['diabetes_data_raw.csv.gz', 'diabetes_target.csv.gz']
  for name, digest in recorded.items():
    assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_builder_reads_all_patients_exactly(whole):
  assert {name: x.shape for name, x in whole['inputs'].items()} == {
      'clinical': (442, 4), 'serum': (442, 6)}
  assert whole['target'].shape == (442,) and all(m.all() for m in whole['mask'].values())
  # The first patient of Efron et al.'s table, and float64 values stored without rounding.
  np.testing.assert_array_equal(whole['inputs']['clinical'][0], [59, 2, 32.1, 101])
  np.testing.assert_array_equal(whole['inputs']['serum'][0], [157, 93.2, 38, 4, 4.8598, 87])
  assert whole['target'][0] == 151
  table = np.loadtxt(diabetes.PACKAGE_DATA / 'diabetes_data_raw.csv.gz')
  np.testing.assert_array_equal(
      np.concatenate([whole['inputs']['clinical'], whole['inputs']['serum']], axis=1), table)
  np.testing.assert_array_equal(
      whole['target'], np.loadtxt(diabetes.PACKAGE_DATA / 'diabetes_target.csv.gz'))


def test_split_is_a_seeded_partition():
  train, validation, test = data.random_split(442, seed=0, validation_fraction=0.2,
                                             test_fraction=0.2)
  assert (len(train), len(validation), len(test)) == (266, 88, 88)
  np.testing.assert_array_equal(np.sort(np.concatenate([train, validation, test])),
                                np.arange(442))
  again = data.random_split(442, seed=0, validation_fraction=0.2, test_fraction=0.2)
  for part, same in zip((train, validation, test), again):
    np.testing.assert_array_equal(part, same)
  other = data.random_split(442, seed=1, validation_fraction=0.2, test_fraction=0.2)
  assert not np.array_equal(other[2], test)


def test_load_scales_with_training_statistics_only(whole, tfds_dir):
  splits = data.load('diabetes', seed=0, data_dir=tfds_dir)
  assert splits.order == ('clinical', 'serum') and splits.dims == {'clinical': 4, 'serum': 6}
  assert (splits.task, splits.num_classes, splits.target_key) == ('regression', None, 'target')
  assert (splits.name, splits.protocol) == ('diabetes', 'random')
  assert {split: len(batch['target']) for split, batch in (
      ('train', splits.train), ('validation', splits.validation), ('test', splits.test))} == {
          'train': 266, 'validation': 88, 'test': 88} == splits.sizes
  rows = dict(zip(('train', 'validation', 'test'), data.random_split(
      442, seed=0, validation_fraction=0.2, test_fraction=0.2)))
  train_rows = rows['train']
  target_mean, target_std = splits.target_scaling
  assert target_mean == pytest.approx(whole['target'][train_rows].mean())
  assert target_std == pytest.approx(whole['target'][train_rows].std())
  for name in splits.order:
    x = splits.train['inputs'][name]
    assert x.dtype == np.float32 and splits.train['mask'][name].all()
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1, atol=1e-5)
    raw = whole['inputs'][name]
    mean, std = raw[train_rows].mean(0), raw[train_rows].std(0)
    np.testing.assert_allclose(splits.test['inputs'][name],
                               (raw[rows['test']] - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(splits.scaling[name][0], mean)
    np.testing.assert_allclose(splits.scaling[name][1], std)
  assert splits.train['target'].dtype == np.float32
  np.testing.assert_allclose(splits.train['target'].mean(), 0, atol=1e-5)
  np.testing.assert_allclose(
      splits.test['target'] * target_std + target_mean, whole['target'][rows['test']],
      rtol=1e-5)
  # Fitted on the training rows only: the held-out splits are not exactly standardised.
  assert abs(splits.test['target'].mean()) > 1e-3
  again = data.load('diabetes', seed=0, data_dir=tfds_dir)
  np.testing.assert_array_equal(again.test['inputs']['serum'], splits.test['inputs']['serum'])


def test_modality_subset_and_unscaled_target(tfds_dir):
  splits = data.load('diabetes', modalities=('serum',), scale_target=False, data_dir=tfds_dir)
  assert splits.order == ('serum',) and list(splits.train['inputs']) == ['serum']
  assert splits.target_scaling == (0.0, 1.0)
  assert splits.train['target'].max() > 100  # original units


def test_bad_arguments_raise(tfds_dir):
  with pytest.raises(KeyError, match="Unknown modality of 'diabetes' 'genes'; valid "
                                     'names: clinical, serum'):
    data.load('diabetes', modalities=('genes',), data_dir=tfds_dir)
  with pytest.raises(KeyError, match="Unknown scaling 'robust'"):
    data.load('diabetes', scaling='robust', data_dir=tfds_dir)
  with pytest.raises(KeyError, match="Unknown option 'scale_inputs' of 'diabetes'; valid names: "
                                     'scale_target'):
    data.load('diabetes', scale_inputs=False, data_dir=tfds_dir)
  with pytest.raises(ValueError, match='test_fraction must lie in'):
    data.random_split(442, seed=0, validation_fraction=0.2, test_fraction=1.5)
  with pytest.raises(ValueError, match='must leave training rows'):
    data.random_split(442, seed=0, validation_fraction=0.5, test_fraction=0.5)
  with pytest.raises(ValueError, match='validation_fraction \\+ test_fraction must be < 1'):
    data.load('diabetes', validation_fraction=0.5, test_fraction=0.5, data_dir=tfds_dir)
