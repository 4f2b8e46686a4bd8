"""Graph-consensus incomplete multi-view clustering: IMSC_AGL and PIC.

Both methods build one graph per view over that view's present samples and fuse the graphs'
spectral embeddings. Samples stay in place: a view's graph is `[N, N]` with the rows and columns
of its missing samples held at zero (never deleted), so shapes are fixed and a sweep over masks
is one `jax.vmap`-ed program. Inside its loop IMSC_AGL keeps each view's `[N, N]` matrices in a
fixed number of slots (`capacity`, at least the view's present samples): the present samples
gathered first by a stable sort of the mask, the spare slots held at zero, still one fixed
shape for every mask; it returns them in the `[N, N]` layout.

IMSC_AGL (Wen, Xu, Liu 2020) learns each view's graph. Per view v, with `X_v` the present
samples (rows scaled to unit norm), it solves by inexact ALM (ADMM)

    min  sum_v ||S_v||_* + lam1 tr(F_v^T L(W_v) F_v) + lam2 ||E_v||_1
         + lam3 sum_v (K - tr(U^T F_v F_v^T U))
    s.t. X_v = Z_v^T X_v + E_v, Z_v = S_v = W_v, W_v >= 0, W_v 1 = 1, diag(W_v) = 0,
         F_v^T F_v = I, U^T U = I

(`Z_v^T X_v` in lqmm's rows-as-samples layout is the original's `X_v Z_v`), with `L(W)` the
Laplacian of `(|W| + |W^T|) / 2`. One iteration computes the consensus U (top-K eigenvectors of
`sum_v F_v F_v^T`), then for each view in turn: Z by least squares (`(X X^T + 2I)^-1`, over the
present samples), W row by row onto the simplex over the present off-diagonal columns, S by
singular value thresholding at `1/mu`, F_v as the top-K eigenvectors of
`lam3 U U^T - lam1 L(W_v)` (a missing sample's row of F_v comes from U: the completion), E by
soft thresholding, the multipliers; then `mu <- min(rho mu, 1e8)`. It stops when the
normalised objective changes by less than `tol` (absolute) after the second iteration.

PIC (Wang, Zong, Liu et al. 2019) is not iterative: each view's adaptive-neighbour (CAN) graph
over its present samples, the missing rows completed by the normalised sum of the other views'
rows, then symmetrised; the normalised affinities `L_v = D^-1/2 S_v D^-1/2`; view weights `w`
on the simplex from a quadratic programme built from the views' spectral perturbation; the top-C
eigenvectors (by |eigenvalue|) of `L* = sum_v w_v L_v`, rows scaled to unit norm. The original
divides its eigenvector matrices by their row sums, which makes the weights depend on the
eigensolver's signs and bases; `pic(faithful=False)` (default) leaves that division out.


Checked against float64 NumPy transcriptions of the survey toolbox's MATLAB
(`IMSC_AGL/IMSAGL.m`, `PIC/PIC.m` and helpers of DarrenZZhang/TSCMA23-Survey_IMC at fe22317):
`tests/reference/PROVENANCE_imvc.md`.

References:
  Wen, Xu, Liu. "Incomplete Multiview Spectral Clustering with Adaptive Graph Learning." IEEE
  Transactions on Cybernetics 50(4), 2020.
  Wang, Zong, Liu, Li, Wang, Gao. "Spectral Perturbation Meets Incomplete Multi-view Data."
  IJCAI 2019.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm.cluster import kmeans as kmeans_lib
from lqmm.cluster import solvers

__all__ = ['IMSCAGLFactors', 'PICFusion', 'adaptive_neighbour_graph', 'imsc_agl', 'knn_graph',
           'pic', 'project_rows_to_simplex', 'singular_value_threshold']

#: PIC enumerates the 2^V - 1 supports of its V-variable quadratic programme.
_MAX_PIC_VIEWS = 12


class IMSCAGLFactors(NamedTuple):
  """IMSC_AGL's variables (missing samples' rows and columns of the graphs are zero).

  Attributes:
    embedding: `[N, K]` orthonormal columns to cluster (rows scaled to unit norm, then
      k-means): the consensus U, or with `faithful=True` the last view's F_V.
    embeddings: `[V, N, K]` per-view spectral embeddings F_v (every row, missing ones
      completed).
    graphs: `[V, N, N]` the learned adaptive graphs W_v: present rows on the simplex over the
      present off-diagonal columns.
    low_rank: `[V, N, N]` the low-rank representations S_v.
    representations: `[V, N, N]` the self-representations Z_v (`Z_v[i, j]`: the weight of
      sample i in the reconstruction of sample j, `X_v ~ Z_v^T X_v`).
    errors: per view `[N, d_v]` the sparse errors E_v (rows as samples).
  """
  embedding: jax.Array
  embeddings: jax.Array
  graphs: jax.Array
  low_rank: jax.Array
  representations: jax.Array
  errors: tuple


class PICFusion(NamedTuple):
  """PIC's output.

  Attributes:
    embedding: `[N, C]` top-C eigenvectors of the fused affinity, rows scaled to unit norm
      (floor 1e-10); cluster its rows with k-means.
    weights: `[V]` view weights on the simplex.
    fused: `[N, N]` the fused normalised affinity `L* = sum_v w_v L_v`.
    graphs: `[V, N, N]` the completed, symmetric per-view graphs S_v.
  """
  embedding: jax.Array
  weights: jax.Array
  fused: jax.Array
  graphs: jax.Array


# ------------------------------------------------------------------ shared pieces


def _pairwise_squared(x: jax.Array) -> jax.Array:
  """`||x_i||^2 + ||x_j||^2 - 2 x_i . x_j` `[N, N]`, not clipped at 0 as PIC's
  `L2_distance_nan` (elsewhere `kmeans_lib.squared_distances`, clipped, as the originals)."""
  squares = jnp.sum(x * x, axis=1)
  return squares[:, None] + squares[None, :] - 2 * (x @ x.T)


def _laplacian(graph: jax.Array) -> jax.Array:
  """`diag(colsum W) - W` of `W = (|graph| + |graph^T|) / 2`."""
  symmetric = (jnp.abs(graph) + jnp.abs(graph.T)) / 2
  return jnp.diag(jnp.sum(symmetric, axis=0)) - symmetric


def _fix_non_finite(matrix: jax.Array) -> jax.Array:
  """The originals' guard before an eigensolver: NaN -> 0, +-inf -> 1e5."""
  return jnp.where(jnp.isnan(matrix), 0.0, jnp.where(jnp.isinf(matrix), 1e5, matrix))


def _check_k(k, mask, name: str, *, spare: int, what: str, mask_name: str = 'mask') -> int:
  """`k` an integer >= 1 with `k + spare` <= the present samples of every view (concrete).

  `mask` is bool `[N, V]` (per view) or `[N]` (one view, named `mask_name`).
  """
  k = checks.check_integer(k, name, minimum=1)
  needed = f'{name} = {k} needs {what}, i.e. at least {k + spare} present samples'
  if k + spare > jnp.shape(mask)[0]:
    raise ValueError(f'{needed}; there are only N = {jnp.shape(mask)[0]} samples.')

  def find_problem(present):
    counts = np.atleast_1d(present.sum(axis=0))
    if counts.min() >= k + spare:
      return None
    if present.ndim == 1:
      return f'{needed}; {mask_name} marks only {int(counts.min())} present.'
    return (f'{needed} per view; {mask_name} leaves view {int(counts.argmin())} only '
            f'{int(counts.min())}.')

  checks.check_values(find_problem, mask)
  return k


# ------------------------------------------------------------------ simplex projection, SVT


def _project_rows(values: jax.Array, allowed: jax.Array) -> jax.Array:
  """Euclidean projection of each row's allowed entries onto the probability simplex.

  The projection is `max(v - theta, 0)` on the allowed entries, with `theta` the root of
  `sum max(v - theta, 0) = 1` (Held et al. 1974), found by Michelot's pivoting instead of a
  sort: start with every allowed entry active and `theta = (sum of the active - 1) /
  #active`; drop the entries at or below `theta`, recompute, and stop when no row drops an
  entry. `theta` only grows and the active set only shrinks (Michelot 1986; Condat 2016), so
  the loop ends after at most n rounds of `O(n)` per row, and the final active set is the
  sort's: the same `theta`. On IMSC_AGL's graph rows a handful of rounds suffice (against an
  `O(n log n)` sort of every row). Entries that are not allowed are 0, and so is a row with no
  allowed entry; a row with a non-finite allowed entry comes back NaN.
  """
  dtype = values.dtype

  def threshold(active):
    count = jnp.sum(active, axis=-1, keepdims=True)
    total = jnp.sum(jnp.where(active, values, 0.0), axis=-1, keepdims=True)
    return (total - 1) / jnp.maximum(count, 1).astype(dtype)

  def cond(carry):
    return carry[1]

  def body(carry):
    active, _ = carry
    kept = active & (values > threshold(active))
    return kept, jnp.any(kept != active)

  active, _ = jax.lax.while_loop(cond, body, (allowed, jnp.asarray(True)))
  projected = jnp.where(active, values - threshold(active), 0.0)
  # A non-finite allowed entry makes its row NaN (as the sort would), for the NaN guards.
  broken = jnp.any(allowed & ~jnp.isfinite(values), axis=-1, keepdims=True)
  return jnp.where(broken, jnp.nan, projected)


def project_rows_to_simplex(values: jax.Array, mask=None) -> jax.Array:
  """Projects each row of `values` onto the probability simplex over its `mask`ed entries.

  Row by row, the nearest (Euclidean) `x` with `x >= 0`, `sum x = 1` and `x = 0` where `mask`
  is False, by Michelot's pivoting on the threshold (exact in finitely many rounds, no Newton
  iterations, no sort). A row with no True entry comes back 0.

  Args:
    values: `[..., n]` float.
    mask: optional bool `[..., n]` (same shape), True = the entry may be positive.

  Returns:
    `[..., n]`, each row on the simplex over its mask.

  Raises:
    ValueError: non-finite `values`, a `mask` of another shape. TypeError: a non-bool mask.

  Example:
    >>> import jax.numpy as jnp
    >>> project_rows_to_simplex(jnp.array([[0.5, 0.25, 3.0], [2.0, 1.0, 1.0]]),
    ...                         jnp.array([[True, True, False], [True, True, True]])).tolist()
    [[0.625, 0.375, 0.0], [1.0, 0.0, 0.0]]
  """
  values = checks.as_floats(values, 'values', '[..., n]', rank=1)
  if mask is None:
    mask = jnp.ones(values.shape, bool)
  checks.check_mask(mask, values.shape, 'mask')
  return _project_rows_jit(values, mask)


_project_rows_jit = jax.jit(_project_rows)


def _threshold_singular_values(matrix: jax.Array, tau) -> tuple[jax.Array, jax.Array]:
  """`U max(s - tau, 0) V^T` of the SVD `U s V^T`, and the sum of the shrunk values."""
  left, values, right = jnp.linalg.svd(matrix, full_matrices=False)
  shrunk = jnp.maximum(values - tau, 0.0)
  return (left * shrunk[None, :]) @ right, jnp.sum(shrunk)


def _threshold_or_zero(matrix: jax.Array, tau) -> tuple[jax.Array, jax.Array]:
  """`_threshold_singular_values` of one `[m, n]` matrix, skipping the SVD when a cheap bound
  shows every singular value is at most `tau` (then the answer is exactly 0).

  The bound: `s_max <= sqrt(||M||_1 ||M||_inf)` (largest column and row absolute sums). In
  IMSC_AGL the threshold `1/mu` starts far above the spectrum, so the first few dozen
  S-steps skip their SVD. A real branch (`lax.cond`) outside `vmap`; under `vmap`, a select
  that always runs the SVD.
  """
  magnitude = jnp.abs(matrix)
  bound = jnp.sqrt(jnp.max(jnp.sum(magnitude, axis=0)) * jnp.max(jnp.sum(magnitude, axis=1)))
  return jax.lax.cond(bound <= tau,
                      lambda: (jnp.zeros_like(matrix), jnp.zeros((), matrix.dtype)),
                      lambda: _threshold_singular_values(matrix, tau))


def singular_value_threshold(matrix: jax.Array, tau) -> jax.Array:
  """The proximal operator of `tau ||.||_*`: singular values shrunk by `tau`, floored at 0.

  `argmin_S tau ||S||_* + ||S - matrix||^2 / 2 = U max(s - tau, 0) V^T` for the SVD
  `matrix = U diag(s) V^T` (Cai, Candes, Shen 2010). Zero rows and columns stay zero and do not
  change the other singular values.

  Args:
    matrix: `[..., m, n]` float.
    tau: threshold (>= 0).

  Returns:
    `[..., m, n]`.

  Raises:
    ValueError: non-finite `matrix`, a matrix of rank below 2, a negative or NaN `tau`.

  Example:
    >>> import jax.numpy as jnp
    >>> singular_value_threshold(jnp.diag(jnp.array([3.0, 0.5])), 1.0).tolist()
    [[2.0, 0.0], [0.0, 0.0]]
  """
  matrix = checks.as_floats(matrix, 'matrix', '[..., m, n]', rank=2)
  checks.check_scalar(tau, 'tau', low=0)
  return _svt_jit(matrix, jnp.asarray(tau, matrix.dtype))


@jax.jit
def _svt_jit(matrix, tau):
  return _threshold_singular_values(matrix, tau[..., None])[0]


# ------------------------------------------------------------------ graphs


def _check_graph_inputs(x, present, k, spare: int, what: str):
  x = checks.as_floats(x, 'x', '[N, d]', rank=2)
  if x.ndim != 2:
    raise ValueError(f'x must have shape [N, d]; got {x.shape}.')
  checks.check_nonempty(x, 'x', what='sample')
  checks.check_mask(present, (x.shape[0],), 'present')
  k = _check_k(k, present, 'k', spare=spare, what=what, mask_name='present')
  return x, k


def _knn_graph(x: jax.Array, present: jax.Array, k: int) -> jax.Array:
  """`constructW(x, 'KNN', k, 'Binary')` among the present rows (see `knn_graph`)."""
  num_samples = x.shape[0]
  distances = kmeans_lib.squared_distances(x, x)
  distances = jnp.where(present[None, :], distances, jnp.inf)
  _, picks = jax.lax.top_k(-distances, k + 1)   # the k + 1 smallest, first index on ties
  rows = jnp.arange(num_samples)[:, None]
  chosen = present[:, None] & jnp.take(present, picks)
  graph = jnp.zeros((num_samples, num_samples), x.dtype).at[rows, picks].set(
      chosen.astype(x.dtype))
  graph = jnp.where(jnp.eye(num_samples, dtype=bool), 0.0, graph)
  return jnp.maximum(graph, graph.T)


def knn_graph(x: jax.Array, present: jax.Array, k: int) -> jax.Array:
  """The symmetric binary kNN graph among the present samples (Cai's `constructW`).

  Each present row marks its `k + 1` nearest present rows by squared Euclidean distance
  (itself normally among them; on ties the lower index first), the diagonal is cleared and the
  graph symmetrised by `max(G, G^T)`. Rows and columns of missing samples are zero.

  Args:
    x: `[N, d]` float features (missing rows may hold anything finite).
    present: bool `[N]`, True = present.
    k: neighbours (static), below the number of present samples.

  Returns:
    `[N, N]` symmetric 0/1 with a zero diagonal.

  Raises:
    ValueError: `x` not `[N, d]` or not finite, `present` of another length, `k` < 1 or not
      below the number of present samples. TypeError: a non-bool `present`.

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[0.0], [0.1], [5.0], [9.0]])
    >>> knn_graph(x, jnp.array([True, True, True, False]), 1).tolist()
    [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
  """
  x, k = _check_graph_inputs(x, present, k, 1, 'k + 1 neighbours')
  return _knn_graph_jit(x, present, k)


_knn_graph_jit = jax.jit(_knn_graph, static_argnums=2)


def _adaptive_graph(x: jax.Array, present: jax.Array, k: int) -> jax.Array:
  """`constructS_PNG(x, k, 0)` among the present rows (see `adaptive_neighbour_graph`)."""
  num_samples = x.shape[0]
  distances = jnp.where(jnp.eye(num_samples, dtype=bool), 0.0, _pairwise_squared(x))
  distances = jnp.where(present[None, :], distances, jnp.inf)
  # A stable ascending sort, positions 2 .. k + 2 (position 1 is the sample itself, normally).
  _, order = jax.lax.top_k(-distances, k + 2)
  order = order[:, 1:]
  near = jnp.take_along_axis(distances, order, axis=1)                  # [N, k + 1]
  far = near[:, k:]
  scale = k * far - jnp.sum(near[:, :k], axis=1, keepdims=True) + jnp.finfo(x.dtype).eps
  weights = jnp.where(present[:, None], (far - near) / scale, 0.0)
  rows = jnp.arange(num_samples)[:, None]
  return jnp.zeros((num_samples, num_samples), x.dtype).at[rows, order].set(weights)


def adaptive_neighbour_graph(x: jax.Array, present: jax.Array, k: int) -> jax.Array:
  """The adaptive-neighbour (CAN/PNG) graph among the present samples (not symmetrised).

  Row i weights its `k` nearest other present samples by `(d_{k+1} - d_j) / (k d_{k+1} -
  sum_{l<=k} d_l)` (squared distances, `d_{k+1}` the next neighbour's), the closed-form
  solution of `min_s sum_j d_j s_j + gamma ||s||^2` on the simplex with exactly k neighbours
  (Nie, Wang, Huang 2014; `constructS_PNG`). Present rows sum to 1; the rows and columns of
  missing samples are zero.

  Args:
    x: `[N, d]` float features (missing rows may hold anything finite).
    present: bool `[N]`, True = present.
    k: neighbours (static); needs at least `k + 2` present samples.

  Returns:
    `[N, N]` non-negative.

  Raises:
    ValueError: `x` not `[N, d]` or not finite, `present` of another length, `k` < 1 or too
      large for the present samples. TypeError: a non-bool `present`.

  References:
    Nie, Wang, Huang. "Clustering and Projected Clustering with Adaptive Neighbors." KDD 2014.

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[0.0], [1.0], [3.0], [7.0]])
    >>> adaptive_neighbour_graph(x, jnp.ones(4, bool), 1).round(3).tolist()
    [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
  """
  x, k = _check_graph_inputs(x, present, k, 2, 'k + 1 neighbours besides the sample')
  return _adaptive_graph_jit(x, present, k)


_adaptive_graph_jit = jax.jit(_adaptive_graph, static_argnums=2)


# ------------------------------------------------------------------ IMSC_AGL


class _AGLState(NamedTuple):
  """The ADMM state of IMSC_AGL (per-view tuples; the solver's private carry)."""
  representations: tuple
  low_rank: tuple
  graphs: tuple
  errors: tuple
  multipliers_data: tuple
  multipliers_low_rank: tuple
  multipliers_graph: tuple
  embeddings: jax.Array
  embedding: jax.Array
  mu: jax.Array
  objective: jax.Array


def _null_threshold(dtype) -> float:
  """solveF's eigenvalue threshold: the original's 1e-6, raised to the eigensolver's
  round-off (about `eps ||L||`) in low precision."""
  return max(1e-6, 1e4 * float(jnp.finfo(dtype).eps))


def _initial_embedding(graph: jax.Array, num_clusters: int, threshold: float) -> jax.Array:
  """solveF: eigenvectors of the first K eigenvalues of `L(graph)` above `threshold`, when
  more than K are; otherwise of the K smallest.

  The rows and columns of missing samples are zero, so the null space holds their unit
  vectors besides the connected components' indicators: skipping the eigenvalues at or below
  the threshold skips both.
  """
  laplacian = _fix_non_finite(_laplacian(graph))
  values, vectors = jnp.linalg.eigh(laplacian)                         # ascending
  above = jnp.sum(values > threshold)
  start = jnp.where(above > num_clusters, values.shape[0] - above, 0)
  return jax.lax.dynamic_slice_in_dim(vectors, start, num_clusters, axis=1)


def _top_eigenvectors(matrix: jax.Array, num_clusters: int) -> jax.Array:
  """Eigenvectors of the K largest (algebraic) eigenvalues, largest first (`eigs(., 'lr')`)."""
  _, vectors = jnp.linalg.eigh(matrix)
  return vectors[:, ::-1][:, :num_clusters]


#: The F-step's subspace iteration: at most this many products with the `[N, N]` matrix.
_MAX_SUBSPACE_STEPS = 200


def _top_eigenspace(matrix: jax.Array, start: jax.Array, shift) -> tuple[jax.Array, jax.Array]:
  """An orthonormal basis `[N, K]` of the top-K (algebraic) eigenspace of symmetric `matrix`,
  and whether the iteration settled.

  Subspace iteration on `matrix + shift I` (`shift` >= 0 moves the bottom of the spectrum
  towards 0; see `_f_step`) from `start` `[N, K]`, re-orthonormalised by QR after each
  product: `O(N^2 K)` per product against `eigh`'s `O(N^3)`. It stops once the basis moves by
  at most `64 eps` (the Frobenius norm of the new basis' component outside the old span, which
  bounds the sines of the principal angles) or after `_MAX_SUBSPACE_STEPS` products (not
  settled). The basis is returned rotated to the Ritz vectors, largest Ritz value first, so it
  spans what `_top_eigenvectors` returns up to round-off.
  """
  dtype = matrix.dtype
  tol = 64 * jnp.finfo(dtype).eps

  def product(basis):
    return matrix @ basis + shift * basis

  def cond(carry):
    _, change, step = carry
    return (change > tol) & (step < _MAX_SUBSPACE_STEPS)

  def body(carry):
    basis, _, step = carry
    new, _ = jnp.linalg.qr(product(basis))
    change = jnp.linalg.norm(new - basis @ (basis.T @ new))
    return new, change, step + 1

  basis, _ = jnp.linalg.qr(start)
  basis, change, _ = jax.lax.while_loop(cond, body, (basis, jnp.asarray(jnp.inf, dtype), 0))
  _, rotation = jnp.linalg.eigh(basis.T @ product(basis))
  return basis @ rotation[:, ::-1], change <= tol


def _f_step(matrix: jax.Array, start: jax.Array, shift, num_clusters: int) -> jax.Array:
  """The top-K eigenvectors of `matrix = lam3 T T^T - lam1 L(W)` (up to a rotation).

  Below its top K, the spectrum lies in `[-2 shift, 0]` (`shift = lam1 max(diag L)` bounds
  half of `lam1 ||L||` by Gershgorin; `T T^T` has rank K), so subspace iteration on
  `matrix + shift I` from `T` contracts by at most `shift / (lam3 - shift)` per product:
  about 1e-3 with the defaults. If it has not settled after `_MAX_SUBSPACE_STEPS` products
  (`lam3` not well above `lam1 ||L||`), the full `eigh` decides instead (`lax.cond`; under
  `vmap` both run).
  """
  basis, settled = _top_eigenspace(matrix, start, shift)
  return jax.lax.cond(settled, lambda: basis,
                      lambda: _top_eigenvectors(matrix, num_clusters))


def _consensus(embeddings: jax.Array, num_clusters: int) -> jax.Array:
  """Top-K eigenvectors of `sum_v F_v F_v^T`: the top-K left singular vectors of `[F_1 ...]`."""
  stacked = jnp.concatenate(list(embeddings), axis=1)                    # [N, V K]
  left, _, _ = jnp.linalg.svd(stacked, full_matrices=False)
  return left[:, :num_clusters]


def _gram_solver(x: jax.Array):
  """`Y -> (X X^T + 2 I)^-1 Y` for `x` `[N, d]` with zero rows for missing samples.

  A missing sample's row and column of `X X^T` are zero, so its block of the inverse is `I/2`,
  decoupled from the present samples: the original's inverse over the present samples only.
  With d < N, Woodbury: `(X X^T + 2I)^-1 = (I - X (X^T X + 2I)^-1 X^T) / 2`.
  """
  num_samples, dim = x.shape
  if dim < num_samples:
    pushed = jnp.linalg.solve(x.T @ x + 2 * jnp.eye(dim, dtype=x.dtype), x.T)   # [d, N]
    return lambda y: (y - pushed.T @ (x.T @ y)) / 2
  inverse = jnp.linalg.inv(x @ x.T + 2 * jnp.eye(num_samples, dtype=x.dtype))
  return lambda y: inverse @ y


def _soft_threshold(values: jax.Array, tau) -> jax.Array:
  return jnp.maximum(values - tau, 0.0) + jnp.minimum(values + tau, 0.0)


def _agl_prepare(views, weights, num_clusters: int, k_neighbours: int):
  """The driver's preprocessing: unit rows (missing rows zero), kNN graphs, solveF."""
  xs, graphs, embeddings = [], [], []
  threshold = _null_threshold(weights.dtype)
  for v, x in enumerate(views):
    present = weights[:, v] > 0
    x = jnp.where(present[:, None], x, 0.0)
    x = x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=1, keepdims=True), 1e-14))
    graph = _knn_graph(x, present, k_neighbours)
    xs.append(x)
    graphs.append(graph)
    embeddings.append(_initial_embedding(graph, num_clusters, threshold))
  return tuple(xs), tuple(graphs), jnp.stack(embeddings)


def _compact_index(present: jax.Array, capacity: int) -> tuple[jax.Array, jax.Array]:
  """The view's present samples first (in index order): `[capacity]` sample indices and
  whether each slot holds a present sample (slots past the present count hold missing ones)."""
  order = jnp.argsort(~present, stable=True)[:capacity]
  return order, jnp.take(present, order)


def _embed(local: jax.Array, index: jax.Array, num_samples: int) -> jax.Array:
  """A view's `[n, n]` matrix in its compact coordinates back in the `[N, N]` layout."""
  full = jnp.zeros((num_samples, num_samples), local.dtype)
  return full.at[index[:, None], index[None, :]].set(local)


def _agl_step(state: _AGLState, xs, slots, solvers_, lam1, lam2, lam3, rho, faithful,
              num_clusters: int) -> _AGLState:
  """One outer iteration of IMSAGL.m (views updated in order, each with the latest U).

  Each view's matrices live in its compact coordinates (`slots`: per view the sample indices
  and the valid slots of `_compact_index`), as the original's `[n_v, n_v]` matrices; F and U
  span all N samples.
  """
  mu = state.mu
  num_samples = state.embeddings.shape[1]
  consensus = _consensus(state.embeddings, num_clusters)
  target = consensus
  new = {name: [] for name in ('z', 's', 'w', 'e', 'c1', 'c2', 'c3', 'f')}
  penalties, residuals, scale = 0.0, 0.0, 0.0
  for v, x in enumerate(xs):
    index, valid = slots[v]
    pairs = valid[:, None] & valid[None, :]
    off_diagonal = ~jnp.eye(index.shape[0], dtype=bool)
    e, c1 = state.errors[v], state.multipliers_data[v]
    c2, c3 = state.multipliers_low_rank[v], state.multipliers_graph[v]
    # Z: least squares of the three mu/2-weighted penalties.
    right = (x @ (x - e + c1 / mu).T + (state.low_rank[v] - c2 / mu)
             + (state.graphs[v] - c3 / mu))
    z = jnp.where(pairs, solvers_[v](right), 0.0)
    # W: rows onto the simplex over the present off-diagonal columns (with the old F_v).
    f_old = jnp.take(state.embeddings[v], index, axis=0)
    distances = kmeans_lib.squared_distances(f_old, f_old)
    w = _project_rows(z + c3 / mu - (0.5 * lam1 / mu) * distances, pairs & off_diagonal)
    # S: singular value thresholding at 1/mu.
    s, nuclear = _threshold_or_zero(z + c2 / mu, 1 / mu)
    s = jnp.where(pairs, s, 0.0)
    # F: top-K eigenvectors of lam3 U U^T - lam1 L(W), over all N samples.
    laplacian = _laplacian(w)
    matrix = lam3 * (target @ target.T) - lam1 * _embed(laplacian, index, num_samples)
    f = _f_step(_fix_non_finite(matrix), target, lam1 * jnp.max(jnp.diagonal(laplacian)),
                num_clusters)
    target = jnp.where(faithful, f, target)   # IMSAGL.m stores F_v in the variable U
    # E: soft thresholding; then the multipliers.
    reconstruction = z.T @ x
    e = jnp.where(valid[:, None], _soft_threshold(x - reconstruction + c1 / mu, lam2 / mu),
                  0.0)
    r1, r2, r3 = x - reconstruction - e, z - s, z - w
    for name, value in (('z', z), ('s', s), ('w', w), ('e', e), ('c1', c1 + mu * r1),
                        ('c2', c2 + mu * r2), ('c3', c3 + mu * r3), ('f', f)):
      new[name].append(value)
    f_present = jnp.take(f, index, axis=0)
    penalties = (penalties + nuclear + lam1 * jnp.sum(f_present * (laplacian @ f_present))
                 + lam2 * jnp.sum(jnp.abs(e)))
    residuals = residuals + jnp.sum(r1 * r1) + jnp.sum(r2 * r2) + jnp.sum(r3 * r3)
    scale = scale + jnp.sum(x * x)
  embeddings = jnp.stack(new['f'])
  agreement = jnp.sum(jnp.einsum('vnk,nl->vkl', embeddings, target) ** 2)
  objective = (penalties + residuals + lam3 * (len(xs) * num_clusters - agreement)) / scale
  return _AGLState(tuple(new['z']), tuple(new['s']), tuple(new['w']), tuple(new['e']),
                   tuple(new['c1']), tuple(new['c2']), tuple(new['c3']), embeddings, target,
                   jnp.minimum(rho * mu, 1e8), objective)


@functools.partial(jax.jit, static_argnums=(9, 10, 11, 12))
def _imsc_agl(views, weights, lam1, lam2, lam3, mu, rho, tol, faithful, num_clusters: int,
              k_neighbours: int, max_iter: int, capacity: int) -> solvers.SolverResult:
  xs, graphs, embeddings = _agl_prepare(views, weights, num_clusters, k_neighbours)
  return _imsc_agl_loop(xs, weights, graphs, embeddings, lam1, lam2, lam3, mu, rho, tol,
                        faithful, num_clusters, max_iter, capacity)


def _imsc_agl_loop(xs, weights, graphs, embeddings, lam1, lam2, lam3, mu, rho, tol, faithful,
                   num_clusters: int, max_iter: int, capacity: int) -> solvers.SolverResult:
  """IMSAGL.m's loop from prepared inputs (unit rows, initial graphs and F), each view's
  matrices compacted to `capacity` slots (>= its present samples; NaN objective if not)."""
  dtype = weights.dtype
  num_samples = weights.shape[0]
  present = weights > 0
  slots = tuple(_compact_index(present[:, v], capacity) for v in range(len(xs)))
  overflow = jnp.any(jnp.sum(present, axis=0) > capacity)
  local_x = tuple(jnp.take(x, index, axis=0) for x, (index, _) in zip(xs, slots))
  local_graphs = tuple(graph[index][:, index] for graph, (index, _) in zip(graphs, slots))
  solvers_ = tuple(_gram_solver(x) for x in local_x)
  square = jnp.zeros((capacity, capacity), dtype)
  init = _AGLState(local_graphs, local_graphs, local_graphs,
                   tuple(jnp.zeros_like(x) for x in local_x),
                   tuple(jnp.zeros_like(x) for x in local_x), (square,) * len(xs),
                   (square,) * len(xs), embeddings,
                   jnp.zeros(embeddings.shape[1:], dtype), jnp.asarray(mu, dtype),
                   jnp.zeros((), dtype))

  def step(state):
    state = _agl_step(state, local_x, slots, solvers_, lam1, lam2, lam3, rho, faithful,
                      num_clusters)
    return state._replace(objective=jnp.where(overflow, jnp.nan, state.objective))

  result = solvers.iterate(step, lambda state: state.objective, init, max_iter=max_iter,
                           tol=tol, min_iter=3, relative_to=None)
  state = result.solution

  def full(matrices):
    return jnp.stack([_embed(matrix, index, num_samples)
                      for matrix, (index, _) in zip(matrices, slots)])

  errors = tuple(jnp.zeros((num_samples, e.shape[1]), dtype).at[index].set(e)
                 for e, (index, _) in zip(state.errors, slots))
  factors = IMSCAGLFactors(state.embedding, state.embeddings, full(state.graphs),
                           full(state.low_rank), full(state.representations), errors)
  return result._replace(solution=factors)


def imsc_agl(views: Sequence[jax.Array], mask, num_clusters: int, *, lam1=0.1, lam2=1000.0,
             lam3=100.0, mu=0.01, rho=1.1, k_neighbours: int = 5, max_iter: int = 100,
             tol=1e-7, faithful: bool = False,
             capacity: int | None = None) -> solvers.SolverResult:
  """Incomplete multi-view spectral clustering with adaptive graph learning (IMSC_AGL).

  See the module docstring for the model and the updates. The inputs are prepared as the
  survey's driver does: each present sample scaled to unit L2 norm, each view's initial graph
  the binary kNN graph of its present samples (`knn_graph`), each initial F_v from that
  graph's Laplacian (`solveF`: the eigenvectors of the first K eigenvalues above 1e-6 when
  more than K are, else of the K smallest; in float32 the threshold is raised to 1e4 eps to
  stay above the eigensolver's round-off). The defaults are the survey driver's.

  Where the original is ambiguous or quirky:

  * `faithful=False` (default) uses the consensus U in every view's F-step, in the objective,
    and returns it as `embedding`. `faithful=True` reproduces IMSAGL.m, which stores each
    view's new F_v in the variable holding U: view v >= 2 then uses the previous view's new
    F, the objective uses F_V, and the returned embedding is F_V of the last iteration.
  * Eigenvector bases and signs: F enters only through `F F^T`, distances between rows of F
    and traces, so any eigensolver's basis gives the same iterates up to rotation (`eigh`
    here, MATLAB's `eig`/`eigs` there); only ties at the K-th eigenvalue are ambiguous.
  * The simplex projection is exact (Michelot's pivoting); the original's Newton iteration
    agrees to about 1e-10.
  * The objective is not monotone (ADMM on a non-convex problem with growing mu); with the
    default `tol` the loop usually runs `max_iter` iterations.

  Cost per iteration and view: as the original, each view's matrices cover only its present
  samples: `[n, n]` with `n = capacity` slots, the view's present samples first (missing ones
  fill the spare slots, held at zero). The S-step's `[n, n]` SVD, O(n^3), dominates: at a
  per-view deletion rate p, n = (1 - p) N costs (1 - p)^3 of the full-size SVD. The S-step
  skips its SVD while a cheap bound puts every singular value below `1/mu` (the first few
  dozen iterations with the defaults). The F-step's top-K eigenvectors, over all N samples,
  come from subspace iteration started at U (O(N^2 K) per product; with the defaults a few
  products reach float round-off, since `lam3` lies far above the rest of the spectrum), with
  `eigh` as the fallback when it does not settle. Memory O(V n^2 + N^2). Under `jax.vmap`
  both skips' `lax.cond`s become selects that always run the SVD and the eigh, so map over
  conditions with `jax.lax.map` (no `batch_size`) to keep the savings.

  Args:
    views: sequence of `[N, d_v]` float arrays (missing rows may hold anything finite).
    mask: bool `[N, V]`, True = present.
    num_clusters: K (static).
    lam1: the graph-smoothness weight (> 0).
    lam2: the sparse-error weight (> 0).
    lam3: the consensus weight (> 0).
    mu: the initial ALM penalty (> 0).
    rho: the penalty's growth factor per iteration (>= 1); mu is capped at 1e8.
    k_neighbours: neighbours of the initial kNN graphs (static), below every view's number of
      present samples.
    max_iter: iteration cap (static).
    tol: absolute tolerance on the change of the normalised objective, tested from the
      third iteration on (the original's 1e-7).
    faithful: reproduce the original's overwriting of U (see above).
    capacity: slots per view (static): at least the largest number of present samples of any
      view. None: that number, read from a concrete `mask`, or N when `mask` is traced (pass
      it explicitly under `jit` / `vmap` / `lax.map`, e.g. the largest over a sweep's masks,
      for the saving). A traced `mask` with more present samples than `capacity` in some view
      makes the objective NaN from the first iteration (`nan_iteration` 1).

  Returns:
    `SolverResult` with `IMSCAGLFactors` (the graphs in the `[N, N]` layout); cluster the
    rows of `solution.embedding`, scaled to unit norm (`lqmm.cluster.normalize_samples`),
    with `lqmm.cluster.kmeans`.

  Raises:
    ValueError: as `lqmm.cluster.solvers.check_views` (more clusters than samples, a view with
      no present sample, NaN features in a present row, ...); `k_neighbours` not below a
      view's present samples; non-positive `lam1`, `lam2`, `lam3` or `mu`; `rho` < 1;
      `capacity` not an integer in [1, N] or (concrete `mask`) below a view's present samples.
    FloatingPointError: (outside a transformation) the objective became NaN.

  References:
    Wen, Xu, Liu. "Incomplete Multiview Spectral Clustering with Adaptive Graph Learning."
    IEEE Transactions on Cybernetics 50(4), 2020.
  """
  views, weights = solvers.check_views(views, mask, num_clusters=num_clusters)
  for value, name in ((lam1, 'lam1'), (lam2, 'lam2'), (lam3, 'lam3'), (mu, 'mu')):
    checks.check_scalar(value, name, low=0, low_open=True)
  checks.check_scalar(rho, 'rho', low=1)
  checks.check_scalar(tol, 'tol', low=0)
  max_iter = checks.check_integer(max_iter, 'max_iter', minimum=1)
  k_neighbours = _check_k(k_neighbours, mask, 'k_neighbours', spare=1,
                          what='k_neighbours + 1 neighbours')
  capacity = _check_capacity(capacity, mask)
  dtype = views[0].dtype
  result = _imsc_agl(views, weights, *(jnp.asarray(value, dtype) for value in (
      lam1, lam2, lam3, mu, rho, tol)), jnp.asarray(bool(faithful)), num_clusters,
      k_neighbours, max_iter, capacity)
  return solvers.raise_if_not_finite(result, 'imsc_agl')


def _check_capacity(capacity, mask) -> int:
  """`capacity` checked against N and (concrete `mask`) every view's present samples; None ->
  the largest present count (concrete) or N (traced)."""
  num_samples = jnp.shape(mask)[0]
  concrete = checks.is_concrete(mask)
  largest = int(np.asarray(mask).sum(axis=0).max()) if concrete else num_samples
  if capacity is None:
    return largest
  capacity = checks.check_integer(capacity, 'capacity', minimum=1)
  if capacity > num_samples:
    raise ValueError(f'capacity must be at most N = {num_samples} (the samples); got '
                     f'{capacity}.')
  if concrete and capacity < largest:
    raise ValueError(f'capacity = {capacity} is below the {largest} present samples of a view '
                     'in mask; pass at least that many slots (or None).')
  return capacity


# ------------------------------------------------------------------ PIC


def _zscore_samples(x: jax.Array, present: jax.Array) -> jax.Array:
  """Each present row z-scored over its features (n - 1 std; a zero std -> eps); missing 0."""
  x = jnp.where(present[:, None], x, 0.0)
  centred = x - jnp.mean(x, axis=1, keepdims=True)
  std = jnp.sqrt(jnp.sum(centred * centred, axis=1, keepdims=True) / (x.shape[1] - 1))
  std = jnp.where(std == 0, jnp.finfo(x.dtype).eps, std)
  return jnp.where(present[:, None], centred / std, 0.0)


def _pic_graphs(views, weights, k_neighbours: int) -> tuple[jax.Array, jax.Array]:
  """PIC_clustering.m: z-scored samples, adaptive-neighbour graphs, completion (SCompletion),
  symmetrisation; returns the graphs S_v and the normalised affinities L_v, both `[V, N, N]`."""
  present = weights > 0
  raw = jnp.stack([_adaptive_graph(_zscore_samples(x, present[:, v]), present[:, v],
                                   k_neighbours) for v, x in enumerate(views)])
  # A missing row: the sum of the views' rows where the sample is present, scaled to sum 1.
  total = jnp.einsum('nv,vnm->nm', weights, raw)
  sums = jnp.sum(total, axis=1, keepdims=True)
  filled = jnp.where(sums > 0, total / jnp.where(sums > 0, sums, 1.0), 0.0)
  graphs = jnp.where(present.T[:, :, None], raw, filled[None])
  graphs = (graphs + jnp.swapaxes(graphs, 1, 2)) / 2
  degree = jnp.sum(graphs, axis=2)
  scale = jnp.where(degree > 0, jax.lax.rsqrt(jnp.where(degree > 0, degree, 1.0)), 0.0)
  affinities = scale[:, :, None] * graphs * scale[:, None, :]
  return graphs, jnp.where(jnp.isfinite(affinities), affinities, 0.0)


def _spectrum(matrix: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The SVD of a symmetric matrix from `eigh`: `(|eigenvalues|, eigenvectors)`, ordered by
  |eigenvalue| descending (ties in eigh's order), each vector's largest-magnitude entry
  positive (a deterministic sign, as scikit-learn's `svd_flip`)."""
  values, vectors = jnp.linalg.eigh(matrix)
  order = jnp.argsort(-jnp.abs(values), stable=True)
  values, vectors = jnp.abs(values)[order], vectors[:, order]
  largest = jnp.take_along_axis(vectors, jnp.argmax(jnp.abs(vectors), axis=0)[None, :], axis=0)
  return values, vectors * jnp.where(largest < 0, -1.0, 1.0)


def _qp_simplex(hessian: jax.Array, linear: jax.Array) -> jax.Array:
  """`argmin_w w^T H w / 2 - linear^T w` over the simplex, by enumerating the supports.

  For each of the 2^V - 1 supports, the stationary point on the support's face (the KKT
  system with the equality constraint); the answer is the feasible one (weights >= -tol) of
  lowest value: the optimum is the stationary point of its own face, and every other feasible
  candidate is a feasible point. Exact for positive definite H (MATLAB's quadprog).
  """
  num_views = hessian.shape[0]
  dtype = hessian.dtype
  codes = jnp.arange(1, 2 ** num_views)
  supports = ((codes[:, None] >> jnp.arange(num_views)[None, :]) & 1).astype(dtype)
  outer = supports[:, :, None] * supports[:, None, :]
  block = outer * hessian[None] + jax.vmap(jnp.diag)(1 - supports)
  system = jnp.concatenate([
      jnp.concatenate([block, supports[:, :, None]], axis=2),
      jnp.concatenate([supports[:, None, :], jnp.zeros((codes.size, 1, 1), dtype)], axis=2)],
      axis=1)
  right = jnp.concatenate([supports * linear[None], jnp.ones((codes.size, 1), dtype)], axis=1)
  candidates = jnp.linalg.solve(system, right[:, :, None])[:, :num_views, 0]
  values = (0.5 * jnp.einsum('si,ij,sj->s', candidates, hessian, candidates)
            - candidates @ linear)
  tol = max(1e-10, 100 * float(jnp.finfo(dtype).eps))
  feasible = jnp.all(candidates >= -tol, axis=1) & jnp.all(jnp.isfinite(candidates), axis=1)
  best = candidates[jnp.argmin(jnp.where(feasible & jnp.isfinite(values), values, jnp.inf))]
  best = jnp.maximum(best, 0.0)
  return best / jnp.sum(best)


def _pic_fuse(affinities, vectors, values, beta, faithful, num_clusters: int):
  """PIC.m from the affinities L_v `[V, N, N]` and their SVDs (`vectors` `[V, N, N]` the left
  singular vectors, `values` `[V, N]` the singular values, descending).

  Returns `(embedding, weights, fused, qp_value)`. With `faithful`, `E = U ./ sum(U, 2)` as
  the original (r the row sums of U), else `E = U`. Uses `E E^T = diag(1 / r^2)` (U is square
  orthogonal) and `E diag(s) E^T = diag(1/r) |L| diag(1/r)` with `|L| = U diag(s) U^T`.
  """
  inverse_sums = jnp.where(faithful, 1 / jnp.sum(vectors, axis=2), 1.0)       # [V, N]
  leading = vectors[:, :, :num_clusters] * inverse_sums[:, :, None]
  cosines = jnp.linalg.svd(jnp.einsum('vnc,wnd->vwcd', leading, leading), compute_uv=False)
  cosines = cosines / jnp.max(cosines, axis=2, keepdims=True)
  angles = jnp.pi - jnp.arccos(jnp.clip(jnp.min(cosines, axis=2), -1.0, 1.0))
  laplacian = jnp.diag(jnp.sum(angles, axis=0)) - angles
  diagonal = jnp.sum(inverse_sums ** 2, axis=0)                                # sum_m A_m
  cross = jnp.einsum('iab,b,jab->ij', affinities, diagonal, affinities)
  absolute = jnp.einsum('vac,vc,vbc->vab', vectors, values, vectors)
  spectral = jnp.einsum('va,vab,vb->ab', inverse_sums, absolute, inverse_sums)
  linear = jnp.einsum('iab,ab->i', affinities, spectral)
  beta = beta * jnp.linalg.norm(cross) / jnp.linalg.norm(laplacian)
  hessian = cross + beta * laplacian
  hessian = (hessian + hessian.T) / 2
  weights = _qp_simplex(hessian, linear)
  fused = jnp.einsum('v,vnm->nm', weights, affinities)
  _, fused_vectors = _spectrum(fused)
  top = fused_vectors[:, :num_clusters]
  embedding = top / jnp.maximum(jnp.linalg.norm(top, axis=1, keepdims=True), 1e-10)
  value = 0.5 * weights @ hessian @ weights - weights @ linear
  return embedding, weights, fused, value


@functools.partial(jax.jit, static_argnums=(4, 5))
def _pic(views, weights, beta, faithful, num_clusters: int,
         k_neighbours: int) -> solvers.SolverResult:
  graphs, affinities = _pic_graphs(views, weights, k_neighbours)
  values, vectors = jax.vmap(_spectrum)(affinities)
  embedding, view_weights, fused, value = _pic_fuse(affinities, vectors, values, beta,
                                                    faithful, num_clusters)
  finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(embedding))
  return solvers.SolverResult(PICFusion(embedding, view_weights, fused, graphs),
                              value[None], jnp.int32(1), jnp.where(finite, 0, 1).astype(
                                  jnp.int32))


def pic(views: Sequence[jax.Array], mask, num_clusters: int, *, k_neighbours: int = 13,
        beta=0.1, faithful: bool = False) -> solvers.SolverResult:
  """PIC: spectral perturbation fusion of completed per-view graphs (not iterative).

  As the survey's `PIC_clustering.m` and `PIC.m`:

  1. each present sample z-scored over its features (n - 1 std);
  2. per view, the adaptive-neighbour graph of the present samples (`adaptive_neighbour_graph`,
     `k_neighbours` = 13);
  3. a sample missing from view v gets the sum of its rows in the views where it is present,
     scaled to sum 1; then `S_v = (S_v + S_v^T) / 2`;
  4. `L_v = D_v^-1/2 S_v D_v^-1/2` and its spectral decomposition `U_v diag(s_v) U_v^T` (the
     original's full SVD); `E_v = U_v` (with `faithful=True`, `E_v = U_v ./ rowsum(U_v)`);
  5. view angles `phi_ij = pi - max acos(c)`, with c the singular values of
     `E_i[:, :C]^T E_j[:, :C]` divided by the largest, their Laplacian Q,
     `CC_ij = sum_m tr(L_i E_m E_m^T L_j)`,
     `DD_i = sum_m tr(L_i E_m diag(s_m) E_m^T)`;
  6. `w = argmin w^T H w / 2 - DD^T w` on the simplex with `H = CC + beta' Q`,
     `beta' = beta ||CC|| / ||Q||` (solved exactly over the 2^V - 1 supports);
  7. the top-C eigenvectors of `L* = sum_v w_v L_v` by |eigenvalue| (the original's SVD
     order, so eigenvalues near -1 count), rows scaled to unit norm.

  Eigenvector signs and bases: the original divides each row of the full eigenvector matrix by
  its sum. Those row sums change with the signs of the eigenvectors, which the original leaves
  to LAPACK, and with the basis chosen inside repeated eigenvalues (a graph's many near-zero
  eigenvalues). So the original's weights are not reproducible across libraries, and they are
  not invariant to reordering the samples; they can also divide by sums near 0. The default
  (`faithful=False`) leaves the division out. Then `E_m E_m^T = I` and `E_m diag(s_m) E_m^T =
  |L_m|`, so `CC_ij = V tr(L_i L_j)` and `DD_i = sum_m tr(L_i |L_m|)`, and the angles are the
  canonical angles between the views' top-C eigenspaces. All of these are basis-free.
  `faithful=True` keeps the division. It uses `eigh`, ordered by |eigenvalue|, and makes each
  vector's largest-magnitude entry positive (as scikit-learn's `svd_flip`). This is
  deterministic for a given backend. Another sign or basis gives other weights, and those are
  equally valid readings of the original.

  Cost: V + 1 dense `[N, N]` eigendecompositions and V `[N, N]` matrix products, O(V N^3).

  Args:
    views: sequence of `[N, d_v]` float arrays (d_v >= 2; missing rows may hold anything
      finite).
    mask: bool `[N, V]`, True = present.
    num_clusters: C (static).
    k_neighbours: neighbours of the adaptive graphs (static); needs `k_neighbours + 2`
      present samples in every view.
    beta: weight of the view-angle regulariser (>= 0; the survey's 0.1).
    faithful: divide the eigenvectors by their row sums as the original (see above).

  Returns:
    `SolverResult` with `PICFusion`; its trace holds the quadratic programme's value (one
    entry). Cluster the rows of `solution.embedding` with `lqmm.cluster.kmeans`.

  Raises:
    ValueError: as `lqmm.cluster.solvers.check_views`; a view with fewer than 2 features;
      more than 12 views; `k_neighbours` too large for a view's present samples; a negative
      `beta`. FloatingPointError: (outside a transformation) the result is not finite.

  References:
    Wang, Zong, Liu, Li, Wang, Gao. "Spectral Perturbation Meets Incomplete Multi-view Data."
    IJCAI 2019.
  """
  views, weights = solvers.check_views(views, mask, num_clusters=num_clusters)
  for v, x in enumerate(views):
    if x.shape[1] < 2:
      raise ValueError(f'views[{v}] has {x.shape[1]} feature(s); pic z-scores each sample over '
                       'its features and needs at least 2.')
  if len(views) > _MAX_PIC_VIEWS:
    raise ValueError(f'pic solves its weights exactly over the 2^V - 1 supports and takes at '
                     f'most {_MAX_PIC_VIEWS} views; got {len(views)} views.')
  checks.check_scalar(beta, 'beta', low=0)
  k_neighbours = _check_k(k_neighbours, mask, 'k_neighbours', spare=2,
                          what='k_neighbours + 1 neighbours besides the sample')
  result = _pic(views, weights, jnp.asarray(beta, views[0].dtype), jnp.asarray(bool(faithful)),
                num_clusters, k_neighbours)
  return solvers.raise_if_not_finite(result, 'pic')

