"""`lqmm.data.load`: every registered data set, its defaults, the registry and argument errors.

The expected sizes, first values and checksums below were computed from the functions `load`
replaced (`prepare`, `prepare_diabetes`, `prepare_av_digits`, and `prepare('handwritten', ...,
scaling='standard', modalities=pair)` for the view pairs) with their default arguments, seed 0,
before they were removed; `load` returned bit-identical arrays for those and 17 other argument
sets. Checksums: `(sum |x|, sum_i i * x_i)` over rows `i = 1..N`, in float64.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from lqmm import data

# name: (sizes, {(split, modality): (first values of row 0, (abs sum, row-weighted sum))}).
EXPECTED = {
    'handwritten': ((1400, 200, 400), {
        ('train', 'pix'): ([0.0, 0.5, 0.6666666865348816, 0.6666666865348816],
                           (172840.83346661925, 119645082.09882578)),
        ('test', 'mor'): ([0.5, 0.0, 0.0, 0.12551480531692505],
                          (707.237593022408, 147649.2317249484)),
    }),
    'rosmap': ((220, 25, 106), {
        ('train', 'mrna'): ([0.8501001000404358, 0.5309085845947266, 0.4018484354019165],
                            (20445.41114819875, 2271724.9274312686)),
        ('test', 'mirna'): (None, (12256.073324794183, 654714.9339557962)),
    }),
    'handwritten_fac_mor': ((1400, 200, 400), {
        ('train', 'mor'): ([0.7712846398353577, -1.5323684215545654, -1.0263046026229858],
                           (7270.021880419226, 254755.10144442855)),
        ('test', 'fac'): (None, (70763.71033994656, 157415.05266253027)),
    }),
    'handwritten_pix_zer': ((1400, 200, 400), {
        ('test', 'zer'): ([-0.7350769639015198, -0.9863841533660889, -1.4900314807891846],
                          (15408.69655370979, 84387.43542896418)),
    }),
    'handwritten_kar_fou': ((1400, 200, 400), {
        ('validation', 'fou'): ([-1.3233715295791626, -0.9045291543006897, -1.389731526374817],
                                (12545.719043702833, 83371.62258254373)),
    }),
    'diabetes': ((266, 88, 88), {
        ('test', 'serum'): ([-0.9905096888542175, -0.7432037591934204, -0.6412696838378906],
                            (425.3619091883302, -188.53253612853587)),
        ('validation', 'clinical'): (None, (315.70266636740416, -1740.0384823386557)),
    }),
}


def _checksums(x):
  x = np.asarray(x, np.float64)
  rows = np.arange(1, len(x) + 1).reshape((-1,) + (1,) * (x.ndim - 1))
  return float(np.abs(x).sum()), float((rows * x).sum())


def _assert_expected(splits, sizes, arrays, rtol=1e-6):
  """Checks the split sizes, and each array's first values and checksums up to `rtol`."""
  assert tuple(splits.sizes.values()) == sizes
  for (split, modality), (first, checksums) in arrays.items():
    x = getattr(splits, split)['inputs'][modality]
    assert x.dtype == np.float32
    if first is not None:
      np.testing.assert_allclose(x[0].reshape(-1)[:len(first)], first, rtol=rtol)
    np.testing.assert_allclose(_checksums(x), checksums, rtol=rtol)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_defaults_reproduce_the_replaced_functions(name, tfds_dir, manual_dir):
  splits = data.load(name, data_dir=tfds_dir, manual_dir=manual_dir, allow_download=False)
  _assert_expected(splits, *EXPECTED[name])
  spec = data.DATASETS[name]
  assert splits.order == spec.modalities and splits.name == name
  assert splits.protocol == spec.default_protocol
  assert (splits.task, splits.num_classes) == (spec.task, spec.num_classes)
  assert splits.shapes == {m: splits.train['inputs'][m].shape[1:] for m in splits.order}
  for batch in (splits.train, splits.validation, splits.test):
    assert list(batch['inputs']) == list(batch['mask']) == list(splits.order)
    assert all(mask.dtype == np.bool_ and mask.all() for mask in batch['mask'].values())
    assert batch[splits.target_key].dtype == (np.int32 if spec.task == 'classification'
                                              else np.float32)


def test_diabetes_defaults_standardise_the_target(tfds_dir):
  splits = data.load('diabetes', data_dir=tfds_dir)
  np.testing.assert_allclose(splits.target_scaling, (155.14661654135338, 76.74381956832528),
                             rtol=1e-12)
  np.testing.assert_allclose(splits.train['target'][:4], [-1.044339656829834, 0.6626381874084473,
                                                          -0.2625177800655365,
                                                          -0.2234266698360443], rtol=1e-7)
  np.testing.assert_allclose(_checksums(splits.train['target']),
                             (225.18293558224104, 1069.2652665108908), rtol=1e-6)


def test_av_digits_defaults_reproduce_the_replaced_function(av_digits_splits):
  splits = av_digits_splits
  _assert_expected(splits, (2400, 300, 300), {
      ('train', 'audio'): ([0.2273915410041809, 0.5624403357505798, 0.825576901435852],
                           (7831252.877220228, -17428488.355671734)),
      ('test', 'audio'): (None, (970634.7374709753, -3254767.753030095)),
      ('validation', 'image'): (None, (30898.815953104757, 4601136.389831392)),
  }, rtol=1e-4)  # the log-mel goes through XLA's FFT, whose rounding may vary across CPUs
  np.testing.assert_array_equal(splits.validation['meta']['image_index'][:5],
                                [4, 195, 173, 399, 2])


def test_published_test_splits_and_validation_carved_from_train(tfds_dir, manual_dir):
  tmc = data.load('handwritten', 'tmc', data_dir=tfds_dir, manual_dir=manual_dir)
  _assert_expected(tmc, (1440, 160, 400), {
      ('validation', 'fac'): ([0.0516853928565979, 0.10743801295757294, 0.17810025811195374],
                              (16203.485432161135, 1302657.744004964)),
      ('test', 'kar'): (None, (12975.795133881038, 2599236.477471794)),
  })
  np.testing.assert_array_equal(np.bincount(tmc.validation['label']), np.full(10, 16))
  raw = data.read('handwritten', 'tmc', data_dir=tfds_dir, manual_dir=manual_dir)
  np.testing.assert_array_equal(tmc.test['label'], raw['test']['label'])  # TMC's test, in order
  rosmap = data.load('rosmap', data_dir=tfds_dir, manual_dir=manual_dir)
  np.testing.assert_array_equal(rosmap.validation['label'],
                                [1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1,
                                 1, 0, 1])
  pair = data.load('handwritten_pix_zer', 'tmc', data_dir=tfds_dir, manual_dir=manual_dir)
  assert pair.sizes == tmc.sizes and pair.order == ('pix', 'zer')
  np.testing.assert_array_equal(pair.test['label'], tmc.test['label'])


def test_validation_fraction_zero_gives_an_empty_validation_split(tfds_dir, manual_dir):
  for name in ('handwritten', 'rosmap', 'diabetes'):
    splits = data.load(name, validation_fraction=0, data_dir=tfds_dir, manual_dir=manual_dir)
    assert splits.sizes['validation'] == 0
    for modality, x in splits.validation['inputs'].items():
      assert x.shape == (0,) + splits.shapes[modality]


def test_registry_lists_every_data_set_and_its_defaults():
  assert sorted(data.DATASETS) == ['av_digits', 'diabetes', 'handwritten', 'handwritten_fac_mor',
                                   'handwritten_kar_fou', 'handwritten_pix_zer', 'rosmap']
  defaults = {name: {protocol: spec.defaults(protocol) for protocol in spec.protocols}
              for name, spec in data.DATASETS.items()}
  assert defaults['handwritten'] == {
      'stratified': {'protocol': 'stratified', 'modalities': ('pix', 'fou', 'fac', 'zer', 'kar',
                                                              'mor'),
                     'validation_fraction': 0.1, 'test_fraction': 0.2, 'scaling': 'minmax'},
      'tmc': {'protocol': 'tmc', 'modalities': ('pix', 'fou', 'fac', 'zer', 'kar', 'mor'),
              'validation_fraction': 0.1, 'test_fraction': None, 'scaling': 'minmax'}}
  assert defaults['handwritten_kar_fou']['stratified'] == {
      'protocol': 'stratified', 'modalities': ('kar', 'fou'), 'validation_fraction': 0.1,
      'test_fraction': 0.2, 'scaling': 'standard'}
  assert defaults['rosmap'] == {'original': {
      'protocol': 'original', 'modalities': ('mrna', 'meth', 'mirna'),
      'validation_fraction': 0.1, 'test_fraction': None, 'scaling': 'minmax'}}
  assert defaults['diabetes'] == {'random': {
      'protocol': 'random', 'modalities': ('clinical', 'serum'), 'validation_fraction': 0.2,
      'test_fraction': 0.2, 'scaling': 'standard', 'scale_target': True}}
  assert defaults['av_digits'] == {'fsdd': {
      'protocol': 'fsdd', 'modalities': ('audio', 'image'), 'validation_fraction': None,
      'test_fraction': None, 'scaling': 'standard', 'audio': 'log_mel', 'flatten_image': False,
      'log_mel_options': None}}
  assert [(name, spec.task, spec.num_classes) for name, spec in data.DATASETS.items()
          if spec.num_classes != 10] == [('rosmap', 'classification', 2),
                                         ('diabetes', 'regression', None)]


def test_errors_list_the_valid_names(tfds_dir):
  with pytest.raises(KeyError, match="Unknown dataset 'mnist'; valid names: av_digits, diabetes, "
                                     'handwritten, handwritten_fac_mor'):
    data.load('mnist')
  with pytest.raises(KeyError, match="Unknown protocol of 'rosmap' 'stratified'; valid names: "
                                     'original'):
    data.load('rosmap', 'stratified')
  with pytest.raises(KeyError, match="Unknown modality of 'handwritten_fac_mor' 'pix'; valid "
                                     'names: fac, mor'):
    data.load('handwritten_fac_mor', modalities=('pix',))
  with pytest.raises(KeyError, match="Unknown scaling 'zscore'; valid names: minmax, none, "
                                     'standard'):
    data.load('rosmap', scaling='zscore')
  with pytest.raises(KeyError, match=r"Unknown option 'audio' of 'handwritten'; valid names: "
                                     r'none \(it takes no options\)'):
    data.load('handwritten', audio='waveform')
  with pytest.raises(KeyError, match="Unknown option 'seeds' of 'av_digits'; valid names: audio, "
                                     'flatten_image, log_mel_options'):
    data.load('av_digits', seeds=3)
  with pytest.raises(KeyError, match='Unknown dataset'):
    data.read('mnist')


@pytest.mark.parametrize('modalities', [(), []])
def test_empty_modalities_raise(modalities):
  with pytest.raises(ValueError, match='modalities must name at least one modality; got an '
                                       'empty modalities. Valid names: fac, fou, kar'):
    data.load('handwritten', modalities=modalities)


def test_bad_modalities_raise():
  with pytest.raises(ValueError, match="modalities must be a sequence of modality names such as "
                                       r"\('pix', 'fou'\); got 'pix'"):
    data.load('handwritten', modalities='pix')
  with pytest.raises(ValueError, match='modalities must not repeat a modality'):
    data.load('handwritten', modalities=('pix', 'pix'))


@pytest.mark.parametrize('value', [
    1.0, -0.1, 1.5, float('nan'), float('inf'), np.float32(1.2), np.float64('nan'), np.int64(1),
    jnp.float32(1.0), jnp.asarray(float('nan')), True, '0.1', [0.1], np.ones(2)
], ids=repr)
@pytest.mark.parametrize('argument', ['validation_fraction', 'test_fraction'])
def test_bad_fractions_raise_naming_the_argument(argument, value):
  with pytest.raises(ValueError, match=f'^{argument} must '):
    data.load('handwritten', **{argument: value})
  with pytest.raises(ValueError, match=f'^{argument} must '):
    data.from_arrays({'a': np.zeros((20, 2))}, np.arange(20) % 2, **{argument: value})


@pytest.mark.parametrize('value', [0.15, np.float32(0.15), np.float64(0.15), jnp.float32(0.15),
                                   0, np.int32(0)], ids=repr)
def test_fractions_accept_python_numpy_and_jax_scalars(value, tfds_dir):
  splits = data.load('handwritten', validation_fraction=value, data_dir=tfds_dir)
  assert splits.sizes['validation'] == (300 if value else 0)  # 30 or 0 of each class's 200


def test_fixed_test_splits_reject_a_test_fraction():
  with pytest.raises(ValueError, match=r"test_fraction must be None for 'rosmap' protocol "
                                       r"'original': its test split is fixed \(MOGONET"):
    data.load('rosmap', test_fraction=0.2)
  with pytest.raises(ValueError, match="test_fraction must be None for 'handwritten' protocol "
                                       "'tmc'"):
    data.load('handwritten', 'tmc', test_fraction=0.3)


@pytest.mark.parametrize('seed', [-1, 1.5, '0', True, np.float64(2.0)], ids=repr)
def test_bad_seeds_raise(seed):
  with pytest.raises(ValueError, match='seed must be a non-negative integer'):
    data.load('handwritten', seed=seed)


def test_seed_accepts_numpy_and_jax_integers(tfds_dir):
  reference = data.load('handwritten', seed=2, data_dir=tfds_dir)
  for seed in (np.int64(2), jnp.int32(2)):
    again = data.load('handwritten', seed=seed, data_dir=tfds_dir)
    np.testing.assert_array_equal(again.test['inputs']['fou'], reference.test['inputs']['fou'])


def test_a_validation_fraction_that_empties_a_training_class_raises(tfds_dir, manual_dir):
  with pytest.raises(ValueError, match=r"validation_fraction 0.999 leaves no training example of "
                                       r"class\(es\) \[0, 1\] in the 245 published training "
                                       "examples of 'rosmap'"):
    data.load('rosmap', validation_fraction=0.999, data_dir=tfds_dir, manual_dir=manual_dir)


def test_load_from_reads_an_experiment_configs_data_section(tfds_dir):
  from lqmm import train  # pylint: disable=g-import-not-at-top
  config = train.default_config()
  config.data.update({'name': 'handwritten', 'modalities': ('fac', 'mor'), 'split_seed': 3,
                      'validation_fraction': 0.2, 'scaling': 'standard', 'data_dir': tfds_dir})
  splits = data.load_from(config.data)
  expected = data.load('handwritten', modalities=('fac', 'mor'), seed=3, validation_fraction=0.2,
                       scaling='standard', data_dir=tfds_dir)
  assert splits.order == ('fac', 'mor') and splits.sizes == expected.sizes
  np.testing.assert_array_equal(splits.train['inputs']['mor'], expected.train['inputs']['mor'])
  with pytest.raises(KeyError, match='valid names'):
    data.load_from({'name': 'mnist'})
