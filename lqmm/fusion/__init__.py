"""Decision-level fusion rules on stacked modality outputs `[M, ..., K]` with presence masks.

Every rule module exposes one entry point, `fuse(x, mask=None, *, <hyper-parameters>)`, which
reduces the modality axis 0 of `x [M, ..., K]` (the NIG fields, for `nig`) under an optional bool
presence mask `[M, ...]`; hyper-parameters are keyword-only. A missing modality is replaced by
the rule's identity element (documented in each module), never branched on. Where the rule is
associative, the module also exposes `combine(a, b)` and `RULE = FusionRule(combine,
identity_like)`, which the generic `fuse(rule, x, mask)` of `base` reduces with a balanced tree.

- `dempster_shafer`: reduced Dempster rule on Dirichlet opinions (TMC).
- `subjective_logic`: cumulative and averaging belief fusion, trust discounting.
- `conflictive`: RCML's view-by-view averaging of opinions and its degree of conflict.
- `nig`: mixture of Normal-Inverse-Gamma distributions for regression (MoNIG).
- `energy`: energy-weighted late fusion (QMF).
- `entropy`: entropy-weighted late fusion.
- `confidence`: true-class-probability gated concatenation (Multimodal Dynamics).
- `noisy_or`: noisy-or with entropy-based likelihood flattening (UNO).
- `bayes`: Bayesian product fusion with a prior and a background class (ProbEn).
- `product`: categorical and Gaussian products of experts.
- `weighted`: the survey's weighted late fusion (Eq. 11) and weight-loss covariance (Eq. 12).
- `baselines`: sum and mean over present modalities; concatenation of features.

`RULES` maps a rule's name to its `fuse`, and `get(name)` looks one up (configs name rules by
these strings):

>>> import jax.numpy as jnp
>>> from lqmm import fusion
>>> alpha = jnp.array([[[3., 1.]], [[1., 2.]]])  # [M=2, B=1, K=2]
>>> fusion.get('dempster_shafer')(alpha)
Array([[3., 2.]], dtype=float32)
>>> fusion.get('averaging')(alpha)
Array([[2. , 1.5]], dtype=float32)

Importing this package loads only jax and numpy (no optax, no neural-network library).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from lqmm import checks
from lqmm.fusion import baselines
from lqmm.fusion import bayes
from lqmm.fusion import confidence
from lqmm.fusion import conflictive
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
from lqmm.fusion.base import jit_reusing_output
from lqmm.fusion.base import stack_modalities
from lqmm.fusion.base import tree_reduce

#: Rule name -> `fuse(x, mask=None, **hyper_parameters)`, reducing axis 0 of `x [M, ..., K]`.
RULES: dict[str, Callable] = {
    'averaging': functools.partial(subjective_logic.fuse, method='averaging'),
    'bayes': bayes.fuse,
    'confidence': confidence.fuse,
    'conflictive': conflictive.fuse,
    'cumulative': functools.partial(subjective_logic.fuse, method='cumulative'),
    'dempster_shafer': dempster_shafer.fuse,
    'energy': energy.fuse,
    'entropy': entropy.fuse,
    'mean': functools.partial(baselines.fuse, reduction='mean'),
    'nig': nig.fuse,
    'noisy_or': noisy_or.fuse,
    'product': product.fuse,
    'sum': functools.partial(baselines.fuse, reduction='sum'),
    'uno': noisy_or.uno,
    'weighted': weighted.fuse,
}


def get(name: str) -> Callable:
  """The `fuse` function of the rule called `name` (a key of `RULES`).

  Args:
    name: a rule name, e.g. `'dempster_shafer'`, `'nig'` or `'mean'`.

  Returns:
    `fuse(x, mask=None, **hyper_parameters)`.

  Raises:
    KeyError: `name` is not a key of `RULES`; the message lists the valid names.
  """
  return checks.lookup(RULES, name, 'fusion rule')


__all__ = [
    'RULES',
    'FusionRule',
    'apply_mask',
    'baselines',
    'bayes',
    'confidence',
    'conflictive',
    'dempster_shafer',
    'energy',
    'entropy',
    'fuse',
    'get',
    'jit_reusing_output',
    'nig',
    'noisy_or',
    'product',
    'stack_modalities',
    'subjective_logic',
    'tree_reduce',
    'weighted',
]
