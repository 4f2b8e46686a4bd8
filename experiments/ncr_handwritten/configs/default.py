r"""Cross-view retrieval with shuffled training pairs on Handwritten (NCR's setting, any views).

Each Handwritten sample's pix view (240 pixel averages) and fou view (76 Fourier coefficients)
are a true pair; a share of the training pairs has its fou views shuffled among themselves (NCR's
noise: `int(rate N)` random pairs, their second views permuted). Dual MLP encoders (one per view,
L2-normalised 64-d embeddings, cosine scores) are trained with InfoNCE, VSE++'s hinge with
hardest negatives, RINCE, or NCR's co-teaching (two networks, each split into clean and noisy
pairs by the other's per-pair loss GMM, rectified soft margins); retrieval on the clean test
pairs (R@1/5/10 both ways, rsum), 5 seeds per setting, and the precision / recall of the
clean-pair split against the known shuffled pairs.

Variants: (none) rates 0.2 / 0.5 / 0.7, 5 seeds; `smoke`: one rate, 2 seeds, 4 epochs.

    python -m experiments.ncr_handwritten.train \
        --config=experiments/ncr_handwritten/configs/default.py --workdir=$PWD/workdir/ncr

Measured (2-core x86_64 CPU, 5 seeds, 108 s wall for everything; README.md has the table):
rsum at 20 / 50 / 70 % shuffled: InfoNCE 150.1 / 75.1 / 38.0, VSE++ hinge 93.5 / 37.0 / 22.2,
RINCE 256.9 / 160.4 / 76.3, NCR co-teaching 145.3 / 82.2 / 46.9; NCR's clean split precision
96.4 / 90.8 / 51.8 % at recall 100.0 / 99.9 / 100.0 %.
"""

import ml_collections

from lqmm import train

VARIANTS = ('', 'smoke')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the configuration of variant `arg` (None or 'smoke')."""
  arg = arg or ''
  if arg not in VARIANTS:
    raise KeyError(f'Unknown config variant {arg!r}; valid variants: "", "smoke".')
  config = train.default_config()
  config.data.update({'name': 'handwritten', 'modalities': ('pix', 'fou'),
                      'validation_fraction': 0.1, 'test_fraction': 0.2, 'scaling': 'standard'})
  config.model.update({'hidden': (512,), 'embedding': 64})
  config.optim.update({'name': 'adam', 'learning_rate': 2e-4, 'weight_decay': 0.0})
  config.train.update({'num_epochs': 30, 'batch_size': 128, 'num_seeds': 5,
                       'drop_remainder': True, 'epochs_per_call': 10,
                       'checkpoint_every_epochs': 10})
  config.noise = ml_collections.ConfigDict({'rates': (0.2, 0.5, 0.7), 'seed': 0})
  config.methods = ('info_nce', 'hinge', 'rince', 'ncr')
  # InfoNCE and RINCE: temperature 0.1; RINCE q 0.5, lam 0.01 (the paper's range).
  config.contrastive = ml_collections.ConfigDict({'temperature': 0.1, 'q': 0.5, 'lam': 0.01})
  # NCR's run.py defaults: margin 0.2, exponential soft margins, clean threshold 0.5, the
  # unlabeled pairs from half the epochs on; warm-up epochs of the mean-negative hinge.
  config.ncr = ml_collections.ConfigDict({
      'margin': 0.2, 'soft_margin': 'exponential', 'p_threshold': 0.5, 'warmup_epochs': 5})
  if arg == 'smoke':
    config.noise.rates = (0.5,)
    config.train.update({'num_epochs': 4, 'num_seeds': 2, 'epochs_per_call': 2,
                         'checkpoint_every_epochs': 2})
    config.ncr.warmup_epochs = 2
    config.model.hidden = (32,)
  config.lock()
  return config
