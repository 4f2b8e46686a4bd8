"""Decision-level fusion rules on stacked modality outputs `[M, ..., K]` with presence masks."""

from lqmm.fusion import dempster_shafer
from lqmm.fusion.base import FusionRule
from lqmm.fusion.base import apply_mask
from lqmm.fusion.base import fuse
from lqmm.fusion.base import stack_modalities
from lqmm.fusion.base import tree_reduce

__all__ = [
    'FusionRule',
    'apply_mask',
    'dempster_shafer',
    'fuse',
    'stack_modalities',
    'tree_reduce',
]
