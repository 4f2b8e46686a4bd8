"""MMTM cross-modal excitation, and the greedy learner's two-branch network built on it.

`MMTM` squeezes each modality's feature map to its channel means, maps their concatenation
through a shared bottleneck (`squeeze`, ReLU) and one excitation layer per modality (sigmoid),
and rescales every modality's channels: each modality's features are gated by information from
all modalities. It is the cross-modal "bypass" of the greedy learner (Wu et al., ICML 2022).
Two interventions serve that method:

- re-balancing (curation): a modality's excitation is replaced by a constant (the running mean
  of its past excitations), so no cross-modal information reaches that modality's branch;
- flow off: each modality's excitation is computed from its own squeeze and the *other*
  modalities' training-set mean squeezes, which measures the conditional utilisation rate.

`GreedyNet` is the two-stage network: per modality an MLP layer, MMTM across modalities, a
second MLP layer to the features and a branch head; the prediction is the mean of the branch
logits and the training loss the sum of the branches' cross-entropies.

References:
  Joze, Shaban, Iuzzolino, Koishida, "MMTM: Multimodal Transfer Module for CNN Fusion",
  CVPR 2020.
  Wu, Jastrzebski, Cho, Geras, "Characterizing and Overcoming the Greedy Nature of Learning in
  Multi-modal Deep Neural Networks", ICML 2022.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lqmm import checks
from lqmm.nn.balance import BalanceOutputs
from lqmm.nn.evidential import torch_linear


def squeeze(feature: jax.Array) -> jax.Array:
  """Channel means `[B, C]` of a channels-last feature map `[B, ..., C]` (identity for `[B, C]`)."""
  return feature.mean(axis=tuple(range(1, feature.ndim - 1))) if feature.ndim > 2 else feature


#: MMTM's gate forms: the codes' sigmoid (a zero excitation halves a channel) and the paper's
#: `2 sigmoid` (a zero excitation passes the channel unchanged; gates in (0, 2)).
GATES = {'sigmoid': jax.nn.sigmoid, 'double_sigmoid': lambda z: 2 * jax.nn.sigmoid(z)}


class MMTM(nnx.Module):
  """Multimodal transfer module over M channels-last feature maps.

  Args:
    channels: `C_m` of every modality.
    ratio: bottleneck reduction; the bottleneck has `int(2 * sum(C) / ratio)` units, as in the
      authors' and the greedy learner's codes.
    gate: 'sigmoid' (both public codes, haamoon/mmtm and the greedy learner's) or
      'double_sigmoid' (`2 sigmoid`, the MMTM paper's excitation: identity at zero).
    rngs: NNX random streams.
  """

  def __init__(self, channels: Sequence[int], *, ratio: float = 4.0, gate: str = 'sigmoid',
               rngs: nnx.Rngs):
    if len(channels) < 2:
      raise ValueError(f'channels must list at least 2 modalities; got {tuple(channels)}.')
    checks.lookup(GATES, gate, 'gate')
    self.gate = gate
    total = sum(channels)
    hidden = int(2 * total / ratio)
    if hidden < 1:
      raise ValueError(f'ratio {ratio} leaves no bottleneck unit for {total} channels.')
    self.channels = tuple(channels)
    self.squeeze = torch_linear(total, hidden, rngs=rngs)
    self.excite = nnx.List([torch_linear(hidden, width, rngs=rngs) for width in channels])

  def excitations(self, squeezed: Sequence[jax.Array]) -> list[jax.Array]:
    """Gates `[B, C_m]` of every modality from the squeezes `[B, C_m]`."""
    joint = jax.nn.relu(self.squeeze(jnp.concatenate(list(squeezed), axis=-1)))
    return [GATES[self.gate](layer(joint)) for layer in self.excite]

  def __call__(self, features: Sequence[jax.Array], *, replace: jax.Array | None = None,
               constants: Sequence[jax.Array] | None = None,
               mean_squeezes: Sequence[jax.Array] | None = None,
               mask: jax.Array | None = None
               ) -> tuple[list[jax.Array], list[jax.Array]]:
    """Gates every modality's channels.

    Args:
      features: M channels-last maps `[B, ..., C_m]`.
      mask: optional bool `[M, B]`, True = present. An absent modality's squeeze enters the
        joint layer as zeros (its features never reach the other modalities' gates) and its
        features come back unchanged (gate 1).
      replace: optional bool `[M]`: modality m's gate is `constants[m]` (re-balancing).
      constants: `[C_m]` per modality, used where `replace` is True.
      mean_squeezes: `[C_m]` per modality: switches the cross-modal flow off (each modality's
        gate sees its own squeeze and the others' means).

    Returns:
      `(gated features, gates [B, C_m])`; the gates are the computed ones, before any
      replacement (the running means of the greedy learner track those).
    """
    if len(features) != len(self.channels):
      raise ValueError(f'features must hold {len(self.channels)} modalities; got {len(features)}.')
    squeezed = [squeeze(feature) for feature in features]
    if mask is not None:
      checks.check_mask(mask, (len(features), squeezed[0].shape[0]))
      present = jnp.asarray(mask)
      squeezed = [jnp.where(present[index][:, None], value, 0)
                  for index, value in enumerate(squeezed)]
    if mean_squeezes is None:
      gates = self.excitations(squeezed)
    else:
      gates = []
      for index in range(len(features)):
        mixed = [squeezed[j] if j == index else jnp.broadcast_to(mean_squeezes[j],
                                                                squeezed[j].shape)
                 for j in range(len(features))]
        gates.append(self.excitations(mixed)[index])
    applied = gates
    if replace is not None:
      if constants is None:
        raise ValueError('replace needs constants: the gate values of the replaced modalities.')
      applied = [jnp.where(replace[index], jnp.broadcast_to(constants[index], gate.shape), gate)
                 for index, gate in enumerate(gates)]
    if mask is not None:
      applied = [jnp.where(present[index][:, None], gate, 1)
                 for index, gate in enumerate(applied)]
    gated = [feature * gate.reshape(gate.shape[:1] + (1,) * (feature.ndim - 2) + gate.shape[1:])
             for feature, gate in zip(features, applied)]
    return gated, gates


class GreedyNet(nnx.Module):
  """The greedy learner's network: MLP branches joined by MMTM, one head per branch.

  Parameter groups for `lqmm.optim.greedy_schedule`: `encoders/<m>/...` is modality m's main
  branch, `mmtm/excite/<index>` its bypass and `mmtm/squeeze` the shared bypass
  (`lqmm.optim.greedy_group_labels` labels a parameter tree so).

  Args:
    shapes: `{modality: per-sample input shape}` (flattened).
    order: modality order.
    num_classes: K.
    features: D, the width of every branch's features.
    hidden: the width of the layer before MMTM.
    ratio: MMTM's bottleneck ratio.
    rngs: NNX random streams.
  """

  def __init__(self, shapes: Mapping[str, Sequence[int]], order: Sequence[str],
               num_classes: int, *, features: int = 64, hidden: int = 128, ratio: float = 4.0,
               rngs: nnx.Rngs):
    checks.check_order(order, shapes, 'shapes')
    self.order = tuple(order)
    sizes = {name: math.prod(shapes[name]) for name in order}
    self.encoders = nnx.Dict({name: nnx.List([torch_linear(sizes[name], hidden, rngs=rngs),
                                               torch_linear(hidden, features, rngs=rngs)])
                              for name in order})
    self.mmtm = MMTM([hidden] * len(order), ratio=ratio, rngs=rngs)
    self.auxiliary = nnx.Dict({name: torch_linear(features, num_classes, rngs=rngs)
                               for name in order})

  def branches(self, inputs: Mapping[str, jax.Array], **mmtm_kwargs):
    """`(features [M, B, D], gates)` with the MMTM options of `MMTM.__call__`."""
    gated, gates = self.mmtm(self.first_layer(inputs), **mmtm_kwargs)
    features = [jax.nn.relu(self.encoders[name][1](value))
                for name, value in zip(self.order, gated)]
    return jnp.stack(features), gates

  def first_layer(self, inputs: Mapping[str, jax.Array]) -> list[jax.Array]:
    """Every branch's activations before MMTM, `[B, hidden]` per modality."""
    checks.check_order(self.order, inputs, 'inputs')
    return [jax.nn.relu(self.encoders[name][0](inputs[name].reshape(inputs[name].shape[0], -1)))
            for name in self.order]

  def mean_squeezes(self, inputs: Mapping[str, jax.Array]) -> list[jax.Array]:
    """Mean squeeze `[hidden]` of every modality over `inputs` (e.g. the training set)."""
    return [squeeze(value).mean(0) for value in self.first_layer(inputs)]

  def encode(self, inputs: Mapping[str, jax.Array],
             mean_squeezes: Sequence[jax.Array] | None = None) -> jax.Array:
    """`[M, B, D]` features; with `mean_squeezes` the cross-modal flow is off, so modality m's
    features depend on its own input only (what a linear probe of its branch should see)."""
    return self.branches(inputs, mean_squeezes=mean_squeezes)[0]

  def heads(self, features: jax.Array) -> BalanceOutputs:
    """Branch logits; the fused logits are their mean, `unimodal` their shares of it."""
    logits = jnp.stack([self.auxiliary[name](features[index])
                        for index, name in enumerate(self.order)])
    return BalanceOutputs(logits.mean(0), logits / len(self.order), logits, features)

  def __call__(self, inputs: Mapping[str, jax.Array], keep: jax.Array | None = None,
               **mmtm_kwargs) -> BalanceOutputs:
    """Returns `BalanceOutputs` (`keep: bool [M, B]` zeroes dropped modalities' features)."""
    features, gates = self.branches(inputs, **mmtm_kwargs)
    if keep is not None:
      features = jnp.where(keep[..., None], features, 0)
    return self.heads(features)._replace(gates=tuple(gate.mean(0) for gate in gates))
