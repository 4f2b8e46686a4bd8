"""Decision-level fusion rules on stacked modality outputs `[M, ..., K]` with presence masks.

Associative rules are `FusionRule`s (`combine`, `identity_like`) and reduce with `fuse`; every
module also offers a closed-form or one-step `fuse(x, mask)`:

- `dempster_shafer`: reduced Dempster rule on Dirichlet opinions (TMC).
- `subjective_logic`: cumulative and averaging belief fusion, trust discounting.
- `nig`: mixture of Normal-Inverse-Gamma distributions for regression (MoNIG).
- `energy`: energy-weighted late fusion (QMF).
- `entropy`: entropy-weighted late fusion.
- `confidence`: true-class-probability gating (Multimodal Dynamics).
- `noisy_or`: noisy-or with entropy-based likelihood flattening (UNO).
- `bayes`: Bayesian product fusion with a prior and a background class (ProbEn).
- `product`: categorical and Gaussian products of experts.
- `weighted`: the survey's weighted late fusion (Eq. 11) and weight-loss covariance (Eq. 12).
- `baselines`: sum, mean over present modalities, concatenation.
"""

from lqmm.fusion import baselines
from lqmm.fusion import bayes
from lqmm.fusion import confidence
from lqmm.fusion import dempster_shafer
from lqmm.fusion import energy
from lqmm.fusion import entropy
from lqmm.fusion import nig
from lqmm.fusion import noisy_or
from lqmm.fusion import product
from lqmm.fusion import subjective_logic
from lqmm.fusion import weighted
from lqmm.fusion.base import FusionRule
from lqmm.fusion.base import apply_mask
from lqmm.fusion.base import fuse
from lqmm.fusion.base import stack_modalities
from lqmm.fusion.base import tree_reduce

__all__ = [
    'FusionRule',
    'apply_mask',
    'baselines',
    'bayes',
    'confidence',
    'dempster_shafer',
    'energy',
    'entropy',
    'fuse',
    'nig',
    'noisy_or',
    'product',
    'stack_modalities',
    'subjective_logic',
    'tree_reduce',
    'weighted',
]
