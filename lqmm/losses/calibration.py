"""CML: confidence should not rise when modalities are removed.

Calibrating Multimodal Learning (CML) regularises a multimodal classifier so that its
confidence on a subset of the modalities never exceeds its confidence on a superset. The
classifier is run on a nested chain of inputs `S_0 ⊃ S_1 ⊃ ... ⊃ S_{S-1}` (`S_0` all modalities,
each next input drops one more modality; the original removes them in a random order per
sample, `nested_subset_masks`, and replaces a removed modality by the training mean or by
learned latent codes). With confidence `c_s = max_k softmax(z_s)_k` and adjacent pairs, the
per-sample penalty is

    loss_b = sum_{s=0}^{S-2} max(0, c_{s+1,b} - c_{s,b} - tolerance),

zero when confidence never rises along the chain (up to `tolerance`, the original's slack
`epsilon`, default 0). The original sums it over the batch and weighs it by `beta`
(CPM-Nets) or `beta / 100` (MIWAE); sum the returned `[B]` values the same way.

`variant` picks which samples are penalised:

* `'plain'` (default): every sample, both confidences receive gradient (the paper's form).
* `'cpm'`: the CPM-Nets code (`CPM_Nets.rank_loss`) exempts samples where the smaller input
  is right and the larger one wrong (`correct_{s+1} and not correct_s`).
* `'miwae'`: the MIWAE code (`miwae/train.py`) penalises only samples the larger input gets
  right, and adds a second hinge for samples both inputs get wrong, in which the larger
  input's confidence is held constant (only the subset's confidence is pushed down).

In the exemptions, a sample is switched off by zeroing its difference before the slack is
subtracted, `max(0, w (c_{s+1} - c_s) - tolerance)`, as in the original; with `tolerance >= 0`
(required) that is the same as dropping it. The hinge has zero gradient at exactly 0 (PyTorch's
ReLU).

References:
  Ma, Zhang, Zhang, Wu, Fu, Zhou, Hu. "Calibrating Multimodal Learning." ICML 2023.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from lqmm import checks

__all__ = ['VARIANTS', 'calibration_loss', 'max_probability', 'nested_subset_masks']

VARIANTS = ('plain', 'cpm', 'miwae')


def max_probability(logits: jax.Array) -> jax.Array:
  """The confidence CML uses: the largest softmax probability, `[...]` from `[..., K]`.

  Args:
    logits: `[..., K]` logits; `-inf` (a class with probability 0) is allowed as long as each
      row has a finite entry.

  Returns:
    `[...]` confidences in `(0, 1]`.

  Raises:
    ValueError: `logits` has no class axis, or concrete `logits` hold NaN or `+inf`.
    TypeError: `logits` is not a floating-point array.

  Example:
    >>> import jax.numpy as jnp
    >>> max_probability(jnp.array([0., 0.]))
    Array(0.5, dtype=float32)
  """
  return _max_probability(checks.as_log_probs(logits, 'logits', '[..., K]'))


def _max_probability(logits: jax.Array) -> jax.Array:
  """`max_probability` of validated, upcast `logits`."""
  return jnp.max(jax.nn.softmax(logits, axis=-1), axis=-1)


def _hinge(x: jax.Array) -> jax.Array:
  """`max(0, x)` with gradient 0 at 0."""
  return jnp.where(x > 0, x, 0)


def calibration_loss(logits: jax.Array, labels: jax.Array | None = None, *,
                     tolerance: float = 0.0, variant: str = 'plain') -> jax.Array:
  """CML's per-sample regulariser over a nested chain of modality subsets, `[B]`.

  Args:
    logits: `[S, B, K]` logits of the same samples on S nested inputs, ordered from the most
      modalities (`s = 0`) to the fewest; each input's modalities contain the next one's.
    labels: int `[B]` class indices; needed by the `'cpm'` and `'miwae'` variants.
    tolerance: slack subtracted inside the hinge (the original's `epsilon`), `>= 0`.
    variant: `'plain'` (default), `'cpm'` or `'miwae'` (see the module docstring).

  Returns:
    `[B]` penalties summed over the S - 1 adjacent pairs; the original sums them over the batch.

  Raises:
    ValueError: `logits` is not `[S, B, K]` with S >= 2, concrete `logits` hold NaN or infinity,
      labels are missing, mis-shaped or out of range, `tolerance` is negative or NaN, or
      `variant` is unknown.
    TypeError: `logits` is not a floating-point array or `labels` are not integers.

  Example:
    >>> import jax.numpy as jnp
    >>> full = jnp.array([[2., 0.], [1., 0.]])     # confident on both samples
    >>> subset = jnp.array([[1., 0.], [3., 0.]])   # more confident on sample 1: penalised
    >>> calibration_loss(jnp.stack([full, subset])).round(4)
    Array([0.    , 0.2215], dtype=float32)
  """
  if variant not in VARIANTS:
    raise ValueError(f'variant must be one of {VARIANTS}; got {variant!r}.')
  if jnp.ndim(logits) != 3 or jnp.shape(logits)[0] < 2:
    raise ValueError('logits must have shape [S, B, K] with S >= 2 nested inputs; got shape '
                     f'{jnp.shape(logits)}.')
  checks.check_floating(logits, 'logits')
  checks.check_finite(logits, 'logits')
  checks.check_scalar(tolerance, 'tolerance', low=0)
  logits = checks.upcast(logits)
  confidence = _max_probability(logits)
  larger, smaller = confidence[:-1], confidence[1:]
  difference = smaller - larger
  if variant == 'plain':
    if labels is not None:
      checks.check_labels(labels, jnp.shape(logits)[-1], jnp.shape(logits)[1:2])
    return jnp.sum(_hinge(difference - tolerance), axis=0)
  if labels is None:
    raise ValueError(f"labels are required by variant {variant!r}; got None.")
  checks.check_labels(labels, jnp.shape(logits)[-1], jnp.shape(logits)[1:2])
  correct = jnp.argmax(logits, axis=-1) == labels[None]
  larger_correct, smaller_correct = correct[:-1], correct[1:]
  if variant == 'cpm':
    keep = ~(smaller_correct & ~larger_correct)
    return jnp.sum(_hinge(jnp.where(keep, difference, 0) - tolerance), axis=0)
  both_wrong = ~smaller_correct & ~larger_correct
  held = smaller - jax.lax.stop_gradient(larger)
  penalty = (_hinge(jnp.where(larger_correct, difference, 0) - tolerance) +
             _hinge(jnp.where(both_wrong, held, 0) - tolerance))
  return jnp.sum(penalty, axis=0)


def nested_subset_masks(num_modalities: int, batch_shape: Sequence[int] | int, *,
                        key: jax.Array) -> jax.Array:
  """Presence masks of CML's nested inputs: input s drops s modalities, `[M, M, *batch]`.

  Each sample draws its own random removal order, so `masks[s, :, b]` keeps all but the
  first s modalities of sample b's order: `masks[0]` is all True, `masks[M - 1]` keeps one
  modality, and every input's modalities contain the next one's.

  Args:
    num_modalities: M >= 2.
    batch_shape: the batch dims (an int for `[B]`), each `>= 0`.
    key: a `jax.random` key.

  Returns:
    bool `[M (inputs), M (modalities), *batch_shape]`.

  Raises:
    ValueError: `num_modalities < 2` or a negative entry of `batch_shape`.
    TypeError: `num_modalities` or an entry of `batch_shape` is not an integer, or `key` is not
      a typed PRNG key.

  Example:
    >>> import jax
    >>> masks = nested_subset_masks(3, 4, key=jax.random.key(0))
    >>> masks.shape, masks.sum(axis=1)[:, 0].tolist()
    ((3, 3, 4), [3, 2, 1])
  """
  num_modalities = checks.check_integer(num_modalities, 'num_modalities')
  if num_modalities < 2:
    raise ValueError(f'num_modalities must be >= 2 to drop modalities; got {num_modalities}.')
  if not isinstance(batch_shape, (tuple, list)):
    batch_shape = (batch_shape,)
  batch_shape = tuple(checks.check_integer(size, 'batch_shape') for size in batch_shape)
  if any(size < 0 for size in batch_shape):
    raise ValueError(f'batch_shape must hold non-negative sizes; got {batch_shape}.')
  checks.check_key(key)
  scores = jax.random.uniform(key, batch_shape + (num_modalities,))
  # rank[..., m]: the step at which modality m is removed (0 = first).
  rank = jnp.argsort(jnp.argsort(scores, axis=-1), axis=-1)
  rank = jnp.moveaxis(rank, -1, 0)                       # [M, *batch]
  steps = jnp.arange(num_modalities).reshape((num_modalities, 1) + (1,) * len(batch_shape))
  return rank[None] >= steps
