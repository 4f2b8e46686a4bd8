"""Training losses: per-sample values, reduction left to the caller."""

from lqmm.losses import evidential

__all__ = ['evidential']
