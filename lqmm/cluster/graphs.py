"""k-nearest-neighbour graphs over the present samples of a view, and their batch restrictions.

A view's graph connects each present sample to its `k` nearest present samples (itself
included, as the originals count it); missing samples have no edge. The graph is kept as
neighbour lists `[N, k]` (int32, -1 for a missing row), so a sweep over many masks stays small;
`batch_adjacency` gives the symmetric 0/1 adjacency among a minibatch's rows (an edge in either
direction), the graph-regularised autoencoders' per-batch graph.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from lqmm import checks
from lqmm.cluster import kmeans as kmeans_lib

__all__ = ['batch_adjacency', 'knn_neighbours']


def knn_neighbours(x: jax.Array, present: jax.Array, k: int) -> jax.Array:
  """The `k` nearest present samples of every present sample, by Euclidean distance.

  Args:
    x: `[N, d]` float features (missing rows may hold anything finite).
    present: bool `[N]`, True = present.
    k: neighbours per sample (static), the sample itself included (its distance is 0).

  Returns:
    int32 `[N, k]` row indices, nearest first; the rows of missing samples are all -1. With
    fewer than `k` present samples the remaining slots are -1.

  Raises:
    ValueError: `x` not `[N, d]`, `present` not `[N]`, `k` < 1. TypeError: non-bool `present`.

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[0.0], [0.1], [5.0], [9.0]])
    >>> knn_neighbours(x, jnp.array([True, True, True, False]), 2).tolist()
    [[0, 1], [1, 0], [2, 1], [-1, -1]]
  """
  x = checks.as_floats(x, 'x', '[N, d]', rank=2)
  if x.ndim != 2:
    raise ValueError(f'x must have shape [N, d]; got {x.shape}.')
  checks.check_mask(present, (x.shape[0],), 'present')
  checks.check_nonempty(x, 'x', what='sample')
  checks.check_finite(x, 'x')
  k = checks.check_integer(k, 'k', minimum=1)
  return _knn(x, present, k)


@functools.partial(jax.jit, static_argnums=2)
def _knn(x, present, k: int) -> jax.Array:
  distances = kmeans_lib.squared_distances(x, x)  # validated already; one matmul
  distances = distances.at[jnp.diag_indices(x.shape[0])].set(-1.0)  # self first, exactly
  distances = jnp.where(present[None, :], distances, jnp.inf)
  _, order = jax.lax.top_k(-distances, min(k, x.shape[0]))
  valid = present[:, None] & jnp.take(present, order)
  order = jnp.where(valid, order, -1).astype(jnp.int32)
  if k > x.shape[0]:
    order = jnp.pad(order, ((0, 0), (0, k - x.shape[0])), constant_values=-1)
  return order


def batch_adjacency(neighbours: jax.Array, rows: jax.Array) -> jax.Array:
  """The symmetric 0/1 adjacency `[B, B]` among `rows` of a neighbour-list graph.

  `A[i, j] = 1` when `rows[j]` is among the neighbours of `rows[i]` or the other way round,
  with a zero diagonal; edges to rows outside the batch are dropped.

  Args:
    neighbours: int32 `[N, k]` from `knn_neighbours` (-1 = no neighbour).
    rows: int `[B]` row indices of the batch.

  Returns:
    float32 `[B, B]`.

  Raises:
    TypeError: non-integer or wrongly shaped inputs. ValueError: indices out of range.

  Example:
    >>> import jax.numpy as jnp
    >>> neighbours = jnp.array([[0, 1], [1, 0], [2, 1], [-1, -1]])
    >>> batch_adjacency(neighbours, jnp.array([1, 2, 3])).tolist()
    [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
  """
  if jnp.ndim(neighbours) != 2 or not jnp.issubdtype(jnp.result_type(neighbours), jnp.integer):
    raise TypeError(f'neighbours must be an integer [N, k] array (from knn_neighbours); got '
                    f'shape {jnp.shape(neighbours)} and dtype {jnp.result_type(neighbours)}.')
  if jnp.ndim(rows) != 1 or not jnp.issubdtype(jnp.result_type(rows), jnp.integer):
    raise TypeError(f'rows must be integer row indices [B]; got shape {jnp.shape(rows)} and '
                    f'dtype {jnp.result_type(rows)}.')
  num_rows = jnp.shape(neighbours)[0]

  def find_problem(lists, indices):
    if lists.size and (lists.min() < -1 or lists.max() >= num_rows):
      return (f'neighbours must hold row indices in [0, {num_rows}) or -1 (none); got values '
              f'in [{lists.min()}, {lists.max()}].')
    if indices.size and (indices.min() < 0 or indices.max() >= num_rows):
      return (f'rows must lie in [0, {num_rows}); got values in [{indices.min()}, '
              f'{indices.max()}].')
    return None

  checks.check_values(find_problem, neighbours, rows)
  lists = jnp.take(neighbours, rows, axis=0)                               # [B, k]
  forward = jnp.any(lists[:, :, None] == rows[None, None, :], axis=1)      # [B, B]
  adjacency = (forward | forward.T) & ~jnp.eye(rows.shape[0], dtype=bool)
  return adjacency.astype(jnp.float32)
