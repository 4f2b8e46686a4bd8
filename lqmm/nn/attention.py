"""Self- and cross-attention fusion of M token streams with key-padding and presence masks.

`AttentionFusion` takes every modality's tokens `[B, N_m, D]` (token counts may differ), their
validity (`token_masks`, bool `[B, N_m]`: False marks padding, e.g. the end of a short audio
clip) and the modalities' presence (`mask`, bool `[M, B]`):

- `mode='self'`: one multi-head attention over the concatenation of all modalities' tokens,
  each modality's outputs returned in its own slot (a joint transformer layer);
- `mode='cross'`: per modality m its own multi-head attention whose queries are m's tokens and
  whose keys and values are the other modalities' tokens (MulT-style cross-modal attention).

A padded token or an absent modality's token is never a key; an absent modality's outputs are
zeros; a query with no valid key at all (nothing else present) gets a zero output instead of
the NaN of `torch.nn.MultiheadAttention` or the uniform average over padding of an unmasked
softmax. The attention is `flax.nnx.MultiHeadAttention` (query / key / value / out kernels
`[D, H, D/H]` and `[H, D/H, D]`); `torch_attention_params` converts the weights of a
`torch.nn.MultiheadAttention`, and with them the outputs and gradients equal torch's
(`tests/reference/generate_attention_vectors.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lqmm import checks

__all__ = ['AttentionFusion', 'load_torch_attention', 'softmax_attention',
           'torch_attention_params']

MODES = ('self', 'cross')


def torch_attention_params(state: Mapping[str, np.ndarray], num_heads: int) -> dict:
  """`nnx.MultiHeadAttention` parameters from a `torch.nn.MultiheadAttention` state dict.

  Args:
    state: `in_proj_weight [3D, D]`, `in_proj_bias [3D]`, `out_proj.weight [D, D]`,
      `out_proj.bias [D]` (torch's names; query, key and value stacked in that order).
    num_heads: H.

  Returns:
    `{'query' | 'key' | 'value' | 'out': {'kernel', 'bias'}}` as numpy arrays.
  """
  weight, bias = np.asarray(state['in_proj_weight']), np.asarray(state['in_proj_bias'])
  dim = weight.shape[1]
  if weight.shape != (3 * dim, dim) or dim % num_heads:
    raise ValueError(f'in_proj_weight must be [3 D, D] with D divisible by num_heads '
                     f'{num_heads}; got shape {weight.shape}.')
  head = dim // num_heads
  out = {}
  for index, name in enumerate(('query', 'key', 'value')):
    rows = slice(index * dim, (index + 1) * dim)
    out[name] = {'kernel': weight[rows].T.reshape(dim, num_heads, head),
                 'bias': bias[rows].reshape(num_heads, head)}
  out['out'] = {'kernel': np.asarray(state['out_proj.weight']).T.reshape(num_heads, head, dim),
                'bias': np.asarray(state['out_proj.bias'])}
  return out


def softmax_attention(query, key, value, bias=None, mask=None, broadcast_dropout=True,
                      dropout_rng=None, dropout_rate=0.0, deterministic=False, dtype=None,
                      precision=None, module=None, **kwargs):
  """Attention as explicit softmax weights times values, in the inputs' precision.

  An `attention_fn` for `nnx.MultiHeadAttention`: flax's default routes to
  `jax.nn.dot_product_attention`, whose result differs from the exact softmax by about 1e-7
  even in float64 (measured here); the weights of
  `nnx.nn.attention.dot_product_attention_weights` are exact, so parity with torch holds to
  round-off.
  """
  weights = nnx.nn.attention.dot_product_attention_weights(
      query, key, bias, mask, broadcast_dropout=broadcast_dropout, dropout_rng=dropout_rng,
      dropout_rate=dropout_rate, deterministic=deterministic, dtype=dtype, precision=precision,
      module=module, **kwargs)
  return jnp.einsum('...hqk,...khd->...qhd', weights, value, precision=precision)


def _attention(dim: int, num_heads: int, dropout_rate: float, rngs: nnx.Rngs):
  return nnx.MultiHeadAttention(num_heads, dim, qkv_features=dim, out_features=dim,
                                decode=False, dropout_rate=dropout_rate,
                                attention_fn=softmax_attention, rngs=rngs)


class AttentionFusion(nnx.Module):
  """Self- or cross-attention over M modalities' tokens with key-padding and presence masks.

  Args:
    dim: D, the token width of every modality.
    num_heads: H (dividing D).
    num_modalities: M (at least 2).
    mode: 'self' (one attention over all tokens) or 'cross' (one attention per modality, its
      tokens attending over the others').
    dropout_rate: dropout on the attention weights (needs `rngs` streams at call time).
    rngs: NNX random streams.
  """

  def __init__(self, dim: int, num_heads: int, *, num_modalities: int, mode: str = 'self',
               dropout_rate: float = 0.0, rngs: nnx.Rngs):
    checks.check_integer(dim, 'dim', minimum=1)
    checks.check_integer(num_heads, 'num_heads', minimum=1)
    checks.check_integer(num_modalities, 'num_modalities', minimum=2)
    checks.check_scalar(dropout_rate, 'dropout_rate', low=0, high=1, high_open=True)
    if mode not in MODES:
      raise ValueError(f'Unknown mode {mode!r}; valid modes: {", ".join(MODES)}.')
    if dim % num_heads:
      raise ValueError(f'num_heads {num_heads} must divide dim {dim}.')
    self.dim, self.mode, self.num_modalities = dim, mode, num_modalities
    if mode == 'self':
      self.attention = _attention(dim, num_heads, dropout_rate, rngs)
    else:
      self.attention = nnx.List([_attention(dim, num_heads, dropout_rate, rngs)
                                 for _ in range(num_modalities)])

  def _check(self, tokens, token_masks, mask):
    if len(tokens) != self.num_modalities:
      raise ValueError(f'tokens must hold {self.num_modalities} modalities; got {len(tokens)}.')
    batch = None
    for index, value in enumerate(tokens):
      shape = tuple(jnp.shape(value))
      if len(shape) != 3 or shape[-1] != self.dim:
        raise ValueError(f'tokens[{index}] must be [B, N, {self.dim}]; got shape {shape}.')
      checks.check_floating(value, f'tokens[{index}]')
      if batch is not None and shape[0] != batch:
        raise ValueError(f'tokens must share the batch size; tokens[{index}] has {shape[0]}, '
                         f'the earlier ones {batch}.')
      batch = shape[0]
    if token_masks is None:
      valid = [jnp.ones(jnp.shape(value)[:2], jnp.bool_) for value in tokens]
    else:
      if len(token_masks) != len(tokens):
        raise ValueError(f'token_masks must hold one mask per modality ({len(tokens)}); got '
                         f'{len(token_masks)}.')
      for index, (value, valid_m) in enumerate(zip(tokens, token_masks)):
        checks.check_mask(valid_m, jnp.shape(value)[:2], f'token_masks[{index}]')
      valid = [jnp.asarray(valid_m) for valid_m in token_masks]
    if mask is None:
      present = jnp.ones((len(tokens), batch), jnp.bool_)
    else:
      checks.check_mask(mask, (len(tokens), batch))
      present = jnp.asarray(mask)
    return [jnp.logical_and(v, present[index][:, None]) for index, v in enumerate(valid)]

  @staticmethod
  def _attend(attention, queries, keys, key_valid, **kwargs):
    """Attention with keys masked; zero output for a query without any valid key."""
    masks = key_valid[:, None, None, :]                                   # [B, 1, 1, Nk]
    # Masked keys get zero weight; zeroing them too keeps their NaN out of 0 * NaN.
    keys = jnp.where(key_valid[..., None], keys, 0)
    out = attention(queries, keys, keys, mask=masks, **kwargs)
    has_key = jnp.any(key_valid, axis=-1)[:, None, None]
    return jnp.where(has_key, out, 0)

  def __call__(self, tokens: Sequence[jax.Array], token_masks: Sequence[jax.Array] | None = None,
               mask: jax.Array | None = None, **kwargs) -> list[jax.Array]:
    """Every modality's attention output `[B, N_m, D]` (add it to the tokens as a residual).

    Args:
      tokens: M arrays `[B, N_m, D]`.
      token_masks: optional M bool arrays `[B, N_m]` (False = padding).
      mask: optional bool `[M, B]` (False = the modality is absent for the sample).
      **kwargs: passed to `nnx.MultiHeadAttention` (e.g. `deterministic`, `rngs`).
    """
    valid = self._check(tokens, token_masks, mask)
    sizes = [int(jnp.shape(value)[1]) for value in tokens]
    if self.mode == 'self':
      joint = jnp.concatenate([jnp.asarray(value) for value in tokens], axis=1)
      key_valid = jnp.concatenate(valid, axis=1)
      out = self._attend(self.attention, joint, joint, key_valid, **kwargs)
      pieces = jnp.split(out, np.cumsum(sizes)[:-1].tolist(), axis=1)
    else:
      pieces = []
      for index, attention in enumerate(self.attention):
        others = [j for j in range(len(tokens)) if j != index]
        keys = jnp.concatenate([jnp.asarray(tokens[j]) for j in others], axis=1)
        key_valid = jnp.concatenate([valid[j] for j in others], axis=1)
        pieces.append(self._attend(attention, jnp.asarray(tokens[index]), keys, key_valid,
                                   **kwargs))
    if mask is None:
      return pieces
    return [jnp.where(jnp.asarray(mask)[index][:, None, None], piece, 0)
            for index, piece in enumerate(pieces)]


def _load(attention: nnx.MultiHeadAttention, params: Mapping) -> None:
  """Sets an `nnx.MultiHeadAttention`'s parameters from `torch_attention_params`' output."""
  for name, values in params.items():
    layer = getattr(attention, name)
    layer.kernel.set_value(jnp.asarray(values['kernel']))
    layer.bias.set_value(jnp.asarray(values['bias']))


def load_torch_attention(attention: nnx.MultiHeadAttention, state: Mapping[str, np.ndarray],
                         num_heads: int) -> None:
  """Loads a `torch.nn.MultiheadAttention` state dict into an `nnx.MultiHeadAttention`."""
  _load(attention, torch_attention_params(state, num_heads))

