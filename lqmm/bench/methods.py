"""What a method is to the harness: the pieces of the shared training step it changes.

Every method of every suite trains through `lqmm.train.fit` with the same step
(`make_train_step`): run the method's `loss` on the batch, take the gradient, hand the method's
transform its extra args, apply the optimizer. A method changes that step in three documented
places and nowhere else:

- the **loss** `(model, batch, context) -> (value, aux)`: it runs the network itself, so input
  masks (modality dropout, a modality trained alone, re-sampled copies), network options (the
  greedy learner's re-balancing) and auxiliary terms (PMR, CML, distillation, ...) all live
  here. `aux` is a dict with optional entries `'outputs'` (the network's outputs, for the
  transform's extra args and the logged metrics), `'extra'` (the method's new state, e.g. QMF's
  loss history) and `'metrics'` (scalars averaged over the epoch);
- the **transform** `(params, order, key) -> optax.GradientTransformationExtraArgs`, chained
  before the optimizer (OGM-GE, AGM, MSLR, the greedy schedule), with `transform_args(aux,
  batch, context) -> dict` supplying its extra args;
- the **hooks** (`Hooks`): the method's initial state, `epoch_start` (state computed from the
  whole training and validation splits before an epoch: G-Blend's weights, PMR's prototypes,
  MSLR's accuracies, the valuation plan), `epoch_rows` (which training rows an epoch visits:
  sample-level re-sampling) and `finish` (statistics of the training split that the fusion
  suite's prediction reads: UNO's).

`network` holds the options of the suite's network (a cosine head, the greedy learner's MMTM
network, the modality a reference run trains alone, the fusion suite's feature-level family;
`'own_init': True` draws the parameters with the network's own initialisers instead of
`lqmm.nn.torch_linear_init`, for modules with embeddings and tokens), and `predict` the
decision rule that the fusion suite scores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lqmm import train


class Info(NamedTuple):
  """What a method's initial state may depend on."""
  num_modalities: int
  num_classes: int
  num_train: int
  features: int | None = None
  teachers: jax.Array | None = None   # [M, N, D] unimodal teachers' features (one seed)


class EpochData(NamedTuple):
  """The network's outputs on the whole training and validation splits (for `epoch_start`).

  `subset_fused` is `[2^M, N, K]`: the fused logits of the training split with the features of
  the modalities absent from each subset (`lqmm.valuation.subset_masks` order) zeroed at the
  head; None for networks without a shared head. Whatever a hook does not read is removed by
  XLA's dead-code elimination, so computing it costs nothing then.
  """
  train: Any
  train_labels: jax.Array
  validation: Any
  validation_labels: jax.Array
  subset_fused: jax.Array | None = None


class Hooks(NamedTuple):
  """A method's state and when it changes (all optional).

  Attributes:
    init: `Info -> extra`, the method's state at step 0 (default `()`).
    epoch_start: `(extra, EpochData, epoch, key) -> extra`, before every epoch.
    epoch_rows: `extra -> i32[N]`, the training rows of the epoch (default: all, once each).
    finish: `(extra, EpochData) -> extra`, statistics that the fusion suite's `predict` reads,
      fitted on the training split with the parameters being scored (UNO's entropy
      statistics): at every validation and at the test.
    teachers: the method reads the unimodal teachers' features (`Info.teachers`).
  """
  init: Callable[[Info], Any] | None = None
  epoch_start: Callable | None = None
  epoch_rows: Callable | None = None
  finish: Callable | None = None
  teachers: bool = False


class Context(NamedTuple):
  """What a loss reads besides the model and the batch.

  Attributes:
    state: the seed's `TrainState` before the step (`epoch`, `step`, `extra`, `opt_state`).
    key: the step's PRNG key.
    order: the modality order.
  """
  state: train.TrainState
  key: jax.Array
  order: tuple[str, ...]

  @property
  def epoch(self) -> jax.Array:
    return self.state.epoch

  @property
  def extra(self):
    return self.state.extra


class Method(NamedTuple):
  """A method as the pieces of the shared step it changes; see the module docstring."""
  loss: Callable
  transform: Callable | None = None
  transform_args: Callable | None = None
  hooks: Hooks = Hooks()
  network: Mapping[str, Any] = {}
  predict: Callable | None = None


def make_train_step(method: Method, order: tuple[str, ...]):
  """`(state, batch, key) -> (state, metrics)` for `lqmm.train.fit`, with `method`'s pieces."""

  def train_step(state: train.TrainState, batch, key):
    context = Context(state, key, order)

    def objective(params):
      return method.loss(state.model(params), batch, context)

    (value, aux), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    aux = jax.lax.stop_gradient(aux)
    args = {} if method.transform_args is None else method.transform_args(aux, batch, context)
    state = state.apply_gradients(grads, **args)
    if 'extra' in aux:
      state = state.replace(extra=aux['extra'])
    return state, {'loss': value, **aux.get('metrics', {})}

  return train_step


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """`[...]` mean cross-entropy over the batch of `[..., B, K]` logits (labels `[B]` broadcast)."""
  per_sample = optax.softmax_cross_entropy_with_integer_labels(
      logits, jnp.broadcast_to(labels, logits.shape[:-1]))
  return jnp.mean(per_sample, axis=-1)


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """`[...]` accuracy of `[..., B, K]` logits (labels `[B]` broadcast)."""
  predictions = jnp.argmax(logits, -1)
  return jnp.mean(predictions == jnp.broadcast_to(labels, predictions.shape), axis=-1)
