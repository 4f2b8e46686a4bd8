"""Module boundaries: nobody imports another module's private name; pure modules load no NN library.

A private name (a leading underscore) is a module's own business: `from x import _y`,
`import x._y` and `module._y` from outside `x` would tie code to internals that may change
without notice. The check reads every source file of the library, the experiments and the
benchmarks.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = sorted(path for folder in ('lqmm', 'experiments', 'benchmarks')
                 for path in (ROOT / folder).rglob('*.py'))
#: NamedTuple's public API, whose names start with an underscore by design.
NAMEDTUPLE = {'_replace', '_asdict', '_fields', '_make', '_field_defaults'}


def _private(name: str) -> bool:
  return name.startswith('_') and not name.startswith('__') and name not in NAMEDTUPLE


def _violations(path: pathlib.Path) -> list[str]:
  tree = ast.parse(path.read_text(), filename=str(path))
  modules = set()  # names bound to imported modules or objects from other modules
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        if any(_private(part) for part in alias.name.split('.')):
          found.append(f'{path.relative_to(ROOT)}:{node.lineno} imports {alias.name}')
        modules.add((alias.asname or alias.name).split('.')[0])
    elif isinstance(node, ast.ImportFrom) and node.module != '__future__':
      module_parts = (node.module or '').split('.')
      for alias in node.names:
        if _private(alias.name) or any(_private(part) for part in module_parts):
          found.append(f'{path.relative_to(ROOT)}:{node.lineno} imports '
                       f'{node.module}.{alias.name}')
        modules.add(alias.asname or alias.name)
  for node in ast.walk(tree):
    if (isinstance(node, ast.Attribute) and _private(node.attr) and
        isinstance(node.value, ast.Name) and node.value.id in modules):
      found.append(f'{path.relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}')
  return found


def test_the_check_sees_private_imports(tmp_path):
  sample = ROOT / 'lqmm' / '__sample_for_test.py'
  try:
    sample.write_text('from lqmm import _checks\nfrom lqmm.fusion import base\n'
                      'x = base._helper\ny = base.fuse\n')
    assert len(_violations(sample)) == 2
  finally:
    sample.unlink()


@pytest.mark.parametrize('path', SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_module_imports_another_modules_private_name(path):
  assert _violations(path) == []


def test_experiments_import_only_the_public_api():
  for path in (ROOT / 'experiments').rglob('*.py'):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('experiments'):
        assert path.parent.name == 'configs' or node.module.startswith(
            f'experiments.{path.parent.name}'), f'{path} imports {node.module}'


def test_pure_modules_load_no_neural_network_library():
  code = ("import sys, lqmm.fusion, lqmm.losses, lqmm.metrics, lqmm.missing, lqmm.corrupt, "
          "lqmm.cluster, lqmm.denoise; "
          'print(sorted(name for name in ("flax", "optax", "equinox", "haiku") '
          'if name in sys.modules))')
  loaded = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          check=True, cwd=ROOT).stdout.strip()
  assert loaded in ("['optax']", '[]'), loaded
  fusion_only = subprocess.run(
      [sys.executable, '-c', 'import sys, lqmm.fusion; print("optax" in sys.modules or '
       '"flax" in sys.modules)'], capture_output=True, text=True, check=True, cwd=ROOT)
  assert fusion_only.stdout.strip() == 'False'
