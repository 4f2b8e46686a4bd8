"""Missing modalities: presence-mask protocols, masked helpers and modality dropout.

`legacy_mask` replays the published generators (COMPLETER, DCP, CPM-Nets) bit for bit;
`impute` fills missing views once, `distributions` draws them several times (UIMC).
"""

from lqmm.missing import distributions
from lqmm.missing import dropout
from lqmm.missing.dropout import modality_dropout
from lqmm.missing.dropout import pathway_dropout
from lqmm.missing import impute
from lqmm.missing import legacy
from lqmm.missing.legacy import legacy_mask
from lqmm.missing import protocols
from lqmm.missing.masks import apply_to_batch
from lqmm.missing.masks import as_dict
from lqmm.missing.masks import random_mask
from lqmm.missing.masks import stack_masks
from lqmm.missing.protocols import MEANINGS
from lqmm.missing.protocols import MissingSpec
from lqmm.missing.protocols import convert_rate
from lqmm.missing.protocols import incomplete_samples_mask
from lqmm.missing.protocols import missing_entries_mask
from lqmm.missing.protocols import paired_mask
from lqmm.missing.protocols import per_view_mask

__all__ = [
    'MEANINGS', 'MissingSpec', 'apply_to_batch', 'as_dict', 'convert_rate', 'distributions',
    'dropout', 'impute', 'incomplete_samples_mask', 'legacy', 'legacy_mask',
    'missing_entries_mask', 'modality_dropout', 'paired_mask', 'pathway_dropout',
    'per_view_mask', 'protocols', 'random_mask', 'stack_masks',
]
