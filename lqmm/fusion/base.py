"""The generic fusion-rule API: `FusionRule`, `fuse` and `stack_modalities`.

A fusion rule is a pair of pure functions (optax style):

- `combine(a, b)`: fuses two modalities' outputs `[..., K]` into one `[..., K]`, broadcasting over
  leading dims;
- `identity_like(a)`: the rule's identity element shaped like `a`, i.e. what a missing modality
  contributes (`combine(a, identity_like(a)) == a`).

`fuse(rule, x, mask)` reduces the modality axis 0 of `x: [M, ..., K]`. Missing modalities
(`mask == False`) are replaced by the identity, never branched on, so shapes stay static and a
changing mask does not retrace. The reduction is a balanced tree of `combine` calls (depth
ceil(log2 M)), which equals a left fold for associative rules.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks

__all__ = ['FusionRule', 'apply_mask', 'fuse', 'jit_reusing_output', 'stack_modalities',
           'tree_reduce']


class FusionRule(NamedTuple):
  """A decision-level fusion rule as a pair of pure functions.

  Attributes:
    combine: `(a [..., K], b [..., K]) -> [..., K]`, fusing two modalities.
    identity_like: `a [..., K] -> [..., K]`, the identity element shaped like `a`.
  """
  combine: Callable[[jax.Array, jax.Array], jax.Array]
  identity_like: Callable[[jax.Array], jax.Array]


def apply_mask(rule: FusionRule, x, mask: jax.Array | None):
  """Replaces missing modalities of `x [M, ..., K]` by the rule's identity element.

  `x` may be an array or a pytree of arrays that share their leading `[M, ...]` dims (for
  example `nig.NIG`); every leaf is masked.

  Args:
    rule: the fusion rule whose identity stands in for a missing modality.
    x: stacked per-modality outputs `[M, ..., K]` (or a pytree of them).
    mask: bool `[M, ...]`, True where the modality is present, or None (all present).

  Returns:
    Like `x`, equal to `x` where present and to the identity where missing.

  Raises:
    ValueError: a leaf of `x` has fewer than 2 dims or M = 0, or `mask` does not have shape
      `leaf.shape[:-1]`. TypeError: a leaf of `x` is not floating-point.

  Values are not checked here: a missing modality's entries are replaced whatever they hold,
  and the rule's `combine` checks the values that remain.
  """
  leaves = jax.tree.leaves(x)
  for leaf in leaves:
    checks.check_stacked(leaf, 'x')
  if mask is None:
    return x
  for leaf in leaves:
    checks.check_mask(mask, jnp.shape(leaf)[:-1])
  masked = jax.tree.map(lambda value, identity: jnp.where(mask[..., None], value, identity),
                        x, rule.identity_like(x))
  for leaf in jax.tree.leaves(masked):
    if jnp.issubdtype(leaf.dtype, jnp.inexact):
      checks.check_values(
          lambda values: ('x holds NaN in a present modality (missing ones may hold anything); '
                          'mark it missing in the mask or fix the input.'
                          if np.any(np.isnan(values)) else None), leaf)
  return masked


def tree_reduce(combine: Callable, x):
  """Reduces axis 0 of `x` with a balanced tree of `combine` calls.

  Args:
    combine: an associative binary function on `[..., K]` arrays (or pytrees of them).
    x: `[M, ..., K]` with M >= 1, or a pytree of such arrays sharing M.

  Returns:
    `[..., K]`, `combine(...combine(x[0], x[1])..., x[M-1])` up to association order.

  Raises:
    ValueError: a leaf of `x` has no modality axis or M = 0. TypeError: a non-floating leaf.
  """
  for leaf in jax.tree.leaves(x):
    checks.check_stacked(leaf, 'x', rank=1)
  size = jax.tree.leaves(x)[0].shape[0]
  while size > 1:
    pairs = size // 2
    combined = combine(jax.tree.map(lambda leaf: leaf[0:2 * pairs:2], x),
                       jax.tree.map(lambda leaf: leaf[1:2 * pairs:2], x))
    if size % 2:
      combined = jax.tree.map(lambda head, leaf: jnp.concatenate([head, leaf[2 * pairs:]], 0),
                              combined, x)
    x, size = combined, pairs + size % 2
  return jax.tree.map(lambda leaf: leaf[0], x)


def fuse(rule: FusionRule, x, mask: jax.Array | None = None):
  """Fuses stacked modality outputs with `rule`, skipping missing modalities.

  Args:
    rule: a `FusionRule`.
    x: `[M, ..., K]`, modality axis first, class axis last.
    mask: optional bool `[M, ...]`, True = present. Rows where every modality is missing
      return the rule's identity element.

  Returns:
    The fused output `[..., K]`.

  Raises:
    ValueError: `x` has fewer than 2 dims or M = 0, `mask` has the wrong shape, or the rule's
      `combine` rejects the values. TypeError: `x` is not floating-point.

  Example:
    >>> import jax.numpy as jnp
    >>> from lqmm.fusion import base, dempster_shafer
    >>> alpha = jnp.array([[[3., 1.]], [[1., 2.]]])  # [M=2, B=1, K=2]
    >>> [round(v, 4) for v in base.fuse(dempster_shafer.RULE, alpha)[0].tolist()]
    [3.0, 2.0]
  """
  return tree_reduce(rule.combine, apply_mask(rule, x, mask))


def jit_reusing_output(function: Callable) -> Callable:
  """`jax.jit(function)` whose calls can write the result into an earlier result's memory.

  The returned `call(*args, out=None)` is `jax.jit(function)(*args)`; with `out` (a result of an
  earlier call, same shapes and dtypes) it donates `out` and returns the new result in its
  buffers, so `out` is invalid afterwards. For fusing large batches one chunk after another: on
  the CPU a fresh multi-megabyte result is new memory from the operating system on every call,
  and faulting its pages in costs about as much as a memory-bound rule itself
  (`benchmarks/fusion_speed.py`). Bind hyper-parameters first (`functools.partial`).

  Args:
    function: a pure function of arrays, e.g. `dempster_shafer.fuse`.

  Returns:
    `call(*args, out=None)`.

  Raises (from `call`):
    ValueError: `out` does not have the result's structure, shapes and dtypes (donation would
      silently not happen).

  Example:
    >>> import jax.numpy as jnp
    >>> from lqmm.fusion import dempster_shafer
    >>> fuse = jit_reusing_output(dempster_shafer.fuse)
    >>> fused = None
    >>> for chunk in (jnp.full((2, 3, 2), 2.), jnp.full((2, 3, 2), 3.)):
    ...   fused = fuse(chunk, out=fused)  # the previous result's memory is reused
    >>> fused[0]
    Array([7., 7.], dtype=float32)
  """
  plain = jax.jit(function)
  into = jax.jit(lambda out, *args: function(*args), donate_argnums=0, keep_unused=True)

  def call(*args, out=None):
    if out is None:
      return plain(*args)
    expected = plain.eval_shape(*args)  # cached after the first call with these shapes

    def layout(tree):
      return jax.tree.structure(tree), [(tuple(jnp.shape(leaf)), jnp.dtype(leaf.dtype))
                                        for leaf in jax.tree.leaves(tree)]

    if layout(out) != layout(expected):
      raise ValueError(f'out must have the shapes and dtypes of the result, {layout(expected)[1]}'
                       f'; got {layout(out)[1]}.')
    return into(out, *args)

  return functools.wraps(function)(call)


def stack_modalities(tree: Mapping[str, jax.Array], order: Sequence[str],
                     name: str = 'tree') -> jax.Array:
  """Stacks a dict of per-modality arrays along a new leading axis in an explicit order.

  Args:
    tree: `{modality: array}`; every array must have the same shape.
    order: the modality names in stacking order (from the config); never dict order.
    name: the argument name used in error messages.

  Returns:
    `[M, ...]` with `M = len(order)`.

  Raises:
    KeyError: a name in `order` is not in `tree`.
    ValueError: `order` is empty or the arrays' shapes differ.
  """
  if not order:
    raise ValueError(f'order must name at least one modality of {name}; got {order!r}.')
  missing = [key for key in order if key not in tree]
  if missing:
    raise KeyError(f'{name} has no modality {missing[0]!r}; it has {sorted(tree)}.')
  shapes = {key: jnp.shape(tree[key]) for key in order}
  if len(set(shapes.values())) > 1:
    raise ValueError(f'All modalities of {name} must have the same shape to stack; got {shapes}.')
  dtypes = {key: jnp.result_type(tree[key]).name for key in order}
  if len(set(dtypes.values())) > 1:
    raise TypeError(f'All modalities of {name} must have the same dtype to stack; got {dtypes}.')
  return jnp.stack([tree[key] for key in order], axis=0)
