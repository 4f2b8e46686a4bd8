"""Gradient methods for imbalanced multimodal learning, as optax transforms.

Each method is an `optax.GradientTransformationExtraArgs` acting on one modality's parameters;
route leaves to it with `optax.partition` and a label tree from `modality_labels`, and chain it
before the optimizer. Batch-dependent inputs (unimodal logits, labels, the epoch) are keyword-only
extra args of `update`.
"""

from lqmm.optim import modulation
from lqmm.optim.modulation import ogm
from lqmm.optim.labels import SHARED
from lqmm.optim.labels import leaf_path
from lqmm.optim.labels import modality_labels
from lqmm.optim.modulation import ScaleByOGMState
from lqmm.optim.modulation import modality_scores
from lqmm.optim.modulation import ogm_coefficients
from lqmm.optim.modulation import scale_by_ogm
from lqmm.optim.modulation import split_linear_head

__all__ = [
    'SHARED', 'ScaleByOGMState', 'leaf_path', 'modality_labels', 'modality_scores', 'modulation', 'ogm',
    'ogm_coefficients', 'scale_by_ogm', 'split_linear_head',
]
