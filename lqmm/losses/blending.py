"""Gradient-Blending: unimodal auxiliary losses weighted by overfitting-to-generalisation ratios.

G-Blend trains every unimodal head (one per modality) next to the fused head and sums their losses
with weights `w [M + 1]` (unimodal heads first, the fused head last). The weights are estimated from
each head's train and validation loss at two checkpoints N and N + n (each head trained on its own):

    dG_k = L^V_k(N) - L^V_k(N + n)                                 (generalisation gained)
    dO_k = (L^V_k(N + n) - L^T_k(N + n)) - (L^V_k(N) - L^T_k(N))   (overfitting gained)
    w_k  = max(dG_k, 0) / max(dO_k^2, eps) / Z,                    Z normalises sum_k w_k to 1.

This is the paper's optimal blend `w_k ~ <grad L*, v_k> / sigma_k^2` with `<grad L*, v_k>`
approximated by `dG_k` and `sigma_k^2` by `dO_k^2`. Some reimplementations normalise with
`Z = sum_k dG_k / (2 dO_k^2)`, which makes the weights sum to 2; the weights the authors publish
(VMZ's `gradient_blending.md` table) sum to 1, and so do lqmm's. A head whose validation loss
rose (`dG_k < 0`) gets weight 0 (`min_weight` floors it); if
every head gets 0, the weights are uniform.

`estimator` selects the formula:

* `'paper'` (default): the formula above. With `eps=1e-8, min_weight=1e-8` it reproduces
  timeseriesAI/tsai's `GBlend.compute_weights` exactly.
* `'multibench'`: MultiBench's `gb_estimate` with its default `delta = False`, which uses the end
  point only: `O_k = L^V_k(N + n) - L^T_k(N + n)` (replaced by 1e-4 when negative) and
  `w_k = |L^V_k(N + n) / O_k^2|`. A head with `O_k == 0` gives a division by zero (NaN weights),
  as in the original.
* `'multibench_delta'`: MultiBench with `delta = True`: `w_k = |(L^V_k(N + n) - L^V_k(N)) / dO_k^2|`
  (absolute value instead of the clamp, no floor on `dO_k^2`).

The original Caffe2 code (facebookresearch/VMZ) has no weight estimator: the weights are
hyper-parameters (`--audio_weight --visual_weight --av_weight`) and the blended loss is
`sum_k w_k L_k` (`blended_loss`).

References:
  Wang, Tran, Feiszli. "What Makes Training Multi-modal Classification Networks Hard?"
    CVPR 2020.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lqmm import checks

__all__ = ['ESTIMATORS', 'blended_loss', 'gblend_weights']

ESTIMATORS = ('paper', 'multibench', 'multibench_delta')


def _prepare_losses(arrays: dict[str, jax.Array]) -> list[jax.Array]:
  shapes = {name: jnp.shape(value) for name, value in arrays.items()}
  first_name, first_shape = next(iter(shapes.items()))
  for name, shape in shapes.items():
    if shape != first_shape:
      raise ValueError(f'{name} must have the shape of {first_name} {first_shape} (heads on the '
                       f'last axis); got shape {shape}.')
  if len(first_shape) < 1 or first_shape[-1] < 2:
    raise ValueError(f'{first_name} must have shape [..., M + 1] with at least one unimodal head '
                     f'and the fused head last; got shape {first_shape}.')
  for name, value in arrays.items():
    checks.check_floating(value, name)
    checks.check_finite(value, name)
  dtype = jnp.result_type(*[checks.upcast(value) for value in arrays.values()])
  return [checks.upcast(value).astype(dtype) for value in arrays.values()]


def gblend_weights(train_losses_start: jax.Array, train_losses_end: jax.Array,
                   val_losses_start: jax.Array, val_losses_end: jax.Array, *,
                   estimator: str = 'paper', eps: float = 1e-8,
                   min_weight: float = 0.0) -> jax.Array:
  """G-Blend weights of the M unimodal heads and the fused head, `[..., M + 1]`.

  Args:
    train_losses_start: `[..., M + 1]` training losses of each head at checkpoint N (unimodal
      heads first, fused head last).
    train_losses_end: `[..., M + 1]` training losses at checkpoint N + n.
    val_losses_start: `[..., M + 1]` validation losses at checkpoint N.
    val_losses_end: `[..., M + 1]` validation losses at checkpoint N + n.
    estimator: `'paper'`, `'multibench'` or `'multibench_delta'` (see the module docstring).
    eps: floor of `dO_k^2` (`'paper'` only).
    min_weight: floor of the unnormalised weights (`'paper'` only; tsai uses 1e-8).

  Returns:
    `[..., M + 1]` non-negative weights summing to 1 along the last axis.

  Raises:
    ValueError: shapes differ, fewer than 2 heads, or concrete losses are not finite.
    KeyError: unknown `estimator`.

  Example:
    >>> import jax.numpy as jnp
    >>> weights = gblend_weights(jnp.array([1.0, 1.0, 1.0]), jnp.array([0.5, 0.6, 0.2]),
    ...                          jnp.array([1.1, 1.2, 1.1]), jnp.array([0.8, 0.9, 0.9]))
    >>> [round(float(weight), 3) for weight in weights]
    [0.197, 0.788, 0.015]
  """
  formula = checks.lookup(dict(zip(ESTIMATORS, ESTIMATORS)), estimator, 'estimator')
  train_start, train_end, val_start, val_end = _prepare_losses({
      'train_losses_start': train_losses_start, 'train_losses_end': train_losses_end,
      'val_losses_start': val_losses_start, 'val_losses_end': val_losses_end})
  overfit_start = val_start - train_start
  overfit_end = val_end - train_end
  if formula == 'paper':
    gain = jnp.maximum(val_start - val_end, 0)
    raw = gain / jnp.maximum(jnp.square(overfit_end - overfit_start), eps)
    raw = jnp.maximum(raw, min_weight)
    total = jnp.sum(raw, axis=-1, keepdims=True)
    uniform = jnp.ones_like(raw) / jnp.shape(raw)[-1]
    return jnp.where(total > 0, raw / jnp.where(total > 0, total, 1), uniform)
  if formula == 'multibench':
    overfit = jnp.where(overfit_end < 0, 1e-4, overfit_end)
    raw = jnp.abs(val_end / jnp.square(overfit))
  else:
    raw = jnp.abs((val_end - val_start) / jnp.square(overfit_end - overfit_start))
  return raw / jnp.sum(raw, axis=-1, keepdims=True)


def blended_loss(fused_loss: jax.Array, unimodal_losses: jax.Array, weights: jax.Array, *,
                 normalize: bool = False) -> jax.Array:
  """The G-Blend objective `w_fused L_fused + sum_m w_m L_m`, elementwise, `[...]`.

  Args:
    fused_loss: `[...]` loss of the fused head (a scalar or per-sample values).
    unimodal_losses: `[M, ...]` losses of the unimodal heads, same trailing shape.
    weights: `[M + 1]` weights, unimodal heads first and the fused head last (`gblend_weights`).
    normalize: divide by `sum(weights)`, as tsai's `GBlendLoss` does (no effect on weights that
      already sum to 1).

  Returns:
    `[...]` blended losses; average over the batch as the originals do.

  Raises:
    ValueError: shapes are inconsistent, or concrete `fused_loss`, `unimodal_losses` or
      `weights` hold NaN or infinity.
    TypeError: an input is not a floating-point array.

  Example:
    >>> import jax.numpy as jnp
    >>> blended_loss(jnp.array(1.0), jnp.array([2.0, 4.0]), jnp.array([0.25, 0.25, 0.5]))
    Array(2., dtype=float32)
  """
  checks.check_floating(fused_loss, 'fused_loss')
  checks.check_floating(unimodal_losses, 'unimodal_losses')
  checks.check_floating(weights, 'weights')
  checks.check_rank_at_least(unimodal_losses, 1, 'unimodal_losses', '[M, ...]')
  num_modalities = jnp.shape(unimodal_losses)[0]
  if jnp.shape(unimodal_losses)[1:] != jnp.shape(fused_loss):
    raise ValueError(f'unimodal_losses must have shape [M] + fused_loss.shape = [M] + '
                     f'{list(jnp.shape(fused_loss))}; got shape {jnp.shape(unimodal_losses)}.')
  if jnp.shape(weights) != (num_modalities + 1,):
    raise ValueError(f'weights must have shape [M + 1] = ({num_modalities + 1},) (unimodal heads '
                     f'first, fused last); got shape {jnp.shape(weights)}.')
  checks.check_finite(fused_loss, 'fused_loss')
  checks.check_finite(unimodal_losses, 'unimodal_losses')
  checks.check_finite(weights, 'weights')
  dtype = jnp.result_type(*[checks.upcast(x) for x in (fused_loss, unimodal_losses, weights)])
  fused_loss, unimodal_losses, weights = (checks.upcast(x).astype(dtype)
                                          for x in (fused_loss, unimodal_losses, weights))
  unimodal_weights = weights[:-1].reshape((num_modalities,) + (1,) * jnp.ndim(fused_loss))
  total = weights[-1] * fused_loss + jnp.sum(unimodal_weights * unimodal_losses, axis=0)
  if normalize:
    total = total / jnp.sum(weights)
  return total
