r"""QMF and ETMC on Handwritten and ROSMAP, scored clean and under every low-quality condition.

Papers:
- QMF: Zhang, Wu, Zhang, Liu, Hu, Zhang, Bian, Fu, Zhou. "Provable Dynamic Fusion for Low-Quality
  Multimodal Data." ICML 2023 (code: QingyangZhang/QMF). The paper reports no Handwritten or
  ROSMAP result, so there is no published number to compare with here.
- ETMC: Han, Zhang, Fu, Zhou. "Trusted Multi-View Classification with Dynamic Evidential Fusion."
  TPAMI 2022: TMC plus a pseudo-view whose evidential head sees the concatenated features of all
  views. Its published numbers use other splits and backbones; none is compared here.

Protocol (all variants): one MLP encoder (64 ReLU units) and linear head per modality (ETMC adds
a linear evidential head on the concatenated hidden features), Adam with L2 weight decay 1e-5,
min-max scaling fitted on the training split, 5 seeds trained together under jax.vmap, the
parameters with the best validation accuracy kept (checked every 5 epochs; the test split is
never used for selection), then test metrics under clean data, Gaussian noise (all modalities /
the first modality), missing modalities and per-sample quality variation.

Variants (`--config=experiments/late_fusion/configs/default.py:VARIANT`):
  qmf_handwritten (default), qmf_rosmap, etmc_handwritten, etmc_rosmap, and `smoke`.
Handwritten uses the embedded UCI data with a stratified 1400/200/400 split; ROSMAP the original
245/106 split with 20% of the training samples held out for validation (needs
`--config.manual_dir=../shared/data` or a network).

Measured results: README.md beside this folder.
"""

import ml_collections

_VARIANTS = ('qmf_handwritten', 'qmf_rosmap', 'etmc_handwritten', 'etmc_rosmap', 'smoke')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the configuration of variant `arg` (see the module docstring)."""
  arg = arg or 'qmf_handwritten'
  if arg not in _VARIANTS:
    raise KeyError(f'Unknown config variant {arg!r}; valid variants: {", ".join(_VARIANTS)}.')
  method, dataset = ('qmf', 'handwritten') if arg == 'smoke' else arg.split('_')
  config = ml_collections.ConfigDict()
  config.method = method
  config.method_kwargs = ml_collections.ConfigDict()
  if method == 'qmf':
    config.method_kwargs.rank_weight = 0.1
    config.method_kwargs.margin_as_slack = False  # True: the original code's slack form
  else:
    config.method_kwargs.annealing_epochs = 50
  config.dataset = dataset
  config.protocol = 'stratified' if dataset == 'handwritten' else 'original'
  config.validation_fraction = 0.1 if dataset == 'handwritten' else 0.2
  config.test_fraction = 0.2
  config.scaling = 'minmax'
  config.split_seed = 0
  config.manual_dir = ml_collections.config_dict.placeholder(str)
  config.data_dir = ml_collections.config_dict.placeholder(str)

  config.hidden = (64,)
  config.learning_rate = 1e-3
  config.weight_decay = 1e-5
  config.epochs = 100 if dataset == 'handwritten' else 150
  config.batch_size = 200 if dataset == 'handwritten' else 32
  config.eval_every = 5

  config.seed = 0
  config.num_seeds = 5
  config.noise_stds = (0.1, 0.3, 0.5, 1.0)
  config.missing_rates = (0.2, 0.4, 0.6)
  config.quality_stds = (0.5, 1.0)

  if arg == 'smoke':
    config.epochs = 4
    config.eval_every = 2
    config.num_seeds = 2
    config.noise_stds = (0.5,)
    config.missing_rates = (0.4,)
    config.quality_stds = (1.0,)
  config.lock()
  return config
