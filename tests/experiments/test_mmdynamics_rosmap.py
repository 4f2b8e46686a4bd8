"""The Multimodal Dynamics experiment's :smoke config: finite metrics, outputs, checkpoint."""

import jax
import numpy as np
import pytest

from experiments.mmdynamics_rosmap import train
from experiments.mmdynamics_rosmap.configs import default


def test_smoke_run(tmp_path, tfds_dir, manual_dir):
  config = default.get_config('smoke')
  config.unlock()
  config.data.data_dir = tfds_dir
  config.data.manual_dir = manual_dir
  config.lock()
  with jax.numpy_dtype_promotion('standard'):  # optax's Adam fails under strict promotion
    results = train.train_and_evaluate(config, tmp_path)
    # A second call resumes from the final checkpoint and trains nothing more.
    again = train.train_and_evaluate(config, tmp_path)
  accuracy = np.asarray(results['test']['accuracy'])
  assert accuracy.shape == (2,) and np.all((accuracy >= 0) & (accuracy <= 1))
  for name, values in results['test'].items():
    assert np.all(np.isfinite(values)), name
  assert (tmp_path / 'checkpoints' / '4').is_dir()
  assert again['start_epoch'] == 4
  np.testing.assert_array_equal(again['test']['accuracy'], results['test']['accuracy'])
  assert '| accuracy % |' in (tmp_path / 'results.md').read_text()


def test_unknown_variant_and_dtype():
  with pytest.raises(KeyError, match='valid variants'):
    default.get_config('bf8')
