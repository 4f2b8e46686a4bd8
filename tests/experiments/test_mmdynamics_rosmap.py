"""The Multimodal Dynamics experiment's :smoke config: finite metrics, outputs, resume."""

import numpy as np
import pytest

from experiments.mmdynamics_rosmap import train
from experiments.mmdynamics_rosmap.configs import default
from tests.experiments import helpers


def _config(tfds_dir, manual_dir, **overrides):
  return helpers.smoke_config(default.get_config, tfds_dir, manual_dir, **overrides)


def test_smoke_run_and_resume(tmp_path, tfds_dir, manual_dir):
  config = _config(tfds_dir, manual_dir)
  workdir = tmp_path / 'uninterrupted'
  results = helpers.run(train, config, workdir)
  accuracy = np.asarray(results['test']['accuracy'])
  assert accuracy.shape == (2,) and np.all((accuracy >= 0) & (accuracy <= 1))
  for name, values in results['test'].items():
    assert np.all(np.isfinite(values)), name
  assert (workdir / 'checkpoints' / '4').is_dir()
  assert '| accuracy % |' in (workdir / 'results.md').read_text()
  # A second call resumes from the final checkpoint and trains nothing more.
  again = helpers.run(train, config, workdir)
  assert again['start_epoch'] == 4
  np.testing.assert_array_equal(again['test']['accuracy'], results['test']['accuracy'])
  # A run stopped after 2 epochs resumes to the same parameters.
  helpers.assert_resume_matches(train, config, workdir, tmp_path / 'resumed', stop_after=2)


def test_unknown_variant_and_dtype(tmp_path, tfds_dir, manual_dir):
  with pytest.raises(KeyError, match='valid variants'):
    default.get_config('bf8')
  with pytest.raises(KeyError, match="Unknown compute_dtype 'float8'"):
    helpers.run(train, _config(tfds_dir, manual_dir, **{'model.compute_dtype': 'float8'}),
                tmp_path)
