"""Times the original PyTorch (and NumPy) fusion functions on the inputs fusion_speed.py wrote.

Executed by the PyTorch interpreter (Python 3.11, torch 2.13 CPU), not by lqmm's, as a fresh
process started by `benchmarks/fusion_speed.py`. It imports the original files from
`--sources` (extracted from the upstream repositories by fusion_speed.py; nothing of them is
copied into lqmm), calls each original the way its own code calls it, and for each one records
the wall time of every timed call after the warm-up. Each output is saved as `.npy` in
`--outputs` so that fusion_speed.py can compare lqmm's result with it, together with one more,
untimed call of the same original on the inputs cast to float64 (`*_f64.npy`), the reference
that tells which of two float32 results is the more accurate.

Originals and how they are called (float32 tensors on the CPU, under `torch.no_grad()`):

- `tmc`: `TMC ICLR/model.py` `TMC.DS_Combin` on a dict of M views `[B, K]` (a left fold of
  `DS_Combin_two`, as `TMC.forward` calls it).
- `monig`: `src/utils.py` `moe_nig`, folded left over the M modalities as `src/train.py` does,
  fields `[B, 1]`.
- `qmf`: `RGBD-scene-recognition/models/QMF.py` `QMF.forward` with identity encoders and empty
  heads, so it receives the logits. It is strictly bimodal: M = 6 is fused as the sum of three
  calls on the pairs (0, 1), (2, 3), (4, 5), which equals the M-way rule `sum_m c_m z_m`.
- `uno_fusion`: `segmentation/ptsemseg/core/core.py` `fusion(..., 'Noisy-Or')` on a dict of
  probabilities `[B, K, 1, 1]`. It knows only the modalities 'rgb', 'd', 'rgbd', so M = 3.
- `uno_pipeline`: UNO end to end as `segmentation/validate.py` runs it: `DeepLab.forward`
  (backbone, ASPP and decoder replaced by identities, so only its own post-processing runs:
  a same-size bilinear resize, clamped softmax, `mutualinfo_entropy`) ->
  `likelihood_flattening` -> `prior_recbalancing` (softmax) -> `fusion`, on segmentation maps
  `[N, K, H, W]` per modality, M = 3. The resize is also timed alone (`resize_median_s`), for
  reference: it is part of the original forward, but lqmm does no such step.
- `proben`: `demo/FLIR/demo_probEn.py` `bayesian_fusion_multiclass` (NumPy, hard-coded to 3
  foreground classes + background, so K = 4), called once per detection on its `[M, 3]`
  foreground scores, as `nms_bayesian` calls it; `--slow-repeats` timed calls, no warm-up. It
  computes in float64 after `1 - sum(foreground)`, which it takes in the input's dtype.
- `torch_copy`: `x + 1` on the `[M, B, K]` logits, this process's copy bandwidth.

Stubs: packages that the original modules import at module level but that play no part in the
functions timed (torchvision, detectron2, cv2, matplotlib, mpl_toolkits, tqdm, pandas) are
replaced by empty placeholder modules when they are not installed (`original_code.install`,
from `tests/reference/original_code.py`, the helpers shared with the reference-vector generators).

Prints one JSON line: {"torch", "numpy", "python", "threads", "results": {name: {...}},
"errors": {name: traceback}}.
"""

import argparse
import importlib
import json
import os
import pathlib
import platform
import resource
import sys
import time
import traceback

import numpy as np

# The helpers shared with the reference-vector generators (stubs, file loader, identity models).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'tests' / 'reference'))
import original_code  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

_STUBBED_PACKAGES = ('torchvision', 'detectron2', 'cv2', 'matplotlib', 'mpl_toolkits', 'tqdm',
                     'pandas')
CASES = ('torch_copy', 'tmc', 'monig', 'qmf', 'uno_fusion', 'uno_pipeline', 'proben')
UNO_MODALITIES = ('rgb', 'd', 'rgbd')


def _usage() -> tuple[int, float]:
  """(minor page faults, user + system CPU seconds) of this process so far."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_minflt, usage.ru_utime + usage.ru_stime


def _time_calls(function, warmup: int, repeats: int):
  """Calls `function` `warmup` times untimed, then `repeats` times timed.

  Returns:
    (the last result, wall seconds of each timed call, {'faults': minor page faults per call,
    'cpu_per_wall': CPU seconds over wall seconds}).
  """
  result = None
  for _ in range(warmup):
    result = function()
  times = []
  faults, cpu = _usage()
  for _ in range(repeats):
    del result
    start = time.perf_counter()
    result = function()
    times.append(time.perf_counter() - start)
  faults_after, cpu_after = _usage()
  return result, times, {'faults': (faults_after - faults) / repeats,
                         'cpu_per_wall': (cpu_after - cpu) / sum(times)}


def _record(times, usage, notes='', **extra) -> dict:
  return {'times_s': times, 'median_s': float(np.median(times)), **usage, 'notes': notes,
          **extra}


def _run_torch_copy(torch, inputs):
  logits = torch.from_numpy(np.load(inputs / 'logits.npy'))
  moved = 2 * logits.numel() * logits.element_size()
  return (lambda: logits + 1), None, 'x + 1 on the [M, B, K] logits', {'bytes_moved': moved}


def _prepare_tmc(torch, sources, inputs, dtype):
  tmc_model = sys.modules.get('tmc_model') or original_code.load_file(
      'tmc_model', sources / 'tmc' / 'TMC ICLR' / 'model.py')
  alpha = np.load(inputs / 'alpha.npy').astype(dtype)
  num_modalities, _, num_classes = alpha.shape
  model = tmc_model.TMC(classes=num_classes, views=num_modalities,
                        classifier_dims=[[1]] * num_modalities)
  views = {view: torch.from_numpy(alpha[view]) for view in range(num_modalities)}
  save = lambda fused, outputs, suffix: np.save(outputs / f'tmc{suffix}.npy', fused.numpy())
  return (lambda: model.DS_Combin(views)), save, (
      f'TMC.DS_Combin, left fold over M={num_modalities} views')


def _prepare_monig(torch, sources, inputs, dtype):
  if str(sources / 'monig') not in sys.path:
    sys.path.insert(0, str(sources / 'monig'))
  utils = importlib.import_module('src.utils')
  torch.set_default_dtype(torch.float32)  # src/dataset.py sets the default tensor type.
  names = ('gamma', 'nu', 'alpha', 'beta')
  fields = [torch.from_numpy(np.load(inputs / f'nig_{name}.npy').astype(dtype))
            for name in names]
  num_modalities = fields[0].shape[0]

  def fold():
    fused = tuple(field[0] for field in fields)
    for index in range(1, num_modalities):
      fused = utils.moe_nig(*fused, *(field[index] for field in fields))
    return fused

  def save(fused, outputs, suffix):
    for name, value in zip(names, fused):
      np.save(outputs / f'monig_{name}{suffix}.npy', value.numpy())

  return fold, save, f'moe_nig, left fold over M={num_modalities} as in src/train.py'


def _prepare_qmf(torch, sources, inputs, dtype):
  rgbd = sources / 'qmf' / 'RGBD-scene-recognition'
  if str(rgbd) not in sys.path:
    sys.path.insert(0, str(rgbd))
  model = original_code.identity_qmf(importlib.import_module('models.QMF').QMF)
  model.eval()
  logits = torch.from_numpy(np.load(inputs / 'logits.npy').astype(dtype))
  num_modalities = logits.shape[0]
  if num_modalities % 2:
    raise ValueError(f'QMF.forward is bimodal; M must be even here, got {num_modalities}.')

  def fuse():
    fused = None
    for first in range(0, num_modalities, 2):
      # forward(rgb, depth) -> (depth*depth_conf + rgb*rgb_conf, rgb_out, depth_out, confs).
      pair = model(logits[first], logits[first + 1])[0]
      fused = pair if fused is None else fused + pair
    return fused

  save = lambda fused, outputs, suffix: np.save(outputs / f'qmf{suffix}.npy', fused.numpy())
  return fuse, save, f'QMF.forward (RGB-D, T=10) on {num_modalities // 2} pairs, summed'


def _load_uno(sources):
  segmentation = sources / 'uno' / 'segmentation'
  if str(segmentation) not in sys.path:
    sys.path.insert(0, str(segmentation))
  core = importlib.import_module('ptsemseg.core')
  deeplab = importlib.import_module('ptsemseg.models.deeplab')
  return core, deeplab.DeepLab


def _prepare_uno_fusion(torch, sources, inputs, dtype):
  core, _ = _load_uno(sources)
  probs = np.load(inputs / 'uno_probs.npy').astype(dtype)  # [3, B, K]
  names = UNO_MODALITIES[:probs.shape[0]]
  mean = {name: torch.from_numpy(probs[index])[:, :, None, None]
          for index, name in enumerate(names)}
  config = {'models': {name: {} for name in names}, 'fusion': 'Noisy-Or'}
  save = lambda fused, outputs, suffix: np.save(outputs / f'uno_fusion{suffix}.npy',
                                                fused[:, :, 0, 0].numpy())
  return (lambda: core.fusion(mean, config)), save, (
      f'core.fusion Noisy-Or, M={len(names)}, [B, K, 1, 1]')


def _prepare_uno_pipeline(torch, sources, inputs, dtype):
  core, deeplab_class = _load_uno(sources)
  network = original_code.identity_deeplab(deeplab_class)
  logits = np.load(inputs / 'uno_logits_nchw.npy').astype(dtype)  # [3, N, K, H, W]
  statistics = np.load(inputs / 'uno_statistics.npy')  # (rgb, d) x (mean, std)
  stats = {'rgb_mean': float(statistics[0, 0]), 'rgb_std': float(statistics[0, 1]),
           'd_mean': float(statistics[1, 0]), 'd_std': float(statistics[1, 1])}
  names = UNO_MODALITIES[:logits.shape[0]]
  maps = [torch.from_numpy(logits[index]) for index in range(len(names))]
  config = {'models': {name: {} for name in names}, 'uncertainty': True,
            'imbalance': {'beta': None}, 'fusion': 'Noisy-Or'}

  def pipeline():
    mean = {}
    for name, logit_map in zip(names, maps):
      mean[name], entropy = network(logit_map)
      mean[name] = core.likelihood_flattening(mean[name], config, entropy, stats, modality=name)
    probs = core.prior_recbalancing(mean, config, prior=None)
    return core.fusion(probs, config)

  def resize():
    return [torch.nn.functional.interpolate(logit_map, size=logit_map.size()[2:],
                                            mode='bilinear', align_corners=True)
            for logit_map in maps]

  save = lambda fused, outputs, suffix: np.save(outputs / f'uno_pipeline{suffix}.npy',
                                                fused.numpy())
  notes = (f'DeepLab.forward post-processing + likelihood_flattening + prior_recbalancing + '
           f'fusion, M={len(names)}, maps {list(logits.shape[1:])}')
  return pipeline, save, notes, resize


def _prepare_proben(sources, inputs, rows, dtype):
  proben = sys.modules.get('proben_demo_probEn') or original_code.load_file(
      'proben_demo_probEn', sources / 'proben' / 'demo' / 'FLIR' / 'demo_probEn.py')
  foreground = np.load(inputs / 'proben_foreground.npy').astype(dtype)  # [M, B, 3]
  batch = foreground.shape[1] if rows is None else min(rows, foreground.shape[1])
  per_detection = np.ascontiguousarray(foreground[:, :batch].transpose(1, 0, 2))  # [B, M, 3]
  fuse = proben.bayesian_fusion_multiclass

  def loop():
    scores = np.empty(batch)
    classes = np.empty(batch, np.int64)
    for row in range(batch):
      scores[row], classes[row] = fuse(per_detection[row], 0)
    return scores, classes

  def save(result, outputs, suffix):
    np.save(outputs / f'proben_score{suffix}.npy', result[0])
    np.save(outputs / f'proben_class{suffix}.npy', result[1])

  notes = (f'bayesian_fusion_multiclass once per detection ([M, 3] NumPy, float64 inside), '
           f'{batch} rows')
  return loop, save, notes, batch


PREPARE = {'tmc': _prepare_tmc, 'monig': _prepare_monig, 'qmf': _prepare_qmf,
           'uno_fusion': _prepare_uno_fusion, 'uno_pipeline': _prepare_uno_pipeline}


def _run_case(name, torch, args) -> dict:
  """Times one original in float32 and saves its output (and a float64 reference)."""
  if name == 'torch_copy':
    call, _, notes, extra = _run_torch_copy(torch, args.inputs)
    _, times, usage = _time_calls(call, args.warmup, args.repeats)
    return _record(times, usage, notes, **extra)
  if name == 'proben':
    call, save, notes, rows = _prepare_proben(args.sources, args.inputs, args.proben_rows,
                                              np.float32)
    result, times, usage = _time_calls(call, 0, args.slow_repeats)
    save(result, args.outputs, '')
    if args.float64_reference:
      call, save = _prepare_proben(args.sources, args.inputs, args.proben_rows, np.float64)[:2]
      save(call(), args.outputs, '_f64')
    return _record(times, usage, notes, rows=rows)
  prepared = PREPARE[name](torch, args.sources, args.inputs, np.float32)
  call, save, notes = prepared[:3]
  result, times, usage = _time_calls(call, args.warmup, args.repeats)
  save(result, args.outputs, '')
  extra = {}
  if name == 'uno_pipeline':
    _, resize_times, _ = _time_calls(prepared[3], 1, args.repeats)
    extra['resize_median_s'] = float(np.median(resize_times))
  del result, prepared, call
  if args.float64_reference:
    call, save = PREPARE[name](torch, args.sources, args.inputs, np.float64)[:2]
    save(call(), args.outputs, '_f64')
  return _record(times, usage, notes, **extra)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--sources', required=True, type=pathlib.Path,
                      help='folder with tmc/, monig/, qmf/, uno/, proben/ (extracted originals)')
  parser.add_argument('--inputs', required=True, type=pathlib.Path)
  parser.add_argument('--outputs', required=True, type=pathlib.Path)
  # The timing protocol is fusion_speed.py's, which passes every count (see its --help);
  # --slow-repeats counts the timed calls of the per-detection ProbEn loop.
  for count in ('--threads', '--warmup', '--repeats', '--slow-repeats'):
    parser.add_argument(count, type=int, required=True)
  parser.add_argument('--proben-rows', type=int, default=None,
                      help='detections in the ProbEn loop (default: all B)')
  parser.add_argument('--cases', default=','.join(CASES))
  parser.add_argument('--no-float64-reference', dest='float64_reference', action='store_false',
                      help='skip the untimed float64 call of each original (the reference)')
  args = parser.parse_args()

  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(args.threads)
  stubbed = original_code.install(_STUBBED_PACKAGES)
  args.outputs.mkdir(parents=True, exist_ok=True)
  results, errors = {}, {}
  for name in args.cases.split(','):
    try:
      with torch.no_grad():
        results[name] = _run_case(name, torch, args)
    except Exception:  # pylint: disable=broad-except
      errors[name] = traceback.format_exc()
  print(json.dumps({'torch': torch.__version__, 'numpy': np.__version__,
                    'python': platform.python_version(), 'threads': torch.get_num_threads(),
                    'cpus': len(os.sched_getaffinity(0)), 'stubbed': stubbed,
                    'results': results, 'errors': errors}))


if __name__ == '__main__':
  main()
