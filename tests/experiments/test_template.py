"""The template experiment: the smoke config end to end with a resume, and your own arrays."""

import numpy as np
import pytest

from experiments.template import train
from experiments.template.configs import default
from tests.experiments import helpers


def _config(tfds_dir, variant='smoke', **overrides):
  return helpers.smoke_config(default.get_config, tfds_dir, variant=variant, **overrides)


def test_smoke_run_and_resume(tmp_path, tfds_dir):
  config = _config(tfds_dir)
  results = helpers.run(train, config, tmp_path / 'run')
  accuracy = np.asarray(results['test']['accuracy'])
  assert accuracy.shape == (2, 2) and np.all(np.isfinite(accuracy))
  assert np.all(accuracy[:, 0] > 0.5)  # 4 epochs already far above chance (10%)
  assert set(results['best_epoch']) <= {2, 4}
  assert (tmp_path / 'run' / 'missing.png').stat().st_size > 1000
  helpers.assert_resume_matches(train, config, tmp_path / 'run', tmp_path / 'resumed',
                                stop_after=2)


def test_bring_your_own_arrays(tmp_path, tfds_dir):
  config = _config(tfds_dir, 'digits', **{'train.num_epochs': 4, 'train.num_seeds': 1,
                                          'train.eval_every': 2, 'train.epochs_per_call': 4,
                                          'train.checkpoint_every_epochs': 4})
  results = helpers.run(train, config, tmp_path)
  assert results['order'] == ['left', 'right']
  assert results['sizes'] == {'train': 1257, 'validation': 179, 'test': 361}
  assert np.asarray(results['test']['accuracy'])[0, 0] > 0.5


def test_unknown_names_raise(tmp_path, tfds_dir):
  with pytest.raises(KeyError, match='valid names'):
    helpers.run(train, _config(tfds_dir, **{'data.name': 'mnist'}), tmp_path)
  with pytest.raises(KeyError, match='Unknown config variant'):
    default.get_config('large')
