"""The incomplete multi-view clustering experiment: smoke run, protocol, invalid configs."""

import json
import shutil

import numpy as np
import pytest

from experiments.imvc_handwritten import diagnose_dcp
from experiments.imvc_handwritten import merge
from experiments.imvc_handwritten import train
from experiments.imvc_handwritten.configs import default
from lqmm import data
from lqmm.bench import report
from tests.experiments import helpers


@pytest.fixture(scope='module')
def smoke(tmp_path_factory, tfds_dir, manual_dir):
  workdir = tmp_path_factory.mktemp('imvc_smoke')
  # One device (CDIMC-net and DCP train with the shared loop): see test_uimc_handwritten.py.
  config = helpers.smoke_config(default.get_config, tfds_dir, str(manual_dir),
                                **{'train.num_devices': 1})
  return workdir, config, helpers.run(train, config, workdir)


def test_smoke_run_reports_every_method_rate_and_fold(smoke):
  workdir, config, results = smoke
  assert list(results['methods']) == list(config.methods)
  for method, outcome in results['methods'].items():
    for name in ('acc', 'nmi_max', 'nmi_arithmetic', 'ari', 'purity'):
      values = np.asarray(outcome['test'][name])
      assert values.shape == (2, 2, 1) and np.all(np.isfinite(values)), (method, name)
    # Far above chance (10%) on Handwritten even with few iterations; CDIMC-net's 4-epoch
    # pretraining of a narrow network, DCP's 4 epochs and MIC's 2 rounds of 3 steps only
    # above chance.
    floor = 0.15 if method in ('cdimc', 'dcp', 'mic') else 0.4
    assert np.all(np.asarray(outcome['test']['acc']) > floor), method
  trace = np.asarray(results['methods']['daimc']['trace'])
  assert trace.shape[:3] == (2, 2, 1) and np.all(np.isfinite(trace))
  assert np.all(np.asarray(results['methods']['bsv']['test']['view']) < 5)
  text = (workdir / 'results.md').read_text()
  assert 'p = 0.3' in text and 'NMI_max' in text


def test_cdimc_resumes_to_the_uninterrupted_result(smoke, tmp_path, tfds_dir, manual_dir):
  from lqmm import train as kit  # pylint: disable=g-import-not-at-top
  _, _, whole = smoke
  config = helpers.smoke_config(default.get_config, tfds_dir, str(manual_dir),
                                methods=('cdimc',), **{'missing.rates': (0.1, 0.3),
                                                       'train.num_devices': 1})
  stopped = helpers.config_with(lambda _: config.copy_and_resolve_references(), None,
                                **{'train.stop_after_epochs': 2})
  with pytest.raises(kit.StopRequested):
    helpers.run(train, stopped, tmp_path)
  assert kit.Checkpointer(tmp_path, subdir='cdimc_pretrain').latest_step() == 2
  resumed = helpers.run(train, config, tmp_path)
  for name in ('acc', 'nmi_max', 'pretrained_acc'):
    np.testing.assert_array_equal(resumed['methods']['cdimc']['test'][name],
                                  whole['methods']['cdimc']['test'][name])
  steps = helpers.metric_steps(tmp_path, 'cdimc_pretrain/train/loss')
  assert steps == sorted(set(steps))


def test_masks_are_the_published_folds_at_0_3_and_exact_per_view_elsewhere(manual_dir):
  config = helpers.config_with(default.get_config, None, **{'data.manual_dir': str(manual_dir)})
  masks, specs = train.make_masks(config, 2000)
  assert masks.shape == (4, 10, 2000, 5)
  published = data.mask_folds('handwritten_cdimc_0.3', manual_dir=manual_dir).masks
  np.testing.assert_array_equal(masks[1], published)
  assert 'published' in specs[1]['source']
  for r, rate in enumerate(config.missing.rates):
    assert np.all((~masks[r]).sum(axis=1) == int(2000 * rate))  # exactly p of every view
    assert np.all(masks[r].any(axis=2))                         # every sample keeps a view
  # Different folds are different masks.
  assert not np.array_equal(masks[0, 0], masks[0, 1])
  # A sweep in parts: folds 4 and 5 alone are the full run's folds 4 and 5, at every rate.
  part = helpers.config_with(lambda _: config.copy_and_resolve_references(), None,
                             **{'missing.first_fold': 4, 'missing.num_folds': 2})
  part_masks, part_specs = train.make_masks(part, 2000)
  np.testing.assert_array_equal(part_masks, masks[:, 4:6])
  assert part_specs[1]['first_fold'] == 4


@pytest.mark.parametrize('override, match', [
    ({'methods': ('daimc', 'kmeans')}, 'method'),
    ({'missing.rates': (0.1, 0.9)}, 'config.missing.rates'),
    ({'missing.first_fold': 9}, 'first_fold \\+ num_folds must be at most 10'),
    ({'daimc.alpha': -1.0}, 'config.daimc.alpha'),
    ({'dcp.train_rows': 'all'}, 'config.dcp.train_rows'),
    ({'dcp.hidden': ()}, 'config.dcp.hidden'),
    ({'imsc_agl.rho': 0.5}, 'config.imsc_agl.rho'),
    ({'fimvc_via.anchor_rows': 'middle'}, 'config.fimvc_via.anchor_rows'),
    ({'fimvc_via.lam': 0.0}, 'config.fimvc_via.lam'),
    ({'missing.num_folds': 0}, 'config.missing.num_folds'),
])
def test_invalid_config_raises_before_writing(tmp_path, override, match):
  config = helpers.config_with(default.get_config, 'smoke', **override)
  with pytest.raises((ValueError, KeyError, TypeError), match=match):
    train.train_and_evaluate(config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()


def test_dcp_complete_rows_counts_only_the_original_batches():
  """train_rows='complete': a batch counts only where its rows have every view and sit in the
  first ceil(n_complete / B) - 1 batches (DCP drops the last); other steps change nothing."""
  import functools  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top

  from lqmm import nn  # pylint: disable=g-import-not-at-top
  from lqmm import train as kit  # pylint: disable=g-import-not-at-top
  config = helpers.config_with(default.get_config, 'smoke', **{'dcp.batch_size': 4})
  order = tuple(config.data.modalities)
  dims = dict(zip(order, (6, 5, 4, 3, 2)))
  keys = jax.random.split(jax.random.key(0), len(order))
  views = tuple(jax.random.normal(key, (16, dims[view])) for key, view in zip(keys, order))
  mask = np.ones((16, 5), bool)
  mask[12:, 1] = False                                   # 12 complete rows: 2 batches of 4 count
  extra = train.dcp_prepare(jnp.asarray(mask), views=views, config=config)
  init = kit.initializer(lambda: nn.DualPredictionNet(
      dims, order, latent_dim=4, hidden=(8,), predictor_hidden=(6,), rngs=nnx.Rngs(0)),
      optax.adam(1e-2), init_params=nn.torch_linear_init)
  state = init(jax.random.key(1)).replace(extra=extra)
  step = jax.jit(functools.partial(train.dcp_train_step, config=config))

  def run(rows, positions):
    batch = {'index': jnp.asarray(rows, jnp.int32), 'position': jnp.asarray(positions, jnp.int32),
             'weight': jnp.ones(4, jnp.float32), 'label': jnp.zeros(4, jnp.int32)}
    with jax.numpy_dtype_promotion('standard'):  # optax's Adam, as helpers.run
      return step(state, batch, jax.random.key(2))

  counted, metrics = run([0, 1, 2, 3], [4, 5, 6, 7])
  assert float(metrics['active']) == 1 and int(counted.step) == 1
  for rows, positions in (([12, 13, 14, 15], [0, 1, 2, 3]),   # no complete row
                          ([8, 9, 10, 11], [8, 9, 10, 11])):  # the dropped last batch
    skipped, metrics = run(rows, positions)
    assert float(metrics['active']) == 0
    jax.tree.map(np.testing.assert_array_equal, skipped.params, state.params)
    jax.tree.map(np.testing.assert_array_equal, skipped.model_state, state.model_state)
    assert int(skipped.step) == 0


def test_dcp_diagnosis_reads_the_finished_run(smoke):
  """The diagnosis restores the smoke run's DCP (no training) and scores the same clusters."""
  workdir, config, results = smoke
  rows = diagnose_dcp.diagnose(config, workdir)
  acc = np.asarray(results['methods']['dcp']['test']['acc']).ravel()
  assert len(rows) == acc.size
  np.testing.assert_allclose([row['acc'] for row in rows], acc, atol=0.02)
  for row in rows:
    assert set(row['view_acc']) == set(config.data.modalities)
    assert 0 <= row['nmi_pattern'] <= 1 and 0 < row['code_max'] <= 1
    assert set(row['rows']) == set(config.data.modalities[1:])
  with pytest.raises(ValueError, match='config.methods must include dcp'):
    diagnose_dcp.diagnose(helpers.config_with(default.get_config, 'smoke',
                                              methods=('bsv',)), workdir)


def test_merge_joins_the_parts_of_a_sweep(tmp_path, tfds_dir, manual_dir):
  """Two parts (fold 0 at p = 0.1 and 0.3; fold 1 at p = 0.3) merge into one report; a fold
  twice or a part with other settings is refused."""
  parts = {'a': ((0.1, 0.3), 0), 'b': ((0.3,), 1)}
  outcomes = {}
  for name, (rates, first) in parts.items():
    config = helpers.smoke_config(default.get_config, tfds_dir, str(manual_dir),
                                  methods=('bsv',), **{'missing.rates': rates,
                                                       'missing.first_fold': first,
                                                       'missing.num_folds': 1})
    outcomes[name] = helpers.run(train, config, tmp_path / name)
  merged = merge.merge([tmp_path / 'b', tmp_path / 'a'])
  assert merged['rates'] == [0.1, 0.3] and merged['num_folds'] == [1, 2]
  assert [spec['folds'] for spec in merged['specs']] == [[0], [0, 1]]
  acc = merged['methods']['bsv']['test']['acc']
  a, b = (outcomes[name]['methods']['bsv']['test']['acc'] for name in 'ab')
  assert acc == [[a[0][0]], [a[1][0], b[0][0]]]
  timing = merged['methods']['bsv']['timing']
  assert timing['run_s'] == pytest.approx(sum(
      outcomes[name]['methods']['bsv']['timing']['run_s'] for name in 'ab'))
  assert merge.main(['--workdir', str(tmp_path / 'merged'), str(tmp_path / 'a'),
                     str(tmp_path / 'b')]) == 0
  text = (tmp_path / 'merged' / 'results.md').read_text()
  assert '1 / 2 folds' in text
  cell = report.mean_std(100 * np.asarray([a[1][0], b[0][0]]).ravel(), ddof=1)
  assert f'| {cell} |' in text
  with pytest.raises(ValueError, match='fold 0 at rate 0.1 is in both'):
    merge.merge([tmp_path / 'a', tmp_path / 'a'])
  # A part with other settings (here: k-means restarts) is another sweep.
  shutil.copytree(tmp_path / 'b', tmp_path / 'c')
  config_json = json.loads((tmp_path / 'c' / 'config.json').read_text())
  config_json['kmeans']['restarts'] = 3
  config_json['missing']['rates'] = [0.5]
  (tmp_path / 'c' / 'config.json').write_text(json.dumps(config_json))
  with pytest.raises(ValueError, match='kmeans.restarts'):
    merge.merge([tmp_path / 'a', tmp_path / 'c'])
  assert merge.main(['--workdir', str(tmp_path / 'x'), str(tmp_path / 'missing')]) == 2
  assert not (tmp_path / 'x').exists()
