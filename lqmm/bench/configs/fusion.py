r"""The fusion suite: late-fusion rules trained on clean data, scored under low-quality test data.

Methods (`lqmm.bench.fusion_suite.METHODS`): `concat` (intermediate fusion), `mean`, `product`
(products of experts), `entropy` (entropy weights), `qmf` (QMF: Zhang et al., ICML 2023, energy
weights and the ranking regulariser), `tmc` (Han et al., ICLR 2021), `etmc` (Han et al., TPAMI
2022: TMC plus a pseudo-view on the concatenated features), `uno` (entropy-flattened noisy-or),
`gated` (feature level: `lqmm.nn.FeatureFusionNet`'s quality gate, the family that ranked first
under noisy and missing modalities in experiments/feature_fusion).
Protocol: one MLP encoder (64 ReLU units) and linear head per modality (`lqmm.nn.LateFusionNet`),
Adam (lr 1e-3, L2 weight decay 1e-5), clean training data, 5 seeds under jax.vmap, the
parameters with the best validation accuracy (ties: lower NLL; checked every 5 epochs) kept;
then test metrics clean, under Gaussian noise on every modality or on one, missing modalities and
per-sample quality variation. Min-max scaling fitted on the training split.

Variants (`--config=lqmm/bench/configs/fusion.py:VARIANT`):
- `handwritten` (default): the embedded UCI data, stratified 1400/200/400, 100 epochs, batch 200;
- `rosmap`: the original 245/106 split with 20% of the training samples held out for validation,
  150 epochs, batch 32 (needs `--config.data.manual_dir=../shared/data` or a network);
- `conflictive`: RCML's comparison on Handwritten: tmc, etmc, qmf and rcml (Xu et al., AAAI
  2024), 10 seeds, clean and RCML's conflictive test set (40% of the samples with a view from
  the next class): clean / conflictive 97.2 / 94.8 (tmc), 97.6 / 94.8 (etmc), 98.2 / 96.4
  (qmf), 97.2 / 95.1 (rcml); 58 s wall (lqmm/bench/README.md, beside the published numbers);
- `noise_protocols`: the papers' noise protocols on Handwritten, tmc, etmc, qmf and rcml, 10
  seeds: TMC/MGP's (noise on 3 of 6 views, all 20 combinations, std 0 and 0.01-10 log-spaced)
  and FUML's (view subsets of half of the samples, std 0 / 1 / 5 / 10), with the uncertainty of
  clean and noisy samples. FUML std 0 / 1 / 5 / 10: tmc 97.2 / 94.3 / 77.4 / 71.5, qmf
  98.2 / 90.2 / 67.6 / 62.9 (FUML's Table 9, QMF: 98.72 / 94.85 / 77.32 / 71.23); noisy
  samples are more certain than clean ones at std >= 5 for every method; 77 s wall
  (lqmm/bench/README.md has the tables and the protocol differences);
- `smoke`: ROSMAP, 4 epochs, 2 seeds, a reduced grid with conflictive and noise-protocol
  conditions and rcml (the test suite runs it).
One method only: `--config.methods="('qmf',)"`.

Measured (2-core x86_64 CPU container, no GPU, otherwise idle; 5 seeds 0-4; clean test
accuracy, mean ± 95% CI; every condition and metric in lqmm/bench/README.md):
- `handwritten`: concat 97.9 ± 0.3, mean 97.7 ± 0.0, product 97.0 ± 0.3, entropy 97.9 ± 0.5,
  qmf 98.1 ± 0.2, tmc 97.2 ± 0.3, etmc 97.6 ± 0.3, uno 98.0 ± 0.3, gated 97.3 ± 0.6; at 40%
  missing concat falls to 71.2 ± 2.0 and gated to 89.4 ± 1.2 (trained without modality
  dropout) while the late-fusion rules keep 91.3-97.0. 56 s wall for the first 8 methods,
  gated 12 s more.
- `rosmap`: 79.4-81.9 clean (concat lowest), gated 77.9 ± 3.9; 32 s wall (gated 5 s more).

Commands:
  .venv/bin/python -m lqmm.bench --config=lqmm/bench/configs/fusion.py:handwritten \
      --workdir=$PWD/workdir/bench_hw
  .venv/bin/python -m lqmm.bench --config=lqmm/bench/configs/fusion.py:rosmap \
      --config.data.manual_dir=../shared/data --workdir=$PWD/workdir/bench_rosmap
  .venv/bin/python -m lqmm.bench --config=lqmm/bench/configs/fusion.py:noise_protocols \
      --workdir=$PWD/workdir/bench_noise
"""

import ml_collections

from lqmm import train
from lqmm.bench import conditions

VARIANTS = ('handwritten', 'rosmap', 'conflictive', 'noise_protocols', 'smoke')
METHODS = ('concat', 'mean', 'product', 'entropy', 'qmf', 'tmc', 'etmc', 'uno', 'gated')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the configuration of variant `arg` (see the module docstring)."""
  arg = arg or 'handwritten'
  if arg not in VARIANTS:
    raise KeyError(f'Unknown config variant {arg!r}; valid variants: {", ".join(VARIANTS)}.')
  handwritten = arg in ('handwritten', 'conflictive', 'noise_protocols')
  config = train.default_config()
  config.suite = 'fusion'
  config.methods = METHODS
  config.method_kwargs = ml_collections.ConfigDict({
      'qmf': {'rank_weight': 0.1, 'margin_as_slack': False},  # True: the original's slack form
      'tmc': {'annealing_epochs': 50}, 'etmc': {'annealing_epochs': 50},
      'rcml': {'annealing_epochs': 50, 'gamma': 1.0},
      # experiments/feature_fusion's stems: 4 x 4 grids of 16-wide tokens.
      'gated': {'grid': 4, 'channels': (8, 16)}})
  config.data.update({
      'name': 'handwritten' if handwritten else 'rosmap',
      'protocol': 'stratified' if handwritten else 'original',
      'validation_fraction': 0.1 if handwritten else 0.2,
      'test_fraction': 0.2 if handwritten else None, 'scaling': 'minmax'})
  config.data.options = ml_collections.ConfigDict()
  # The grid across processes (lqmm.bench.harness): seeds per method split into this many
  # units; how long shard 0 waits for the other shards' units before it merges.
  config.seed_blocks = 1
  config.grid_wait_s = 86400.0
  config.model.hidden = (64,)
  config.optim.update({'name': 'adam', 'learning_rate': 1e-3, 'weight_decay': 1e-5})
  epochs = 100 if handwritten else 150
  config.train.update({
      'num_epochs': epochs, 'batch_size': 200 if handwritten else 32, 'drop_remainder': True,
      'num_seeds': 5, 'eval_every': 5, 'select': ('accuracy', '-nll'),
      'epochs_per_call': epochs, 'checkpoint_every_epochs': epochs})
  config.eval.noise_stds = (0.1, 0.3, 0.5, 1.0)
  config.eval.missing_rates = (0.2, 0.4, 0.6)
  config.eval.quality_stds = (0.5, 1.0)
  config.eval.noise_one_modality = ml_collections.config_dict.placeholder(str)  # None: first
  # Missing-data protocols (each rate in its own meaning) crossed with noise on every modality.
  config.eval.protocols = ('entries', 'per_view', 'samples', 'completer')
  config.eval.protocol_rates = (0.3, 0.5)
  config.eval.protocol_noise_stds = (0.0, 0.5)
  config.eval.ece_bins = 15
  # RCML's conflictive test sets (shares of samples with a conflicting view); none by default.
  config.eval.conflict_fractions = ()
  config.eval.conflict_noise_std = 0.5
  config.eval.conflict_noise_fraction = 0.1
  # The papers' noise protocols (`lqmm.bench.conditions`); none by default. TMC/MGP: noise on
  # `noise_combination_views` views (None: half), every combination stacked; FUML: noise on a
  # random subset of the views of a share `noise_sample_fraction` of the samples.
  config.eval.noise_combination_stds = ()
  config.eval.noise_combination_views = ml_collections.config_dict.placeholder(int)
  config.eval.noise_sample_stds = ()
  config.eval.noise_sample_fraction = 0.5
  if arg in ('conflictive', 'noise_protocols'):
    # The trusted-fusion papers' comparisons on Handwritten: TMC, ETMC, QMF and RCML, 10 seeds,
    # the clean test split and only the paper's conditions.
    config.methods = ('tmc', 'etmc', 'qmf', 'rcml')
    config.train.num_seeds = 10
    config.eval.noise_stds = ()
    config.eval.missing_rates = ()
    config.eval.quality_stds = ()
    config.eval.protocols = ()
  if arg == 'conflictive':
    # RCML's comparison (Xu et al., AAAI 2024, Table 2): conflictive test sets, 10 runs.
    config.eval.conflict_fractions = (0.4,)
  if arg == 'noise_protocols':
    # TMC/MGP's and FUML's noisy test sets.
    config.eval.noise_combination_stds = conditions.MGP_NOISE_STDS
    config.eval.noise_sample_stds = conditions.FUML_NOISE_STDS

  if arg == 'smoke':
    train.make_smoke(config, every=4)
    config.train.eval_every = 2
    config.eval.noise_stds = (0.5,)
    config.eval.missing_rates = (0.4,)
    config.eval.quality_stds = (1.0,)
    config.eval.protocols = ('entries', 'samples')
    config.eval.protocol_rates = (0.3,)
    config.eval.conflict_fractions = (0.4,)
    config.eval.noise_combination_stds = (0.0, 1.0)
    config.eval.noise_sample_stds = (1.0,)
    config.methods = METHODS + ('rcml',)
  config.lock()
  return config
