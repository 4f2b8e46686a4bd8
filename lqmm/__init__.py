"""lqmm: multimodal fusion on low-quality data, in JAX.

The pure-function core (`fusion`, `losses`, `optim`, `missing`, `valuation`, `corrupt`,
`metrics`) imports no neural-network library; `nn` holds Flax NNX modules, `data` the TFDS
builders and loaders, and `train` the small kit the experiments share.
"""

from lqmm import corrupt
from lqmm import fusion
from lqmm import losses
from lqmm import metrics
from lqmm import missing
from lqmm import optim
from lqmm import valuation

__version__ = '0.1.0'

__all__ = ['corrupt', 'fusion', 'losses', 'metrics', 'missing', 'optim', 'valuation']
