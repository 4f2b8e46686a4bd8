r"""MoNIG (Ma et al., NeurIPS 2021) on the diabetes data: clinical + blood serum modalities.

Paper: Ma, Han, Zhang, Zhang, Fu, Zhou, Hu. "Trustworthy Multimodal Regression with Mixture of
Normal-inverse Gamma Distributions." NeurIPS 2021. The paper has no result on this data set.

Data: Efron et al.'s diabetes data as shipped by scikit-learn (442 patients, raw values;
`lqmm/data/package_data/diabetes/SOURCE.md`), split into two modalities, `clinical` (age, sex,
bmi, bp) and `serum` (s1-s6). Seeded random split 266 train / 88 validation / 88 test (split
seed 0); inputs and target standardised with training statistics only.

Recipe: one ReLU MLP per modality (hidden 64, 64) with 4 outputs mapped to NIG(gamma, nu, alpha,
beta) by softplus (`lqmm.fusion.nig.from_outputs`), fused with the MoNIG rule
(`lqmm.fusion.nig.fuse`), trained on MoNIG's objective: every modality's NIG loss plus the
fused one's (`lqmm.losses.nig.mixture_loss`, risk 0.01). Adam, lr 1e-3, batch 32 reshuffled
every epoch, 300 epochs; the epoch with the lowest validation Student-t NLL of the fused NIG is
kept per seed. The baseline, trained on the same batches (a second `lqmm.train.fit` with the
same seeds): one ReLU MLP
(64, 64) on the concatenated ten features, mean squared error, the epoch with the lowest
validation MSE kept; its predictive is Gaussian with the variance of its validation residuals.

Variants (`--config=experiments/monig_diabetes/configs/default.py:VARIANT`):
- (none): the main job, 10 seeds (0-9) trained together under jax.vmap.
- `smoke`: 4 epochs, 2 seeds, checkpoints every 2 epochs (the test suite runs it).

Measured (2-core x86_64 CPU container, no GPU, otherwise idle; details in README.md beside
this folder):
- default, 10 seeds (0-9), 300 epochs, test set of 88 patients, mean +- std over seeds:
  MoNIG fused RMSE 53.39 +- 0.49 (clinical head alone 58.09, serum head alone 61.45), the
  baseline 53.77 +- 1.02 (paired difference -0.38 +- 0.90); Gaussian NLL 5.347 (MoNIG) against
  5.404 (baseline), Student-t NLL 5.382; MoNIG's 50/80/95 % Student-t intervals cover
  37/71/97 % of the test targets; Spearman(predictive std, |error|) 0.38. Under Gaussian noise
  on one modality the noisy modality's weight rises (0.50 to 0.52-0.58 at std 4) and the fused
  predictive std stays flat up to std 2 (49 -> 48-49) while the RMSE rises to 68-79.
- Wall time of the command below: 12.8 s (17.7 CPU-s; 3.5 s compilation, 2.2 s training of
  all seeds of both models).

Command:
  .venv/bin/python -m experiments.monig_diabetes.train \
      --config=experiments/monig_diabetes/configs/default.py --workdir=$PWD/workdir/monig_diabetes
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
  config.data.update({'name': 'diabetes', 'modalities': ('clinical', 'serum'),
                      'validation_fraction': 0.2, 'test_fraction': 0.2, 'scaling': 'standard'})
  config.model.update({'hidden': (64, 64), 'baseline_hidden': (64, 64)})
  config.optim.update({'name': 'adam', 'learning_rate': 1e-3, 'weight_decay': 0.0})
  config.train.update({
      'risk': 0.01,  # weight of the evidence regulariser |y - gamma| (2 nu + alpha)
      'select': ('-nll',),  # MoNIG's validation selection: ('-nll',) or ('-rmse',)
      'num_epochs': 300, 'batch_size': 32, 'num_seeds': 10, 'epochs_per_call': 50,
      'checkpoint_every_epochs': 100, 'eval_every': 1})  # selection after every epoch
  config.eval.noise_stds = (0.0, 0.5, 1.0, 2.0, 4.0)  # in units of the standardised inputs
  config.eval.noise_modalities = ('clinical', 'serum')  # each corrupted alone
  config.eval.coverage_levels = (0.5, 0.8, 0.95)
  config.eval.seed = 1234

  if arg == 'smoke':
    train.make_smoke(config)
    config.train.eval_every = 1
    config.eval.noise_stds = (0.0, 1.0)
  config.lock()
  return config
