"""Low-quality test conditions: clean, Gaussian noise, missing modalities, per-sample quality,
conflicting views, and the noise protocols of the trusted-fusion papers.

A `Condition` turns a clean test batch into a degraded one with a fixed key, so every method and
seed sees exactly the same degraded data (a paired comparison). Models are trained on clean data;
the conditions probe how each fusion rule copes with each kind of low-quality data at test time.

Missing-data protocols (kind `'protocol'`) name what their rate means, as the literature's
protocols do (`lqmm.missing.MEANINGS`): `'entries'` (CPM-Nets' share of missing entries),
`'per_view'` (Wen et al.'s per-view deletion), `'samples'` (COMPLETER/DCP's share of incomplete
samples) and `'completer'` (COMPLETER's eta), each crossed with Gaussian noise on every
modality; `spec(condition)` is the record stored in every result row.

Two noise protocols of the literature are named conditions, so results compare with the papers:
`noise_combinations` (TMC's and MGP's: Gaussian noise on half of the views, every combination of
views stacked into one test set, std 0 and a log range up to 10) and `noise_samples` (FUML's,
after RCML: noise on a random subset of the views of a random half of the samples, std 0, 1, 5,
10). Their test sets hold clean and noisy samples side by side, so the suite also reports
whether a method's uncertainty separates them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm import corrupt
from lqmm import missing


class Condition(NamedTuple):
  """One test condition.

  Attributes:
    name: unique label, e.g. 'noise_all_0.5'.
    kind: 'clean', 'noise_all' (Gaussian noise on every modality), 'noise_one' (on the modality
      `modality` only), 'missing' (random missing modalities, at least one present per sample),
      'quality' (one random modality per sample gets Gaussian noise), 'protocol' (a
      missing-data protocol), 'conflictive' (RCML's conflictive test set),
      'noise_combinations' (TMC/MGP: noise on `num_noisy` modalities, every combination,
      stacked) or 'noise_samples' (FUML/RCML: noise on a random subset of the modalities of a
      share `noise_fraction` of the samples).
    level: the noise std or missing rate (0 for clean).
    modality: the noisy modality of 'noise_one' (None: the first of the order).
    protocol: the missing-data protocol of kind 'protocol' (a key of `PROTOCOLS`).
    noise: Gaussian noise std on every modality on top of a 'protocol' mask; for kind
      'conflictive', the std of RCML's view noise.
    noise_fraction: for kinds 'conflictive' and 'noise_samples', the share of samples with
      noisy views.
    num_noisy: for kind 'noise_combinations', the number of noisy modalities per combination
      (None: half of them, M // 2, as TMC and MGP).
  """
  name: str
  kind: str
  level: float
  modality: str | None = None
  protocol: str | None = None
  noise: float = 0.0
  noise_fraction: float = 0.0
  num_noisy: int | None = None


KINDS = ('clean', 'noise_all', 'noise_one', 'missing', 'quality', 'protocol', 'conflictive',
         'noise_combinations', 'noise_samples')

#: TMC's and MGP's noise levels: 0 and ten stds log-spaced from 0.01 to 10 (MGP's `main.py`:
#: `[0.0] + np.logspace(-2, 1, 10)`).
MGP_NOISE_STDS = (0.0,) + tuple(float(std) for std in np.logspace(-2, 1, 10))
#: FUML's noise levels (Duan et al., ICML 2025, Table 9).
FUML_NOISE_STDS = (0.0, 1.0, 5.0, 10.0)


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


def noise_combinations(stds: Sequence[float] = MGP_NOISE_STDS,
                       num_noisy: int | None = None) -> tuple[Condition, ...]:
  """TMC's and MGP's noisy test sets, one condition per std.

  Gaussian noise of the std on `num_noisy` of the M modalities (None: M // 2, 3 of Handwritten's
  6), for every combination of modalities; the test set is the C(M, num_noisy) noisy copies
  stacked, so its accuracy is the mean over combinations, as MGP accumulates it
  (davidmcjung/multiview_uncertainty_estimation, `main.py`). Inputs are min-max scaled first.
  """
  if num_noisy is not None:
    num_noisy = checks.check_integer(num_noisy, 'num_noisy', minimum=1)
  return tuple(Condition(f'noise_combinations_{std:.3g}', 'noise_combinations', float(std),
                         num_noisy=num_noisy) for std in stds)


def noise_samples(stds: Sequence[float] = FUML_NOISE_STDS,
                  sample_fraction: float = 0.5) -> tuple[Condition, ...]:
  """FUML's noisy test sets (RCML's `addNoise`): `lqmm.corrupt.random_view_noise` with a share
  `sample_fraction` of the samples, one condition per std."""
  return tuple(Condition(f'noise_samples_{std:g}', 'noise_samples', float(std),
                         noise_fraction=float(sample_fraction)) for std in stds)


def noisy_view_count(condition: Condition, num_modalities: int) -> int:
  """The noisy modalities per combination of a 'noise_combinations' condition: its `num_noisy`,
  or M // 2 when None (TMC's and MGP's half)."""
  return condition.num_noisy if condition.num_noisy is not None else num_modalities // 2


def _combinations(condition: Condition, order: Sequence[str]) -> list[tuple[str, ...]]:
  """The noisy modality sets of a 'noise_combinations' condition, in itertools order."""
  count = noisy_view_count(condition, len(order))
  if not 1 <= count <= len(order):
    raise ValueError(f'num_noisy of condition {condition.name!r} must be in [1, '
                     f'{len(order)}] for {len(order)} modalities; got {count}.')
  return list(itertools.combinations(tuple(order), count))


def replicas(condition: Condition, num_modalities: int) -> int:
  """How many copies of the test set `apply` stacks: C(M, num_noisy) for 'noise_combinations',
  else 1. Tile the labels with `jnp.tile(labels, replicas)`."""
  if condition.kind != 'noise_combinations':
    return 1
  return math.comb(num_modalities, noisy_view_count(condition, num_modalities))


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
  elif condition.kind == 'noise_samples':
    record.update(noise_fraction=condition.noise_fraction)
  elif condition.kind == 'noise_combinations':
    record.update(num_noisy=condition.num_noisy)
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
    `(inputs, mask bool [M, B'])`; missing modalities keep their (unused) inputs. `B' = R B`
    with `R = replicas(condition, M)`: a 'noise_combinations' condition stacks one noisy copy
    of the batch per combination (in `itertools.combinations(order, k)` order); every other
    kind returns B rows.

  Raises:
    KeyError: unknown `condition.kind` (the message lists the valid kinds).
    ValueError: kind 'conflictive' without `labels` and `num_classes`; a 'noise_combinations'
      `num_noisy` outside [1, M].
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
  elif condition.kind == 'noise_combinations':
    copies = [corrupt.gaussian_noise(inputs, condition.level, key=jax.random.fold_in(key, index),
                                     modalities=noisy)
              for index, noisy in enumerate(_combinations(condition, order))]
    inputs = {name: jnp.concatenate([copy[name] for copy in copies]) for name in inputs}
    mask = jnp.ones((len(order), batch * len(copies)), bool)
  elif condition.kind == 'noise_samples':
    noisy, _ = corrupt.random_view_noise({name: inputs[name] for name in order},
                                         condition.level, key=key,
                                         sample_fraction=condition.noise_fraction)
    inputs.update(noisy)
  return inputs, mask
