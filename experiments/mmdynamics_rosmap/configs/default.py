r"""Multimodal Dynamics (Han et al., CVPR 2022) on ROSMAP (mRNA, methylation, miRNA).

Paper: Han, Yao, Zhang, Zhang, Yao, Huang, Hu. "Multimodal Dynamics: Dynamical Fusion for
Trustworthy Multimodal Classification." CVPR 2022. Original code:
TencentAILabHealthcare/mmdynamics (`main.py`, `train_test.py`, `model.py`).

Protocol of the original code, kept here: feature gates, 1000-unit encoders with dropout 0.5,
TCP confidence heads (raw linear, target not detached), the fused classifier on
confidence-weighted features; every loss term weighted 1; full-batch Adam lr 1e-4 with coupled
L2 weight decay 1e-4, lr x 0.2 every 500 epochs, 1001 epochs; min-max scaling with training
statistics; test metrics after the last epoch (no model selection).

Variants (`--config=experiments/mmdynamics_rosmap/configs/default.py:VARIANT`):
- (none): 10 seeds trained together under jax.vmap, float32.
- `bfloat16`: the same with bfloat16 encoder matmuls (float32 parameters, gates and losses).
- `clean`: the TCP target detached (the classifier is trained only by its own CE).
- `smoke`: 4 epochs, 2 seeds, small encoders (the test suite runs it).

Measured (2-core x86_64 CPU, no GPU, otherwise idle; README.md beside this folder has the
details):
- default, 10 seeds (0-9): test accuracy after the last epoch 80.28 +- 2.06 %, 118.9 s wall for
  all ten (the original code: 81.6 +- 1.5 over 10 runs; 28.2 s for one run on this machine);
- `bfloat16`: 80.38 +- 1.93 %, 109.0 s; `clean`: 79.91 +- 2.44 %, 121.1 s.
- one H100 (benchmarks/mmdynamics_gpu.py, an earlier session, not re-measured: no GPU was lent
  to this one): ten seeds 0.73 s of training after an 8 s compile, 13 s for the whole process,
  against 16.8-17.2 s for one seed of the original on the same GPU.

Command:
  .venv/bin/python -m experiments.mmdynamics_rosmap.train \
      --config=experiments/mmdynamics_rosmap/configs/default.py \
      --config.data.manual_dir=../shared/data --workdir=$PWD/workdir/mmdynamics
"""

import ml_collections

from lqmm import train

VARIANTS = ('', 'bfloat16', 'clean', 'smoke')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the configuration for variant `arg` (None, 'bfloat16', 'clean' or 'smoke')."""
  arg = arg or ''
  if arg not in VARIANTS:
    raise KeyError(f'Unknown config variant {arg!r}; valid variants: "", "bfloat16", "clean", '
                   '"smoke".')
  config = train.default_config()
  # The original has no validation split and selects nothing.
  config.data.update({'name': 'rosmap', 'protocol': 'original', 'validation_fraction': 0.0,
                      'scaling': 'minmax'})
  config.model.update({'hidden': 1000, 'dropout': 0.5, 'compute_dtype': 'float32'})
  config.optim.update({'name': 'adam', 'learning_rate': 1e-4, 'weight_decay': 1e-4,
                       'lr_step_epochs': 500, 'lr_gamma': 0.2})
  config.train.update({
      'detach_target': False,  # the original trains the classifier through the TCP target
      'num_epochs': 1001,  # the original's range(num_epoch + 1)
      # batch_size None: the whole training split in file order, as the original.
      'shuffle': False, 'num_seeds': 10,
      'num_devices': 1,  # a full batch of 245 rows does not split over devices
      'epochs_per_call': 143, 'checkpoint_every_epochs': 1001})  # 1001 = 7 x 143

  if arg == 'bfloat16':
    config.model.compute_dtype = 'bfloat16'
  elif arg == 'clean':
    config.train.detach_target = True
  elif arg == 'smoke':
    config.model.hidden = 16
    train.make_smoke(config)
  config.lock()
  return config
