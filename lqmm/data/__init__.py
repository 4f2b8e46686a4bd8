"""Data sets as TFDS builders (array_record, no TensorFlow) and dict-of-modality batches."""

from lqmm.data import audio
from lqmm.data import av_digits
from lqmm.data import diabetes
from lqmm.data.audio import log_mel_spectrogram
from lqmm.data.audio import mel_filterbank
from lqmm.data.av_digits import AVDigits
from lqmm.data.av_digits import AVDigitsSplits
from lqmm.data.av_digits import load_av_digits
from lqmm.data.av_digits import prepare_av_digits
from lqmm.data.builders import HANDWRITTEN_VIEWS
from lqmm.data.builders import Handwritten
from lqmm.data.builders import ROSMAP_VIEWS
from lqmm.data.builders import Rosmap
from lqmm.data.diabetes import DIABETES_MODALITIES
from lqmm.data.diabetes import Diabetes
from lqmm.data.diabetes import DiabetesSplits
from lqmm.data.diabetes import load_diabetes
from lqmm.data.diabetes import prepare_diabetes
from lqmm.data.handwritten_pairs import HANDWRITTEN_IMBALANCED_PAIRS
from lqmm.data.loading import DATASETS
from lqmm.data.loading import DatasetSpec
from lqmm.data.loading import Splits
from lqmm.data.loading import apply_scaling
from lqmm.data.loading import fit_scaling
from lqmm.data.loading import load
from lqmm.data.loading import prepare
from lqmm.data.loading import stratified_split
from lqmm.data.loading import take

__all__ = [
    'AVDigits', 'AVDigitsSplits', 'DATASETS', 'DIABETES_MODALITIES', 'DatasetSpec', 'Diabetes',
    'DiabetesSplits', 'HANDWRITTEN_IMBALANCED_PAIRS', 'HANDWRITTEN_VIEWS', 'Handwritten',
    'ROSMAP_VIEWS', 'Rosmap', 'Splits', 'apply_scaling', 'audio', 'av_digits', 'diabetes',
    'fit_scaling', 'load', 'load_av_digits', 'load_diabetes', 'log_mel_spectrogram',
    'mel_filterbank', 'prepare', 'prepare_av_digits', 'prepare_diabetes', 'stratified_split',
    'take',
]
