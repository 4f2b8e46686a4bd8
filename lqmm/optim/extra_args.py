"""Helpers shared by the balance transforms: extra-arg and modality checks, epoch windows,
and partitions of a parameter tree by modality label."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

__all__ = ['check_modality', 'check_stacked', 'other_transforms', 'partition_by_modality',
           'require', 'window_active']


def require(transform: str, **arguments) -> None:
  """Raises TypeError naming every required extra arg that is missing (None)."""
  missing = [name for name, value in arguments.items() if value is None]
  if missing:
    raise TypeError(
        f'{transform}.update needs the keyword-only extra arg(s) {missing}; pass them to the '
        f'update of the chain or partition that holds it, e.g. tx.update(grads, state, params, '
        + ', '.join(f'{name}=...' for name in missing) + ').')


def check_modality(modality: int, num_modalities: int) -> None:
  """Raises ValueError unless `0 <= modality < num_modalities` and `num_modalities >= 2`."""
  if not 0 <= modality < num_modalities or num_modalities < 2:
    raise ValueError(f'modality must index one of num_modalities >= 2 modalities; got '
                     f'modality={modality}, num_modalities={num_modalities}.')


def window_active(transform: str, epoch, start_epoch, end_epoch):
  """Whether `epoch` lies in the inclusive window (True without one); needs `epoch` if set."""
  active = jnp.asarray(True)
  if start_epoch is None and end_epoch is None:
    return active
  require(f'{transform} (an epoch window is set)', epoch=epoch)
  if start_epoch is not None:
    active = active & (epoch >= start_epoch)
  if end_epoch is not None:
    active = active & (epoch <= end_epoch)
  return active


def check_stacked(value, name: str, num_modalities: int) -> None:
  """Raises ValueError unless `value` is `[M, B, K]` with M = `num_modalities`."""
  if jnp.ndim(value) != 3 or jnp.shape(value)[0] != num_modalities:
    raise ValueError(f'{name} must have shape [M={num_modalities}, B, K]; got shape '
                     f'{jnp.shape(value)}.')


def partition_by_modality(param_labels, modalities: Sequence[str], make: Callable[[int], Any],
                          others: Mapping[str, optax.GradientTransformation] | None):
  """`optax.partition` of `make(index)` for each modality label and `others` for the rest."""
  if len(set(modalities)) != len(modalities):
    raise ValueError(f'modalities must be distinct labels; got {tuple(modalities)}.')
  transforms = {name: make(index) for index, name in enumerate(modalities)}
  transforms.update(other_transforms(param_labels, modalities, others))
  return optax.partition(transforms, param_labels)


def other_transforms(param_labels, modalities: Sequence[str],
                     others: Mapping[str, optax.GradientTransformation] | None
                     ) -> dict[str, optax.GradientTransformation]:
  """The transforms of the non-modality labels: `others`, or identity for every label found."""
  if others is not None:
    clash = set(others) & set(modalities)
    if clash:
      raise ValueError(f'others must not hold modality labels; got {sorted(clash)}.')
    return dict(others)
  if callable(param_labels):
    raise ValueError('param_labels is a callable, so the non-modality labels are unknown; pass '
                     'others={label: transform} for them (e.g. {"shared": optax.identity()}).')
  found = set(jax.tree.leaves(param_labels))
  unknown_modalities = set(modalities) - found
  if unknown_modalities:
    raise ValueError(f'modalities {sorted(unknown_modalities)} label no leaf of param_labels; '
                     f'its labels are {sorted(found)}.')
  return {label: optax.identity() for label in sorted(found - set(modalities))}
