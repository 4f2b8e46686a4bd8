"""The low-quality benchmark harness: methods x conditions x seeds -> tables and plots.

    python -m lqmm.bench --out=bench_results            # full default grid
    python -m lqmm.bench --smoke --out=/tmp/bench       # seconds-long check

See `harness.run` for the protocol, `methods.METHODS` for the methods and `conditions.grid` for
the default conditions.
"""

from lqmm.bench import conditions
from lqmm.bench import harness
from lqmm.bench import methods
from lqmm.bench import report
from lqmm.bench.conditions import Condition
from lqmm.bench.harness import SETTINGS
from lqmm.bench.harness import Settings
from lqmm.bench.harness import run
from lqmm.bench.methods import METHODS

__all__ = ['Condition', 'METHODS', 'SETTINGS', 'Settings', 'conditions', 'harness', 'methods',
           'report', 'run']
