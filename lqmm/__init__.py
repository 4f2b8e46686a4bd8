"""lqmm: multimodal fusion on low-quality data, in JAX.

The pure-function core (`fusion`, `losses`, `optim`, `missing`, `valuation`, `corrupt`,
`metrics`, `cluster`, `denoise`, `checks`, `sampling`, `special`) imports no neural-network
library; `nn` holds Flax NNX modules, `data` the TFDS builders and loaders, and `train` the small
kit the experiments share.

Subpackages load lazily, on first attribute access (PEP 562): `import lqmm.fusion` loads jax and
numpy only, and `import lqmm; lqmm.fusion.dempster_shafer` works without an explicit import.
"""

from __future__ import annotations

import importlib

__version__ = '0.1.0'

__all__ = ['checks', 'cluster', 'corrupt', 'denoise', 'fusion', 'losses', 'metrics', 'missing',
           'nn', 'optim', 'sampling', 'special', 'valuation']

#: Every submodule `lqmm.<name>` that attribute access loads on demand.
_SUBMODULES = frozenset(__all__) | {'bench', 'data', 'train'}


def __getattr__(name: str):
  """Imports the submodule `lqmm.<name>` on first access (PEP 562)."""
  if name in _SUBMODULES:
    return importlib.import_module(f'{__name__}.{name}')
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
  return sorted(set(globals()) | _SUBMODULES)
