"""Evidential heads (non-negative evidence per class) and a per-view evidential classifier."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lqmm import checks
from lqmm import sampling

_ACTIVATIONS = {'softplus': jax.nn.softplus, 'relu': jax.nn.relu, 'exp': jnp.exp,
                # UIMC's heads: softplus(x) ** 2.
                'softplus_squared': lambda x: jnp.square(jax.nn.softplus(x))}
_HIDDEN_ACTIVATIONS = {'relu': jax.nn.relu, 'sigmoid': jax.nn.sigmoid, 'tanh': jnp.tanh}


def torch_linear(in_features: int, out_features: int, *, rngs: nnx.Rngs) -> nnx.Linear:
  """An `nnx.Linear` initialised like `torch.nn.Linear`: weights and bias ~ U(+-1/sqrt(fan_in)).

  Reproductions of PyTorch papers use it so that training starts from the same distribution.
  """
  bound = 1.0 / (in_features ** 0.5)

  def bias_init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return nnx.Linear(in_features, out_features, rngs=rngs,
                    kernel_init=nnx.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform'),
                    bias_init=bias_init)


def module_path(path) -> tuple[tuple, str | None]:
  """Splits a parameter's key path into its owning module's path and its kind.

  Args:
    path: a `jax.tree_util` key path, e.g. from `tree_flatten_with_path` of an `nnx.State`.

  Returns:
    `(module, kind)`: the key names up to the first `'kernel'`, `'bias'` or `'scale'` entry,
    and that entry; `(all names, None)` for a leaf that is none of them.

  Example:
    >>> import jax
    >>> leaves = jax.tree_util.tree_flatten_with_path({'encoder': {'kernel': 0, 'bias': 1}})[0]
    >>> [module_path(path) for path, _ in leaves]
    [(('encoder',), 'bias'), (('encoder',), 'kernel')]
  """
  names = [getattr(entry, 'key', getattr(entry, 'name', None)) for entry in path]
  for index, name in enumerate(names):
    if name in ('kernel', 'bias', 'scale'):
      return tuple(names[:index]), name
  return tuple(names), None


def dense(layer: nnx.Linear, x: jax.Array, compute_dtype=None) -> jax.Array:
  """`layer(x)`, with the matmul in `compute_dtype` (e.g. bfloat16) and a float32 result.

  None runs the layer as it is (its parameters' dtype). The parameters stay float32; only
  the matmul's operands are cast, and it accumulates in float32
  (`preferred_element_type`), so what follows (activations, evidence, fusion) runs in
  float32.

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> layer = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    >>> dense(layer, jnp.ones((4, 3)), jnp.bfloat16).dtype
    dtype('float32')
  """
  if compute_dtype is None:
    return layer(x)
  y = jnp.matmul(x.astype(compute_dtype), layer.kernel[...].astype(compute_dtype),
                 preferred_element_type=jnp.float32)
  return y + jnp.broadcast_to(layer.bias[...].astype(y.dtype), y.shape)


def torch_linear_init(params, *, key: jax.Array):
  """Draws every linear layer's kernel and bias like `torch.nn.Linear`, in one random call.

  `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for a `[fan_in, out]` kernel and its `[out]` bias (a conv
  kernel `[*window, in, out]` has fan_in = prod(window) * in, as in `torch.nn.Conv2d`); a
  normalisation layer's `scale` is 1 and its `bias` 0 (`torch.nn.BatchNorm1d`'s affine): the
  same distribution as `torch_linear`'s initialisers, but from a single `jax.random.uniform`
  draw over all parameters. XLA compiles one random-number generator instead of two per layer,
  which cuts the compile time of a vmapped multi-seed initialisation from seconds to a
  fraction of one on CPU.

  Args:
    params: a pytree of linear-layer parameters (e.g. `nnx.state(model, nnx.Param)`, or its
      `nnx.eval_shape` abstract version), with leaves under 'kernel' and 'bias' path entries,
      and normalisation layers' 'scale' and 'bias'.
    key: PRNG key.

  Returns:
    A pytree like `params` with freshly drawn float32 values.

  Raises:
    ValueError: a leaf is neither a kernel, a bias nor a scale, or a bias has no sibling
      kernel or scale.
  """
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  fan_in, norms = {}, set()
  for path, leaf in leaves:
    module, kind = module_path(path)
    if kind == 'kernel':
      fan_in[module] = math.prod(leaf.shape[:-1])  # conv kernels [..., in, out] too
    elif kind == 'scale':
      norms.add(module)
  bounds, drawn = [], []
  for path, leaf in leaves:
    module, kind = module_path(path)
    if module in norms and module not in fan_in:
      continue
    if kind not in ('kernel', 'bias') or module not in fan_in:
      raise ValueError(f'torch_linear_init expects only linear kernels and biases and '
                       f'normalisation scales and biases; got a leaf at '
                       f'{jax.tree_util.keystr(path)} with shape {leaf.shape}.')
    bounds.append(1.0 / fan_in[module] ** 0.5)
    drawn.append(leaf)
  sampler = functools.partial(jax.random.uniform, minval=-1.0, maxval=1.0)
  pieces = iter(sampling.draw_split(sampler, key, drawn, jnp.float32))
  bounds = iter(bounds)
  values = []
  for path, leaf in leaves:
    module, kind = module_path(path)
    if module in norms and module not in fan_in:
      values.append(jnp.full(leaf.shape, 1.0 if kind == 'scale' else 0.0, jnp.float32))
    else:
      values.append(next(bounds) * next(pieces))
  return jax.tree_util.tree_unflatten(treedef, values)


class EvidentialHead(nnx.Module):
  """An MLP whose output is non-negative class evidence `e = activation(h) >= 0`.

  With no hidden layers it is TMC's per-view classifier: one linear layer and a softplus.

  Args:
    in_features: input width.
    num_classes: K.
    hidden: widths of hidden layers.
    evidence: 'softplus' (TMC), 'relu', 'exp' or 'softplus_squared' (UIMC).
    hidden_activation: between hidden layers: 'relu' (default), 'sigmoid' (UIMC) or 'tanh'.
    compute_dtype: dtype of the matmuls (None: the parameters' float32; `jnp.bfloat16` for
      bfloat16 matmuls with float32 accumulation and float32 evidence; see `dense`).
    rngs: NNX random streams.
  """

  def __init__(self, in_features: int, num_classes: int, *, hidden: Sequence[int] = (),
               evidence: str = 'softplus', hidden_activation: str = 'relu',
               compute_dtype=None, rngs: nnx.Rngs):
    checks.lookup(_ACTIVATIONS, evidence, 'evidence activation')
    checks.lookup(_HIDDEN_ACTIVATIONS, hidden_activation, 'hidden activation')
    self.compute_dtype = _compute_dtype(compute_dtype)
    widths = (in_features, *hidden, num_classes)
    self.layers = nnx.List([torch_linear(a, b, rngs=rngs) for a, b in zip(widths, widths[1:])])
    self.evidence = evidence
    self.hidden_activation = hidden_activation

  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps `[..., in_features]` to evidence `[..., K]` (float32 with a bfloat16
    `compute_dtype`)."""
    for layer in self.layers[:-1]:
      x = _HIDDEN_ACTIVATIONS[self.hidden_activation](dense(layer, x, self.compute_dtype))
    return _ACTIVATIONS[self.evidence](dense(self.layers[-1], x, self.compute_dtype))


def _compute_dtype(dtype):
  """None, or a floating dtype for the matmuls; anything else raises naming the argument."""
  if dtype is None:
    return None
  try:
    value = jnp.dtype(dtype)
  except TypeError:
    raise TypeError(f'compute_dtype must be None or a floating dtype such as jnp.bfloat16; '
                    f'got {dtype!r}.') from None
  if not jnp.issubdtype(value, jnp.floating):
    raise TypeError(f'compute_dtype must be None or a floating dtype such as jnp.bfloat16; '
                    f'got {value}.')
  return value


class MultiViewEvidential(nnx.Module):
  """One evidential head per view (TMC's model); returns stacked evidence `[M, B, K]`.

  Args:
    dims: `{view: input width}`.
    order: the view order of the stacked output (the fusion order).
    num_classes: K.
    hidden: hidden widths of every head.
    evidence: the evidence activation.
    hidden_activation: the activation between hidden layers.
    compute_dtype: the heads' matmul dtype (None: float32; `jnp.bfloat16`: bfloat16 matmuls,
      float32 evidence and fusion).
    rngs: NNX random streams.
  """

  def __init__(self, dims: Mapping[str, int], order: Sequence[str], num_classes: int, *,
               hidden: Sequence[int] = (), evidence: str = 'softplus',
               hidden_activation: str = 'relu', compute_dtype=None, rngs: nnx.Rngs):
    checks.check_order(order, dims, 'dims', kind='view')
    self.order = tuple(order)
    self.heads = nnx.Dict({view: EvidentialHead(dims[view], num_classes, hidden=hidden,
                                                evidence=evidence,
                                                hidden_activation=hidden_activation,
                                                compute_dtype=compute_dtype, rngs=rngs)
                           for view in self.order})

  def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
    """Maps `{view: [B, d_view]}` to evidence `[M, B, K]` in `order`."""
    checks.check_order(self.order, inputs, 'inputs', kind='view')
    return jnp.stack([self.heads[view](inputs[view]) for view in self.order])
