"""Degradations that make multimodal data low-quality.

Every function is pure: it takes the modality dict of a batch (`{name: [B, ...]}`), a
keyword-only typed PRNG `key` and numeric strengths that may be traced, and returns a new dict.
They jit (modality names are static) and vmap over keys or strengths, e.g. to evaluate a grid of
noise levels in one call::

    noisy = jax.vmap(lambda s: corrupt.gaussian_noise(inputs, s, key=key))(jnp.array([0., .5, 1.]))

Random draws are made once per call for all corrupted modalities together, laid out in sorted
name order, so a result does not depend on dict order (and XLA compiles one random-number
generator per call instead of one per modality).

References:
  Zhang et al. "Multimodal Fusion on Low-quality Data: A Comprehensive Survey" (the taxonomy).
  Han et al. "Trusted Multi-View Classification." ICLR 2021 (Gaussian noise on test views).
  Xu, Si, Guan, Zhao, Li, Wang, Luo. "Reliable Conflictive Multi-view Learning." AAAI 2024
    (conflictive test sets: `conflictive_views`; its noise on random view subsets:
    `random_view_noise`, also FUML's noisy test sets: Duan et al., ICML 2025).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from lqmm import checks
from lqmm import sampling

__all__ = ['conflictive_views', 'gaussian_noise', 'per_sample_quality', 'random_view_noise',
           'salt_and_pepper']

Inputs = Mapping[str, jax.Array]


def _select(inputs: Inputs, modalities: Sequence[str] | str | None) -> tuple[str, ...]:
  """Validates and returns the names to corrupt (all of them when None)."""
  if not inputs:
    raise ValueError('inputs must map at least one modality name to an array; got {}.')
  if modalities is None:
    return tuple(sorted(inputs))
  if isinstance(modalities, str):
    modalities = (modalities,)
  for name in modalities:
    if name not in inputs:
      raise KeyError(f'Unknown modality {name!r} in modalities; inputs has: '
                     f'{", ".join(sorted(inputs))}.')
  return tuple(modalities)


def _draw(sampler, key: jax.Array, arrays: Sequence[jax.Array]) -> list[jax.Array]:
  """One `sampler` draw for all `arrays`: float64 when any array is float64, else float32."""
  wide = any(jnp.result_type(x) == jnp.float64 for x in arrays)
  return sampling.draw_split(sampler, key, arrays, jnp.float64 if wide else jnp.float32)


def _check_values(inputs: Inputs, chosen: Sequence[str], *, floating: bool = True) -> None:
  """The corrupted modalities hold a batch axis and finite (floating, where required) values."""
  for name in chosen:
    checks.check_rank_at_least(inputs[name], 1, f'inputs[{name!r}]', '[B, ...]')
    if floating:
      checks.check_floating(inputs[name], f'inputs[{name!r}]')
    if jnp.issubdtype(jnp.result_type(inputs[name]), jnp.inexact):
      checks.check_finite(inputs[name], f'inputs[{name!r}]')


def _check_key(key) -> None:
  if key is None:
    raise TypeError('key must be a PRNG key, e.g. jax.random.key(0); got None.')


def _check_nonnegative(value, name: str) -> None:
  checks.check_scalar(value, name, low=0)


def gaussian_noise(inputs: Inputs, std, *, key: jax.Array,
                   modalities: Sequence[str] | str | None = None) -> dict[str, jax.Array]:
  """Adds i.i.d. Gaussian noise `N(0, std^2)` to the chosen modalities.

  Args:
    inputs: `{name: float [B, ...]}`.
    std: noise standard deviation (scalar, >= 0, may be traced).
    key: PRNG key.
    modalities: names to corrupt; None corrupts every modality.

  Returns:
    A new dict; untouched modalities are passed through.

  Raises:
    KeyError: an unknown modality name. ValueError: a negative, NaN or infinite concrete `std`,
      or a corrupted modality without a batch axis or with NaN or infinite values.
    TypeError: a corrupted modality is not floating-point (scale integer data first).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> out = gaussian_noise({'a': jnp.zeros((2, 3))}, 0.0, key=jax.random.key(0))
    >>> out['a'].sum()
    Array(0., dtype=float32)
  """
  _check_key(key)
  _check_nonnegative(std, 'std')
  chosen = sorted(_select(inputs, modalities))
  _check_values(inputs, chosen)
  noises = _draw(jax.random.normal, key, [inputs[name] for name in chosen])
  out = dict(inputs)
  for name, noise in zip(chosen, noises):
    x = inputs[name]
    out[name] = x + jnp.asarray(std, x.dtype) * noise
  return out


def salt_and_pepper(inputs: Inputs, amount, *, key: jax.Array,
                    modalities: Sequence[str] | str | None = None,
                    low: float = 0.0, high: float = 1.0) -> dict[str, jax.Array]:
  """Sets a fraction `amount` of the entries of each chosen modality to `low` or `high`.

  Each entry is hit independently with probability `amount`; a hit entry becomes `low`
  ("pepper") or `high` ("salt") with equal probability.

  Args:
    inputs: `{name: [B, ...]}`.
    amount: probability in `[0, 1]` (may be traced).
    key: PRNG key.
    modalities: names to corrupt; None corrupts every modality.
    low: the pepper value (the data's minimum; 0 after min-max scaling).
    high: the salt value (the data's maximum; 1 after min-max scaling).

  Returns:
    A new dict.

  Raises:
    KeyError: an unknown modality. ValueError: a concrete `amount` outside `[0, 1]` or NaN, or
      a corrupted modality without a batch axis or with NaN or infinite values (integer data,
      e.g. uint8 images, is fine).
  """
  _check_key(key)
  checks.check_scalar(amount, 'amount', low=0, high=1)
  chosen = sorted(_select(inputs, modalities))
  _check_values(inputs, chosen, floating=False)
  arrays = [inputs[name] for name in chosen]
  draws = _draw(jax.random.uniform, key, [jax.ShapeDtypeStruct(jnp.shape(x), jnp.float32)
                                          for x in arrays])
  out = dict(inputs)
  for name, x, draw in zip(chosen, arrays, draws):
    # One uniform per entry: below amount / 2 is pepper, in [amount / 2, amount) is salt.
    hit = draw < amount
    salt = draw >= jnp.asarray(amount, jnp.float32) / 2
    replacement = jnp.where(salt, jnp.asarray(high, x.dtype), jnp.asarray(low, x.dtype))
    out[name] = jnp.where(hit, replacement, x)
  return out


def per_sample_quality(inputs: Inputs, std, *, key: jax.Array,
                       order: Sequence[str]) -> tuple[dict[str, jax.Array], jax.Array]:
  """Degrades one uniformly chosen modality per sample with Gaussian noise of `std`.

  This is per-sample quality variation: every sample has exactly one low-quality modality, and
  which one varies across samples, so a fusion rule must weigh modalities per sample.

  Args:
    inputs: `{name: float [B, ...]}`; all modalities share the batch size B.
    std: noise standard deviation for the degraded modality (>= 0, may be traced).
    key: PRNG key.
    order: the modality names in the order of the returned indicator's rows.

  Returns:
    `(corrupted inputs, degraded bool [M, B])`, `degraded[m, b]` True where sample b's modality
    `order[m]` was degraded (exactly one True per column).

  Raises:
    KeyError: a name in `order` is not in `inputs`. ValueError: batch sizes differ, `std` is
      negative, NaN or infinite, or a modality has no batch axis or NaN or infinite values.
  """
  _check_key(key)
  _check_nonnegative(std, 'std')
  chosen = _select(inputs, order)
  _check_values(inputs, chosen)
  sizes = {name: jnp.shape(inputs[name])[0] for name in chosen}
  if len(set(sizes.values())) != 1:
    raise ValueError(f'All modalities must share the batch size; got {sizes}.')
  batch = next(iter(sizes.values()))
  pick_key, noise_key = jax.random.split(key)
  picked = jax.random.randint(pick_key, (batch,), 0, len(chosen))
  degraded = picked[None, :] == jnp.arange(len(chosen))[:, None]
  noisy = gaussian_noise(inputs, std, key=noise_key, modalities=chosen)
  out = dict(inputs)
  for index, name in enumerate(chosen):
    x = inputs[name]
    row = degraded[index].reshape((batch,) + (1,) * (jnp.ndim(x) - 1))
    out[name] = jnp.where(row, noisy[name], x)
  return out, degraded


def conflictive_views(inputs: Inputs, labels, *, key: jax.Array, num_classes: int,
                      noise_fraction=0.1, noise_std=0.5, conflict_fraction=0.4,
                      references: Inputs | None = None) -> tuple[dict, dict]:
  """RCML's conflictive test set: noisy views and one view taken from another class.

  The protocol of Xu et al. (AAAI 2024, `data.py` of jiajunsi/RCML: `postprocessing(index,
  addNoise=True, sigma=0.5, ratio_noise=0.1, addConflict=True, ratio_conflict=0.4)`), with
  JAX's random numbers: first `int(noise_fraction B)` samples, drawn without replacement, each
  get Gaussian noise of std `noise_std` on a random subset of their views (its size uniform in
  0 .. V - 1, so never every view); then `int(conflict_fraction B)` samples, drawn again
  independently, each get one random view replaced by that view of the reference sample of
  class `(label + 1) mod num_classes` (so the view now speaks for another class). The
  references default to the first sample of each class in `inputs` (RCML takes the first of
  each class in the whole data set; pass `references` to do the same). Views are taken in
  sorted name order for the draws.

  Args:
    inputs: `{view: float [B, ...]}`, at least two views.
    labels: int `[B]` in [0, num_classes).
    key: PRNG key.
    num_classes: C (static).
    noise_fraction, conflict_fraction: shares of the samples, in [0, 1].
    noise_std: >= 0.
    references: optional `{view: [C, ...]}`: each class's reference row.

  Returns:
    `(corrupted inputs, info)` with `info = {'noisy': {view: bool [B]}, 'conflicting':
    {view: bool [B]}}` (which rows of which view were noised, which were replaced; a replaced
    row's noise is overwritten).

  Raises:
    ValueError: fewer than two views, views of different B, labels of another shape or out of
      range, fractions outside [0, 1], a negative `noise_std`, a class with no sample and no
      `references`, references of the wrong shape. TypeError: non-float views, non-integer
      labels.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> inputs = {'a': jnp.arange(8.0)[:, None], 'b': -jnp.arange(8.0)[:, None]}
    >>> out, info = conflictive_views(inputs, jnp.arange(8) % 2, key=jax.random.key(0),
    ...                               num_classes=2, noise_fraction=0.0, conflict_fraction=0.5)
    >>> int(sum(info['conflicting'][v].sum() for v in ('a', 'b')))
    4
  """
  _check_key(key)
  views, count = _check_views(inputs, 'conflicting views')
  num_classes = checks.check_integer(num_classes, 'num_classes', minimum=2)
  checks.check_labels(labels, num_classes, (count,))
  labels = jnp.asarray(labels)
  for value, name in ((noise_fraction, 'noise_fraction'), (conflict_fraction,
                                                           'conflict_fraction')):
    checks.check_scalar(value, name, low=0, high=1)
  _check_nonnegative(noise_std, 'noise_std')
  if references is None:
    first = _first_of_each_class(labels, num_classes)
    references = {view: jnp.asarray(inputs[view])[first] for view in views}
  else:
    for view in views:
      if view not in references:
        raise KeyError(f'references has no view {view!r}; it must have every view of inputs.')
      expected = (num_classes,) + tuple(jnp.shape(inputs[view])[1:])
      if tuple(jnp.shape(references[view])) != expected:
        raise ValueError(f'references[{view!r}] must have shape {expected} (one row per '
                         f'class); got {tuple(jnp.shape(references[view]))}.')
  num_views = len(views)
  *noise_keys, conflict_key, view_key = jax.random.split(key, 6)
  noised, noisy = _view_subset_noise(inputs, views, count, noise_std, noise_fraction,
                                     *noise_keys)
  conflicted = _first_share(jax.random.permutation(conflict_key, count), conflict_fraction,
                            count)
  replaced_view = jax.random.randint(view_key, (count,), 0, num_views)
  target = (labels + 1) % num_classes
  out, info = dict(inputs), {'noisy': {}, 'conflicting': {}}
  for index, view in enumerate(views):
    x = noised[view]
    extra = (1,) * (x.ndim - 1)
    here = noisy[:, index]
    swap = conflicted & (replaced_view == index)
    x = jnp.where(swap.reshape((-1,) + extra),
                  jnp.asarray(references[view], x.dtype)[target], x)
    out[view] = x
    info['noisy'][view] = here & ~swap
    info['conflicting'][view] = swap
  return out, info


def _check_views(inputs: Inputs, purpose: str) -> tuple[tuple[str, ...], int]:
  """Sorted view names (at least two, finite floats) and their common batch size B."""
  views = tuple(sorted(inputs))
  if len(views) < 2:
    raise ValueError(f'inputs must hold at least two views for {purpose}; got {list(views)}.')
  _check_values(inputs, views)
  count = jnp.shape(inputs[views[0]])[0]
  for view in views:
    if jnp.shape(inputs[view])[0] != count:
      raise ValueError(f'every view must have the same number of samples B: inputs[{views[0]!r}] '
                       f'has {count}, inputs[{view!r}] has {jnp.shape(inputs[view])[0]}.')
  return views, count


def _view_subset_noise(inputs, views, count, std, fraction, noise_key, pick_key, size_key,
                       order_key) -> tuple[dict, jax.Array]:
  """RCML's `addNoise`: `(noised inputs, noisy bool [B, V])` (views in the order `views`)."""
  num_views = len(views)
  chosen = _first_share(jax.random.permutation(pick_key, count), fraction, count)
  sizes = jax.random.randint(size_key, (count,), 0, num_views)
  ranks = jnp.argsort(jnp.argsort(jax.random.uniform(order_key, (count, num_views)), axis=1),
                      axis=1)
  noisy = chosen[:, None] & (ranks < sizes[:, None])                       # [B, V]
  noises = _draw(jax.random.normal, noise_key, [inputs[view] for view in views])
  out = dict(inputs)
  for index, (view, noise) in enumerate(zip(views, noises)):
    x = jnp.asarray(inputs[view])
    here = noisy[:, index].reshape((-1,) + (1,) * (x.ndim - 1))
    out[view] = jnp.where(here, x + jnp.asarray(std, x.dtype) * noise, x)
  return out, noisy


def random_view_noise(inputs: Inputs, std, *, key: jax.Array,
                      sample_fraction=0.5) -> tuple[dict, dict]:
  """Gaussian noise on a random subset of the views of a random share of the samples.

  The noise of RCML's and FUML's noisy test sets (`addNoise(index, ratio, sigma)` in
  jiajunsi/RCML and siyuancncd/FUML `data.py`; FUML, ICML 2025, Table 9 uses ratio 0.5 and
  sigma 0, 1, 5, 10), with JAX's random numbers: `int(sample_fraction B)` samples drawn without
  replacement each get noise `N(0, std^2)` on a random subset of their views whose size is
  uniform in 0 .. V - 1 (so some chosen samples stay clean and none has every view noised).
  With the same key it draws the same noise as `conflictive_views` with
  `conflict_fraction=0`. Views are taken in sorted name order for the draws.

  Args:
    inputs: `{view: float [B, ...]}`, at least two views of the same B.
    std: noise std, >= 0 (may be traced).
    key: PRNG key.
    sample_fraction: share of the samples that may get noise, in [0, 1].

  Returns:
    `(noisy inputs, {view: bool [B]})`: which rows of which view got noise.

  Raises:
    ValueError: fewer than two views, views of different B, non-finite values, a negative
      `std`, `sample_fraction` outside [0, 1]. TypeError: non-float views.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> inputs = {'a': jnp.zeros((8, 2)), 'b': jnp.zeros((8, 3))}
    >>> out, noisy = random_view_noise(inputs, 1.0, key=jax.random.key(0))
    >>> bool((jnp.abs(out['a']).sum(1) > 0).sum() == noisy['a'].sum())
    True
  """
  _check_key(key)
  views, count = _check_views(inputs, 'noise on view subsets')
  _check_nonnegative(std, 'std')
  checks.check_scalar(sample_fraction, 'sample_fraction', low=0, high=1)
  # The key split of `conflictive_views`, so both draw the same noise from the same key.
  out, noisy = _view_subset_noise(inputs, views, count, std, sample_fraction,
                                  *jax.random.split(key, 6)[:4])
  return out, {view: noisy[:, index] for index, view in enumerate(views)}


def _first_share(order: jax.Array, fraction, count: int) -> jax.Array:
  """bool `[B]`: the rows at the first `int(fraction B)` positions of the permutation `order`."""
  if checks.is_concrete(fraction):
    take = int(float(fraction) * count)           # RCML's int(ratio * len(index)), in float64
  else:
    take = jnp.floor(jnp.asarray(fraction, jnp.float32) * count).astype(jnp.int32)
  positions = jnp.zeros(count, jnp.int32).at[order].set(jnp.arange(count, dtype=jnp.int32))
  return positions < take


def _first_of_each_class(labels: jax.Array, num_classes: int) -> jax.Array:
  """The first row of each class; raises when a class has no row (concrete labels)."""
  present = labels[None, :] == jnp.arange(num_classes)[:, None]           # [C, B]

  def find_problem(values):
    missing = [c for c in range(num_classes) if not values[c].any()]
    if missing:
      return (f'labels hold no sample of class(es) {missing}; pass references (one row per '
              'class and view) to build conflicting views.')
    return None

  checks.check_values(find_problem, present)
  return jnp.argmax(present, axis=1)
