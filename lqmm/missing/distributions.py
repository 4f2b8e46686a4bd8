"""Imputation as distributions: Gaussian draws for missing views (UIMC, Xie et al. 2023).

A missing view is not filled once but drawn `S` times from a Gaussian estimated from reference
rows (the training split), so a classifier sees, and its fusion can weigh, the spread of
plausible values. Two estimates, as in UIMC:

- `class_gaussians` + `sample_class_conditional`: for a *training* row of class y missing view
  v, `N(mean_{v,y}, cov_{v,y} + r I)` over the training rows of class y that have v. This uses
  the training labels (it is part of supervised training; never call it on test rows).
- `neighbour_sets` + `sample_neighbours`: for any row (a test row) missing view v, the union
  over its present views u of the `k` reference rows nearest in u among those that have both v
  and u; the Gaussian is the mean and covariance of their v, plus `r I`. No labels.

Covariances use `ddof=1` (NumPy's `np.cov`), and `r` (`regularization`, UIMC's 1e-3) keeps them
positive definite. A neighbour Gaussian is sampled through its low-rank factor
(`mean + A z + sqrt(r) z'` with `cov = A A^T`), which has exactly the distribution the original
draws through a Cholesky factor, at `O(k V d)` per draw instead of `O(d^3)` per row.

Inputs use the layout of `lqmm.missing.impute`: `inputs = {view: f32[N, d]}`, `mask = {view:
bool[N]}`, True = present. Draws are `{view: f32[S, N, d]}` with present rows unchanged
(bitwise) in every draw. Everything is pure `jax.numpy` with fixed shapes.

References:
  Xie, Han, Zhang, Bai, Hu. "Exploring and Exploiting Uncertainty for Incomplete Multi-View
    Classification." CVPR 2023 (original code: xiexiaoxie41/UIMC, `select_k_neighbors.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm.missing import impute

__all__ = ['ClassGaussians', 'class_gaussians', 'class_rows', 'gaussian_moments',
           'neighbour_sets', 'sample_class_conditional', 'sample_neighbours']


class ClassGaussians(NamedTuple):
  """Per-class Gaussians of one view.

  Attributes:
    mean: `[C, d]`.
    scale_tril: `[C, d, d]`, the Cholesky factor of `cov + regularization * I`.
    count: i32 `[C]`, the rows each Gaussian was estimated from.
  """
  mean: jax.Array
  scale_tril: jax.Array
  count: jax.Array


def gaussian_moments(reference, weights) -> tuple[jax.Array, jax.Array]:
  """Mean and covariance (`ddof=1`) of the rows of `reference` selected by `weights`.

  Args:
    reference: `[R, d]` rows.
    weights: `[..., R]` non-negative frequency weights (0/1 selects rows; a row counted twice
      weighs 2, as `np.cov(..., fweights=...)`).

  Returns:
    `(mean [..., d], cov [..., d, d])`; with fewer than two rows the covariance divides by 1.

  Raises:
    ValueError: wrong ranks or widths, negative or non-finite weights.

  Example:
    >>> import jax.numpy as jnp
    >>> mean, cov = gaussian_moments(jnp.array([[0.], [2.], [9.]]), jnp.array([1., 1., 0.]))
    >>> mean.tolist(), cov.tolist()
    ([1.0], [[2.0]])
  """
  reference = checks.as_floats(reference, 'reference', '[R, d]', rank=2)
  checks.check_finite(reference, 'reference')
  weights = jnp.asarray(weights)
  checks.check_rank_at_least(weights, 1, 'weights', '[..., R]')
  if jnp.shape(weights)[-1] != jnp.shape(reference)[0]:
    raise ValueError(f'weights must end in the {jnp.shape(reference)[0]} rows of reference; got '
                     f'shape {jnp.shape(weights)}.')
  weights = weights.astype(reference.dtype)
  checks.check_finite(weights, 'weights')
  checks.check_values(
      lambda w: 'weights must be non-negative.' if (w < 0).any() else None, weights)
  count = jnp.sum(weights, axis=-1)
  mean = (weights @ reference) / jnp.maximum(count, 1)[..., None]
  second = jnp.einsum('...r,rd,re->...de', weights, reference, reference)
  outer = mean[..., :, None] * mean[..., None, :]
  cov = (second - count[..., None, None] * outer) / jnp.maximum(count - 1, 1)[..., None, None]
  return mean, cov


def _class_members(labels: jax.Array, present: jax.Array, num_classes: int,
                   faithful_indexing: bool) -> jax.Array:
  """bool `[C, N]`: the rows each class's Gaussian is estimated from."""
  classes = jnp.arange(num_classes)
  if not faithful_indexing:
    return present[None, :] & (labels[None, :] == classes[:, None])
  # The original selects positions p within the present rows whose label is c, then takes
  # row p of *all* training rows: row p is a member when the p-th present row has class c.
  order = jnp.argsort(~present, stable=True)  # present rows first, in order
  label_at_position = labels[order]
  position = jnp.arange(labels.shape[0])
  within = position < jnp.sum(present)
  return within[None, :] & (label_at_position[None, :] == classes[:, None])


def class_gaussians(inputs: Mapping, mask: Mapping, labels, *, num_classes: int,
                    regularization: float = 1e-3,
                    faithful_indexing: bool = False) -> dict[str, ClassGaussians]:
  """Per-view, per-class Gaussians of the training rows (UIMC's training-set imputation).

  Args:
    inputs: `{view: [N, d]}` training rows.
    mask: `{view: bool [N]}`.
    labels: i32 `[N]` training labels.
    num_classes: C (static).
    regularization: `r >= 0` added to every covariance's diagonal.
    faithful_indexing: reproduce the original code's indexing slip: it estimates class c of
      view v from the rows at the *positions* (within the rows that have v) of the class-c
      rows, taken from all training rows, so the rows mostly belong to other classes and may
      miss v (their values then come from `inputs`' missing rows, whatever they hold).
      False (default) uses the rows of class c that have v, as the paper describes.

  Returns:
    `{view: ClassGaussians}`.

  Raises:
    ValueError: invalid inputs or labels, negative `regularization`, a (view, class) with
      fewer than two rows (its covariance is undefined).
  """
  views = impute.check_inputs(inputs, mask)
  num_classes = checks.check_integer(num_classes, 'num_classes', minimum=1)
  checks.check_scalar(regularization, 'regularization', low=0)
  num_rows = jnp.shape(inputs[views[0]])[0]
  checks.check_labels(labels, num_classes, (num_rows,))
  labels = jnp.asarray(labels)
  out = {}
  for view in views:
    members = _class_members(labels, mask[view], num_classes, faithful_indexing)
    count = jnp.sum(members, axis=1)
    checks.check_values(
        lambda c, view=view: (f'view {view!r} has fewer than two rows of class '
                              f'{int(jnp.argmin(c))} ({int(c.min())}); its covariance is '
                              'undefined.' if c.min() < 2 else None), count)
    # A missing row's values are never used unless faithful_indexing picks it.
    values = inputs[view] if faithful_indexing else jnp.where(mask[view][:, None],
                                                              inputs[view], 0)
    mean, cov = gaussian_moments(values, members)
    width = jnp.shape(values)[1]
    cov = cov + regularization * jnp.eye(width, dtype=cov.dtype)[None]
    out[view] = ClassGaussians(mean, jnp.linalg.cholesky(cov), count.astype(jnp.int32))
  return out


def class_rows(labels, num_classes: int, *, rows=None, size: int | None = None) -> np.ndarray:
  """The rows of every class, `[C, size]` (padded with -1), for `sample_class_conditional`.

  Args:
    labels: `[N]` concrete integer labels (NumPy or JAX).
    num_classes: C.
    rows: the row indices to group (e.g. a split's training rows), or None for all N.
    size: the padded width (static across the conditions of a sweep); None: the largest
      class's count.

  Returns:
    NumPy int32 `[C, size]`: row indices of class c in increasing order, then -1.

  Raises:
    ValueError: a class with more rows than `size`, or labels outside `[0, C)`.
  """
  num_classes = checks.check_integer(num_classes, 'num_classes', minimum=1)
  labels = np.asarray(labels)
  if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1:
    raise TypeError(f'labels must be integer class indices [N]; got dtype {labels.dtype}, '
                    f'shape {labels.shape}.')
  rows = np.arange(labels.shape[0]) if rows is None else np.sort(np.asarray(rows))
  picked = labels[rows]
  if picked.size and (picked.min() < 0 or picked.max() >= num_classes):
    raise ValueError(f'labels must lie in [0, {num_classes}); got values in '
                     f'[{picked.min()}, {picked.max()}].')
  groups = [rows[picked == c] for c in range(num_classes)]
  largest = max((len(group) for group in groups), default=0)
  size = largest if size is None else size
  if largest > size:
    raise ValueError(f'size ({size}) is smaller than the largest class ({largest} rows).')
  table = np.full((num_classes, size), -1, np.int32)
  for c, group in enumerate(groups):
    table[c, :len(group)] = group
  return table


def sample_class_conditional(key: jax.Array, inputs: Mapping, mask: Mapping, labels,
                             gaussians: Mapping[str, ClassGaussians], *, num_draws: int,
                             rows_by_class=None) -> dict[str, jax.Array]:
  """`num_draws` imputations of the training rows from their class's Gaussians.

  Row n of class y missing view v gets `mean_{v,y} + L_{v,y} z`, `z ~ N(0, I)`. By default each
  row's factor is gathered (`O(N d^2)` memory traffic per draw). With `rows_by_class` (from
  `class_rows`), the rows are drawn class by class as one batched matrix product and the rows
  not in the table are left as given: the same distribution at a fraction of the memory
  traffic, and only the listed (training) rows are touched.

  Args:
    key: a typed PRNG key.
    inputs: `{view: [N, d]}` rows (their labels are used: never draw test rows).
    mask: `{view: bool [N]}`.
    labels: i32 `[N]`.
    gaussians: `class_gaussians(...)` of the training split.
    num_draws: S >= 1 (static).
    rows_by_class: optional i32 `[C, R]` rows of each class (-1 = padding), e.g. the training
      rows from `class_rows(labels, C, rows=train_rows)`; may be traced.

  Returns:
    `{view: [S, N, d]}`: present rows as given, missing rows drawn.

  Raises:
    KeyError: `gaussians` lacks a view. ValueError: invalid inputs, labels, widths or table.
  """
  checks.check_key(key)
  views = impute.check_inputs(inputs, mask)
  num_draws = checks.check_integer(num_draws, 'num_draws', minimum=1)
  out = {}
  for index, view in enumerate(views):
    if view not in gaussians:
      raise KeyError(f'gaussians has no view {view!r}; it has {sorted(gaussians)}.')
    mean, scale_tril, _ = gaussians[view]
    num_classes, width = jnp.shape(mean)
    num_rows = jnp.shape(inputs[view])[0]
    if width != jnp.shape(inputs[view])[1]:
      raise ValueError(f'gaussians[{view!r}] has width {width}; inputs[{view!r}] has '
                       f'{jnp.shape(inputs[view])[1]}.')
    checks.check_labels(labels, num_classes, (num_rows,))
    view_key = jax.random.fold_in(key, index)
    if rows_by_class is None:
      noise = jax.random.normal(view_key, (num_draws, num_rows, width), mean.dtype)
      drawn = mean[labels][None] + jnp.einsum('nde,sne->snd', scale_tril[labels], noise)
    else:
      table = jnp.asarray(rows_by_class)
      if table.ndim != 2 or table.shape[0] != num_classes:
        raise ValueError(f'rows_by_class must have shape [C = {num_classes}, R]; got '
                         f'{table.shape}.')
      noise = jax.random.normal(view_key, (num_draws,) + table.shape + (width,), mean.dtype)
      blocks = mean[None, :, None, :] + jnp.einsum('cde,scre->scrd', scale_tril, noise)
      target = jnp.where(table >= 0, table, num_rows)  # padding scatters out of range
      drawn = jnp.broadcast_to(inputs[view][None], (num_draws, num_rows, width)).at[
          :, target].set(blocks.astype(inputs[view].dtype), mode='drop')
    out[view] = jnp.where(mask[view][None, :, None], inputs[view][None],
                          drawn.astype(inputs[view].dtype))
  return out


def neighbour_sets(inputs: Mapping, mask: Mapping, *, reference_inputs: Mapping,
                   reference_mask: Mapping, k: int) -> dict[str, tuple[jax.Array, jax.Array]]:
  """For every row and view, the reference rows a missing value is estimated from.

  For row n and view v, and each view u that row n has (u != v): the `k` reference rows that
  have both v and u, nearest to row n in u (Euclidean); the set is the union over u (a row
  found through several views counts once). Only meaningful where row n misses v.

  Args:
    inputs: `{view: [N, d]}` rows to impute (e.g. the test split).
    mask: `{view: bool [N]}`.
    reference_inputs: `{view: [R, d]}` the rows the estimate may use (the training split).
    reference_mask: `{view: bool [R]}`.
    k: neighbours per present view, `1 <= k <= R` (static).

  Returns:
    `{view: (index i32[N, U], weight f32[N, U])}` with `U = k (V - 1)`: reference rows and
    0/1 weights (0 for duplicates, for views row n misses, and for fewer than k candidates).

  Raises:
    ValueError / KeyError / TypeError: invalid inputs, views or widths differing from the
      reference's, `k` out of range, fewer than two views, a row of `mask` with no present
      view.
  """
  views = impute.check_inputs(inputs, mask)
  reference_views = impute.check_inputs(reference_inputs, reference_mask, 'reference_inputs',
                                        'reference_mask')
  if reference_views != views:
    raise KeyError(f'reference_inputs must have the views {list(views)}; got '
                   f'{list(reference_views)}.')
  if len(views) < 2:
    raise ValueError(f'inputs must have at least two views (neighbours of a missing view are '
                     f'found through the others); got {list(views)}.')
  present = jnp.stack([jnp.asarray(mask[view]) for view in views])
  checks.check_values(
      lambda any_view: (f'mask: row {int(jnp.argmin(any_view))} has no present view; its '
                        'missing views have no neighbours to be drawn from (keep at least one '
                        'view per row, as every published protocol does).'
                        if not any_view.all() else None), jnp.any(present, axis=0))
  num_reference = jnp.shape(reference_inputs[views[0]])[0]
  k = checks.check_integer(k, 'k', minimum=1, maximum=num_reference)
  distance = {}
  for view in views:
    if jnp.shape(inputs[view])[1:] != jnp.shape(reference_inputs[view])[1:]:
      raise ValueError(f'inputs[{view!r}] and reference_inputs[{view!r}] must have the same '
                       f'width; got {jnp.shape(inputs[view])} and '
                       f'{jnp.shape(reference_inputs[view])}.')
    query, reference = inputs[view], reference_inputs[view]
    squared = (jnp.sum(query**2, 1)[:, None] + jnp.sum(reference**2, 1)[None, :]
               - 2 * query @ reference.T)
    distance[view] = jnp.maximum(squared, 0)  # squared: same order as Euclidean
  out = {}
  for target in views:
    indices, weights = [], []
    for through in views:
      if through == target:
        continue
      candidate = reference_mask[target] & reference_mask[through]
      score = jnp.where(candidate[None, :], -distance[through], -jnp.inf)
      top, index = jax.lax.top_k(score, k)
      indices.append(index)
      weights.append((top > -jnp.inf) & mask[through][:, None])
    index = jnp.concatenate(indices, axis=1)
    valid = jnp.concatenate(weights, axis=1)
    # Union: sort each row's (valid) indices and drop repeats.
    key = jnp.where(valid, index, num_reference)
    order = jnp.argsort(key, axis=1)
    index = jnp.take_along_axis(index, order, axis=1)
    valid = jnp.take_along_axis(valid, order, axis=1)
    sorted_key = jnp.take_along_axis(key, order, axis=1)
    repeat = jnp.concatenate([jnp.zeros_like(valid[:, :1]),
                              sorted_key[:, 1:] == sorted_key[:, :-1]], axis=1)
    out[target] = (index, (valid & ~repeat).astype(jnp.float32))
  return out


def sample_neighbours(key: jax.Array, inputs: Mapping, mask: Mapping, *,
                      reference_inputs: Mapping, reference_mask: Mapping, k: int,
                      num_draws: int, regularization: float = 1e-3) -> dict[str, jax.Array]:
  """`num_draws` imputations from the Gaussians of each row's neighbours (UIMC's test side).

  Row n missing view v gets draws from `N(m, C + r I)`, the mean and covariance (`ddof=1`) of
  view v over `neighbour_sets(...)[v]` of row n, sampled as `m + A z + sqrt(r) z'` with
  `A = (X - m)^T / sqrt(n - 1)`: the same distribution as through a Cholesky factor of
  `C + r I`.

  Args:
    key: a typed PRNG key.
    inputs, mask, reference_inputs, reference_mask, k: as `neighbour_sets`.
    num_draws: S >= 1 (static).
    regularization: `r >= 0`.

  Returns:
    `{view: [S, N, d]}`: present rows as given, missing rows drawn.

  Raises:
    As `neighbour_sets`; ValueError for a negative `regularization`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> x = {'a': jnp.arange(8.).reshape(4, 2), 'b': jnp.arange(4.)[:, None]}
    >>> m = {'a': jnp.array([True, True, True, False]), 'b': jnp.ones(4, bool)}
    >>> draws = sample_neighbours(jax.random.key(0), x, m, reference_inputs=x,
    ...                           reference_mask=m, k=2, num_draws=5)
    >>> draws['a'].shape, bool((draws['a'][:, :3] == x['a'][None, :3]).all())
    ((5, 4, 2), True)
  """
  checks.check_key(key)
  checks.check_scalar(regularization, 'regularization', low=0)
  num_draws = checks.check_integer(num_draws, 'num_draws', minimum=1)
  sets = neighbour_sets(inputs, mask, reference_inputs=reference_inputs,
                        reference_mask=reference_mask, k=k)
  out = {}
  for number, (view, (index, weight)) in enumerate(sets.items()):
    values = reference_inputs[view][index]  # [N, U, d]
    weight = weight.astype(values.dtype)
    count = jnp.sum(weight, axis=1, keepdims=True)
    mean = jnp.sum(weight[..., None] * values, axis=1) / jnp.maximum(count, 1)
    factor = weight[..., None] * (values - mean[:, None, :]) / jnp.sqrt(
        jnp.maximum(count - 1, 1))[..., None]
    low_rank_key, diagonal_key = jax.random.split(jax.random.fold_in(key, number))
    shape = (num_draws,) + jnp.shape(index)
    drawn = (mean[None] + jnp.einsum('nud,snu->snd', factor,
                                     jax.random.normal(low_rank_key, shape, values.dtype))
             + jnp.sqrt(jnp.asarray(regularization, values.dtype)) * jax.random.normal(
                 diagonal_key, (num_draws,) + jnp.shape(mean), values.dtype))
    out[view] = jnp.where(mask[view][None, :, None], inputs[view][None],
                          drawn.astype(inputs[view].dtype))
  return out
