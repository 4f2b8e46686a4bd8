"""Training losses: per-sample values, reduction left to the caller."""

from lqmm.losses import evidential
from lqmm.losses import nig
from lqmm.losses import ranking

__all__ = ['evidential', 'nig', 'ranking']
