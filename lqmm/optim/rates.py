"""Per-modality learning rates: fixed multipliers, and MSLR's validation-trend adaptation.

`modality_learning_rates` scales each modality's updates by a fixed factor (an `optax.partition`
of `optax.scale`); chained after the optimizer it multiplies that modality's learning rate.

`scale_by_validation_trend` is the adaptive rule of modality-specific learning rates (MSLR,
Yao and Mihalcea 2022) as the AGM code base runs it: modality m's gradient is multiplied by
`initial_m * ratio_m`, where `ratio_m = 1` for the first `window` epochs and afterwards
`acc_m / mean(acc_m over the previous window epochs)` with `acc_m` the unimodal validation
accuracy of the epoch that just ended. A modality that has stopped improving gets a smaller rate.

Sun et al.'s adaptive tracking factor (IEEE SPL 2021) has no public code; it is not implemented.

References:
  Yao and Mihalcea, "Modality-specific Learning Rates for Effective Multimodal Additive
  Late-fusion", Findings of ACL 2022.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lqmm import checks
from lqmm.optim import extra_args

__all__ = ['ValidationTrendState', 'modality_learning_rates', 'scale_by_validation_trend',
           'validation_trend']


def modality_learning_rates(param_labels: Any, multipliers: Mapping[str, float], *,
                            default: float = 1.0) -> optax.GradientTransformation:
  """Scales the updates of each labelled group by its multiplier.

  Args:
    param_labels: label pytree (e.g. from `lqmm.optim.modality_labels`).
    multipliers: `{label: factor}`; labels not listed get `default`.
    default: the factor of unlisted labels.

  Returns:
    An `optax.partition` of `optax.scale`s; chain it after the optimizer,
    `optax.chain(optax.adam(1e-3), modality_learning_rates(labels, {'audio': 0.5}))`.

  Raises:
    ValueError: a multiplier names a label that no leaf has, or a multiplier or `default` is
      negative, NaN or infinite (a negative rate would ascend the loss).
  """
  if callable(param_labels):
    raise ValueError('param_labels must be a label pytree here (its labels are needed).')
  found = set(jax.tree.leaves(param_labels))
  unknown = set(multipliers) - found
  if unknown:
    raise ValueError(f'multipliers name labels {sorted(unknown)} that no leaf has; the labels '
                     f'are {sorted(found)}.')
  checks.check_scalar(default, 'default', low=0)
  for label, multiplier in multipliers.items():
    checks.check_scalar(multiplier, f'multipliers[{label!r}]', low=0)
  transforms = {label: optax.scale(float(multipliers.get(label, default))) for label in found}
  return optax.partition(transforms, param_labels)


class ValidationTrendState(NamedTuple):
  """State of `scale_by_validation_trend`.

  Attributes:
    memory: `[window, M]` the previous epochs' unimodal validation accuracies (oldest first).
    filled: `i32[]` how many epochs the memory holds (at most `window`).
    last_epoch: `i32[]` the epoch of the last update (-1 before the first).
    ratios: `[M]` the current `acc / mean(memory)` ratios (1 while filling).
  """
  memory: jax.Array
  filled: jax.Array
  last_epoch: jax.Array
  ratios: jax.Array


def scale_by_validation_trend(modality: int, num_modalities: int, *, initial: float = 1.0,
                              window: int = 5) -> optax.GradientTransformationExtraArgs:
  """MSLR for one modality's parameters (use inside `optax.partition`, before the optimizer).

  `update` takes keyword-only extra args `epoch` and `unimodal_accuracy: [M]`, the unimodal
  validation accuracies measured at the end of the previous epoch. The first update of a new
  epoch consumes them (so pass the same values for every step of an epoch); the first epoch's
  values are ignored (there is no previous epoch).

  Args:
    modality: index of this transform's modality.
    num_modalities: M >= 1.
    initial: this modality's initial multiplier (the AGM code: CREMA-D audio 0.9, visual 1.1),
      >= 0. A concrete negative, NaN or infinite value raises; a traced one (under
      `optax.inject_hyperparams`) is not checked.
    window: epochs in the memory (5); it sets the state's shape, so name it in
      `optax.inject_hyperparams(..., static_args=('window',))`.

  Returns:
    An `optax.GradientTransformationExtraArgs`.

  Raises:
    ValueError: `num_modalities < 1`, `modality` outside `[0, num_modalities)`, `window < 1`,
      or a concrete negative, NaN or infinite `initial`.
  """
  if num_modalities < 1:
    raise ValueError(f'num_modalities must be >= 1; got {num_modalities}.')
  if not 0 <= modality < num_modalities:
    raise ValueError(f'modality must index one of num_modalities={num_modalities} modalities; '
                     f'got {modality}.')
  if window < 1:
    raise ValueError(f'window must be >= 1; got {window}.')
  checks.check_scalar(initial, 'initial', low=0)

  def init_fn(params):
    del params
    return ValidationTrendState(memory=jnp.zeros((window, num_modalities), jnp.float32),
                                filled=jnp.zeros([], jnp.int32),
                                last_epoch=jnp.full([], -1, jnp.int32),
                                ratios=jnp.ones((num_modalities,), jnp.float32))

  def update_fn(updates, state, params=None, *, epoch=None, unimodal_accuracy=None,
                **other_extra_args):
    del params, other_extra_args
    extra_args.require('scale_by_validation_trend', epoch=epoch,
                   unimodal_accuracy=unimodal_accuracy)
    if jnp.shape(unimodal_accuracy) != (num_modalities,):
      raise ValueError(f'unimodal_accuracy must have shape [M={num_modalities}]; got shape '
                       f'{jnp.shape(unimodal_accuracy)}.')
    accuracy = jnp.asarray(unimodal_accuracy, jnp.float32)
    new_epoch = (epoch > state.last_epoch) & (state.last_epoch >= 0)
    full = state.filled >= window
    ratios = jnp.where(new_epoch & full, accuracy / state.memory.mean(0), state.ratios)
    shifted = jnp.concatenate([state.memory[1:], accuracy[None]], axis=0)
    appended = state.memory.at[jnp.minimum(state.filled, window - 1)].set(accuracy)
    memory = jnp.where(new_epoch, jnp.where(full, shifted, appended), state.memory)
    filled = jnp.where(new_epoch, jnp.minimum(state.filled + 1, window), state.filled)
    factor = initial * ratios[modality]
    scaled = jax.tree.map(
        lambda g: (factor.astype(checks.upcast(g).dtype) * checks.upcast(g)).astype(g.dtype),
        updates)
    last_epoch = jnp.maximum(state.last_epoch, jnp.asarray(epoch, jnp.int32))
    return scaled, ValidationTrendState(memory, filled.astype(jnp.int32), last_epoch, ratios)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def validation_trend(param_labels: Any, modalities, *, others=None, **kwargs
                     ) -> optax.GradientTransformationExtraArgs:
  """`scale_by_validation_trend` over a whole parameter tree, one per modality (see `ogm`)."""
  return extra_args.partition_by_modality(
      param_labels, modalities,
      lambda index: scale_by_validation_trend(index, len(modalities), **kwargs), others)
