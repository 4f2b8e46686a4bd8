"""Gradient methods for imbalanced multimodal learning, as optax transforms.

Each method is an `optax.GradientTransformationExtraArgs`. The per-modality ones (`scale_by_ogm`,
`scale_by_agm`) act on one modality's parameters: route leaves to them with `optax.partition` and
a label tree from `modality_labels` (or use the `ogm` / `agm` wrappers that build the partition),
and chain them before the optimizer. Batch-dependent inputs (unimodal logits, labels, the epoch)
are keyword-only extra args of `update`.

- `modulation`: OGM / OGM-GE (Peng et al., CVPR 2022).
- `adaptive`: adaptive gradient modulation (Li et al., ICCV 2023).
- `greedy`: the greedy learner's learning speeds and re-balancing schedule (Wu et al., ICML 2022),
  and its parameter groups (`greedy_group_labels`).
- `rates`: per-modality learning rates.
- `adaptation`: test-time adaptation of the parameters a path pattern selects (READ).
- `labels`: labelling parameter trees by modality.
- `extra_args`: the extra-arg checks and partition helpers the transforms share.

The unimodal logits that OGM and AGM score are read off the fused head with
`lqmm.nn.split_linear_head`.
"""

from lqmm.optim import adaptation
from lqmm.optim import adaptive
from lqmm.optim import extra_args
from lqmm.optim import greedy
from lqmm.optim import labels
from lqmm.optim import modulation
from lqmm.optim import rates
from lqmm.optim.adaptation import adapt_selected
from lqmm.optim.adaptive import AGMState
from lqmm.optim.adaptive import agm
from lqmm.optim.adaptive import agm_step
from lqmm.optim.adaptive import mono_outputs
from lqmm.optim.adaptive import scale_by_agm
from lqmm.optim.adaptive import scale_gradient
from lqmm.optim.greedy import GreedyState
from lqmm.optim.greedy import conditional_utilization
from lqmm.optim.greedy import greedy_group_labels
from lqmm.optim.greedy import greedy_schedule
from lqmm.optim.labels import SHARED
from lqmm.optim.labels import leaf_path
from lqmm.optim.labels import modality_labels
from lqmm.optim.modulation import ScaleByOGMState
from lqmm.optim.modulation import ge_noise_std
from lqmm.optim.modulation import modality_scores
from lqmm.optim.modulation import ogm
from lqmm.optim.modulation import ogm_coefficients
from lqmm.optim.modulation import scale_by_ogm
from lqmm.optim.rates import modality_learning_rates
from lqmm.optim.rates import scale_by_validation_trend
from lqmm.optim.rates import validation_trend

__all__ = [
    'AGMState', 'GreedyState', 'SHARED', 'ScaleByOGMState', 'adaptation', 'adaptive', 'agm',
    'agm_step',
    'conditional_utilization', 'extra_args', 'ge_noise_std', 'greedy', 'greedy_group_labels',
    'greedy_schedule', 'labels', 'leaf_path', 'modality_labels', 'modality_learning_rates',
    'modality_scores', 'modulation', 'mono_outputs', 'ogm', 'ogm_coefficients', 'rates',
    'scale_by_agm', 'scale_by_ogm', 'scale_by_validation_trend', 'scale_gradient',
    'adapt_selected', 'validation_trend',
]
