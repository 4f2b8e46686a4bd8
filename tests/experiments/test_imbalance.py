"""The imbalance experiment's :smoke config (Handwritten fac + mor): finite metrics, outputs."""

import json

import jax
import numpy as np
import pytest

from experiments.imbalance import train
from experiments.imbalance.configs import default


def test_every_variant_builds():
  for variant in ('av_digits', 'av_digits_conv', 'fac_mor', 'pix_zer', 'smoke'):
    config = default.get_config(variant)
    assert config.dataset in train.DATASETS
  with pytest.raises(KeyError, match='valid variants'):
    default.get_config('cremad')


def test_smoke_run(tmp_path, tfds_dir):
  config = default.get_config('smoke')
  config.unlock()
  config.data_dir = tfds_dir
  config.lock()
  with jax.numpy_dtype_promotion('standard'):  # optax's Adam fails under strict promotion
    output = train.train_and_evaluate(config, tmp_path)
  results = output['results']
  assert set(results) == {'joint', 'ogm_ge', 'pmr', 'umt', 'alone:0', 'alone:1'}
  for result in results.values():
    for metric in ('fused', 'unimodal', 'auxiliary', 'probe'):
      values = np.asarray(result['scores'][metric])
      assert values.shape[0] == 2 and np.all((values >= 0) & (values <= 1))
    scores = np.asarray(result['train_scores'])
    assert scores.shape == (2, 4, 2) and np.all(np.isfinite(scores))
  assert output['sizes'] == {'train': 1400, 'validation': 200, 'test': 400}
  table = (tmp_path / 'results.md').read_text()
  assert 'gap_fac' in table and '| ogm_ge |' in table
  assert (tmp_path / 'imbalance.png').stat().st_size > 1000
  assert json.loads((tmp_path / 'config.json').read_text())['dataset'] == 'fac_mor'
