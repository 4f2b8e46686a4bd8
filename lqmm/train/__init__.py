"""The small kit experiments share: mesh and sharding, checkpoints, metrics, progress."""

from lqmm.train.checkpoint import Checkpointer
from lqmm.train.logging import MetricWriter
from lqmm.train.mesh import DATA_AXIS
from lqmm.train.mesh import check_divisible
from lqmm.train.mesh import data_sharding
from lqmm.train.mesh import make_mesh
from lqmm.train.mesh import maybe_initialize_distributed
from lqmm.train.mesh import replicated
from lqmm.train.mesh import shard_batch
from lqmm.train.progress import Progress
from lqmm.train.progress import check_finite

__all__ = [
    'Checkpointer', 'DATA_AXIS', 'MetricWriter', 'Progress', 'check_divisible', 'check_finite',
    'data_sharding', 'make_mesh', 'maybe_initialize_distributed', 'replicated', 'shard_batch',
]
