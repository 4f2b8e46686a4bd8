"""Generate reference vectors for lqmm's G-Blend, UMT distillation and sample-level valuation.

The vectors feed parity tests of `lqmm.losses.blending`, `lqmm.losses.distillation` and
`lqmm.valuation`. Everything runs in float64 on CPU, on inputs drawn from a seeded numpy generator.
Upstream code is imported from local checkouts and executed unmodified; it is never copied here.

Upstream objects that are called (see PROVENANCE_balance_aux.md for commits and sha256):

* timeseriesAI/tsai ``tsai/callback/gblend.py``: ``GBlend.compute_weights`` (the G-Blend weight
  formula) and ``GBlendLoss.forward`` (the blended loss).
* pliang279/MultiBench ``training_structures/gradient_blend.py``: ``gb_estimate`` (with
  ``train_unimodal`` / ``train_multimodal``) for ``delta = False`` (the default) and ``True``.
* GeWu-Lab/BalanceBenchmark ``balancemm/trainer/UMT_trainer.py``: ``UMTTrainer.training_step``
  (uni-modal teacher feature distillation), and ``balancemm/evaluation/modalitys.py``:
  ``Calculate_Shapley_Sample`` (M-modal Shapley with 0/1 correctness).
* GeWu-Lab/Valuate-and-Enhance-Multimodal-Cooperation ``code/sample_level.py``:
  ``execute_modulation`` (per-sample contributions), ``code/datasets/dataloader.py``:
  ``AV_KS_Dataset_sample_level`` and ``AV_KS_Dataset_modality_level`` (the re-sampled data sets).

Stubs and patches (all documented in PROVENANCE_balance_aux.md):

1. Packages imported at module level but unused by the exercised functions (fastai, lightning,
   torchvision, PIL, h5py, yaml, tensorboard, tqdm, eval_scripts, the repositories' own model
   packages) are served by placeholder modules; ``tqdm`` is the identity on its iterable.
2. ``torch.nn.Module.cuda`` / ``torch.Tensor.cuda`` are the identity.
3. Training is replaced by recorded losses: tsai's ``Learner``/``torch.load`` and MultiBench's
   ``getloss``/``getmloss`` are stubs returning the generated losses at checkpoints N and N + n;
   tsai's ``compute_previous_metrics`` (which evaluates the saved model at checkpoint N) is
   replaced by a function appending the generated start losses. The weight formulas run unchanged.
4. Models are stand-ins returning generated logits/features; data sets read generated file lists
   in a temporary working directory (empty ``.npy`` files), only their ``__init__`` runs.
5. ``execute_modulation`` is called with ``epoch < warmup - 1`` so that it returns before building
   ``AV_KS_Dataset_sample_level(..., loader=...)``, which would raise a TypeError (the dataset takes
   no ``loader`` argument); the data sets are built separately without it.

The placeholder class, the ``.cuda()`` patch and the file loader come from ``original_code.py``
beside this script (shared with the other generators and the benchmark runners), which the script
imports from its own folder.

Usage::

    python generate_balance_aux_vectors.py --ref-dir /tmp/balance_ref \
        --out data/balance_aux_vectors.npz
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import math
import os
import pathlib
import sys
import tempfile
import types

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import original_code  # beside this script, so first on sys.path when it runs

SEED = 20240917
UPSTREAM = {
    'tsai': 'timeseriesAI+tsai/tsai/callback/gblend.py',
    'multibench': 'pliang279+MultiBench/training_structures/gradient_blend.py',
    'umt': 'GeWu-Lab+BalanceBenchmark/balancemm/trainer/UMT_trainer.py',
    'bb_shapley': 'GeWu-Lab+BalanceBenchmark/balancemm/evaluation/modalitys.py',
    'sample_level': 'GeWu-Lab+Valuate-and-Enhance-Multimodal-Cooperation/code/sample_level.py',
    'dataloader': 'GeWu-Lab+Valuate-and-Enhance-Multimodal-Cooperation/code/datasets/dataloader.py',
}

# sha256 of the upstream files as executed (a mismatch only warns).
PINNED_SHA256 = {
    'GeWu-Lab+BalanceBenchmark/balancemm/evaluation/modalitys.py':
        'bc6e1db0d2927340e408b2f7683105159c59fda6368e3e2b54cb61aea2158919',
    'GeWu-Lab+BalanceBenchmark/balancemm/trainer/UMT_trainer.py':
        'deea1804874a05abed98d99f5b14db65ae3e7aac1e8fc386c0bb393e6d0c67ff',
    'GeWu-Lab+Valuate-and-Enhance-Multimodal-Cooperation/code/datasets/dataloader.py':
        '56179365d23ef6c2ae05f82084d1c65f47923c9f985a76f9f0c45b20fa0c8739',
    'GeWu-Lab+Valuate-and-Enhance-Multimodal-Cooperation/code/sample_level.py':
        'cfd7e810e8364c20a3ef322c75e8a2bc08e1b81293adcde99f62f8fba22c19e7',
    'pliang279+MultiBench/training_structures/gradient_blend.py':
        '01072c2f39943ca86c1593fff9d55710b87c2c7ba5b8b7d5129c805d2720c200',
    'timeseriesAI+tsai/tsai/callback/gblend.py':
        '2bdfa7b18f68b9fdae7f9cc86ebe4a7dc1c40af5937a3e14def97fe199a160c6',
}

# --------------------------------------------------------------------------------------------
# stubs (patches 1 and 2)
# --------------------------------------------------------------------------------------------
def _module(name, **attrs):
  module = types.ModuleType(name)
  module.__path__ = []
  module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
  for key, value in attrs.items():
    setattr(module, key, value)
  module.__all__ = list(attrs)
  sys.modules[name] = module
  return module


def _placeholder_module(name):
  module = _module(name)

  def getattr_(attr):
    if attr.startswith('__'):
      raise AttributeError(attr)
    return original_code.Placeholder()
  module.__getattr__ = getattr_
  return module


def install_common_stubs():
  _module('tqdm', tqdm=lambda iterable=None, *args, **kwargs: iterable)
  names = ('PIL', 'PIL.Image', 'h5py', 'torchvision', 'torchvision.transforms', 'yaml',
           'torch.utils.tensorboard', 'eval_scripts', 'eval_scripts.performance',
           'eval_scripts.complexity', 'eval_scripts.robustness')
  missing = {name.split('.')[0] for name in names
             if name.startswith('torch.') or importlib.util.find_spec(name.split('.')[0]) is None}
  stubbed = [name for name in names if name.split('.')[0] in missing or name.startswith('torch.')]
  for name in stubbed:
    _placeholder_module(name)
  original_code.cuda_to_cpu()  # patch 2
  return stubbed


# --------------------------------------------------------------------------------------------
# G-Blend
# --------------------------------------------------------------------------------------------
class _FastaiModule:
  """fastai's ``Module``: no ``super().__init__()`` needed, ``__call__`` runs ``forward``."""

  def __call__(self, *args, **kwargs):
    return self.forward(*args, **kwargs)


def load_tsai(path):
  _module('fastai')
  _module('fastai.callback')
  _module('fastai.callback.all', Callback=object, Learner=None, Recorder=None,
          DataLoaders=None, CrossEntropyLossFlat=lambda: (lambda p, t: F.cross_entropy(p, t)))
  _module('tsai')
  _module('tsai.callback')
  _module('tsai.imports', np=np, torch=torch, os=os, Path=pathlib.Path, array=np.array,
          Union=__import__('typing').Union, Optional=__import__('typing').Optional,
          plt=None, stack=torch.stack)
  _module('tsai.utils', ifnone=lambda a, b: b if a is None else a,
          is_listy=lambda x: isinstance(x, (list, tuple)), tensor=torch.tensor,
          cls_name=lambda x: type(x).__name__)
  _module('tsai.data')
  _module('tsai.data.preprocessing')
  _module('tsai.data.transforms', get_splits=None, get_subset_dl=None, MixedDataLoaders=None,
          MixedDataLoader=None)
  _module('tsai.models')
  _module('tsai.models.layers', Module=_FastaiModule)
  return original_code.load_file('tsai.callback.gblend', path, package='tsai.callback')


def tsai_weights(gblend_module, lt0, lt1, lv0, lv1):
  """Runs ``GBlend.compute_weights`` with the training replaced by recorded losses (patch 3)."""
  heads = len(lt0)
  calls = iter(range(heads))

  class Recorder:
    def __init__(self, **kwargs):
      self.values = None

  class Learner:
    def __init__(self, dls, model, **kwargs):
      self.model = types.SimpleNamespace()
      self.cbs = [None, None]
      self.head = next(calls)
      self.recorder = types.SimpleNamespace(values=[np.array([lt1[self.head], lv1[self.head]])])

    def remove_cbs(self, cb):
      pass

    def add_cb(self, cb):
      pass

    def no_bar(self):
      return contextlib.nullcontext()

    def no_logging(self):
      return contextlib.nullcontext()

    def fit_one_cycle(self, *args, **kwargs):
      pass

  gblend_module.Learner = Learner
  gblend_module.Recorder = Recorder
  callback = gblend_module.GBlend.__new__(gblend_module.GBlend)
  callback.metric_idx = None
  callback.sel_metric = None
  callback.path = pathlib.Path('unused')
  callback.train_epochs = 1
  callback.learn = types.SimpleNamespace(M=heads - 1, new_dls=[None] * heads, loss_func=None,
                                         opt_func=None, metrics=[], LT=[], LV=[])

  def previous(self=callback):
    self.learn.LT.append(list(lt0))
    self.learn.LV.append(list(lv0))
  callback.compute_previous_metrics = previous
  original_load = torch.load
  torch.load = lambda *args, **kwargs: types.SimpleNamespace(m=[None] * heads)
  try:
    weights = callback.compute_weights()
  finally:
    torch.load = original_load
  return np.asarray(weights, dtype=np.float64)


def multibench_weights(module, lt0, lt1, lv0, lv1, delta):
  """Runs MultiBench's ``gb_estimate`` with zero epochs and recorded losses (patch 3)."""
  heads = len(lt0)
  seen = {}

  def lookup(data, key):
    count = seen.get((data, key), 0)
    seen[(data, key)] = count + 1
    table = {('train', 0): lt0, ('train', 1): lt1, ('valid', 0): lv0, ('valid', 1): lv1}
    return torch.tensor(table[(data, count)][key], dtype=torch.float64)

  module.getloss = lambda model, head, data, monum, batch_size: lookup(data, monum)
  module.getmloss = lambda models, head, fuse, data, batch_size: lookup(data, heads - 1)
  module.delta = delta
  encoders = [nn.Linear(1, 1) for _ in range(heads - 1)]
  unimodal_heads = [nn.Linear(1, 1) for _ in range(heads - 1)]
  weights = module.gb_estimate(encoders, nn.Linear(1, 1), nn.Linear(1, 1), unimodal_heads,
                               'train', 0, 8, 'valid', 0.1,
                               optimtype=lambda params, **kwargs: None)
  return np.asarray(weights, dtype=np.float64)


def gblend_cases(rng):
  cases = {}
  for heads in (3, 4):
    lt0 = rng.uniform(0.8, 1.6, heads)
    lv0 = lt0 + rng.uniform(0.0, 0.3, heads)
    lt1 = lt0 - rng.uniform(0.2, 0.7, heads)
    lv1 = lv0 - rng.uniform(-0.15, 0.4, heads)  # some heads lose validation loss, some gain
    cases[f'rand_H{heads}'] = (lt0, lt1, lv0, lv1)
  lt0 = np.array([1.2, 1.0, 0.9])
  cases['nogain_H3'] = (lt0, lt0 - 0.3, lt0 + 0.1, lt0 + 0.2)  # every validation loss rises
  lt0 = np.array([1.0, 1.1, 0.9])
  lv0 = lt0 + 0.1
  cases['tiny_dO_H3'] = (lt0, lt0 - 0.2, lv0, lv0 - 0.2 + np.array([1e-6, 0.05, 3e-5]))
  lt0 = rng.uniform(0.8, 1.6, 3)
  lv0 = lt0 + 0.2
  # negative end-point overfitting for head 1 (MultiBench floors it at 1e-4)
  cases['negO_H3'] = (lt0, lt0 - 0.3, lv0, lt0 - 0.3 + np.array([0.15, -0.05, 0.3]))
  return cases


def blend_loss_cases(rng, gblend_module):
  out = {}
  batch, classes, heads = 16, 5, 3
  logits = rng.normal(size=(heads, batch, classes)) * 2
  labels = rng.integers(0, classes, batch)
  for tag, weights in (('normalised', np.array([0.2, 0.3, 0.5])),
                       ('raw', np.array([0.7, 1.5, 0.4]))):
    preds = [torch.tensor(logits[h], requires_grad=True) for h in range(heads)]
    loss_fn = gblend_module.GBlendLoss(crit=lambda p, t: F.cross_entropy(p, t),
                                       w=torch.tensor(weights))
    loss = loss_fn(preds, torch.tensor(labels))
    grads = torch.autograd.grad(loss, preds)
    out[f'blendloss_{tag}_weights'] = weights
    out[f'blendloss_{tag}_loss'] = loss.detach().numpy()
    out[f'blendloss_{tag}_grad'] = np.stack([g.numpy() for g in grads])
  out['blendloss_logits'] = logits
  out['blendloss_labels'] = labels.astype(np.int64)
  return out


# --------------------------------------------------------------------------------------------
# UMT and KD
# --------------------------------------------------------------------------------------------
def load_umt(path):
  fabric = types.SimpleNamespace(utilities=types.SimpleNamespace(
      types=types.SimpleNamespace(LRScheduler=object)))
  _module('lightning', LightningModule=object, fabric=fabric)
  root = pathlib.Path(path).parents[1]
  _module('balancemm')
  package = _module('balancemm.trainer')
  package.__path__ = [str(root / 'trainer')]

  class BaseTrainer:
    def __init__(self, fabric, **kwargs):
      pass
  _module('balancemm.trainer.base_trainer', BaseTrainer=BaseTrainer)
  _module('balancemm.models', create_model=None)
  _module('balancemm.models.avclassify_model', BaseClassifierModel=object)
  _module('balancemm.evaluation')
  _module('balancemm.evaluation.complex', get_flops=None)
  _module('balancemm.utils')
  _module('balancemm.utils.train_utils', get_checkpoint_files=None, get_newest_path=None)
  _module('models')
  _module('models.avclassify_model', MultiModalParallel=None)
  return original_code.load_file('balancemm.trainer.UMT_trainer', path,
                                 package='balancemm.trainer')


def umt_case(rng, umt_module):
  batch, classes, dims = 12, 6, {'audio': 8, 'visual': 5}
  fused = torch.tensor(rng.normal(size=(batch, classes)), requires_grad=True)
  labels = torch.tensor(rng.integers(0, classes, batch))
  student = {m: torch.tensor(rng.normal(size=(batch, d)), requires_grad=True)
             for m, d in dims.items()}
  teacher = {m: torch.tensor(rng.normal(size=(batch, d)) * 0.5 + 0.3) for m, d in dims.items()}

  class Student:
    device = 'cpu'

    def __call__(self, batch):
      self.encoder_result = {'output': fused, **student}

  class Teacher:
    def __init__(self, modality):
      self.modality = modality

    def __call__(self, batch):
      self.encoder_result = {self.modality: teacher[self.modality]}

  trainer = umt_module.UMTTrainer.__new__(umt_module.UMTTrainer)
  trainer.scaling = 10.0
  trainer.modulation_starts, trainer.modulation_ends, trainer.current_epoch = 0, 80, 3
  trainer.loaded_model = {m: Teacher(m) for m in dims}
  loss = trainer.training_step(Student(), {'label': labels}, 0)
  out = {
      'umt_fused_logits': fused.detach().numpy(), 'umt_labels': labels.numpy().astype(np.int64),
      'umt_scaling': np.float64(trainer.scaling), 'umt_loss': loss.detach().numpy(),
      'umt_grad_fused': fused.grad.numpy(),
  }
  for m in dims:
    out[f'umt_student_{m}'] = student[m].detach().numpy()
    out[f'umt_teacher_{m}'] = teacher[m].numpy()
    out[f'umt_grad_student_{m}'] = student[m].grad.numpy()
  return out


def kd_cases(rng):
  out = {}
  student = rng.normal(size=(10, 7)) * 3
  teacher = rng.normal(size=(10, 7)) * 3
  teacher[0, :] = [60.0, -40.0, 0, 0, 0, 0, 0]  # a near-one-hot teacher (underflowing probs)
  out['kd_student'], out['kd_teacher'] = student, teacher
  for temperature in (1.0, 4.0, 0.5):
    tag = f'T{temperature:g}'.replace('.', 'p')
    s = torch.tensor(student, requires_grad=True)
    t = torch.tensor(teacher)
    loss = F.kl_div(F.log_softmax(s / temperature, dim=1), F.softmax(t / temperature, dim=1),
                    reduction='batchmean') * temperature * temperature
    (grad,) = torch.autograd.grad(loss, [s])
    out[f'kd_{tag}_loss'] = loss.detach().numpy()
    out[f'kd_{tag}_grad'] = grad.numpy()
  return out


# --------------------------------------------------------------------------------------------
# Sample-level valuation
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def dataset_dir(names, labels):
  """Patch 4: a working directory with the file list and empty .npy files the data sets read."""
  previous = os.getcwd()
  with tempfile.TemporaryDirectory() as root:
    os.makedirs(os.path.join(root, 'ks_audio', 'train'))
    with open(os.path.join(root, 'ks_audio', 'train_1fps_path.txt'), 'w') as handle:
      for name, label in zip(names, labels):
        handle.write(f'some/dir/{name} 0 {label}\n')
        open(os.path.join(root, 'ks_audio', 'train', name + '.npy'), 'w').close()
    os.chdir(root)
    try:
      yield root
    finally:
      os.chdir(previous)


def load_valuate(code_dir):
  sys.path.insert(0, str(code_dir))
  _module('models.models', AVClassifier=None)  # the ResNet model is not needed
  _module('models.backbone', resnet18=None)
  _module('datasets')
  dataloader = original_code.load_file('datasets.dataloader',
                                       code_dir / 'datasets' / 'dataloader.py')
  sample_level = original_code.load_file('valuate_sample_level', code_dir / 'sample_level.py')
  return dataloader, sample_level


def valuation_contributions(rng, sample_level, num_samples=64, classes=5):
  labels = rng.integers(0, classes, num_samples)
  logits = rng.normal(size=(3, num_samples, classes))  # [fused, audio-only, visual-only]
  # Force every correctness pattern (fused, audio, visual) in {0,1}^3 to occur.
  for row, pattern in enumerate(np.ndindex(2, 2, 2)):
    for head, correct in enumerate(pattern):
      target = labels[row] if correct else (labels[row] + 1) % classes
      logits[head, row, target] = 5.0
  outputs = {'out': logits[0], 'audio': logits[1], 'visual': logits[2]}

  class Model:
    def eval(self):
      return self

    def __call__(self, spec, image):
      index = image.long()
      return index, index, torch.tensor(outputs['out'][index.numpy()])

    module = types.SimpleNamespace(
        exec_drop=lambda a, v, drop: torch.tensor(
            outputs['visual' if drop == 'audio' else 'audio'][a.numpy()]))

  class Loader:
    dataset = range(num_samples)

    def __iter__(self):
      for start in range(0, num_samples, 16):
        index = torch.arange(start, min(start + 16, num_samples))
        yield index.double(), index.double(), torch.tensor(labels[index.numpy()]), index

  with tempfile.TemporaryDirectory() as log_path:
    args = types.SimpleNamespace(n_classes=classes, log_path=log_path, warmup=100, loader=None)
    cona, conv, loader = sample_level.execute_modulation(args, Model(), 'cpu', Loader(), 'run', 0)
    saved = np.load(os.path.join(log_path, 'run', 'contribution', '0.npy'),
                    allow_pickle=True).item()
  assert loader is None
  contributions = np.array([saved[i] for i in range(num_samples)], dtype=np.float64).T
  return logits, labels, contributions, cona, conv


def sample_level_dataset(dataloader, contributions):
  num = len(contributions)
  names = [f'clip{i:03d}' for i in range(num)]
  with dataset_dir(names, [0] * num):
    dataset = dataloader.AV_KS_Dataset_sample_level(
        mode='train', contribution={i: tuple(c) for i, c in enumerate(contributions)})
  indices = np.array([names.index(name) for name in dataset.data], dtype=np.int64)
  return indices, np.array(dataset.drop, dtype=np.int64)


def modality_level_dataset(dataloader, num, contribution_a, contribution_v, alpha, func, seed):
  names = [f'clip{i:03d}' for i in range(num)]
  np.random.seed(seed)
  with dataset_dir(names, [0] * num):
    dataset = dataloader.AV_KS_Dataset_modality_level(
        mode='train', contribution_a=contribution_a, contribution_v=contribution_v, alpha=alpha,
        func=func)
  drops = np.array(dataset.drop[num:], dtype=np.int64)
  assert drops.size == 0 or np.all(drops == drops[0])
  return len(dataset.data) - num, (int(drops[0]) if drops.size else 0)


def bb_shapley(path, logits, labels):
  """BalanceBenchmark's ``Calculate_Shapley_Sample`` on one batch (0/1 correctness)."""
  module = original_code.load_file('bb_modalitys', path)
  num_modalities = logits.shape[0].bit_length() - 1
  names = [f'm{m}' for m in range(num_modalities)]

  class Model:
    modalitys = names
    device = 'cpu'

    def validation_step(self, batch, batch_idx, limit_modality):
      subset = sum(1 << names.index(name) for name in limit_modality)
      self.pridiction = {'output': torch.tensor(np.argmax(logits[subset], axis=-1))}

  batch = {'label': torch.tensor(labels), 'idx': torch.arange(len(labels))}
  shapley = module.Calculate_Shapley_Sample(None, Model(), [batch], None)
  return np.array([[shapley[name][i] for i in range(len(labels))] for name in names])


def permutation_shapley(values):
  """Independent check: the average marginal contribution over all M! orderings."""
  num_modalities = values.shape[0].bit_length() - 1
  import itertools
  result = np.zeros((num_modalities,) + values.shape[1:])
  for order in itertools.permutations(range(num_modalities)):
    subset = 0
    for modality in order:
      result[modality] += values[subset | (1 << modality)] - values[subset]
      subset |= 1 << modality
  return result / math.factorial(num_modalities)


def main():
  parser = original_code.argument_parser(
      __doc__, {'ref': 'folder holding <owner>+<name>/<path> for every file in UPSTREAM'})
  args = parser.parse_args()
  torch.set_default_dtype(torch.float64)
  rng = np.random.default_rng(SEED)
  print(f'stubbed modules: {install_common_stubs()}')
  out = {}

  # G-Blend weights.
  tsai = load_tsai(args.ref_dir / UPSTREAM['tsai'])
  multibench = original_code.load_file('multibench_gradient_blend',
                                       args.ref_dir / UPSTREAM['multibench'])
  for tag, (lt0, lt1, lv0, lv1) in gblend_cases(rng).items():
    out[f'gblend_{tag}_train_start'], out[f'gblend_{tag}_train_end'] = lt0, lt1
    out[f'gblend_{tag}_val_start'], out[f'gblend_{tag}_val_end'] = lv0, lv1
    out[f'gblend_{tag}_w_tsai'] = tsai_weights(tsai, lt0, lt1, lv0, lv1)
    with np.errstate(all='ignore'):
      out[f'gblend_{tag}_w_multibench'] = multibench_weights(multibench, lt0, lt1, lv0, lv1, False)
      out[f'gblend_{tag}_w_multibench_delta'] = multibench_weights(multibench, lt0, lt1, lv0, lv1,
                                                                   True)
  out.update(blend_loss_cases(rng, tsai))

  # UMT feature distillation and KD.
  out.update(umt_case(rng, load_umt(args.ref_dir / UPSTREAM['umt'])))
  out.update(kd_cases(rng))

  # Sample-level valuation (M = 2, the original) and re-sampling.
  code_dir = args.ref_dir / pathlib.Path(UPSTREAM['sample_level']).parent
  dataloader, sample_level = load_valuate(code_dir)
  logits, labels, contributions, cona, conv = valuation_contributions(rng, sample_level)
  out['val2_logits'], out['val2_labels'] = logits, labels.astype(np.int64)
  out['val2_contributions'] = contributions
  out['val2_mean'] = np.array([cona, conv])
  indices, drops = sample_level_dataset(dataloader, contributions.T)
  out['val2_resample_indices'], out['val2_resample_drop'] = indices, drops
  grid = np.array([[-0.6, -0.1, -0.05, 0.0, 0.39, 0.4, 0.45, 0.99, 1.0, 1.5, 0.4 + 1e-9,
                    -0.1 - 1e-9],
                   [1.0, 0.4, -0.1, 0.45, 1.5, -0.6, 0.0, 1.2, 0.7, -0.1, 0.5, 0.3]])
  out['grid_contributions'] = grid
  out['grid_resample_indices'], out['grid_resample_drop'] = sample_level_dataset(dataloader, grid.T)
  modality_cases = []
  for contribution_a, contribution_v, alpha, func in (
      (0.9, 0.2, 1.0, 'linear'), (0.1, 0.75, 1.0, 'linear'), (0.5, 0.5, 1.0, 'linear'),
      (1.2, -0.3, 0.5, 'linear'), (0.8, 0.3, 2.0, 'tanh'), (0.2, 0.9, 1.0, 'square'),
      (0.65, 0.35, 1.5, 'square'), (0.3, 0.6, 1.0, 'tanh')):
    count, drop = modality_level_dataset(dataloader, 50, contribution_a, contribution_v, alpha,
                                         func, seed=len(modality_cases))
    modality_cases.append((contribution_a, contribution_v, alpha, count, drop))
    out.setdefault('modlevel_func', []).append(func)
  out['modlevel_cases'] = np.array([case[:3] for case in modality_cases])
  out['modlevel_count'] = np.array([case[3] for case in modality_cases], dtype=np.int64)
  out['modlevel_drop'] = np.array([case[4] for case in modality_cases], dtype=np.int64)
  out['modlevel_func'] = np.array(out['modlevel_func'])
  out['modlevel_num_samples'] = np.int64(50)

  # M = 3: BalanceBenchmark's M-modal port (0/1 correctness) and an independent permutation check.
  classes, num = 4, 40
  labels3 = rng.integers(0, classes, num)
  logits3 = rng.normal(size=(8, num, classes))
  logits3[7] += 1.5 * np.eye(classes)[labels3]  # the full set is right more often
  out['val3_logits'], out['val3_labels'] = logits3, labels3.astype(np.int64)
  out['val3_shapley_bb'] = bb_shapley(args.ref_dir / UPSTREAM['bb_shapley'], logits3, labels3)
  for num_modalities in (2, 3, 4):
    values = rng.normal(size=(2**num_modalities, 6))
    out[f'perm{num_modalities}_values'] = values
    out[f'perm{num_modalities}_shapley'] = permutation_shapley(values)

  digests = original_code.check_sha256(
      args.ref_dir, {name: PINNED_SHA256[name] for name in sorted(UPSTREAM.values())})
  out['meta_files'] = np.array(list(digests))
  out['meta_sha256'] = np.array(list(digests.values()))
  original_code.save_vectors(args.out, out)


if __name__ == '__main__':
  main()
