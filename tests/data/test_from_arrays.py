"""`lqmm.data.from_arrays`: a user's own arrays as `Splits` (scikit-learn's digits, regression)."""

import numpy as np
import pytest
import sklearn.datasets

from lqmm import data


@pytest.fixture(scope='module')
def digits():
  """scikit-learn's 1,797 8x8 digits as two views: the left and the right image halves."""
  bunch = sklearn.datasets.load_digits()
  images = bunch.images  # [1797, 8, 8], float64 pixel intensities 0..16
  return {'left': images[:, :, :4], 'right': images[:, :, 4:]}, bunch.target


def test_digits_halves_split_stratified_and_scaled_on_train(digits):
  inputs, labels = digits
  splits = data.from_arrays(inputs, labels, seed=0)
  assert (splits.task, splits.num_classes, splits.target_key) == ('classification', 10, 'label')
  assert (splits.name, splits.protocol, splits.target_scaling) == ('arrays', None, None)
  assert splits.order == ('left', 'right')
  assert splits.shapes == {'left': (8, 4), 'right': (8, 4)}
  assert sum(splits.sizes.values()) == 1797
  assert splits.sizes['validation'] == pytest.approx(180, abs=10)
  assert splits.sizes['test'] == pytest.approx(360, abs=10)
  class_counts = np.bincount(labels)
  for split, fraction in (('train', 0.7), ('validation', 0.1), ('test', 0.2)):
    batch = getattr(splits, split)
    assert batch['label'].dtype == np.int32
    # Stratified: each class within one example of its share.
    np.testing.assert_allclose(np.bincount(batch['label'], minlength=10),
                               fraction * class_counts, atol=1)
  train = splits.train['inputs']['left'].astype(np.float64)
  np.testing.assert_allclose(train.mean(0), 0, atol=1e-6)
  constant = inputs['left'].std(0) == 0  # the blank left column of every image
  assert constant.any()
  np.testing.assert_allclose(train.std(0)[~constant], 1, atol=1e-5)
  shift, scale = splits.scaling['left']
  assert shift.shape == scale.shape == (8, 4) and np.all(scale[constant] == 1)
  # The test split is scaled with the training statistics, so it is not exactly standardised.
  assert np.abs(splits.test['inputs']['left'].mean(0)).max() > 1e-3
  # Undoing the scaling gives back original images: the rows were taken, not mixed.
  right_shift, right_scale = splits.scaling['right']
  restored = splits.test['inputs']['right'].astype(np.float64) * right_scale + right_shift
  restored = np.round(restored) + 0.0  # (-0.0 + 0.0 is 0.0)
  originals = {image.tobytes() for image in inputs['right'].astype(np.float64)}
  assert all(image.tobytes() in originals for image in restored)
  with pytest.raises(ValueError, match="dims needs 1-D examples, but modality 'left'"):
    splits.dims  # pylint: disable=pointless-statement
  again = data.from_arrays(inputs, labels, seed=0)
  np.testing.assert_array_equal(again.test['inputs']['right'], splits.test['inputs']['right'])
  other = data.from_arrays(inputs, labels, seed=1)
  assert not np.array_equal(other.test['label'], splits.test['label'])


def test_digits_stratified_split_is_stratified_split(digits):
  inputs, labels = digits
  flat = {name: x.reshape(len(x), -1) for name, x in inputs.items()}
  splits = data.from_arrays(flat, labels, seed=3, scaling='none', order=('right', 'left'))
  train_rows, validation_rows, test_rows = data.stratified_split(labels, [0.7, 0.1, 0.2],
                                                                 seed=3)
  for batch, rows in ((splits.train, train_rows), (splits.validation, validation_rows),
                      (splits.test, test_rows)):
    np.testing.assert_array_equal(batch['label'], labels[rows])
    np.testing.assert_array_equal(batch['inputs']['left'], flat['left'][rows].astype(np.float32))
  assert splits.order == ('right', 'left') and splits.dims == {'right': 32, 'left': 32}


def test_explicit_split_keeps_the_given_rows(digits):
  inputs, labels = digits
  split = {'train': np.arange(1000), 'validation': np.arange(1000, 1200),
           'test': np.arange(1500, 1797)}
  splits = data.from_arrays(inputs, labels, split=split, scaling='minmax')
  assert splits.sizes == {'train': 1000, 'validation': 200, 'test': 297}
  np.testing.assert_array_equal(splits.validation['label'], labels[1000:1200])
  train = splits.train['inputs']['right']
  assert train.min() == 0.0 and train.max() == 1.0
  empty = data.from_arrays(inputs, labels, split={**split, 'validation': []})
  assert empty.sizes['validation'] == 0


def test_masks_fit_the_scaling_on_present_training_rows_only():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 3)) * 5 + 2
  present = np.arange(40) % 4 != 0
  x_with_nan = np.where(present[:, None], x, np.nan)  # absent rows may hold anything
  labels = np.arange(40) % 2
  split = {'train': np.arange(30), 'validation': np.arange(30, 34), 'test': np.arange(34, 40)}
  splits = data.from_arrays({'a': x_with_nan, 'b': x}, labels, masks={'a': present},
                            split=split)
  train_present = present[:30]
  shift, scale = splits.scaling['a']
  np.testing.assert_allclose(shift, x[:30][train_present].mean(0))
  np.testing.assert_allclose(scale, x[:30][train_present].std(0))
  np.testing.assert_array_equal(splits.train['mask']['a'], train_present)
  assert splits.train['mask']['b'].all()
  assert np.all(splits.train['inputs']['a'][~train_present] == 0)  # absent: zero, never NaN
  assert np.all(np.isfinite(splits.test['inputs']['a']))


def test_regression_from_arrays_standardises_the_target():
  bunch = sklearn.datasets.load_diabetes()  # the scaled copy: columns 0-3 clinical, 4-9 serum
  inputs = {'clinical': bunch.data[:, :4], 'serum': bunch.data[:, 4:]}
  splits = data.from_arrays(inputs, bunch.target, seed=0, validation_fraction=0.2,
                            test_fraction=0.2, name='my_diabetes')
  assert (splits.task, splits.num_classes, splits.target_key) == ('regression', None, 'target')
  assert splits.name == 'my_diabetes' and splits.sizes == {'train': 266, 'validation': 88,
                                                           'test': 88}
  rows = dict(zip(('train', 'validation', 'test'), data.random_split(
      442, seed=0, validation_fraction=0.2, test_fraction=0.2)))
  shift, scale = splits.target_scaling
  assert shift == pytest.approx(bunch.target[rows['train']].mean())
  assert scale == pytest.approx(bunch.target[rows['train']].std())
  assert splits.train['target'].dtype == np.float32
  np.testing.assert_allclose(splits.test['target'] * scale + shift, bunch.target[rows['test']],
                             rtol=1e-6)
  raw = data.from_arrays(inputs, bunch.target, scaling='none')
  assert raw.target_scaling == (0.0, 1.0) and raw.train['target'].max() > 100
  labels_as_floats = data.from_arrays(inputs, (bunch.target > 140).astype(np.float64),
                                      task='classification')
  assert labels_as_floats.num_classes == 2 and labels_as_floats.train['label'].dtype == np.int32


def test_bad_arrays_raise_naming_the_argument():
  x, labels = np.zeros((20, 3)), np.arange(20) % 2
  cases = [
      ((x, labels[:-1]), {}, ValueError, r'targets must have shape \[N\] = \(20,\)'),
      (({}, labels), {}, ValueError, 'inputs must hold at least one modality; got an empty dict'),
      (({'a': x, 'b': x[:10]}, labels), {}, ValueError,
       'inputs must have the same number of rows N in every modality'),
      (({'a': np.where(np.eye(20, 3) > 0, np.nan, x)}, labels), {}, ValueError,
       r"inputs\['a'\] holds 3 NaN or infinite value\(s\)"),
      (({'a': np.full((20, 3), np.inf)}, labels), {}, ValueError, r"inputs\['a'\] holds 60"),
      (({'a': x.astype(str)}, labels), {}, TypeError, r"inputs\['a'\] must be an integer or "),
      ((x, labels + 0.5), {'task': 'classification'}, ValueError,
       'targets must hold integer class labels for classification; got non-integer value'),
      ((x, labels), {'num_classes': 1}, ValueError,
       r'targets must lie in \[0, num_classes\) = \[0, 1\); got values in \[0, 1\]'),
      ((x, labels - 1), {}, ValueError, r'targets must lie in \[0, num_classes\)'),
      ((x, labels), {'num_classes': 0}, ValueError, 'num_classes must be a positive integer'),
      ((x, labels * 0.5), {'num_classes': 2}, ValueError,
       'num_classes must be None for regression'),
      ((x, labels * np.nan), {}, ValueError, r'targets holds 20 NaN or infinite value\(s\)'),
      ((x, labels), {'task': 'ranking'}, KeyError,
       "Unknown task 'ranking'; valid names: classification, regression"),
      ((x, labels), {'scaling': 'robust'}, KeyError,
       "Unknown scaling 'robust'; valid names: minmax, none, standard"),
      ((x, labels), {'order': ('b',)}, KeyError, "Unknown modality in order 'b'; valid names: a"),
      ((x, labels), {'order': ()}, ValueError, 'order must name at least one modality'),
      ((x, labels), {'masks': {'b': np.ones(20, bool)}}, KeyError,
       "Unknown modality in masks 'b'; valid names: a"),
      ((x, labels), {'masks': {'a': np.ones(20)}}, TypeError,
       r"masks\['a'\] must be a bool array \(True = present\); got dtype float64"),
      ((x, labels), {'masks': {'a': np.ones(19, bool)}}, ValueError,
       r"masks\['a'\] must have shape \[N\] = \(20,\)"),
      ((x, labels), {'masks': {'a': np.zeros(20, bool)}}, ValueError,
       r"masks\['a'\] marks modality 'a' absent in every training row"),
      ((x, labels), {'split': {'train': [0, 1], 'test': [2]}}, ValueError,
       'split must be a dict with exactly the keys train, validation, test'),
      ((x, labels), {'split': {'train': [0, 1], 'validation': [1], 'test': [2]}}, ValueError,
       r"split\['train'\] and split\['validation'\] overlap in 1 row\(s\), e.g. row 1"),
      ((x, labels), {'split': {'train': [0, 20], 'validation': [], 'test': []}}, ValueError,
       r"split\['train'\] must index rows in \[0, 20\); got values in \[0, 20\]"),
      ((x, labels), {'split': {'train': [0, -1], 'validation': [], 'test': []}}, ValueError,
       r"split\['train'\] must index rows in \[0, 20\)"),
      ((x, labels), {'split': {'train': [0, 0], 'validation': [], 'test': []}}, ValueError,
       r"split\['train'\] repeats a row index"),
      ((x, labels), {'split': {'train': [], 'validation': [0], 'test': [1]}}, ValueError,
       r"split\['train'\] must hold at least one row"),
      ((x, labels), {'split': {'train': [0.5], 'validation': [], 'test': []}}, ValueError,
       r"split\['train'\] must be a 1-D array of integer row indices"),
      ((x, np.r_[labels[:-2], 2, 2]), {}, ValueError,
       'targets has 2 example.s. of class 2, too few for a stratified split with fractions '
       'train 0.7, validation 0.1, test 0.2'),
      ((x, labels), {'validation_fraction': 0.5, 'test_fraction': 0.49}, ValueError,
       'targets has 10 example.s. of class 0, too few .* and one in train'),
      ((x, labels), {'validation_fraction': 0.5, 'test_fraction': 0.5}, ValueError,
       r'validation_fraction \+ test_fraction must be < 1'),
      ((x, labels), {'seed': -3}, ValueError, 'seed must be a non-negative integer; got -3'),
      ((x, labels), {'name': ''}, ValueError, 'name must be a non-empty string'),
  ]
  for (inputs, targets), kwargs, error, message in cases:
    inputs = {'a': inputs} if isinstance(inputs, np.ndarray) else inputs
    with pytest.raises(error, match=message):
      data.from_arrays(inputs, targets, **kwargs)


def test_a_class_with_as_many_examples_as_parts_passes_the_stratified_check():
  # Three examples of class 2 for three non-empty parts: enough (two of them go to train).
  x, labels = np.arange(46.0).reshape(23, 2), np.r_[np.arange(20) % 2, 2, 2, 2]
  splits = data.from_arrays({'a': x}, labels)
  assert 2 in splits.train['label'] and splits.num_classes == 3
