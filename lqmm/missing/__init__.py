"""Missing modalities: presence-mask protocols and masked helpers."""

from lqmm.missing.masks import apply_to_batch
from lqmm.missing.masks import as_dict
from lqmm.missing.masks import random_mask
from lqmm.missing.masks import stack_masks

__all__ = ['apply_to_batch', 'as_dict', 'random_mask', 'stack_masks']
