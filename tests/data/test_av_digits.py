"""AV digits (FSDD audio + MNIST-5k images), the JAX log-mel spectrogram, Handwritten pairs."""

import hashlib
import io
import pathlib
import re
import wave
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm import data
from lqmm.data import audio
from lqmm.data import av_digits
from lqmm.data import handwritten_pairs

REFERENCE = pathlib.Path(__file__).parent / 'reference' / 'log_mel_librosa.npz'
# The parameter sets of tests/data/reference/generate_log_mel.py.
REFERENCE_PARAMETERS = {
    'slaney': dict(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmin=0.0, fmax=4000.0,
                   htk=False, norm='slaney'),
    'htk': dict(sample_rate=8000, n_fft=200, hop_length=100, n_mels=20, fmin=50.0,
                fmax=3800.0, htk=True, norm=None),
}
SIZES = {'train': 2400, 'validation': 300, 'test': 300}


@pytest.fixture(scope='session')
def raw(tfds_dir, manual_dir):
  return av_digits.read_av_digits(seed=0, data_dir=tfds_dir, manual_dir=manual_dir,
                                  allow_download=False)


@pytest.fixture(scope='session')
def raw_seed1(tfds_dir, manual_dir):
  return data.read('av_digits', seed=1, data_dir=tfds_dir, manual_dir=manual_dir,
                   allow_download=False)


@pytest.fixture(scope='session')
def mnist5k():
  return av_digits.read_mnist5k()


def _read(manual_dir, name):
  return av_digits.read_wav((pathlib.Path(manual_dir) / 'fsdd' / 'recordings' / name)
                            .read_bytes())


# ---------------------------------------------------------------------------------------------
# The builder: splits, audio, images, pairing.


def test_split_sizes_and_balance(raw):
  assert {split: len(batch['label']) for split, batch in raw.items()} == SIZES
  for split, batch in raw.items():
    assert batch['inputs']['audio'].shape == (SIZES[split], 8000)
    assert batch['inputs']['audio'].dtype == np.int16
    assert batch['inputs']['image'].shape == (SIZES[split], 28, 28)
    assert batch['inputs']['image'].dtype == np.uint8
    assert batch['label'].dtype == np.int32 and all(m.all() for m in batch['mask'].values())
    # Every digit and speaker in equal numbers: 5 (test, validation) or 40 (train) takes each.
    per_group = np.zeros((10, 6), int)
    np.add.at(per_group, (batch['label'], batch['meta']['speaker']), 1)
    np.testing.assert_array_equal(per_group, SIZES[split] // 60)
  np.testing.assert_array_equal(np.unique(raw['test']['meta']['take']), [0, 1, 2, 3, 4])
  assert raw['validation']['meta']['take'].min() >= 5
  keys = {split: set(zip(b['label'].tolist(), b['meta']['speaker'].tolist(),
                         b['meta']['take'].tolist())) for split, b in raw.items()}
  assert sum(len(k) for k in keys.values()) == 3000  # a partition of the 3,000 recordings
  assert len(keys['train'] | keys['validation'] | keys['test']) == 3000


def test_audio_is_the_wav_padded_or_centre_cropped(raw, manual_dir):
  batch = raw['train']
  lengths = batch['meta']['num_samples']
  for row in (int(np.argmin(lengths)), int(np.argmax(lengths)), 7):
    name = (f'{batch["label"][row]}_{av_digits.FSDD_SPEAKERS[batch["meta"]["speaker"][row]]}_'
            f'{batch["meta"]["take"][row]}.wav')
    samples = _read(manual_dir, name)
    assert len(samples) == lengths[row]
    np.testing.assert_array_equal(batch['inputs']['audio'][row], av_digits.fit_length(samples))
  longest = int(np.argmax(lengths))
  assert lengths[longest] > 8000  # 20 of the 3,000 clips exceed one second
  assert np.all(batch['inputs']['audio'][int(np.argmin(lengths)), lengths.min():] == 0)
  np.testing.assert_array_equal(av_digits.fit_length(np.arange(10), 4), [3, 4, 5, 6])


def test_every_pair_shares_its_label_and_images_are_mnist5k(raw, mnist5k):
  images, image_labels = mnist5k
  assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(image_labels), np.full(10, 500))
  for batch in raw.values():
    rows = batch['meta']['image_index']
    np.testing.assert_array_equal(image_labels[rows], batch['label'])
    np.testing.assert_array_equal(images[rows], batch['inputs']['image'])


def test_no_image_is_used_twice_or_in_two_splits(raw):
  used = [set(batch['meta']['image_index'].tolist()) for batch in raw.values()]
  assert [len(u) for u in used] == list(SIZES.values())  # no repeat within a split
  assert not (used[0] & used[1]) and not (used[0] & used[2]) and not (used[1] & used[2])


def test_pairing_is_deterministic_for_a_seed_and_differs_across_seeds(raw, raw_seed1,
                                                                     mnist5k):
  # The builder's pairing is `split_and_pair` of the recordings in canonical order.
  names = av_digits.recording_names()
  fields = [name[:-4].split('_') for name in names]
  labels = np.asarray([int(f[0]) for f in fields])
  speakers = np.asarray([av_digits.FSDD_SPEAKERS.index(f[1]) for f in fields])
  takes = np.asarray([int(f[2]) for f in fields])
  for seed, loaded in ((0, raw), (1, raw_seed1)):
    pairs = av_digits.split_and_pair(labels, speakers, takes, mnist5k[1], seed=seed)
    for split, (clips, images) in pairs.items():
      np.testing.assert_array_equal(takes[clips], loaded[split]['meta']['take'])
      np.testing.assert_array_equal(speakers[clips], loaded[split]['meta']['speaker'])
      np.testing.assert_array_equal(images, loaded[split]['meta']['image_index'])
  again = av_digits.split_and_pair(labels, speakers, takes, mnist5k[1], seed=0)
  np.testing.assert_array_equal(again['train'][1], raw['train']['meta']['image_index'])
  # Another seed: the same test audio (FSDD's takes 0-4), other images and validation takes.
  np.testing.assert_array_equal(raw_seed1['test']['inputs']['audio'],
                                raw['test']['inputs']['audio'])
  assert np.mean(raw_seed1['test']['meta']['image_index'] !=
                 raw['test']['meta']['image_index']) > 0.9
  assert not np.array_equal(raw_seed1['validation']['meta']['take'],
                            raw['validation']['meta']['take'])


def test_pairing_needs_enough_images():
  one_speaker = (np.zeros(50, int), np.zeros(50, int), np.arange(50))  # digit, speaker, take
  with pytest.raises(ValueError, match='Digit 0 has 50 clips but only 2 images'):
    av_digits.split_and_pair(*one_speaker, np.zeros(2, int), seed=0)
  with pytest.raises(ValueError, match='Digit 0 of speaker 0 has 3 non-test takes'):
    av_digits.split_and_pair(np.zeros(8, int), np.zeros(8, int), np.arange(8), np.zeros(9, int),
                             seed=0)


def test_bad_seed_and_bad_wav_raise(tmp_path):
  with pytest.raises(ValueError, match='seed must be a non-negative integer; got -1'):
    av_digits.AVDigits(seed=-1, data_dir=str(tmp_path))
  with pytest.raises(ValueError, match='Pass seed or config, not both'):
    av_digits.AVDigits(seed=1, config='seed_0', data_dir=str(tmp_path))
  buffer = io.BytesIO()
  with wave.open(buffer, 'wb') as handle:
    handle.setnchannels(2)
    handle.setsampwidth(2)
    handle.setframerate(16000)
    handle.writeframes(np.zeros(20, np.int16).tobytes())
  with pytest.raises(ValueError, match=r'x\.wav must be mono 16-bit PCM at 8000 Hz; got 2 '
                                       r'channel\(s\), 16-bit, 16000 Hz'):
    av_digits.read_wav(buffer.getvalue(), name='x.wav')


def test_unavailable_recordings_say_what_to_do(tmp_path):
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(FileNotFoundError, match=r'(?s)fsdd.*downloading is disabled.*To fix: '
                                              r'Place the recordings/ folder.*26eb9aaf76e81b69'):
    av_digits.read_av_digits(data_dir=str(tmp_path / 'tfds'), manual_dir=str(empty),
                             allow_download=False)
  assert not list((tmp_path / 'tfds').glob('av_digits/*/*/*.array_record*'))


def test_recordings_are_read_from_the_github_archive(tmp_path, manual_dir):
  """The download path: FSDD's GitHub archive, here built from the manual copy."""
  folder = tmp_path / 'fsdd'
  folder.mkdir()
  recordings = pathlib.Path(manual_dir) / 'fsdd' / 'recordings'
  with zipfile.ZipFile(folder / av_digits._ARCHIVE_NAME, 'w') as archive:
    for name in av_digits.recording_names():
      archive.write(recordings / name, av_digits._ARCHIVE_PREFIX + name)
  read = av_digits._recordings_reader(str(tmp_path), None, False, 'unused')
  for name in ('0_george_0.wav', '9_yweweler_49.wav'):
    assert read(name) == (recordings / name).read_bytes()


def test_embedded_mnist5k_matches_its_recorded_sha256():
  folder = av_digits.MNIST5K_PATH.parent
  recorded = re.findall(r'\| `(mnist_5k\.csv\.gz)` \| `([0-9a-f]{64})`',
                        (folder / 'SOURCE.md').read_text())
  assert recorded and recorded[0][0] == 'mnist_5k.csv.gz'
  assert hashlib.sha256(av_digits.MNIST5K_PATH.read_bytes()).hexdigest() == recorded[0][1]


# ---------------------------------------------------------------------------------------------
# load('av_digits'): features and scaling.


def test_load_log_mel_scaled_with_training_statistics(raw, av_digits_splits):
  splits = av_digits_splits
  assert splits.order == ('audio', 'image') and splits.num_classes == 10
  assert splits.shapes == {'audio': (101, 40), 'image': (28, 28)}
  assert (splits.name, splits.protocol, splits.task) == ('av_digits', 'fsdd', 'classification')
  assert splits.sizes == SIZES
  for split, batch in (('train', splits.train), ('validation', splits.validation),
                       ('test', splits.test)):
    for key, values in raw[split]['meta'].items():
      np.testing.assert_array_equal(batch['meta'][key], values)
  for split, batch in (('train', splits.train), ('validation', splits.validation),
                       ('test', splits.test)):
    assert batch['inputs']['audio'].shape == (SIZES[split], 101, 40)
    assert batch['inputs']['audio'].dtype == np.float32
    assert np.all(np.isfinite(batch['inputs']['audio']))
    np.testing.assert_array_equal(batch['label'], raw[split]['label'])
    np.testing.assert_array_equal(batch['inputs']['image'] * np.float32(255),
                                  raw[split]['inputs']['image'].astype(np.float32))
  train_audio = splits.train['inputs']['audio'].astype(np.float64)
  np.testing.assert_allclose(train_audio.mean(axis=(0, 1)), 0, atol=1e-4)
  np.testing.assert_allclose(train_audio.std(axis=(0, 1)), 1, atol=1e-4)
  assert np.abs(splits.test['inputs']['audio'].mean(axis=(0, 1))).max() > 1e-3
  unscaled = av_digits.compute_log_mel(raw['test']['inputs']['audio'][:4])
  audio_shift, audio_scale = splits.scaling['audio']
  assert audio_shift.shape == audio_scale.shape == (40,)  # per mel band
  np.testing.assert_allclose(splits.test['inputs']['audio'][:4] * audio_scale + audio_shift,
                             unscaled, rtol=1e-5, atol=1e-4)
  image_shift, image_scale = splits.scaling['image']
  np.testing.assert_array_equal(
      splits.test['inputs']['image'], (raw['test']['inputs']['image'].astype(np.float32) -
                                       np.float32(image_shift)) / np.float32(image_scale))
  with pytest.raises(ValueError, match="dims needs 1-D examples, but modality 'audio' has "
                                       r'per-example shape \(101, 40\)'):
    splits.dims  # pylint: disable=pointless-statement


def test_load_waveform_and_flat_images(raw, tfds_dir, manual_dir):
  splits = data.load('av_digits', seed=0, audio='waveform', scaling='none', flatten_image=True,
                     data_dir=tfds_dir, manual_dir=manual_dir, allow_download=False)
  assert splits.shapes == {'audio': (8000,), 'image': (784,)}
  assert splits.dims == {'audio': 8000, 'image': 784}
  np.testing.assert_array_equal(splits.validation['inputs']['audio'] * np.float32(32768),
                                raw['validation']['inputs']['audio'].astype(np.float32))
  assert splits.train['inputs']['image'].max() == 1.0
  with pytest.raises(KeyError, match="Unknown audio feature 'mfcc'; valid names: log_mel, "
                                     'waveform'):
    data.load('av_digits', audio='mfcc', data_dir=tfds_dir, manual_dir=manual_dir)
  with pytest.raises(KeyError, match="Unknown log-mel option 'n_bins'"):
    data.load('av_digits', log_mel_options={'n_bins': 3}, data_dir=tfds_dir,
              manual_dir=manual_dir)
  with pytest.raises(KeyError, match="Unknown option 'flatten' of 'av_digits'; valid names: "
                                     'audio, flatten_image, log_mel_options'):
    data.load('av_digits', flatten=True, data_dir=tfds_dir, manual_dir=manual_dir)
  with pytest.raises(KeyError, match="Unknown scaling 'minmax'; valid names: none, standard"):
    data.load('av_digits', scaling='minmax', data_dir=tfds_dir, manual_dir=manual_dir)
  for argument in ('validation_fraction', 'test_fraction'):
    with pytest.raises(ValueError, match=f"{argument} must be None for 'av_digits' protocol "
                                         "'fsdd'"):
      data.load('av_digits', **{argument: 0.1}, data_dir=tfds_dir, manual_dir=manual_dir)


def test_load_one_modality(raw, tfds_dir, manual_dir):
  splits = data.load('av_digits', modalities=('image',), data_dir=tfds_dir,
                     manual_dir=manual_dir, allow_download=False)
  assert splits.order == ('image',) and list(splits.scaling) == ['image']
  assert list(splits.train['inputs']) == list(splits.train['mask']) == ['image']
  np.testing.assert_array_equal(splits.train['inputs']['image'] * np.float32(255),
                                raw['train']['inputs']['image'].astype(np.float32))


# ---------------------------------------------------------------------------------------------
# The log-mel spectrogram.


@pytest.mark.parametrize('name', sorted(REFERENCE_PARAMETERS))
def test_log_mel_matches_librosa(name):
  reference = np.load(REFERENCE)
  expected = np.swapaxes(reference[f'mel_{name}'], -1, -2).astype(np.float64)  # [2, T, n_mels]
  ours = np.asarray(audio.log_mel_spectrogram(reference['waveform'],
                                              **REFERENCE_PARAMETERS[name]))
  assert ours.shape == expected.shape and ours.dtype == np.float32
  np.testing.assert_allclose(np.exp(ours.astype(np.float64)) - 1e-6, expected, rtol=1e-4,
                             atol=1e-4 * 1e-6)
  np.testing.assert_allclose(ours, np.log(expected + 1e-6), rtol=1e-4, atol=1e-4)


def test_log_mel_shapes_dtypes_jit_and_vmap():
  waveform = (np.random.default_rng(0).normal(size=(3, 1000)) * 4000).astype(np.int16)
  options = dict(sample_rate=8000, n_fft=128, hop_length=50, n_mels=16)
  eager = audio.log_mel_spectrogram(waveform, **options)
  assert eager.shape == (3, 1 + 1000 // 50, 16) and eager.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(eager)))
  function = jax.jit(lambda w: audio.log_mel_spectrogram(w, **options))
  np.testing.assert_allclose(function(waveform), eager, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jax.vmap(function)(waveform), eager, rtol=1e-5, atol=1e-5)
  scaled = waveform.astype(np.float32) / np.float32(32768)
  np.testing.assert_allclose(audio.log_mel_spectrogram(scaled, **options), eager, rtol=1e-6,
                             atol=1e-5)
  uncentred = audio.log_mel_spectrogram(waveform[0], center=False, **options)
  assert uncentred.shape == (1 + (1000 - 128) // 50, 16)
  half = audio.log_mel_spectrogram(scaled.astype(jnp.bfloat16), **options)
  assert half.dtype == jnp.float32   # the FFT needs float32: half precision is upcast
  np.testing.assert_allclose(half, audio.log_mel_spectrogram(
      scaled.astype(jnp.bfloat16).astype(np.float32), **options), rtol=1e-6, atol=1e-6)
  odd = audio.log_mel_spectrogram(waveform[0], **{**options, 'n_fft': 127})
  assert odd.shape == (1 + (1000 + 2 * 63 - 127) // 50, 16) == (20, 16)
  silence = audio.log_mel_spectrogram(np.zeros(400, np.int16), **options)
  np.testing.assert_allclose(silence, np.log(1e-6), rtol=1e-6)


def test_mel_filterbank_matches_the_mel_scale():
  np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel([0.0, 440.0, 3000.0])),
                             [0.0, 440.0, 3000.0], atol=1e-9)
  np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel(3000.0, htk=True), htk=True),
                             3000.0)
  bank = audio.mel_filterbank(sample_rate=8000, n_fft=256, n_mels=40)
  assert bank.shape == (129, 40) and np.all(bank >= 0) and np.all(bank.sum(axis=0) > 0)
  peaks = audio.mel_filterbank(sample_rate=8000, n_fft=256, n_mels=10, norm=None)
  assert peaks.max() <= 1.0


def test_log_mel_bad_input_raises():
  options = dict(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40)
  with pytest.raises(TypeError, match='waveform must be int16 or floating point; got dtype '
                                      'int32'):
    audio.log_mel_spectrogram(np.zeros(1000, np.int32), **options)
  with pytest.raises(ValueError, match='at least n_fft = 256 samples'):
    audio.log_mel_spectrogram(np.zeros(100, np.int16), center=False, **options)
  with pytest.raises(ValueError, match=r'fmin and fmax must satisfy .*fmax=5000'):
    audio.log_mel_spectrogram(np.zeros(1000, np.int16), fmax=5000.0, **options)
  with pytest.raises(ValueError, match='hop_length must be a positive integer; got 0'):
    audio.log_mel_spectrogram(np.zeros(1000, np.int16), **{**options, 'hop_length': 0})


# ---------------------------------------------------------------------------------------------
# Handwritten's imbalanced view pairs.


def test_imbalanced_pairs_load_two_views_and_the_first_is_stronger(tfds_dir):
  pairs = data.HANDWRITTEN_IMBALANCED_PAIRS
  views = [view for pair in pairs.values() for view in pair]
  assert sorted(views) == sorted(data.HANDWRITTEN_VIEWS)  # three disjoint pairs of all six
  assert all(name == '_'.join(pair) for name, pair in pairs.items())
  splits = data.load('handwritten_fac_mor', seed=0, data_dir=tfds_dir)
  assert splits.order == ('fac', 'mor') and splits.dims == {'fac': 216, 'mor': 6}
  assert (splits.name, splits.protocol) == ('handwritten_fac_mor', 'stratified')
  for name, pair in pairs.items():
    spec = data.DATASETS[f'handwritten_{name}']
    assert spec.modalities == pair and spec.scaling == 'standard'
    assert spec.default_protocol == 'stratified'
  accuracy = {view: handwritten_pairs.linear_probe_accuracy(
      splits.train['inputs'][view], splits.train['label'], splits.test['inputs'][view],
      splits.test['label'], num_classes=10, max_iterations=60) for view in splits.order}
  assert accuracy['fac'] > 0.9 and accuracy['mor'] < 0.8, accuracy


def test_linear_probe_checks_shapes():
  with pytest.raises(ValueError, match=r'train_inputs must be \[N, D\] with N = len\(labels\) '
                                       r'= 3; got shape \(2, 1\)'):
    handwritten_pairs.linear_probe_accuracy(np.zeros((2, 1)), np.zeros(3, int),
                                            np.zeros((2, 1)), np.zeros(2, int), num_classes=2)
