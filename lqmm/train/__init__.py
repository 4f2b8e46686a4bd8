"""The one training loop and the kit around it.

- `TrainState`, `initializer`, `fit`, `evaluate`, `FitResult`, `StopRequested`: the loop every
  experiment and the benchmark harness use (seeds under `jax.vmap`, validation-based
  selection, Orbax checkpoints with auto-resume, metrics, progress, NaN guard); see
  `lqmm.train.loop`.
- `default_config`, `make_smoke`: the one config schema (data, model, optim, train, eval).
- `check_config`, `loop_settings`, `check_integer`, `check_number`, `check_numbers`: config
  validation before anything is written.
- `write_results`, `run_experiment`, `enable_compilation_cache`: the results files, the command
  line of an experiment and its persistent compilation cache.
- `Checkpointer` (with `CheckpointError`, `CheckpointWarning`), `MetricWriter`, `Progress`,
  `check_finite`, `make_mesh`, `shard_batch`, ...: the pieces, for code that needs them on
  their own.
- `maybe_initialize_distributed`, `distributed_settings`, `shard_rows`, `primary_first`:
  multi-process runs (started by `python -m lqmm.launch`; see `tpu_scripts/README.md`);
  `grid_shard`: this process's share of a grid split over independent processes.
"""

from lqmm.train.checkpoint import CheckpointError
from lqmm.train.checkpoint import CheckpointWarning
from lqmm.train.checkpoint import Checkpointer
from lqmm.train.config import LoopSettings
from lqmm.train.config import check_config
from lqmm.train.config import check_integer
from lqmm.train.config import check_number
from lqmm.train.config import check_numbers
from lqmm.train.config import default_config
from lqmm.train.config import loop_settings
from lqmm.train.config import make_smoke
from lqmm.train.logging import MetricWriter
from lqmm.train.loop import FitResult
from lqmm.train.loop import StopRequested
from lqmm.train.loop import evaluate
from lqmm.train.loop import fit
from lqmm.train.mesh import DATA_AXIS
from lqmm.train.mesh import check_divisible
from lqmm.train.mesh import data_sharding
from lqmm.train.mesh import distributed_settings
from lqmm.train.mesh import grid_shard
from lqmm.train.mesh import make_mesh
from lqmm.train.mesh import maybe_initialize_distributed
from lqmm.train.mesh import primary_first
from lqmm.train.mesh import replicated
from lqmm.train.mesh import shard_batch
from lqmm.train.mesh import shard_rows
from lqmm.train.outputs import enable_compilation_cache
from lqmm.train.outputs import run_experiment
from lqmm.train.outputs import write_results
from lqmm.train.progress import Progress
from lqmm.train.progress import check_finite
from lqmm.train.state import TrainState
from lqmm.train.state import initializer

__all__ = [
    'CheckpointError', 'CheckpointWarning', 'Checkpointer', 'DATA_AXIS', 'FitResult',
    'LoopSettings', 'MetricWriter', 'Progress', 'StopRequested', 'TrainState', 'check_config',
    'check_divisible', 'check_finite', 'check_integer', 'check_number', 'check_numbers',
    'data_sharding', 'default_config', 'distributed_settings', 'enable_compilation_cache',
    'evaluate', 'fit', 'grid_shard', 'initializer', 'loop_settings', 'make_mesh', 'make_smoke',
    'maybe_initialize_distributed', 'primary_first', 'replicated', 'run_experiment',
    'shard_batch', 'shard_rows', 'write_results',
]
