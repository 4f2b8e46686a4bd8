"""Log-mel spectrograms in JAX: framing, a Hann window, `jnp.fft.rfft`, a mel filterbank, a log.

`log_mel_spectrogram` follows `librosa.feature.melspectrogram` (librosa >= 0.10 defaults:
`center=True` with zero padding, a periodic Hann window of length `n_fft`, power 2, Slaney's
mel scale with Slaney's area normalisation) and then takes `log(mel + eps)`. It is a pure
function of one waveform or a batch of waveforms, so it works under `jax.jit` and `jax.vmap`;
the filterbank and the window depend only on the static parameters and are built once per trace
with numpy. The result is laid out time-major, `[..., T, n_mels]` (librosa's is
`[..., n_mels, T]`).

Parity with librosa is tested in `tests/data/test_av_digits.py` on vectors stored in
`tests/data/reference/` (the PROVENANCE note there records the librosa version).

References:
  Slaney, M. "Auditory Toolbox", Technical Report 1998-010, Interval Research Corporation
  (1998): the mel scale (linear below 1 kHz, logarithmic above) and the filter normalisation.
  Young et al. "The HTK Book" (2006): the alternative `2595 log10(1 + f / 700)` mel scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks

#: The scale that maps int16 samples to [-1, 1) (the soundfile/librosa convention).
INT16_SCALE = 32768.0

_MEL_NORMS = (None, 'slaney')

# Slaney's mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(frequencies, *, htk: bool = False) -> np.ndarray:
  """Converts frequencies in Hz to mels (numpy, float64).

  Args:
    frequencies: frequencies in Hz, any shape.
    htk: use the HTK formula `2595 log10(1 + f / 700)`; otherwise Slaney's scale (linear
      below 1 kHz, logarithmic above), as `librosa.hz_to_mel`.

  Returns:
    float64 mels, the shape of `frequencies`.

  >>> round(float(hz_to_mel(1000.0)), 9), round(float(hz_to_mel(1000.0, htk=True)), 2)
  (15.0, 999.99)
  """
  frequencies = np.asarray(frequencies, np.float64)
  if htk:
    return 2595.0 * np.log10(1.0 + frequencies / 700.0)
  linear = frequencies / _SLANEY_HZ_PER_MEL
  logarithmic = _SLANEY_BREAK_MEL + np.log(
      np.maximum(frequencies, _SLANEY_BREAK_HZ) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
  return np.where(frequencies >= _SLANEY_BREAK_HZ, logarithmic, linear)


def mel_to_hz(mels, *, htk: bool = False) -> np.ndarray:
  """Converts mels to frequencies in Hz (numpy, float64); the inverse of `hz_to_mel`."""
  mels = np.asarray(mels, np.float64)
  if htk:
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
  linear = mels * _SLANEY_HZ_PER_MEL
  logarithmic = _SLANEY_BREAK_HZ * np.exp(
      _SLANEY_LOG_STEP * (np.maximum(mels, _SLANEY_BREAK_MEL) - _SLANEY_BREAK_MEL))
  return np.where(mels >= _SLANEY_BREAK_MEL, logarithmic, linear)


def mel_filterbank(*, sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None, htk: bool = False,
                   norm: str | None = 'slaney') -> np.ndarray:
  """Triangular mel filters as a matrix from FFT bins to mel bands (numpy, float64).

  The same filters as `librosa.filters.mel`, transposed: `n_mels` triangles whose edges lie
  at `n_mels + 2` points equally spaced on the mel scale between `fmin` and `fmax`.

  Args:
    sample_rate: sampling rate in Hz.
    n_fft: FFT length; the spectrum has `n_fft // 2 + 1` bins.
    n_mels: number of mel bands.
    fmin: lowest edge in Hz.
    fmax: highest edge in Hz; None means the Nyquist frequency `sample_rate / 2`.
    htk: HTK's mel formula instead of Slaney's.
    norm: 'slaney' divides each triangle by its width in Hz (constant energy per band, the
      librosa default); None leaves peak-1 triangles.

  Returns:
    float64 `[n_fft // 2 + 1, n_mels]`.

  Raises:
    ValueError: a non-positive size, `fmin`/`fmax` outside `[0, sample_rate / 2]`, or an
      unknown `norm`.

  >>> mel_filterbank(sample_rate=8000, n_fft=256, n_mels=40).shape
  (129, 40)
  """
  for argument, value in (('sample_rate', sample_rate), ('n_fft', n_fft), ('n_mels', n_mels)):
    if int(value) != value or value <= 0:
      raise ValueError(f'{argument} must be a positive integer; got {value!r}.')
  nyquist = sample_rate / 2.0
  fmax = nyquist if fmax is None else float(fmax)
  if not 0.0 <= fmin < fmax <= nyquist:
    raise ValueError(f'fmin and fmax must satisfy 0 <= fmin < fmax <= sample_rate / 2 = '
                     f'{nyquist}; got fmin={fmin!r}, fmax={fmax!r}.')
  if norm not in _MEL_NORMS:
    raise ValueError(f"norm must be 'slaney' or None; got {norm!r}.")
  fft_frequencies = np.linspace(0.0, nyquist, n_fft // 2 + 1)
  edges = mel_to_hz(np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels + 2),
                    htk=htk)
  widths = np.diff(edges)
  ramps = edges[:, None] - fft_frequencies[None, :]
  rising = -ramps[:-2] / widths[:-1, None]
  falling = ramps[2:] / widths[1:, None]
  weights = np.maximum(0.0, np.minimum(rising, falling))
  if norm == 'slaney':
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
  return weights.T


def hann_window(length: int) -> np.ndarray:
  """The periodic Hann window `0.5 - 0.5 cos(2 pi n / length)` (numpy, float64, `[length]`).

  This is `scipy.signal.get_window('hann', length)`, the window of librosa's STFT.
  """
  return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def _as_float(waveform: jax.Array) -> jax.Array:
  if jnp.issubdtype(waveform.dtype, jnp.floating):
    # The FFT needs float32 or float64: half-precision input is upcast.
    return checks.upcast(waveform)
  if waveform.dtype != jnp.int16:
    raise TypeError(f'waveform must be int16 or floating point; got dtype {waveform.dtype}.')
  return waveform.astype(jnp.float32) / INT16_SCALE


def log_mel_spectrogram(waveform, *, sample_rate: int, n_fft: int, hop_length: int,
                        n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                        htk: bool = False, norm: str | None = 'slaney', center: bool = True,
                        eps: float = 1e-6) -> jax.Array:
  """Log-mel spectrogram of one waveform or a batch, time-major.

  Computes `log(M @ |rfft(w * frame)|^2 + eps)` over frames of `n_fft` samples every
  `hop_length` samples, where `w` is a periodic Hann window and `M` the mel filterbank of
  `mel_filterbank`. Before the log this equals `librosa.feature.melspectrogram(y=..., sr=...,
  n_fft=..., hop_length=..., n_mels=..., fmin=..., fmax=..., htk=..., norm=...)` with its other
  defaults (`center=True`, `pad_mode='constant'`, `power=2.0`), transposed.

  Args:
    waveform: `[..., S]` samples; int16 is scaled to [-1, 1) by `1 / 32768`, floating input is
      used as is (float32 stays float32, float64 float64; bfloat16 and float16 become float32).
    sample_rate: sampling rate in Hz.
    n_fft: frame and FFT length in samples (the window length).
    hop_length: samples between the starts of consecutive frames.
    n_mels: number of mel bands.
    fmin, fmax: frequency range of the filterbank in Hz (`fmax=None`: `sample_rate / 2`).
    htk: HTK's mel formula instead of Slaney's (default Slaney, as librosa).
    norm: 'slaney' (area-normalised triangles, the librosa default) or None.
    center: pad `n_fft // 2` zeros on both sides so frame `t` is centred on sample
      `t * hop_length` (librosa's default); otherwise frames start at sample 0.
    eps: added before the log; bounds the log of silence below by `log(eps)`.

  Returns:
    `[..., T, n_mels]` in the floating dtype of the (scaled) input, with
    `T = 1 + (S + 2 (n_fft // 2) - n_fft) // hop_length` when `center` (`1 + S // hop_length`
    for an even `n_fft`) and `1 + (S - n_fft) // hop_length` otherwise.

  Raises:
    TypeError: `waveform` is neither int16 nor floating point.
    ValueError: `waveform` has no sample axis or is shorter than one frame, or a bad
      filterbank parameter (see `mel_filterbank`).

  >>> waveform = jnp.zeros((2, 8000), jnp.int16)
  >>> log_mel_spectrogram(waveform, sample_rate=8000, n_fft=256, hop_length=80, n_mels=40).shape
  (2, 101, 40)
  """
  waveform = _as_float(jnp.asarray(waveform))
  if waveform.ndim < 1:
    raise ValueError(f'waveform must have a sample axis laid out as [..., S]; got shape '
                     f'{waveform.shape}.')
  if int(hop_length) != hop_length or hop_length <= 0:
    raise ValueError(f'hop_length must be a positive integer; got {hop_length!r}.')
  filterbank = mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                              fmax=fmax, htk=htk, norm=norm)
  if center:
    padding = [(0, 0)] * (waveform.ndim - 1) + [(n_fft // 2, n_fft // 2)]
    waveform = jnp.pad(waveform, padding)
  num_samples = waveform.shape[-1]
  if num_samples < n_fft:
    raise ValueError(f'waveform must hold at least n_fft = {n_fft} samples (after centre '
                     f'padding); got shape {waveform.shape}.')
  num_frames = 1 + (num_samples - n_fft) // hop_length
  starts = np.arange(num_frames)[:, None] * hop_length
  frames = waveform[..., starts + np.arange(n_fft)[None, :]]  # [..., T, n_fft]
  dtype = waveform.dtype
  window = jnp.asarray(hann_window(n_fft), dtype).reshape((1,) * (frames.ndim - 1) + (n_fft,))
  spectrum = jnp.fft.rfft(frames * window, axis=-1)
  power = jnp.square(spectrum.real) + jnp.square(spectrum.imag)  # [..., T, n_fft // 2 + 1]
  mel = jnp.matmul(power, jnp.asarray(filterbank, dtype), precision=jax.lax.Precision.HIGHEST)
  return jnp.log(mel + jnp.asarray(eps, dtype))
