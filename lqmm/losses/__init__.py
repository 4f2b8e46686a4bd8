"""Training losses: per-sample values, reduction left to the caller."""

from lqmm.losses import adaptation
from lqmm.losses import blending
from lqmm.losses import calibration
from lqmm.losses import clustering
from lqmm.losses import confidence
from lqmm.losses import contrastive
from lqmm.losses import cpm
from lqmm.losses import distillation
from lqmm.losses import evidential
from lqmm.losses import matching
from lqmm.losses import nig
from lqmm.losses import prototype
from lqmm.losses import ranking

__all__ = ['adaptation', 'blending', 'calibration', 'clustering', 'confidence', 'contrastive',
           'cpm', 'distillation', 'evidential', 'matching', 'nig', 'prototype', 'ranking']
