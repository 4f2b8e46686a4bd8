"""QMF ranking regulariser and history: parity with QingyangZhang/QMF, clean form, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lqmm.fusion import energy
from lqmm.losses import ranking
from tests import helpers

vectors = helpers.vectors_fixture('qmf_vectors.npz')


@pytest.mark.parametrize('case', ['rand', 'partial', 'kink'])
def test_slack_form_matches_the_original(vectors, x64, case):
  del x64
  history = ranking.History(jnp.asarray(vectors[f'rank_{case}_history']))
  indices = jnp.asarray(vectors[f'rank_{case}_idx'])
  conf = jnp.asarray(vectors[f'rank_{case}_conf'])
  loss, grad = jax.value_and_grad(lambda c: ranking.ranking_loss(
      c, history, indices, margin_as_slack=True))(conf)
  np.testing.assert_allclose(loss, vectors[f'rank_{case}_loss_m64'], rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(loss, vectors[f'rank_{case}_loss'], atol=1e-7)  # float32 margin
  np.testing.assert_allclose(grad, vectors[f'rank_{case}_grad'], atol=1e-14)


@pytest.mark.parametrize('case', ['empty', 'const'])
def test_constant_history_gives_zero_not_nan(vectors, x64, case):
  del x64
  history = ranking.History(jnp.asarray(vectors[f'rank_{case}_history']))
  conf = jnp.asarray(vectors[f'rank_{case}_conf'])
  indices = jnp.asarray(vectors[f'rank_{case}_idx'])
  assert np.isnan(vectors[f'rank_{case}_loss'])  # the original's value
  for slack in (False, True):
    loss, grad = jax.value_and_grad(lambda c: ranking.ranking_loss(
        c, history, indices, margin_as_slack=slack))(conf)
    assert float(loss) == 0.0
    np.testing.assert_array_equal(grad, vectors[f'rank_{case}_grad'])  # zero, like the original


def test_clean_form_enforces_the_gap():
  history = ranking.History(jnp.array([0.0, 1.0, 2.0, 4.0]))
  indices = jnp.array([3, 1])  # normalised histories 1.0 and 0.25: gap 0.75
  # Sample 3 (larger loss) must be at least 0.75 less confident than sample 1.
  assert float(ranking.ranking_loss(jnp.array([0.0, 0.75]), history, indices)) == 0.0
  assert float(ranking.ranking_loss(jnp.array([0.0, 0.5]), history, indices)) > 0.0
  # The slack form already accepts the right order without any gap.
  assert float(ranking.ranking_loss(jnp.array([0.0, 0.01]), history, indices,
                                    margin_as_slack=True)) == 0.0


@pytest.mark.parametrize('case', ['mid', 'first'])
@pytest.mark.parametrize('variant', ['rgbd', 'ti'])
def test_one_training_step_matches(vectors, x64, case, variant):
  del x64
  prefix = f'step_{case}'
  logits = jnp.asarray(vectors[f'{prefix}_logits'])
  labels = jnp.asarray(vectors[f'{prefix}_labels'])
  indices = jnp.asarray(vectors[f'{prefix}_idx'])
  history = ranking.History(jnp.asarray(vectors[f'{prefix}_hist_correctness']))
  # RGB-D: weights trained through the fusion, lambda from the data, rank loss before the update;
  # text-image: detached weights, lambda 1, update first.
  rgbd = variant == 'rgbd'
  weight = float(vectors[f'{prefix}_lamb']) if rgbd else 1.0

  def objective(logits):
    fused = energy.fuse(logits, stop_gradient=not rgbd)
    unimodal = optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.broadcast_to(labels, logits.shape[:-1]))
    fused_ce = optax.softmax_cross_entropy_with_integer_labels(fused, labels).mean()
    ce = jnp.concatenate([fused_ce[None], unimodal.mean(axis=1)])
    updated = ranking.update_history(history, indices, unimodal)
    used = history if rgbd else updated
    conf = energy.confidence(logits)
    ranks = jnp.stack([ranking.ranking_loss(conf[m], ranking.History(used.cumulative_loss[m]),
                                            indices, margin_as_slack=True) for m in range(2)])
    return jnp.sum(ce) + weight * jnp.sum(ranks), (ce, ranks, updated)

  (loss, (ce, ranks, updated)), grad = jax.value_and_grad(objective, has_aux=True)(logits)
  np.testing.assert_allclose(ce, vectors[f'{prefix}_{variant}_ce'], rtol=1e-12)
  np.testing.assert_allclose(updated.cumulative_loss,
                             vectors[f'{prefix}_{variant}_hist_correctness_post'], rtol=1e-12)
  np.testing.assert_allclose(grad, vectors[f'{prefix}_{variant}_grad'], atol=1e-13)
  expected_ranks = vectors[f'{prefix}_{variant}_rank_m64']
  if np.all(np.isfinite(expected_ranks)):
    np.testing.assert_allclose(ranks, expected_ranks, atol=1e-13)
    np.testing.assert_allclose(loss, vectors[f'{prefix}_{variant}_loss_m64'], atol=1e-13)
  else:  # the original's NaN on an all-zero history; lqmm gives 0 there.
    assert case == 'first' and rgbd
    np.testing.assert_array_equal(ranks, 0.0)


def test_history_is_a_jittable_state():
  @jax.jit
  def step(history, indices, losses):
    return ranking.update_history(history, indices, losses)

  history = ranking.init_history(6, num_modalities=2)
  history = step(history, jnp.array([0, 4]), jnp.ones((2, 2)))
  history = step(history, jnp.array([4, 5]), jnp.full((2, 2), 2.0))
  np.testing.assert_array_equal(history.cumulative_loss[0], [1, 0, 0, 0, 3, 2])
  assert isinstance(history, ranking.History)


def test_errors():
  history = ranking.init_history(4)
  with pytest.raises(ValueError, match=r'indices must lie in \[0, 4\)'):
    ranking.ranking_loss(jnp.ones(2), history, jnp.array([0, 7]))
  with pytest.raises(ValueError, match='confidence must have shape'):
    ranking.ranking_loss(jnp.ones((2, 1)), history, jnp.array([0, 1]))
  with pytest.raises(ValueError, match='num_samples must be >= 2'):
    ranking.init_history(1)
  with pytest.raises(ValueError, match='losses must have shape'):
    ranking.update_history(ranking.init_history(4, 2), jnp.array([0, 1]), jnp.ones(2))


def test_mask_drops_pairs_with_a_missing_modality():
  history = ranking.History(jnp.array([0.0, 1.0, 2.0, 3.0, 4.0]))
  confidence = jnp.array([0.9, 0.1, 0.8, 0.3])
  indices = jnp.array([4, 0, 3, 1])
  full = ranking.ranking_loss(confidence, history, indices)
  everything = ranking.ranking_loss(confidence, history, indices, mask=jnp.ones(4, bool))
  np.testing.assert_allclose(everything, full, rtol=1e-6)
  # Sample 1 missing: pairs (0, 1) and (1, 2) drop out; the mean is over the other two.
  mask = jnp.array([True, False, True, True])
  normalised = np.array([4.0, 0.0, 3.0, 1.0]) / 4
  pairs = [(2, 3), (3, 0)]
  expected = np.mean([max(0.0, abs(normalised[i] - normalised[j]) + np.sign(
      normalised[i] - normalised[j]) * (float(confidence[i]) - float(confidence[j])))
                      for i, j in pairs])
  np.testing.assert_allclose(ranking.ranking_loss(confidence, history, indices, mask=mask),
                             expected, rtol=1e-6)
  assert float(ranking.ranking_loss(confidence, history, indices,
                                    mask=jnp.array([True, False, True, False]))) == 0.0
  with pytest.raises(ValueError, match='mask must have shape'):
    ranking.ranking_loss(confidence, history, indices, mask=jnp.ones(3, bool))
