"""`lqmm.debug`: the value checks that plain `jax.jit` and `jax.grad` skip, staged on demand.

Every case of the issue that found silent wrong results is run inside `jax.jit` (and `jax.grad`
where it is a loss): without the switch the bad value goes through unchecked (a tracer cannot
raise); with `debug.checking()` the same check raises when the program runs, naming the
argument.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm import corrupt
from lqmm import debug
from lqmm import metrics
from lqmm import optim
from lqmm.fusion import bayes
from lqmm.fusion import dempster_shafer
from lqmm.fusion import energy
from lqmm.fusion import noisy_or
from lqmm.fusion import product
from lqmm.losses import evidential
from lqmm.losses import nig as nig_loss
from lqmm.fusion import nig as nig_lib

LOGITS = jnp.array([[[2.0, 0.0, 1.0]], [[0.5, 0.1, 0.0]]])  # [M=2, B=1, K=3]
LABELS = jnp.array([0])
NIG = nig_lib.NIG(jnp.zeros((2, 1, 1)), jnp.ones((2, 1, 1)), jnp.full((2, 1, 1), 2.0),
                  jnp.ones((2, 1, 1)))

#: name -> (function of traced arguments, the bad arguments, text the error must contain).
CASES = {
    'auroc_nan_score': (metrics.auroc, (jnp.array([np.nan, 0.2, 0.9]),
                                        jnp.array([True, False, True])), 'scores holds'),
    'ece_logits': (lambda p: metrics.expected_calibration_error(p, jnp.array([0, 1])),
                   (jnp.array([[3.0, 1.0], [0.5, 2.0]]),), 'probabilities must be'),
    'ece_negative': (lambda p: metrics.expected_calibration_error(p, jnp.array([0])),
                     (jnp.array([[-0.5, 1.5]]),), 'probabilities must be'),
    'energy_temperature': (lambda t: energy.weights(LOGITS, temperature=t),
                           (np.float32(-1.0),), 'temperature must be > 0'),
    'product_inf': (product.fuse, (LOGITS.at[0, 0, 0].set(np.inf),), r'log_probs holds \+inf'),
    'bayes_nan_prior': (lambda prior: bayes.fuse(jax.nn.log_softmax(LOGITS), log_prior=prior),
                        (jnp.array([np.nan, 0.0, 0.0]),), 'log_prior holds NaN'),
    'noisy_or_negative_prior': (
        lambda prior: noisy_or.rebalance(jax.nn.softmax(LOGITS[0]), prior, 0.5),
        (jnp.array([-0.1, 0.6, 0.5]),), 'prior must be >= 0'),
    'annealing_negative_step': (evidential.annealing_weight, (-5, 10), 'step must be >= 0'),
    'kl_weight_negative': (lambda w: evidential.ce_loss(LOGITS[0] ** 2 + 1, LABELS,
                                                        kl_weight=w).sum(),
                           (-1.0,), 'kl_weight must be >= 0'),
    'risk_negative': (lambda risk: nig_loss.mixture_loss(NIG, jnp.zeros((1, 1)),
                                                         risk=risk)[0].sum(),
                      (-0.1,), 'risk must be >= 0'),
    'gaussian_noise_inf_std': (
        lambda std: corrupt.gaussian_noise({'a': jnp.zeros((2, 3))}, std,
                                           key=jax.random.key(0))['a'],
        (np.inf,), 'std must be >= 0 and finite'),
    'ogm_nan_score': (lambda scores: optim.ogm_coefficients(scores, alpha=0.5),
                      (jnp.array([np.nan, 0.5]),), 'scores must be >= 0'),
    'dempster_shafer_negative_evidence': (dempster_shafer.fuse, (LOGITS,), 'negative evidence'),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_eager_call_raises(case):
  function, args, text = CASES[case]
  with pytest.raises(ValueError, match=text):
    function(*args)


@pytest.mark.parametrize('case', sorted(CASES))
def test_jit_skips_without_debug_and_raises_with_it(case):
  function, args, text = CASES[case]
  jitted = jax.jit(function)
  jax.block_until_ready(jitted(*args))  # unchecked: a tracer cannot raise
  with debug.checking():
    assert debug.enabled()
    with pytest.raises(jax.errors.JaxRuntimeError, match=text):
      jax.block_until_ready(jitted(*args))
  assert not debug.enabled()
  jax.block_until_ready(jitted(*args))  # off again: the cache was cleared, no check staged


def test_checks_run_under_grad_and_vmap():
  """Negative evidence inside a differentiated, vmapped loss: caught with the switch on."""

  def loss(alpha):
    fused = dempster_shafer.fuse(alpha)
    return evidential.ce_loss(fused, jnp.zeros(fused.shape[:-1], jnp.int32), kl_weight=1.0).sum()

  bad = jnp.stack([jnp.full((2, 1, 3), 2.0), jnp.full((2, 1, 3), 0.5)])  # 2 vmapped batches
  step = jax.jit(jax.vmap(jax.grad(loss)))
  assert step(bad).shape == bad.shape  # unchecked without the switch
  with debug.checking():
    with pytest.raises(jax.errors.JaxRuntimeError, match='negative evidence'):
      jax.block_until_ready(step(bad))
    good = step(jnp.full((2, 2, 1, 3), 2.0))  # valid inputs pass with the checks staged
    assert np.all(np.isfinite(good))


def test_enable_and_disable():
  debug.enable()
  try:
    assert debug.enabled()
  finally:
    debug.disable()
  assert not debug.enabled()
