"""OPIMC: one-pass incomplete multi-view clustering by block-wise matrix factorisation.

The samples arrive in blocks; each view is factorised as `X_v ~ U_v V^T` with a hard
(one-hot) cluster indicator `V` and a Frobenius penalty on the bases:

    sum_v ||(X_v - U_v V^T) W_v||^2 + alpha ||U_v||^2,   V in {0, 1}^{N x K}, V 1 = 1

Each block alternates, until the loss settles (relative tolerance) or `max_iter`, the closed
form `U_v = (R_v + X_b V)(T_v + V^T W_b V + alpha I)^-1` and the assignment of every sample to
the cluster minimising `sum_v w_vi (||u_vk||^2 - 2 x_vi . u_vk)`; the running sums `R_v += X_b V`
and `T_v += V^T W_b V` then carry the block into the next. The first block starts from uniform
random bases and a soft random indicator. A missing sample has zero weight (and, by default,
zero features); the blocks are fixed-size slices of a permutation (the last one padded with
zero-weight rows), a `lax.scan`, so the whole pass is one compiled program.

`faithful=True` reproduces the survey toolbox's driver (`OPIMC_clustering.m` of
DarrenZZhang/TSCMA23-Survey_IMC at fe22317), which prepares normalised, zero-filled views but
passes the raw ones: features are then not normalised beforehand and missing samples keep their
values in `X_b V`; each block is still normalised sample by sample as `OPIMC.m` does.

References:
  Hu, Chen. "One-Pass Incomplete Multi-view Clustering." AAAI 2019.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from lqmm import checks
from lqmm.cluster import solvers

__all__ = ['OPIMCResult', 'opimc']


class OPIMCResult(NamedTuple):
  """OPIMC's output.

  Attributes:
    labels: int32 `[N]` cluster of every sample (in the input order).
    bases: per view `[d_v, K]`.
    losses: `[num_blocks]` each block's final loss divided by the samples seen so far.
    iterations: int32 `[num_blocks]` iterations each block ran.
    nan_block: the 1-based block whose loss was first not finite, 0 if none.
  """
  labels: jax.Array
  bases: tuple
  losses: jax.Array
  iterations: jax.Array
  nan_block: jax.Array


def _normalize_columns(x):
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-14))


def _assign(blocks, weights, bases, num_clusters):
  distances = 0.0
  for v, (x, u) in enumerate(zip(blocks, bases)):
    distances = distances + weights[:, v, None] * (jnp.sum(u * u, axis=0)[None, :] - 2 * x @ u)
  labels = jnp.argmin(distances, axis=1)
  return jax.nn.one_hot(labels, num_clusters, dtype=blocks[0].dtype), labels


def _loss(bases, sums, grams, blocks, weights, indicator, alpha):
  total = 0.0
  for v, (u, r, t, x) in enumerate(zip(bases, sums, grams, blocks)):
    weighted = weights[:, v, None] * indicator
    total = total + (-2 * jnp.sum(u * (r + x.T @ indicator))
                     + jnp.sum((u.T @ u) * (t + indicator.T @ weighted))
                     + alpha * jnp.sum(u * u))
  return total


def opimc(views: Sequence[jax.Array], mask, num_clusters: int, *, key: jax.Array, alpha=10.0,
          block_size: int = 30, max_iter: int = 30, tol=1e-6, faithful: bool = False
          ) -> OPIMCResult:
  """One pass of OPIMC over a random order of the samples (see the module docstring).

  Args:
    views: sequence of `[N, d_v]` float arrays.
    mask: bool `[N, V]`, True = present.
    num_clusters: K (static).
    key: a typed PRNG key (the sample order and the first block's random start).
    alpha: the bases' Frobenius weight (> 0; the survey's 10).
    block_size: samples per block (static; the survey's 30).
    max_iter: iterations per block (static; 30).
    tol: relative tolerance on a block's loss (1e-6).
    faithful: the survey driver's raw inputs (see the module docstring).

  Returns:
    `OPIMCResult`.

  Raises:
    As `lqmm.cluster.solvers.check_views`; a bad `alpha`, `block_size`, `max_iter` or `tol`;
    FloatingPointError (outside a transformation) when a block's loss becomes NaN.
  """
  views, weights = solvers.check_views(views, mask, num_clusters=num_clusters)
  checks.check_key(key)
  checks.check_scalar(alpha, 'alpha', low=0, low_open=True)
  checks.check_scalar(tol, 'tol', low=0)
  block_size = checks.check_integer(block_size, 'block_size', minimum=num_clusters)
  max_iter = checks.check_integer(max_iter, 'max_iter', minimum=1)
  dtype = views[0].dtype
  result = _opimc(views, weights, key, jnp.asarray(alpha, dtype), jnp.asarray(tol, dtype),
                  num_clusters, block_size, max_iter, bool(faithful))
  if checks.is_concrete(result.nan_block) and int(result.nan_block):
    raise FloatingPointError(f'opimc: the loss became NaN or infinite in block '
                             f'{int(result.nan_block)}; check the inputs and alpha.')
  return result


@functools.partial(jax.jit, static_argnums=(5, 6, 7, 8))
def _opimc(views, weights, key, alpha, tol, num_clusters: int, block_size: int, max_iter: int,
           faithful: bool) -> OPIMCResult:
  num_samples = weights.shape[0]
  order_key, basis_key, indicator_key = jax.random.split(key, 3)
  order = jax.random.permutation(order_key, num_samples)
  dtype = weights.dtype
  first_bases = tuple(jax.random.uniform(jax.random.fold_in(basis_key, v),
                                         (x.shape[1], num_clusters), dtype)
                      for v, x in enumerate(views))
  first_indicator = jax.random.uniform(indicator_key, (block_size, num_clusters), dtype)
  return _opimc_from(views, weights, order, first_bases, first_indicator, alpha, tol,
                     block_size, max_iter, faithful)


def _opimc_from(views, weights, order, first_bases, first_indicator, alpha, tol,
                block_size: int, max_iter: int, faithful: bool) -> OPIMCResult:
  """OPIMC from a given sample order and first-block start (the parity tests' entry)."""
  num_samples = weights.shape[0]
  num_clusters = first_indicator.shape[1]
  num_blocks = -(-num_samples // block_size)
  padding = num_blocks * block_size - num_samples
  if not faithful:
    views = tuple(jnp.where(weights[:, v, None] > 0, _normalize_columns(x), 0.0)
                  for v, x in enumerate(views))
  blocked = tuple(jnp.pad(x[order], ((0, padding), (0, 0))).reshape(
      num_blocks, block_size, x.shape[1]) for x in views)
  block_weights = jnp.pad(weights[order], ((0, padding), (0, 0))).reshape(
      num_blocks, block_size, weights.shape[1])
  dtype = weights.dtype
  first_indicator = first_indicator / jnp.sum(first_indicator, axis=1, keepdims=True)
  identity = jnp.eye(num_clusters, dtype=dtype)

  def block_step(carry, inputs):
    bases, sums, grams, seen = carry
    index, blocks, block_weight = inputs
    blocks = tuple(_normalize_columns(x) for x in blocks)
    seen = seen + jnp.minimum(block_size, num_samples - index * block_size).astype(dtype)
    first = index == 0
    bases = tuple(jnp.where(first, b0, b) for b0, b in zip(first_bases, bases))
    hard, _ = _assign(blocks, block_weight, bases, num_clusters)
    indicator = jnp.where(first, first_indicator, hard)

    def update(state):
      bases, indicator, _, _, iteration = state
      new_bases = []
      for v, (x, u, r, t) in enumerate(zip(blocks, bases, sums, grams)):
        gram = indicator.T @ (block_weight[:, v, None] * indicator)
        solved = jnp.linalg.solve((t + gram + alpha * identity).T, (r + x.T @ indicator).T).T
        empty_first = jnp.diag(gram) == 0
        empty_later = jnp.diag(t + gram) == 0
        block_mean = jnp.mean(x, axis=0)[:, None]
        solved = jnp.where(first & empty_first[None, :], block_mean, solved)
        solved = jnp.where(~first & empty_later[None, :], u, solved)
        new_bases.append(solved)
      bases = tuple(new_bases)
      indicator, _ = _assign(blocks, block_weight, bases, num_clusters)
      value = _loss(bases, sums, grams, blocks, block_weight, indicator, alpha)
      return bases, indicator, state[3], value, iteration + 1

    def cond(state):
      _, _, previous, current, iteration = state
      settled = (iteration > 0) & (jnp.abs((current - previous) / previous) < tol)
      return (iteration < max_iter) & ~settled & jnp.isfinite(current)

    start = _loss(bases, sums, grams, blocks, block_weight, indicator, alpha)
    bases, indicator, _, value, iterations = jax.lax.while_loop(
        cond, update, (bases, indicator, start, start, jnp.int32(0)))
    sums = tuple(r + x.T @ indicator for r, x in zip(sums, blocks))
    grams = tuple(t + indicator.T @ (block_weight[:, v, None] * indicator)
                  for v, t in enumerate(grams))
    labels = jnp.argmax(indicator, axis=1).astype(jnp.int32)
    return (bases, sums, grams, seen), (labels, value / seen, iterations)

  init = (first_bases, tuple(jnp.zeros_like(b) for b in first_bases),
          tuple(jnp.zeros((num_clusters, num_clusters), dtype) for _ in views),
          jnp.asarray(0, dtype))
  (bases, _, _, _), (labels, losses, iterations) = jax.lax.scan(
      block_step, init, (jnp.arange(num_blocks), blocked, block_weights))
  labels = labels.reshape(-1)[:num_samples]
  in_order = jnp.zeros(num_samples, jnp.int32).at[order].set(labels)
  bad = ~jnp.isfinite(losses)
  nan_block = jnp.where(jnp.any(bad), jnp.argmax(bad) + 1, 0).astype(jnp.int32)
  return OPIMCResult(in_order, bases, losses, iterations, nan_block)
