"""Test configuration: 8 fake CPU devices, XLA at -O0, strict promotion, hypothesis profiles.

The device count must be set before JAX initialises its backend, hence at import time here.
"""

import atexit
import os
import pathlib
import shutil
import tempfile

# XLA's backend at optimisation level 0: the suite's programs are small and compiled once each,
# so LLVM's optimisation passes cost more than they save (about a quarter of the suite's CPU
# time: the incomplete-clustering smoke run takes 99 s instead of 132). Numbers are unchanged
# up to floating-point contraction, which the tests' tolerances cover; benchmarks and
# experiments run at the default level. LQMM_TEST_XLA_OPT=1 keeps the default level here too.
_OPT_LEVEL = ('' if os.environ.get('LQMM_TEST_XLA_OPT') == '1'
              else ' --xla_backend_optimization_level=0')
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8' + _OPT_LEVEL).strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# jaxlib's CPU eigh and SVD call scipy's OpenBLAS, whose idle threads spin: with two test
# workers on two cores they starve each other (small decompositions ran up to 100x slower).
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
# One persistent compilation cache per test run, shared by the xdist workers and the
# subprocesses the kill-and-resume tests start (they inherit the environment): a resume test
# compiles the same programs as the uninterrupted run beside it, and several tests compile
# the same experiment programs. Results do not change; only the repeated compilations go.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='lqmm-test-jax-cache-')
  atexit.register(shutil.rmtree, os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.1')

import hypothesis  # noqa: E402
import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update('jax_numpy_dtype_promotion', 'strict')
jax.config.update('jax_numpy_rank_promotion', 'raise')

hypothesis.settings.register_profile('default', deadline=None, max_examples=40,
                                     print_blob=True)
hypothesis.settings.register_profile('ci', deadline=None, max_examples=40, derandomize=True,
                                     print_blob=True)
hypothesis.settings.load_profile('ci' if os.environ.get('CI') else 'default')

# The parity-vector generator needs torch and the original code; it is run by hand, not collected.
collect_ignore_glob = ['reference/generate_*.py']

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: The shared real data (read-only), used as the builders' manual directory.
SHARED_DATA = ROOT.parent / 'shared' / 'data'


@pytest.fixture
def x64():
  """Enables float64 inside one test."""
  with jax.enable_x64(True):
    yield


@pytest.fixture
def x64_standard():
  """float64 under standard dtype promotion, for parity tests through flax layers (LayerNorm,
  attention), which mix their float32 constants with float64 inputs."""
  with jax.enable_x64(True), jax.numpy_dtype_promotion('standard'):
    yield


@pytest.fixture(scope='session')
def tfds_dir(tmp_path_factory):
  """One TFDS data directory shared by the whole session (builds each data set once)."""
  return str(tmp_path_factory.mktemp('tensorflow_datasets'))


def require_shared_data(folder: pathlib.Path = SHARED_DATA) -> str:
  """Returns `folder` if it exists; else fails the test in CI (`CI` set) and skips it locally.

  CI must never pass without having run the tests on the real data.
  """
  if not folder.is_dir():
    message = (f'The shared real data are not at {folder}; the data tests need them as their '
               'manual directory (see ../shared/data/README.md).')
    if os.environ.get('CI', '').lower() not in ('', '0', 'false'):
      pytest.fail(message + ' CI is set, so this fails instead of skipping.', pytrace=False)
    pytest.skip(message)
  return str(folder)


@pytest.fixture(scope='session')
def manual_dir():
  """The shared real data, the builders' manual directory (fails in CI when missing)."""
  return require_shared_data()
