"""The bad-input suite: every public function of the pure core, fed the standard bad values.

For every function exported (through `__all__`, recursively) by `lqmm.fusion`, `lqmm.losses`,
`lqmm.metrics`, `lqmm.corrupt`, `lqmm.missing` and `lqmm.optim`, `CASES` holds one valid call.
The suite mutates one argument of that call at a time:

- floating arrays: a NaN, a `+inf`, rank 0, an integer dtype;
- integer arrays (labels, indices): a value far out of range, a negative one, a float dtype;
- bool arrays (masks): a float dtype, rank 0;
- NIG pytrees: a NaN and a negative value in each field;
- numeric hyper-parameters: NaN and a negative value, each as a Python, NumPy and JAX scalar;
- batch and modality axes (where the case names them): emptied.

Each bad call must raise (ValueError, TypeError or KeyError) with a message that names the
argument, or give a documented correct result: an entry of the case's `allow` (with the reason)
and an output free of NaN. An emptied batch or modality axis may also give a NaN-free result
(an empty fused batch is a correct answer; a NaN mean over nothing is not).

A new public function fails `test_every_public_function_has_a_case` until it gets a case here.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import types
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lqmm import fusion
from lqmm import optim
from lqmm.fusion import nig as nig_lib
from lqmm.losses import ranking

PACKAGES = ('lqmm.fusion', 'lqmm.losses', 'lqmm.metrics', 'lqmm.corrupt', 'lqmm.missing',
            'lqmm.optim', 'lqmm.cluster', 'lqmm.denoise')


def _public_functions() -> dict[str, Callable]:
  """`{qualified name: function}` over the packages' `__all__`, recursively, without repeats."""
  found, seen = {}, set()

  def walk(module: types.ModuleType):
    names = getattr(module, '__all__', None)
    assert names is not None, f'{module.__name__} has no __all__'
    for name in names:
      value = getattr(module, name)
      if isinstance(value, types.ModuleType):
        if value.__name__.startswith('lqmm.'):
          walk(value)
      elif callable(value) and not inspect.isclass(value) and id(value) not in seen:
        seen.add(id(value))
        home = getattr(value, '__module__', None) or module.__name__
        found[f'{home}.{getattr(value, "__name__", name)}'] = value

  for package in PACKAGES:
    walk(importlib.import_module(package))
  return found


# ------------------------------------------------------------------ valid inputs

M, B, K, D = 2, 4, 3, 5
_RNG = np.random.default_rng(0)


def _normal(*shape):
  return jnp.asarray(_RNG.normal(size=shape), jnp.float32)


def _uniform(*shape, low=0.0, high=1.0):
  return jnp.asarray(_RNG.uniform(low, high, size=shape), jnp.float32)


LOGITS = _normal(M, B, K)
LOG_PROBS = jax.nn.log_softmax(LOGITS)
PROBS = jax.nn.softmax(LOGITS)
ALPHA = 1 + _uniform(M, B, K, high=3.0)
LABELS = jnp.array([0, 1, 2, 0], jnp.int32)
MASK = jnp.ones((M, B), bool).at[1, 0].set(False)
KEY = jax.random.key(0)
NIG = nig_lib.NIG(_normal(M, B, 1), 1 + _uniform(M, B, 1), 2 + _uniform(M, B, 1),
                  1 + _uniform(M, B, 1))
NIG_ONE = jax.tree.map(lambda leaf: leaf[0], NIG)
VIEW = _normal(B, D)
VIEW_MASK = jnp.array([True, True, True, False])
ALL_PRESENT = jnp.ones(B, bool)
PARAMS = {'audio': {'w': jnp.ones(2)}, 'visual': {'w': jnp.ones(2)}}
PARAM_LABELS = {'audio': {'w': 'audio'}, 'visual': {'w': 'visual'}}


@dataclasses.dataclass(frozen=True)
class Case:
  """One valid call and how to read its arguments.

  Attributes:
    args: the valid keyword arguments.
    call: `(**args) -> output`; None calls the function itself.
    batch: `{argument: axis}` of the batch axes emptied together.
    modality: `{argument: axis}` of the modality axes emptied together.
    allow: `{(argument, kind): reason}`: bad values with a documented, NaN-free result.
    names: `{argument: text}` the error must contain instead of the argument's name.
    passes_values: the function only moves values (an allowed NaN comes back as it went in).
  """
  args: dict
  call: Callable | None = None
  batch: dict = dataclasses.field(default_factory=dict)
  modality: dict = dataclasses.field(default_factory=dict)
  allow: dict = dataclasses.field(default_factory=dict)
  names: dict = dataclasses.field(default_factory=dict)
  passes_values: bool = False


def _fusion_cases() -> dict[str, Case]:
  stacked = {'x': 0}
  per_modality_batch = {'alpha': 1, 'mask': 1}
  cases = {
      'base.apply_mask': Case(
          {'rule': fusion.product.RULE, 'x': LOG_PROBS, 'mask': MASK},
          batch={'x': 1, 'mask': 1}, modality={'x': 0, 'mask': 0},
          allow={('x', 'inf'): 'entries are replaced whatever they hold; the rule\'s combine '
                 'checks the values that remain'}),
      'base.fuse': Case({'rule': fusion.product.RULE, 'x': LOG_PROBS, 'mask': MASK},
                        batch={'x': 1, 'mask': 1}, modality={'x': 0, 'mask': 0}),
      'base.stack_modalities': Case(
          {'a': LOGITS[0], 'b': LOGITS[1]},
          call=lambda a, b: fusion.stack_modalities({'a': a, 'b': b}, ('a', 'b')),
          batch={'a': 0, 'b': 0}, names={'a': 'tree', 'b': 'tree'},
          passes_values=True,
          allow={(arg, kind): 'stacking only rearranges arrays; values are the fusion rule\'s '
                 'to check' for arg in 'ab' for kind in ('nan', 'inf')}),
      'base.tree_reduce': Case({'combine': fusion.product.combine, 'x': LOG_PROBS},
                               batch={'x': 1}, modality=stacked),
      'baselines.combine': Case({'a': LOGITS[0], 'b': LOGITS[1]}, batch={'a': 0, 'b': 0}),
      'baselines.fuse': Case({'x': LOGITS, 'mask': MASK, 'reduction': 'mean'},
                             batch={'x': 1, 'mask': 1}, modality={'x': 0, 'mask': 0}),
      'baselines.concat': Case({'features': LOGITS, 'mask': MASK},
                               batch={'features': 1, 'mask': 1},
                               modality={'features': 0, 'mask': 0}),
      'bayes.identity_like': Case(
          {'log_probs': LOG_PROBS[0], 'log_prior': LOG_PROBS[0, 0]}, batch={'log_probs': 0},
          allow={('log_probs', kind): 'the identity (the prior) only reads the shape'
                 for kind in ('nan', 'inf')}),
      'bayes.combine': Case({'log_probs_a': LOG_PROBS[0], 'log_probs_b': LOG_PROBS[1],
                             'log_prior': LOG_PROBS[0, 0]},
                            batch={'log_probs_a': 0, 'log_probs_b': 0}),
      'bayes.rule': Case({'log_prior': LOG_PROBS[0, 0]}),
      'bayes.fuse': Case({'log_probs': LOG_PROBS, 'mask': MASK, 'log_prior': LOG_PROBS[0, 0]},
                         batch={'log_probs': 1, 'mask': 1},
                         modality={'log_probs': 0, 'mask': 0}),
      'bayes.with_background': Case({'foreground': PROBS[0]}, batch={'foreground': 0}),
      'confidence.true_class_probability': Case({'logits': LOGITS[0], 'labels': LABELS},
                                                batch={'logits': 0, 'labels': 0}),
      'confidence.fuse': Case({'features': LOGITS, 'mask': MASK,
                               'confidence': _uniform(M, B)},
                              batch={'features': 1, 'mask': 1, 'confidence': 1},
                              modality={'features': 0, 'mask': 0, 'confidence': 0}),
      'dempster_shafer.identity_like': Case(
          {'alpha': ALPHA[0]}, batch={'alpha': 0},
          allow={(kind_arg, kind): 'the identity is alpha = 1 whatever the input holds; only '
                 'its shape is read' for kind_arg in ('alpha',)
                 for kind in ('nan', 'inf', 'int_dtype')}),
      'dempster_shafer.combine': Case({'alpha_a': ALPHA[0], 'alpha_b': ALPHA[1]},
                                      batch={'alpha_a': 0, 'alpha_b': 0}),
      'dempster_shafer.fuse': Case({'alpha': ALPHA, 'mask': MASK}, batch=per_modality_batch,
                                   modality={'alpha': 0, 'mask': 0}),
      'dempster_shafer.fuse_log_evidence': Case({'alpha': ALPHA, 'mask': MASK},
                                                batch=per_modality_batch,
                                                modality={'alpha': 0, 'mask': 0}),
      'dempster_shafer.opinion': Case({'alpha': ALPHA[0]}, batch={'alpha': 0}),
      'dempster_shafer.fuse_opinion': Case({'alpha': ALPHA, 'mask': MASK},
                                           batch=per_modality_batch,
                                           modality={'alpha': 0, 'mask': 0}),
      'dempster_shafer.expected_probability': Case({'alpha': ALPHA[0]}, batch={'alpha': 0}),
      'energy.confidence': Case({'logits': LOGITS[0], 'temperature': 10.0},
                                batch={'logits': 0}),
      'energy.weights': Case({'logits': LOGITS, 'mask': MASK, 'temperature': 10.0},
                             batch={'logits': 1, 'mask': 1}, modality={'logits': 0, 'mask': 0}),
      'energy.fuse': Case({'logits': LOGITS, 'mask': MASK, 'temperature': 10.0},
                          batch={'logits': 1, 'mask': 1}, modality={'logits': 0, 'mask': 0}),
      'entropy.normalized_entropy': Case({'logits': LOGITS[0]}, batch={'logits': 0}),
      'entropy.weights': Case({'logits': LOGITS, 'mask': MASK},
                              batch={'logits': 1, 'mask': 1},
                              modality={'logits': 0, 'mask': 0}),
      'entropy.fuse': Case({'logits': LOGITS, 'mask': MASK},
                           batch={'logits': 1, 'mask': 1}, modality={'logits': 0, 'mask': 0}),
      'nig.as_nig': Case({'nig': NIG_ONE}),
      'nig.identity_like': Case(
          {'nig': NIG_ONE},
          allow={('nig', kind): 'the identity (nu = 0) only reads the shapes'
                 for kind in ('nan', 'negative', 'int_dtype')}),
      'nig.combine': Case({'nig_a': NIG_ONE, 'nig_b': jax.tree.map(lambda x: x[1], NIG)}),
      'nig.fuse': Case({'nig': NIG, 'mask': MASK}),
      'nig.aleatoric': Case({'nig': NIG_ONE}),
      'nig.epistemic': Case({'nig': NIG_ONE}),
      'nig.predictive_variance': Case({'nig': NIG_ONE}),
      'nig.from_outputs': Case({'outputs': _normal(B, 1, 4)}, batch={'outputs': 0}),
      'noisy_or.combine': Case({'probs_a': PROBS[0], 'probs_b': PROBS[1]},
                               batch={'probs_a': 0, 'probs_b': 0}),
      'noisy_or.fuse': Case({'probs': PROBS, 'mask': MASK}, batch={'probs': 1, 'mask': 1},
                            modality={'probs': 0, 'mask': 0}),
      'noisy_or.mean_entropy': Case({'logits': LOGITS[0]}, batch={'logits': 0}),
      'noisy_or.entropy_statistics': Case({'entropy': _uniform(M, B)}, batch={'entropy': 1},
                                          modality={'entropy': 0}),
      'noisy_or.flattening_factor': Case({'entropy': _uniform(M, B),
                                          'mean': _uniform(M, low=0.5),
                                          'std': _uniform(M, low=0.1)},
                                         batch={'entropy': 1}),
      'noisy_or.rebalance': Case({'probs': PROBS[0], 'prior': jnp.array([0.5, 0.3, 0.2]),
                                  'beta': 0.5}, batch={'probs': 0}),
      'noisy_or.uno': Case({'logits': LOGITS, 'mask': MASK, 'mean': _uniform(M, low=0.5),
                            'std': _uniform(M, low=0.1)},
                           batch={'logits': 1, 'mask': 1}),
      'product.identity_like': Case(
          {'log_probs': LOG_PROBS[0]}, batch={'log_probs': 0},
          allow={('log_probs', kind): 'the identity (uniform) only reads the shape'
                 for kind in ('nan', 'inf', 'int_dtype')}),
      'product.combine': Case({'log_probs_a': LOG_PROBS[0], 'log_probs_b': LOG_PROBS[1]},
                              batch={'log_probs_a': 0, 'log_probs_b': 0}),
      'product.fuse': Case({'log_probs': LOG_PROBS, 'mask': MASK},
                           batch={'log_probs': 1, 'mask': 1},
                           modality={'log_probs': 0, 'mask': 0}),
      'product.fuse_gaussian': Case({'mean': LOGITS, 'variance': 1 + _uniform(M, B, K),
                                     'mask': MASK},
                                    batch={'mean': 1, 'variance': 1, 'mask': 1},
                                    modality={'mean': 0, 'variance': 0, 'mask': 0}),
      'subjective_logic.combine': Case({'alpha_a': ALPHA[0], 'alpha_b': ALPHA[1]},
                                       batch={'alpha_a': 0, 'alpha_b': 0}),
      'subjective_logic.fuse': Case({'alpha': ALPHA, 'mask': MASK}, batch=per_modality_batch,
                                    modality={'alpha': 0, 'mask': 0}),
      'conflictive.fuse': Case({'alpha': ALPHA, 'mask': MASK}, batch=per_modality_batch,
                               modality={'alpha': 0, 'mask': 0}),
      'conflictive.degree_of_conflict': Case({'alpha': ALPHA, 'mask': MASK},
                                             batch=per_modality_batch,
                                             modality={'alpha': 0, 'mask': 0}),
      'subjective_logic.discount': Case({'alpha': ALPHA[0], 'trust': jnp.float32(0.5)},
                                        batch={'alpha': 0}),
      'weighted.finish_weights': Case({'weights': _uniform(M, B), 'mask': MASK,
                                       'stop_gradient': True},
                                      batch={'weights': 1, 'mask': 1},
                                      modality={'weights': 0, 'mask': 0}),
      'weighted.weighted_sum': Case({'x': LOGITS, 'weights': _uniform(M, B)},
                                    batch={'x': 1, 'weights': 1},
                                    modality={'x': 0, 'weights': 0}),
      'weighted.fuse': Case({'x': LOGITS, 'mask': MASK, 'weights': _uniform(M, B)},
                            batch={'x': 1, 'mask': 1, 'weights': 1},
                            modality={'x': 0, 'mask': 0, 'weights': 0}),
      'weighted.weight_loss_covariance': Case(
          {'weights': _uniform(M, B), 'losses': _uniform(M, B), 'mask': MASK},
          batch={'weights': 1, 'losses': 1, 'mask': 1}),
  }
  return {f'lqmm.fusion.{name}': case for name, case in cases.items()}


def _loss_cases() -> dict[str, Case]:
  heads = _uniform(B, M + 1, low=0.5, high=2.0)
  prototypes = _normal(M, K, D)
  features = _normal(M, B, D)
  cases = {
      'blending.gblend_weights': Case({'train_losses_start': heads + 1,
                                       'train_losses_end': heads,
                                       'val_losses_start': heads + 1.2,
                                       'val_losses_end': heads + 0.1}),
      'blending.blended_loss': Case({'fused_loss': _uniform(B), 'unimodal_losses': _uniform(M, B),
                                     'weights': _uniform(M + 1)}),
      'calibration.max_probability': Case({'logits': LOGITS[0]}, batch={'logits': 0}),
      'adaptation.reliability_aware': Case({'logits': LOGITS[0]}, batch={'logits': 0}),
      'adaptation.balance_entropy': Case({'logits': LOGITS[0]}, batch={'logits': 0}),
      'adaptation.read_loss': Case({'logits': LOGITS[0]}, batch={'logits': 0}),
      'calibration.calibration_loss': Case({'logits': LOGITS, 'labels': LABELS,
                                            'tolerance': 0.0},
                                           batch={'logits': 1, 'labels': 0}),
      'calibration.nested_subset_masks': Case({'num_modalities': 3, 'batch_shape': B,
                                               'key': KEY}),
      'confidence.confidence_loss': Case({'confidence': _uniform(M, B), 'logits': LOGITS,
                                          'labels': LABELS, 'mask': MASK},
                                         batch={'confidence': 1, 'logits': 1, 'labels': 0,
                                                'mask': 1}),
      'distillation.kd_loss': Case({'student_logits': LOGITS[0], 'teacher_logits': LOGITS[1],
                                    'temperature': 2.0},
                                   batch={'student_logits': 0, 'teacher_logits': 0}),
      'distillation.feature_distillation_loss': Case(
          {'student_features': features, 'teacher_features': features + 0.1, 'mask': MASK,
           'weight': 1.0},
          batch={'student_features': 1, 'teacher_features': 1, 'mask': 1}),
      'evidential.kl_to_uniform': Case({'alpha': ALPHA[0]}, batch={'alpha': 0}),
      'evidential.ce_loss': Case({'alpha': ALPHA[0], 'labels': LABELS, 'kl_weight': 0.5},
                                 batch={'alpha': 0, 'labels': 0}),
      'evidential.mse_loss': Case({'alpha': ALPHA[0], 'labels': LABELS, 'kl_weight': 0.5},
                                  batch={'alpha': 0, 'labels': 0}),
      'evidential.annealing_weight': Case({'step': 3, 'annealing_steps': 10}),
      'nig.negative_log_likelihood': Case({'nig': NIG_ONE, 'targets': _normal(B, 1)}),
      'nig.evidence_regularizer': Case({'nig': NIG_ONE, 'targets': _normal(B, 1)}),
      'nig.nig_loss': Case({'nig': NIG_ONE, 'targets': _normal(B, 1), 'risk': 0.01}),
      'nig.mixture_loss': Case({'nig': NIG, 'targets': _normal(B, 1), 'mask': MASK,
                                'risk': 0.01}),
      'cpm.class_mean_similarity': Case(
          {'query': VIEW, 'reference': VIEW, 'reference_labels': jnp.array([0, 1, 0, 1]),
           'num_classes': 2}, batch={'query': 0}),
      'cpm.classification_loss': Case(
          {'latent': VIEW, 'labels': jnp.array([0, 1, 0, 1]), 'num_classes': 2}),
      'prototype.class_counts': Case({'labels': LABELS, 'num_classes': K, 'mask': MASK[0]},
                                     batch={'labels': 0, 'mask': 0}),
      'prototype.prototypes': Case({'features': features[0], 'labels': LABELS, 'num_classes': K},
                                   batch={'features': 0, 'labels': 0}),
      'prototype.update_prototypes': Case({'old': prototypes, 'new': prototypes + 1,
                                           'momentum': 0.2}),
      'prototype.prototype_logits': Case({'features': features, 'class_prototypes': prototypes,
                                          'temperature': 1.0}, batch={'features': 1}),
      'prototype.prototype_scores': Case({'logits': LOGITS, 'labels': LABELS},
                                         batch={'logits': 1, 'labels': 0}),
      'prototype.prototype_cross_entropy': Case({'logits': LOGITS, 'labels': LABELS},
                                                batch={'logits': 1, 'labels': 0}),
      'prototype.prototype_entropy': Case({'logits': LOGITS}, batch={'logits': 1}),
      'prototype.rebalance_coefficients': Case({'scores': _uniform(M, low=0.2), 'alpha': 1.0}),
      'prototype.pmr_loss': Case({'fused_logits': LOGITS[0], 'features': features,
                                  'class_prototypes': prototypes, 'labels': LABELS, 'epoch': 1,
                                  'alpha': 1.0},
                                 batch={'fused_logits': 0, 'features': 1, 'labels': 0}),
      'ranking.init_history': Case({'num_samples': 8, 'num_modalities': M}),
      'ranking.update_history': Case({'history': ranking.init_history(8),
                                      'indices': jnp.array([0, 3, 5, 7]),
                                      'losses': _uniform(B)},
                                     batch={'indices': 0, 'losses': 0}),
      'ranking.ranking_loss': Case({'confidence': _uniform(B),
                                    'history': ranking.update_history(
                                        ranking.init_history(8), jnp.arange(8), _uniform(8)),
                                    'indices': jnp.array([0, 3, 5, 7])},
                                   batch={'confidence': 0, 'indices': 0}),
  }
  return {f'lqmm.losses.{name}': case for name, case in cases.items()}


def _other_cases() -> dict[str, Case]:
  from lqmm import corrupt, missing  # pylint: disable=g-import-not-at-top
  scores = jnp.array([0.9, 0.1, 0.5, 0.2], jnp.float32)
  inputs_names = {'a': "inputs['a']", 'b': "inputs['b']"}
  impute_names = {'a': "inputs['a']", 'mask_a': "mask['a']"}
  class_gaussians = missing.distributions.class_gaussians(
      {'a': VIEW}, {'a': VIEW_MASK}, jnp.zeros(B, jnp.int32), num_classes=1)
  any_label_value = {(name, kind): 'clusterings take any integer label values'
                     for name in ('labels_true', 'labels_pred')
                     for kind in ('too_large', 'negative')}
  cases = {
      'lqmm.metrics.accuracy': Case(
          {'scores': LOGITS[0], 'labels': LABELS}, batch={'scores': 0, 'labels': 0},
          allow={('scores', 'inf'): 'any monotone score: an infinite one is the argmax'}),
      'lqmm.metrics.expected_calibration_error': Case(
          {'probabilities': PROBS[0], 'labels': LABELS, 'num_bins': 15},
          batch={'probabilities': 0, 'labels': 0}),
      'lqmm.metrics.auroc': Case(
          {'scores': scores, 'positives': jnp.array([True, False, True, False])},
          batch={'scores': 0, 'positives': 0},
          allow={('scores', 'inf'): 'infinite scores rank first or last, as they should',
                 ('scores', 'int_dtype'): 'integer scores rank like any real scores'}),
      'lqmm.metrics.uncertainty_auroc': Case(
          {'uncertainty': scores, 'scores': jnp.eye(4, K, dtype=jnp.float32),
           'labels': jnp.array([0, 1, 0, 1], jnp.int32)},
          batch={'uncertainty': 0, 'scores': 0, 'labels': 0},
          allow={('uncertainty', 'inf'): 'infinite uncertainty ranks last, as it should',
                 ('uncertainty', 'int_dtype'): 'integer uncertainty ranks like any real one',
                 ('scores', 'inf'): 'any monotone score: an infinite one is the argmax'}),
      **{f'lqmm.metrics.{name}': Case(
          {'labels_true': LABELS, 'labels_pred': jnp.array([1, 1, 0, 3], jnp.int32)},
          batch={'labels_true': 0, 'labels_pred': 0}, allow=any_label_value)
         for name in ('clustering_accuracy', 'normalized_mutual_info', 'adjusted_mutual_info',
                      'adjusted_rand_index', 'purity', 'contingency_table')},
      'lqmm.corrupt.gaussian_noise': Case(
          {'a': LOGITS[0], 'b': LOGITS[1], 'std': 0.5},
          call=lambda a, b, std: corrupt.gaussian_noise({'a': a, 'b': b}, std, key=KEY),
          batch={'a': 0, 'b': 0}, names=inputs_names),
      'lqmm.corrupt.salt_and_pepper': Case(
          {'a': PROBS[0], 'b': PROBS[1], 'amount': 0.2},
          call=lambda a, b, amount: corrupt.salt_and_pepper({'a': a, 'b': b}, amount, key=KEY),
          batch={'a': 0, 'b': 0}, names=inputs_names,
          allow={(arg, 'int_dtype'): 'integer data (uint8 images) is salted as it is'
                 for arg in 'ab'}),
      'lqmm.corrupt.conflictive_views': Case(
          {'a': LOGITS[0], 'b': LOGITS[1], 'labels': LABELS, 'noise_fraction': 0.5,
           'noise_std': 0.5, 'conflict_fraction': 0.5},
          call=lambda a, b, labels, **kwargs: corrupt.conflictive_views(
              {'a': a, 'b': b}, labels, key=KEY, num_classes=K, **kwargs),
          batch={'a': 0, 'b': 0, 'labels': 0}, names=inputs_names),
      'lqmm.corrupt.random_view_noise': Case(
          {'a': LOGITS[0], 'b': LOGITS[1], 'std': 0.5, 'sample_fraction': 0.5},
          call=lambda a, b, std, **kwargs: corrupt.random_view_noise(
              {'a': a, 'b': b}, std, key=KEY, **kwargs),
          batch={'a': 0, 'b': 0}, names=inputs_names),
      'lqmm.corrupt.per_sample_quality': Case(
          {'a': LOGITS[0], 'b': LOGITS[1], 'std': 0.5},
          call=lambda a, b, std: corrupt.per_sample_quality({'a': a, 'b': b}, std, key=KEY,
                                                            order=('a', 'b')),
          batch={'a': 0, 'b': 0}, names=inputs_names),
      'lqmm.missing.masks.apply_to_batch': Case(
          {'a': LOGITS[0], 'rate': 0.3},
          call=lambda a, rate: missing.apply_to_batch(
              {'inputs': {'a': a, 'b': a}, 'mask': {'a': MASK[0], 'b': MASK[1]},
               'label': LABELS}, rate, key=KEY, order=('a', 'b')),
          batch={'a': 0}, names={'a': 'inputs'}, passes_values=True,
          allow={('a', kind): 'missingness masks entries; the values are the model\'s to check'
                 for kind in ('nan', 'inf', 'int_dtype')}),
      'lqmm.missing.masks.as_dict': Case({'mask': MASK, 'order': ('a', 'b')},
                                         batch={'mask': 1}),
      'lqmm.missing.masks.random_mask': Case({'num_modalities': M, 'num_samples': B,
                                              'rate': 0.3, 'key': KEY}),
      'lqmm.missing.masks.stack_masks': Case(
          {'a': MASK[0], 'b': MASK[1]},
          call=lambda a, b: missing.stack_masks({'a': a, 'b': b}, ('a', 'b')),
          batch={'a': 0, 'b': 0}, names={'a': "masks['a']", 'b': "masks['b']"}),
      'lqmm.missing.legacy.legacy_mask': Case({'protocol': 'cpm', 'num_samples': 50,
                                              'num_views': 3, 'rate': 0.3, 'seed': 0}),
      'lqmm.missing.protocols.per_view_mask': Case(
          {'key': KEY, 'num_samples': 20, 'num_views': 3, 'rate': 0.3,
           'scores': _normal(20, 3), 'strength': 1.0}),
      'lqmm.missing.protocols.missing_entries_mask': Case(
          {'key': KEY, 'num_samples': 20, 'num_views': 3, 'rate': 0.3}),
      'lqmm.missing.protocols.paired_mask': Case(
          {'key': KEY, 'num_samples': 20, 'num_views': 3, 'paired_rate': 0.3}),
      'lqmm.missing.protocols.incomplete_samples_mask': Case(
          {'key': KEY, 'num_samples': 20, 'num_views': 3, 'rate': 0.3}),
      'lqmm.missing.protocols.convert_rate': Case(
          {'rate': 0.3, 'source': 'entries', 'target': 'completer', 'num_views': 3}),
      'lqmm.missing.impute.zeros': Case(
          {'a': VIEW, 'mask_a': VIEW_MASK},
          call=lambda a, mask_a: missing.impute.zeros({'a': a}, {'a': mask_a}),
          batch={'a': 0, 'mask_a': 0}, names=impute_names),
      'lqmm.missing.impute.fit_means': Case(
          {'a': VIEW, 'mask_a': VIEW_MASK},
          call=lambda a, mask_a: missing.impute.fit_means({'a': a}, {'a': mask_a}),
          batch={'a': 0, 'mask_a': 0}, names=impute_names),
      'lqmm.missing.impute.means': Case(
          {'a': VIEW, 'mask_a': VIEW_MASK, 'mean_a': VIEW[0]},
          call=lambda a, mask_a, mean_a: missing.impute.means({'a': a}, {'a': mask_a},
                                                              {'a': mean_a}),
          batch={'a': 0, 'mask_a': 0}, names=dict(impute_names, mean_a="view_means['a']")),
      'lqmm.missing.impute.knn': Case(
          {'a': VIEW, 'mask_a': VIEW_MASK, 'k': 2},
          call=lambda a, mask_a, k: missing.impute.knn(
              {'a': a}, {'a': mask_a}, reference_inputs={'a': VIEW},
              reference_mask={'a': VIEW_MASK}, k=k),
          batch={'a': 0, 'mask_a': 0}, names=impute_names),
      'lqmm.missing.impute.low_rank': Case(
          {'a': VIEW, 'mask_a': VIEW_MASK, 'shrinkage': 0.1},
          call=lambda a, mask_a, shrinkage: missing.impute.low_rank(
              {'a': a}, {'a': mask_a}, shrinkage=shrinkage, transductive=True)[0],
          batch={'a': 0, 'mask_a': 0}, names=impute_names),
      'lqmm.missing.distributions.gaussian_moments': Case(
          {'reference': VIEW, 'weights': VIEW_MASK.astype(jnp.float32)},
          allow={('weights', 'int_dtype'): 'integer weights are counts (np.cov\'s fweights)'}),
      'lqmm.missing.distributions.class_gaussians': Case(
          {'a': VIEW, 'mask_a': VIEW_MASK, 'labels': jnp.zeros(B, jnp.int32),
           'regularization': 1e-3},
          call=lambda a, mask_a, labels, regularization: missing.distributions.class_gaussians(
              {'a': a}, {'a': mask_a}, labels, num_classes=1, regularization=regularization),
          names=impute_names),
      'lqmm.missing.distributions.sample_class_conditional': Case(
          {'key': KEY, 'a': VIEW, 'mask_a': VIEW_MASK, 'labels': jnp.zeros(B, jnp.int32),
           'num_draws': 2},
          call=lambda key, a, mask_a, labels, num_draws: (
              missing.distributions.sample_class_conditional(
                  key, {'a': a}, {'a': mask_a}, labels, class_gaussians, num_draws=num_draws)),
          batch={'a': 0, 'mask_a': 0, 'labels': 0}, names=impute_names),
      'lqmm.missing.distributions.class_rows': Case(
          {'labels': jnp.array([0, 1, 0, 1]), 'num_classes': 2}),
      'lqmm.missing.distributions.neighbour_sets': Case(
          {'a': VIEW, 'mask_a': VIEW_MASK, 'k': 2},
          call=lambda a, mask_a, k: missing.distributions.neighbour_sets(
              {'a': a, 'b': VIEW}, {'a': mask_a, 'b': ALL_PRESENT},
              reference_inputs={'a': VIEW, 'b': VIEW},
              reference_mask={'a': VIEW_MASK, 'b': ALL_PRESENT}, k=k),
          names=impute_names),
      'lqmm.missing.distributions.sample_neighbours': Case(
          {'key': KEY, 'a': VIEW, 'mask_a': VIEW_MASK, 'k': 2, 'num_draws': 2,
           'regularization': 1e-3},
          call=lambda key, a, mask_a, k, num_draws, regularization: (
              missing.distributions.sample_neighbours(
                  key, {'a': a, 'b': VIEW}, {'a': mask_a, 'b': ALL_PRESENT},
                  reference_inputs={'a': VIEW, 'b': VIEW},
                  reference_mask={'a': VIEW_MASK, 'b': ALL_PRESENT}, k=k, num_draws=num_draws,
                  regularization=regularization)),
          names=impute_names),
      'lqmm.missing.dropout.modality_dropout': Case({'mask_or_shape': MASK, 'rate': 0.3,
                                                     'key': KEY}, batch={'mask_or_shape': 1}),
      'lqmm.missing.dropout.pathway_dropout': Case({'contributions': LOGITS, 'rate': 0.3,
                                                    'key': KEY}, batch={'contributions': 1}),
  }
  return cases


def _optim_cases() -> dict[str, Case]:
  mono = _normal(M, B, K)
  factory = {'modality': 0, 'num_modalities': M}
  cases = {
      'adaptive.mono_outputs': Case({'subset_outputs': _normal(4, B, K)},
                                    batch={'subset_outputs': 1}),
      'adaptive.mono_scores': Case({'mono_logits': mono, 'labels': LABELS},
                                   batch={'mono_logits': 1, 'labels': 0}),
      'adaptive.imbalance_ratios': Case({'scores': _uniform(M, low=0.2)}),
      'adaptive.init_agm': Case({'num_modalities': M}),
      'adaptive.agm_step': Case({'state': optim.adaptive.init_agm(M), 'mono_logits': mono,
                                 'labels': LABELS, 'alpha': 1.0},
                                batch={'mono_logits': 1, 'labels': 0}),
      'adaptive.scale_gradient': Case(
          {'x': LOGITS[0], 'scale': jnp.float32(0.5)},
          call=lambda x, scale: optim.scale_gradient(x, scale),
          allow={('x', 'rank0'): 'the identity forward pass: a scalar (one loss term) is valid',
                 ('scale', 'negative'): 'a negative scale reverses the gradient (a gradient '
                                        'reversal layer)'}),
      'adaptive.scale_by_agm': Case(dict(factory, alpha=1.0)),
      'adaptive.agm': Case({'param_labels': PARAM_LABELS, 'modalities': ('audio', 'visual'),
                            'alpha': 1.0}),
      'greedy.main_label': Case({'modality': 0}),
      'greedy.bypass_label': Case({'modality': 0}),
      'greedy.conditional_utilization': Case({'accuracy': _uniform(M),
                                              'accuracy_flow_off': _uniform(M)}),
      'greedy.init_gate_means': Case({'channels': (2, 3)}),
      'greedy.update_gate_means': Case({'means': optim.greedy.init_gate_means((2, 3)),
                                        'gates': (_uniform(2), _uniform(3))}),
      'adaptation.adapt_selected': Case({'tx': optax.sgd(0.1), 'params': PARAMS,
                                         'pattern': '^audio/'}),
      'labels.modality_labels': Case({'params': PARAMS,
                                      'patterns': {'audio': 'audio', 'visual': 'visual'}}),
      'modulation.modality_scores': Case({'unimodal_logits': mono, 'labels': LABELS},
                                         batch={'unimodal_logits': 1, 'labels': 0}),
      'modulation.dominance_ratios': Case({'scores': _uniform(M, low=0.2)}),
      'modulation.check_alpha': Case({'alpha': 0.5}),
      'modulation.ge_noise_std': Case(
          {'gradient': LOGITS[0], 'coefficient': jnp.float32(0.5)},
          allow={('gradient', 'rank0'): 'a scalar leaf has std 0, so no noise is added '
                                        '(documented)'}),
      'modulation.ogm_coefficients': Case({'scores': _uniform(M, low=0.2), 'alpha': 0.5}),
      'modulation.scale_by_ogm': Case(dict(factory, key=KEY, alpha=0.1)),
      'modulation.ogm': Case({'param_labels': PARAM_LABELS, 'modalities': ('audio', 'visual'),
                              'key': KEY, 'alpha': 0.1}),
      'rates.modality_learning_rates': Case({'param_labels': PARAM_LABELS,
                                             'multipliers': {'audio': 0.5}, 'default': 1.0}),
      'rates.scale_by_validation_trend': Case(dict(factory, initial=1.0, window=5)),
      'rates.validation_trend': Case({'param_labels': PARAM_LABELS,
                                      'modalities': ('audio', 'visual'), 'window': 5}),
  }
  return {f'lqmm.optim.{name}': case for name, case in cases.items()}


def _cluster_cases() -> dict[str, Case]:
  from lqmm import cluster  # pylint: disable=g-import-not-at-top
  from lqmm import losses  # pylint: disable=g-import-not-at-top
  del losses
  x = _normal(8, D)
  views_mask = jnp.ones((8, 2), bool).at[1, 1].set(False)
  second = _normal(8, 3)
  init = cluster.daimc_init([x, second], views_mask, 2, key=KEY, num_restarts=1)
  view_names = {'x0': 'views[0]', 'x1': 'views[1]'}
  neighbours = cluster.knn_neighbours(x, jnp.ones(8, bool).at[2].set(False), 3)
  affinity = jnp.abs(_normal(8, 8))
  affinity = (affinity + affinity.T) / 2
  positive = [jnp.abs(x), jnp.abs(second)]
  kernels = cluster.cosine_kernels([x, second], views_mask)
  mic_init = cluster.mic_init(positive, views_mask, 2, key=KEY, num_iterations=2)
  return {
      'lqmm.cluster.late_fusion.cosine_kernels': Case(
          {'x0': x, 'x1': second, 'mask': views_mask},
          call=lambda x0, x1, mask: cluster.cosine_kernels([x0, x1], mask),
          batch={'x0': 0, 'x1': 0, 'mask': 0}, names=view_names),
      'lqmm.cluster.late_fusion.base_partitions': Case(
          {'kernels': kernels, 'mask': views_mask, 'num_clusters': 2, 'jitter': 1e-8}),
      'lqmm.cluster.late_fusion.late_fusion': Case(
          {'partitions': cluster.base_partitions(kernels, views_mask, 2), 'lam': 0.5,
           'max_iter': 5, 'tol': 1e-4}),
      'lqmm.cluster.online.opimc': Case(
          {'x0': x, 'x1': second, 'mask': views_mask, 'num_clusters': 2, 'key': KEY,
           'alpha': 1.0, 'block_size': 4, 'max_iter': 3, 'tol': 1e-6},
          call=lambda x0, x1, mask, **kwargs: cluster.opimc([x0, x1], mask, **kwargs),
          batch={'x0': 0, 'x1': 0, 'mask': 0}, names=view_names),
      'lqmm.cluster.factorization.mic_weights': Case(
          {'mask': views_mask}, allow={}, names={}),
      'lqmm.cluster.factorization.mic_init': Case(
          {'x0': positive[0], 'x1': positive[1], 'mask': views_mask, 'num_clusters': 2,
           'key': KEY, 'num_iterations': 2},
          call=lambda x0, x1, mask, **kwargs: cluster.mic_init([x0, x1], mask, **kwargs),
          batch={'x0': 0, 'x1': 0, 'mask': 0}, names=view_names),
      'lqmm.cluster.factorization.mic': Case(
          {'x0': positive[0], 'x1': positive[1], 'mask': views_mask, 'alpha': 0.1, 'beta': 0.1,
           'rounds': 2, 'max_iter': 2},
          call=lambda x0, x1, mask, **kwargs: cluster.mic([x0, x1], mask, mic_init, **kwargs),
          batch={'x0': 0, 'x1': 0, 'mask': 0}, names=view_names),
      'lqmm.losses.clustering.graph_smoothness': Case(
          {'codes': _normal(B, 2), 'adjacency': jnp.ones((B, B)) - jnp.eye(B)}),
      'lqmm.losses.clustering.centroid_loss': Case(
          {'codes': _normal(B, 2), 'centres': _normal(K, 2), 'labels': LABELS,
           'weights': _uniform(B)}, batch={'codes': 0, 'labels': 0, 'weights': 0}),
      'lqmm.losses.clustering.self_paced_weights': Case(
          {'distances': _uniform(B), 'iteration': 3, 'num_iterations': 10}),
      'lqmm.losses.contrastive.mutual_information_loss': Case(
          {'z1': jax.nn.softmax(_normal(B, 3), axis=-1),
           'z2': jax.nn.softmax(_normal(B, 3), axis=-1), 'alpha': 9.0,
           'weights': _uniform(B, low=0.5)},
          batch={'z1': 0, 'z2': 0, 'weights': 0}),
      'lqmm.cluster.kmeans.kmeans': Case(
          {'x': x, 'num_clusters': 2, 'key': KEY, 'weights': _uniform(8, low=0.5),
           'num_restarts': 2, 'max_iter': 10, 'tol': 1e-4}, batch={'x': 0, 'weights': 0}),
      'lqmm.cluster.kmeans.kmeans_plus_plus': Case(
          {'x': x, 'num_clusters': 2, 'key': KEY, 'weights': _uniform(8, low=0.5)},
          batch={'x': 0, 'weights': 0}),
      'lqmm.cluster.kmeans.assign': Case({'x': x, 'centers': _normal(3, D)}, batch={'x': 0}),
      'lqmm.cluster.kmeans.squared_distances': Case({'x': x, 'centers': _normal(3, D)},
                                                    batch={'x': 0}),
      'lqmm.cluster.spectral.spectral_embedding': Case(
          {'affinity': affinity, 'num_clusters': 2},
          allow={('affinity', 'int_dtype'): 'never reached: as_floats names it'}),
      'lqmm.cluster.spectral.spectral_clustering': Case(
          {'affinity': affinity, 'num_clusters': 2, 'key': KEY, 'num_restarts': 2}),
      'lqmm.cluster.graphs.knn_neighbours': Case(
          {'x': x, 'present': jnp.ones(8, bool), 'k': 3}, batch={'x': 0, 'present': 0}),
      'lqmm.cluster.graphs.batch_adjacency': Case(
          {'neighbours': neighbours, 'rows': jnp.array([0, 3, 5], jnp.int32)},
          batch={'rows': 0},
          allow={('neighbours', 'negative'): '-1 marks a missing neighbour'}),
      'lqmm.cluster.solvers.normalize_samples': Case({'view': x}, batch={'view': 0}),
      'lqmm.cluster.factorization.daimc_init': Case(
          {'x0': x, 'x1': second, 'mask': views_mask, 'num_clusters': 2, 'key': KEY,
           'num_restarts': 1},
          call=lambda x0, x1, mask, **kwargs: cluster.daimc_init([x0, x1], mask, **kwargs),
          batch={'x0': 0, 'x1': 0, 'mask': 0}, names=view_names),
      'lqmm.cluster.factorization.daimc': Case(
          {'x0': x, 'x1': second, 'mask': views_mask, 'alpha': 1.0, 'beta': 1.0,
           'max_iter': 3, 'tol': 1e-4, 'inner_max_iter': 3, 'inner_tol': 1e-4},
          call=lambda x0, x1, mask, **kwargs: cluster.daimc([x0, x1], mask, init, **kwargs),
          batch={'x0': 0, 'x1': 0, 'mask': 0}, names=view_names),
      'lqmm.cluster.graph_consensus.imsc_agl': Case(
          {'x0': x, 'x1': second, 'mask': views_mask, 'num_clusters': 2, 'lam1': 0.1,
           'lam2': 1000.0, 'lam3': 100.0, 'mu': 0.01, 'rho': 1.1, 'k_neighbours': 2,
           'max_iter': 3, 'tol': 1e-7},
          call=lambda x0, x1, mask, **kwargs: cluster.imsc_agl([x0, x1], mask, **kwargs),
          batch={'x0': 0, 'x1': 0, 'mask': 0}, names=view_names),
      'lqmm.cluster.graph_consensus.pic': Case(
          {'x0': x, 'x1': second, 'mask': views_mask, 'num_clusters': 2, 'k_neighbours': 2,
           'beta': 0.1},
          call=lambda x0, x1, mask, **kwargs: cluster.pic([x0, x1], mask, **kwargs),
          batch={'x0': 0, 'x1': 0, 'mask': 0}, names=view_names),
      'lqmm.cluster.anchor_graph.fimvc_via': Case(
          {'x0': x, 'x1': second, 'mask': views_mask, 'num_clusters': 2, 'num_anchors': 3,
           'lam': 1.0, 'max_iter': 3, 'tol': 1e-3, 'anchor_rows': jnp.array([0, 2, 5])},
          call=lambda x0, x1, mask, **kwargs: cluster.fimvc_via([x0, x1], mask, **kwargs),
          batch={'x0': 0, 'x1': 0, 'mask': 0}, names=view_names),
      'lqmm.cluster.graph_consensus.knn_graph': Case(
          {'x': x, 'present': jnp.ones(8, bool).at[2].set(False), 'k': 2},
          batch={'x': 0, 'present': 0}),
      'lqmm.cluster.graph_consensus.adaptive_neighbour_graph': Case(
          {'x': x, 'present': jnp.ones(8, bool).at[2].set(False), 'k': 2},
          batch={'x': 0, 'present': 0}),
      'lqmm.cluster.graph_consensus.project_rows_to_simplex': Case(
          {'values': _normal(B, D), 'mask': jnp.ones((B, D), bool).at[0, 1].set(False)},
          batch={'values': 0, 'mask': 0}),
      'lqmm.cluster.graph_consensus.singular_value_threshold': Case(
          {'matrix': _normal(B, 3), 'tau': 0.5}),
      'lqmm.cluster.factorization.daimc_objective': Case(
          {'x0': x, 'x1': second, 'mask': views_mask, 'alpha': 1.0, 'beta': 1.0},
          call=lambda x0, x1, mask, **kwargs: cluster.daimc_objective([x0, x1], mask, init,
                                                                      **kwargs),
          batch={'x0': 0, 'x1': 0, 'mask': 0}, names=view_names),
  }


def _denoise_cases() -> dict[str, Case]:
  image = _uniform(6, 5)
  images = _uniform(2, 6, 5)
  tv = 'lqmm.denoise.tv.'
  return {
      tv + 'tv_chambolle': Case({'image': image, 'weight': 0.1, 'eps': 2e-4,
                                 'max_num_iter': 20},
                                allow={('image', 'negative'): 'grey levels may be negative'}),
      tv + 'tv_fusion': Case({'images': images, 'weights': _uniform(2, low=0.5), 'lam': 0.1,
                              'num_iter': 5, 'tau': 0.3, 'sigma': 0.3},
                             batch={'images': 0, 'weights': 0}),
      tv + 'tv_fusion_energy': Case({'u': image, 'images': images,
                                     'weights': _uniform(2, 6, 5), 'lam': 0.1},
                                    batch={'images': 0, 'weights': 0}),
      tv + 'gradient': Case({'u': image}),
      tv + 'divergence': Case({'p': _normal(2, 6, 5)}),
      tv + 'total_variation': Case({'u': image}),
      'lqmm.denoise.correspondence.clean_probability': Case(
          {'losses': _uniform(12), 'max_iter': 5, 'tol': 1e-2, 'reg_covar': 5e-4,
           'weights_init': _uniform(2, low=0.5, high=0.5), 'means_init': _uniform(2),
           'precisions_init': _uniform(2, low=1.0, high=5.0), 'kmeans_centers': _uniform(2)},
          allow={('losses', 'negative'): 'losses are min-max normalised first',
                 ('means_init', 'negative'): 'a mean of the normalised losses may be anything',
                 ('kmeans_centers', 'negative'): 'seeds may lie anywhere'}),
      'lqmm.denoise.correspondence.gaussian_mixture_1d': Case(
          {'x': _uniform(12), 'max_iter': 5, 'tol': 1e-3, 'reg_covar': 1e-6, 'key': KEY},
          allow={('x', 'negative'): 'samples may be negative'}),
      'lqmm.denoise.correspondence.two_means_labels': Case(
          {'x': _uniform(12)}, allow={('x', 'negative'): 'samples may be negative'}),
      'lqmm.denoise.correspondence.co_teaching_split': Case(
          {'losses': _uniform(2, 12), 'threshold': 0.5}, batch={'losses': 1},
          allow={('losses', 'negative'): 'losses are min-max normalised first'}),
      'lqmm.denoise.correspondence.split_clean': Case(
          {'probability': _uniform(12), 'threshold': 0.5}),
      'lqmm.losses.matching.vse_hinge_loss': Case(
          {'scores': _normal(4, 4), 'margin': 0.2, 'labels': _uniform(4)},
          allow={('scores', 'negative'): 'similarities may be negative'}),
      'lqmm.losses.matching.correspondence_scores': Case(
          {'scores': _normal(4, 4), 'margin': 0.2},
          allow={('scores', 'negative'): 'similarities may be negative'}),
      'lqmm.losses.matching.rectify_labels': Case(
          {'probability': _uniform(4), 'labels': _uniform(4), 'predictions': _uniform(4)},
          batch={'probability': 0, 'labels': 0, 'predictions': 0}),
      'lqmm.losses.matching.info_nce': Case(
          {'scores': _normal(4, 4), 'temperature': 0.5},
          allow={('scores', 'negative'): 'similarities may be negative'}),
      'lqmm.losses.matching.robust_info_nce': Case(
          {'scores': _normal(4, 4), 'q': 0.5, 'lam': 0.1, 'temperature': 0.5},
          allow={('scores', 'negative'): 'similarities may be negative'}),
      'lqmm.losses.matching.similarity_filter': Case(
          {'scores': _uniform(6), 'fraction': 0.5},
          allow={('scores', 'negative'): 'scores may be negative'}),
      'lqmm.metrics.retrieval_recall': Case(
          {'scores': _normal(12, 12), 'captions_per_image': 1},
          allow={('scores', 'negative'): 'similarities may be negative'}),
      'lqmm.metrics.peak_signal_noise_ratio': Case(
          {'reference': _uniform(8, 8), 'image': _uniform(8, 8), 'data_range': 1.0},
          allow={('reference', 'negative'): 'pixel values', ('image', 'negative'): 'pixel values'}),
      'lqmm.metrics.structural_similarity': Case(
          {'reference': _uniform(8, 8), 'image': _uniform(8, 8), 'data_range': 1.0,
           'win_size': 7}),
  }


CASES = {**_fusion_cases(), **_loss_cases(), **_other_cases(), **_optim_cases(),
         **_cluster_cases(), **_denoise_cases()}

#: Public functions without a bad-value case, and why.
EXEMPT = {
    'lqmm.fusion.weighted.check_fused': 'the overflow check itself (tests/fusion/test_api.py)',
    'lqmm.fusion.base.jit_reusing_output': 'returns jax.jit of a rule, whose values are checked '
                                           'as under jax.jit (lqmm.debug); its out check is '
                                           'tested in tests/fusion/test_api.py',
    'lqmm.fusion.get': 'takes a rule name; unknown names are tested in tests/fusion/test_api.py',
    'lqmm.optim.labels.leaf_path': 'takes a jax.tree_util key path, not values',
    'lqmm.optim.extra_args.require': 'the missing-extra-argument check itself (transform battery)',
    'lqmm.optim.extra_args.check_modality': 'a check itself, tested by the transform battery',
    'lqmm.optim.extra_args.check_stacked': 'a check itself, tested by the transform battery',
    'lqmm.optim.extra_args.window_active': 'a check itself, tested by the transform battery',
    'lqmm.optim.extra_args.partition_by_modality': 'builds optax.partition; labels tested by '
                                                   'the transform battery',
    'lqmm.optim.extra_args.other_transforms': 'builds optax.partition; labels tested by the '
                                              'transform battery',
    'lqmm.optim.greedy.greedy_group_labels': 'takes a parameter tree and names; errors tested '
                                             'in tests/optim/test_agm_greedy_rates.py',
    'lqmm.optim.greedy.group_sums': 'takes a tree and labels; errors tested in '
                                    'tests/optim/test_agm_greedy_rates.py',
    'lqmm.optim.greedy.greedy_schedule': 'takes labels and integer windows; tested in '
                                         'tests/optim/test_agm_greedy_rates.py',
    'lqmm.cluster.solvers.check_views': 'the views-and-mask check itself (every solver case)',
    'lqmm.cluster.solvers.iterate': 'the loop driver; takes functions (tests/cluster)',
    'lqmm.cluster.solvers.raise_if_not_finite': 'the NaN guard itself (tests/cluster)',
}


def test_every_public_function_has_a_case():
  functions = _public_functions()
  missing = sorted(set(functions) - set(CASES) - set(EXEMPT))
  assert not missing, f'public functions without a bad-input case (add one to CASES): {missing}'
  stale = sorted((set(CASES) | set(EXEMPT)) - set(functions))
  assert not stale, f'cases for names that are not public functions: {stale}'


# ------------------------------------------------------------------ mutations


def _is_array(value) -> bool:
  return isinstance(value, (jax.Array, np.ndarray)) and not jnp.issubdtype(
      value.dtype, jax.dtypes.prng_key)


def _set_first(value, entry):
  flat = jnp.ravel(value)
  return flat.at[0].set(entry).reshape(jnp.shape(value))


def _scalar_forms(value) -> list:
  return [value, np.float32(value), jnp.float32(value)] if isinstance(value, float) else [
      value, np.int32(value), jnp.int32(value)]


def _mutations(case: Case):
  """Yields `(argument, kind, args)` for every bad variant of the case's valid call."""
  for name, value in case.args.items():
    if isinstance(value, nig_lib.NIG):
      for field in value._fields:
        for kind, entry in (('nan', np.nan),) + ((('negative', -1.0),) if field != 'gamma' else ()):
          leaf = getattr(value, field)
          yield name, kind, dict(case.args, **{name: value._replace(
              **{field: _set_first(leaf, entry)})})
      yield name, 'int_dtype', dict(case.args, **{name: jax.tree.map(
          lambda leaf: leaf.astype(jnp.int32), value)})
    elif _is_array(value) and jnp.issubdtype(value.dtype, jnp.floating) and value.ndim:
      for kind, entry in (('nan', np.nan), ('inf', np.inf)):
        yield name, kind, dict(case.args, **{name: _set_first(value, entry)})
      yield name, 'rank0', dict(case.args, **{name: jnp.ravel(value)[0]})
      yield name, 'int_dtype', dict(case.args, **{name: value.astype(jnp.int32)})
    elif _is_array(value) and jnp.issubdtype(value.dtype, jnp.integer) and value.ndim:
      for kind, entry in (('too_large', 10**6), ('negative', -1)):
        yield name, kind, dict(case.args, **{name: _set_first(value, entry)})
      yield name, 'float_dtype', dict(case.args, **{name: value.astype(jnp.float32)})
    elif _is_array(value) and value.dtype == jnp.bool_ and value.ndim:
      yield name, 'float_dtype', dict(case.args, **{name: value.astype(jnp.float32)})
      yield name, 'rank0', dict(case.args, **{name: jnp.ravel(value)[0]})
    elif (isinstance(value, (float, int)) and not isinstance(value, bool)) or (
        _is_array(value) and not value.ndim and jnp.issubdtype(value.dtype, jnp.number)):
      plain = float(value) if isinstance(value, float) or (
          _is_array(value) and jnp.issubdtype(value.dtype, jnp.floating)) else int(value)
      kinds = (('negative', -1),) + ((('nan', np.nan),) if isinstance(plain, float) else ())
      for kind, entry in kinds:
        for form in _scalar_forms(type(plain)(entry) if kind == 'negative' else float(entry)):
          yield name, f'{kind}:{type(form).__module__.split(".")[0]}', dict(case.args,
                                                                            **{name: form})
  for kind, axes in (('empty_batch', case.batch), ('zero_modalities', case.modality)):
    if axes:
      args = dict(case.args)
      for name, axis in axes.items():
        args[name] = jnp.take(case.args[name], jnp.arange(0), axis=axis)
      yield tuple(axes), kind, args


def _has_nan(output) -> bool:
  leaves = [leaf for leaf in jax.tree.leaves(output)
            if _is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.inexact)]
  return any(bool(np.any(np.isnan(np.asarray(leaf)))) for leaf in leaves)


def _outcome(case: Case, function, argument, kind, args) -> str | None:
  """None when the bad call is handled correctly, else what went wrong."""
  call = case.call or function
  names = argument if isinstance(argument, tuple) else (argument,)
  expected = [case.names.get(name, name) for name in names]
  try:
    output = call(**args)
  except (ValueError, TypeError, KeyError) as error:
    message = str(error)
    if any(text in message for text in expected):
      return None
    return f'{kind} {argument}: {type(error).__name__} does not name it: {message[:100]}'
  except Exception as error:  # pylint: disable=broad-except
    return f'{kind} {argument}: {type(error).__name__} (not a clear error): {str(error)[:80]}'
  base_kind = kind.split(':')[0]
  if kind in ('empty_batch', 'zero_modalities'):
    return f'{kind}: NaN result without an error' if _has_nan(output) else None
  allowed = (argument, base_kind) in case.allow
  if not allowed:
    return f'{kind} {argument}: accepted silently'
  if _has_nan(output) and not case.passes_values:
    return f'{kind} {argument}: allowed ({case.allow[(argument, base_kind)]}) but gave NaN'
  return None


@pytest.mark.parametrize('qualified', sorted(CASES))
def test_bad_inputs_raise_naming_the_argument(qualified):
  function = _public_functions()[qualified]
  case = CASES[qualified]
  (case.call or function)(**case.args)  # the valid call works
  problems = [problem for argument, kind, args in _mutations(case)
              if (problem := _outcome(case, function, argument, kind, args)) is not None]
  assert not problems, f'{qualified}:\n  ' + '\n  '.join(problems)


if __name__ == '__main__':
  # `python -m tests.test_bad_inputs` lists every problem at once (the tests stop per function),
  # under the suite's strict dtype and rank promotion.
  jax.config.update('jax_numpy_dtype_promotion', 'strict')
  jax.config.update('jax_numpy_rank_promotion', 'raise')
  for name, bad_case in sorted(CASES.items()):
    for bad_argument, bad_kind, bad_args in _mutations(bad_case):
      found = _outcome(bad_case, _public_functions()[name], bad_argument, bad_kind, bad_args)
      if found is not None:
        print(f'{name} | {found}')
