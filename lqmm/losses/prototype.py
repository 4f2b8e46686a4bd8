"""PMR: prototypical modal rebalance.

Each modality m keeps class prototypes `c_{m,k}`, the mean encoder feature of class k over a
data pass, refreshed once per epoch with an exponential moving average. Negative distances to
the prototypes are a non-parametric classifier per modality,

    p_m(k | x) = softmax_k(-d(z_m(x), c_{m,k}) / temperature),

whose cross-entropy (the prototypical cross-entropy, PCE) pulls a modality's features toward
its own class prototypes without going through the fused head. The mean probability of the
true class, `score_m`, measures how well modality m has learned; PMR adds the PCE of every
modality that lags behind the best one:

    loss = CE(fused logits) + sum_m beta_m PCE_m,
    beta_m = alpha  if score_m < max_m' score_m'  else 0,

inside the modulation window `start_epoch <= epoch <= end_epoch` (both inclusive); outside it
only the fused cross-entropy remains. For two modalities this is the released code's rule
(`ratio = score_audio / score_visual`; `ratio < 1` adds `alpha PCE_audio`, `ratio > 1` adds
`alpha PCE_visual`, an exact tie adds nothing); for M > 2 every lagging modality is pushed.

Prototypes: `prototypes` averages features per class (absent classes give 0 and a count of
0) and `update_prototypes` mixes `(1 - momentum) new + momentum old` with `momentum = 0.2`
(the released code's `momentum_coef`: the weight of the OLD prototypes); epoch 0 uses the
fresh means. The released code computes the means before training and after every epoch,
in eval mode, over the first `len(loader) // 10` training batches (at least one), or over
the whole validation set for AVE.

Defaults follow the released code (`main_Prototype_grad.py`): Euclidean, not squared,
distance and no temperature (its `--temperature` flag is never used). Differences, all in
cases where the original produces NaN:

* the Euclidean distance has gradient 0 at distance 0 (the original's is NaN there);
* an absent class gets a zero prototype with count 0, and `update_prototypes(..., counts)`
  keeps the old prototype for it (the original divides by zero: a NaN prototype, and every
  later EMA and loss is NaN).

The paper also describes an entropy regulariser on the dominant modality's prototype
distribution in early epochs; the released code has none. `pmr_loss(entropy_weight=w)` adds
`-w * mean_b H(p_m(. | x_b))` for the modality (or modalities) with the largest score while
`epoch < entropy_end_epoch`, when the others lag; `w = 0` (default) reproduces the code.

References:
  Fan, Xu, Wang, Wang, Guo. "PMR: Prototypical Modal Rebalance for Multimodal Learning."
    CVPR 2023.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lqmm import checks

__all__ = ['MOMENTUM', 'PMRStats', 'class_counts', 'pmr_loss', 'prototype_cross_entropy',
           'prototype_entropy', 'prototype_logits', 'prototype_scores', 'prototypes',
           'rebalance_coefficients', 'update_prototypes']

#: The released code's default EMA weight of the old prototypes (`--momentum_coef`).
MOMENTUM = 0.2


class PMRStats(NamedTuple):
  """Per-modality quantities of one PMR step (all `[M]`, held constant)."""
  scores: jax.Array
  coefficients: jax.Array
  prototype_ce: jax.Array


def class_counts(labels: jax.Array, num_classes: int, mask: jax.Array | None = None,
                 dtype=jnp.float32) -> jax.Array:
  """Number of (present) samples per class, `[K]` or `[M, K]` with a `[M, N]` mask.

  Args:
    labels: int `[N]` class indices.
    num_classes: K.
    mask: optional bool `[N]` or `[M, N]`; absent samples do not count.
    dtype: dtype of the counts.

  Returns:
    `[K]` counts, or `[M, K]` with a `[M, N]` mask (the `counts` of `update_prototypes`).

  Raises:
    ValueError: `num_classes < 1`, labels not `[N]` or outside `[0, num_classes)`, or a mask
      whose last axis is not N.
    TypeError: `num_classes` or labels are not integers, or the mask is not bool.

  Example:
    >>> import jax.numpy as jnp
    >>> class_counts(jnp.array([0, 2, 2]), 3)
    Array([1., 0., 2.], dtype=float32)
  """
  if jnp.ndim(labels) != 1:
    raise ValueError(f'labels must have shape [N]; got shape {jnp.shape(labels)}.')
  num_classes = checks.check_integer(num_classes, 'num_classes', minimum=1)
  checks.check_labels(labels, num_classes, jnp.shape(labels))
  onehot = jax.nn.one_hot(labels, num_classes, dtype=dtype)
  if mask is None:
    return jnp.sum(onehot, axis=-2)
  if jnp.ndim(mask) not in (1, 2) or jnp.shape(mask)[-1:] != jnp.shape(labels):
    raise ValueError(f'mask must have shape [N] or [M, N] with N = {jnp.shape(labels)[0]}; got '
                     f'shape {jnp.shape(mask)}.')
  if jnp.result_type(mask) != jnp.bool_:
    raise TypeError('mask must be a bool array (True = present); got dtype '
                    f'{jnp.result_type(mask)}.')
  onehot = jnp.broadcast_to(onehot, jnp.shape(mask) + (num_classes,))
  return jnp.sum(jnp.where(mask[..., None], onehot, 0), axis=-2)


def prototypes(features: jax.Array, labels: jax.Array, num_classes: int,
               mask: jax.Array | None = None) -> jax.Array:
  """Class prototypes: the mean feature of each class, `[..., K, D]`.

  Args:
    features: `[N, D]` or stacked `[M, N, D]` features of N samples.
    labels: int `[N]` class indices.
    num_classes: K.
    mask: optional bool `[N]` or `[M, N]`; absent samples do not count.

  Returns:
    `[..., K, D]` means; a class with no (present) sample gets zeros (see `class_counts`).

  Raises:
    ValueError: shapes do not match, concrete `features` hold NaN or infinity, `num_classes < 1`
      or labels lie outside `[0, num_classes)`.
    TypeError: `features` is not floating-point, `num_classes` or labels are not integers, or
      the mask is not bool.

  Example:
    >>> import jax.numpy as jnp
    >>> prototypes(jnp.array([[0., 2.], [2., 4.], [5., 5.]]), jnp.array([0, 0, 1]), 3)
    Array([[1., 3.],
           [5., 5.],
           [0., 0.]], dtype=float32)
  """
  checks.check_rank_at_least(features, 2, 'features', '[..., N, D]')
  checks.check_floating(features, 'features')
  num_classes = checks.check_integer(num_classes, 'num_classes', minimum=1)
  checks.check_finite(features, 'features')
  features = checks.upcast(features)
  checks.check_labels(labels, num_classes, jnp.shape(features)[-2:-1])
  if mask is None:
    mask = jnp.ones(jnp.shape(features)[:-1], bool)
  checks.check_mask(mask, jnp.shape(features)[:-1])
  onehot = jnp.broadcast_to(jax.nn.one_hot(labels, num_classes, dtype=features.dtype),
                            jnp.shape(mask) + (num_classes,))
  weights = jnp.where(mask[..., None], onehot, 0)                      # [..., N, K]
  sums = jnp.einsum('...nk,...nd->...kd', weights, features)
  counts = jnp.sum(weights, axis=-2)                                  # [..., K]
  return sums / jnp.where(counts > 0, counts, 1)[..., None]


def update_prototypes(old: jax.Array, new: jax.Array, momentum: float = MOMENTUM,
                      counts: jax.Array | None = None) -> jax.Array:
  """PMR's moving average `(1 - momentum) new + momentum old`, `[..., K, D]`.

  Args:
    old: the previous prototypes `[..., K, D]`.
    new: this pass's means `[..., K, D]`.
    momentum: weight of the OLD prototypes (the original's `momentum_coef`, 0.2).
    counts: optional `[..., K]` class counts of this pass; classes with count 0 keep `old`.

  Returns:
    `[..., K, D]` updated prototypes.

  Raises:
    ValueError: shapes differ, concrete `old` or `new` hold NaN or infinity, or `momentum` is
      outside `[0, 1]` or NaN.
    TypeError: `old` or `new` is not a floating-point array.

  Example:
    >>> import jax.numpy as jnp
    >>> update_prototypes(jnp.zeros((1, 2)), jnp.ones((1, 2)), 0.2)
    Array([[0.8, 0.8]], dtype=float32)
  """
  if jnp.shape(old) != jnp.shape(new):
    raise ValueError(f'old and new must have the same shape [..., K, D]; got {jnp.shape(old)} '
                     f'and {jnp.shape(new)}.')
  checks.check_floating(old, 'old')
  checks.check_floating(new, 'new')
  checks.check_finite(old, 'old')
  checks.check_finite(new, 'new')
  checks.check_scalar(momentum, 'momentum', low=0, high=1)
  old, new = checks.upcast(old), checks.upcast(new)
  mixed = (1 - momentum) * new + momentum * old
  if counts is None:
    return mixed
  if jnp.shape(counts) != jnp.shape(new)[:-1]:
    raise ValueError(f'counts must have shape {jnp.shape(new)[:-1]}; got {jnp.shape(counts)}.')
  return jnp.where((counts > 0)[..., None], mixed, old)


def _safe_sqrt(x: jax.Array) -> jax.Array:
  """`sqrt(x)` for `x >= 0` with gradient 0 at 0."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1)), 0)


def prototype_logits(features: jax.Array, class_prototypes: jax.Array, *, temperature: float = 1.0,
                     squared: bool = False) -> jax.Array:
  """Prototypical logits `-d(z, c_k) / temperature`, `[..., B, K]`.

  Args:
    features: `[..., B, D]` features (e.g. stacked `[M, B, D]`).
    class_prototypes: `[..., K, D]` prototypes with the same leading dims.
    temperature: divides the negative distances (the released code uses none: 1).
    squared: use the squared Euclidean distance instead of the distance.

  Returns:
    `[..., B, K]` logits.

  Raises:
    ValueError: the leading dims or the feature sizes differ, concrete `features` or
      `class_prototypes` hold NaN or infinity, or `temperature` is `<= 0`, NaN or infinite.
    TypeError: `features` or `class_prototypes` is not a floating-point array.

  Example:
    >>> import jax.numpy as jnp
    >>> prototype_logits(jnp.array([[3., 4.]]), jnp.array([[0., 0.], [3., 4.]]))
    Array([[-5., -0.]], dtype=float32)
  """
  checks.check_rank_at_least(features, 2, 'features', '[..., B, D]')
  checks.check_rank_at_least(class_prototypes, 2, 'class_prototypes', '[..., K, D]')
  checks.check_floating(features, 'features')
  checks.check_floating(class_prototypes, 'class_prototypes')
  if (jnp.shape(features)[:-2] != jnp.shape(class_prototypes)[:-2] or
      jnp.shape(features)[-1] != jnp.shape(class_prototypes)[-1]):
    raise ValueError('features [..., B, D] and class_prototypes [..., K, D] must share the '
                     f'leading dims and D; got shapes {jnp.shape(features)} and '
                     f'{jnp.shape(class_prototypes)}.')
  checks.check_finite(features, 'features')
  checks.check_finite(class_prototypes, 'class_prototypes')
  checks.check_scalar(temperature, 'temperature', low=0, low_open=True)
  dtype = jnp.promote_types(checks.upcast(features).dtype, checks.upcast(class_prototypes).dtype)
  features = jnp.asarray(features, dtype)
  class_prototypes = jnp.asarray(class_prototypes, dtype)
  difference = features[..., :, None, :] - class_prototypes[..., None, :, :]   # [..., B, K, D]
  squared_distance = jnp.sum(difference * difference, axis=-1)
  distance = squared_distance if squared else _safe_sqrt(squared_distance)
  return -distance / temperature


def _true_class_log_probability(logits: jax.Array, labels: jax.Array) -> jax.Array:
  log_probability = jax.nn.log_softmax(logits, axis=-1)
  onehot = jax.nn.one_hot(labels, jnp.shape(logits)[-1], dtype=logits.dtype)
  return jnp.sum(jnp.broadcast_to(onehot, jnp.shape(logits)) * log_probability, axis=-1)


def _masked_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
  """Mean over the last axis of `values [..., B]`, over present entries (0 if none)."""
  if mask is None:
    return jnp.mean(values, axis=-1)
  total = jnp.sum(jnp.where(mask, values, 0), axis=-1)
  count = jnp.sum(mask, axis=-1).astype(values.dtype)
  return total / jnp.where(count > 0, count, 1)


def _check_logits(logits, mask) -> jax.Array:
  """Validates prototypical `logits [..., B, K]` (and `mask`); returns them upcast."""
  checks.check_rank_at_least(logits, 2, 'logits', '[..., B, K]')
  checks.check_floating(logits, 'logits')
  checks.check_nonempty(logits, 'logits', axis=jnp.ndim(logits) - 2)
  checks.check_finite(logits, 'logits')
  if mask is not None:
    checks.check_mask(mask, jnp.shape(logits)[:-1])
  return checks.upcast(logits)


def _check_logits_labels(logits, labels, mask) -> jax.Array:
  """`_check_logits`, and `labels [B]` within `[0, K)`."""
  logits = _check_logits(logits, mask)
  checks.check_labels(labels, jnp.shape(logits)[-1], jnp.shape(logits)[-2:-1])
  return logits


def prototype_scores(logits: jax.Array, labels: jax.Array,
                     mask: jax.Array | None = None) -> jax.Array:
  """Mean probability of the true class under the prototypical classifier, `[...]`.

  The released code sums over the batch; the ratio of two modalities' scores is the same.

  Args:
    logits: `[..., B, K]` prototypical logits (e.g. `[M, B, K]`).
    labels: int `[B]`.
    mask: optional bool `[..., B]`; absent samples are left out.

  Returns:
    `[...]` scores in `[0, 1]`, held constant (no gradient); 0 where `mask` leaves no sample.

  Raises:
    ValueError: `logits` is not `[..., B, K]` with B >= 1 (an empty batch has no mean),
      concrete `logits` hold NaN or infinity, labels lie outside `[0, K)` or `mask` has the
      wrong shape.
    TypeError: `logits` is not floating-point, labels are not integers or `mask` is not bool.

  Example:
    >>> import jax.numpy as jnp
    >>> prototype_scores(jnp.zeros((2, 3, 4)), jnp.array([0, 1, 2]))
    Array([0.25, 0.25], dtype=float32)
  """
  return _scores(_check_logits_labels(logits, labels, mask), labels, mask)


def _scores(logits: jax.Array, labels: jax.Array, mask: jax.Array | None) -> jax.Array:
  """`prototype_scores` of validated inputs."""
  logits = jax.lax.stop_gradient(logits)
  probability = jnp.exp(_true_class_log_probability(logits, labels))
  return _masked_mean(probability, mask)


def prototype_cross_entropy(logits: jax.Array, labels: jax.Array,
                            mask: jax.Array | None = None) -> jax.Array:
  """PCE: mean cross-entropy of the prototypical classifier, `[...]`.

  Args:
    logits: `[..., B, K]` prototypical logits (e.g. `[M, B, K]`).
    labels: int `[B]`.
    mask: optional bool `[..., B]`; absent samples are left out.

  Returns:
    `[...]` mean cross-entropies; 0 where `mask` leaves no sample.

  Raises:
    ValueError: `logits` is not `[..., B, K]` with B >= 1 (an empty batch has no mean),
      concrete `logits` hold NaN or infinity, labels lie outside `[0, K)` or `mask` has the
      wrong shape.
    TypeError: `logits` is not floating-point, labels are not integers or `mask` is not bool.

  Example:
    >>> import jax.numpy as jnp
    >>> prototype_cross_entropy(jnp.zeros((2, 3, 4)), jnp.array([0, 1, 2])).round(4)
    Array([1.3863, 1.3863], dtype=float32)
  """
  return _cross_entropy(_check_logits_labels(logits, labels, mask), labels, mask)


def _cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array | None) -> jax.Array:
  """`prototype_cross_entropy` of validated inputs."""
  return _masked_mean(-_true_class_log_probability(logits, labels), mask)


def prototype_entropy(logits: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Mean entropy of the prototypical distribution, `[...]` from `[..., B, K]`.

  Args:
    logits: `[..., B, K]` prototypical logits (e.g. `[M, B, K]`).
    mask: optional bool `[..., B]`; absent samples are left out.

  Returns:
    `[...]` mean entropies; 0 where `mask` leaves no sample.

  Raises:
    ValueError: `logits` is not `[..., B, K]` with B >= 1 (an empty batch has no mean),
      concrete `logits` hold NaN or infinity, or `mask` has the wrong shape.
    TypeError: `logits` is not floating-point or `mask` is not bool.

  Example:
    >>> import jax.numpy as jnp
    >>> prototype_entropy(jnp.zeros((3, 2))).round(4)
    Array(0.6931, dtype=float32)
  """
  return _entropy(_check_logits(logits, mask), mask)


def _entropy(logits: jax.Array, mask: jax.Array | None) -> jax.Array:
  """`prototype_entropy` of validated inputs."""
  log_probability = jax.nn.log_softmax(logits, axis=-1)
  entropy = -jnp.sum(jnp.exp(log_probability) * log_probability, axis=-1)
  return _masked_mean(entropy, mask)


def rebalance_coefficients(scores: jax.Array, *, alpha: float = 1.0) -> jax.Array:
  """PMR's PCE weights: `alpha` for every modality scoring below the best, else 0, `[M]`.

  For M = 2 this is the released rule on `ratio = scores[0] / scores[1]`: `ratio < 1` gives
  `(alpha, 0)`, `ratio > 1` gives `(0, alpha)`, an exact tie `(0, 0)`.

  Args:
    scores: `[M]` prototype scores (`prototype_scores`).
    alpha: the weight of the added PCE (the original's `--alpha`, default 1).

  Returns:
    `[M]` coefficients, constant (no gradient).

  Raises:
    ValueError: `scores` is not `[M]`, concrete `scores` hold NaN or infinity, or `alpha` is
      negative, NaN or infinite.
    TypeError: `scores` is not a floating-point array.

  Example:
    >>> import jax.numpy as jnp
    >>> rebalance_coefficients(jnp.array([0.3, 0.6, 0.5]), alpha=2.0)
    Array([2., 0., 2.], dtype=float32)
  """
  if jnp.ndim(scores) != 1:
    raise ValueError(f'scores must have shape [M]; got shape {jnp.shape(scores)}.')
  checks.check_floating(scores, 'scores')
  checks.check_finite(scores, 'scores')
  checks.check_scalar(alpha, 'alpha', low=0)
  return _coefficients(checks.upcast(scores), alpha)


def _coefficients(scores: jax.Array, alpha) -> jax.Array:
  """`rebalance_coefficients` of validated inputs."""
  scores = jax.lax.stop_gradient(scores)
  lagging = scores < jnp.max(scores)
  return jnp.where(lagging, jnp.asarray(alpha, scores.dtype), 0)


def pmr_loss(fused_logits: jax.Array, features: jax.Array, class_prototypes: jax.Array,
             labels: jax.Array, *, epoch, alpha: float = 1.0, start_epoch: int = 0,
             end_epoch: int = 100, temperature: float = 1.0, squared: bool = False,
             mask: jax.Array | None = None, entropy_weight: float = 0.0,
             entropy_end_epoch: int = 0) -> tuple[jax.Array, PMRStats]:
  """PMR's training objective: fused cross-entropy plus the lagging modalities' PCE.

  Args:
    fused_logits: `[B, K]` logits of the fused classifier.
    features: `[M, B, D]` stacked encoder features (the same D for all modalities; compute
      each modality's PCE with `prototype_logits` if the sizes differ).
    class_prototypes: `[M, K, D]` prototypes, held constant (gradient stopped).
    labels: int `[B]`.
    epoch: the current epoch `>= 0` (an int or a traced scalar); the PCE terms are active for
      `start_epoch <= epoch <= end_epoch`.
    alpha: weight of a lagging modality's PCE, `>= 0`.
    start_epoch: first epoch of the modulation (the original's `modulation_starts`, 0).
    end_epoch: last epoch of the modulation, inclusive (`modulation_ends`, 100).
    temperature: divides the negative distances (1: the released code has none).
    squared: squared Euclidean distances instead of distances.
    mask: optional bool `[M, B]`; absent samples are left out of a modality's score and PCE
      (the fused cross-entropy is over all B samples).
    entropy_weight: weight `>= 0` of the optional entropy regulariser on the best modality (0:
      off, as in the released code).
    entropy_end_epoch: the regulariser is active for `epoch < entropy_end_epoch`.

  Returns:
    `(loss, PMRStats(scores, coefficients, prototype_ce))`: the scalar loss and `[M]`
    statistics (scores are means, coefficients include the epoch window).

  Raises:
    ValueError: shapes do not match, the batch is empty (B = 0 has no mean), concrete
      `fused_logits`, `features` or `class_prototypes` hold NaN or infinity, labels lie outside
      `[0, K)`, `mask` has the wrong shape, `epoch` is negative, or `alpha`, `temperature` or
      `entropy_weight` is out of range (negative; `temperature <= 0`), NaN or infinite.
    TypeError: an array input is not floating-point, labels are not integers or `mask` is not
      bool.

  Example:
    >>> import jax.numpy as jnp
    >>> features = jnp.array([[[0., 0.], [1., 1.]], [[2., 0.], [0., 2.]]])  # [M=2, B=2, D=2]
    >>> protos = jnp.array([[[0., 0.], [1., 1.]], [[0., 0.], [1., 1.]]])    # [M=2, K=2, D=2]
    >>> loss, stats = pmr_loss(jnp.zeros((2, 2)), features, protos, jnp.array([0, 1]), epoch=0)
    >>> stats.coefficients  # modality 1 lags: its PCE is added
    Array([0., 1.], dtype=float32)
  """
  if jnp.ndim(features) != 3:
    raise ValueError(f'features must have shape [M, B, D]; got shape {jnp.shape(features)}.')
  if jnp.ndim(class_prototypes) != 3 or jnp.shape(class_prototypes)[0] != jnp.shape(features)[0]:
    raise ValueError(f'class_prototypes must have shape [M, K, D] with M = '
                     f'{jnp.shape(features)[0]}; got shape {jnp.shape(class_prototypes)}.')
  if jnp.ndim(fused_logits) != 2 or jnp.shape(fused_logits) != (
      jnp.shape(features)[1], jnp.shape(class_prototypes)[1]):
    raise ValueError('fused_logits must have shape [B, K] = '
                     f'{(jnp.shape(features)[1], jnp.shape(class_prototypes)[1])}; got shape '
                     f'{jnp.shape(fused_logits)}.')
  checks.check_floating(fused_logits, 'fused_logits')
  checks.check_nonempty(fused_logits, 'fused_logits')
  checks.check_finite(fused_logits, 'fused_logits')
  num_classes = jnp.shape(class_prototypes)[1]
  checks.check_labels(labels, num_classes, jnp.shape(features)[1:2])
  if mask is not None:
    checks.check_mask(mask, jnp.shape(features)[:-1])
  checks.check_scalar(epoch, 'epoch', low=0)
  checks.check_scalar(alpha, 'alpha', low=0)
  checks.check_scalar(entropy_weight, 'entropy_weight', low=0)
  logits = prototype_logits(features, jax.lax.stop_gradient(class_prototypes),
                            temperature=temperature, squared=squared)
  fused_logits = jnp.asarray(checks.upcast(fused_logits), logits.dtype)
  fused_ce = -jnp.mean(_true_class_log_probability(fused_logits, labels))
  # The logits come from checked inputs: the internal forms skip the repeated value checks.
  scores = _scores(logits, labels, mask)
  prototype_ce = _cross_entropy(logits, labels, mask)
  active = (start_epoch <= epoch) & (epoch <= end_epoch)
  coefficients = jnp.where(active, _coefficients(scores, alpha), 0)
  best = scores == jnp.max(scores)
  regularised = best & jnp.any(~best) & (epoch < entropy_end_epoch)
  entropy = _entropy(logits, mask)
  loss = (fused_ce + jnp.sum(coefficients * prototype_ce) -
          entropy_weight * jnp.sum(jnp.where(regularised, entropy, 0)))
  stats = PMRStats(scores, coefficients, jax.lax.stop_gradient(prototype_ce))
  return loss, stats
