"""Data sets as TFDS builders (array_record, no TensorFlow) and dict-of-modality batches.

One entry for every data set, one for a user's own arrays, one result type::

    splits = lqmm.data.load('handwritten')                     # or any key of DATASETS
    splits = lqmm.data.from_arrays({'left': x1, 'right': x2}, labels)
    splits.train  # {'inputs': {m: f32[N, ...]}, 'mask': {m: bool[N]}, 'label': i32[N]}

`DATASETS` lists the names `load` knows with their modalities, task, classes, protocols and
defaults; `read` returns a data set's raw (unsplit, unscaled) TFDS splits; `mask_folds` the
published missing-view folds (CDIMC-net's, on Handwritten's rows) as bool masks; `load_image`
the grey test images shipped with lqmm (scikit-image's camera and coins).
"""

from lqmm.data import audio
from lqmm.data import av_digits
from lqmm.data import diabetes
from lqmm.data import images
from lqmm.data.audio import log_mel_spectrogram
from lqmm.data.audio import mel_filterbank
from lqmm.data.av_digits import AVDigits
from lqmm.data.builders import HANDWRITTEN_VIEWS
from lqmm.data.builders import Handwritten
from lqmm.data.builders import ROSMAP_VIEWS
from lqmm.data.builders import Rosmap
from lqmm.data.diabetes import DIABETES_MODALITIES
from lqmm.data.diabetes import Diabetes
from lqmm.data.handwritten_pairs import HANDWRITTEN_IMBALANCED_PAIRS
from lqmm.data.images import IMAGES
from lqmm.data.images import load_image
from lqmm.data.loading import DATASETS
from lqmm.data.loading import DatasetSpec
from lqmm.data.loading import Protocol
from lqmm.data.loading import load
from lqmm.data.loading import load_from
from lqmm.data.loading import read
from lqmm.data.mask_folds import MASK_FOLDS
from lqmm.data.mask_folds import MaskFolds
from lqmm.data.mask_folds import mask_folds
from lqmm.data.splitting import SCALINGS
from lqmm.data.splitting import Splits
from lqmm.data.splitting import TASKS
from lqmm.data.splitting import apply_scaling
from lqmm.data.splitting import fit_scaling
from lqmm.data.splitting import from_arrays
from lqmm.data.splitting import random_split
from lqmm.data.splitting import stratified_split
from lqmm.data.splitting import take

__all__ = [
    'AVDigits', 'DATASETS', 'DIABETES_MODALITIES', 'DatasetSpec', 'Diabetes',
    'HANDWRITTEN_IMBALANCED_PAIRS', 'HANDWRITTEN_VIEWS', 'Handwritten', 'IMAGES', 'MASK_FOLDS',
    'MaskFolds', 'Protocol',
    'ROSMAP_VIEWS', 'Rosmap', 'SCALINGS', 'Splits', 'TASKS', 'apply_scaling', 'audio',
    'av_digits', 'diabetes', 'fit_scaling', 'from_arrays', 'images', 'load', 'load_from',
    'load_image',
    'log_mel_spectrogram', 'mask_folds', 'mel_filterbank', 'random_split', 'read',
    'stratified_split', 'take',
]
