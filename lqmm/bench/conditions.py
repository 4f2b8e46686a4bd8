"""Low-quality test conditions: clean, Gaussian noise, missing modalities, per-sample quality.

A `Condition` turns a clean test batch into a degraded one with a fixed key, so every method and
seed sees exactly the same degraded data (a paired comparison). Models are trained on clean data;
the conditions probe how each fusion rule copes with each kind of low-quality data at test time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import corrupt
from lqmm import missing


class Condition(NamedTuple):
  """One test condition.

  Attributes:
    name: unique label, e.g. 'noise_all_0.5'.
    kind: 'clean', 'noise_all' (Gaussian noise on every modality), 'noise_one' (on the modality
      `modality` only), 'missing' (random missing modalities, at least one present per sample)
      or 'quality' (one random modality per sample gets Gaussian noise).
    level: the noise std or missing rate (0 for clean).
    modality: the noisy modality of 'noise_one' (None: the first of the order).
  """
  name: str
  kind: str
  level: float
  modality: str | None = None


KINDS = ('clean', 'noise_all', 'noise_one', 'missing', 'quality')


def grid(noise_stds: Sequence[float] = (0.1, 0.3, 0.5, 1.0),
         missing_rates: Sequence[float] = (0.2, 0.4, 0.6),
         quality_stds: Sequence[float] = (0.5, 1.0), *,
         noise_one: str | None = None) -> tuple[Condition, ...]:
  """The default grid of conditions; `noise_one` names the modality of the one-modality noise."""
  conditions = [Condition('clean', 'clean', 0.0)]
  conditions += [Condition(f'noise_all_{std:g}', 'noise_all', std) for std in noise_stds]
  conditions += [Condition(f'noise_one_{std:g}', 'noise_one', std, noise_one)
                 for std in noise_stds]
  conditions += [Condition(f'missing_{rate:g}', 'missing', rate) for rate in missing_rates]
  conditions += [Condition(f'quality_{std:g}', 'quality', std) for std in quality_stds]
  return tuple(conditions)


def apply(condition: Condition, inputs: Mapping[str, jax.Array], order: Sequence[str], *,
          key: jax.Array) -> tuple[dict[str, jax.Array], jax.Array]:
  """Degrades a clean batch.

  Args:
    condition: the condition.
    inputs: `{modality: [B, d_m]}` clean inputs.
    order: the modality order of the returned mask.
    key: PRNG key (fixed per condition by the harness).

  Returns:
    `(inputs, mask bool [M, B])`; missing modalities keep their (unused) inputs.

  Raises:
    KeyError: unknown `condition.kind` (the message lists the valid kinds).
  """
  if condition.kind not in KINDS:
    raise KeyError(f'Unknown condition kind {condition.kind!r}; valid kinds: {", ".join(KINDS)}.')
  batch = int(np.shape(inputs[order[0]])[0])
  mask = jnp.ones((len(order), batch), bool)
  inputs = dict(inputs)
  if condition.kind == 'noise_all':
    inputs = corrupt.gaussian_noise(inputs, condition.level, key=key, modalities=tuple(order))
  elif condition.kind == 'noise_one':
    inputs = corrupt.gaussian_noise(inputs, condition.level, key=key,
                                    modalities=(condition.modality or order[0],))
  elif condition.kind == 'missing':
    mask = missing.random_mask(len(order), batch, condition.level, key=key)
  elif condition.kind == 'quality':
    inputs, _ = corrupt.per_sample_quality(inputs, condition.level, key=key, order=tuple(order))
  return inputs, mask
