"""Speed of lqmm's decision-level fusion rules on large batches, against the originals and a copy.

For B samples (default 1e6), M = 6 modalities and K = 10 classes (D = 1 for NIG), float32, on
the CPU, it times in one run:

  1. each lqmm rule under `fusion.jit_reusing_output`, each call writing into the previous
     result's memory as NumPy's copyto writes into its preallocated array (compile time
     reported apart; median of `--repeats` calls after a warm-up, each ending in
     `block_until_ready`), and beside it under plain `jax.jit` with a fresh result per call;
  2. the memory-bandwidth bound of the same machine: a jitted `x + 1` over the `[M, B, K]` input
     (`+ 1` rather than `+ 0` or `jnp.copy`, so that no simplification can make the output an
     alias of the input), NumPy `copyto` into a preallocated array and NumPy `copy` (which also
     allocates);
  3. the original PyTorch (ProbEn: NumPy) functions on the same inputs, in a fresh process of the
     PyTorch interpreter (`benchmarks/_run_original_fusion.py`), with the same number of threads.

Both sides read the same `.npy` inputs, drawn here from a seeded NumPy generator, and pinned to
the same CPUs (`--threads`, default all this process may use). The originals' outputs come back
as `.npy` files and are compared with lqmm's (max relative error, see `_max_relative_error`).

Per rule it reports time, throughput (samples/s), the bytes the rule must read and write (its
inputs plus its outputs, each once), the achieved GB/s and that as a fraction of the copy
bandwidth (the better of the jitted and the NumPy copy, counted the same way: read + written).

Originals whose shapes are fixed run at their own shape, next to an lqmm row at that shape:
UNO knows only three modalities ('rgb', 'd', 'rgbd'), its end-to-end pipeline works on
segmentation maps (B pixels as N images of H x W), and ProbEn's multiclass rule is hard-coded to
3 foreground classes + background (K = 4). QMF's forward is bimodal; M = 6 is the sum of three
pair calls. The originals are extracted with `git archive` from bare mirrors (`--mirrors`).

Usage:

  .venv/bin/python benchmarks/fusion_speed.py \
      --torch-python /tmp/torchref/venv311/bin/python --mirrors /work/.mirror
"""

import argparse
import json
import math
import os
import pathlib
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import summary  # pylint: disable=g-import-not-at-top,wrong-import-position

#: name -> (mirror folder under --mirrors, paths to extract).
ORIGINALS = {
    'tmc': ('hanmenghan+TMC', ['TMC ICLR/model.py']),
    'monig': ('MaHuanAAA+MoNIG', ['src']),
    'qmf': ('QingyangZhang+QMF', ['RGBD-scene-recognition/models']),
    'uno': ('GT-RIPL+UNO-IC', ['segmentation/ptsemseg']),
    'proben': ('Jamie725+Multimodal-Object-Detection-via-Probabilistic-Ensembling',
               ['demo/FLIR/demo_probEn.py']),
}
ORIGINAL_LABELS = {
    'tmc': 'TMC `DS_Combin` (fold)',
    'monig': 'MoNIG `moe_nig` (fold)',
    'qmf': 'QMF `forward` x3 pairs',
    'uno_fusion': 'UNO `fusion` Noisy-Or',
    'uno_pipeline': 'UNO pipeline',
    'proben': 'ProbEn `bayesian_fusion_multiclass` loop',
}
#: Clean-data entropy statistics (mean, std) for UNO's 'rgb' and 'd' (the 'rgbd' map uses 'd').
UNO_STATISTICS = np.array([[1.2, 0.2], [1.1, 0.25]], np.float32)


# ------------------------------------------------------------------------------------ inputs
def _softplus(x: np.ndarray) -> np.ndarray:
  return np.logaddexp(np.float32(0), x).astype(np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
  shifted = np.exp(x - x.max(-1, keepdims=True))
  return (shifted / shifted.sum(-1, keepdims=True)).astype(np.float32)


def _scaled_normal(rng, shape, scale_shape) -> np.ndarray:
  """Standard normals times a per-row scale in {0.5, 1, 2, 4} (sharp to nearly flat rows)."""
  scale = rng.choice(np.array([0.5, 1, 2, 4], np.float32), size=scale_shape)
  return rng.standard_normal(shape, dtype=np.float32) * scale


def _segmentation_shape(batch: int, images: int) -> tuple[int, int, int]:
  """(N, H, W) with N * H * W <= batch pixels, H * W as square as the count allows."""
  pixels = batch // images
  height = max(1, math.isqrt(pixels))
  return images, height, pixels // height


def make_inputs(seed: int, batch: int, modalities: int, classes: int, images: int) -> dict:
  """All inputs, float32 NumPy arrays, from one seeded generator.

  Returns:
    A dict of arrays: logits `[M, B, K]`, alpha `[M, B, K]` (1 + softplus of the logits),
    probs `[M, B, K]` (softmax), mask `[M, B]`, nig fields `[M, B, 1]`, UNO segmentation logits
    `[3, N, H, W, K]`, ProbEn foreground scores `[M, B, 3]`.
  """
  rng = np.random.default_rng(seed)
  logits = _scaled_normal(rng, (modalities, batch, classes), (modalities, batch, 1))
  inputs = {'logits': logits, 'alpha': 1 + _softplus(logits), 'probs': _softmax(logits),
            'mask': rng.random((modalities, batch)) < 0.8}
  nig_shape = (modalities, batch, 1)
  inputs['nig_gamma'] = 3 * rng.standard_normal(nig_shape, dtype=np.float32)
  inputs['nig_nu'] = _softplus(rng.standard_normal(nig_shape, dtype=np.float32))
  inputs['nig_alpha'] = 1 + _softplus(rng.standard_normal(nig_shape, dtype=np.float32))
  inputs['nig_beta'] = _softplus(rng.standard_normal(nig_shape, dtype=np.float32))
  count, height, width = _segmentation_shape(batch, images)
  inputs['uno_logits'] = _scaled_normal(rng, (3, count, height, width, classes),
                                        (3, count, 1, 1, 1))
  detector_logits = _scaled_normal(rng, (modalities, batch, 4), (modalities, batch, 1))
  inputs['proben_foreground'] = np.ascontiguousarray(_softmax(detector_logits)[..., :3])
  return inputs


def save_original_inputs(inputs: dict, folder: pathlib.Path) -> None:
  """Writes what `_run_original_fusion.py` reads, in the layouts the originals use."""
  folder.mkdir(parents=True, exist_ok=True)
  for name in ('logits', 'alpha', 'nig_gamma', 'nig_nu', 'nig_alpha', 'nig_beta',
               'proben_foreground'):
    np.save(folder / f'{name}.npy', inputs[name])
  np.save(folder / 'uno_probs.npy', inputs['probs'][:3])
  np.save(folder / 'uno_logits_nchw.npy',
          np.ascontiguousarray(inputs['uno_logits'].transpose(0, 1, 4, 2, 3)))
  np.save(folder / 'uno_statistics.npy', UNO_STATISTICS)


# ------------------------------------------------------------------------------ the originals
def extract_originals(mirrors: pathlib.Path, folder: pathlib.Path) -> dict:
  """Extracts the original files from bare git mirrors; returns {name: commit}."""
  commits = {}
  for name, (mirror, paths) in ORIGINALS.items():
    git_dir = mirrors / mirror / 'repo'
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    commits[name] = subprocess.run(['git', f'--git-dir={git_dir}', 'rev-parse', 'HEAD'],
                                   check=True, capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(['git', f'--git-dir={git_dir}', 'archive', 'HEAD', *paths],
                             check=True, capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', str(target)], input=archive, check=True)
  return commits


def run_originals(args, inputs_folder, outputs_folder, sources_folder, threads) -> dict:
  command = [args.torch_python, str(ROOT / 'benchmarks' / '_run_original_fusion.py'),
             '--sources', str(sources_folder), '--inputs', str(inputs_folder),
             '--outputs', str(outputs_folder), '--threads', str(threads),
             '--warmup', str(args.warmup), '--repeats', str(args.repeats),
             '--slow-repeats', str(args.slow_repeats)]
  if args.proben_rows:
    command += ['--proben-rows', str(args.proben_rows)]
  environment = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
  start = time.perf_counter()
  completed = subprocess.run(command, capture_output=True, text=True, env=environment)
  wall = time.perf_counter() - start
  if completed.returncode:
    raise RuntimeError(f'the original runner failed ({completed.returncode}):\n'
                       f'{completed.stderr[-4000:]}')
  record = json.loads(completed.stdout.strip().splitlines()[-1])
  record['wall_s'] = wall
  return record


# ------------------------------------------------------------------------------------- lqmm
def _nbytes(tree) -> int:
  import jax  # pylint: disable=import-outside-toplevel
  return int(sum(np.dtype(leaf.dtype).itemsize * math.prod(leaf.shape)
                 for leaf in jax.tree.leaves(tree)))


def _usage() -> tuple[int, float]:
  """(minor page faults, user + system CPU seconds) of this process so far."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_minflt, usage.ru_utime + usage.ru_stime


def _usage_record(before, times, repeats) -> dict:
  """Page faults per call and CPU time over wall time (about the number of busy threads)."""
  faults, cpu = _usage()
  return {'faults': (faults - before[0]) / repeats, 'cpu_per_wall': (cpu - before[1]) / sum(times)}


def put(tree, devices: int):
  """Moves NumPy arrays to JAX, split along axis 1 (the batch) over `devices` CPU devices."""
  import jax  # pylint: disable=import-outside-toplevel
  if devices == 1:
    return jax.tree.map(jax.numpy.asarray, tree)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:devices]), ('batch',))
  split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, 'batch'))
  whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

  def place(leaf):
    divisible = np.ndim(leaf) >= 2 and np.shape(leaf)[1] % devices == 0
    return jax.device_put(leaf, split if divisible else whole)

  return jax.tree.map(place, tree)


def time_jitted(function, arguments, warmup: int, repeats: int) -> dict:
  """Compiles `function` for `arguments`, then times `repeats` calls after `warmup` calls."""
  import jax  # pylint: disable=import-outside-toplevel
  start = time.perf_counter()
  compiled = jax.jit(function).lower(*arguments).compile()
  compile_s = time.perf_counter() - start
  result = None
  for _ in range(warmup):
    result = jax.block_until_ready(compiled(*arguments))
  times = []
  before = _usage()
  for _ in range(repeats):
    del result
    start = time.perf_counter()
    result = jax.block_until_ready(compiled(*arguments))
    times.append(time.perf_counter() - start)
  return {'times_s': times, 'median_s': float(np.median(times)), 'compile_s': compile_s,
          **_usage_record(before, times, repeats),
          'bytes_moved': _nbytes(arguments) + _nbytes(result),
          'output': jax.tree.map(np.asarray, result)}


def time_reusing(function, arguments, warmup: int, repeats: int) -> dict:
  """Times `fusion.jit_reusing_output(function)`: each call writes into the previous result."""
  import jax  # pylint: disable=import-outside-toplevel
  from lqmm import fusion  # pylint: disable=import-outside-toplevel
  call = fusion.jit_reusing_output(function)
  result = jax.block_until_ready(call(*arguments))
  for _ in range(warmup + 1):  # the first call with `out` compiles the donating program
    result = jax.block_until_ready(call(*arguments, out=result))
  times = []
  before = _usage()
  for _ in range(repeats):
    start = time.perf_counter()
    result = jax.block_until_ready(call(*arguments, out=result))
    times.append(time.perf_counter() - start)
  return {'times_s': times, 'median_s': float(np.median(times)),
          **_usage_record(before, times, repeats)}


def time_numpy(function, warmup: int, repeats: int) -> dict:
  for _ in range(warmup):
    function()
  times = []
  before = _usage()
  for _ in range(repeats):
    start = time.perf_counter()
    function()
    times.append(time.perf_counter() - start)
  return {'times_s': times, 'median_s': float(np.median(times)),
          **_usage_record(before, times, repeats)}


def lqmm_cases(inputs: dict) -> list[dict]:
  """The timed lqmm calls: name, function, NumPy arguments, samples, and the original to match."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from lqmm import fusion  # pylint: disable=import-outside-toplevel

  modalities, batch, classes = inputs['logits'].shape
  count, height, width = inputs['uno_logits'].shape[1:4]
  uno_mean = np.full((modalities,), UNO_STATISTICS[1, 0], np.float32)
  uno_mean[0] = UNO_STATISTICS[0, 0]
  uno_std = np.full((modalities,), UNO_STATISTICS[1, 1], np.float32)
  uno_std[0] = UNO_STATISTICS[0, 1]
  nig = fusion.nig.NIG(*(inputs[f'nig_{name}'] for name in ('gamma', 'nu', 'alpha', 'beta')))
  main_shape = f'[{modalities}, {batch:.0e}, {classes}]'
  three = f'[3, {batch:.0e}, {classes}]'
  return [
      dict(name='dempster_shafer.fuse', shape=main_shape, function=fusion.dempster_shafer.fuse,
           arguments=(inputs['alpha'],), samples=batch, original='tmc'),
      dict(name='dempster_shafer.fuse + mask', shape=main_shape,
           function=fusion.dempster_shafer.fuse, arguments=(inputs['alpha'], inputs['mask']),
           samples=batch),
      dict(name='nig.fuse (D=1)', shape=f'[{modalities}, {batch:.0e}, 1]',
           function=fusion.nig.fuse, arguments=(nig,), samples=batch, original='monig'),
      dict(name='energy.fuse (QMF)', shape=main_shape, function=fusion.energy.fuse,
           arguments=(inputs['logits'],), samples=batch, original='qmf'),
      dict(name='noisy_or.fuse', shape=main_shape, function=fusion.noisy_or.fuse,
           arguments=(inputs['probs'],), samples=batch),
      dict(name='noisy_or.fuse', shape=three, function=fusion.noisy_or.fuse,
           arguments=(inputs['probs'][:3],), samples=batch, original='uno_fusion'),
      dict(name='noisy_or.uno (UNO)', shape=main_shape,
           function=lambda logits: fusion.noisy_or.uno(logits, mean=uno_mean, std=uno_std),
           arguments=(inputs['logits'],), samples=batch),
      dict(name='noisy_or.uno (UNO), maps', shape=f'[3, {count}, {height}, {width}, {classes}]',
           function=lambda logits: fusion.noisy_or.uno(logits, mean=uno_mean[:3],
                                                       std=uno_std[:3], spatial_axes=(1, 2)),
           arguments=(inputs['uno_logits'],), samples=count * height * width,
           original='uno_pipeline'),
      dict(name='bayes.fuse (ProbEn)', shape=main_shape, function=fusion.bayes.fuse,
           arguments=(inputs['logits'],), samples=batch),
      dict(name='bayes.fuse of log with_background', shape=f'[{modalities}, {batch:.0e}, 3+1]',
           function=lambda foreground: fusion.bayes.fuse(
               jnp.log(fusion.bayes.with_background(foreground))),
           arguments=(inputs['proben_foreground'],), samples=batch, original='proben'),
      dict(name='product.fuse', shape=main_shape, function=fusion.product.fuse,
           arguments=(inputs['logits'],), samples=batch),
      dict(name='entropy.fuse', shape=main_shape, function=fusion.entropy.fuse,
           arguments=(inputs['logits'],), samples=batch),
      dict(name='subjective_logic.fuse (cumulative)', shape=main_shape,
           function=fusion.subjective_logic.fuse, arguments=(inputs['alpha'],),
           samples=batch),
      dict(name='subjective_logic.fuse (averaging)', shape=main_shape,
           function=fusion.get('averaging'), arguments=(inputs['alpha'],),
           samples=batch),
      dict(name='baselines.fuse (mean)', shape=main_shape, function=fusion.baselines.fuse,
           arguments=(inputs['logits'],), samples=batch),
  ]


# ------------------------------------------------------------------------------- agreement
def _max_relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
  """`max_i |a_i - b_i| / (|b_i| + 1e-6 max_j |b_j|)` over rows where both are finite.

  The floor keeps entries that cancel to nearly zero (a weighted sum of logits, a pooled mean)
  from reporting a huge relative error that is only float32 rounding of the larger terms.
  """
  ours = np.asarray(ours, np.float64)
  theirs = np.asarray(theirs, np.float64)
  if ours.shape != theirs.shape:
    raise ValueError(f'shapes differ: lqmm {ours.shape}, original {theirs.shape}')
  finite = np.isfinite(ours) & np.isfinite(theirs)
  floor = 1e-6 * np.max(np.abs(theirs[finite]))
  return float(np.max(np.abs(ours - theirs)[finite] / (np.abs(theirs[finite]) + floor)))


def _nonfinite(values) -> int:
  return int(np.size(values) - np.count_nonzero(np.isfinite(values)))


def agreement(original: str, output, outputs_folder: pathlib.Path) -> dict:
  """Max relative errors between lqmm, the original (float32) and the original in float64.

  Returns:
    {'vs_original', 'lqmm_vs_f64', 'original_vs_f64' (None without a float64 reference),
    'nonfinite_original', 'nonfinite_lqmm', 'note'}.
  """
  def load(name):
    return np.load(outputs_folder / f'{name}.npy')

  if original == 'monig':
    fields = ('gamma', 'nu', 'alpha', 'beta')
    ours = [getattr(output, field)[..., 0] for field in fields]
    theirs = [load(f'monig_{field}')[..., 0] for field in fields]
    reference = [load(f'monig_{field}_f64')[..., 0] for field in fields]
  elif original == 'proben':
    theirs = [load('proben_score')]
    rows = theirs[0].shape[0]
    ours = [np.exp(np.max(output[:rows], axis=-1))]
    reference = [load('proben_score_f64')]
    same = np.mean(np.argmax(output[:rows], axis=-1) == load('proben_class'))
    far = [int(np.sum(np.abs(value - reference[0]) > 1e-3 * np.abs(reference[0])))
           for value in (ours[0], theirs[0])]
  else:
    ours, theirs = [output], [load(original)]
    reference = [load(f'{original}_f64')]
    if original == 'uno_pipeline':  # [N, K, H, W] -> [N, H, W, K]
      theirs = [value.transpose(0, 2, 3, 1) for value in theirs]
      reference = [value.transpose(0, 2, 3, 1) for value in reference]

  def worst(first, second):
    return max(_max_relative_error(a, b) for a, b in zip(first, second))

  return {
      'vs_original': worst(ours, theirs),
      'lqmm_vs_f64': None if reference is None else worst(ours, reference),
      'original_vs_f64': None if reference is None else worst(theirs, reference),
      'nonfinite_original': sum(_nonfinite(value) for value in theirs),
      'nonfinite_lqmm': sum(_nonfinite(value) for value in ours),
      'note': (f'class {100 * same:.2f}% same; rows off f64 by > 1e-3: lqmm {far[0]}, '
               f'original {far[1]}') if original == 'proben' else '',
  }


def _format_agreement(record) -> str:
  if not record:
    return '-'
  text = f'{record["vs_original"]:.1e}'
  if record['lqmm_vs_f64'] is not None:
    text += f' (f64: {record["lqmm_vs_f64"]:.0e} / {record["original_vs_f64"]:.0e})'
  notes = [record['note']] if record['note'] else []
  if record['nonfinite_original']:
    notes.append(f'original NaN/inf: {record["nonfinite_original"]}')
  if record['nonfinite_lqmm']:
    notes.append(f'lqmm NaN/inf: {record["nonfinite_lqmm"]}')
  return text + (f'; {", ".join(notes)}' if notes else '')


# ------------------------------------------------------------------------------------- main
def _machine() -> str:
  name = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        name = line.split(':', 1)[1].strip()
        break
  except OSError:
    pass
  return name


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch', type=int, default=1_000_000)
  parser.add_argument('--modalities', type=int, default=6)
  parser.add_argument('--classes', type=int, default=10)
  parser.add_argument('--images', type=int, default=4,
                      help='UNO pipeline: the B pixels are this many images of H x W')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--warmup', type=int, default=1)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--slow-repeats', type=int, default=3,
                      help='timed calls of the original per-detection ProbEn loop')
  parser.add_argument('--proben-rows', type=int, default=None,
                      help='detections in the original ProbEn loop (default: all B)')
  parser.add_argument('--threads', type=int, default=None,
                      help='CPUs for both sides (default: all this process may use)')
  parser.add_argument('--torch-python', default='/tmp/torchref/venv311/bin/python')
  parser.add_argument('--mirrors', type=pathlib.Path, default=pathlib.Path('/work/.mirror'))
  parser.add_argument('--cpu-devices', type=int, default=1,
                      help='shard lqmm\'s batch axis over this many XLA CPU devices; 1 = plain '
                      'jit on one device')
  parser.add_argument('--skip-original', action='store_true')
  parser.add_argument('--json-out', type=pathlib.Path, default=None)
  parser.add_argument('--summary', default=None, help="the speed table's record (JSON)")
  args = parser.parse_args()

  cpus = sorted(os.sched_getaffinity(0))
  threads = args.threads or len(cpus)
  os.sched_setaffinity(0, cpus[:threads])  # before JAX starts its thread pool; inherited.

  load_before = os.getloadavg()
  workdir = pathlib.Path(tempfile.mkdtemp(prefix='lqmm_fusion_speed_'))
  try:
    start = time.perf_counter()
    inputs = make_inputs(args.seed, args.batch, args.modalities, args.classes, args.images)
    save_original_inputs(inputs, workdir / 'inputs')
    print(f'inputs: {time.perf_counter() - start:.1f} s, '
          f'{sum(value.nbytes for value in inputs.values()) / 1e9:.2f} GB', file=sys.stderr)

    original = {'results': {}, 'errors': {}}
    commits = {}
    if not args.skip_original:
      commits = extract_originals(args.mirrors, workdir / 'sources')
      original = run_originals(args, workdir / 'inputs', workdir / 'outputs',
                               workdir / 'sources', threads)
      print(f'originals: {original["wall_s"]:.1f} s wall', file=sys.stderr)

    if args.cpu_devices > 1:  # Must be set before JAX starts.
      os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                                 f' --xla_force_host_platform_device_count={args.cpu_devices}')
    import jax  # pylint: disable=import-outside-toplevel

    # Copy bandwidth, counted as bytes read + bytes written.
    logits = inputs['logits']
    copy_bytes = 2 * logits.nbytes
    bounds = {}
    bounds['jax x + 1 (jit)'] = time_jitted(lambda x: x + 1, put((logits,), args.cpu_devices),
                                            args.warmup, args.repeats)
    target = np.empty_like(logits)
    bounds['numpy copyto (preallocated)'] = time_numpy(lambda: np.copyto(target, logits),
                                                       args.warmup, args.repeats)
    bounds['numpy copy (allocates)'] = time_numpy(logits.copy, args.warmup, args.repeats)
    del target
    if 'torch_copy' in original['results']:
      bounds['torch x + 1 (original process)'] = original['results']['torch_copy']
    for record in bounds.values():
      record['gb_s'] = copy_bytes / record['median_s'] / 1e9
      record.pop('output', None)
    copy_gb_s = max(bounds['jax x + 1 (jit)']['gb_s'],
                    bounds['numpy copyto (preallocated)']['gb_s'])

    rows = []
    for case in lqmm_cases(inputs):
      arguments = put(case['arguments'], args.cpu_devices)
      record = time_jitted(case['function'], arguments, args.warmup, args.repeats)
      reusing = time_reusing(case['function'], arguments, args.warmup, args.repeats)
      del arguments
      # The rule's time: each call writes into the previous result's memory (as NumPy's
      # copyto into its preallocated array); a fresh result per call is reported beside it.
      record['fresh_s'], record['fresh_faults'] = record['median_s'], record['faults']
      record.update({key: reusing[key] for key in ('times_s', 'median_s', 'faults',
                                                   'cpu_per_wall')})
      record['gb_s'] = record['bytes_moved'] / record['median_s'] / 1e9
      name = case.get('original')
      record['original'] = name
      record['original_s'] = None
      record['agreement'] = None
      if name and name in original['results']:
        record['original_s'] = original['results'][name]['median_s']
        if name == 'proben':  # The loop may have run on fewer rows; scale to B.
          record['original_s'] *= case['samples'] / original['results'][name]['rows']
        record['agreement'] = agreement(name, record['output'], workdir / 'outputs')
      record.pop('output')
      rows.append({**{key: case[key] for key in ('name', 'shape', 'samples')}, **record})
      print(f'{case["name"]} {case["shape"]}: {1e3 * record["median_s"]:.1f} ms',
            file=sys.stderr)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)

  # ------------------------------------------------------------------------------ report
  print(f'CPU: {_machine()}, {os.cpu_count()} logical CPUs, both sides pinned to {threads}; '
        f'jax {jax.__version__} (CPU devices used: {args.cpu_devices}); '
        f'GLIBC_TUNABLES={os.environ.get("GLIBC_TUNABLES", "(unset)")}; '
        f'torch {original.get("torch", "-")} '
        f'with {original.get("threads", "-")} threads, numpy {original.get("numpy", "-")} '
        f'(original process); float32; median of {args.repeats} timed calls after '
        f'{args.warmup} warm-up call(s). Load average (1 min) before: {load_before[0]:.2f}, '
        f'after: {os.getloadavg()[0]:.2f}. Peak resident memory: this process '
        f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f} GB, the original '
        f'process {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6:.1f} GB.')
  print()
  print('| copy bound, [M, B, K] float32 | ms | GB/s (read + written) | faults/call | '
        'CPU/wall |')
  print('|---|---|---|---|---|')
  for name, record in bounds.items():
    print(f'| {name} | {1e3 * record["median_s"]:.1f} | {record["gb_s"]:.1f} | '
          f'{record["faults"]:.0f} | {record["cpu_per_wall"]:.2f} |')
  print()
  print(f'Copy bandwidth used below: {copy_gb_s:.1f} GB/s.')
  print()
  print('lqmm ms: each call writes into the previous result (`fusion.jit_reusing_output`); '
        'fresh ms: a new result per call (plain `jax.jit`).')
  print()
  print('| lqmm rule | shape | lqmm ms | fresh ms | compile s | samples/s | MB read+written | '
        'GB/s | % of copy BW | faults/call (fresh) | CPU/wall | original | original ms | '
        'original CPU/wall | original / lqmm | max rel err vs original (f64: lqmm / original) |')
  print('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
  for row in rows:
    original_name = row['original']
    label = ORIGINAL_LABELS.get(original_name, '-') if original_name else '-'
    if row['original_s'] is not None:
      original_ms = f'{1e3 * row["original_s"]:.1f}'
      ratio = f'{row["original_s"] / row["median_s"]:.1f}x'
      original_cpu = f'{original["results"][original_name]["cpu_per_wall"]:.2f}'
    else:
      original_ms = ratio = original_cpu = '-'
    print(f'| {row["name"]} | {row["shape"]} | {1e3 * row["median_s"]:.1f} | '
          f'{1e3 * row["fresh_s"]:.1f} | '
          f'{row["compile_s"]:.2f} | {row["samples"] / row["median_s"]:.2e} | '
          f'{row["bytes_moved"] / 1e6:.0f} | {row["gb_s"]:.1f} | '
          f'{100 * row["gb_s"] / copy_gb_s:.0f}% | '
          f'{row["faults"]:.0f} ({row["fresh_faults"]:.0f}) | '
          f'{row["cpu_per_wall"]:.2f} | {label} | {original_ms} | {original_cpu} | {ratio} | '
          f'{_format_agreement(row["agreement"])} |')
  print()
  for name, record in original['results'].items():
    extra = ''
    if 'resize_median_s' in record:
      extra = ('; of which the same-size bilinear resize alone: '
               f'{1e3 * record["resize_median_s"]:.1f} ms')
    print(f'- original {name}: {record["notes"]}; median {1e3 * record["median_s"]:.1f} ms over '
          f'{len(record["times_s"])} calls{extra}.')
  for name, trace in original['errors'].items():
    print(f'- original {name} FAILED: {trace.strip().splitlines()[-1]}')
  if commits:
    print('- original commits: ' + ', '.join(f'{name} {commit[:7]}'
                                             for name, commit in commits.items()))
  records = []
  for row in rows:
    original_name = row['original']
    has_original = row['original_s'] is not None
    commit = commits.get((original_name or '').split('_')[0], '')[:7]
    records.append(summary.row(
        f'{row["name"]} {row["shape"]}', 'ms per call', 1e3 * row['median_s'],
        original=f'{ORIGINAL_LABELS[original_name]} ({commit})' if has_original else None,
        original_value=1e3 * row['original_s'] if has_original else None,
        limit=(f'{100 * row["gb_s"] / copy_gb_s:.0f}% of copy bandwidth (fresh output: '
               f'{100 * row["bytes_moved"] / row["fresh_s"] / 1e9 / copy_gb_s:.0f}%)'),
        accuracy=(f'max rel err {_format_agreement(row["agreement"])}' if has_original
                  else None)))
  summary.write(args.summary, 'fusion_speed', records, load_before=load_before[0],
                notes=[f'copy bandwidth {copy_gb_s:.1f} GB/s (read + written, the better of '
                       'a jitted x + 1 and NumPy copyto, measured in the same run); lqmm '
                       'times: each call writes into the previous result '
                       '(`fusion.jit_reusing_output`), as copyto into its preallocated array'])
  if args.json_out:
    args.json_out.write_text(json.dumps({'bounds': bounds, 'rows': rows, 'original': original,
                                         'commits': commits, 'threads': threads}, indent=1))


if __name__ == '__main__':
  main()
