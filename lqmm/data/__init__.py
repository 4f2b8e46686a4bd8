"""Data sets as TFDS builders (array_record, no TensorFlow) and dict-of-modality batches."""

from lqmm.data import diabetes
from lqmm.data.builders import HANDWRITTEN_VIEWS
from lqmm.data.builders import Handwritten
from lqmm.data.builders import ROSMAP_VIEWS
from lqmm.data.builders import Rosmap
from lqmm.data.diabetes import DIABETES_MODALITIES
from lqmm.data.diabetes import Diabetes
from lqmm.data.diabetes import DiabetesSplits
from lqmm.data.diabetes import load_diabetes
from lqmm.data.diabetes import prepare_diabetes
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
    'DATASETS', 'DIABETES_MODALITIES', 'DatasetSpec', 'Diabetes', 'DiabetesSplits',
    'HANDWRITTEN_VIEWS', 'Handwritten', 'ROSMAP_VIEWS', 'Rosmap',
    'Splits', 'apply_scaling', 'diabetes', 'fit_scaling', 'load', 'load_diabetes', 'prepare',
    'prepare_diabetes', 'stratified_split', 'take',
]
