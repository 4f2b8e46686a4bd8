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

__all__ = ['CrossViewImputer', 'MaskedFusionNet', 'MultiViewAutoencoder', 'masked_mean',
           'present_subset']


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


class MultiViewAutoencoder(nnx.Module):
  """Per-view autoencoders whose codes are fused by a mask-weighted mean (CDIMC-net's network).

  Each view's encoder is `d -> h -> ... -> h -> width -> latent` (ReLU between layers, a linear
  code), with `h = round(hidden_fraction * d)` repeated `hidden_layers` times; every decoder
  maps the fused code back, `latent -> latent -> width -> h -> ... -> d` (ReLU between layers,
  a linear output). The extra `latent -> latent` layer at the decoder's input is the original
  code's (the paper does not describe it). A missing view still goes through its encoder (its
  input is whatever the caller passes, zeros in CDIMC-net) but gets zero weight in the fusion.

  Args:
    dims: `{view: width}`.
    order: the views, in the order of the mask's first axis.
    latent_dim: the code width (CDIMC-net: the number of clusters).
    hidden_fraction: the encoder's first widths as a fraction of the view's width (0.8).
    hidden_layers: how many such layers (2).
    width: the wide layer before the code (1500, as DEC).
    rngs: NNX random streams.

  References:
    Wen, Zhang, Xu, Zhang, Fei, Xie. "CDIMC-net: Cognitive Deep Incomplete Multi-view
    Clustering Network." IJCAI 2020.
  """

  def __init__(self, dims: Mapping[str, int], order: Sequence[str], *, latent_dim: int,
               hidden_fraction: float = 0.8, hidden_layers: int = 2, width: int = 1500,
               rngs: nnx.Rngs):
    checks.check_order(order, dims, 'dims', kind='view')
    checks.check_integer(latent_dim, 'latent_dim', minimum=1)
    checks.check_integer(hidden_layers, 'hidden_layers', minimum=0)
    checks.check_integer(width, 'width', minimum=1)
    checks.check_scalar(hidden_fraction, 'hidden_fraction', low=0, low_open=True)
    self.order = tuple(order)
    hidden = {view: (max(1, int(round(hidden_fraction * dims[view]))),) * hidden_layers
              for view in self.order}
    self.encoders = nnx.Dict({view: _mlp((dims[view], *hidden[view], width, latent_dim), rngs)
                              for view in self.order})
    self.decoders = nnx.Dict({
        view: _mlp((latent_dim, latent_dim, width, *hidden[view][::-1], dims[view]), rngs)
        for view in self.order})

  def encode(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
    """Every view's code, `[M, B, latent]`."""
    checks.check_order(self.order, inputs, 'inputs', kind='view')
    return jnp.stack([_run(self.encoders[view], inputs[view], False) for view in self.order])

  def __call__(self, inputs: Mapping[str, jax.Array], mask: jax.Array):
    """`(codes [M, B, L], fused [B, L], {view: reconstruction [B, d]})`; mask bool `[M, B]`."""
    codes = self.encode(inputs)
    fused = masked_mean(codes, mask)
    return codes, fused, {view: _run(self.decoders[view], fused, False) for view in self.order}
