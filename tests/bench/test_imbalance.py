"""The imbalance suite: intervals, the report table, probes, the networks and every method."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from flax import nnx

from lqmm import bench
from lqmm import data
from lqmm import nn
from lqmm import train as kit
from lqmm.bench import harness
from lqmm.bench import imbalance_suite
from lqmm.bench import methods
from lqmm.bench import report
from lqmm.bench.configs import imbalance as imbalance_configs
from tests.experiments import helpers


def test_interval_is_a_student_t_interval():
  values = np.array([1.0, 2.0, 3.0, 4.0])
  mean, half = report.interval(values)
  assert mean == 2.5
  expected = scipy.stats.t.ppf(0.975, 3) * values.std(ddof=1) / 2
  np.testing.assert_allclose(half, expected)


def test_difference_interval_reduces_to_the_pooled_case_for_equal_variances():
  a, b = np.array([3.0, 4.0, 5.0]), np.array([1.0, 2.0, 3.0])
  mean, half = report.difference_interval(a, b)
  assert mean == 2.0
  # Equal sizes and variances: Welch's dof is 2n - 2 and its interval the pooled one.
  np.testing.assert_allclose(half, scipy.stats.t.ppf(0.975, 4) * np.sqrt(2 / 3))


def test_summary_computes_gaps_against_the_alone_runs():
  def fake(probe, fused=0.9, scores=((0.8, 0.4),)):
    return bench.MethodResult(
        scores={'fused': np.full(3, fused), 'unimodal': np.full((3, 2), 0.5),
                'auxiliary': np.full((3, 2), 0.5), 'probe': np.asarray(probe)},
        best_epoch=np.zeros(3, int),
        history={'train/scores': np.broadcast_to(np.asarray(scores)[None], (3, 1, 2))},
        compile_s=0.0, run_s=0.0)
  results = {'joint': fake([[0.90, 0.60], [0.91, 0.61], [0.92, 0.62]]),
             'alone:0': fake([[0.95, 0.1], [0.96, 0.1], [0.97, 0.1]]),
             'alone:1': fake([[0.1, 0.70], [0.1, 0.71], [0.1, 0.72]])}
  (row,) = report.imbalance_summary(results, ('a', 'b'))
  np.testing.assert_allclose(row['gap_a'][0], 5.0)
  np.testing.assert_allclose(row['gap_b'][0], 10.0)
  np.testing.assert_allclose(row['ratio'][0], 2.0)
  table = report.imbalance_markdown([row], ('a', 'b'), results, 3)
  assert '| joint | 90.00 ± 0.00 |' in table and 'a trained alone' in table
  assert 'over 3 seeds' in table


def test_linear_probe_separates_separable_features():
  keys = jax.random.split(jax.random.key(0), 2)
  labels = jnp.arange(200, dtype=jnp.int32) % 4
  features = jax.nn.one_hot(labels, 4) * 3 + 0.1 * jax.random.normal(keys[0], (200, 4))
  noise = jax.random.normal(keys[1], (200, 4))
  with jax.numpy_dtype_promotion('standard'):  # optax's Adam fails under strict promotion
    accuracy = imbalance_suite.linear_probe_accuracy(
        features[:150], labels[:150], features[150:], labels[150:], num_classes=4, steps=100)
    chance = imbalance_suite.linear_probe_accuracy(
        noise[:150], labels[:150], noise[150:], labels[150:], num_classes=4, steps=100)
  assert float(accuracy) == 1.0
  assert float(chance) < 0.6


@pytest.mark.parametrize('head', ['linear', 'cosine'])
def test_balance_net_shares_the_fused_logits_between_modalities(head):
  model = nn.BalanceNet({'audio': (12, 8), 'image': (28,)}, ('audio', 'image'), 5,
                        features=16, encoder={'audio': 'conv', 'image': 'mlp'},
                        channels=(4,), head=head, rngs=nnx.Rngs(0))
  keys = jax.random.split(jax.random.key(1), 2)
  inputs = {'audio': jax.random.normal(keys[0], (3, 12, 8)),
            'image': jax.random.normal(keys[1], (3, 28))}
  outputs = model(inputs)
  assert outputs.fused.shape == (3, 5) and outputs.unimodal.shape == (2, 3, 5)
  assert outputs.auxiliary.shape == (2, 3, 5) and outputs.features.shape == (2, 3, 16)
  np.testing.assert_allclose(outputs.unimodal.sum(0), outputs.fused, rtol=1e-5, atol=1e-6)
  keep = jnp.array([[True, False, True], [True, True, True]])
  dropped = model(inputs, keep)
  np.testing.assert_array_equal(dropped.features[0, 1], 0)
  assert model.encoders['audio'].convs[0].kernel.ndim == 4  # what faithful OGM modulates


def test_unknown_names_list_the_valid_ones():
  with pytest.raises(KeyError, match='joint'):
    bench.resolve('imbalance', 'ogm-ge')
  with pytest.raises(KeyError, match='cosine'):
    nn.BalanceNet({'a': (2,)}, ('a',), 2, head='arcface', rngs=nnx.Rngs(0))
  with pytest.raises(KeyError, match='conv'):
    nn.BalanceNet({'a': (2,)}, ('a',), 2, encoder='transformer', rngs=nnx.Rngs(0))


def test_sample_valuation_plan_draws_originals_and_single_modality_copies():
  num_samples, num_classes = 40, 3
  labels = jnp.arange(num_samples, dtype=jnp.int32) % num_classes
  right = jax.nn.one_hot(labels, num_classes) * 5
  wrong = jax.nn.one_hot((labels + 1) % num_classes, num_classes) * 5
  # Subsets {}, {0}, {1}, {0, 1}: modality 0 alone is right, modality 1 alone is wrong, so
  # modality 1 contributes little and gets copies in which only it is kept.
  subset_fused = jnp.stack([jnp.zeros_like(right), right, wrong, right])
  fake = nn.BalanceOutputs(right, jnp.stack([right, wrong]), jnp.stack([right, wrong]),
                           jnp.zeros((2, num_samples, 4)))
  epoch_data = methods.EpochData(fake, labels, fake, labels, subset_fused)
  hooks = imbalance_suite.sample_valuation(start_epoch=1).hooks
  extra = hooks.init(methods.Info(2, num_classes, num_samples))
  extra = hooks.epoch_start(extra, epoch_data, jnp.int32(0), jax.random.key(0))
  np.testing.assert_array_equal(hooks.epoch_rows(extra), np.arange(num_samples))
  assert bool(jnp.all(extra['keep']))
  extra = hooks.epoch_start(extra, epoch_data, jnp.int32(1), jax.random.key(0))
  keep = extra['keep']
  assert hooks.epoch_rows(extra).shape == (num_samples,) and keep.shape == (2, num_samples)
  copies = ~jnp.all(keep, axis=0)
  assert int(copies.sum()) > 0
  # Every copy keeps modality 1 only (modality 0's contribution is high).
  assert bool(jnp.all(keep[1][copies])) and not bool(jnp.any(keep[0][copies]))


def _tiny_splits():
  """A small synthetic two-modality problem (named as such: only for exercising the harness)."""
  rng = np.random.default_rng(0)
  count = 96
  labels = rng.integers(0, 3, count).astype(np.int32)
  strong = np.eye(3)[labels] * 2 + rng.normal(size=(count, 3))
  weak = np.concatenate([np.eye(3)[labels] * 0.5 + rng.normal(size=(count, 3)),
                         rng.normal(size=(count, 1))], axis=1)
  return data.from_arrays({'strong': strong, 'weak': weak}, labels, validation_fraction=0.25,
                          test_fraction=0.25, name='synthetic_tiny')


def _tiny_config(**overrides):
  return helpers.config_with(imbalance_configs.get_config, 'smoke', **{
      'train.num_epochs': 2, 'train.batch_size': 16, 'train.eval_every': 2,
      'train.epochs_per_call': 2, 'train.checkpoint_every_epochs': 2, 'model.features': 8,
      'model.hidden': (8,), 'eval.probe_steps': 5}, **overrides)


@pytest.mark.parametrize('name', sorted(imbalance_suite.METHODS))
def test_every_method_trains_and_scores(name):
  splits = _tiny_splits()
  config = _tiny_config()
  method = bench.resolve('imbalance', name)
  teachers = None
  if method.hooks.teachers:
    teachers = jax.random.normal(jax.random.key(0), (2, 2, splits.sizes['train'], 8))
  with jax.numpy_dtype_promotion('standard'):  # optax's Adam fails under strict promotion
    fitted = harness.train_method('imbalance', method, splits, config, teachers=teachers,
                                  progress=False)
    scores = imbalance_suite.score(method, fitted.selected_state(), splits, config)
  assert scores['fused'].shape == (2,) and scores['probe'].shape == (2, 2)
  assert fitted.history['train/scores'].shape == (2, 2, 2)
  assert np.all(np.isfinite(fitted.history['train/scores']))
  if name == 'greedy':
    assert scores['utilization'].shape == (2, 2)


def test_smoke_run_writes_the_report(tmp_path, tfds_dir):
  config = helpers.config_with(imbalance_configs.get_config, 'smoke',
                               **{'data.data_dir': tfds_dir})
  with jax.numpy_dtype_promotion('standard'):
    results = bench.run(config, tmp_path, log=lambda line: None)
  assert set(results) == {'alone:0', 'alone:1', 'joint', 'ogm_ge', 'pmr', 'umt'}
  table = (tmp_path / 'results.md').read_text()
  assert '| umt |' in table and 'fac trained alone' in table
  assert (tmp_path / 'imbalance.png').stat().st_size > 10_000
  assert 'gap_mor' in (tmp_path / 'results.csv').read_text()
  # Behaviour (fac strong, mor weak; 10 classes, chance 0.1; measured: fused test accuracy 0.67
  # to 0.98, last-epoch training scores of joint training fac 0.81-0.86, mor 0.29-0.30).
  for name, result in results.items():
    assert np.all(result.scores['fused'] > 0.5), (name, result.scores['fused'])
  scores = {name: result.history['train/scores'] for name, result in results.items()}  # [S, E, M]
  # A modality trained alone: the other one's share of the fused logits stays at chance.
  np.testing.assert_allclose(scores['alone:0'][..., 1], 0.1, atol=0.01)
  np.testing.assert_allclose(scores['alone:1'][..., 0], 0.1, atol=0.01)
  assert np.all(scores['alone:0'][:, -1, 0] > 0.5) and np.all(scores['alone:1'][:, -1, 1] > 0.2)
  # Joint training is imbalanced: fac leads. Every method changes training (same seeds and
  # data as joint), and OGM-GE slows the leader down.
  assert np.all(scores['joint'][:, -1, 0] > 2 * scores['joint'][:, -1, 1])
  for name in ('ogm_ge', 'pmr', 'umt'):
    assert not np.allclose(scores[name], scores['joint'], atol=1e-3), name
  assert np.all(scores['ogm_ge'][:, -1, 0] < scores['joint'][:, -1, 0] - 0.03)
  # OGM-GE's coefficients of its last step (in the checkpointed optimizer state of every
  # modality's transform): below 1 for fac, 1 for mor.
  checkpointer = kit.Checkpointer(tmp_path, subdir='ogm_ge')
  restored = checkpointer.restore()
  checkpointer.close()
  coefficients = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(restored)[0]
                  if 'opt_state' in jax.tree_util.keystr(path)
                  and jax.tree_util.keystr(path).endswith("['coefficients']")]
  assert len(coefficients) == 2  # one scale_by_ogm per modality
  for leaf in coefficients:
    assert np.all(np.asarray(leaf)[:, 0] < 1) and np.all(np.asarray(leaf)[:, 1] == 1), leaf
