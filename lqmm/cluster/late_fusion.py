"""Kernel late fusion for incomplete views (LF-IMVC): per-view partitions completed and aligned.

Each view's base partition `H_p^(0)` (`[N, K]`) is the top-K eigenvectors of its kernel over the
present samples (kernel k-means' relaxed solution), with zero rows for the missing samples. LF-IMVC
then maximises

    tr(H^T sum_p H_p W_p) + lambda sum_p tr(H_p^T H_p^(0))
    s.t. H^T H = I, W_p^T W_p = I, H_p^T H_p = I

over the consensus H, the rotations W_p and the completed partitions H_p (every row of H_p is
updated; the present rows are held near `H_p^(0)` by the lambda term). Each block has a closed
form, the orthogonal Procrustes solution `polar(A) = U V^T` of the thin SVD `A = U S V^T`:
`H = polar(sum_p H_p W_p)`, `W_p = polar(H_p^T H)`, `H_p = polar(H W_p^T + lambda H_p^(0))`,
so the objective never decreases (the paper's Theorem 1; the tests check the trace).
Cluster the rows of H, scaled to unit norm, with k-means.

Checked against a float64 NumPy transcription of the authors' MATLAB
(`IncompleteMultikernelLatefusionclusteringV1Hv.m` of xinwangliu/Late-Fusion-Incomplete-Multi-view-
Clustering at 7f75ecb): `tests/reference/PROVENANCE_imvc.md`.

References:
  Liu, Zhu, Li, Wang, Tang, Yin, Shen, Wang, Gao. "Late Fusion Incomplete Multi-View
  Clustering." IEEE TPAMI 41(10), 2019.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from lqmm import checks
from lqmm.cluster import solvers

__all__ = ['LateFusion', 'base_partitions', 'cosine_kernels', 'late_fusion']


class LateFusion(NamedTuple):
  """LF-IMVC's variables.

  Attributes:
    consensus: `[N, K]` orthonormal columns (H).
    rotations: `[V, K, K]` orthogonal (W_p).
    partitions: `[V, N, K]` completed base partitions (H_p), orthonormal columns.
  """
  consensus: jax.Array
  rotations: jax.Array
  partitions: jax.Array


def cosine_kernels(views, mask) -> jax.Array:
  """Per-view kernels `[V, N, N]` over the present samples: cosine similarity, centred over the
  present samples and scaled to a unit diagonal; rows and columns of missing samples are 0.

  The kernel for feature data (LF-IMVC's experiments start from precomputed kernels).

  Args:
    views: sequence of `[N, d_v]` float arrays.
    mask: bool `[N, V]`, True = present.

  Raises:
    As `lqmm.cluster.solvers.check_views`.
  """
  views, weights = solvers.check_views(views, mask)
  return _cosine_kernels(views, weights)


@jax.jit
def _cosine_kernels(views, weights) -> jax.Array:
  kernels = []
  for v, x in enumerate(views):
    present = weights[:, v]
    x = x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=1, keepdims=True), 1e-14))
    x = x * present[:, None]
    mean = jnp.sum(x, axis=0) / jnp.sum(present)
    centred = (x - mean[None, :]) * present[:, None]
    kernel = centred @ centred.T
    diagonal = jnp.diagonal(kernel)
    scale = jnp.where(diagonal > 0, jax.lax.rsqrt(jnp.where(diagonal > 0, diagonal, 1.0)), 0.0)
    kernels.append(scale[:, None] * kernel * scale[None, :])
  return jnp.stack(kernels)


def base_partitions(kernels: jax.Array, mask, num_clusters: int, *, jitter=1e-8) -> jax.Array:
  """Each view's top-K kernel eigenvectors over its present samples, zero rows elsewhere.

  Args:
    kernels: `[V, N, N]` symmetric kernels.
    mask: bool `[N, V]`, True = present.
    num_clusters: K (static), at most the present samples of every view.
    jitter: added to the present diagonal (the original's 1e-8).

  Returns:
    `[V, N, K]` with orthonormal columns (eigenvector signs as `eigh` returns them).

  Raises:
    ValueError: shapes that do not match, non-finite kernels, K out of range.
  """
  kernels = checks.as_floats(kernels, 'kernels', '[V, N, N]', rank=3)
  if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2]:
    raise ValueError(f'kernels must have shape [V, N, N]; got {kernels.shape}.')
  shape = (kernels.shape[1], kernels.shape[0])
  checks.check_mask(mask, shape, 'mask')
  checks.check_finite(kernels, 'kernels')
  checks.check_integer(num_clusters, 'num_clusters', minimum=1, maximum=kernels.shape[1])
  checks.check_scalar(jitter, 'jitter', low=0)
  return _base_partitions(kernels, mask, jnp.asarray(jitter, kernels.dtype), num_clusters)


@functools.partial(jax.jit, static_argnums=3)
def _base_partitions(kernels, mask, jitter, num_clusters: int) -> jax.Array:
  def one(kernel, present):
    both = present[:, None] & present[None, :]
    kernel = jnp.where(both, (kernel + kernel.T) / 2, 0.0)
    kernel = kernel + jnp.diag(jnp.where(present, jitter, 0.0))
    values, vectors = jnp.linalg.eigh(kernel)
    top = vectors[:, ::-1][:, :num_clusters]
    return jnp.where(present[:, None], top, 0.0)

  return jax.vmap(one, in_axes=(0, 1))(kernels, mask)


def _polar(matrix: jax.Array) -> jax.Array:
  """The orthogonal Procrustes factor `U V^T` of the thin SVD of `matrix`."""
  left, _, right = jnp.linalg.svd(matrix, full_matrices=False)
  return left @ right


def _objective(solution: LateFusion, initial, lam) -> jax.Array:
  fused = jnp.einsum('vnk,vkl->nl', solution.partitions, solution.rotations)
  return (jnp.sum(solution.consensus * fused)
          + lam * jnp.sum(solution.partitions * initial))


def late_fusion(partitions: jax.Array, *, lam, max_iter: int = 200,
                tol=1e-4) -> solvers.SolverResult:
  """LF-IMVC from incomplete base partitions (see the module docstring).

  Args:
    partitions: `[V, N, K]` base partitions `H_p^(0)` with zero rows for missing samples
      (`base_partitions`).
    lam: the weight of the alignment with the base partitions (> 0; the paper grid-searches
      2^-15 ... 2^15).
    max_iter: iteration cap (static; the original's 200).
    tol: relative tolerance on the objective (the original's 1e-4, relative to the newest
      value, checked from the third iteration on).

  Returns:
    `SolverResult` with `LateFusion`; its trace is non-decreasing (a maximisation).

  Raises:
    ValueError: partitions not `[V, N, K]` with K <= N, non-finite partitions, a bad `lam`.
  """
  partitions = checks.as_floats(partitions, 'partitions', '[V, N, K]', rank=3)
  if partitions.ndim != 3 or partitions.shape[2] > partitions.shape[1]:
    raise ValueError(f'partitions must have shape [V, N, K] with K <= N; got '
                     f'{partitions.shape}.')
  checks.check_finite(partitions, 'partitions')
  checks.check_scalar(lam, 'lam', low=0, low_open=True)
  max_iter = checks.check_integer(max_iter, 'max_iter', minimum=1)
  checks.check_scalar(tol, 'tol', low=0)
  result = _late_fusion(partitions, jnp.asarray(lam, partitions.dtype),
                        jnp.asarray(tol, partitions.dtype), max_iter)
  return solvers.raise_if_not_finite(result, 'late_fusion')


@functools.partial(jax.jit, static_argnums=3)
def _late_fusion(initial, lam, tol, max_iter: int) -> solvers.SolverResult:
  num_views, _, num_clusters = initial.shape
  rotations = jnp.broadcast_to(jnp.eye(num_clusters, dtype=initial.dtype),
                               (num_views, num_clusters, num_clusters))

  def step(solution: LateFusion) -> LateFusion:
    consensus = _polar(jnp.einsum('vnk,vkl->nl', solution.partitions, solution.rotations))
    rotations = jax.vmap(lambda h: _polar(h.T @ consensus))(solution.partitions)
    partitions = jax.vmap(lambda w, h0: _polar(consensus @ w.T + lam * h0))(rotations, initial)
    return LateFusion(consensus, rotations, partitions)

  init = LateFusion(jnp.zeros(initial.shape[1:], initial.dtype), rotations, initial)
  return solvers.iterate(step, lambda s: _objective(s, initial, lam), init, max_iter=max_iter,
                         tol=tol, min_iter=3, relative_to='current')
