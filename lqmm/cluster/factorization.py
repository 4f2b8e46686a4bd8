"""Weighted matrix factorisation for incomplete multi-view clustering: DAIMC and MIC.

DAIMC: doubly aligned incomplete multi-view clustering by weighted semi-NMF (Hu and Chen 2018).

Each view `X_v` (`[N, d_v]`, samples as rows, each scaled to unit norm, missing rows weighted 0)
is factorised as `X_v ~ V U_v^T` with one consensus representation `V >= 0` (`[N, K]`) shared by
all views and a per-view basis `U_v` (`[d_v, K]`), while a per-view regression `B_v` aligns
the bases (`B_v^T U_v ~ I`) under an L2,1 penalty:

    O = sum_v ||W_v (X_v - V U_v^T)||^2 + alpha (||B_v^T U_v - I||^2 + beta ||B_v||_{2,1})

with `W_v` the diagonal 0/1 presence of view v (the survey's Eq. 3). One outer iteration:
the U step solves the Sylvester equation `alpha B B^T U + U (V^T W V) = X^T W V + alpha B` by
the eigendecompositions of both (symmetric) coefficients; the V step runs semi-NMF
multiplicative updates (at most `inner_max_iter`, relative tolerance `inner_tol`); V's columns
are scaled to sum 1 (U compensates); the B step is the re-weighted least squares solve
`B = (beta/2 D + U U^T)^-1 U`, written with a `K x K` inverse. As the original code, the L2,1
term of the objective is weighted `alpha * beta`.

Checked against a line-by-line NumPy transcription of the original MATLAB (`DAIMC.m`,
`UpdateV_DAIMC.m`, `newinit.m` of DarrenZZhang/TSCMA23-Survey_IMC at fe22317; MATLAB itself does
not run here): `tests/reference/PROVENANCE_imvc.md`.

References:
  Hu, Chen. "Doubly Aligned Incomplete Multi-view Clustering." IJCAI 2018.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from lqmm import checks
from lqmm.cluster import kmeans as kmeans_lib
from lqmm.cluster import solvers

__all__ = ['DAIMCFactors', 'MICFactors', 'daimc', 'daimc_init', 'daimc_objective', 'mic',
           'mic_init', 'mic_weights']

#: The small constants of the original code.
_ETA = 1e-10          # inside sqrt(||b_k||^2 + eta)
_FLOOR = 1e-10        # denominator floor of the V update
_INIT_RIDGE = 1e-5    # the ridge of the initial B


class DAIMCFactors(NamedTuple):
  """DAIMC's factors.

  Attributes:
    bases: per view `[d_v, K]` (U_v).
    consensus: `[N, K]` non-negative shared representation (V), columns summing to 1; cluster
      its rows with k-means.
    regressions: per view `[d_v, K]` (B_v).
  """
  bases: tuple
  consensus: jax.Array
  regressions: tuple


def _row_scale(regression: jax.Array) -> jax.Array:
  """`1 / sqrt(||b_k||^2 + eta)` per row k: the diagonal of the re-weighting matrix D."""
  return jax.lax.rsqrt(jnp.sum(regression * regression, axis=1) + _ETA)


def _regression(basis: jax.Array, diagonal: jax.Array) -> jax.Array:
  """`(diag(diagonal) + U U^T)^-1 U = D^-1 U (I + U^T D^-1 U)^-1` (push-through identity)."""
  scaled = basis / diagonal[:, None]
  gram = jnp.eye(basis.shape[1], dtype=basis.dtype) + basis.T @ scaled
  return jnp.linalg.solve(gram.T, scaled.T).T


def _split(matrix: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Positive and negative parts, `(|A| + A) / 2` and `(|A| - A) / 2`."""
  return jnp.maximum(matrix, 0), jnp.maximum(-matrix, 0)


def _reconstruction(views, weights, bases, consensus) -> jax.Array:
  return sum(jnp.sum((weights[:, v, None] * (x - consensus @ u.T)) ** 2)
             for v, (x, u) in enumerate(zip(views, bases)))


def daimc_objective(views: Sequence[jax.Array], mask, factors: DAIMCFactors, *, alpha,
                    beta) -> jax.Array:
  """DAIMC's objective (see the module docstring) at `factors`.

  Args:
    views: sequence of `[N, d_v]` float arrays (missing rows are weighted out).
    mask: bool `[N, V]`, True = present.
    factors: `DAIMCFactors` matching the views.
    alpha: alignment weight (> 0).
    beta: L2,1 weight (> 0).

  Returns:
    A scalar.

  Raises:
    As `daimc`.
  """
  views, weights = solvers.check_views(views, mask)
  _check_init(factors, views, 'factors')
  for value, name in ((alpha, 'alpha'), (beta, 'beta')):
    checks.check_scalar(value, name, low=0, low_open=True)
  views = tuple(weights[:, v, None] * x for v, x in enumerate(views))
  return _objective(views, weights, factors, alpha, beta)


def _objective(views, weights, factors: DAIMCFactors, alpha, beta) -> jax.Array:
  """`daimc_objective` of validated inputs (missing rows already zero)."""
  total = _reconstruction(views, weights, factors.bases, factors.consensus)
  for u, b in zip(factors.bases, factors.regressions):
    identity = jnp.eye(u.shape[1], dtype=u.dtype)
    l21 = jnp.sum(jnp.sqrt(jnp.sum(b * b, axis=1) + _ETA))
    total = total + alpha * (jnp.sum((b.T @ u - identity) ** 2) + beta * l21)
  return total


def _sylvester(a: jax.Array, m: jax.Array, c: jax.Array) -> jax.Array:
  """Solves `A U + U M = C` for symmetric A `[d, d]` and M `[K, K]` by two eigendecompositions."""
  a_values, a_vectors = jnp.linalg.eigh((a + a.T) / 2)
  m_values, m_vectors = jnp.linalg.eigh((m + m.T) / 2)
  rotated = a_vectors.T @ c @ m_vectors
  return a_vectors @ (rotated / (a_values[:, None] + m_values[None, :])) @ m_vectors.T


def _update_consensus(views, weights, bases, consensus, inner_max_iter: int, inner_tol):
  """The V step: semi-NMF multiplicative updates with the bases fixed."""
  data_plus, data_minus, grams = 0.0, 0.0, []
  # The inner objective sum_v ||W_v (X_v - V U_v^T)||^2 without forming V U_v^T:
  # ||W X||^2 - 2 <W X U, V> + <V^T W V, U^T U>, O(N K^2) per step instead of O(N d K).
  constant, cross, squares = 0.0, 0.0, []
  for v, (x, u) in enumerate(zip(views, bases)):
    projected = x @ u
    plus, minus = _split(projected)
    data_plus = data_plus + weights[:, v, None] * plus
    data_minus = data_minus + weights[:, v, None] * minus
    gram = u.T @ u
    grams.append((weights[:, v, None], *_split(gram)))
    constant = constant + jnp.sum(weights[:, v, None] * x * x)
    cross = cross + weights[:, v, None] * projected
    squares.append((weights[:, v, None], gram))

  def reconstruction(consensus):
    value = constant - 2 * jnp.sum(cross * consensus)
    for w, gram in squares:
      value = value + jnp.sum((consensus.T @ (w * consensus)) * gram)
    return value

  def update(consensus):
    top = data_plus + sum(w * (consensus @ minus) for w, _, minus in grams)
    bottom = data_minus + sum(w * (consensus @ plus) for w, plus, _ in grams)
    return consensus * jnp.sqrt(top / jnp.maximum(bottom, _FLOOR))

  def cond(carry):
    _, iteration, previous, current = carry
    settled = (iteration > 1) & (jnp.abs(current - previous) < inner_tol * jnp.abs(previous))
    diverged = (iteration > 0) & ~jnp.isfinite(current)  # the outer loop's guard reports it
    return (iteration < inner_max_iter) & ~settled & ~diverged

  def body(carry):
    consensus, iteration, _, current = carry
    consensus = update(consensus)
    return consensus, iteration + 1, current, reconstruction(consensus)

  infinity = jnp.asarray(jnp.inf, consensus.dtype)
  consensus, _, _, _ = jax.lax.while_loop(cond, body, (consensus, jnp.int32(0), infinity,
                                                       infinity))
  return consensus


def _step(factors: DAIMCFactors, views, weights, alpha, beta, inner_max_iter: int, inner_tol):
  """One outer iteration of DAIMC."""
  consensus = factors.consensus
  bases = []
  for v, (x, b) in enumerate(zip(views, factors.regressions)):
    weighted = weights[:, v, None] * consensus
    bases.append(_sylvester(alpha * (b @ b.T), consensus.T @ weighted,
                            x.T @ weighted + alpha * b))
  consensus = _update_consensus(views, weights, bases, consensus, inner_max_iter, inner_tol)
  column_sums = jnp.sum(consensus, axis=0)
  consensus = consensus / column_sums[None, :]
  bases = [u * column_sums[None, :] for u in bases]
  regressions = tuple(_regression(u, 0.5 * beta * _row_scale(b))
                      for u, b in zip(bases, factors.regressions))
  return DAIMCFactors(tuple(bases), consensus, regressions)


def daimc_init(views: Sequence[jax.Array], mask, num_clusters: int, *, key: jax.Array,
               num_restarts: int = 20) -> DAIMCFactors:
  """DAIMC's initialisation (`newinit`): per-view k-means on the mean-filled views.

  Each view's missing rows are filled with the mean of its present rows; k-means with
  `num_restarts` restarts gives labels `l_v` and centres `C_v`; then `U_v = C_v^T + 0.1`,
  `V = mean_v(onehot(l_v) + 0.1)`, V's columns are scaled to sum 1 (U compensates) and
  `B_v = (1e-5 I + U_v U_v^T)^-1 U_v`.

  Args:
    views: sequence of `[N, d_v]` float arrays (as passed to `daimc`).
    mask: bool `[N, V]`, True = present.
    num_clusters: K (static).
    key: a typed PRNG key (the k-means seeds; one per view by `fold_in`).
    num_restarts: k-means restarts per view (static; the original's `litekmeans` uses 20).

  Returns:
    `DAIMCFactors`.

  Raises:
    As `lqmm.cluster.solvers.check_views`; a bad key.
  """
  views, weights = solvers.check_views(views, mask, num_clusters=num_clusters)
  checks.check_key(key)
  num_restarts = checks.check_integer(num_restarts, 'num_restarts', minimum=1)
  return _init(views, weights, key, num_clusters, num_restarts)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _init(views, weights, key, num_clusters: int, num_restarts: int) -> DAIMCFactors:
  labels, centres = [], []
  for v, x in enumerate(views):
    result = kmeans_lib.kmeans(_mean_filled(x, weights[:, v]), num_clusters,
                               key=jax.random.fold_in(key, v), num_restarts=num_restarts,
                               max_iter=100)
    labels.append(result.labels)
    centres.append(result.centers)
  return _init_from_partitions(views, labels, centres, num_clusters)


def _mean_filled(x: jax.Array, present: jax.Array) -> jax.Array:
  """Missing rows replaced by the mean of the present rows."""
  mean = jnp.sum(present[:, None] * x, axis=0) / jnp.sum(present)
  return jnp.where(present[:, None] > 0, x, mean[None, :])


def _init_from_partitions(views, labels, centres, num_clusters: int) -> DAIMCFactors:
  """`newinit` from each view's k-means labels `[N]` and centres `[K, d_v]`."""
  dtype = views[0].dtype
  memberships = sum(jax.nn.one_hot(label, num_clusters, dtype=dtype) + 0.1 for label in labels)
  consensus = memberships / len(views)
  column_sums = jnp.sum(consensus, axis=0)
  consensus = consensus / column_sums[None, :]
  bases = tuple((c.T.astype(dtype) + 0.1) * column_sums[None, :] for c in centres)
  regressions = tuple(_regression(u, jnp.full(u.shape[0], _INIT_RIDGE, u.dtype)) for u in bases)
  return DAIMCFactors(bases, consensus, regressions)


def daimc(views: Sequence[jax.Array], mask, init: DAIMCFactors, *, alpha, beta,
          max_iter: int = 30, tol=1e-4, inner_max_iter: int = 30,
          inner_tol=1e-4) -> solvers.SolverResult:
  """Runs DAIMC from `init` (see the module docstring for the objective and the updates).

  Args:
    views: sequence of `[N, d_v]` float arrays, samples as rows, each present row scaled to
      unit norm (`lqmm.cluster.normalize_samples`, as the original's preprocessing); missing
      rows may hold anything finite (they are weighted out).
    mask: bool `[N, V]`, True = present.
    init: initial factors (`daimc_init`).
    alpha: weight of the basis alignment (> 0); `options.afa` of the original.
    beta: L2,1 weight inside the alignment term (> 0).
    max_iter: outer iteration cap (static; the original's 30).
    tol: outer relative tolerance on the objective.
    inner_max_iter: V-step iteration cap (static; 30).
    inner_tol: V-step relative tolerance.

  Returns:
    `SolverResult` with `DAIMCFactors`; cluster `solution.consensus` with
    `lqmm.cluster.kmeans`.

  Raises:
    ValueError: as `check_views`; `init` shapes that do not match; non-positive `alpha` or
      `beta`. FloatingPointError: (outside a transformation) the objective became NaN.

  References:
    Hu, Chen. "Doubly Aligned Incomplete Multi-view Clustering." IJCAI 2018.
  """
  views, weights = solvers.check_views(views, mask)
  _check_init(init, views)
  for value, name in ((alpha, 'alpha'), (beta, 'beta')):
    checks.check_scalar(value, name, low=0, low_open=True)
  max_iter = checks.check_integer(max_iter, 'max_iter', minimum=1)
  inner_max_iter = checks.check_integer(inner_max_iter, 'inner_max_iter', minimum=1)
  checks.check_scalar(tol, 'tol', low=0)
  checks.check_scalar(inner_tol, 'inner_tol', low=0)
  dtype = views[0].dtype
  init = jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype), init)
  result = _daimc(views, weights, init, *(jnp.asarray(value, dtype) for value in (
      alpha, beta, tol, inner_tol)), max_iter, inner_max_iter)
  return solvers.raise_if_not_finite(result, 'daimc')


def _check_init(init, views, name: str = 'init') -> None:
  if not isinstance(init, DAIMCFactors):
    raise TypeError(f'{name} must be DAIMCFactors (from daimc_init); got {type(init).__name__}.')
  num_samples = views[0].shape[0]
  num_clusters = jnp.shape(init.consensus)[-1]
  if tuple(jnp.shape(init.consensus)) != (num_samples, num_clusters) or len(
      init.bases) != len(views) or len(init.regressions) != len(views):
    raise ValueError(f'{name} does not match the views: consensus {jnp.shape(init.consensus)} '
                     f'for N = {num_samples}, {len(init.bases)} bases for {len(views)} views.')
  for v, (x, u, b) in enumerate(zip(views, init.bases, init.regressions)):
    expected = (x.shape[1], num_clusters)
    if tuple(jnp.shape(u)) != expected or tuple(jnp.shape(b)) != expected:
      raise ValueError(f'{name}.bases[{v}] and {name}.regressions[{v}] must have shape '
                       f'{expected}; got {jnp.shape(u)} and {jnp.shape(b)}.')


@functools.partial(jax.jit, static_argnums=(7, 8))
def _daimc(views, weights, init, alpha, beta, tol, inner_tol, max_iter: int,
           inner_max_iter: int) -> solvers.SolverResult:
  views = tuple(weights[:, v, None] * x for v, x in enumerate(views))  # missing rows -> 0
  return solvers.iterate(
      lambda factors: _step(factors, views, weights, alpha, beta, inner_max_iter, inner_tol),
      lambda factors: _objective(views, weights, factors, alpha, beta),
      init, max_iter=max_iter, tol=tol)


# ---------------------------------------------------------------- MIC


class MICFactors(NamedTuple):
  """MIC's factors (views as rows: `X_v ~ U_v V_v^T`).

  Attributes:
    coefficients: per view `[N, K]` non-negative representations (U_v).
    bases: per view `[d_v, K]` non-negative bases (V_v), columns summing to 1.
    consensus: `[N, K]` the weighted mean of the coefficients (U*), recomputed after the last
      round; cluster its rows with k-means.
  """
  coefficients: tuple
  bases: tuple
  consensus: jax.Array


def _unit_l1_bases(coefficients, bases, floor):
  """Scales each basis column to unit L1 norm and its coefficient column up to compensate."""
  norms = jnp.maximum(jnp.sum(jnp.abs(bases), axis=0), floor)
  return coefficients * norms[None, :], bases / norms[None, :]


def _nmf(x, coefficients, basis, num_iterations: int):
  """Plain NMF by Lee-Seung multiplicative updates (Cai's `NMF.m` with a fixed iteration count):
  `x [N, d] ~ coefficients [N, K] basis^T`, basis columns kept at unit L1 norm."""
  coefficients, basis = _unit_l1_bases(coefficients, basis, 0.0)

  def body(_, carry):
    coefficients, basis = carry
    coefficients = coefficients * ((x @ basis) / jnp.maximum(
        coefficients @ (basis.T @ basis), _FLOOR))
    basis = basis * ((x.T @ coefficients) / jnp.maximum(
        basis @ (coefficients.T @ coefficients), _FLOOR))
    return coefficients, basis

  coefficients, basis = jax.lax.fori_loop(0, num_iterations, body, (coefficients, basis))
  return _unit_l1_bases(coefficients, basis, 0.0)


def _mic_consensus(coefficients, weights):
  squared = weights ** 2                                                   # [N, V]
  total = sum(squared[:, v, None] * u for v, u in enumerate(coefficients))
  return total / jnp.sum(squared, axis=1, keepdims=True)


def _mic_view(x, c, coefficients, basis, consensus, alpha, beta, num_iterations: int):
  """One view's weighted NMF toward the consensus with the L2,1 (row-norm) penalty."""
  c2 = (c ** 2)[:, None]
  tiny = jnp.finfo(x.dtype).tiny
  coefficients, basis = _unit_l1_bases(coefficients, basis, 1e-30)

  def body(_, carry):
    u, v = carry
    top = c2 * (x @ v) + alpha * c2 * consensus
    row_norms = jnp.sqrt(jnp.sum(u * u, axis=1, keepdims=True))
    bottom = (c2 * (u @ (v.T @ v)) + alpha * c2 * u
              + 0.5 * beta * u / jnp.maximum(row_norms, tiny))
    u = u * jnp.sqrt(top / jnp.maximum(bottom, 1e-30))
    weighted = c2 * u
    v = v * jnp.sqrt((x.T @ weighted) / jnp.maximum(v @ (u.T @ weighted), 1e-30))
    return _unit_l1_bases(u, v, 1e-30)

  return jax.lax.fori_loop(0, num_iterations, body, (coefficients, basis))


def _mic_objective(views, weights, factors: MICFactors, alpha, beta) -> jax.Array:
  total = 0.0
  for v, (x, u, basis) in enumerate(zip(views, factors.coefficients, factors.bases)):
    c = weights[:, v, None]
    total = total + (jnp.sum((c * (x - u @ basis.T)) ** 2)
                     + alpha * jnp.sum((c * (u - factors.consensus)) ** 2)
                     + beta * jnp.sum(jnp.sqrt(jnp.sum(u * u, axis=0))))
  return total


def mic_weights(mask) -> jax.Array:
  """MIC's instance weights `[N, V]`: 1 for a present sample, `n_v / N` for a filled one.

  MIC fills a missing sample with its view's mean and trusts it less: the weight of a filled
  sample is the share of the view's samples that are present.

  Raises:
    ValueError: a mask that is not bool `[N, V]`.
  """
  if jnp.ndim(mask) != 2 or jnp.result_type(mask) != jnp.bool_:
    raise ValueError(f'mask must be bool [N, V]; got shape {jnp.shape(mask)} and dtype '
                     f'{jnp.result_type(mask)}.')
  share = jnp.mean(mask.astype(jnp.float32), axis=0, keepdims=True)
  return jnp.where(mask, 1.0, jnp.broadcast_to(share, mask.shape))


def mic_init(views: Sequence[jax.Array], mask, num_clusters: int, *, key: jax.Array,
             num_iterations: int = 100) -> MICFactors:
  """MIC's initialisation: three cyclic sweeps of plain NMF over the mean-filled views.

  Sweep 1 starts view 1 from random factors, each next view from the previous view's
  coefficients (and a fresh random basis); sweeps 2 and 3 start view 1 from the last view's
  coefficients. Random bases are `|U(0, 1)|` with unit L2 columns, random coefficients
  `U(0, 1)` divided by their total (Cai's `NMF.m`).

  Args:
    views: sequence of non-negative `[N, d_v]` float arrays.
    mask: bool `[N, V]`, True = present (missing rows are mean-filled here).
    num_clusters: K (static).
    key: a typed PRNG key.
    num_iterations: NMF iterations per call (static).

  Returns:
    `MICFactors`.

  Raises:
    As `lqmm.cluster.solvers.check_views`; negative present values.
  """
  views, weights = solvers.check_views(views, mask, num_clusters=num_clusters)
  _check_non_negative(views, mask)
  checks.check_key(key)
  num_iterations = checks.check_integer(num_iterations, 'num_iterations', minimum=1)
  return _mic_init(views, weights, key, num_clusters, num_iterations)


def _check_non_negative(views, mask) -> None:
  def find_problem(present, *arrays):
    for index, x in enumerate(arrays):
      if (x[present[:, index]] < 0).any():
        return (f'views[{index}] holds negative values in present rows; MIC is a non-negative '
                'factorisation (rescale, e.g. min-max per feature).')
    return None

  checks.check_values(find_problem, mask, *views)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _mic_init(views, weights, key, num_clusters: int, num_iterations: int) -> MICFactors:
  filled = [_mean_filled(x, weights[:, v]) for v, x in enumerate(views)]
  num_samples = filled[0].shape[0]
  dtype = filled[0].dtype
  first = jax.random.uniform(jax.random.fold_in(key, 0), (num_samples, num_clusters), dtype)
  coefficients = [None] * len(filled)
  bases = [None] * len(filled)
  previous = first / jnp.sum(first)
  for sweep in range(3):
    for v, x in enumerate(filled):
      basis = jnp.abs(jax.random.uniform(jax.random.fold_in(key, 1 + sweep * len(filled) + v),
                                         (x.shape[1], num_clusters), dtype))
      basis = basis / jnp.maximum(jnp.sqrt(jnp.sum(basis * basis, axis=0)), _FLOOR)[None, :]
      coefficients[v], bases[v] = _nmf(x, previous, basis, num_iterations)
      previous = coefficients[v]
  consensus = _mic_consensus(coefficients, jnp.ones_like(weights))
  return MICFactors(tuple(coefficients), tuple(bases), consensus)


def mic(views: Sequence[jax.Array], mask, init: MICFactors, *, alpha, beta, rounds: int = 30,
        max_iter: int = 100) -> solvers.SolverResult:
  """MIC: weighted NMF of every view toward a consensus, with an L2,1 penalty.

      sum_v ||C_v (X_v - U_v V_v^T)||^2 + alpha ||C_v (U_v - U*)||^2 + beta ||U_v||_{2,1}

  Missing samples are filled with their view's mean and weighted `c = n_v / N` (`mic_weights`);
  present samples weigh 1. Each round sets the consensus `U*` to the `c^2`-weighted mean of the
  views' coefficients, then updates every view (against the same `U*`) by `max_iter`
  multiplicative steps: `U <- U sqrt((C^2 X V + alpha C^2 U*) / (C^2 U V^T V + alpha C^2 U +
  beta/2 D U))` with `D` the inverse row norms of U, `V <- V sqrt(X^T C^2 U / V U^T C^2 U)`,
  and the basis columns rescaled to unit L1 norm. As the original, every round runs (no early
  stop) and the update uses the row norms while the objective sums the column norms of U, so
  the objective need not decrease. The trace records the objective after each round, with the
  consensus recomputed from the round's coefficients (the original returns the consensus from
  before the last round's updates).

  Args:
    views: sequence of non-negative `[N, d_v]` float arrays (missing rows are mean-filled).
    mask: bool `[N, V]`, True = present.
    init: `mic_init`'s factors.
    alpha: consensus weight (> 0), the same for every view.
    beta: L2,1 weight (>= 0).
    rounds: outer rounds (static).
    max_iter: multiplicative steps per view and round (static).

  Returns:
    `SolverResult` with `MICFactors`.

  Raises:
    As `mic_init`; bad `alpha`, `beta`, `rounds` or `max_iter`; FloatingPointError (outside a
    transformation) when the objective becomes NaN.

  References:
    Shao, He, Yu. "Multiple Incomplete Views Clustering via Weighted Nonnegative Matrix
    Factorization with L2,1 Regularization." ECML-PKDD 2015.
  """
  views, weights = solvers.check_views(views, mask)
  _check_non_negative(views, mask)
  if not isinstance(init, MICFactors):
    raise TypeError(f'init must be MICFactors (from mic_init); got {type(init).__name__}.')
  checks.check_scalar(alpha, 'alpha', low=0, low_open=True)
  checks.check_scalar(beta, 'beta', low=0)
  rounds = checks.check_integer(rounds, 'rounds', minimum=1)
  max_iter = checks.check_integer(max_iter, 'max_iter', minimum=1)
  dtype = views[0].dtype
  init = jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype), init)
  result = _mic(views, mic_weights(mask).astype(dtype), init, jnp.asarray(alpha, dtype),
                jnp.asarray(beta, dtype), rounds, max_iter)
  return solvers.raise_if_not_finite(result, 'mic')


@functools.partial(jax.jit, static_argnums=(5, 6))
def _mic(views, weights, init, alpha, beta, rounds: int, max_iter: int) -> solvers.SolverResult:
  present = weights >= 1
  filled = tuple(_mean_filled(x, present[:, v].astype(x.dtype)) for v, x in enumerate(views))

  def step(factors: MICFactors) -> MICFactors:
    consensus = _mic_consensus(factors.coefficients, weights)
    updated = [_mic_view(x, weights[:, v], u, basis, consensus, alpha, beta, max_iter)
               for v, (x, u, basis) in enumerate(zip(filled, factors.coefficients,
                                                     factors.bases))]
    coefficients = tuple(u for u, _ in updated)
    return MICFactors(coefficients, tuple(basis for _, basis in updated),
                      _mic_consensus(coefficients, weights))

  return solvers.iterate(step, lambda f: _mic_objective(filled, weights, f, alpha, beta),
                         init, max_iter=rounds, tol=0.0)
