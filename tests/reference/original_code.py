"""Helpers for running original (upstream) PyTorch code unmodified, outside lqmm's environment.

Shared by the reference-vector generators beside this file (`generate_*_vectors.py`) and the
benchmark runners (`benchmarks/_run_original_*.py`). Both are run by hand, or by a benchmark as
a fresh process, in a separate Python 3.11 environment with torch and checkouts of the original
repositories, never in lqmm's. They import this file as the top-level module `original_code`:
a generator run as a script has its own folder (this one) first on `sys.path`, and a runner puts
`tests/reference` there before the import.

Only the standard library is imported at module level, torch and numpy inside the functions that
need them, so that `pytest --doctest-modules` can import this module in lqmm's environment, which
has no torch.

What is here:

- `Placeholder`, `StubModule`, `stub_packages`, `stub_tensorboard`, `install`: placeholder
  modules for packages that original files import at module level but that play no part in the
  functions exercised (datasets, backbones, plotting, tensorboard).
- `cuda_to_cpu`: makes `Tensor.cuda` and `Module.cuda` the identity, for originals that move
  their tensors to the GPU unconditionally.
- `load_file`: imports one original file under a chosen module name.
- `empty_submodules`: empty stand-ins for submodules of an original's own package.
- `float_is_identity`: keeps float64 through an original's `.float()` casts.
- `identity_deeplab`, `identity_qmf`: instances of UNO's `DeepLab` and QMF's RGB-D `QMF` whose
  encoders are identities, so that the original `forward` receives logits directly and only its
  own fusion or post-processing runs.
- `argument_parser`, `check_sha256`, `save_vectors`: the generators' command line, the digests
  of the upstream files they ran, and the `.npz` they write.
"""

import argparse
import contextlib
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import pathlib
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


class StubModule(types.ModuleType):
  """A module whose every public attribute is the class `Placeholder`."""

  def __getattr__(self, name):
    if name.startswith('__'):
      raise AttributeError(name)
    return Placeholder


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Imports any module under the given top-level names as an empty `StubModule` package."""

  def __init__(self, top_level):
    self.top_level = set(top_level)

  def find_spec(self, fullname, path=None, target=None):
    del path, target
    if fullname.split('.')[0] in self.top_level:
      return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
    return None

  def create_module(self, spec):
    module = StubModule(spec.name)
    module.__path__ = []
    return module

  def exec_module(self, module):
    del module


def stub_packages(names, *, only_missing: bool = True, first: bool = False) -> list:
  """Serves every module under the top-level package names `names` as an empty `StubModule`.

  Args:
    names: top-level package names, e.g. `('torchvision', 'PIL')`.
    only_missing: stub only the names that are not installed; False stubs them all, also a
      checkout's own local packages of the same name when `first` is True.
    first: put the stub finder before every other finder on `sys.meta_path` (it then shadows
      installed and local packages), rather than after them.

  Returns:
    The names stubbed, in the order given.
  """
  stubbed = [name for name in names
             if not only_missing or importlib.util.find_spec(name) is None]
  if stubbed:
    finder = _StubFinder(stubbed)
    if first:
      sys.meta_path.insert(0, finder)
    else:
      sys.meta_path.append(finder)
  return stubbed


def stub_tensorboard() -> None:
  """Serves `torch.utils.tensorboard`, which raises ImportError without tensorboard, as a stub.

  Its `SummaryWriter` (and any other attribute) is `Placeholder`.
  """
  sys.modules['torch.utils.tensorboard'] = StubModule('torch.utils.tensorboard')


def empty_submodules(package: str, names) -> None:
  """Imports `package` and serves each `package.NAME` as an empty module (attributes may be
  set on it afterwards), for submodules an original imports but the code exercised never uses
  (or whose one function a caller replaces)."""
  parent = importlib.import_module(package)
  for name in names:
    stub = types.ModuleType(f'{package}.{name}')
    sys.modules[f'{package}.{name}'] = stub
    setattr(parent, name, stub)


def install(names) -> list:
  """Stubs the packages in `names` that are not installed; returns the stubbed names.

  A missing `tensorboard` also gets `torch.utils.tensorboard` stubbed (`stub_tensorboard`).
  """
  missing = stub_packages(names)
  if 'tensorboard' in missing:
    stub_tensorboard()
  return missing


def cuda_to_cpu() -> None:
  """Makes `torch.Tensor.cuda` and `torch.nn.Module.cuda` the identity: everything stays on CPU."""
  import torch  # pylint: disable=import-outside-toplevel
  torch.Tensor.cuda = lambda self, *unused_args, **unused_kwargs: self
  torch.nn.Module.cuda = lambda self, *unused_args, **unused_kwargs: self


def load_file(name: str, path, package=None) -> types.ModuleType:
  """Imports the Python file `path` as the module `name` (registered in `sys.modules`).

  Args:
    name: the module name; for a dotted name whose parent module is already imported, the module
      is also set as the parent's attribute.
    path: the file.
    package: the `__package__` for the file's relative imports; None leaves the default.

  Returns:
    The executed module.
  """
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  if package is not None:
    module.__package__ = package
  parent, _, child = name.rpartition('.')
  if parent in sys.modules:
    setattr(sys.modules[parent], child, module)
  sys.modules[name] = module
  spec.loader.exec_module(module)
  return module


@contextlib.contextmanager
def float_is_identity():
  """While active, `torch.Tensor.float()` returns its tensor unchanged (float64 stays float64)."""
  import torch  # pylint: disable=import-outside-toplevel
  original = torch.Tensor.float
  torch.Tensor.float = lambda self, *unused_args, **unused_kwargs: self
  try:
    yield
  finally:
    torch.Tensor.float = original


def identity_deeplab(deeplab_class):
  """A UNO `DeepLab` whose layers are identities, in eval mode.

  Built with `deeplab_class.__new__` and `nn.Module.__init__` (no ResNet, ASPP or decoder is
  constructed), with `backbone = x -> (x, None)`, `aspp = identity` and
  `decoder = (x, low_level_features) -> x`. `forward(logits)` then runs only the original's own
  post-processing: the bilinear resize to the input size (the identity here), the clamped softmax
  and `mutualinfo_entropy`.

  Args:
    deeplab_class: `ptsemseg.models.deeplab.DeepLab` of GT-RIPL/UNO-IC `segmentation/`.

  Returns:
    The network; `network(logits [N, K, H, W])` returns `(mean, entropy)` as the original does.
  """
  import torch  # pylint: disable=import-outside-toplevel

  class Backbone(torch.nn.Module):

    def forward(self, x):
      return x, None

  class Decoder(torch.nn.Module):

    def forward(self, x, low_level_features):
      del low_level_features
      return x

  network = deeplab_class.__new__(deeplab_class)
  torch.nn.Module.__init__(network)
  network.backbone = Backbone()
  network.aspp = torch.nn.Identity()
  network.decoder = Decoder()
  network.eval()
  return network


def identity_qmf(qmf_class):
  """A QMF RGB-D model with identity encoders and empty classifier heads.

  Built with `qmf_class.__new__` and `nn.Module.__init__`, so the original `forward(rgb, depth)`
  receives the per-modality logits directly and only its energy-confidence fusion runs. The
  model is left in training mode (`forward` does not depend on it).

  Args:
    qmf_class: `models.QMF.QMF` of QingyangZhang/QMF `RGBD-scene-recognition/`.

  Returns:
    The model; `model(rgb_logits, depth_logits)` returns the original's
    `(fused, rgb_out, depth_out, rgb_conf, depth_conf)`.
  """
  import torch  # pylint: disable=import-outside-toplevel
  model = qmf_class.__new__(qmf_class)
  torch.nn.Module.__init__(model)
  model.args = types.SimpleNamespace()
  model.rgbenc = torch.nn.Identity()
  model.depthenc = torch.nn.Identity()
  model.clf_rgb = torch.nn.ModuleList()
  model.clf_depth = torch.nn.ModuleList()
  return model


def argument_parser(doc: str, checkouts: dict, out_default=None) -> argparse.ArgumentParser:
  """A generator's command line: one required `--NAME-dir` per checkout, and `--out`.

  Args:
    doc: the generator's module docstring; its first line is the description.
    checkouts: maps NAME to the help text of `--NAME-dir` (a `pathlib.Path`).
    out_default: the default `.npz` path; None makes `--out` required.

  Returns:
    The parser, to which a generator may add its own arguments.
  """
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  for name, help_text in checkouts.items():
    parser.add_argument(f'--{name}-dir', required=True, type=pathlib.Path, help=help_text)
  parser.add_argument('--out', type=pathlib.Path, required=out_default is None,
                      default=out_default, help='output .npz path')
  return parser


def check_sha256(root, pinned: dict) -> dict:
  """The sha256 of the upstream files `root / name`, checked against their pinned digests.

  Args:
    root: the checkout.
    pinned: maps each file's path relative to `root` to its expected hex digest (None: unpinned).

  Returns:
    {name: hex digest}, in the order of `pinned`. A digest that differs from its pin is printed
    as a warning on stderr, not raised: the vectors then record what actually ran.
  """
  digests = {}
  for name, expected in pinned.items():
    digest = hashlib.sha256((pathlib.Path(root) / name).read_bytes()).hexdigest()
    if expected is not None and digest != expected:
      print(f'WARNING: {root}/{name} has sha256 {digest}, not the pinned {expected}',
            file=sys.stderr)
    digests[name] = digest
  return digests


def save_vectors(path, arrays: dict) -> None:
  """Writes `arrays` to the compressed `.npz` file `path` (making its folder) and says so."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(path, **arrays)
  print(f'wrote {len(arrays)} arrays to {path} ({path.stat().st_size} bytes)')
