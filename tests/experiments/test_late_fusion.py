"""The late-fusion experiment's :smoke config (QMF on Handwritten): finite metrics, outputs."""

import json

import jax
import numpy as np
import pytest

from experiments.late_fusion import train
from experiments.late_fusion.configs import default


def test_every_variant_builds():
  for variant in ('qmf_handwritten', 'qmf_rosmap', 'etmc_handwritten', 'etmc_rosmap', 'smoke'):
    config = default.get_config(variant)
    assert config.method in ('qmf', 'etmc')
  with pytest.raises(KeyError, match='valid variants'):
    default.get_config('tmc_mnist')


def test_smoke_run(tmp_path, tfds_dir):
  config = default.get_config('smoke')
  config.unlock()
  config.data_dir = tfds_dir
  config.lock()
  with jax.numpy_dtype_promotion('standard'):  # optax's Adam fails under strict promotion
    results = train.train_and_evaluate(config, tmp_path)
  assert set(results['test']) == {'clean', 'noise_all_0.5', 'noise_one_0.5', 'missing_0.4',
                                  'quality_1'}
  for cell in results['test'].values():
    for metric in ('accuracy', 'ece', 'uncertainty_auroc', 'covariance'):
      assert np.all(np.isfinite(cell[metric])) and len(cell[metric]) == 2
  assert results['sizes'] == {'train': 1400, 'validation': 200, 'test': 400}
  assert set(results['best_epoch']) <= {2, 4}
  assert (tmp_path / 'robustness.png').stat().st_size > 1000
  assert json.loads((tmp_path / 'config.json').read_text())['method'] == 'qmf'
