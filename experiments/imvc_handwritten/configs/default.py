r"""Incomplete multi-view clustering on Handwritten, CDIMC-net's protocol (Table 2).

Paper: Wen, Zhang, Xu, Zhang, Fei, Xie. "CDIMC-net: Cognitive Deep Incomplete Multi-view
Clustering Network." IJCAI 2020. Five views (pix, fou, fac, zer, kar), per-view deletion
p in {0.1, 0.3, 0.5, 0.7}, the 10 published folds at p = 0.3, `per_view_mask` elsewhere.

    python -m experiments.imvc_handwritten.train \
        --config=experiments/imvc_handwritten/configs/default.py --workdir=$PWD/workdir/imvc

Variants: (none) 4 rates x 10 folds x 1 seed; `smoke`: 2 rates x 2 folds, few iterations.
Measured results: README.md beside this folder.
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
  config.data.update({'name': 'handwritten', 'modalities': ('pix', 'fou', 'fac', 'zer', 'kar')})
  config.missing = ml_collections.ConfigDict({
      'rates': (0.1, 0.3, 0.5, 0.7), 'num_folds': 10, 'published_folds': True, 'seed': 0})
  config.methods = ('bsv', 'concat', 'daimc')
  config.seed = 0
  config.seeds = 1  # seeds per fold (k-means seeding and initialisations)
  # The survey drivers cluster with MATLAB's kmeans: k-means++ seeding, one replicate.
  config.kmeans = ml_collections.ConfigDict({'restarts': 1})
  # DAIMC_clustering.m of the survey toolbox: alpha (options.afa) 1e-4, beta 1e4, 30 outer
  # iterations (tolerance 1e-4), newinit's k-means with 20 replicates.
  config.daimc = ml_collections.ConfigDict({
      'alpha': 1e-4, 'beta': 1e4, 'max_iter': 30, 'tol': 1e-4, 'init_restarts': 20})
  if arg == 'smoke':
    config.missing.update({'rates': (0.1, 0.3), 'num_folds': 2})
    config.daimc.update({'max_iter': 3, 'init_restarts': 2})
  config.lock()
  return config
