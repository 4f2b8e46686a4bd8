"""Missingness protocols as pure functions of a key, and what their "missing rate" means.

"Missing rate 0.5" means different things across the incomplete multi-view literature, and the
same number gives very different masks:

- `'entries'`: the share of missing (sample, view) entries (CPM-Nets, UIMC); at most
  `(V - 1) / V` when every sample keeps a view.
- `'per_view'`: the share of samples each view misses, exactly `floor(N * rate)` per view
  (Wen et al., CDIMC-net); the share of missing entries is then the same number.
- `'samples'`: the share of incomplete samples (COMPLETER's and DCP's experiments).
- `'completer'`: COMPLETER's `eta`, spread over the views: a share `eta / V` of the entries.

`convert_rate` turns one meaning into another (explicitly, with the assumption it needs), and
`MissingSpec` is the frozen record stored with every result. The generators here draw masks
with JAX (fixed shapes, jit- and vmap-able over keys and traced rates); `legacy_mask` replays
the published NumPy generators bit for bit. Masks are bool `[N, V]`, True = present (the
literature's layout; transpose for the fusion rules' `[M, B]`).

Missingness mechanisms (`per_view_mask`'s `scores`): MCAR by default; MAR when `scores` is
computed from an observed view (e.g. its norm, broadcast to every other view, with that view
never removed); MNAR when `scores` is computed from the values that go missing. A positive
`strength` makes entries with higher scores more likely to be removed (Gumbel top-k: the
counts stay exact).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lqmm import checks

__all__ = ['MEANINGS', 'MissingSpec', 'convert_rate', 'incomplete_samples_mask',
           'missing_entries_mask', 'paired_mask', 'per_view_mask']

#: Rate meaning -> description.
MEANINGS = {
    'entries': 'share of missing (sample, view) entries',
    'per_view': 'share of samples each view misses (exactly floor(N * rate) per view)',
    'samples': 'share of incomplete samples',
    'completer': "COMPLETER's eta: a share eta / V of the entries missing",
}


@dataclasses.dataclass(frozen=True)
class MissingSpec:
  """What a mask was drawn with, stored beside every result.

  Attributes:
    protocol: the generator (`'per_view'`, `'samples'`, `'entries'`, `'completer'`, `'dcp'`,
      `'cpm'`, or a published fold set such as `'handwritten_cdimc_0.3'`).
    rate: the protocol's missing rate.
    meaning: what `rate` means (a key of `MEANINGS`).
    min_views: views every sample keeps at least.
    seed: the seed the mask was drawn from (a fold index for published folds).
  """
  protocol: str
  rate: float
  meaning: str
  min_views: int = 1
  seed: int = 0

  def __post_init__(self):
    checks.lookup(MEANINGS, self.meaning, 'rate meaning')
    checks.check_scalar(self.rate, 'rate', low=0, high=1)
    if self.min_views < 0:
      raise ValueError(f'min_views must be >= 0; got {self.min_views}.')

  def to_dict(self) -> dict:
    """The spec as a plain dict (for `results.json` and metric tables)."""
    return dataclasses.asdict(self)


def convert_rate(rate: float, *, source: str, target: str, num_views: int,
                 views_missing_per_incomplete: int | None = None) -> float:
  """The same masks' rate under another meaning.

  `'entries'` and `'per_view'` are the same number; `'completer'` is `V` times it. Between
  `'samples'` and the others the conversion needs how many views an incomplete sample misses,
  `k` (`entries = samples * k / V`): with two views it is 1; otherwise pass
  `views_missing_per_incomplete` (the average, e.g. DCP's draws miss about half).

  Args:
    rate: the rate under `source`.
    source: its meaning (a key of `MEANINGS`).
    target: the meaning wanted.
    num_views: V >= 2.
    views_missing_per_incomplete: `k` for conversions to or from `'samples'`.

  Returns:
    The rate under `target`.

  Raises:
    KeyError: an unknown meaning. TypeError: a non-integer `num_views`.
    ValueError: a rate out of range, V < 2, or a `'samples'`
      conversion with more than two views and no `views_missing_per_incomplete` (or one
      outside `[1, V - 1]`), or a result outside `[0, 1]`.

  Example:
    >>> convert_rate(0.5, source='completer', target='entries', num_views=2)
    0.25
    >>> convert_rate(0.5, source='samples', target='per_view', num_views=2)
    0.25
  """
  checks.lookup(MEANINGS, source, 'rate meaning')
  checks.lookup(MEANINGS, target, 'rate meaning')
  checks.check_scalar(rate, 'rate', low=0, high=1)
  num_views = checks.check_integer(num_views, 'num_views', minimum=2)
  missing_per_incomplete = views_missing_per_incomplete
  if 'samples' in (source, target) and source != target:
    if missing_per_incomplete is None:
      if num_views != 2:
        raise ValueError(
            f"converting 'samples' rates with {num_views} views needs "
            'views_missing_per_incomplete (how many views an incomplete sample misses); the '
            'share of incomplete samples does not fix the share of missing entries.')
      missing_per_incomplete = 1
    checks.check_scalar(missing_per_incomplete, 'views_missing_per_incomplete', low=1,
                        high=num_views - 1)
  to_entries = {'entries': 1.0, 'per_view': 1.0, 'completer': 1 / num_views,
                'samples': (missing_per_incomplete or 1) / num_views}
  result = float(rate) * to_entries[source] / to_entries[target]
  if not 0 <= result <= 1 + 1e-12:
    raise ValueError(f'rate {rate} ({source}) is {result:.4g} as {target}, outside [0, 1].')
  return min(result, 1.0)


def _check_sizes(num_samples, num_views) -> None:
  checks.check_integer(num_samples, 'num_samples', minimum=1)
  checks.check_integer(num_views, 'num_views', minimum=2)


def per_view_mask(key: jax.Array, num_samples: int, num_views: int, rate, *, scores=None,
                  strength=0.0) -> jax.Array:
  """Per-view deletion: each view misses exactly `floor(N * rate)` samples, each sample keeps one.

  The statistics of Wen et al.'s protocol (CDIMC-net; its published Handwritten folds have 600
  of 2,000 missing in each of five views): one view per sample is protected, assigned by a
  random permutation so every view protects `N // V` or `N // V + 1` samples, and each view
  removes its `floor(N * rate)` entries among its unprotected samples (uniformly, or by
  `scores` with `strength`, see the module docstring). This guarantees what Wen et al.'s
  delete-then-repair loop aims at (exact counts, no empty sample) in one draw; it is not a
  replay of their random stream.

  Args:
    key: a typed PRNG key.
    num_samples: N (static).
    num_views: V >= 2 (static).
    rate: in `[0, (V - 1) / V]` at most (exactly: `floor(N rate) <= N - ceil(N / V)`); may be
      traced (then clipped to the feasible range).
    scores: optional `[N, V]` missingness scores (MAR / MNAR); None = MCAR.
    strength: how strongly higher scores are removed first (0 = MCAR).

  Returns:
    bool `[N, V]`, True = present.

  Raises:
    ValueError: sizes or a concrete rate out of range (per-view deletion above `(V - 1) / V`
      would leave a sample empty), `scores` of the wrong shape or not finite, a negative
      `strength`. TypeError: a non-integer size or a bad key.

  Example:
    >>> import jax
    >>> mask = per_view_mask(jax.random.key(0), 10, 2, 0.3)
    >>> (~mask).sum(axis=0).tolist(), bool(mask.any(axis=1).all())
    ([3, 3], True)
  """
  checks.check_key(key)
  _check_sizes(num_samples, num_views)
  checks.check_scalar(rate, 'rate', low=0, high=1)
  feasible = (num_samples - math.ceil(num_samples / num_views)) / num_samples
  if checks.is_concrete(rate) and math.floor(num_samples * float(rate)) > (
      num_samples - math.ceil(num_samples / num_views)):
    raise ValueError(f'rate must lie in [0, {feasible:.4g}] for per-view deletion with '
                     f'N = {num_samples}, V = {num_views} (every sample keeps a view); got '
                     f'{rate!r}.')
  checks.check_scalar(strength, 'strength', low=0)
  shape = (num_samples, num_views)
  if scores is None:
    scores = jnp.zeros(shape, jnp.float32)
  elif tuple(jnp.shape(scores)) != shape:
    raise ValueError(f'scores must have shape {shape} ([N, V]); got {jnp.shape(scores)}.')
  scores = checks.as_floats(scores, 'scores', '[N, V]', rank=2)
  protect_key, drop_key = jax.random.split(key)
  protected_view = jax.random.permutation(protect_key, num_samples) % num_views
  protected = protected_view[:, None] == jnp.arange(num_views)[None, :]
  noise = jax.random.gumbel(drop_key, shape, scores.dtype)
  priority = jnp.where(protected, -jnp.inf, jnp.asarray(strength, scores.dtype) * scores + noise)
  # Rank within each view, highest priority first; the first floor(N rate) go missing.
  rank = jnp.argsort(jnp.argsort(-priority, axis=0), axis=0)
  count = jnp.floor(num_samples * jnp.asarray(rate, jnp.float32) + 1e-6).astype(rank.dtype)
  count = jnp.minimum(count, num_samples - jnp.sum(protected, axis=0))
  return ~(rank < count[None, :])


def missing_entries_mask(key: jax.Array, num_samples: int, num_views: int, rate) -> jax.Array:
  """A share `rate` of the (sample, view) entries missing, every sample keeping a view.

  The statistics CPM-Nets' `get_sn` aims at (its rejection loop accepts a mask within 0.005 of
  the rate; `legacy_mask('cpm', ...)` replays it bit for bit): one view per sample is protected
  (uniformly drawn), then exactly `round(N V rate)` of the other `N (V - 1)` entries are removed
  uniformly at random. Realised statistics: the share of missing entries is `round(N V rate) /
  (N V)`; per-view counts are equal in expectation; a sample is incomplete with probability
  about `1 - (1 - rate V / (V - 1)) ** (V - 1)`.

  Args:
    key: a typed PRNG key.
    num_samples: N (static).
    num_views: V >= 2 (static).
    rate: in `[0, (V - 1) / V]` (every sample keeps a view); may be traced (then clipped).

  Returns:
    bool `[N, V]`, True = present.

  Raises:
    ValueError: sizes or a concrete rate out of range. TypeError: a non-integer size or a bad
      key.

  Example:
    >>> import jax
    >>> mask = missing_entries_mask(jax.random.key(0), 100, 3, 0.3)
    >>> int((~mask).sum()), bool(mask.any(axis=1).all())
    (90, True)
  """
  checks.check_key(key)
  _check_sizes(num_samples, num_views)
  high = (num_views - 1) / num_views
  checks.check_scalar(rate, 'rate', low=0, high=high)
  protect_key, drop_key = jax.random.split(key)
  protected_view = jax.random.randint(protect_key, (num_samples,), 0, num_views)
  protected = protected_view[:, None] == jnp.arange(num_views)[None, :]
  priority = jnp.where(protected, -jnp.inf,
                       jax.random.uniform(drop_key, (num_samples, num_views)))
  rank = jnp.argsort(jnp.argsort(-priority.reshape(-1))).reshape(num_samples, num_views)
  rate = jnp.clip(jnp.asarray(rate, jnp.float32), 0, high)
  count = jnp.round(num_samples * num_views * rate).astype(rank.dtype)
  count = jnp.minimum(count, num_samples * (num_views - 1))
  return ~(rank < count)


def paired_mask(key: jax.Array, num_samples: int, num_views: int, paired_rate) -> jax.Array:
  """Paired / unpaired split: a share of samples has every view, each other sample only one.

  The "paired data ratio" setting (COMPLETER, DCP, partially paired multi-view learning):
  exactly `round(N * paired_rate)` samples are paired (all views present); each of the others
  keeps one view, the views dealt out in turn over a random order so every view keeps
  `U // V` or `U // V + 1` of the `U` unpaired samples. Realised statistics: share of
  incomplete samples `1 - round(N paired_rate) / N`; share of missing entries that times
  `(V - 1) / V`.

  Args:
    key: a typed PRNG key.
    num_samples: N (static).
    num_views: V >= 2 (static).
    paired_rate: the share of paired samples, in `[0, 1]`; may be traced.

  Returns:
    bool `[N, V]`, True = present.

  Raises:
    ValueError: sizes or a concrete rate out of range. TypeError: a non-integer size or a bad
      key.

  Example:
    >>> import jax
    >>> mask = paired_mask(jax.random.key(0), 10, 2, 0.4)
    >>> int(mask.all(axis=1).sum()), mask.sum(axis=1).min().item()
    (4, 1)
  """
  checks.check_key(key)
  _check_sizes(num_samples, num_views)
  checks.check_scalar(paired_rate, 'paired_rate', low=0, high=1)
  rank = jnp.argsort(jax.random.permutation(key, num_samples))
  num_paired = jnp.round(num_samples * jnp.asarray(paired_rate, jnp.float32)).astype(rank.dtype)
  paired = rank < num_paired
  kept_view = (rank - num_paired) % num_views  # dealt in turn over the random order
  single = kept_view[:, None] == jnp.arange(num_views)[None, :]
  return paired[:, None] | single


def incomplete_samples_mask(key: jax.Array, num_samples: int, num_views: int, rate, *,
                            views_missing: int | None = None) -> jax.Array:
  """A share `rate` of incomplete samples: exactly `round(N * rate)` rows miss some views.

  Each incomplete row misses `views_missing` views (uniformly chosen), or, with None, a number
  drawn uniformly from `1 .. V - 1` (with two views: exactly one). The share of missing
  entries is then `rate * k / V` for a fixed `k` (`convert_rate`).

  Args:
    key: a typed PRNG key.
    num_samples: N (static).
    num_views: V >= 2 (static).
    rate: in `[0, 1]`, may be traced.
    views_missing: views an incomplete row misses, in `[1, V - 1]` (static), or None.

  Returns:
    bool `[N, V]`, True = present; every row keeps at least one view.

  Raises:
    ValueError: sizes, `rate` or `views_missing` out of range. TypeError: a bad key.

  Example:
    >>> import jax
    >>> mask = incomplete_samples_mask(jax.random.key(0), 10, 3, 0.4)
    >>> int((~mask.all(axis=1)).sum()), bool(mask.any(axis=1).all())
    (4, True)
  """
  checks.check_key(key)
  _check_sizes(num_samples, num_views)
  checks.check_scalar(rate, 'rate', low=0, high=1)
  if views_missing is not None and not 1 <= views_missing <= num_views - 1:
    raise ValueError(f'views_missing must lie in [1, V - 1] = [1, {num_views - 1}]; got '
                     f'{views_missing!r}.')
  row_key, count_key, view_key = jax.random.split(key, 3)
  rank = jnp.argsort(jax.random.permutation(row_key, num_samples))
  num_incomplete = jnp.round(num_samples * jnp.asarray(rate, jnp.float32)).astype(rank.dtype)
  incomplete = rank < num_incomplete
  if views_missing is None:
    missing = jax.random.randint(count_key, (num_samples,), 1, num_views)
  else:
    missing = jnp.full((num_samples,), views_missing)
  order = jnp.argsort(jax.random.uniform(view_key, (num_samples, num_views)), axis=1)
  position = jnp.argsort(order, axis=1)  # each view's place in the row's random order
  dropped = (position < missing[:, None]) & incomplete[:, None]
  return ~dropped
