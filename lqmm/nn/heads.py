"""Classifier heads over per-modality features: linear and MMCosine heads split by modality.

A late-fusion linear head on concatenated features `[x_1, ..., x_M]` with kernel
`W = [W_1; ...; W_M]` (`W_m: [D_m, K]`, the rows that multiply modality m; Flax `Dense` layout,
for a PyTorch `nn.Linear` pass `weight.T`) gives logits `sum_m x_m W_m + b`. Its per-modality
terms are the unimodal logits that the balance methods score:

- `split_linear_head`: `x_m W_m + b / M` for every modality (OGM, AGM, PMR read these);
- `modality_cosine_logits` / `cosine_logits` (MMCosine): each modality's term replaced by a
  scaled cosine similarity,

      logits_k = s * sum_m <x_m / |x_m|, W_m[:, k] / |W_m[:, k]|>,

  normalising each modality's feature and, separately, each class column of that modality's
  slice of the kernel; the bias is not used. Each modality's contribution lies in `[-s, s]`, so
  no modality can dominate the fused logits through feature or weight norms. Norms are clamped
  below at `eps = 1e-12` (PyTorch's `F.normalize`), so a zero feature or a zero class column
  gives a zero cosine. The original trains with cross-entropy on these logits and uses `s = 10`.

Missing modalities (`mask` False) contribute 0, the identity of the sum over modalities.

These are pure `jax.numpy` functions on the head's kernel and bias arrays, so they work with any
neural-network library.

Faithfulness notes (MMCosine's `main_CD.py` handles exactly two 512-d modalities with the split
hard-coded at column 512; here the split follows the feature sizes and any M >= 1 works). Its
validation code reports the fused accuracy of the plain fused logits, not of the cosine logits.
OGM-GE splits the bias in two equal halves, as `split_linear_head` does for M = 2.

References:
  Xu, Feng, Zhang, Hu. "MMCosine: Multi-Modal Cosine Loss Towards Balanced Audio-Visual
    Fine-Grained Learning." ICASSP 2023.
  Peng, Wei, Deng, Wang, Hu. "Balanced Multimodal Learning via On-the-fly Gradient Modulation."
    CVPR 2022.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from lqmm import checks

#: PyTorch's `F.normalize` default: norms are clamped below at this value.
EPS = 1e-12


def _l2_normalize(x: jax.Array, axis: int, eps: float) -> jax.Array:
  """`x / max(|x|, eps)` along `axis`; the norm's gradient at 0 is taken as 0 (as in PyTorch)."""
  squared = jnp.sum(x * x, axis=axis, keepdims=True)
  positive = squared > 0
  norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1)), 0)
  return x / jnp.maximum(norm, eps)


def _as_list(features) -> list[jax.Array]:
  """Splits stacked `[M, ..., D]` features into a list; passes sequences through."""
  if isinstance(features, (list, tuple)):
    if not features:
      raise ValueError('features must hold at least one modality; got an empty sequence.')
    return [jnp.asarray(x) for x in features]
  features = jnp.asarray(features)
  checks.check_rank_at_least(features, 2, 'features', '[M, ..., D]')
  return list(features)


def split_kernel(kernel: jax.Array, dims: Sequence[int]) -> list[jax.Array]:
  """Splits a fused `[sum_m D_m, K]` kernel into the per-modality slices `[D_m, K]`.

  Args:
    kernel: `[sum_m D_m, K]` kernel of the linear head on concatenated features.
    dims: the feature sizes `D_m`, in the concatenation order.

  Returns:
    A list of M arrays `[D_m, K]`.

  Raises:
    ValueError: `kernel` is not 2-D or its rows do not add up to `sum(dims)`.

  Example:
    >>> import jax.numpy as jnp
    >>> [part.shape for part in split_kernel(jnp.zeros((5, 3)), (2, 3))]
    [(2, 3), (3, 3)]
  """
  if jnp.ndim(kernel) != 2:
    raise ValueError(f'kernel must have shape [sum_m D_m, K]; got shape {jnp.shape(kernel)}.')
  dims = [int(dim) for dim in dims]
  if sum(dims) != jnp.shape(kernel)[0]:
    raise ValueError(f'kernel must have sum(D_m) = {sum(dims)} rows for feature sizes {dims}; '
                     f'got shape {jnp.shape(kernel)}.')
  offsets = [0]
  for dim in dims:
    offsets.append(offsets[-1] + dim)
  return [kernel[start:stop] for start, stop in zip(offsets[:-1], offsets[1:])]


def modality_cosine_logits(features, kernel: jax.Array, *, scale: float = 10.0,
                           mask: jax.Array | None = None, eps: float = EPS) -> jax.Array:
  """Per-modality scaled cosine logits `s cos(x_m, W_m[:, k])`, `[M, ..., K]`.

  Args:
    features: a sequence of M arrays `[..., D_m]` (sizes may differ) or stacked `[M, ..., D]`.
    kernel: `[sum_m D_m, K]` kernel of the fused linear head (concatenation order = M order).
    scale: the scaling factor `s` (the original's `--scaling`, default 10).
    mask: optional bool `[M, ...]`; a missing modality's logits are 0.
    eps: lower clamp of the norms.

  Returns:
    `[M, ..., K]` logits, each in `[-scale, scale]`.

  Raises:
    ValueError: batch shapes differ, or `kernel` / `mask` do not match the features.

  Example:
    >>> import jax.numpy as jnp
    >>> features = [jnp.array([[3., 4.]]), jnp.array([[0., 2.]])]
    >>> kernel = jnp.array([[1., 0.], [0., 1.], [1., 0.], [0., -5.]])
    >>> modality_cosine_logits(features, kernel, scale=10.0)
    Array([[[  6.,   8.]],
    <BLANKLINE>
           [[  0., -10.]]], dtype=float32)
  """
  parts = _as_list(features)
  batch_shape = jnp.shape(parts[0])[:-1]
  for index, part in enumerate(parts):
    checks.check_floating(part, f'features[{index}]')
    if jnp.ndim(part) < 1 or jnp.shape(part)[:-1] != batch_shape:
      raise ValueError(f'features[{index}] must have shape {batch_shape} + (D_{index},) (all '
                       f'modalities share the batch dims); got shape {jnp.shape(part)}.')
  checks.check_floating(kernel, 'kernel')
  dtype = checks.upcast(kernel).dtype
  for part in parts:
    dtype = jnp.promote_types(dtype, checks.upcast(part).dtype)
  slices = split_kernel(jnp.asarray(kernel, dtype), [jnp.shape(part)[-1] for part in parts])
  logits = []
  for part, weight in zip(parts, slices):
    unit_features = _l2_normalize(jnp.asarray(part, dtype), -1, eps)
    unit_weight = _l2_normalize(weight, 0, eps)
    logits.append(scale * jnp.matmul(unit_features, unit_weight))
  logits = jnp.stack(logits)
  if mask is not None:
    checks.check_mask(mask, (len(parts),) + tuple(batch_shape))
    logits = jnp.where(mask[..., None], logits, 0)
  return logits


def cosine_logits(features, kernel: jax.Array, *, scale: float = 10.0,
                  mask: jax.Array | None = None, eps: float = EPS) -> jax.Array:
  """MMCosine's fused logits `s sum_m cos(x_m, W_m[:, k])`, `[..., K]`.

  Train with cross-entropy on these logits, as the original does.

  Args:
    features: a sequence of M arrays `[..., D_m]` or stacked `[M, ..., D]`.
    kernel: `[sum_m D_m, K]` kernel of the fused linear head; its bias is not used.
    scale: the scaling factor `s` (default 10, the original's).
    mask: optional bool `[M, ...]`; missing modalities contribute 0.
    eps: lower clamp of the norms.

  Returns:
    `[..., K]` logits in `[-M scale, M scale]`.

  Raises:
    ValueError: as `modality_cosine_logits`.

  Example:
    >>> import jax.numpy as jnp
    >>> features = jnp.array([[[3., 4.]], [[0., 2.]]])  # [M=2, B=1, D=2]
    >>> kernel = jnp.array([[1., 0.], [0., 1.], [1., 0.], [0., -5.]])
    >>> cosine_logits(features, kernel)
    Array([[ 6., -2.]], dtype=float32)
  """
  return jnp.sum(modality_cosine_logits(features, kernel, scale=scale, mask=mask, eps=eps),
                 axis=0)


def split_linear_head(features: Sequence[jax.Array], kernel: jax.Array,
                      bias: jax.Array | None = None) -> jax.Array:
  """Per-modality logits of a linear head over concatenated features.

  A fused head `concat(f_1, ..., f_M) @ kernel + bias` is the sum over modalities of
  `f_m @ kernel_m + bias / M`, where `kernel_m` is the block of rows fed by `f_m`. Those terms
  are the unimodal logits that OGM scores (the original splits the bias in two equal halves).

  Args:
    features: M arrays `[B, D_m]`, in the order they were concatenated.
    kernel: `[sum_m D_m, K]` (Flax layout: inputs first).
    bias: `[K]` or None.

  Returns:
    `[M, B, K]` unimodal logits; their sum over the modality axis is the fused logits.

  Raises:
    ValueError: fewer than two modalities, or widths that do not add up to `kernel`'s rows.

  Example:
    >>> import jax.numpy as jnp
    >>> f = [jnp.ones((2, 3)), jnp.ones((2, 1))]
    >>> split_linear_head(f, jnp.ones((4, 5)), jnp.ones(5)).shape
    (2, 2, 5)
  """
  if len(features) < 2:
    raise ValueError(f'features must hold at least 2 modalities; got {len(features)}.')
  widths = [int(jnp.shape(feature)[-1]) for feature in features]
  if jnp.ndim(kernel) != 2 or jnp.shape(kernel)[0] != sum(widths):
    raise ValueError(f'kernel must have shape [sum of feature widths {widths} = {sum(widths)}, K];'
                     f' got shape {jnp.shape(kernel)}.')
  stacked = jnp.stack([feature @ part
                       for feature, part in zip(features, split_kernel(kernel, widths))])
  if bias is not None:
    share = (bias / len(features)).astype(stacked.dtype)
    stacked = stacked + share.reshape((1,) * (stacked.ndim - 1) + share.shape)
  return stacked
