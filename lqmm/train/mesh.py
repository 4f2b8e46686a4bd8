"""Device meshes and data sharding with `jax.jit` + `NamedSharding`.

Small models in lqmm are data-parallel: parameters are replicated and every batch is split along
its leading (sample) axis over the mesh's `data` axis. The same code runs on one CPU, on eight
(fake) devices and on a multi-host TPU slice; results agree up to floating-point summation order.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import AxisType
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

DATA_AXIS = 'data'

#: Set to 1 to call `jax.distributed.initialize()` (multi-host runs; see tpu_scripts/README.md).
DISTRIBUTED_ENV = 'LQMM_DISTRIBUTED'


def maybe_initialize_distributed() -> bool:
  """Calls `jax.distributed.initialize()` when `$LQMM_DISTRIBUTED` is 1; returns whether it did.

  On Cloud TPU the coordinator address, process count and id are discovered automatically; on
  GPU clusters set them through JAX's usual environment variables.
  """
  if os.environ.get(DISTRIBUTED_ENV, '0') not in ('1', 'true', 'True'):
    return False
  jax.distributed.initialize()
  return True


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
