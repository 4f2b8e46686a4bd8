"""Multimodal Dynamics (Han et al., CVPR 2022): feature gates, TCP confidence, gated fusion.

Per modality m with input `x_m [B, d_m]`:

    g_m = sigmoid(W_g x_m + b_g)              feature informativeness gate, [B, d_m]
    h_m = dropout(relu(W_e (g_m * x_m) + b_e)) encoder, [B, H]
    z_m = W_c h_m + b_c                        the modality's own classifier, [B, K]
    c_m = W_t h_m + b_t                        its true-class-probability confidence, [B]
    logits = W_f concat_m(c_m h_m) + b_f       fused classifier on confidence-weighted features

and the training objective (every term weighted 1, as in the original):

    L = CE(logits) + sum_m [ mean(g_m) + mean_i (c_mi - p_mi)^2 + CE(z_m) ],
    p_mi = softmax(z_mi)[y_i]                  the true-class probability.

`mean(g_m)` is an L1 sparsity penalty on the (positive) gates. The confidence is a raw linear
output (no sigmoid), as in TencentAILabHealthcare/mmdynamics. The original lets the squared error
also train the classifier through `p` (no stop-gradient); `detach_target=True` (the clean
form of the paper's TCP regression, where the classifier is trained only by its CE) treats `p`
as a constant. A missing modality is given confidence 0, so its features drop out of the fused
classifier's input.

References:
  Han, Yao, Zhang, Zhang, Yao, Huang, Hu. "Multimodal Dynamics: Dynamical Fusion for Trustworthy
    Multimodal Classification." CVPR 2022.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from lqmm import checks
from lqmm import sampling
from lqmm.fusion import confidence as confidence_fusion
from lqmm.losses import confidence as confidence_losses
from lqmm.nn.evidential import dense
from lqmm.nn.evidential import module_path


def _linear(in_features: int, out_features: int, rngs: nnx.Rngs) -> nnx.Linear:
  """A linear layer with torch's `xavier_normal_` weights and zero bias (the original's init)."""
  return nnx.Linear(in_features, out_features, rngs=rngs,
                    kernel_init=nnx.initializers.variance_scaling(1.0, 'fan_avg', 'normal'),
                    bias_init=nnx.initializers.zeros_init())


def _xavier(params, key: jax.Array, sampler, scale: float, name: str):
  """Every kernel `scale * sqrt(2 / (fan_in + fan_out)) * sampler(...)`, biases zero."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  kernels = [leaf for path, leaf in leaves if module_path(path)[1] == 'kernel']
  pieces = iter(sampling.draw_split(sampler, key, kernels, jnp.float32))
  values = []
  for path, leaf in leaves:
    kind = module_path(path)[1]
    if kind == 'kernel':
      fan_in, fan_out = leaf.shape
      values.append(next(pieces) * scale * (2.0 / (fan_in + fan_out)) ** 0.5)
    elif kind == 'bias':
      values.append(jnp.zeros(leaf.shape, jnp.float32))
    else:
      raise ValueError(f'{name} expects only linear kernels and biases; got a leaf '
                       f'at {jax.tree_util.keystr(path)}.')
  return jax.tree_util.tree_unflatten(treedef, values)


def xavier_normal_init(params, *, key: jax.Array):
  """Draws every kernel `~ N(0, 2 / (fan_in + fan_out))` and zeroes every bias, in one draw.

  The same distribution as `_linear`'s initialisers (torch's `xavier_normal_` and a zero bias),
  from a single `jax.random.normal` call: fast to compile for a vmapped multi-seed init.

  Args:
    params: a pytree of linear-layer parameters (kernels `[fan_in, fan_out]` and biases).
    key: PRNG key.

  Returns:
    A pytree like `params` with fresh float32 values.
  """
  return _xavier(params, key, jax.random.normal, 1.0, 'xavier_normal_init')


def xavier_uniform_init(params, *, key: jax.Array):
  """Every kernel `~ U(+-sqrt(6 / (fan_in + fan_out)))`, every bias zero, in one draw.

  Glorot's uniform initialisation (TensorFlow's `glorot_uniform`, torch's `xavier_uniform_`),
  as CPM-Nets' `xavier_init`. Args and returns as `xavier_normal_init`.
  """
  sampler = functools.partial(jax.random.uniform, minval=-1.0, maxval=1.0)
  return _xavier(params, key, sampler, 3.0 ** 0.5, 'xavier_uniform_init')


def keep_mask(key: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
  """A dropout keep-mask with one random byte per element: 4x fewer generator calls.

  Threefry bits dominate a small model's training step on CPU. Each 32-bit draw is split into
  four bytes, and an element is dropped when its byte is below `round(256 * rate)`, so the
  effective rate is `round(256 * rate) / 256` (exact for 0.5, 0.25...).

  Args:
    key: PRNG key.
    shape: the mask's shape.
    rate: the drop rate in [0, 1).

  Returns:
    `(keep bool [shape], effective_rate)`.
  """
  threshold = round(256 * rate)
  size = math.prod(shape)
  words = jax.random.bits(key, (-(-size // 4),), jnp.uint32)
  shifts = jnp.arange(4, dtype=jnp.uint32) * jnp.uint32(8)
  octets = (words[:, None] >> shifts[None, :]) & jnp.uint32(255)
  keep = octets.reshape(-1)[:size].reshape(shape) >= jnp.uint32(threshold)
  return keep, threshold / 256


class DynamicsOutputs(NamedTuple):
  """What `MultimodalDynamics` returns.

  Attributes:
    logits: `[B, K]` fused classifier logits.
    modality_logits: `[M, B, K]` each modality's classifier logits.
    confidence: `[M, B]` predicted true-class probabilities.
    gates: tuple of M `[B, d_m]` feature gates.
  """
  logits: jax.Array
  modality_logits: jax.Array
  confidence: jax.Array
  gates: tuple[jax.Array, ...]


class MultimodalDynamics(nnx.Module):
  """The Multimodal Dynamics classifier (`MMDynamic` of the original code, one hidden layer).

  Args:
    dims: `{modality: input width}`.
    order: the modality order (fusion order of the concatenation).
    num_classes: K.
    hidden: encoder width H (1000 for ROSMAP in the original).
    dropout: dropout rate on the encoder features (quantised to 1/256, see `keep_mask`).
    compute_dtype: dtype of the encoder matmuls (None = the parameters' float32; bfloat16 halves
      memory traffic and, on CPUs with bf16 units, triples matmul speed). Gates, confidences and
      the loss stay float32.
    rngs: NNX random streams for the initial parameters.
  """

  def __init__(self, dims: Mapping[str, int], order: Sequence[str], num_classes: int, *,
               hidden: int = 1000, dropout: float = 0.5, compute_dtype=None, rngs: nnx.Rngs):
    checks.check_order(order, dims, 'dims')
    if not 0 <= dropout < 1:
      raise ValueError(f'dropout must lie in [0, 1); got {dropout!r}.')
    self.order = tuple(order)
    self.gates = nnx.Dict({m: _linear(dims[m], dims[m], rngs) for m in self.order})
    self.encoders = nnx.Dict({m: _linear(dims[m], hidden, rngs) for m in self.order})
    self.classifiers = nnx.Dict({m: _linear(hidden, num_classes, rngs) for m in self.order})
    self.confidences = nnx.Dict({m: _linear(hidden, 1, rngs) for m in self.order})
    self.fusion = _linear(len(self.order) * hidden, num_classes, rngs)
    self.dropout = dropout
    self.compute_dtype = compute_dtype

  def __call__(self, inputs: Mapping[str, jax.Array], mask: jax.Array | None = None, *,
               dropout_key: jax.Array | None = None) -> DynamicsOutputs:
    """Maps `{modality: [B, d_m]}` (and an optional bool `[M, B]` mask) to `DynamicsOutputs`.

    Dropout is applied only when `dropout_key` is given (training); one draw covers every
    modality.
    """
    checks.check_order(self.order, inputs, 'inputs')
    gates, features, logits, confidences = [], [], [], []
    hidden_width = self.fusion.kernel.shape[0] // len(self.order)
    keep = None
    if dropout_key is not None and self.dropout > 0:
      batch = jnp.shape(inputs[self.order[0]])[0]
      keep, rate = keep_mask(dropout_key, (len(self.order), batch, hidden_width), self.dropout)
    for index, name in enumerate(self.order):
      x = inputs[name]
      gate = jax.nn.sigmoid(dense(self.gates[name], x, self.compute_dtype))
      hidden = jax.nn.relu(dense(self.encoders[name], x * gate, self.compute_dtype))
      if keep is not None:
        hidden = jnp.where(keep[index], hidden / (1 - rate), 0)
      gates.append(gate)
      features.append(hidden)
      logits.append(self.classifiers[name](hidden))
      confidences.append(self.confidences[name](hidden)[:, 0])
    confidence = jnp.stack(confidences)
    if mask is not None:
      confidence = jnp.where(mask, confidence, 0)
    fused = self.fusion(confidence_fusion.fuse(features, mask, confidence=confidence))
    return DynamicsOutputs(fused, jnp.stack(logits), confidence, tuple(gates))


def loss_terms(outputs: DynamicsOutputs, labels: jax.Array, *,
               detach_target: bool = False) -> dict[str, jax.Array]:
  """The objective's terms (batch means), per modality where they are per modality.

  Args:
    outputs: the model's outputs on a batch (all modalities present).
    labels: int `[B]`.
    detach_target: treat the true-class probability as a constant (clean form); False is the
      original's behaviour.

  Returns:
    `{'fused_ce': [], 'gate': [M], 'confidence': [M], 'modality_ce': [M], 'total': []}`.
  """
  num_modalities = outputs.modality_logits.shape[0]
  broadcast = jnp.broadcast_to(labels, (num_modalities,) + labels.shape)
  squared_error = confidence_losses.confidence_loss(
      outputs.confidence, outputs.modality_logits, labels, stop_gradient=detach_target)
  terms = {
      'fused_ce': jnp.mean(optax.softmax_cross_entropy_with_integer_labels(outputs.logits,
                                                                           labels)),
      'gate': jnp.stack([jnp.mean(gate) for gate in outputs.gates]),
      'confidence': jnp.mean(squared_error, axis=1),
      'modality_ce': jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
          outputs.modality_logits, broadcast), axis=1),
  }
  terms['total'] = (terms['fused_ce'] + jnp.sum(terms['gate']) + jnp.sum(terms['confidence']) +
                    jnp.sum(terms['modality_ce']))
  return terms

