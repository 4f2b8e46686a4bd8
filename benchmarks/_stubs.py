"""Placeholder modules for packages that original code imports but the benchmarked part never uses.

Shared by the `_run_original_*.py` runners, which execute upstream files in a torch-only
environment: `install(names)` makes every module under those top-level names importable as an
empty module whose attributes are callable, subclassable placeholders, unless the package is
really installed.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types


class Placeholder:
  """A callable, subclassable stand-in that accepts any attribute."""

  def __init__(self, *unused_args, **unused_kwargs):
    pass

  def __call__(self, *unused_args, **unused_kwargs):
    return Placeholder()

  def __getattr__(self, name):
    return Placeholder()


class _StubModule(types.ModuleType):
  """A module whose every public attribute is `Placeholder`."""

  def __getattr__(self, name):
    if name.startswith('__'):
      raise AttributeError(name)
    return Placeholder


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Imports any module under the given top-level names as an empty `_StubModule`."""

  def __init__(self, top_level):
    self.top_level = set(top_level)

  def find_spec(self, fullname, path=None, target=None):
    del path, target
    if fullname.split('.')[0] in self.top_level:
      return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
    return None

  def create_module(self, spec):
    module = _StubModule(spec.name)
    module.__path__ = []
    return module

  def exec_module(self, module):
    del module


def install(names) -> list:
  """Stubs the packages in `names` that are not installed; returns the stubbed names.

  A missing `tensorboard` also gets `torch.utils.tensorboard` with a placeholder SummaryWriter.
  """
  missing = [name for name in names if importlib.util.find_spec(name) is None]
  if missing:
    sys.meta_path.append(_StubFinder(missing))
  if 'tensorboard' in missing:
    board = types.ModuleType('torch.utils.tensorboard')
    board.SummaryWriter = Placeholder
    sys.modules['torch.utils.tensorboard'] = board
  return missing
