"""Data sets as TFDS builders (array_record, no TensorFlow) and dict-of-modality batches."""

from lqmm.data.builders import HANDWRITTEN_VIEWS
from lqmm.data.builders import Handwritten
from lqmm.data.builders import ROSMAP_VIEWS
from lqmm.data.builders import Rosmap
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
    'DATASETS', 'DatasetSpec', 'HANDWRITTEN_VIEWS', 'Handwritten', 'ROSMAP_VIEWS', 'Rosmap',
    'Splits', 'apply_scaling', 'fit_scaling', 'load', 'prepare', 'stratified_split', 'take',
]
