"""MBT: scenic's parameter tree maps onto lqmm's without renaming, and the forward pass equals
scenic's MBT model.

Reference: `tests/reference/data/mbt_vectors.npz` and `mbt_scenic_params.json`, generated from
google-research/scenic (commit 4a38d47) by `tests/reference/generate_mbt_vectors.py`
(`tests/reference/PROVENANCE_mbt.md`): the tree is the one scenic's own module definitions
initialise, the vectors scenic's forward pass with perturbed parameters.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lqmm.nn import mbt

DATA = pathlib.Path(__file__).parents[1] / 'reference' / 'data'


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(DATA / 'mbt_vectors.npz'))


@pytest.fixture(scope='module')
def scenic():
  return json.loads((DATA / 'mbt_scenic_params.json').read_text())


def _model(scenic, fusion_layer=None):
  cfg = scenic['config']
  shapes = {name: tuple(shape[1:]) for name, shape in scenic['input_shapes'].items()}
  return mbt.MBT(shapes, tuple(cfg['modality_fusion']), cfg['num_classes'],
                 patch_size=tuple(cfg['patches']['size']), hidden_size=cfg['hidden_size'],
                 num_heads=cfg['num_heads'], mlp_dim=cfg['mlp_dim'],
                 num_layers=cfg['num_layers'],
                 fusion_layer=cfg['fusion_layer'] if fusion_layer is None else fusion_layer,
                 n_bottlenecks=cfg['n_bottlenecks'], rngs=nnx.Rngs(0))


def _nested(ref):
  tree = {}
  for key, value in ref.items():
    if key.startswith('param/'):
      node = tree
      *parents, leaf = key[len('param/'):].split('/')
      for parent in parents:
        node = node.setdefault(parent, {})
      node[leaf] = value
  return tree


def _flat_paths(tree, prefix=''):
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(_flat_paths(value, f'{prefix}/{key}' if prefix else key))
    return out
  return {prefix: tuple(tree)}


def test_parameter_tree_is_scenics(scenic):
  """Every path and shape of scenic's initialised tree, and nothing else."""
  model = _model(scenic)
  ours = {'/'.join(str(p) for p in path): tuple(leaf.shape)
          for path, leaf in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  assert ours == _flat_paths(scenic['params'])


@pytest.mark.parametrize('fusion_layer', [0, 1, 2, 3])
def test_forward_equals_scenic(ref, scenic, fusion_layer):
  model = _model(scenic, fusion_layer)
  mbt.load_scenic_params(model, _nested(ref))
  inputs = {name: jnp.asarray(ref[f'input/{name}']) for name in ('spectrogram', 'rgb')}
  run = nnx.jit(lambda model, inputs: (model(inputs), model.modality_logits(inputs),
                                       model.encode(inputs)))
  logits, per_modality, encoded = run(model, inputs)
  np.testing.assert_allclose(np.asarray(logits), ref[f'logits_fusion_layer_{fusion_layer}'],
                             rtol=1e-4, atol=2e-5)
  if fusion_layer == 1:   # the stored training outputs and the final norm's tokens
    for index, name in enumerate(('spectrogram', 'rgb')):
      np.testing.assert_allclose(np.asarray(per_modality[index]), ref[f'logits_train/{name}'],
                                 rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(np.asarray(jnp.concatenate(encoded, axis=1)),
                               ref['inter/Transformer/encoder_norm'], rtol=1e-4, atol=2e-5)


def test_missing_modality_reaches_nothing_and_leaves_the_mean(ref, scenic):
  model = _model(scenic)
  mbt.load_scenic_params(model, _nested(ref))
  inputs = {name: jnp.asarray(ref[f'input/{name}']) for name in ('spectrogram', 'rgb')}
  mask = jnp.array([[True, True], [False, True]])          # rgb missing for sample 0
  run = nnx.jit(lambda model, inputs: (model(inputs, mask), model.modality_logits(inputs, mask)))
  logits, per_modality = run(model, inputs)
  changed = dict(inputs, rgb=inputs['rgb'].at[0].set(100.0))
  logits2, per_modality2 = run(model, changed)
  # Sample 0's spectrogram stream and its logits ignore the absent rgb input ...
  np.testing.assert_array_equal(np.asarray(per_modality[0, 0]), np.asarray(per_modality2[0, 0]))
  np.testing.assert_array_equal(np.asarray(logits[0]), np.asarray(logits2[0]))
  np.testing.assert_allclose(np.asarray(logits[0]), np.asarray(per_modality[0, 0]), rtol=1e-6)
  # ... while sample 1 (both present) is the mean of both.
  np.testing.assert_allclose(np.asarray(logits[1]), np.asarray(per_modality[:, 1].mean(0)),
                             rtol=1e-6, atol=1e-7)


def test_nan_in_an_absent_modality_stays_out(ref, scenic):
  model = _model(scenic)
  mbt.load_scenic_params(model, _nested(ref))
  inputs = {name: jnp.asarray(ref[f'input/{name}']) for name in ('spectrogram', 'rgb')}
  inputs['rgb'] = inputs['rgb'].at[0].set(jnp.nan)
  mask = jnp.array([[True, True], [False, True]])
  logits = nnx.jit(lambda model, x: model(x, mask))(model, inputs)
  assert np.all(np.isfinite(np.asarray(logits)))


def test_load_refuses_a_tree_that_does_not_match(ref, scenic):
  model = _model(scenic)
  tree = _nested(ref)
  del tree['bottleneck']
  tree['output_projection']['kernel'] = np.zeros((16, 7), np.float32)
  with pytest.raises(ValueError, match=r"missing \['bottleneck'\].*shapes differ"):
    mbt.load_scenic_params(model, tree)


def test_trains_under_jit_and_vmap_over_seeds():
  shapes = {'audio': (4, 4, 1), 'rgb': (2, 4, 4, 1)}

  def init_and_run(key):
    model = mbt.MBT(shapes, ('audio', 'rgb'), 3, patch_size=(2, 2, 2), hidden_size=4,
                    num_heads=1, mlp_dim=4, num_layers=2, fusion_layer=1, n_bottlenecks=1,
                    rngs=nnx.Rngs(key))
    inputs = {name: jax.random.normal(key, (2,) + shape) for name, shape in shapes.items()}
    loss = lambda model: jnp.sum(model.modality_logits(inputs) ** 2)  # noqa: E731
    return nnx.grad(loss)(model)['bottleneck'][...]

  grads = jax.jit(jax.vmap(init_and_run))(jax.random.split(jax.random.key(0), 2))
  assert grads.shape == (2, 1, 2, 4) and np.all(np.isfinite(np.asarray(grads)))


@pytest.mark.parametrize('kwargs, match', [
    (dict(fusion_layer=5), r'fusion_layer must lie in \[0, num_layers = 3\]'),
    (dict(num_heads=3), 'num_heads 3 must divide hidden_size 16'),
    (dict(patch_size=(4, 3)), "patch_size must be scenic's"),
    (dict(dropout_rate=1.0), 'dropout_rate'),
])
def test_bad_config_names_the_argument(kwargs, match):
  base = dict(patch_size=(4, 3, 2), hidden_size=16, num_heads=2, mlp_dim=32, num_layers=3,
              fusion_layer=1)
  with pytest.raises((ValueError, TypeError), match=match):
    mbt.MBT({'spectrogram': (20, 9, 3), 'rgb': (4, 8, 9, 3)}, ('spectrogram', 'rgb'), 5,
            **dict(base, **kwargs), rngs=nnx.Rngs(0))


def test_bad_inputs_name_the_modality(scenic):
  model = _model(scenic)
  with pytest.raises(ValueError, match=r"inputs\['rgb'\] must be \[B, 4, 8, 9, 3\]"):
    model({'spectrogram': jnp.ones((2, 20, 9, 3)), 'rgb': jnp.ones((2, 4, 8, 9, 1))})
  with pytest.raises(ValueError, match='mask must have shape'):
    model({'spectrogram': jnp.ones((2, 20, 9, 3)), 'rgb': jnp.ones((2, 4, 8, 9, 3))},
          jnp.ones((2, 3), jnp.bool_))
