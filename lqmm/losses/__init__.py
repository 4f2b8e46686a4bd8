"""Training losses: per-sample values, reduction left to the caller."""

from lqmm.losses import evidential
from lqmm.losses import nig

__all__ = ['evidential', 'nig']
