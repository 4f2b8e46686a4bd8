"""On-the-fly gradient modulation (OGM) and its generalisation enhancement (OGM-GE).

OGM slows down the encoder of the modality that currently dominates. Each step it scores every
modality by how well its unimodal logits (read off the fused head, see
`lqmm.nn.heads.split_linear_head`)
predict the labels, and scales that modality's encoder gradient by a coefficient `k <= 1` that
shrinks as the modality's lead grows. OGM-GE adds Gaussian noise to the scaled gradient to
restore the stochasticity that the scaling removed.

Two variants, selected by `faithful`:

- Clean (default), for any number of modalities M >= 2. Score: the batch mean of the
  true-class softmax probability. Ratio of modality m: `s_m / mean_{j != m} s_j`. Coefficient
  `k_m = 1 - tanh(alpha * relu(ratio_m - 1))`: 1 at a tie, continuous, below 1 only for the
  leading modalities. Every leaf of the modality's subtree is modulated. GE noise has standard
  deviation `std(g) * sqrt(1 - k^2)`, so it vanishes where nothing is suppressed and keeps the
  gradient's second moment about unchanged where something is.
- Faithful (`faithful=True`), the rule of the original code (GeWu-Lab/OGM-GE_CVPR2022,
  `main.py`, `train_epoch`), two modalities only, same coefficients: scores are batch sums;
  `ratio = s_1 / s_0`; if `ratio > 1` then `k_1 = 1 - tanh(alpha * ratio)` (not `ratio - 1`,
  so `k` jumps from 1 to `1 - tanh(alpha)` as the lead appears) and `k_0 = 1`, else
  `k_0 = 1 - tanh(alpha / ratio)` and `k_1 = 1` (a tie suppresses the first modality). Only
  leaves with 4 dimensions (conv kernels) are touched. GE noise has standard deviation
  `std(g) + 1e-8` (unbiased std of the unscaled gradient) and is added to both modalities'
  conv kernels, also to the one that was not suppressed.

In both variants an optional epoch window `[start_epoch, end_epoch]` (inclusive, as in the
original) limits the modulation and the noise; outside it the gradient passes unchanged.

References:
  Peng, Wei, Deng, Wang and Hu, "Balanced Multimodal Learning via On-the-fly Gradient
  Modulation", CVPR 2022.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lqmm import checks
from lqmm import sampling
from lqmm.optim import extra_args

__all__ = ['ScaleByOGMState', 'check_alpha', 'dominance_ratios', 'ge_noise_std', 'modality_scores',
           'ogm', 'ogm_coefficients', 'scale_by_ogm']

_GE_EPS = 1e-8


def modality_scores(unimodal_logits: jax.Array, labels: jax.Array, *,
                    reduction: str = 'mean') -> jax.Array:
  """The true-class softmax probability of each modality, reduced over the batch.

  Args:
    unimodal_logits: `[M, B, K]` logits (`-inf` is a zero probability).
    labels: `[B]` integer classes.
    reduction: `'mean'` (default) or `'sum'` (the original OGM code). Ratios do not depend on
      it.

  Returns:
    `[M]` scores, in the logits' dtype (at least float32).

  Raises:
    ValueError: wrong shapes, an empty batch, (concrete) NaN or `+inf` logits, labels out of
      range, or an unknown reduction.
    TypeError: `unimodal_logits` is not floating-point or `labels` not integer.
  """
  unimodal_logits = _check_logits(unimodal_logits, labels)
  if reduction not in ('mean', 'sum'):
    raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}.")
  log_probs = jax.nn.log_softmax(unimodal_logits, axis=-1)
  true_class = jnp.take_along_axis(log_probs, labels[None, :, None], axis=-1)[..., 0]
  probs = jnp.exp(true_class)
  return probs.mean(axis=1) if reduction == 'mean' else probs.sum(axis=1)


def dominance_ratios(scores: jax.Array) -> jax.Array:
  """`s_m / mean_{j != m} s_j` for every modality: above 1 for modalities ahead of the rest.

  Args:
    scores: `[M]` non-negative scores (`modality_scores`), M >= 2.

  Returns:
    `[M]` ratios.

  Raises:
    ValueError: `scores` is not `[M]` with M >= 2, or (concrete) holds a negative, NaN or
      infinite value.
    TypeError: `scores` is not floating-point.
  """
  _check_scores(scores)
  return _dominance_ratios(scores)


def _check_scores(scores) -> None:
  """Raises unless `scores` is floating `[M]`, M >= 2, with (concrete) finite values >= 0."""
  if jnp.ndim(scores) != 1 or jnp.shape(scores)[0] < 2:
    raise ValueError(f'scores must have shape [M] with M >= 2; got shape {jnp.shape(scores)}.')
  checks.check_floating(scores, 'scores')
  checks.check_scalar(scores, 'scores', low=0)


def _dominance_ratios(scores: jax.Array) -> jax.Array:
  num = scores.shape[0]
  others = (scores.sum() - scores) / (num - 1)
  return scores / others


def check_alpha(alpha, name: str = 'alpha') -> None:
  """Raises when a concrete `alpha` (Python, NumPy or JAX scalar) is negative, NaN or infinite."""
  if jnp.ndim(alpha):
    raise ValueError(f'{name} must be a scalar; got shape {jnp.shape(alpha)}.')
  try:
    checks.check_scalar(alpha, name, low=0)
  except TypeError as error:
    raise ValueError(str(error)) from None


def ogm_coefficients(scores: jax.Array, *, alpha, faithful: bool = False) -> jax.Array:
  """OGM's per-modality gradient coefficients from the modality scores.

  Args:
    scores: `[M]` positive scores (`modality_scores`).
    alpha: modulation strength (the original's `--alpha`), >= 0. A concrete negative alpha
      raises; a traced one (e.g. under `optax.inject_hyperparams` or a schedule) cannot, so it
      is clipped to 0, i.e. no modulation: a negative alpha would give coefficients above 1
      and NaN noise in OGM-GE.
    faithful: the original two-modality rule (see the module docstring) instead of the
      continuous one.

  Returns:
    `[M]` coefficients in [0, 1] (0 only where tanh saturates in float32).

  Raises:
    ValueError: `scores` is not `[M]` with M >= 2 or holds a negative, NaN or infinite value,
      `faithful` with M != 2, or a concrete negative, NaN or infinite `alpha`.

  Example:
    >>> ogm_coefficients(jnp.array([0.5, 0.5]), alpha=1.0)
    Array([1., 1.], dtype=float32)
  """
  _check_scores(scores)
  check_alpha(alpha)
  alpha = jnp.maximum(alpha, 0.0)  # the documented rule for traced values
  if not faithful:
    return 1 - jnp.tanh(alpha * jax.nn.relu(_dominance_ratios(scores) - 1))
  if jnp.shape(scores)[0] != 2:
    raise ValueError('faithful=True reproduces the original two-modality rule; got '
                     f'{jnp.shape(scores)[0]} modalities (use the default rule for M > 2).')
  ratio = scores[1] / scores[0]
  second_leads = ratio > 1
  one = jnp.ones_like(ratio)
  suppress_second = 1 - jnp.tanh(alpha * jax.nn.relu(ratio))
  suppress_first = 1 - jnp.tanh(alpha * jax.nn.relu(1 / ratio))
  return jnp.stack([jnp.where(second_leads, one, suppress_first),
                    jnp.where(second_leads, suppress_second, one)])


def ge_noise_std(gradient: jax.Array, coefficient: jax.Array, *,
                 faithful: bool = False) -> jax.Array:
  """The standard deviation of OGM-GE's noise for one gradient leaf.

  Args:
    gradient: the unscaled gradient leaf. A single-entry leaf (e.g. a scalar parameter) has
      standard deviation 0, so the clean rule gives it no noise; the faithful rule's unbiased
      std needs at least two entries.
    coefficient: its modality's OGM coefficient k in [0, 1] (`ogm_coefficients`).
    faithful: the original's `std(g) + 1e-8` (unbiased std, whatever k is) instead of the
      clean `std(g) * sqrt(1 - k^2)`.

  Returns:
    A scalar standard deviation.

  Raises:
    ValueError: (concrete) NaN or infinite `gradient` entries, a `coefficient` outside [0, 1]
      or NaN, or `faithful` with a `gradient` of fewer than two entries.
    TypeError: `gradient` is not floating-point.
  """
  checks.check_floating(gradient, 'gradient')
  checks.check_finite(gradient, 'gradient')
  checks.check_scalar(coefficient, 'coefficient', low=0, high=1)
  if faithful and jnp.size(gradient) < 2:
    raise ValueError('gradient needs at least two entries for the unbiased std of '
                     f'faithful=True; got shape {jnp.shape(gradient)}.')
  return _ge_noise_std(gradient, coefficient, faithful=faithful)


def _ge_noise_std(gradient: jax.Array, coefficient: jax.Array, *, faithful: bool) -> jax.Array:
  """`ge_noise_std` without the checks (for `scale_by_ogm`'s computed coefficients)."""
  if faithful:
    return jnp.std(gradient, ddof=1) + _GE_EPS
  return jnp.std(gradient) * jnp.sqrt(1 - coefficient ** 2)


class ScaleByOGMState(NamedTuple):
  """State of `scale_by_ogm`.

  Attributes:
    count: `i32[]` updates made so far (the noise key of step t is `fold_in(key, t)`).
    key: typed PRNG key of the generalisation-enhancement noise.
    scores: `f32[M]` the modality scores of the last update (for logging).
    coefficients: `f32[M]` the coefficients of the last update, 1 outside the epoch window.
  """
  count: jax.Array
  key: jax.Array
  scores: jax.Array
  coefficients: jax.Array


def scale_by_ogm(modality: int, num_modalities: int, *, key: jax.Array, alpha: float = 0.1,
                 generalization_enhancement: bool = True, faithful: bool = False,
                 start_epoch: int | None = None, end_epoch: int | None = None
                 ) -> optax.GradientTransformationExtraArgs:
  """OGM / OGM-GE for the parameters of one modality (use inside `optax.partition`).

  `update` takes keyword-only extra args `unimodal_logits: [M, B, K]` (modalities in a fixed
  order, `modality` indexing into it), `labels: [B]` and, when an epoch window is set,
  `epoch`. Other extra args are ignored, so the transform composes with any chain. The
  coefficient is computed from all M modalities and applied to the leaves this transform sees.

  Args:
    modality: the index of this transform's modality in `unimodal_logits`.
    num_modalities: M, the length of `unimodal_logits`' first axis.
    key: typed PRNG key of the GE noise, kept in the state. Give each modality its own (e.g.
      `jax.random.fold_in(key, modality)`); `ogm` does this for you.
    alpha: modulation strength (the original's `--alpha`; CREMA-D 0.8 in its README).
    generalization_enhancement: add the GE noise (OGM-GE) or not (OGM).
    faithful: reproduce the original's rule (two modalities, conv kernels only, unbiased std
      plus 1e-8 noise on both modalities, discontinuous coefficient); see the module docstring.
    start_epoch: first epoch of modulation (inclusive) or None for no window. The original
      uses 0.
    end_epoch: last epoch of modulation (inclusive) or None. The original uses 50.

  Returns:
    An `optax.GradientTransformationExtraArgs`.

  Raises:
    ValueError: a bad modality index, M < 2, negative alpha, or `faithful` with M != 2.

  Example:
    >>> import optax
    >>> labels = {'audio': 'audio', 'visual': 'visual', 'head': 'shared'}
    >>> key = jax.random.key(0)
    >>> tx = optax.chain(optax.partition({
    ...     'audio': scale_by_ogm(0, 2, key=jax.random.fold_in(key, 0)),
    ...     'visual': scale_by_ogm(1, 2, key=jax.random.fold_in(key, 1)),
    ...     'shared': optax.identity()}, labels), optax.sgd(0.1))
    >>> params = {'audio': jnp.ones(3), 'visual': jnp.ones(2), 'head': jnp.ones(1)}
    >>> state = tx.init(params)
    >>> logits = jnp.array([[[2.0, 0.0]], [[0.0, 0.0]]])  # audio is confident and right
    >>> updates, state = tx.update(params, state, params, unimodal_logits=logits,
    ...                            labels=jnp.array([0]))
    >>> bool(jnp.abs(updates['audio']).mean() < jnp.abs(updates['visual']).mean())
    True
  """
  extra_args.check_modality(modality, num_modalities)
  if faithful and num_modalities != 2:
    raise ValueError('faithful=True reproduces the original two-modality rule; got '
                     f'num_modalities={num_modalities}.')
  check_alpha(alpha)
  checks.check_key(key, 'key')

  def init_fn(params):
    del params
    ones = jnp.ones((num_modalities,), jnp.float32)
    return ScaleByOGMState(count=jnp.zeros([], jnp.int32), key=key, scores=ones,
                           coefficients=ones)

  def update_fn(updates, state, params=None, *, unimodal_logits=None, labels=None, epoch=None,
                **other_extra_args):
    del params, other_extra_args
    extra_args.require('scale_by_ogm', unimodal_logits=unimodal_logits, labels=labels)
    extra_args.check_stacked(unimodal_logits, 'unimodal_logits', num_modalities)
    active = extra_args.window_active('scale_by_ogm', epoch, start_epoch, end_epoch)
    scores = modality_scores(unimodal_logits, labels,
                             reduction='sum' if faithful else 'mean')
    coefficients = ogm_coefficients(scores, alpha=alpha, faithful=faithful)
    coefficients = jnp.where(active, coefficients, jnp.ones_like(coefficients))

    leaves, treedef = jax.tree.flatten(updates)
    touched = [leaf.ndim == 4 if faithful else True for leaf in leaves]
    if generalization_enhancement and any(touched):
      noise_key = jax.random.fold_in(state.key, state.count)
      targets = [leaf for leaf, hit in zip(leaves, touched) if hit]
      draws = iter(sampling.draw_split(jax.random.normal, noise_key, targets, jnp.float32))
    new_leaves = []
    for leaf, hit in zip(leaves, touched):
      if not hit:
        new_leaves.append(leaf)
        continue
      value = checks.upcast(leaf)
      coefficient = coefficients[modality].astype(value.dtype)
      new = coefficient * value
      if generalization_enhancement:
        noise_std = _ge_noise_std(value, coefficient, faithful=faithful)
        noise_std = jnp.where(active, noise_std, jnp.zeros_like(noise_std))
        new = new + noise_std * next(draws).astype(value.dtype)
      new_leaves.append(new.astype(leaf.dtype))
    new_state = ScaleByOGMState(count=optax.safe_increment(state.count), key=state.key,
                                scores=scores.astype(state.scores.dtype),
                                coefficients=coefficients.astype(state.coefficients.dtype))
    return jax.tree.unflatten(treedef, new_leaves), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def ogm(param_labels: Any, modalities: Sequence[str], *, key: jax.Array, alpha: float = 0.1,
        generalization_enhancement: bool = True, faithful: bool = False,
        start_epoch: int | None = None, end_epoch: int | None = None,
        others: Mapping[str, optax.GradientTransformation] | None = None
        ) -> optax.GradientTransformationExtraArgs:
  """OGM(-GE) over a whole parameter tree: `optax.partition` of one `scale_by_ogm` per modality.

  Chain it before the optimizer: `optax.chain(ogm(labels, ('audio', 'visual'), key=key),
  optax.sgd(1e-3, momentum=0.9))`.

  Args:
    param_labels: label pytree (or callable) for `optax.partition`, e.g. from
      `modality_labels`; leaves labelled with an entry of `modalities` are modulated.
    modalities: the labels in the order of `unimodal_logits`' first axis.
    key: typed PRNG key; modality m's noise uses `fold_in(key, m)`.
    alpha, generalization_enhancement, faithful, start_epoch, end_epoch: see `scale_by_ogm`.
    others: transforms for the labels that are not modalities (default: identity for every
      other label found in `param_labels`, which must then be a pytree, not a callable).

  Returns:
    An `optax.GradientTransformationExtraArgs` taking the extra args of `scale_by_ogm`.

  Raises:
    ValueError: duplicate modalities, or a callable `param_labels` without `others`.
  """
  return extra_args.partition_by_modality(
      param_labels, modalities,
      lambda index: scale_by_ogm(index, len(modalities), key=jax.random.fold_in(key, index),
                                 alpha=alpha,
                                 generalization_enhancement=generalization_enhancement,
                                 faithful=faithful, start_epoch=start_epoch,
                                 end_epoch=end_epoch),
      others)


def _check_logits(unimodal_logits, labels) -> jax.Array:
  """Checks `unimodal_logits` `[M, B, K]` and `labels` `[B]`; returns the logits upcast."""
  if jnp.ndim(unimodal_logits) != 3 or jnp.shape(unimodal_logits)[0] < 2:
    raise ValueError('unimodal_logits must have shape [M, B, K] with M >= 2; got shape '
                     f'{jnp.shape(unimodal_logits)}.')
  checks.check_nonempty(unimodal_logits, 'unimodal_logits', axis=1)
  unimodal_logits = checks.as_log_probs(unimodal_logits, 'unimodal_logits', '[M, B, K]', 3)
  checks.check_labels(labels, jnp.shape(unimodal_logits)[-1], jnp.shape(unimodal_logits)[1:2])
  return unimodal_logits
