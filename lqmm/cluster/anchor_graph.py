"""Anchor-graph incomplete multi-view clustering: FIMVC-VIA, linear in the number of samples.

The full-graph solvers of `lqmm.cluster.graph_consensus` hold `[N, N]` graphs and decompose
them every iteration (O(N^3)); an anchor graph links each sample to m << N anchors instead, so
memory and time grow linearly in N. FIMVC-VIA (Liu et al. 2022) learns one consensus anchor
graph `Z` `[N, m]` (each row on the probability simplex) shared by every view, per-view anchors
`A_v` `[m, d_v]` with orthonormal rows (`A_v^T A_v = I` in the original's column layout) and
view weights `alpha` on the simplex:

    min  sum_v alpha_v^2 ||X_v - (m_v * Z) A_v||_F^2 + lam ||Z||_F^2
    s.t. A_v A_v^T = I, Z >= 0, Z 1 = 1, alpha >= 0, sum alpha = 1,

with `m_v` the view's presence column (a missing sample's row of `X_v` is zero and is not
reconstructed). Each outer iteration updates, exactly for their block:

* `A_v`: the orthogonal Procrustes solution `(U V^T)^T` from the thin SVD `U S V^T` of
  `X_v^T Z` (`[d_v, m]`; a view with d_v < m gets orthonormal columns instead, and the block
  update is then not exact);
* `Z`: row i onto the simplex of `sum_v alpha_v^2 m_iv x_vi A_v^T / (sum_v alpha_v^2 m_iv +
  lam)`;
* `alpha`: `alpha_v proportional to 1 / ||X_v - (m_v * Z) A_v||^2`.

Each block minimises the objective over that block when every d_v >= m, so the objective is
then non-increasing (tested). Samples stay in place: a missing sample is a zero row of `X_v`
and a zero weight, so shapes are fixed and a sweep over masks is one `jax.vmap`-ed program.
The clustering embedding is the top-K left singular vectors of `Z` (spectral clustering of the
anchor graph `Z Z^T` without forming it), clustered by k-means after scaling rows to unit norm.

Checked against a float64 NumPy transcription of the authors' MATLAB (`missingalgo_qp.m`,
`findindex.m`, `NormalizeData.m` of Tracesource/FIMVC-VIA at 9fda669):
`tests/reference/PROVENANCE_imvc.md`.

Reference:
  Liu, Liu, Wang, Niu, Zhu. "Fast Incomplete Multi-View Clustering With View-Independent
  Anchors." IEEE Transactions on Neural Networks and Learning Systems, 2022.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm.cluster import graph_consensus
from lqmm.cluster import solvers

__all__ = ['AnchorGraphFactors', 'fimvc_via']


class AnchorGraphFactors(NamedTuple):
  """FIMVC-VIA's solution.

  Attributes:
    embedding: `[N, K]` the top-K left singular vectors of `graph` (cluster its rows, scaled
      to unit norm).
    graph: `[N, m]` the consensus anchor graph Z, each row on the probability simplex (the
      original's `Z'`).
    anchors: per view `[m, d_v]` anchors `A_v` with orthonormal rows when d_v >= m (the
      original's `A{v}'`).
    view_weights: `[V]` alpha, on the simplex.
  """
  embedding: jax.Array
  graph: jax.Array
  anchors: tuple
  view_weights: jax.Array


class _State(NamedTuple):
  graph: jax.Array
  anchors: tuple
  view_weights: jax.Array
  objective: jax.Array


def _prepare(views, weights):
  """findindex.m + NormalizeData.m: missing rows zero, every row scaled to unit L2 norm (the
  norm floored at 1e-12)."""
  prepared = []
  for v, x in enumerate(views):
    x = jnp.where(weights[:, v:v + 1] > 0, x, 0.0)
    norm = jnp.sqrt(jnp.sum(x * x, axis=1, keepdims=True))
    prepared.append(x / jnp.maximum(norm, 1e-12))
  return tuple(prepared)


def _procrustes(x: jax.Array, graph: jax.Array) -> jax.Array:
  """`argmax_A tr(A^T X^T Z)`-style polar factor: `(U V^T)^T` of the thin SVD of `X^T Z`."""
  left, _, right = jnp.linalg.svd(x.T @ graph, full_matrices=False)   # [d, r], [r, m]
  return (left @ right).T                                             # [m, d]


def _residuals(xs, weights, graph, anchors) -> jax.Array:
  """`[V]` squared reconstruction errors `||X_v - (m_v * Z) A_v||^2`."""
  return jnp.stack([jnp.sum((x - (weights[:, v:v + 1] * graph) @ anchors[v]) ** 2)
                    for v, x in enumerate(xs)])


def _step(state: _State, xs, weights, lam) -> _State:
  """One outer iteration of missingalgo_qp.m: anchors, graph, view weights, objective."""
  anchors = tuple(_procrustes(x, state.graph) for x in xs)
  squared = state.view_weights ** 2
  denominator = weights @ squared + lam                                  # [N]
  numerator = sum(squared[v] * (x @ anchors[v].T) for v, x in enumerate(xs))   # [N, m]
  target = numerator / denominator[:, None]
  graph = graph_consensus.project_rows_to_simplex(target)
  residuals = _residuals(xs, weights, graph, anchors)
  inverse = 1.0 / residuals
  view_weights = inverse / jnp.sum(inverse)
  objective = jnp.sum(view_weights ** 2 * residuals) + lam * jnp.sum(graph * graph)
  return _State(graph, anchors, view_weights, objective)


@functools.partial(jax.jit, static_argnums=(5, 6, 7))
def _fimvc_via(views, weights, anchor_rows, lam, tol, num_clusters: int, num_anchors: int,
               max_iter: int) -> solvers.SolverResult:
  xs = _prepare(views, weights)
  num_samples, num_views = weights.shape
  dtype = weights.dtype
  graph = jnp.zeros((num_samples, num_anchors), dtype).at[anchor_rows].set(
      jnp.eye(num_anchors, dtype=dtype))
  init = _State(graph, tuple(jnp.zeros((num_anchors, x.shape[1]), dtype) for x in xs),
                jnp.full((num_views,), 1.0 / num_views, dtype), jnp.zeros((), dtype))
  result = solvers.iterate(lambda state: _step(state, xs, weights, lam),
                           lambda state: state.objective, init, max_iter=max_iter, tol=tol,
                           min_iter=2)
  state = result.solution
  left, _, _ = jnp.linalg.svd(state.graph, full_matrices=False)
  factors = AnchorGraphFactors(left[:, :num_clusters], state.graph, state.anchors,
                               state.view_weights)
  return result._replace(solution=factors)


def fimvc_via(views: Sequence[jax.Array], mask, num_clusters: int, *, num_anchors: int,
              lam=1.0, max_iter: int = 51, tol=1e-3, anchor_rows=None) -> solvers.SolverResult:
  """Fast incomplete multi-view clustering with view-independent anchors (FIMVC-VIA).

  See the module docstring for the model and the updates. The inputs are prepared as the
  authors' `findindex.m`: a missing sample's row is set to zero and every row is scaled to unit
  L2 norm. The initial graph is the indicator of `anchor_rows` (the row `anchor_rows[j]` of Z
  is the unit vector e_j, every other row zero); the original uses the first m samples, which
  on data sorted by class (UCI Handwritten is) puts every initial anchor in the first class,
  so pass a random choice there (`jax.random.choice(key, N, (m,), replace=False)`). The view
  weights start uniform. The loop stops after an iteration t >= 2 whose objective changed by
  less than `tol` relative to the previous one, or after `max_iter` iterations: the original's
  `maxIter = 50` runs at most 51, hence the default. (The original also stops at an objective
  below 1e-10, which a non-zero `lam` and unit rows never reach; lqmm leaves that test out.)

  The authors' `run.m` grid-searches lam in {1e-3, 0.1, 1, 10, 100, 1000} and m in
  {K, 2K, 3K, 5K, 7K} and reports the best by ACC (the labels pick the parameters), clustering
  with MATLAB's k-means with 20 replicates.

  Cost per iteration: O(N m sum_v d_v) for the products and O(sum_v d_v m min(d_v, m)) for
  the V small SVDs; memory O(N (m + sum_v d_v)). No `[N, N]` matrix is formed.

  Args:
    views: sequence of `[N, d_v]` float arrays (missing rows may hold anything finite).
    mask: bool `[N, V]`, True = present.
    num_clusters: K (static), at most `num_anchors`.
    num_anchors: m (static), from K to N.
    lam: the graph's ridge weight (> 0).
    max_iter: iteration cap (static).
    tol: relative tolerance on the objective (>= 0).
    anchor_rows: optional int `[m]`, distinct rows in [0, N) whose indicator initialises Z;
      default `arange(m)` (the original).

  Returns:
    `SolverResult` with `AnchorGraphFactors`; cluster the rows of `solution.embedding`,
    scaled to unit norm (`lqmm.cluster.normalize_samples`), with `lqmm.cluster.kmeans`.

  Raises:
    ValueError: as `lqmm.cluster.solvers.check_views` (more clusters than samples, a view with
      no present sample, NaN features in a present row, ...); `num_anchors` below
      `num_clusters` or above N; a non-positive `lam`; `anchor_rows` of the wrong shape, out of
      range or repeated. TypeError: non-integer `anchor_rows`.
    FloatingPointError: (outside a transformation) the objective became NaN (a view
      reconstructed exactly gets an infinite weight).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> key_a, key_b = jax.random.split(jax.random.key(0))
    >>> labels = jnp.arange(40) % 2
    >>> views = [jax.random.normal(key_a, (40, 6)) + 4.0 * labels[:, None].astype(float),
    ...          jax.random.normal(key_b, (40, 5)) - 4.0 * labels[:, None].astype(float)]
    >>> mask = jnp.ones((40, 2), bool).at[:10, 0].set(False).at[30:, 1].set(False)
    >>> result = fimvc_via(views, mask, 2, num_anchors=4, anchor_rows=jnp.array([10, 11, 28, 29]))
    >>> result.solution.graph.shape, bool(jnp.allclose(result.solution.graph.sum(1), 1.0))
    ((40, 4), True)
  """
  views, weights = solvers.check_views(views, mask, num_clusters=num_clusters)
  num_samples = weights.shape[0]
  num_anchors = checks.check_integer(num_anchors, 'num_anchors', minimum=num_clusters,
                                     maximum=num_samples)
  checks.check_scalar(lam, 'lam', low=0, low_open=True)
  checks.check_scalar(tol, 'tol', low=0)
  max_iter = checks.check_integer(max_iter, 'max_iter', minimum=1)
  if anchor_rows is None:
    anchor_rows = jnp.arange(num_anchors)
  anchor_rows = _check_anchor_rows(anchor_rows, num_anchors, num_samples)
  dtype = views[0].dtype
  result = _fimvc_via(views, weights, anchor_rows, jnp.asarray(lam, dtype),
                      jnp.asarray(tol, dtype), num_clusters, num_anchors, max_iter)
  return solvers.raise_if_not_finite(result, 'fimvc_via')


def _check_anchor_rows(anchor_rows, num_anchors: int, num_samples: int) -> jax.Array:
  if not jnp.issubdtype(jnp.result_type(anchor_rows), jnp.integer):
    raise TypeError(f'anchor_rows must be integer row indices; got dtype '
                    f'{jnp.result_type(anchor_rows)}.')
  if tuple(jnp.shape(anchor_rows)) != (num_anchors,):
    raise ValueError(f'anchor_rows must have shape [num_anchors] = ({num_anchors},); got '
                     f'{tuple(jnp.shape(anchor_rows))}.')

  def find_problem(rows):
    if rows.min() < 0 or rows.max() >= num_samples:
      return (f'anchor_rows must lie in [0, N) = [0, {num_samples}); got values from '
              f'{int(rows.min())} to {int(rows.max())}.')
    if np.unique(rows).size != rows.size:
      return 'anchor_rows must be distinct rows (each initial anchor indicates one sample).'
    return None

  checks.check_values(find_problem, anchor_rows)
  return jnp.asarray(anchor_rows, jnp.int32)
