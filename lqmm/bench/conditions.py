"""Low-quality test conditions: clean, Gaussian noise, missing modalities, per-sample quality,
conflicting views.

A `Condition` turns a clean test batch into a degraded one with a fixed key, so every method and
seed sees exactly the same degraded data (a paired comparison). Models are trained on clean data;
the conditions probe how each fusion rule copes with each kind of low-quality data at test time.

Missing-data protocols (kind `'protocol'`) name what their rate means, as the literature's
protocols do (`lqmm.missing.MEANINGS`): `'entries'` (CPM-Nets' share of missing entries),
`'per_view'` (Wen et al.'s per-view deletion), `'samples'` (COMPLETER/DCP's share of incomplete
samples) and `'completer'` (COMPLETER's eta), each crossed with Gaussian noise on every
modality; `spec(condition)` is the record stored in every result row.
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
    protocol: the missing-data protocol of kind 'protocol' (a key of `PROTOCOLS`).
    noise: Gaussian noise std on every modality on top of a 'protocol' mask; for kind
      'conflictive', the std of RCML's view noise.
    noise_fraction: for kind 'conflictive', the share of samples with noisy views.
  """
  name: str
  kind: str
  level: float
  modality: str | None = None
  protocol: str | None = None
  noise: float = 0.0
  noise_fraction: float = 0.0


KINDS = ('clean', 'noise_all', 'noise_one', 'missing', 'quality', 'protocol', 'conflictive')


def _completer_mask(key, num_samples, num_views, rate):
  # COMPLETER's eta removes a share eta / V of the entries.
  return missing.missing_entries_mask(key, num_samples, num_views, rate / num_views)


#: Protocol -> `(key, N, V, rate) -> bool [N, V]`; the protocol's name is its rate meaning.
PROTOCOLS = {'entries': missing.missing_entries_mask, 'per_view': missing.per_view_mask,
             'samples': missing.incomplete_samples_mask, 'completer': _completer_mask}


def protocol_grid(protocols: Sequence[str], rates: Sequence[float],
                  noise_stds: Sequence[float] = (0.0,)) -> tuple[Condition, ...]:
  """Every protocol at every rate, crossed with every noise std (0: no noise)."""
  out = []
  for protocol in protocols:
    if protocol not in PROTOCOLS:
      raise KeyError(f'Unknown missing-data protocol {protocol!r}; valid protocols: '
                     f'{", ".join(PROTOCOLS)}.')
    for rate in rates:
      for std in noise_stds:
        name = f'{protocol}_{rate:g}' + (f'+noise_{std:g}' if std else '')
        out.append(Condition(name, 'protocol', float(rate), protocol=protocol,
                             noise=float(std)))
  return tuple(out)


def conflictive(conflict_fractions: Sequence[float] = (0.4,), *, noise_std: float = 0.5,
                noise_fraction: float = 0.1) -> tuple[Condition, ...]:
  """RCML's conflictive test sets (`lqmm.corrupt.conflictive_views`): a share `noise_fraction`
  of the samples with Gaussian noise (std `noise_std`) on some views, then a share `level` with
  one view taken from a sample of the next class. RCML's protocol: 0.4, 0.5, 0.1."""
  return tuple(Condition(f'conflictive_{fraction:g}', 'conflictive', float(fraction),
                         noise=float(noise_std), noise_fraction=float(noise_fraction))
               for fraction in conflict_fractions)


def spec(condition: Condition) -> dict:
  """The missing-data record of a condition's result rows: protocol, rate, meaning, noise."""
  if condition.kind == 'protocol':
    record = missing.MissingSpec(condition.protocol, condition.level, condition.protocol,
                                 1).to_dict()
  elif condition.kind == 'missing':
    record = missing.MissingSpec('random', condition.level, 'entries', 1).to_dict()
  else:
    record = {'protocol': None, 'rate': 0.0, 'meaning': None, 'min_views': None, 'seed': None}
  del record['seed']  # the harness's evaluation key, the same for every condition's draw
  noise = condition.noise if condition.kind in ('protocol', 'conflictive') else (
      condition.level if condition.kind.startswith('noise') else 0.0)
  record = dict(record, noise=noise)
  if condition.kind == 'conflictive':
    record.update(conflict=condition.level, noise_fraction=condition.noise_fraction)
  return record


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
          key: jax.Array, labels: jax.Array | None = None,
          num_classes: int | None = None) -> tuple[dict[str, jax.Array], jax.Array]:
  """Degrades a clean batch.

  Args:
    condition: the condition.
    inputs: `{modality: [B, d_m]}` clean inputs.
    order: the modality order of the returned mask.
    key: PRNG key (fixed per condition by the harness).
    labels, num_classes: the batch's labels and class count, needed by kind 'conflictive'
      (a conflicting view comes from a sample of the next class).

  Returns:
    `(inputs, mask bool [M, B])`; missing modalities keep their (unused) inputs.

  Raises:
    KeyError: unknown `condition.kind` (the message lists the valid kinds).
    ValueError: kind 'conflictive' without `labels` and `num_classes`.
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
  elif condition.kind == 'protocol':
    mask_key, noise_key = jax.random.split(key)
    generator = PROTOCOLS[condition.protocol]
    mask = generator(mask_key, batch, len(order), condition.level).T
    if condition.noise:
      inputs = corrupt.gaussian_noise(inputs, condition.noise, key=noise_key,
                                      modalities=tuple(order))
  elif condition.kind == 'conflictive':
    if labels is None or num_classes is None:
      raise ValueError('a conflictive condition needs the batch\'s labels and num_classes.')
    inputs, _ = corrupt.conflictive_views(
        inputs, labels, key=key, num_classes=num_classes, noise_fraction=condition.noise_fraction,
        noise_std=condition.noise, conflict_fraction=condition.level)
  return inputs, mask
