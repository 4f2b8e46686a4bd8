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
from lqmm.losses import contrastive as contrastive_losses
from lqmm.nn.evidential import torch_linear
from lqmm.nn.norm import BatchNorm

__all__ = ['CrossViewImputer', 'DualPredictionNet', 'LatentPredictor', 'MaskedFusionNet',
           'MultiViewAutoencoder', 'PAIRINGS', 'SoftmaxAutoencoder', 'masked_mean',
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


def _normed_layers(widths: Sequence[int], rngs: nnx.Rngs, normed: int):
  """Linear layers over `widths` and a `BatchNorm` after each of the first `normed` of them."""
  layers = _mlp(widths, rngs)
  norms = nnx.List([BatchNorm(width) for width in widths[1:normed + 1]])
  return layers, norms


def _run_normed(layers, norms, x: jax.Array, mask: jax.Array | None) -> jax.Array:
  """Linear -> BatchNorm -> ReLU for the normed layers, a bare linear layer after them."""
  for index, layer in enumerate(layers):
    x = layer(x)
    if index < len(norms):
      x = jax.nn.relu(norms[index](x, mask))
  return x


class SoftmaxAutoencoder(nnx.Module):
  """COMPLETER's / DCP's autoencoder: a softmax code and a non-negative reconstruction.

  Encoder `d -> hidden... -> latent`: Linear, BatchNorm, ReLU for each hidden width, then a
  linear layer and a softmax (the code is a probability vector, as the contrastive loss
  needs). Decoder `latent -> hidden reversed -> d`: Linear, BatchNorm, ReLU for every layer,
  the output layer included (as the original: reconstructions are >= 0).

  Args:
    in_features: d.
    latent_dim: L.
    hidden: the hidden widths (the originals: 1024, 1024, 1024).
    rngs: NNX random streams.
  """

  def __init__(self, in_features: int, latent_dim: int, *, hidden: Sequence[int],
               rngs: nnx.Rngs):
    checks.check_integer(in_features, 'in_features', minimum=1)
    checks.check_integer(latent_dim, 'latent_dim', minimum=1)
    widths = (in_features, *hidden, latent_dim)
    self.encoder, self.encoder_norms = _normed_layers(widths, rngs, len(hidden))
    self.decoder, self.decoder_norms = _normed_layers(widths[::-1], rngs, len(widths) - 1)

  def encode(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Codes `[B, L]` (rows sum to 1); `mask` bool `[B]` picks the rows of the statistics."""
    return jax.nn.softmax(_run_normed(self.encoder, self.encoder_norms, x, mask), axis=-1)

  def decode(self, code: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Reconstructions `[B, d]`."""
    return _run_normed(self.decoder, self.decoder_norms, code, mask)


class LatentPredictor(nnx.Module):
  """DCP's cross-view predictor: one view's code to another's, `L -> hidden -> reversed -> L`.

  Linear, BatchNorm, ReLU through the hidden widths and back; the last layer maps to L and
  ends in a softmax, so the prediction is a code like the target.

  Args:
    latent_dim: L.
    hidden: the widths (the originals: 128, 256, 128).
    rngs: NNX random streams.
  """

  def __init__(self, latent_dim: int, *, hidden: Sequence[int], rngs: nnx.Rngs):
    checks.check_integer(latent_dim, 'latent_dim', minimum=1)
    if not hidden:
      raise ValueError('hidden must name at least one predictor width; got an empty sequence.')
    widths = (latent_dim, *hidden)
    self.encoder, self.encoder_norms = _normed_layers(widths, rngs, len(hidden))
    self.decoder, self.decoder_norms = _normed_layers(widths[::-1], rngs, len(hidden) - 1)

  def __call__(self, code: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The predicted codes `[B, L]`."""
    hidden = _run_normed(self.encoder, self.encoder_norms, code, mask)
    return jax.nn.softmax(_run_normed(self.decoder, self.decoder_norms, hidden, mask), axis=-1)


#: The pairs whose codes are contrasted and predicted: DCP's core-view ('core': view 0 with
#: every other view) and complete-graph ('all': every pair) modes.
PAIRINGS = ('core', 'all')


class DualPredictionNet(nnx.Module):
  """COMPLETER / DCP for any number of views: per-view autoencoders and cross-view predictors.

  Each view has a `SoftmaxAutoencoder`; each ordered pair `(a, b)` of the pairing has a
  `LatentPredictor` from a's code to b's. `pairing='core'` (DCP's 'CV', its clustering
  configs' choice) pairs the first view of `order` with each other view; `'all'` ('CG') pairs
  every two views. With two views both are COMPLETER's network.

  `losses` gives the training terms on a batch, each over the rows where its views are present
  (the originals train only on the samples that have every view: pass such a mask to do the
  same); `represent` gives the representation to cluster: every present view's code, each
  missing view's code predicted from the present ones as the originals do, concatenated.

  Args:
    dims: `{view: width}`.
    order: the views, in the order of the mask's first axis; the first is the core view.
    latent_dim: L.
    hidden: autoencoder hidden widths (1024, 1024, 1024).
    predictor_hidden: predictor widths (128, 256, 128).
    pairing: 'core' or 'all'.
    rngs: NNX random streams.

  References:
    Lin et al. "COMPLETER", CVPR 2021; "Dual Contrastive Prediction for Incomplete Multi-View
    Representation Learning", TPAMI 2022 (`model_multiview.py`: `DCPMultiView`).
  """

  def __init__(self, dims: Mapping[str, int], order: Sequence[str], *, latent_dim: int,
               hidden: Sequence[int] = (1024, 1024, 1024),
               predictor_hidden: Sequence[int] = (128, 256, 128), pairing: str = 'core',
               rngs: nnx.Rngs):
    checks.check_order(order, dims, 'dims', kind='view')
    if len(order) < 2:
      raise ValueError(f'order must name at least two views; got {tuple(order)}.')
    checks.lookup(dict.fromkeys(PAIRINGS), pairing, 'pairing')
    self.order = tuple(order)
    self.pairing = pairing
    self.latent_dim = int(latent_dim)
    self.autoencoders = nnx.Dict({view: SoftmaxAutoencoder(dims[view], latent_dim,
                                                           hidden=hidden, rngs=rngs)
                                  for view in self.order})
    self.predictors = nnx.Dict({_pair_name(a, b): LatentPredictor(
        latent_dim, hidden=predictor_hidden, rngs=rngs) for a, b in self.ordered_pairs()})

  def pairs(self) -> tuple[tuple[int, int], ...]:
    """The contrasted pairs `(i, j)`, i < j, as indices into `order`."""
    count = len(self.order)
    if self.pairing == 'core':
      return tuple((0, j) for j in range(1, count))
    return tuple((i, j) for i in range(count) for j in range(i + 1, count))

  def ordered_pairs(self) -> tuple[tuple[str, str], ...]:
    """The predicted directions `(source view, target view)`."""
    return tuple((self.order[a], self.order[b]) for i, j in self.pairs() for a, b in
                 ((i, j), (j, i)))

  def encode(self, inputs: Mapping[str, jax.Array], mask: jax.Array) -> jax.Array:
    """Every view's codes `[V, B, L]`; `mask` bool `[V, B]` (the statistics' rows)."""
    checks.check_order(self.order, inputs, 'inputs', kind='view')
    return jnp.stack([self.autoencoders[view].encode(inputs[view], mask[v])
                      for v, view in enumerate(self.order)])

  def predict(self, source: str, target: str, code: jax.Array,
              mask: jax.Array | None = None) -> jax.Array:
    """`target`'s code predicted from `source`'s, `[B, L]`."""
    return self.predictors[_pair_name(source, target)](code, mask)

  def losses(self, inputs: Mapping[str, jax.Array], mask: jax.Array, *, alpha: float = 9.0,
             core_weight: float = 1.0, other_weight: float = 0.1,
             weights: jax.Array | None = None) -> dict[str, jax.Array]:
    """The training terms on a batch, as DCP weighs them.

    - `contrastive`: `sum over pairs w_ij L_cl(z_i, z_j) / P` with `L_cl` =
      `lqmm.losses.contrastive.mutual_information_loss`, `w` = `core_weight` for the first
      pair (views 0 and 1) and `other_weight` for the rest, P = V - 1 ('core') or V ('all'),
      each pair over the rows with both views.
    - `reconstruction`: `sum_v mse(x_v, decode(z_v)) / max(V - 2, 1)` over each view's present
      rows (DCP divides by V - 2; COMPLETER's two views sum).
    - `prediction`: `sum over directions mse(predict(z_a), z_b) / P'` with P' = V - 1 ('core')
      or V ('all'), over the rows with both views; gradients reach both codes.

    Args:
      inputs: `{view: [B, d]}`.
      mask: bool `[V, B]`, True = the sample has the view.
      alpha: the contrastive loss's entropy weight.
      core_weight, other_weight: the pairs' weights.
      weights: optional `[B]` row weights (0 for rows that pad a batch).

    Returns:
      `{'contrastive', 'reconstruction', 'prediction'}` scalars.
    """
    checks.check_order(self.order, inputs, 'inputs', kind='view')
    mask = jnp.asarray(mask, bool)
    dtype = jnp.result_type(*(inputs[view] for view in self.order))
    row = (jnp.ones(mask.shape[1], dtype) if weights is None
           else jnp.asarray(weights, dtype))
    present = mask & (row > 0)[None, :]
    codes = self.encode(inputs, present)
    present_f = present.astype(dtype)
    count = len(self.order)
    reconstruction = 0.0
    for v, view in enumerate(self.order):
      x = inputs[view]
      error = jnp.mean((self.autoencoders[view].decode(codes[v], present[v]) - x) ** 2, axis=1)
      w = row * present_f[v]
      reconstruction += jnp.sum(w * error) / jnp.maximum(jnp.sum(w), 1)
    reconstruction /= max(count - 2, 1)
    contrastive = 0.0
    pair_count = count - 1 if self.pairing == 'core' else count
    for index, (i, j) in enumerate(self.pairs()):
      w = row * present_f[i] * present_f[j]
      # A batch without a row that has both views adds nothing (and no NaN gradient).
      some = jnp.sum(w) > 0
      term = contrastive_losses.mutual_information_loss(
          codes[i], codes[j], alpha=alpha, weights=jnp.where(some, w, 1.0))
      term = jnp.where(some, term, 0.0)
      contrastive += (core_weight if index == 0 else other_weight) * term
    contrastive /= pair_count
    prediction = 0.0
    for i, j in self.pairs():
      w = row * present_f[i] * present_f[j]
      both = w > 0
      for a, b in ((i, j), (j, i)):
        predicted = self.predict(self.order[a], self.order[b], codes[a], both)
        error = jnp.mean((predicted - codes[b]) ** 2, axis=1)
        prediction += jnp.sum(w * error) / jnp.maximum(jnp.sum(w), 1)
    prediction /= pair_count
    return {'contrastive': contrastive, 'reconstruction': reconstruction,
            'prediction': prediction}

  def represent(self, inputs: Mapping[str, jax.Array], mask: jax.Array) -> jax.Array:
    """The representation to cluster, `[B, V * L]`: codes, missing ones predicted.

    'core': a missing core view is the mean of its predictions from the present views, then
    each other missing view is predicted from the (recovered) core view. 'all': a missing
    view is the mean of its predictions from every present view. Run in evaluation mode
    (`model.eval()`, running statistics), as the originals do.

    Args:
      inputs: `{view: [B, d]}` (a missing view's rows may hold anything finite).
      mask: bool `[V, B]`; every sample needs at least one view.
    """
    mask = jnp.asarray(mask, bool)
    codes = self.encode(inputs, mask)
    weight = mask.astype(codes.dtype)
    count = len(self.order)
    filled = []
    core = 0 if self.pairing == 'core' else None
    for i in range(count):
      if self.pairing == 'core' and i != core:
        source = filled[core]
        guess = self.predict(self.order[core], self.order[i], source)
      else:
        sources = [j for j in range(count) if j != i]
        total = sum(weight[j][:, None] * self.predict(self.order[j], self.order[i], codes[j])
                    for j in sources)
        guess = total / jnp.maximum(sum(weight[j] for j in sources), 1.0)[:, None]
      filled.append(jnp.where(mask[i][:, None], codes[i], guess))
    return jnp.concatenate(filled, axis=1)


def _pair_name(source: str, target: str) -> str:
  return f'{source}_to_{target}'
