"""Matching losses and retrieval metrics against NCR, RINCE and DataComp, and their laws."""

import pathlib

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from lqmm import metrics
from lqmm.losses import matching

VECTORS = pathlib.Path(__file__).parents[1] / 'reference' / 'data' / 'matching_vectors.npz'


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(VECTORS))


@pytest.mark.parametrize('case', range(5))
def test_hinge_equals_ncr_contrastive_loss(ref, case, x64):
  del x64
  prefix = f'hinge{case}_'
  scores, labels = ref[prefix + 'scores'], ref[prefix + 'labels']
  mode, soft = str(ref[prefix + 'mode']), str(ref[prefix + 'soft'])
  settings = dict(margin=float(ref[prefix + 'margin']), soft_margin=soft)
  if mode != 'None':
    settings.update(labels=labels, label_axis=mode)
  hardest = matching.vse_hinge_loss(scores, negatives='hardest', **settings)
  mean = matching.vse_hinge_loss(scores, negatives='mean', **settings)
  np.testing.assert_allclose(jnp.sum(hardest), ref[prefix + 'train_hardest'], rtol=1e-12)
  np.testing.assert_allclose(jnp.sum(mean), ref[prefix + 'train_mean'], rtol=1e-12)
  np.testing.assert_allclose(jnp.sum(mean), ref[prefix + 'warmup'], rtol=1e-12)
  np.testing.assert_allclose(mean, ref[prefix + 'eval_loss'], rtol=1e-12, atol=1e-15)
  if prefix + 'predict' in ref:
    np.testing.assert_allclose(matching.correspondence_scores(scores, margin=settings['margin']),
                               ref[prefix + 'predict'], rtol=1e-12)


def test_pair_labels_differ_from_both_of_ncrs_broadcasts(ref, x64):
  del x64
  scores, labels = ref['hinge1_scores'], ref['hinge1_labels']
  per_axis = {axis: np.asarray(matching.vse_hinge_loss(scores, labels=labels, label_axis=axis))
              for axis in matching.LABEL_AXES}
  assert not np.allclose(per_axis['pair'], per_axis['column'])
  assert not np.allclose(per_axis['pair'], per_axis['row'])
  # With equal labels every axis gives the same margins.
  same = {axis: matching.vse_hinge_loss(scores, labels=jnp.full(7, 0.6), label_axis=axis)
          for axis in matching.LABEL_AXES}
  np.testing.assert_allclose(same['pair'], same['column'], rtol=1e-12)
  np.testing.assert_allclose(same['pair'], same['row'], rtol=1e-12)


@pytest.mark.parametrize('case', range(3))
def test_robust_info_nce_equals_rince_moco_v3(ref, case, x64):
  del x64
  prefix = f'rince{case}_'
  query, key = ref[prefix + 'query'], ref[prefix + 'key']
  query = query / np.linalg.norm(query, axis=1, keepdims=True)
  key = key / np.linalg.norm(key, axis=1, keepdims=True)
  temperature = float(ref[prefix + 'temperature'])
  loss = matching.robust_info_nce(query @ key.T, q=float(ref[prefix + 'q']),
                                  lam=float(ref[prefix + 'lam']), temperature=temperature)
  np.testing.assert_allclose(jnp.mean(loss) * 2 * temperature, ref[prefix + 'loss'],
                             rtol=1e-12)


@pytest.mark.parametrize('case', range(2))
def test_retrieval_recall_equals_ncr_evaluation(ref, case, x64):
  del x64
  prefix = f'retrieval{case}_'
  result = metrics.retrieval_recall(ref[prefix + 'sims'],
                                    captions_per_image=int(ref[prefix + 'per']))
  for direction in ('i2t', 't2i'):
    expected = ref[prefix + direction]
    got = [result[f'{direction}_{name}'] for name in ('r1', 'r5', 'r10', 'medr', 'meanr')]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
  expected_rsum = sum(ref[prefix + 'i2t'][:3]) + sum(ref[prefix + 't2i'][:3])
  assert result['rsum'] == pytest.approx(expected_rsum)


@pytest.mark.parametrize('case', range(3))
def test_similarity_filter_uses_datacomps_threshold(ref, case):
  prefix = f'datacomp{case}_'
  scores = ref[prefix + 'scores']
  kept = np.asarray(matching.similarity_filter(scores, fraction=float(ref[prefix + 'fraction'])))
  np.testing.assert_array_equal(kept, scores >= ref[prefix + 'threshold'])
  np.testing.assert_array_equal(
      matching.similarity_filter(scores, threshold=float(ref[prefix + 'threshold'])), kept)


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(st.integers(0, 2**31 - 1), st.floats(0.05, 2.0))
def test_rince_tends_to_info_nce_as_q_falls(seed, temperature):
  scores = np.random.default_rng(seed).normal(size=(6, 6))
  with jax.enable_x64(True):
    nce = np.asarray(matching.info_nce(scores, temperature=temperature))
    rince = np.asarray(matching.robust_info_nce(scores, q=1e-6, lam=1.0,
                                                temperature=temperature))
  # RINCE(q) = (e^{q log Z} - e^{q s+}) / q -> log Z - s+ = InfoNCE.
  np.testing.assert_allclose(rince, nce, rtol=1e-4, atol=1e-4)


def test_hinge_is_zero_when_every_positive_wins_by_the_margin():
  scores = 0.1 * jnp.ones((4, 4)) + jnp.eye(4)
  np.testing.assert_array_equal(matching.vse_hinge_loss(scores, margin=0.5), 0.0)
  assert float(jnp.sum(matching.vse_hinge_loss(scores, margin=1.5))) > 0
  loss = jax.grad(lambda s: jnp.sum(matching.vse_hinge_loss(s, margin=1.5)))(scores)
  assert np.all(np.isfinite(np.asarray(loss)))


def test_rince_is_finite_where_the_plain_sum_of_exponentials_overflows():
  scores = 100.0 * jnp.eye(4)          # e^100 overflows float32; e^(0.1 * 100) does not
  loss = np.asarray(matching.robust_info_nce(scores, q=0.1, lam=0.01))
  assert np.all(np.isfinite(loss))
  expected = (np.exp(0.1 * (np.log(0.01) + 100 + np.log1p(3 * np.exp(-100.0))))
              - np.exp(0.1 * 100.0)) / 0.1
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


@pytest.mark.parametrize('call, match', [
    (lambda: matching.vse_hinge_loss(jnp.ones((3, 4))), 'scores'),
    (lambda: matching.vse_hinge_loss(jnp.ones((3, 3)), margin=-0.1), 'margin'),
    (lambda: matching.vse_hinge_loss(jnp.ones((3, 3)), labels=jnp.array([0.5, 1.2, 0.1])),
     'labels'),
    (lambda: matching.vse_hinge_loss(jnp.ones((3, 3)), soft_margin='cosine'), 'soft_margin'),
    (lambda: matching.vse_hinge_loss(jnp.ones((3, 3)), negatives='semi'), 'negatives'),
    (lambda: matching.robust_info_nce(jnp.ones((3, 3)), q=0.0), 'q'),
    (lambda: matching.robust_info_nce(jnp.ones((3, 3)), lam=2.0), 'lam'),
    (lambda: matching.info_nce(jnp.ones((3, 3)), temperature=0.0), 'temperature'),
    (lambda: matching.similarity_filter(jnp.ones(3)), 'fraction'),
    (lambda: matching.similarity_filter(jnp.ones(3), fraction=1.5), 'fraction'),
    (lambda: metrics.retrieval_recall(jnp.eye(4), ks=(1, 5)), 'ks'),
    (lambda: metrics.retrieval_recall(jnp.ones((4, 6)), captions_per_image=2), 'scores'),
])
def test_bad_input_names_the_argument(call, match):
  with pytest.raises((ValueError, TypeError, KeyError), match=match):
    call()
