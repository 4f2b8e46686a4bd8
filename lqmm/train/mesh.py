"""Device meshes and data sharding with `jax.jit` + `NamedSharding`.

Small models in lqmm are data-parallel: parameters are replicated and every batch is split along
its leading (sample) axis over the mesh's `data` axis. The same code runs on one CPU, on eight
(fake) devices and on a multi-host TPU slice; results agree up to floating-point summation order.
"""

from __future__ import annotations

import contextlib
import os

import jax
import numpy as np
from jax.sharding import AxisType
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

DATA_AXIS = 'data'

#: Set to 1 to call `jax.distributed.initialize()` (multi-process runs; see `lqmm.launch`).
DISTRIBUTED_ENV = 'LQMM_DISTRIBUTED'
#: With `LQMM_DISTRIBUTED=1`, where the processes meet, how many there are and which one this
#: is. Leave all three unset where JAX discovers them itself (Cloud TPU, SLURM, Open MPI).
COORDINATOR_ENV = 'LQMM_COORDINATOR'
NUM_PROCESSES_ENV = 'LQMM_NUM_PROCESSES'
PROCESS_ID_ENV = 'LQMM_PROCESS_ID'


def _env_int(name: str, minimum: int) -> int:
  text = os.environ.get(name, '')
  try:
    value = int(text)
  except ValueError:
    raise ValueError(f'${name} must be an integer >= {minimum}; got {text!r}.') from None
  if value < minimum:
    raise ValueError(f'${name} must be an integer >= {minimum}; got {value}.')
  return value


def distributed_settings() -> dict | None:
  """`jax.distributed.initialize`'s arguments from the environment, or None when
  `$LQMM_DISTRIBUTED` is not 1 (a single-process run).

  With `$LQMM_COORDINATOR` (`host:port`), `$LQMM_NUM_PROCESSES` and `$LQMM_PROCESS_ID` all set,
  they are passed on; with none of them set, JAX discovers the cluster itself.

  Raises:
    ValueError: only some of the three are set, or a count or id is not an integer in range.
  """
  if os.environ.get(DISTRIBUTED_ENV, '0') not in ('1', 'true', 'True'):
    return None
  names = (COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV)
  given = [name for name in names if os.environ.get(name)]
  if not given:
    return {}
  if len(given) < len(names):
    missing = ', '.join(f'${name}' for name in names if name not in given)
    raise ValueError(f'{", ".join("$" + name for name in given)} set without {missing}: set '
                     'all three (an explicit cluster) or none (JAX discovers it).')
  count = _env_int(NUM_PROCESSES_ENV, 1)
  index = _env_int(PROCESS_ID_ENV, 0)
  if index >= count:
    raise ValueError(f'${PROCESS_ID_ENV} = {index} must be below ${NUM_PROCESSES_ENV} = {count}.')
  address = os.environ[COORDINATOR_ENV]
  if ':' not in address:
    raise ValueError(f'${COORDINATOR_ENV} must be host:port; got {address!r}.')
  return {'coordinator_address': address, 'num_processes': count, 'process_id': index}


#: Independent processes that split a grid of runs (`lqmm.bench`): this one's index and
#: the count. Set by `python -m lqmm.launch --grid`; unset means one process, the whole grid.
SHARD_INDEX_ENV = 'LQMM_SHARD_INDEX'
SHARD_COUNT_ENV = 'LQMM_SHARD_COUNT'


def grid_shard() -> tuple[int, int]:
  """`(index, count)` of this process among the independent shards of a grid; `(0, 1)` when
  `$LQMM_SHARD_COUNT` is unset.

  Raises:
    ValueError: only one of the two is set, or they are not integers with
      0 <= index < count.
  """
  given = [name for name in (SHARD_INDEX_ENV, SHARD_COUNT_ENV) if os.environ.get(name)]
  if not given:
    return 0, 1
  if len(given) == 1:
    other = SHARD_COUNT_ENV if given[0] == SHARD_INDEX_ENV else SHARD_INDEX_ENV
    raise ValueError(f'${given[0]} is set without ${other}: set both or neither.')
  count = _env_int(SHARD_COUNT_ENV, 1)
  index = _env_int(SHARD_INDEX_ENV, 0)
  if index >= count:
    raise ValueError(f'${SHARD_INDEX_ENV} = {index} must be below ${SHARD_COUNT_ENV} = {count}.')
  return index, count


def maybe_initialize_distributed() -> bool:
  """Calls `jax.distributed.initialize()` when `$LQMM_DISTRIBUTED` is 1; returns whether it did.

  The cluster comes from `distributed_settings` (explicit `$LQMM_COORDINATOR`,
  `$LQMM_NUM_PROCESSES`, `$LQMM_PROCESS_ID`, as `lqmm.launch` sets them), or is discovered by
  JAX (Cloud TPU, SLURM, Open MPI). CPU processes exchange collectives through gloo, so the
  same multi-process program runs on one machine's CPU (over loopback) as on a pod.
  """
  settings = distributed_settings()
  if settings is None:
    return False
  # Used only by CPU devices (harmless beside GPUs or TPUs); set before the backend starts.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(**settings)
  return True


@contextlib.contextmanager
def primary_first(name: str):
  """Runs the body on process 0 first, then on the others (a shared download or build).

  On one process it just runs the body. `name` identifies the barrier; every process must
  enter the block.
  """
  if jax.process_count() == 1:
    yield
    return
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  if jax.process_index() != 0:
    multihost_utils.sync_global_devices(f'lqmm_primary_first_{name}')
  yield
  if jax.process_index() == 0:
    multihost_utils.sync_global_devices(f'lqmm_primary_first_{name}')


def make_mesh(num_devices: int | None = None, axis_name: str = DATA_AXIS) -> Mesh:
  """A 1-D mesh over the first `num_devices` devices (default: all, across hosts).

  Raises:
    ValueError: `num_devices` is not in `[1, jax.device_count()]`.
  """
  available = jax.device_count()
  count = available if num_devices is None else num_devices
  if not 1 <= count <= available:
    raise ValueError(f'num_devices must be in [1, {available}] (jax.device_count()); '
                     f'got {num_devices}.')
  return jax.make_mesh((count,), (axis_name,), axis_types=(AxisType.Auto,),
                       devices=jax.devices()[:count])


def data_sharding(mesh: Mesh, axis_name: str = DATA_AXIS) -> NamedSharding:
  """Sharding that splits the leading axis of an array over `axis_name`."""
  return NamedSharding(mesh, PartitionSpec(axis_name))


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding that keeps a full copy of an array on every device."""
  return NamedSharding(mesh, PartitionSpec())


def check_divisible(size: int, mesh: Mesh, name: str, axis_name: str = DATA_AXIS) -> None:
  """Raises ValueError when `size` cannot be split evenly over the mesh's data axis."""
  shards = mesh.shape[axis_name]
  if size % shards:
    raise ValueError(f'{name} = {size} must be divisible by the {shards} devices of mesh axis '
                     f'{axis_name!r}; change {name} or the number of devices.')


def shard_batch(batch, mesh: Mesh, axis_name: str = DATA_AXIS):
  """Places every leaf of `batch` on the mesh, split along its leading axis.

  On one host this is `jax.device_put`; with several processes each host passes its own
  slice and the global array is assembled with `jax.make_array_from_process_local_data`.
  """
  sharding = data_sharding(mesh, axis_name)
  if jax.process_count() == 1:
    for leaf in jax.tree.leaves(batch):
      check_divisible(np.shape(leaf)[0], mesh, 'the batch size', axis_name)
    return jax.device_put(batch, sharding)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def shard_rows(data, mesh: Mesh, axis_name: str = DATA_AXIS):
  """Places a dataset (every process holds all of it, e.g. as read from disk) on the mesh with
  its rows split over `axis_name`: each device, and so each process, keeps only its block.

  The rows are padded (with copies of the first row) to a multiple of the axis size; index
  only rows below the original count (`lqmm.train.fit` does).
  """
  shards = mesh.shape[axis_name]
  sharding = data_sharding(mesh, axis_name)

  def place(leaf):
    leaf = np.asarray(leaf)
    padding = -leaf.shape[0] % shards
    if padding:
      leaf = np.concatenate([leaf, np.repeat(leaf[:1], padding, axis=0)])
    return jax.make_array_from_callback(leaf.shape, sharding, lambda index: leaf[index])

  return jax.tree.map(place, data)
