"""`TrainState`: one seed's parameters, optimizer state and method state, as one pytree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from flax import struct


class TrainState(struct.PyTreeNode):
  """What one seed's training carries from step to step (the flax examples' `TrainState`).

  The arrays are pytree leaves (so a state can be vmapped over seeds, sharded and checkpointed
  with Orbax); the model's NNX graph definition and the optax transformation are static fields.

  Attributes:
    step: i32[], optimizer steps taken.
    epoch: i32[], epochs completed (0-based epoch of the running epoch).
    params: the model's parameters (an `nnx.State` or any pytree).
    opt_state: the optimizer's state.
    extra: a method's own state (QMF's loss history, PMR's prototypes, G-Blend's weights,
      teacher features, ...); `()` when the method has none. `epoch_start` hooks update it.
    graphdef: the `nnx.GraphDef` that `model` merges with `params`, or None for plain pytrees.
    tx: the optax transformation (wrapped to accept extra args).
    model_state: the model's variables that are not parameters (BatchNorm's running
      statistics), an `nnx.State`; `()` for models without any. A training step whose
      training-mode forward updates them returns `TrainState.model_variables(model)` from its
      loss function (as aux) and stores it with `state.replace(model_state=...)`.
  """
  step: jax.Array
  epoch: jax.Array
  params: Any
  opt_state: Any
  extra: Any = ()
  graphdef: Any = struct.field(pytree_node=False, default=None)
  tx: Any = struct.field(pytree_node=False, default=None)
  model_state: Any = ()

  @classmethod
  def create(cls, *, params, tx: optax.GradientTransformation, graphdef=None,
             extra: Any = (), model_state: Any = ()) -> TrainState:
    """A fresh state at step 0, epoch 0, with `tx` initialised on `params`.

    Args:
      params: the initial parameters.
      tx: an optax transformation; plain ones are wrapped with
        `optax.with_extra_args_support`, so `apply_gradients` may always pass extra args.
      graphdef: the NNX graph definition of the model (from `nnx.split`), or None.
      extra: the method's initial state.
      model_state: the model's non-parameter variables (`model_variables(model)`), or `()`
        when it has none.
    """
    tx = optax.with_extra_args_support(tx)
    return cls(step=jnp.zeros([], jnp.int32), epoch=jnp.zeros([], jnp.int32), params=params,
               opt_state=tx.init(params), extra=extra, graphdef=graphdef, tx=tx,
               model_state=model_state)

  def apply_gradients(self, grads, **extra_args) -> TrainState:
    """One optimizer step: `tx.update(grads, opt_state, params, **extra_args)`, applied.

    Keyword arguments are the transformation's extra args (per-modality logits for OGM-GE,
    the epoch, ...); transformations that do not take them ignore them.
    """
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params, **extra_args)
    return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                        opt_state=opt_state)

  def model(self, params=None) -> nnx.Module:
    """The NNX model with `params` (default: this state's parameters) and `model_state`.

    The model is a fresh object: a training-mode forward through it (BatchNorm) changes its
    statistics there, not in this state; keep them with `model_variables(model)`.
    """
    if self.graphdef is None:
      raise ValueError('This TrainState has no graphdef; create it with '
                       'TrainState.create(params=..., tx=..., graphdef=graphdef).')
    params = self.params if params is None else params
    if isinstance(self.model_state, tuple) and not self.model_state:
      return nnx.merge(self.graphdef, params)
    # Fresh variables (copy=True): a training-mode forward inside `jax.grad` may then update
    # the statistics, which it may not do to variables made at an outer trace level.
    return nnx.merge(self.graphdef, params, self.model_state, copy=True)

  @staticmethod
  def model_variables(model: nnx.Module) -> nnx.State:
    """`model`'s non-parameter variables (BatchNorm statistics), what `model_state` holds."""
    return nnx.state(model, nnx.Not(nnx.Param))


def initializer(make_model: Callable[[], nnx.Module], tx: optax.GradientTransformation, *,
                init_params: Callable, extra: Any = ()) -> Callable[[jax.Array], TrainState]:
  """`key -> TrainState` for `lqmm.train.fit`: the model's parameters drawn by `init_params`.

  The model is built once, abstractly (`nnx.eval_shape`), for its graph definition and
  parameter shapes; each seed then draws its parameters with `init_params(abstract, key=key)`
  (e.g. `lqmm.nn.torch_linear_init`, one random draw for the whole tree).

  Args:
    make_model: builds the NNX model (its parameters' initial values are never computed; it is
      built once for real only when it has non-parameter variables, whose values seed
      `model_state`).
    tx: the optax transformation.
    init_params: `(abstract params, *, key) -> params`.
    extra: the method state every seed starts from.
  """
  graphdef, abstract, rest = nnx.split(nnx.eval_shape(make_model), nnx.Param, ...)
  # Non-parameter variables (BatchNorm statistics) start from the model's own initial values.
  model_state = TrainState.model_variables(make_model()) if jax.tree.leaves(rest) else ()

  def init(key):
    return TrainState.create(params=init_params(abstract, key=key), tx=tx, graphdef=graphdef,
                             extra=extra, model_state=model_state)

  return init
