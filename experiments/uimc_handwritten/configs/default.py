r"""Incomplete Handwritten, CPM-Nets' protocol: imputation, masks and UIMC side by side.

Papers: Xie, Han, Zhang, Bai, Hu. "Exploring and Exploiting Uncertainty for Incomplete
Multi-View Classification." CVPR 2023 (UIMC; original code xiexiaoxie41/UIMC). Protocol of
Zhang et al. "CPM-Nets: Cross Partial Multi-View Networks." NeurIPS 2019: a share `eta` of the
(sample, view) entries missing, every sample keeping a view (`get_sn`, replayed bit for bit by
`lqmm.missing.legacy_mask('cpm', ...)` after `np.random.seed(seed)`), masks on the training and
the test rows, a random 80/20 split (UIMC's `build_ad_dataset`, seeded with the seed).

The late-fusion methods share UIMC's per-view network (Linear(d, 64), sigmoid, Linear(64, 10),
softplus squared), the evidential cross-entropy of every view and of the Dempster-Shafer fusion
(KL weight min(1, epoch / 50), epochs counted from 1 as the original), Adam lr 1e-3 with
coupled weight decay 1e-5, batch 100 and the same number of epochs:

- `zero`, `mean`, `knn`: missing views filled once (zero in the raw feature space, the
  training mean, the mean of the 10 nearest training rows in the shared views), then late
  fusion of all views.
- `tmc_masks`: no imputation; missing views are dropped from the fusion and from the loss.
- `qmf_masks`: QMF's energy-weighted fusion of softmax heads (ReLU MLPs), the missing views
  dropped from the fusion, the loss and the loss history of the ranking regulariser.
- `learned`, `masked_fusion`, `cpm_nets`: a cross-view imputer, a mask-weighted deep fusion
  network and CPM-Nets (its own settings in `config.cpm`; see README.md).
- `uimc`: missing training views drawn afresh every epoch from their class's Gaussian, test
  views drawn 30 times from their neighbours' Gaussian; each draw is fused with
  Dempster-Shafer and the draws are combined (`config.uimc.aggregate`).

`config.uimc.faithful = True` switches on the original code's behaviour: class Gaussians
estimated with its indexing slip, scaling fitted on all rows (test rows and the values of
missing entries included) and refitted on the imputed test draws, majority vote over draws,
and training on fixed copies (every incomplete training row `num_draws` times, so an epoch's
steps grow with eta; use the shipped `--config.train.num_epochs=3`).

Variants (`--config=experiments/uimc_handwritten/configs/default.py:VARIANT`):
- (none): eta in {0, 0.1, ..., 0.5} x 5 seeds, every method; each method's whole sweep is one
  compiled program (30 conditions under jax.vmap).
- `smoke`: 2 rates x 2 seeds, 4 epochs, 4 draws (the test suite runs it).

Measured (2-core x86_64 CPU container, no GPU; 5 seeds; README.md beside this folder has every
number and the command): test accuracy at eta 0 / 0.3 / 0.5, mean over seeds: mean imputation
98.80 / 98.15 / 95.55, TMC with masks 98.80 / 98.00 / 95.55, QMF with masks 99.05 / 98.65 /
96.40, learned imputation 98.80 / 98.30 /
95.85, UIMC (paper) 98.80 / 98.10 / 95.50, UIMC (`faithful`, 3 epochs) 94.10 / 97.75 / 95.25,
the original UIMC code on the same masks (3 epochs) 93.15 / 97.75 / 95.45, CPM-Nets 96.80 / 95.95 /
92.95. UIMC's whole sweep (30 conditions): 107 s wall against 485 s for the original code.
"""

import ml_collections

from lqmm import train

VARIANTS = ('', 'smoke')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the experiment configuration for variant `arg` (None or 'smoke')."""
  arg = arg or ''
  if arg not in VARIANTS:
    raise KeyError(f'Unknown config variant {arg!r}; valid variants: "", "smoke".')
  config = train.default_config()
  config.data.update({'name': 'handwritten', 'protocol': 'stratified',
                      'modalities': ('pix', 'fou', 'fac', 'zer', 'kar', 'mor')})
  config.missing = ml_collections.ConfigDict({
      'protocols': ('cpm',), 'rates': (0.0, 0.1, 0.2, 0.3, 0.4, 0.5), 'train_fraction': 0.8})
  config.methods = ('zero', 'mean', 'knn', 'learned', 'tmc_masks', 'qmf_masks',
                    'masked_fusion', 'uimc', 'cpm_nets')
  # QMF (Zhang et al., ICML 2023) with masks: ReLU MLP heads (config.model.hidden), the
  # energy-weighted fusion of the present views, the ranking regulariser's weight.
  config.qmf = ml_collections.ConfigDict({'rank_weight': 0.1})
  # The learned imputer: per-view encoders into a 128-d code, the present codes averaged,
  # per-view decoders; trained to rebuild every present view from about half of them.
  config.learned = ml_collections.ConfigDict({
      'hidden': (256, 128), 'keep': 0.5, 'learning_rate': 1e-3, 'num_epochs': 100})
  config.model.update({'hidden': (64,), 'hidden_activation': 'sigmoid',
                       'evidence': 'softplus_squared'})
  config.knn = ml_collections.ConfigDict({'k': 10})
  config.uimc = ml_collections.ConfigDict({
      'num_draws': 30, 'k': 10, 'regularization': 1e-3, 'aggregate': 'confidence',
      'faithful': False})
  # CPM-Nets' own settings (test_hand.py): 128-d latents, decoders 128 -> 150 -> d with output
  # dropout 0.1, Adam lr 0.01 for both the decoders and the latents, lamb 1, 30 full-batch
  # epochs of 5 decoder steps then 5 latent steps, 20 x 5 test-latent steps.
  config.cpm = ml_collections.ConfigDict({
      'latent_dim': 128, 'hidden': 150, 'dropout': 0.1, 'learning_rate': 0.01, 'lamb': 1.0,
      'num_epochs': 30, 'steps': 5, 'test_steps': 100})
  config.optim.update({'name': 'adam', 'learning_rate': 1e-3, 'weight_decay': 1e-5})
  config.train.update({
      'annealing_epochs': 50, 'num_epochs': 100, 'batch_size': 100, 'num_seeds': 5,
      'epochs_per_call': 50, 'checkpoint_every_epochs': 100, 'select': ()})
  config.eval.seed = 1234
  config.eval.seeds_per_call = 6  # conditions evaluated together (UIMC's draws are large)

  if arg == 'smoke':
    train.make_smoke(config, num_epochs=4)
    config.missing.rates = (0.0, 0.3)
    config.uimc.num_draws = 4
    config.methods = ('mean', 'learned', 'masked_fusion', 'tmc_masks', 'qmf_masks', 'uimc',
                      'cpm_nets')
    config.learned.num_epochs = 4
    config.cpm.update({'num_epochs': 4, 'test_steps': 10})
    config.train.batch_size = 80  # divisible by the test suite's 8 devices
  config.lock()
  return config
