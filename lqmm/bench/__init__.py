"""The low-quality benchmark harness: methods x seeds on a data set, through `lqmm.train.fit`.

    python -m lqmm.bench --config=lqmm/bench/configs/fusion.py:smoke --workdir=/tmp/bench

Two suites share the harness (`harness.run`), the training loop, the method shape
(`methods.Method`: a loss, an optional optax transform and hooks) and the report (`report`):

- `fusion_suite`: late-fusion rules scored under clean, noisy, missing and quality-varying test
  data (`conditions`);
- `imbalance_suite`: balanced-learning methods with linear-probe gaps against each modality
  trained alone.
"""

from lqmm.bench import conditions
from lqmm.bench import fusion_suite
from lqmm.bench import harness
from lqmm.bench import imbalance_suite
from lqmm.bench import methods
from lqmm.bench import report
from lqmm.bench.conditions import Condition
from lqmm.bench.harness import SUITES
from lqmm.bench.harness import MethodResult
from lqmm.bench.harness import resolve
from lqmm.bench.harness import run
from lqmm.bench.harness import train_method
from lqmm.bench.methods import Hooks
from lqmm.bench.methods import Method

__all__ = ['Condition', 'Hooks', 'Method', 'MethodResult', 'SUITES', 'conditions',
           'fusion_suite', 'harness', 'imbalance_suite', 'methods', 'report', 'resolve', 'run',
           'train_method']
