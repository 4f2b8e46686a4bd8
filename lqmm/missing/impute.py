"""Imputation of missing views: zero, mean, k-nearest neighbours and low-rank completion.

Inputs use the batch layout of `lqmm.data`: `inputs = {view: f32[N, d_view]}` and
`mask = {view: bool[N]}`, True = present. Every imputer returns new `inputs` in which the
missing rows of each view are filled and the present rows are unchanged (bitwise).

Statistics are fitted on *reference* data that the caller passes explicitly (the training
split): `fit_means(train_inputs, train_mask)`, `knn(..., reference_inputs=train_inputs,
reference_mask=train_mask)`. Nothing here sees labels, and nothing fits on the rows it fills
unless the caller passes them as the reference; `low_rank` completes the matrix it is given,
so give it the training rows (transductive completion of test rows is a choice the caller
makes explicitly with `transductive=True`).

All functions are pure `jax.numpy` with fixed shapes (missing rows enter as masks, never by
boolean indexing), so they jit and vmap over masks.

References:
  Zhang et al. "Multimodal Fusion on Low-quality Data: A Comprehensive Survey" (Sec. 3.1).
  Troyanskaya et al. "Missing value estimation methods for DNA microarrays." Bioinformatics
    2001 (k-NN imputation).
  Mazumder, Hastie, Tibshirani. "Spectral Regularization Algorithms for Learning Large
    Incomplete Matrices." JMLR 2010 (Soft-Impute).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from lqmm import checks

__all__ = ['fit_means', 'knn', 'low_rank', 'means', 'zeros']


def check_inputs(inputs: Mapping, mask: Mapping, name: str = 'inputs',
                 mask_name: str = 'mask') -> tuple[str, ...]:
  """Validates the imputation layout; returns the views in sorted order.

  `inputs[view]` must be floating `[N, d]` with finite present rows, `mask[view]` bool `[N]`,
  the same views and N everywhere (also used by `lqmm.missing.distributions`).
  """
  if not inputs:
    raise ValueError(f'{name} must map at least one view name to an array; got an empty dict.')
  views = tuple(sorted(inputs))
  if set(mask) != set(views):
    raise KeyError(f'{mask_name} must have the views of {name} {list(views)}; got '
                   f'{sorted(mask)}.')
  rows = {jnp.shape(inputs[view])[0] if jnp.ndim(inputs[view]) else None for view in views}
  for view in views:
    checks.check_rank_at_least(inputs[view], 2, f'{name}[{view!r}]', '[N, d]')
    checks.check_floating(inputs[view], f'{name}[{view!r}]')
    checks.check_mask(mask[view], jnp.shape(inputs[view])[:1], f'{mask_name}[{view!r}]')
    present = jnp.where(mask[view][:, None], inputs[view], 0)
    checks.check_finite(present, f'{name}[{view!r}] (its present rows)')
  if len(rows) != 1:
    raise ValueError(f'All views of {name} must have the same number of rows; got '
                     f'{ {view: jnp.shape(inputs[view]) for view in views} }.')
  return views


def zeros(inputs: Mapping, mask: Mapping) -> dict:
  """Missing rows set to 0 (the identity of a sum; what masked fusion does implicitly).

  Raises:
    ValueError / KeyError / TypeError: see the module docstring's layout.

  Example:
    >>> import jax.numpy as jnp
    >>> zeros({'a': jnp.ones((2, 1))}, {'a': jnp.array([True, False])})['a'].tolist()
    [[1.0], [0.0]]
  """
  views = check_inputs(inputs, mask)
  return {view: jnp.where(mask[view][:, None], inputs[view], 0) for view in views}


def fit_means(inputs: Mapping, mask: Mapping) -> dict:
  """Per-view means `{view: [d]}` over the present rows of the reference data.

  Raises:
    ValueError: a view with no present row (its mean is undefined), or invalid inputs.
  """
  views = check_inputs(inputs, mask)
  out = {}
  for view in views:
    count = jnp.sum(mask[view])
    checks.check_values(
        lambda value, view=view: (f'mask[{view!r}] has no present row; the mean of view '
                                  f'{view!r} is undefined.' if value == 0 else None), count)
    total = jnp.sum(jnp.where(mask[view][:, None], inputs[view], 0), axis=0)
    out[view] = total / jnp.maximum(count, 1).astype(total.dtype)
  return out


def means(inputs: Mapping, mask: Mapping, view_means: Mapping) -> dict:
  """Missing rows set to the reference means from `fit_means` (fitted on training data).

  Raises:
    KeyError: `view_means` lacks a view. ValueError: a mean of the wrong width or not finite.
  """
  views = check_inputs(inputs, mask)
  out = {}
  for view in views:
    if view not in view_means:
      raise KeyError(f'view_means has no view {view!r}; it has {sorted(view_means)}.')
    mean = checks.as_floats(view_means[view], f'view_means[{view!r}]', '[d]')
    if jnp.shape(mean) != jnp.shape(inputs[view])[1:]:
      raise ValueError(f'view_means[{view!r}] must have shape {jnp.shape(inputs[view])[1:]}; '
                       f'got {jnp.shape(mean)}.')
    out[view] = jnp.where(mask[view][:, None], inputs[view],
                          mean.astype(inputs[view].dtype)[None, :])
  return out


def knn(inputs: Mapping, mask: Mapping, *, reference_inputs: Mapping, reference_mask: Mapping,
        k: int = 5) -> dict:
  """k-nearest-neighbour imputation in the observed views (Troyanskaya et al.).

  For a row missing view v, the neighbours are the reference rows that have v, ranked by the
  mean over the views both rows have of the squared distance per feature; the imputed value
  is the mean of their v over the `k` nearest (fewer when fewer candidates exist). A row that
  shares no view with any candidate gets the candidates' plain mean of v.

  Args:
    inputs: `{view: [N, d]}` rows to fill.
    mask: `{view: bool [N]}`.
    reference_inputs: `{view: [R, d]}` the training rows (never the rows being evaluated,
      unless that is the protocol).
    reference_mask: `{view: bool [R]}`.
    k: neighbours, >= 1 (static).

  Returns:
    `inputs` with missing rows filled.

  Raises:
    TypeError: a non-integer `k`.
    ValueError: `k < 1`, views or widths that differ from the reference's, invalid inputs,
      or a view no reference row has.
  """
  views = check_inputs(inputs, mask)
  reference_views = check_inputs(reference_inputs, reference_mask, 'reference_inputs',
                           'reference_mask')
  if reference_views != views:
    raise KeyError(f'reference_inputs must have the views {list(views)}; got '
                   f'{list(reference_views)}.')
  k = checks.check_integer(k, 'k', minimum=1)
  for view in views:
    if jnp.shape(inputs[view])[1:] != jnp.shape(reference_inputs[view])[1:]:
      raise ValueError(f'inputs[{view!r}] and reference_inputs[{view!r}] must have the same '
                       f'width; got {jnp.shape(inputs[view])} and '
                       f'{jnp.shape(reference_inputs[view])}.')
  means_ = fit_means(reference_inputs, reference_mask)
  # Mean squared distance per feature over the shared views, [N, R].
  total = 0.0
  shared = 0.0
  for view in views:
    query = jnp.where(mask[view][:, None], inputs[view], 0)
    reference = jnp.where(reference_mask[view][:, None], reference_inputs[view], 0)
    squared = (jnp.sum(query**2, 1)[:, None] + jnp.sum(reference**2, 1)[None, :]
               - 2 * query @ reference.T) / jnp.shape(query)[1]
    both = mask[view][:, None] & reference_mask[view][None, :]
    total = total + jnp.where(both, jnp.maximum(squared, 0), 0)
    shared = shared + both.astype(squared.dtype)
  distance = jnp.where(shared > 0, total / jnp.maximum(shared, 1), jnp.inf)
  num_reference = jnp.shape(distance)[1]
  count = min(k, num_reference)
  out = {}
  for view in views:
    candidate = jnp.broadcast_to(reference_mask[view][None, :], jnp.shape(distance))
    score = jnp.where(candidate, -distance, -jnp.inf)
    top, index = jax.lax.top_k(score, count)
    usable = top > -jnp.inf
    weights = usable.astype(inputs[view].dtype)
    values = reference_inputs[view][index]  # [N, count, d]
    filled = jnp.sum(weights[..., None] * values, 1) / jnp.maximum(
        jnp.sum(weights, 1, keepdims=True), 1)
    filled = jnp.where(jnp.any(usable, 1, keepdims=True), filled, means_[view][None, :])
    out[view] = jnp.where(mask[view][:, None], inputs[view], filled)
  return out


def low_rank(inputs: Mapping, mask: Mapping, *, shrinkage: float, max_iterations: int = 100,
             tolerance: float = 1e-5, transductive: bool = False) -> tuple[dict, jax.Array]:
  """Soft-Impute: low-rank completion of the concatenated views by singular value shrinkage.

  Iterates `Z <- S_lambda(P_obs(X) + P_miss(Z))`, where `S_lambda` soft-thresholds the singular
  values by `shrinkage`, until the relative change falls below `tolerance` (a `lax.while_loop`
  with an iteration cap). Each view is standardised by its present rows first and restored
  after, so views of different scales weigh alike.

  Args:
    inputs: `{view: [N, d]}`, the rows to complete together.
    mask: `{view: bool [N]}`.
    shrinkage: `lambda >= 0`, in units of the standardised data's singular values.
    max_iterations: the iteration cap (static).
    tolerance: the stopping rule on `||Z_t - Z_{t-1}||_F / ||Z_{t-1}||_F`.
    transductive: must be True to acknowledge that the completion of each row uses every other
      row passed in (pass only training rows otherwise).

  Returns:
    `(filled inputs, iterations run)`.

  Raises:
    ValueError: `transductive` not set, a negative or NaN `shrinkage` or `tolerance`, invalid
      inputs, or a view with no present row.
  """
  views = check_inputs(inputs, mask)
  if not transductive:
    raise ValueError('low_rank completes rows from each other: pass transductive=True to '
                     'acknowledge it (and pass only the rows that may inform each other, e.g. '
                     'the training split).')
  checks.check_scalar(shrinkage, 'shrinkage', low=0)
  checks.check_scalar(tolerance, 'tolerance', low=0)
  view_means = fit_means(inputs, mask)
  scales, blocks, observed = {}, [], []
  for view in views:
    centred = jnp.where(mask[view][:, None], inputs[view] - view_means[view][None, :], 0)
    count = jnp.maximum(jnp.sum(mask[view]), 1).astype(centred.dtype)
    scales[view] = jnp.sqrt(jnp.sum(centred**2) / (count * jnp.shape(centred)[1])) + 1e-12
    blocks.append(centred / scales[view])
    observed.append(jnp.broadcast_to(mask[view][:, None], jnp.shape(centred)))
  matrix = jnp.concatenate(blocks, axis=1)
  present = jnp.concatenate(observed, axis=1)

  def shrink(z):
    u, s, vt = jnp.linalg.svd(jnp.where(present, matrix, z), full_matrices=False)
    return (u * jnp.maximum(s - shrinkage, 0)[None, :]) @ vt

  def cond(carry):
    _, change, step = carry
    return (change > tolerance) & (step < max_iterations)

  def body(carry):
    z, _, step = carry
    new = shrink(z)
    change = jnp.linalg.norm(new - z) / jnp.maximum(jnp.linalg.norm(z), 1e-12)
    return new, change, step + 1

  start = jnp.zeros_like(matrix)
  completed, _, steps = jax.lax.while_loop(
      cond, body, (start, jnp.asarray(jnp.inf, matrix.dtype), jnp.asarray(0)))
  out, offset = {}, 0
  for view in views:
    width = jnp.shape(inputs[view])[1]
    block = completed[:, offset:offset + width] * scales[view] + view_means[view][None, :]
    out[view] = jnp.where(mask[view][:, None], inputs[view], block.astype(inputs[view].dtype))
    offset += width
  return out, steps
