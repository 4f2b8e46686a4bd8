"""What every experiment's smoke test needs: configs with overrides, checkpoints, a resume check.

optax's Adam mixes Python floats with its int32 step count, which the suite's strict dtype
promotion rejects; experiments therefore run under standard promotion (lqmm's own primitives
are tested under strict promotion).
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from lqmm import train as kit


def config_with(get_config, variant: str | None = 'smoke', **overrides):
  """`get_config(variant)` with dotted overrides, e.g. `config_with(f, **{'train.seed': 3})`."""
  config = get_config(variant)
  config.unlock()
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split('.')
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  config.lock()
  return config


def smoke_config(get_config, tfds_dir, manual_dir=None, variant: str | None = 'smoke',
                 **overrides):
  """An experiment's config with the session's TFDS (and shared data) folders and overrides."""
  folders = {'data.data_dir': tfds_dir}
  if manual_dir is not None:
    folders['data.manual_dir'] = manual_dir
  return config_with(get_config, variant, **folders, **overrides)


def run(module, config, workdir):
  """`module.train_and_evaluate(config, workdir)` under standard dtype promotion."""
  with jax.numpy_dtype_promotion('standard'):
    return module.train_and_evaluate(config, workdir)


def final_params(workdir, num_epochs: int, subdir: str | None = None):
  """The parameters of the newest checkpoint in `workdir` (numpy), checking its step."""
  checkpointer = kit.Checkpointer(workdir, subdir=subdir)
  step = checkpointer.latest_step()
  restored = checkpointer.restore()
  checkpointer.close()
  assert step == num_epochs
  return jax.tree.map(np.asarray, restored['state']['params'])


def metric_steps(workdir, name: str) -> list[int]:
  """The steps of the `metrics.jsonl` records that hold metric `name`."""
  lines = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  return [line['step'] for line in lines if name in line]


def assert_resume_matches(module, config, uninterrupted_dir, tmp_path, *, stop_after: int,
                          subdirs=(None,), metric: str = 'train/loss'):
  """A run stopped after `stop_after` epochs, then resumed, ends with the uninterrupted run's
  parameters (bit for bit) and logs every epoch once."""
  stopped = config_with(lambda _: config.copy_and_resolve_references(), None,
                        **{'train.stop_after_epochs': stop_after})
  with pytest.raises(kit.StopRequested):
    run(module, stopped, tmp_path)
  # Models train one after the other: the stop (a simulated kill) hits the first one.
  assert kit.Checkpointer(tmp_path, subdir=subdirs[0]).latest_step() == stop_after
  results = run(module, config, tmp_path)
  assert results['start_epoch'] == stop_after
  steps = metric_steps(tmp_path, metric)
  assert steps == sorted(set(steps)), f'duplicated epochs in the log: {steps}'
  assert steps == metric_steps(uninterrupted_dir, metric)
  for subdir in subdirs:
    jax.tree.map(np.testing.assert_array_equal,
                 final_params(tmp_path, config.train.num_epochs, subdir),
                 final_params(uninterrupted_dir, config.train.num_epochs, subdir))
  return results
