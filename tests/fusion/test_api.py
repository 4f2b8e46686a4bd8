"""The one fusion API: every rule's `fuse(x, mask=None, *, ...)`, the registry, overflow errors,
and an import of lqmm.fusion that loads no optax or neural-network library."""

import functools
import inspect
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm import debug
from lqmm import fusion
from lqmm.fusion import base
from lqmm.fusion import baselines
from lqmm.fusion import bayes
from lqmm.fusion import confidence
from lqmm.fusion import conflictive
from lqmm.fusion import dempster_shafer
from lqmm.fusion import energy
from lqmm.fusion import entropy
from lqmm.fusion import nig
from lqmm.fusion import noisy_or
from lqmm.fusion import product
from lqmm.fusion import subjective_logic
from lqmm.fusion import weighted

RULE_MODULES = {
    'baselines': baselines, 'bayes': bayes, 'confidence': confidence,
    'conflictive': conflictive, 'dempster_shafer': dempster_shafer, 'energy': energy,
    'entropy': entropy, 'nig': nig,
    'noisy_or': noisy_or, 'product': product, 'subjective_logic': subjective_logic,
    'weighted': weighted,
}
#: The modules whose rule is associative: they expose `combine` and `RULE`.
ASSOCIATIVE = ('baselines', 'bayes', 'dempster_shafer', 'nig', 'noisy_or', 'product',
               'subjective_logic')


# ------------------------------------------------------------------ signatures and registry


@pytest.mark.parametrize('name', sorted(RULE_MODULES))
def test_every_rule_has_fuse_with_keyword_only_hyper_parameters(name):
  parameters = list(inspect.signature(RULE_MODULES[name].fuse).parameters.values())
  assert parameters[1].name == 'mask' and parameters[1].default is None
  assert parameters[0].kind == parameters[1].kind == inspect.Parameter.POSITIONAL_OR_KEYWORD
  assert all(parameter.kind == inspect.Parameter.KEYWORD_ONLY for parameter in parameters[2:])


@pytest.mark.parametrize('name', ASSOCIATIVE)
def test_associative_rules_expose_combine_and_rule(name):
  module = RULE_MODULES[name]
  assert isinstance(module.RULE, base.FusionRule)
  assert module.RULE.combine is module.combine or name == 'bayes'


def test_registry_maps_names_to_fuse_functions():
  expected = {'averaging', 'bayes', 'confidence', 'conflictive', 'cumulative',
              'dempster_shafer', 'energy', 'entropy', 'mean', 'nig', 'noisy_or', 'product', 'sum',
              'uno', 'weighted'}
  assert set(fusion.RULES) == expected
  assert fusion.get('dempster_shafer') is dempster_shafer.fuse
  alpha = jnp.array([[[3.0, 1.0]], [[1.0, 5.0]]])
  np.testing.assert_allclose(fusion.get('cumulative')(alpha), [[3.0, 5.0]])
  np.testing.assert_allclose(fusion.get('averaging')(alpha), [[2.0, 3.0]])
  np.testing.assert_allclose(fusion.get('sum')(alpha), [[4.0, 6.0]])
  np.testing.assert_allclose(fusion.get('mean')(alpha, jnp.array([[True], [False]])),
                             [[3.0, 1.0]])
  with pytest.raises(KeyError, match="Unknown fusion rule 'dempster'; valid names: averaging, "
                                     'bayes, confidence, conflictive, cumulative, '
                                     'dempster_shafer'):
    fusion.get('dempster')


def test_closed_form_sum_and_uniform_bayes_equal_their_rules():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3, 5)), jnp.float32)
  mask = jnp.array([[True, False, True], [False, False, True], [True, False, False],
                    [True, False, True]])
  np.testing.assert_allclose(baselines.fuse(x, mask, reduction='sum'),
                             base.fuse(baselines.RULE, x, mask), rtol=1e-6, atol=1e-6)
  log_probs = jax.nn.log_softmax(x, axis=-1)
  np.testing.assert_allclose(bayes.fuse(log_probs, mask), base.fuse(bayes.RULE, log_probs, mask),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(bayes.fuse(log_probs, mask), product.fuse(log_probs, mask),
                             rtol=1e-5, atol=1e-6)


def test_averaging_and_mean_do_not_overflow_on_finite_inputs():
  big = jnp.full((3, 2, 4), 3e38, jnp.float32)
  np.testing.assert_allclose(subjective_logic.fuse(big, method='averaging'), big[0], rtol=1e-6)
  np.testing.assert_allclose(baselines.fuse(big), big[0], rtol=1e-6)


# ------------------------------------------------------------------ overflow in float32

_LOG_PROBS = jnp.array([[[-2e38, 0.0]], [[0.0, -2e38]], [[-2e38, 0.0]], [[0.0, -2e38]]])
OVERFLOWS = {
    # 64 modalities of evidence 31 (K = 2): the fused evidence is about 1e78.
    # Dempster-Shafer saturates by default (tested in test_dempster_shafer.py); unsaturated:
    'dempster_shafer': (lambda x: dempster_shafer.fuse(x, max_evidence=np.inf),
                        jnp.full((64, 3, 2), 32.0), 'alpha'),
    'dempster_shafer_1e30': (lambda x: dempster_shafer.fuse(x, max_evidence=np.inf),
                             jnp.full((2, 1, 3), 1e30), 'alpha'),
    'dempster_shafer_combine': (
        lambda x: dempster_shafer.combine(x[0], x[1], max_evidence=np.inf),
        jnp.full((2, 3), 1e30), 'alpha_a and alpha_b'),
    'cumulative': (lambda x: subjective_logic.fuse(x), jnp.full((4, 1, 3), 1e38), 'alpha'),
    'cumulative_combine': (lambda x: subjective_logic.combine(x[0], x[1]),
                           jnp.full((2, 3), 3e38), 'alpha_a and alpha_b'),
    'product': (lambda x: product.fuse(x), _LOG_PROBS, 'log_probs'),
    'bayes': (lambda x: bayes.fuse(x), _LOG_PROBS, 'log_probs'),
    'nig': (lambda x: nig.fuse(nig.NIG(jnp.zeros_like(x), x, jnp.full_like(x, 2.0),
                                       jnp.ones_like(x))), jnp.full((4, 1, 1), 1e38), 'nig'),
    'energy': (lambda x: energy.fuse(x), jnp.full((2, 1, 3), 1e20), 'logits'),
    'entropy': (lambda x: entropy.fuse(x), jnp.array([[[3e38, 0.0]], [[3e38, 0.0]]]), 'logits'),
    'weighted': (lambda x: weighted.fuse(x, weights=jnp.ones((2, 1))), jnp.full((2, 1, 3), 3e38),
                 'x and weights'),
    'sum': (lambda x: baselines.fuse(x, reduction='sum'), jnp.full((2, 1, 3), 3e38), 'x'),
}


@pytest.mark.parametrize('case', sorted(OVERFLOWS))
def test_float32_overflow_raises_naming_the_argument(case):
  function, x, name = OVERFLOWS[case]
  assert x.dtype == jnp.float32
  with pytest.raises(ValueError, match=f'Fusing {name} (overflowed|gave NaN)') as error:
    function(x)
  message = str(error.value)
  assert 'float32' in message and 'jax.enable_x64' in message and 'bound' in message
  # Under jit the check is skipped (values are traced): the result comes back unchecked.
  fused = jax.jit(function)(x)
  assert not all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(fused))
  # With lqmm.debug on, the same check is staged into the jitted function and raises there.
  with debug.checking():
    with pytest.raises(jax.errors.JaxRuntimeError, match=f'Fusing {name} (overflowed|gave NaN)'):
      jax.block_until_ready(jax.jit(function)(x))


def test_float64_fuses_what_float32_cannot(x64):
  del x64
  alpha = jnp.full((64, 3, 2), 32.0, jnp.float64)
  fused = dempster_shafer.fuse(alpha)
  np.testing.assert_allclose(fused, 1 + 2 * np.expm1(64 * np.log1p(31 / 2)), rtol=1e-10)
  belief, uncertainty = dempster_shafer.fuse_opinion(alpha.astype(jnp.float32))
  assert np.all(np.isfinite(belief)) and np.all(np.isfinite(uncertainty))


def test_gaussian_product_overflow_raises():
  with pytest.raises(ValueError, match='Fusing mean and variance overflowed float32'):
    product.fuse_gaussian(jnp.full((2, 1, 1), 1e30), jnp.full((2, 1, 1), 1e-20))


# ------------------------------------------------------------------ imports


def test_importing_fusion_loads_no_optax_or_flax():
  code = ('import sys, lqmm.fusion\n'
          'print(sorted(name for name in ("optax", "flax") if name in sys.modules))\n'
          'import lqmm\n'
          'print(lqmm.fusion.dempster_shafer.fuse.__name__, "nn" in dir(lqmm))\n')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          check=True, env={'JAX_PLATFORMS': 'cpu', 'PATH': ''})
  assert result.stdout.split('\n')[:2] == ['[]', 'fuse True']


def test_lazy_package_attributes():
  code = ('import sys, lqmm\n'
          'loaded = "lqmm.fusion" in sys.modules\n'
          'module = lqmm.fusion.dempster_shafer\n'
          'print(loaded, "lqmm.fusion" in sys.modules, lqmm.__version__)\n'
          'try:\n'
          '  lqmm.no_such_module\n'
          'except AttributeError as error:\n'
          '  print(error)\n')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          check=True, env={'JAX_PLATFORMS': 'cpu', 'PATH': ''})
  lines = result.stdout.split('\n')
  assert lines[0] == 'False True 0.1.0'
  assert lines[1] == "module 'lqmm' has no attribute 'no_such_module'"


def test_jit_reusing_output_writes_into_the_donated_result():
  alpha = 1 + jax.random.uniform(jax.random.key(0), (3, 64, 5)) * 4
  fuse = fusion.jit_reusing_output(dempster_shafer.fuse)
  first = fuse(alpha)
  np.testing.assert_array_equal(first, jax.jit(dempster_shafer.fuse)(alpha))
  pointer = first.unsafe_buffer_pointer()
  second = fuse(alpha[:, ::-1], out=first)
  assert first.is_deleted()  # donated ...
  assert second.unsafe_buffer_pointer() == pointer  # ... and its memory reused
  np.testing.assert_array_equal(second, jax.jit(dempster_shafer.fuse)(alpha[:, ::-1]))
  # A pytree result (NIG) and bound hyper-parameters.
  fields = nig.NIG(*(jnp.full((2, 8, 1), value) for value in (0.5, 1.0, 2.0, 1.0)))
  fuse_nig = fusion.jit_reusing_output(nig.fuse)
  out = fuse_nig(fields)
  jax.tree.map(np.testing.assert_array_equal, fuse_nig(fields, out=fuse_nig(fields)),
               nig.fuse(fields))
  averaging = fusion.jit_reusing_output(functools.partial(subjective_logic.fuse,
                                                          method='averaging'))
  np.testing.assert_allclose(averaging(alpha, out=averaging(alpha)),
                             subjective_logic.fuse(alpha, method='averaging'), rtol=1e-6)
  # An `out` that the result cannot use is an error, not a silent copy.
  with pytest.raises(ValueError, match='out must have the shapes and dtypes'):
    fuse(alpha, out=jnp.zeros((64, 4)))
  with pytest.raises(ValueError, match='out must have the shapes and dtypes'):
    fuse(alpha, out=jnp.zeros((64, 5), jnp.int32))
  with pytest.raises(ValueError, match='out must have the shapes and dtypes'):
    fuse_nig(fields, out=out.nu)


@pytest.mark.parametrize('evidence', [1e-7, 1e-3, 1.0, 30.0, 1e3])
def test_dempster_shafer_product_form_matches_the_log_space_rule(evidence):
  # fuse's logarithm-free product agrees with the log-space evidence to float32 round-off,
  # relatively, from tiny to large evidence (every term of the tree is non-negative).
  scale = jax.random.uniform(jax.random.key(1), (6, 32, 10), minval=0.5, maxval=2.0)
  alpha = 1 + evidence * scale
  fused = dempster_shafer.fuse(alpha)
  exact = jnp.exp(dempster_shafer.fuse_log_evidence(alpha.astype(jnp.float32)))
  np.testing.assert_allclose(fused - 1 if evidence < 1e-2 else fused,
                             exact if evidence < 1e-2 else 1 + exact, rtol=2e-5)


def test_noisy_or_is_exact_for_small_probabilities():
  probs = jnp.full((4, 1, 3), 1e-9).at[:, :, 0].set(2e-9)
  # 1 - prod(1 - p) = 4p (1 + O(p)); normalised over classes: [2, 1, 1] / 4.
  np.testing.assert_allclose(noisy_or.fuse(probs), [[0.5, 0.25, 0.25]], rtol=1e-6)
  np.testing.assert_allclose(noisy_or.combine(probs[0], probs[1]), 2 * probs[0], rtol=1e-6)
