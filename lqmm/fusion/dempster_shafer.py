"""Dempster-Shafer combination of Dirichlet opinions (Trusted Multi-view Classification).

Subjective logic maps a Dirichlet `Dir(alpha)` over K classes, with evidence `e = alpha - 1 >= 0`
and strength `S = sum_k alpha_k`, to an opinion of beliefs and an uncertainty mass:

    b_k = e_k / S,        u = K / S,        sum_k b_k + u = 1.

The reduced Dempster rule combines two opinions as

    b_k = (b1_k b2_k + b1_k u2 + b2_k u1) / (1 - C),   u = u1 u2 / (1 - C),
    C = sum_{i != j} b1_i b2_j   (the conflict),

and maps back with `S = K / u`, `e_k = b_k S`. The conflict cancels between `b_k` and `S`, which
leaves a per-class product: with `r_k = 1 + e_k / K`,

    e_k(fused) = K * (r1_k * r2_k - 1),   i.e.   log r_k(fused) = log r1_k + log r2_k.

So the rule is associative and commutative, its identity is zero evidence (the vacuous opinion,
`alpha = 1`, which is what a missing modality contributes), and fusing M modalities is one sum
in log space,

    e_k(fused) = K * expm1(sum_m log1p(e_mk / K)),

which needs no fold, has no intermediate overflow or underflow (a fold of the original formulas
underflows `u1 u2 ...` after a few confident modalities), and costs O(M K) per sample.

`fuse` evaluates the same product without logarithms where it can: with `x_mk = e_mk / K`, the
excess `q_k = prod_m (1 + x_mk) - 1` is a balanced tree of `q = a + b + a b`, in which every term
is non-negative (no cancellation, so relative accuracy holds for tiny evidence too), and
`alpha = 1 + K q`. That is two multiply-adds per input instead of a `log1p`, which makes the
rule memory-bound on a CPU (`benchmarks/fusion_speed.py`). Only when some fused evidence of the
batch exceeds `max_evidence` (or the product leaves the dtype's range) does the call take the
log-space path above, and then only for the rows that need it (a `lax.cond`; under `jax.vmap` it
becomes a select, so both are computed). Each row's value therefore depends on that row alone.

Saturation. The fused evidence grows like a product over modalities and can exceed the dtype's
range (64 modalities of evidence 31 with K = 2 give about 1e78; float32 ends at 3.4e38), which
would make the evidential losses and their gradients infinite or NaN. `fuse` and `combine`
therefore saturate: where the largest fused evidence of a row would exceed `max_evidence`
(default `sqrt(finfo(dtype).max)`, 1.8e19 in float32 and 1.3e154 in float64), the row's whole
evidence vector is scaled down, in log space, so that its largest entry equals `max_evidence`.
Scaling keeps the beliefs' proportions, hence the expected probabilities `alpha / S` up to the
`+1` of each `alpha` (a relative change below `K / max_evidence`), the predicted class and the
ordering of classes; the uncertainty `K / S` stays below `K / max_evidence`, i.e. zero for any
practical purpose. Rows below the threshold are computed exactly as before (bit for bit). The
evidential losses and their gradients stay finite on saturated rows (tested up to M = 64
modalities of evidence 1e4). `max_evidence=float('inf')` turns saturation off (then an
overflow raises on concrete inputs and is `+inf` under `jax.jit`); `fuse_log_evidence` gives the
exact fused evidence in log space and `fuse_opinion` the exact beliefs and uncertainty, both
finite for any number of modalities.

References:
  Han, Zhang, Fu, Zhou. "Trusted Multi-View Classification." ICLR 2021.
  Jøsang. "Subjective Logic." Springer 2016 (the reduced Dempster rule).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm.fusion import base

__all__ = ['RULE', 'combine', 'expected_probability', 'fuse', 'fuse_log_evidence',
           'fuse_opinion', 'identity_like', 'opinion']


def _log_ratio(alpha: jax.Array) -> jax.Array:
  """`log r_k = log1p(e_k / K)`, the additive form of an opinion."""
  num_classes = alpha.shape[-1]
  return jnp.log1p((alpha - 1) / num_classes)


def _max_log_evidence(max_evidence, dtype) -> jax.Array:
  """`log(max_evidence)`; the default is `sqrt(finfo(dtype).max)`."""
  if max_evidence is None:
    return jnp.asarray(0.5 * np.log(jnp.finfo(dtype).max.astype(np.float64)), dtype)
  checks.check_scalar(max_evidence, 'max_evidence', low=0, low_open=True, allow_inf=True)
  return jnp.log(jnp.asarray(max_evidence, dtype))


def _log_evidence(log_ratio: jax.Array, num_classes: int) -> jax.Array:
  """`log e = log K + L + log(1 - exp(-L))`, finite for any `L > 0`; `-inf` where `L = 0`.

  The logarithm's argument is kept away from 0 where `L = 0` (double `where`), so the gradient
  stays finite there.
  """
  positive = log_ratio > 0
  safe = jnp.where(positive, log_ratio, 1)
  return jnp.where(positive, np.log(num_classes) + safe + jnp.log(-jnp.expm1(-safe)), -jnp.inf)


def _alpha_from_log_ratio(log_ratio: jax.Array, max_evidence) -> jax.Array:
  """`1 + K expm1(L)` with the documented saturation at `max_evidence`, `[..., K]`.

  With `x >= 0` the row's excess of its largest log evidence over `log(max_evidence)` (0 for
  a row below it), the scaled evidence `exp(-x) K expm1(L_k)` is computed as
  `K (expm1(L_k - x) - expm1(-x))`: never overflowing, one `expm1` per entry, and for `x = 0`
  exactly `K expm1(L_k)` (bit for bit the unsaturated rule).
  """
  num_classes = log_ratio.shape[-1]
  log_largest = _log_evidence(jnp.max(log_ratio, axis=-1, keepdims=True), num_classes)
  excess = jnp.maximum(log_largest - _max_log_evidence(max_evidence, log_ratio.dtype), 0)
  return 1 + num_classes * (jnp.expm1(log_ratio - excess) - jnp.expm1(-excess))


def _fused_product(alpha: jax.Array, mask: jax.Array | None) -> tuple[jax.Array, float]:
  """`1 + K q_k` with `q_k = prod_m (1 + e_mk / K) - 1` over present modalities, `[..., K]`.

  `q` is a balanced tree of `a + b + a b`, each step capped at `finfo.max / (4 K)`, so that the
  result stays finite; returns it with the value a capped entry takes (`1 + K cap`), which
  marks a product outside the dtype's range.
  """
  num_classes = alpha.shape[-1]
  ratio = (alpha - 1) / num_classes
  if mask is not None:
    ratio = jnp.where(mask[..., None], ratio, 0)
  cap = float(jnp.finfo(alpha.dtype).max) / (4 * num_classes)

  def combine_excess(a, b):  # (1 + a)(1 + b) - 1; the cap keeps a * b's overflow out of it.
    return jnp.minimum(a + b + a * b, cap)

  excess = base.tree_reduce(combine_excess, ratio)
  return 1 + num_classes * excess, float(np.asarray(1 + num_classes * cap, alpha.dtype))


def _check_fused(fused: jax.Array, name: str) -> jax.Array:
  """Raises when concrete fused evidence overflowed its dtype; returns `fused`."""
  checks.check_fused(fused, name, remedy=(
      'keep the default saturation (max_evidence=None), bound the evidence, or use '
      'dempster_shafer.fuse_opinion or fuse_log_evidence, which stay finite'))
  return fused


def identity_like(alpha: jax.Array) -> jax.Array:
  """The rule's identity element: zero evidence, `alpha = 1` (the vacuous opinion).

  Only the shape and dtype of `alpha [..., K]` are read.
  """
  checks.check_rank_at_least(alpha, 1, 'alpha', '[..., K]')
  return jnp.ones_like(alpha)


def combine(alpha_a: jax.Array, alpha_b: jax.Array, *, max_evidence=None) -> jax.Array:
  """Combines two Dirichlet opinions with the reduced Dempster rule.

  Equal to TMC's `DS_Combin_two`; commutative and associative, with identity `alpha = 1`.

  Args:
    alpha_a: Dirichlet parameters `[..., K]`, `alpha = evidence + 1 >= 1`.
    alpha_b: Dirichlet parameters `[..., K]`, broadcastable with `alpha_a`.
    max_evidence: where the fused evidence saturates (see the module docstring); None is
      `sqrt(finfo(dtype).max)`, `float('inf')` turns saturation off.

  Returns:
    The fused Dirichlet parameters `[..., K]` (broadcast shape).

  Inputs in bfloat16 or float16 are upcast to float32: fusion runs in at least float32.

  Raises:
    ValueError: the class axes differ, the leading dims do not broadcast, concrete inputs
      hold NaN, infinity or alpha < 1, `max_evidence` is not positive, or (with saturation
      off) the concrete fused evidence overflowed the dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> combine(jnp.array([3., 1.]), jnp.array([1., 2.]))
    Array([3., 2.], dtype=float32)
  """
  alpha_a, alpha_b = checks.as_pair(alpha_a, alpha_b, 'alpha_a', 'alpha_b',
                                    validate=checks.as_dirichlet)
  log_ratio = _log_ratio(alpha_a) + _log_ratio(alpha_b)
  return _check_fused(_alpha_from_log_ratio(log_ratio, max_evidence), 'alpha_a and alpha_b')


RULE = base.FusionRule(combine=combine, identity_like=identity_like)


def _checked(alpha: jax.Array, mask: jax.Array | None) -> jax.Array:
  """`alpha [M, ..., K]` validated (and upcast), with `mask` checked against it."""
  alpha = checks.as_dirichlet(alpha, 'alpha', '[M, ..., K]', rank=2)
  if mask is not None:
    checks.check_mask(mask, jnp.shape(alpha)[:-1])
  return alpha


def _fused_log_ratio(alpha: jax.Array, mask: jax.Array | None) -> jax.Array:
  """`sum_m log1p(e_mk / K)` over present modalities, `[..., K]`."""
  return _sum_log_ratio(_checked(alpha, mask), mask)


def _sum_log_ratio(alpha: jax.Array, mask: jax.Array | None) -> jax.Array:
  """`sum_m log1p(e_mk / K)` over present modalities of an already checked `alpha`."""
  if mask is not None:
    # Masking the input (not the log-ratio) lets XLA fuse the mask into the reduction (3x
    # faster at B = 1e6 on CPU) and ignores whatever a missing modality's entries hold.
    alpha = jnp.where(mask[..., None], alpha, 1)
  return jnp.sum(_log_ratio(alpha), axis=0)


def fuse(alpha: jax.Array, mask: jax.Array | None = None, *, max_evidence=None) -> jax.Array:
  """Fuses M Dirichlet opinions in closed form; missing modalities count as zero evidence.

  Equals TMC's `DS_Combin` (a left fold of `DS_Combin_two`) over the present modalities.

  Args:
    alpha: Dirichlet parameters `[M, ..., K]`, modality axis first, `alpha >= 1`.
    mask: optional bool `[M, ...]`, True = present. All-missing rows return `alpha = 1`.
    max_evidence: where the fused evidence saturates: a row whose largest fused evidence would
      exceed it is scaled down to it (see the module docstring). None is
      `sqrt(finfo(dtype).max)` (1.8e19 in float32); `float('inf')` turns saturation off.

  Returns:
    Fused Dirichlet parameters `[..., K]`, exact up to rounding below the saturation, always
    finite with saturation on.

  Raises:
    ValueError: `alpha` has fewer than 2 dims, `mask` has the wrong shape, concrete `alpha`
      holds NaN, infinity or values below 1, `max_evidence` is not positive, or, with
      saturation off, the fused evidence overflowed the dtype (the fused evidence grows like a
      product over modalities: 64 modalities of evidence 31 with K = 2 give about 1e78). That
      overflow check needs concrete values: under `jax.jit` it is skipped and an overflowed
      entry is `+inf` (see `lqmm.debug`).

  Example:
    >>> import jax.numpy as jnp
    >>> alpha = jnp.array([[[3., 1.]], [[1., 2.]], [[9., 9.]]])  # [M=3, B=1, K=2]
    >>> fuse(alpha, mask=jnp.array([[True], [True], [False]]))
    Array([[3., 2.]], dtype=float32)
  """
  checks.check_stacked(alpha, 'alpha')
  alpha = _checked(alpha, mask)
  product, overflow = _fused_product(alpha, mask)
  limit = jnp.exp(_max_log_evidence(max_evidence, alpha.dtype))

  def in_range(fused):  # False for NaN, saturated and overflowed entries.
    return (fused - 1 <= limit) & (fused < overflow)

  # The barrier makes XLA write the product once (one pass over the input) and read it for
  # the check; the check reads only the largest entry (NaN propagates into it).
  product = jax.lax.optimization_barrier(product)

  def log_space(product):
    saturated = _alpha_from_log_ratio(_sum_log_ratio(alpha, mask), max_evidence)
    return jnp.where(jnp.all(in_range(product), axis=-1, keepdims=True), product, saturated)

  largest = jnp.max(product, initial=-np.inf)  # an empty batch is in range
  fused = jax.lax.cond(in_range(largest), lambda product: product, log_space, product)
  return _check_fused(fused, 'alpha')


def fuse_log_evidence(alpha: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """The exact fused evidence of `fuse` in log space, `log e_k [..., K]`, never saturated.

  `log e_k = log K + L_k + log(1 - exp(-L_k))` with `L_k = sum_m log1p(e_mk / K)`: finite for
  any number of modalities; `-inf` where the fused evidence is zero.

  Args:
    alpha: Dirichlet parameters `[M, ..., K]`, `alpha >= 1`.
    mask: optional bool `[M, ...]`, True = present.

  Returns:
    `[..., K]` log fused evidence.

  Raises:
    ValueError: as for `fuse`.

  Example:
    >>> import jax.numpy as jnp
    >>> alpha = jnp.full((64, 1, 2), 32.)  # 64 modalities of evidence 31: e ~ 1e78
    >>> [round(value, 1) for value in fuse_log_evidence(alpha)[0].tolist()]
    [180.1, 180.1]
  """
  log_ratio = _fused_log_ratio(alpha, mask)
  return _log_evidence(log_ratio, log_ratio.shape[-1])


def opinion(alpha: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Subjective-logic opinion of a Dirichlet: beliefs `e / S` and uncertainty `K / S`.

  Args:
    alpha: Dirichlet parameters `[..., K]`, `alpha >= 1`.

  Returns:
    `(belief [..., K], uncertainty [...])`, with `belief.sum(-1) + uncertainty == 1`.

  Raises:
    ValueError: concrete `alpha` holds NaN, infinity or values below 1.

  Example:
    >>> import jax.numpy as jnp
    >>> belief, uncertainty = opinion(jnp.array([3., 1.]))
    >>> belief, uncertainty
    (Array([0.5, 0. ], dtype=float32), Array(0.5, dtype=float32))
  """
  alpha = checks.as_dirichlet(alpha)
  strength = jnp.sum(alpha, axis=-1, keepdims=True)
  num_classes = jnp.shape(alpha)[-1]
  return (alpha - 1) / strength, num_classes / strength[..., 0]


def fuse_opinion(alpha: jax.Array,
                 mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """The opinion of `fuse(alpha, mask)`, computed without overflow for any number of modalities.

  With `L_k = sum_m log1p(e_mk / K)` and `c = max_k L_k`, the fused beliefs and uncertainty are

      b_k = exp(L_k - c) (1 - exp(-L_k)) / Z,   u = exp(-c) / Z,   Z = exp(-c) + sum_k (...)

  which stays finite when the fused evidence itself would overflow (e.g. 200 confident
  modalities in float32).

  Args:
    alpha: Dirichlet parameters `[M, ..., K]`, `alpha >= 1`.
    mask: optional bool `[M, ...]`, True = present.

  Returns:
    `(belief [..., K], uncertainty [...])`; all-missing rows give `(0, 1)`.

  Raises:
    ValueError: as for `fuse`.
  """
  log_ratio = _fused_log_ratio(alpha, mask)
  shift = jax.lax.stop_gradient(jnp.max(log_ratio, axis=-1, keepdims=True))
  mass = jnp.exp(log_ratio - shift) * -jnp.expm1(-log_ratio)
  vacuous = jnp.exp(-shift)
  total = vacuous + jnp.sum(mass, axis=-1, keepdims=True)
  return mass / total, (vacuous / total)[..., 0]


def expected_probability(alpha: jax.Array) -> jax.Array:
  """The Dirichlet mean `alpha / S`, `[..., K]` (the class probabilities TMC predicts with)."""
  alpha = checks.as_dirichlet(alpha)
  return alpha / jnp.sum(alpha, axis=-1, keepdims=True)
