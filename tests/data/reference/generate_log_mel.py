"""Generates `log_mel_librosa.npz`: librosa's mel spectrograms of two real FSDD clips.

Run by hand in a scratch environment with librosa (never in the project's environment):

    PYENV_VERSION=3.12.1 python3 -m venv /tmp/librosa_venv
    /tmp/librosa_venv/bin/pip install librosa==1.0.0
    /tmp/librosa_venv/bin/python tests/data/reference/generate_log_mel.py ../shared/data/fsdd

It reads two recordings of the Free Spoken Digit Dataset, keeps the centre 2,000 samples of each
(int16), and stores them with `librosa.feature.melspectrogram` of `int16 / 32768` (float32) for
two parameter sets: `slaney` (the lqmm defaults for AV digits) and `htk` (HTK mel scale, no
filter normalisation, other sizes and a band-limited range).
"""

import pathlib
import sys
import wave

import librosa
import numpy as np

FILES = ('7_jackson_32.wav', '5_nicolas_12.wav')
LENGTH = 2000
PARAMETERS = {
    'slaney': dict(sr=8000, n_fft=256, hop_length=80, n_mels=40, fmin=0.0, fmax=4000.0,
                   htk=False, norm='slaney'),
    'htk': dict(sr=8000, n_fft=200, hop_length=100, n_mels=20, fmin=50.0, fmax=3800.0,
                htk=True, norm=None),
}


def main(fsdd: str) -> None:
  clips = []
  for name in FILES:
    with wave.open(str(pathlib.Path(fsdd) / 'recordings' / name), 'rb') as handle:
      samples = np.frombuffer(handle.readframes(handle.getnframes()), '<i2')
    start = (len(samples) - LENGTH) // 2
    clips.append(samples[start:start + LENGTH])
  waveform = np.stack(clips)
  out = {'waveform': waveform}
  for key, params in PARAMETERS.items():
    mel = librosa.feature.melspectrogram(y=waveform.astype(np.float32) / 32768.0, **params)
    out[f'mel_{key}'] = mel.astype(np.float32)  # [2, n_mels, T], librosa's layout
  target = pathlib.Path(__file__).with_name('log_mel_librosa.npz')
  np.savez_compressed(target, **out)
  print(target, {k: (v.shape, v.dtype) for k, v in out.items()}, 'librosa', librosa.__version__)


if __name__ == '__main__':
  main(sys.argv[1])
