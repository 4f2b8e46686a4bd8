"""What every incomplete multi-view clustering solver shares: inputs, the loop, the NaN guard.

A solver takes the views as a sequence of `[N, d_v]` arrays (samples as rows, the views in a
fixed order) and a bool presence mask `[N, V]` (True = present; the layout of
`lqmm.missing.legacy_mask` and `lqmm.data.mask_folds`). Missing rows enter as zero weights,
never by boolean indexing, so shapes are fixed and a sweep over masks, rates and seeds is one
`jax.vmap`-ed program. The outer loop is a `lax.while_loop` with a relative tolerance and an
iteration cap; it records the objective after every outer iteration and stops at the first
non-finite objective, recording the iteration in `nan_iteration`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks

__all__ = ['SolverResult', 'check_views', 'iterate', 'normalize_samples', 'raise_if_not_finite']


class SolverResult(NamedTuple):
  """A solver's output.

  Attributes:
    solution: the method's factors (a NamedTuple of arrays).
    trace: `[max_iter]` objective after each outer iteration; entries after the last
      iteration repeat the final value (slice with `num_iterations` to plot).
    num_iterations: outer iterations run (int32).
    nan_iteration: the 1-based outer iteration whose objective was first not finite (the
      loop stopped there), or 0 when every objective was finite (int32).
  """
  solution: Any
  trace: jax.Array
  num_iterations: jax.Array
  nan_iteration: jax.Array


def check_views(views: Sequence, mask, *, num_clusters: int | None = None,
                name: str = 'views') -> tuple[tuple[jax.Array, ...], jax.Array]:
  """Validates `views` (a sequence of `[N, d_v]` float arrays) and `mask` (bool `[N, V]`).

  Returns the views upcast to at least float32 and the mask as a float `[N, V]` weight.

  Raises:
    ValueError: fewer than two views, views of different N, a mask of the wrong shape, NaN or
      infinite features in a present row, a view with no present sample, a sample with no
      present view, more clusters than samples. TypeError: a non-bool mask, non-float views.
  """
  if isinstance(views, (jax.Array, np.ndarray)) or not isinstance(views, Sequence):
    raise TypeError(f'{name} must be a sequence (list or tuple) of [N, d_v] arrays, one per '
                    f'view; got {type(views).__name__}.')
  if len(views) < 2:
    raise ValueError(f'{name} must hold at least two views; got {len(views)}.')
  arrays = []
  for index, view in enumerate(views):
    view = checks.as_floats(view, f'{name}[{index}]', '[N, d_v]', rank=2)
    if view.ndim != 2:
      raise ValueError(f'{name}[{index}] must have shape [N, d_v]; got shape {view.shape}.')
    arrays.append(view)
  num_samples = arrays[0].shape[0]
  for index, view in enumerate(arrays):
    if view.shape[0] != num_samples:
      raise ValueError(f'every view must have the same number of samples N: {name}[0] has '
                       f'{num_samples}, {name}[{index}] has {view.shape[0]}.')
    if view.shape[1] == 0:
      raise ValueError(f'{name}[{index}] has no features (shape {view.shape}).')
  if num_samples == 0:
    raise ValueError(f'{name}[0] and the other views hold no samples (N = 0).')
  shape = (num_samples, len(arrays))
  if tuple(jnp.shape(mask)) != shape:
    raise ValueError(f'mask must have shape [N, V] = {shape}; got {tuple(jnp.shape(mask))}.')
  if jnp.result_type(mask) != jnp.bool_:
    raise TypeError(f'mask must be a bool array (True = present); got dtype '
                    f'{jnp.result_type(mask)}.')
  if num_clusters is not None:
    checks.check_integer(num_clusters, 'num_clusters', minimum=1, maximum=num_samples)

  def find_problem(values, *features):
    empty_views = np.flatnonzero(~values.any(axis=0))
    if empty_views.size:
      return (f'mask leaves view(s) {empty_views.tolist()} of {name} with no present sample; '
              'drop the view or use a mask that keeps some of its rows.')
    empty_rows = np.flatnonzero(~values.any(axis=1))
    if empty_rows.size:
      return (f'mask leaves {empty_rows.size} sample(s) with no present view (first: row '
              f'{int(empty_rows[0])}); every sample needs at least one view.')
    for index, view in enumerate(features):
      bad = ~np.isfinite(view[values[:, index]])
      if bad.any():
        return (f'{name}[{index}] holds {int(bad.sum())} NaN or infinite value(s) in present '
                'rows; clean or mark those rows missing in the mask.')
    return None

  checks.check_values(find_problem, mask, *arrays)
  dtype = jnp.result_type(*arrays)
  arrays = tuple(view.astype(dtype) for view in arrays)
  return arrays, jnp.asarray(mask).astype(dtype)


def normalize_samples(view: jax.Array) -> jax.Array:
  """Each row (sample) scaled to unit L2 norm; a zero row stays zero.

  The `NormalizeFea(X, 0)` of the MATLAB toolboxes (their columns are samples), with its
  floor: `x / sqrt(max(||x||^2, 1e-14))`.

  Example:
    >>> import jax.numpy as jnp
    >>> normalize_samples(jnp.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
  """
  view = checks.as_floats(view, 'view', '[N, d]', rank=2)
  checks.check_finite(view, 'view')
  norm = jnp.sum(view * view, axis=-1, keepdims=True)
  return view * jax.lax.rsqrt(jnp.maximum(norm, 1e-14))


def iterate(step: Callable, objective: Callable, init, *, max_iter: int, tol,
            min_iter: int = 2, relative_to: str | None = 'previous') -> SolverResult:
  """The shared outer loop: `solution <- step(solution)` until the objective settles.

  Stops after the iteration t >= `min_iter` whose objective satisfies
  `|f_t - f_{t-1}| < tol * |f_{t-1}|` (or `tol * |f_t|` with `relative_to='current'`, or
  `tol` with `relative_to=None`), at `max_iter`, or at the first non-finite objective. The
  default never stops at the first iteration, as the MATLAB originals.

  Args:
    step: `solution -> solution` (one outer iteration).
    objective: `solution -> scalar`, recorded after every step.
    init: the initial solution.
    max_iter: iteration cap (static).
    tol: relative tolerance (absolute with `relative_to=None`).
    min_iter: the first iteration at which the tolerance may stop the loop (static).
    relative_to: `'previous'` or `'current'`: the objective the change is relative to;
      None: the change itself (an absolute tolerance).

  Returns:
    A `SolverResult`.
  """
  dtype = jnp.result_type(*jax.tree.leaves(init))
  if relative_to not in ('previous', 'current', None):
    raise ValueError(f"relative_to must be 'previous', 'current' or None; got {relative_to!r}.")

  def cond(carry):
    _, _, iteration, previous, current, nan_iteration = carry
    scale = (1.0 if relative_to is None else
             jnp.abs(previous if relative_to == 'previous' else current))
    settled = (iteration >= min_iter) & (jnp.abs(current - previous) < tol * scale)
    return (iteration < max_iter) & ~settled & (nan_iteration == 0)

  def body(carry):
    solution, trace, iteration, _, current, _ = carry
    solution = step(solution)
    value = objective(solution).astype(dtype)
    nan_iteration = jnp.where(jnp.isfinite(value), 0, iteration + 1).astype(jnp.int32)
    return (solution, trace.at[iteration].set(value), iteration + 1, current, value,
            nan_iteration)

  infinity = jnp.asarray(jnp.inf, dtype)
  carry = (init, jnp.zeros(max_iter, dtype), jnp.int32(0), infinity, infinity, jnp.int32(0))
  solution, trace, iterations, _, final, nan_iteration = jax.lax.while_loop(cond, body, carry)
  trace = jnp.where(jnp.arange(max_iter, dtype=jnp.int32) < iterations, trace, final)
  return SolverResult(solution, trace, iterations, nan_iteration)


def raise_if_not_finite(result: SolverResult, name: str) -> SolverResult:
  """Raises FloatingPointError naming the solver, the run and the iteration of a NaN objective.

  Call it on the (concrete) output of a jitted or vmapped sweep; the solvers call it
  themselves when run outside a transformation.

  Raises:
    FloatingPointError: some run's objective stopped being finite.
  """
  if not checks.is_concrete(result.nan_iteration):
    return result
  nan_iteration = np.asarray(result.nan_iteration)
  bad = np.argwhere(nan_iteration > 0) if nan_iteration.ndim else np.zeros(
      (int(nan_iteration > 0), 0), int)
  if bad.shape[0]:
    run = tuple(int(i) for i in bad[0])
    where = f' in run {run}' if run else ''
    raise FloatingPointError(
        f'{name}: the objective became NaN or infinite at outer iteration '
        f'{int(nan_iteration[run])}{where} ({bad.shape[0]} run(s) affected); check '
        'the inputs for huge or NaN values and the hyper-parameters for extreme values.')
  return result
