"""Networks for incomplete multi-view data: mask-weighted fusion and cross-view prediction.

- `MaskedFusionNet` (imputation-free): one encoder per view, the features of the views a
  sample has averaged with its presence mask (a missing view contributes nothing and the
  average is over the present views only), one classifier on the average.
- `CrossViewImputer` (learned imputation, the COMPLETER / DCP family generalised to V views):
  one encoder per view into a shared space, the present views' codes averaged, and one decoder
  per view back from the average. Trained to reconstruct every present view from a random
  subset of the others (`present_subset` draws it), it predicts a missing view from the views
  a sample has.

Masks are bool `[M, B]` (True = present) as everywhere in lqmm's fusion layers; a row with no
present view gets the zero average (its prediction is the networks' bias).

References:
  Zhang et al. "Multimodal Fusion on Low-quality Data: A Comprehensive Survey" (Sec. 3.1:
    learned cross-modal prediction; Sec. 3.2: mask-weighted deep fusion).
  Lin, Gou, Liu, Li, Lv, Peng. "COMPLETER: Incomplete Multi-view Clustering via Contrastive
    Prediction." CVPR 2021; "Dual Contrastive Prediction for Incomplete Multi-View
    Representation Learning." TPAMI 2022 (cross-view prediction of the missing view's code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lqmm import checks
from lqmm.nn.evidential import torch_linear

__all__ = ['CrossViewImputer', 'MaskedFusionNet', 'masked_mean', 'present_subset']


def masked_mean(features: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean over the present modalities: `[M, B, H]`, bool `[M, B]` -> `[B, H]` (0 if none)."""
  weights = mask.astype(features.dtype)[..., None]
  return jnp.sum(weights * features, 0) / jnp.maximum(jnp.sum(weights, 0), 1)


def present_subset(key: jax.Array, mask: jax.Array, keep: float = 0.5) -> jax.Array:
  """A random subset of each row's present views, never empty where the row has a view.

  Each present view is kept with probability `keep`; a row that would lose all its views keeps
  one of them, drawn uniformly. Used to train `CrossViewImputer` to predict views it is not
  shown.

  Args:
    key: a typed PRNG key.
    mask: bool `[M, B]`.
    keep: probability of keeping a present view, in (0, 1].

  Returns:
    bool `[M, B]`, a subset of `mask`.
  """
  checks.check_key(key)
  checks.check_scalar(keep, 'keep', low=0, high=1, low_open=True)
  keep_key, pick_key = jax.random.split(key)
  subset = mask & jax.random.bernoulli(keep_key, keep, mask.shape)
  # A uniformly drawn present view for rows left empty (Gumbel-max over the present ones).
  score = jnp.where(mask, jax.random.gumbel(pick_key, mask.shape), -jnp.inf)
  fallback = jax.nn.one_hot(jnp.argmax(score, 0), mask.shape[0], axis=0, dtype=bool) & mask
  empty = ~jnp.any(subset, 0, keepdims=True)
  return jnp.where(empty, fallback, subset)


def _mlp(widths: Sequence[int], rngs: nnx.Rngs) -> nnx.List:
  return nnx.List([torch_linear(a, b, rngs=rngs) for a, b in zip(widths, widths[1:])])


def _run(layers, x: jax.Array, final_activation: bool) -> jax.Array:
  for index, layer in enumerate(layers):
    x = layer(x)
    if index < len(layers) - 1 or final_activation:
      x = jax.nn.relu(x)
  return x


class MaskedFusionNet(nnx.Module):
  """Per-view ReLU encoders, a mask-weighted mean of the present views' features, a classifier.

  Args:
    dims: `{view: width}`.
    order: the views, in the order of the mask's first axis.
    num_classes: K.
    hidden: encoder widths (at least one; the last is the fused feature width).
    rngs: NNX random streams.
  """

  def __init__(self, dims: Mapping[str, int], order: Sequence[str], num_classes: int, *,
               hidden: Sequence[int], rngs: nnx.Rngs):
    checks.check_order(order, dims, 'dims', kind='view')
    if not hidden:
      raise ValueError('hidden must name at least one encoder width; got an empty sequence.')
    self.order = tuple(order)
    self.encoders = nnx.Dict({view: _mlp((dims[view], *hidden), rngs) for view in self.order})
    self.head = torch_linear(hidden[-1], num_classes, rngs=rngs)

  def __call__(self, inputs: Mapping[str, jax.Array], mask: jax.Array) -> jax.Array:
    """Logits `[B, K]` from `{view: [B, d]}` and bool `[M, B]`."""
    checks.check_order(self.order, inputs, 'inputs', kind='view')
    features = jnp.stack([_run(self.encoders[view], inputs[view], True) for view in self.order])
    return self.head(masked_mean(features, mask))


class CrossViewImputer(nnx.Module):
  """Encoders into a shared code, a mask-weighted mean of the present codes, decoders back.

  Args:
    dims: `{view: width}`.
    order: the views, in the order of the mask's first axis.
    hidden: encoder widths (at least one; the last is the code width); decoders mirror them.
    rngs: NNX random streams.
  """

  def __init__(self, dims: Mapping[str, int], order: Sequence[str], *, hidden: Sequence[int],
               rngs: nnx.Rngs):
    checks.check_order(order, dims, 'dims', kind='view')
    if not hidden:
      raise ValueError('hidden must name at least one encoder width; got an empty sequence.')
    self.order = tuple(order)
    self.encoders = nnx.Dict({view: _mlp((dims[view], *hidden), rngs) for view in self.order})
    self.decoders = nnx.Dict({view: _mlp((*hidden[::-1], dims[view]), rngs)
                              for view in self.order})

  def __call__(self, inputs: Mapping[str, jax.Array], mask: jax.Array) -> dict[str, jax.Array]:
    """Every view predicted from the views present in `mask`: `{view: [B, d]}`."""
    checks.check_order(self.order, inputs, 'inputs', kind='view')
    codes = jnp.stack([_run(self.encoders[view], inputs[view], True) for view in self.order])
    shared = masked_mean(codes, mask)
    return {view: _run(self.decoders[view], shared, False) for view in self.order}

  def impute(self, inputs: Mapping[str, jax.Array], mask: jax.Array) -> dict[str, jax.Array]:
    """`inputs` with each missing view replaced by its prediction from the present ones."""
    predicted = self(inputs, mask)
    return {view: jnp.where(mask[index][:, None], inputs[view], predicted[view])
            for index, view in enumerate(self.order)}
