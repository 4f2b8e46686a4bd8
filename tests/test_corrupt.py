"""Degradations: statistics, determinism, jit/vmap, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lqmm import corrupt


def _inputs(batch=512):
  return {'a': jnp.zeros((batch, 30)), 'b': jnp.full((batch, 4, 5), 0.5), 'c': jnp.ones((batch, 2))}


def test_gaussian_noise_statistics_and_untouched_modalities():
  inputs = _inputs()
  out = corrupt.gaussian_noise(inputs, 0.3, key=jax.random.key(0), modalities=('a', 'b'))
  np.testing.assert_allclose(jnp.std(out['a']), 0.3, rtol=0.03)
  np.testing.assert_allclose(jnp.mean(out['b']), 0.5, atol=0.01)
  np.testing.assert_array_equal(out['c'], inputs['c'])
  assert out['a'].dtype == inputs['a'].dtype


def test_zero_std_is_identity_and_key_determines_result():
  inputs = _inputs(8)
  same = corrupt.gaussian_noise(inputs, 0.0, key=jax.random.key(1))
  for name in inputs:
    np.testing.assert_array_equal(same[name], inputs[name])
  first = corrupt.gaussian_noise(inputs, 1.0, key=jax.random.key(1))
  again = corrupt.gaussian_noise(dict(reversed(list(inputs.items()))), 1.0, key=jax.random.key(1))
  other = corrupt.gaussian_noise(inputs, 1.0, key=jax.random.key(2))
  np.testing.assert_array_equal(first['a'], again['a'])  # independent of dict order
  assert not np.allclose(first['a'], other['a'])


def test_jit_and_vmap_over_noise_levels():
  inputs = _inputs(64)
  stds = jnp.array([0.0, 0.5, 2.0])
  noisy = jax.jit(jax.vmap(lambda s: corrupt.gaussian_noise(inputs, s, key=jax.random.key(0))))(
      stds)
  measured = jnp.std(noisy['a'], axis=(1, 2))
  np.testing.assert_allclose(measured, stds, rtol=0.05, atol=1e-6)


def test_salt_and_pepper_fraction_and_values():
  inputs = {'x': jnp.full((400, 50), 0.5)}
  out = corrupt.salt_and_pepper(inputs, 0.2, key=jax.random.key(3))['x']
  hit = out != 0.5
  np.testing.assert_allclose(jnp.mean(hit), 0.2, atol=0.01)
  assert set(np.unique(np.asarray(out[hit])).tolist()) == {0.0, 1.0}
  np.testing.assert_allclose(jnp.mean(out[hit] == 1.0), 0.5, atol=0.03)


def test_per_sample_quality_degrades_exactly_one_modality_per_sample():
  inputs = _inputs(300)
  order = ('a', 'b', 'c')
  out, degraded = corrupt.per_sample_quality(inputs, 1.0, key=jax.random.key(4), order=order)
  assert degraded.shape == (3, 300) and degraded.dtype == jnp.bool_
  np.testing.assert_array_equal(degraded.sum(0), np.ones(300))
  for index, name in enumerate(order):
    changed = np.any(np.asarray(out[name] != inputs[name]).reshape(300, -1), axis=1)
    np.testing.assert_array_equal(changed, np.asarray(degraded[index]))
  assert np.all(np.asarray(degraded.mean(1)) > 0.25)  # roughly uniform over modalities


def test_unknown_modality_raises():
  with pytest.raises(KeyError, match="Unknown modality 'z'.*a, b, c"):
    corrupt.gaussian_noise(_inputs(4), 0.1, key=jax.random.key(0), modalities=('a', 'z'))
  with pytest.raises(KeyError, match="Unknown modality 'q'"):
    corrupt.per_sample_quality(_inputs(4), 0.1, key=jax.random.key(0), order=('q',))


def test_bad_strengths_raise():
  with pytest.raises(ValueError, match='std must be >= 0'):
    corrupt.gaussian_noise(_inputs(4), -1.0, key=jax.random.key(0))
  with pytest.raises(ValueError, match=r'amount must lie in \[0, 1\]'):
    corrupt.salt_and_pepper(_inputs(4), 1.5, key=jax.random.key(0))
  with pytest.raises(TypeError, match='key must be a PRNG key'):
    corrupt.gaussian_noise(_inputs(4), 0.1, key=None)
  with pytest.raises(ValueError, match='share the batch size'):
    corrupt.per_sample_quality({'a': jnp.zeros((3, 2)), 'b': jnp.zeros((4, 2))}, 0.1,
                               key=jax.random.key(0), order=('a', 'b'))


def test_salt_and_pepper_and_per_sample_quality_jit_and_vmap():
  inputs = _inputs(16)
  keys = jax.random.split(jax.random.key(0), 3)
  salted = jax.jit(jax.vmap(lambda k: corrupt.salt_and_pepper(inputs, 0.3, key=k)))(keys)
  assert salted['a'].shape == (3, 16, 30)
  assert not np.array_equal(salted['a'][0], salted['a'][1])
  order = ('a', 'b', 'c')
  _, degraded = jax.jit(jax.vmap(
      lambda k: corrupt.per_sample_quality(inputs, 0.5, key=k, order=order)))(keys)
  assert degraded.shape == (3, 3, 16)
  np.testing.assert_array_equal(degraded.sum(1), np.ones((3, 16)))


def test_integer_inputs_raise():
  with pytest.raises(TypeError, match="inputs\\['img'\\] must be a floating-point array"):
    corrupt.gaussian_noise({'img': jnp.zeros((2, 3), jnp.uint8)}, 0.1, key=jax.random.key(0))


# ------------------------------------------------------------------ RCML's conflictive views


def _views(count=200, seed=0):
  rng = np.random.default_rng(seed)
  labels = jnp.asarray(np.arange(count) % 5)
  inputs = {'a': jnp.asarray(rng.normal(size=(count, 4)), jnp.float32),
            'b': jnp.asarray(rng.normal(size=(count, 3)), jnp.float32),
            'c': jnp.asarray(rng.normal(size=(count, 2, 2)), jnp.float32)}
  return inputs, labels


def test_conflictive_views_follow_rcmls_protocol():
  inputs, labels = _views()
  out, info = corrupt.conflictive_views(inputs, labels, key=jax.random.key(0), num_classes=5,
                                        noise_fraction=0.1, noise_std=0.5,
                                        conflict_fraction=0.4)
  views = sorted(inputs)
  conflicting = np.stack([np.asarray(info['conflicting'][v]) for v in views])   # [V, B]
  noisy = np.stack([np.asarray(info['noisy'][v]) for v in views])
  # int(0.4 * 200) samples, one view each; the replaced rows are the next class's reference
  # (the first sample of that class).
  assert conflicting.sum() == 80 and conflicting.sum(0).max() == 1
  first = {c: int(np.flatnonzero(np.asarray(labels) == c)[0]) for c in range(5)}
  for index, view in enumerate(views):
    for row in np.flatnonzero(conflicting[index]):
      source = first[(int(labels[row]) + 1) % 5]
      np.testing.assert_array_equal(out[view][row], inputs[view][source])
  # At most int(0.1 * 200) samples noised, never on every view; untouched rows unchanged.
  noised_samples = noisy.any(0)
  assert noised_samples.sum() <= 20 and noisy.sum(0).max() <= len(views) - 1
  for index, view in enumerate(views):
    untouched = ~(noisy[index] | conflicting[index])
    np.testing.assert_array_equal(np.asarray(out[view])[untouched],
                                  np.asarray(inputs[view])[untouched])
    changed = noisy[index]
    if changed.any():
      difference = np.asarray(out[view])[changed] - np.asarray(inputs[view])[changed]
      assert np.all(difference != 0)


def test_conflictive_noise_has_the_requested_std_and_subset_sizes():
  inputs, labels = _views(4000, 1)
  out, info = corrupt.conflictive_views(inputs, labels, key=jax.random.key(1), num_classes=5,
                                        noise_fraction=1.0, noise_std=0.5,
                                        conflict_fraction=0.0)
  noisy = np.stack([np.asarray(info['noisy'][v]) for v in sorted(inputs)])
  sizes = noisy.sum(0)                       # uniform in {0, 1, 2} for three views
  assert set(np.unique(sizes)) == {0, 1, 2}
  assert np.all(np.abs(np.bincount(sizes) / sizes.size - 1 / 3) < 0.03)
  difference = np.asarray(out['a'])[noisy[0]] - np.asarray(inputs['a'])[noisy[0]]
  assert abs(difference.std() - 0.5) < 0.02


def test_conflictive_views_are_reproducible_jit_and_take_references():
  inputs, labels = _views()
  run = jax.jit(lambda key: corrupt.conflictive_views(inputs, labels, key=key, num_classes=5))
  first, _ = run(jax.random.key(3))
  again, _ = corrupt.conflictive_views(inputs, labels, key=jax.random.key(3), num_classes=5)
  for view in inputs:
    np.testing.assert_allclose(first[view], again[view], rtol=1e-6)
  references = {view: jnp.zeros((5,) + inputs[view].shape[1:]) for view in inputs}
  out, info = corrupt.conflictive_views(inputs, labels, key=jax.random.key(4), num_classes=5,
                                        noise_fraction=0.0, conflict_fraction=1.0,
                                        references=references)
  for view in inputs:
    assert np.all(np.asarray(out[view])[np.asarray(info['conflicting'][view])] == 0)


@pytest.mark.parametrize('call, match', [
    (lambda x, y: corrupt.conflictive_views({'a': x['a']}, y, key=jax.random.key(0),
                                            num_classes=5), 'two views'),
    (lambda x, y: corrupt.conflictive_views(x, y, key=jax.random.key(0), num_classes=5,
                                            conflict_fraction=1.5), 'conflict_fraction'),
    (lambda x, y: corrupt.conflictive_views(x, y, key=jax.random.key(0), num_classes=5,
                                            noise_std=-1.0), 'noise_std'),
    (lambda x, y: corrupt.conflictive_views(x, y + 1, key=jax.random.key(0), num_classes=5),
     'labels'),
    (lambda x, y: corrupt.conflictive_views(x, y % 4, key=jax.random.key(0), num_classes=5),
     'class'),
    (lambda x, y: corrupt.conflictive_views(dict(x, b=x['b'][:10]), y, key=jax.random.key(0),
                                            num_classes=5), 'same number'),
    (lambda x, y: corrupt.conflictive_views(x, y, key=None, num_classes=5), 'key'),
])
def test_conflictive_bad_input_names_the_argument(call, match):
  inputs, labels = _views(20)
  with pytest.raises((ValueError, TypeError, KeyError), match=match):
    call(inputs, labels)


# ------------------------------------------------------------------ RCML/FUML's view-subset noise


def test_random_view_noise_is_the_noise_step_of_conflictive_views():
  inputs, labels = _views(300, 2)
  key = jax.random.key(5)
  expected, info = corrupt.conflictive_views(inputs, labels, key=key, num_classes=5,
                                             noise_fraction=0.5, noise_std=2.0,
                                             conflict_fraction=0.0)
  out, noisy = corrupt.random_view_noise(inputs, 2.0, key=key, sample_fraction=0.5)
  views = sorted(inputs)
  for view in views:
    np.testing.assert_array_equal(out[view], expected[view])
    np.testing.assert_array_equal(noisy[view], info['noisy'][view])
    changed = np.any((np.asarray(out[view]) != np.asarray(inputs[view])).reshape(300, -1), 1)
    np.testing.assert_array_equal(changed, np.asarray(noisy[view]))
  stacked = np.stack([np.asarray(noisy[v]) for v in views])          # [V, B]
  assert int(stacked.any(0).sum()) <= 150 and stacked.sum(0).max() <= len(views) - 1


def test_random_view_noise_subset_sizes_and_std():
  inputs, _ = _views(6000, 3)
  out, noisy = corrupt.random_view_noise(inputs, 0.5, key=jax.random.key(2),
                                         sample_fraction=0.5)
  stacked = np.stack([np.asarray(noisy[v]) for v in sorted(inputs)])
  chosen_or_not = stacked.sum(0)
  # Half of the samples may be noised; each of those gets 0, 1 or 2 of the 3 views (uniform),
  # so 1/6 of all samples have none noised among the chosen, 1/2 are not chosen.
  counts = np.bincount(chosen_or_not, minlength=3) / chosen_or_not.size
  np.testing.assert_allclose(counts, [0.5 + 0.5 / 3, 0.5 / 3, 0.5 / 3], atol=0.02)
  difference = np.asarray(out['a'])[stacked[0]] - np.asarray(inputs['a'])[stacked[0]]
  assert abs(difference.std() - 0.5) < 0.02
  same, _ = corrupt.random_view_noise(inputs, 0.0, key=jax.random.key(2))
  for view in inputs:
    np.testing.assert_array_equal(same[view], inputs[view])


def test_random_view_noise_jits_and_vmaps_over_std():
  inputs, _ = _views(40)
  run = jax.jit(jax.vmap(lambda std: corrupt.random_view_noise(inputs, std,
                                                               key=jax.random.key(1))[0]))
  out = run(jnp.array([0.0, 1.0, 2.0]))
  once, _ = corrupt.random_view_noise(inputs, 2.0, key=jax.random.key(1))
  np.testing.assert_allclose(out['a'][2], once['a'], rtol=1e-6)
  np.testing.assert_array_equal(out['b'][0], inputs['b'])
  # Twice the std, twice the deviation, on the same rows.
  np.testing.assert_allclose(out['a'][2] - inputs['a'], 2 * (out['a'][1] - inputs['a']),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('call, match', [
    (lambda x: corrupt.random_view_noise({'a': x['a']}, 1.0, key=jax.random.key(0)),
     'two views'),
    (lambda x: corrupt.random_view_noise(x, -1.0, key=jax.random.key(0)), 'std'),
    (lambda x: corrupt.random_view_noise(x, np.float32(np.nan), key=jax.random.key(0)), 'std'),
    (lambda x: corrupt.random_view_noise(x, 1.0, key=jax.random.key(0), sample_fraction=1.5),
     'sample_fraction'),
    (lambda x: corrupt.random_view_noise(x, 1.0, key=jax.random.key(0),
                                         sample_fraction=jnp.float32(-0.1)), 'sample_fraction'),
    (lambda x: corrupt.random_view_noise(dict(x, b=x['b'][:10]), 1.0, key=jax.random.key(0)),
     'same number'),
    (lambda x: corrupt.random_view_noise(dict(x, b=jnp.zeros((20, 3), jnp.int32)), 1.0,
                                         key=jax.random.key(0)), 'floating'),
    (lambda x: corrupt.random_view_noise(x, 1.0, key=None), 'key'),
])
def test_random_view_noise_bad_input_names_the_argument(call, match):
  inputs, _ = _views(20)
  with pytest.raises((ValueError, TypeError, KeyError), match=match):
    call(inputs)
