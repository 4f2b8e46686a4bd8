"""Generate reference vectors from the original PyTorch CEN (channel exchanging) implementation.

CEN = Channel-Exchanging-Network (Wang et al., "Deep Multimodal Fusion by Channel Exchanging",
NeurIPS 2020), https://github.com/yikaiw/CEN. The vectors feed parity tests of lqmm's channel
exchange, its shared-convolution / private-normalisation layers, the BN-scale sparsity penalty
and the learned output ensemble. Everything runs in float64 on CPU, on inputs drawn from a
seeded numpy generator. The upstream code is imported from ``--cen-dir`` (a checkout of the
repository root, the directory that contains ``semantic_segmentation/`` and
``image2image_translation/``) and executed unmodified; it is never copied here.

Upstream objects that are called (see PROVENANCE_cen.md for the commit and sha256):

* ``semantic_segmentation/models/modules.py``: ``Exchange.forward``, ``ModuleParallel``,
  ``BatchNorm2dParallel``.
* ``semantic_segmentation/models/model.py``: ``conv3x3`` (a shared ``Conv2d`` in
  ``ModuleParallel``), ``Bottleneck`` (the block that exchanges after its ``bn2``), and the last
  lines of ``RefineNet.forward`` (classifier, softmax of ``alpha``, detached ensemble), compiled
  from the method's own source.
* ``semantic_segmentation/main.py``: ``L1_penalty``, ``train`` (one full training step), and the
  inline block of ``main()`` that picks the BN scales to penalise (``slim_params``), compiled from
  the function's own source.
* ``image2image_translation/models/modules.py``: ``Exchange.forward`` (the translation copy,
  checked to give the same outputs as the segmentation one; nothing stored from it).

Stubs and patches (all documented in PROVENANCE_cen.md):

1. ``cv2``, ``matplotlib``, ``PIL``, ``six`` and ``torchvision``, imported at module level by
   ``main.py`` / ``utils`` but unused by the functions called, are placeholder modules when they
   are not installed (``original_code.install``).
2. ``torch.Tensor.cuda`` / ``torch.nn.Module.cuda`` are the identity (``L1_penalty(m).cuda()``,
   ``sample[key].cuda()`` in ``train``).
3. ``train`` runs with ``torch.Tensor.float`` as the identity (``original_code.float_is_identity``)
   so its ``.float()`` casts keep float64; its segmenter is a shell whose ``forward`` is the
   original ``RefineNet`` head applied to the given per-modality logits (identity encoder);
   the optimisers are no-ops; its loader yields one batch. ``main.AverageMeter`` is replaced by
   a subclass of the original that records the loss values passed to ``update`` (``train`` keeps
   its meter local).
4. The two inline pieces (the ``slim_params`` choice in ``main()``, the head of
   ``RefineNet.forward``) are cut from the functions' source text between fixed first and last
   lines (asserted to occur once), and executed unchanged.

Usage (``original_code.py``, the helpers shared with the other generators, is imported from
this script's folder)::

    python generate_cen_vectors.py --cen-dir /path/to/CEN --out data/cen_vectors.npz
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import pathlib
import re
import sys
import textwrap
import types

import numpy as np
import torch
from torch import nn

import original_code  # beside this script, so first on sys.path when it runs

SEED = 20260714
BATCH, CHANNELS, HEIGHT, WIDTH = 3, 8, 5, 4

# sha256 of the upstream files imported, at commit 0088d87ab36dc25acf4a13a100071ad859f5af9c
# (a mismatch only warns).
UPSTREAM_FILES = {
    'semantic_segmentation/models/modules.py':
        '466b88cf04dcc9a53705ebd9e71221bdeddaf1934419c4b3c0a0942757fca687',
    'semantic_segmentation/models/model.py':
        '7beee6396d4c080b56a4f329d42552bf27b0b47bac5a9ff74a8371704d5752d1',
    'semantic_segmentation/main.py':
        '0de4aed3f5842da71f4db384fba366a0e22a7d9e0d1fcd04a7680ac456b9bd82',
    'semantic_segmentation/config.py':
        'e2158d97dfc21ffdf833ec9c24081ca35daead9f8cef397a7d057de3c6eb7b81',
    'semantic_segmentation/utils/__init__.py':
        'fa0f8b49e371719bfca53bed7c2c141fc246a6e949c407b4da7bbb9249d295d0',
    'semantic_segmentation/utils/helpers.py':
        '5f197ca16a6957773ea14a4ccc02bb15956dad4923605ae2f3b7f81b38a70811',
    'semantic_segmentation/utils/meter.py':
        '7fa9b0f03cb67190c7089aa63fd6b15f79e6105bda56b3a09e634f0df390a62f',
    'image2image_translation/models/modules.py':
        '0611b3d7bc1376e2f35490d45349ee50128be3efc0d0a88a1814206d036c6ec7',
    'image2image_translation/config.py':
        'ec58b17997355ec9336b821a1f65a4976b0bd77098a8d517acc62a65833ace66',
}

# Imported at module level by main.py / utils, unused by the functions called.
_OPTIONAL_TOPLEVEL = ('cv2', 'matplotlib', 'PIL', 'six', 'torchvision')

# The inline pieces executed from the functions' own source: (first line, last line).
SLIM_BLOCK = ('enc_params, dec_params, slim_params = [], [], []',
              'slim_params.append(param[len(param) // 2:])')
HEAD_BLOCK = ('out = self.clf_conv(x1)', 'return out, alpha_soft')


def t64(array, grad=False):
  """A float64 torch tensor copy of `array`."""
  return torch.tensor(np.asarray(array, dtype=np.float64), requires_grad=grad)


def npy(tensor):
  """A numpy copy of a torch tensor."""
  return tensor.detach().numpy().copy()


def source_block(func, first, last):
  """The lines of `func`'s source from the line `first` to the line `last`, dedented."""
  lines = textwrap.dedent(inspect.getsource(func)).splitlines()
  starts = [i for i, line in enumerate(lines) if line.strip() == first]
  ends = [i for i, line in enumerate(lines) if line.strip() == last]
  assert len(starts) == 1 and len(ends) == 1 and starts[0] < ends[0], (func, starts, ends)
  return textwrap.dedent('\n'.join(lines[starts[0]:ends[0] + 1])) + '\n'


# --------------------------------------------------------------------------------------------
# upstream loading
# --------------------------------------------------------------------------------------------
def load_upstream(cen_dir):
  """Imports the upstream modules; returns a namespace with them."""
  stubbed = original_code.install(_OPTIONAL_TOPLEVEL)  # patch 1
  original_code.cuda_to_cpu()                         # patch 2
  up = types.SimpleNamespace(stubbed=stubbed)
  cen_dir = pathlib.Path(cen_dir).resolve()

  # The translation copy first: its modules.py does `import config as cf`, and the
  # segmentation code has a different top-level `config`.
  i2i = cen_dir / 'image2image_translation'
  sys.modules['config'] = original_code.load_file('config', i2i / 'config.py')
  up.i2i_modules = original_code.load_file('cen_i2i_modules', i2i / 'models' / 'modules.py')
  del sys.modules['config']

  seg = cen_dir / 'semantic_segmentation'
  sys.path.insert(0, str(seg))
  up.config = importlib.import_module('config')
  assert pathlib_of(up.config) == seg / 'config.py', up.config
  up.modules = importlib.import_module('models.modules')
  up.model = importlib.import_module('models.model')
  assert pathlib_of(up.model) == seg / 'models' / 'model.py', up.model
  up.main = original_code.load_file('cen_seg_main', seg / 'main.py')
  return up


def pathlib_of(module):
  """The resolved path of a module's file."""
  return pathlib.Path(module.__file__).resolve()


def refinenet_head(up):
  """`RefineNet.forward`'s last lines as a function `head(self, x1) -> (out, alpha_soft)`."""
  block = source_block(up.model.RefineNet.forward, *HEAD_BLOCK)
  src = 'def refinenet_head(self, x1):\n' + textwrap.indent(block, '    ')
  namespace = dict(up.model.RefineNet.forward.__globals__)
  exec(compile(src, '<RefineNet.forward head>', 'exec'), namespace)  # pylint: disable=exec-used
  return namespace['refinenet_head']


def select_slim_params(up, segmenter):
  """`main()`'s inline choice of `slim_params` (and enc/dec split), run on `segmenter`."""
  block = source_block(up.main.main, *SLIM_BLOCK)
  namespace = dict(up.main.main.__globals__)
  namespace.update(segmenter=segmenter, args=types.SimpleNamespace(print_network=False), re=re)
  exec(compile(block, '<main() slim_params block>', 'exec'), namespace)  # pylint: disable=exec-used
  return namespace['slim_params']


# --------------------------------------------------------------------------------------------
# helpers for the inputs
# --------------------------------------------------------------------------------------------
def set_bn(bn, gamma, beta, mean, var):
  """Writes the affine parameters and running statistics of one `nn.BatchNorm2d`."""
  with torch.no_grad():
    bn.weight.copy_(t64(gamma))
    bn.bias.copy_(t64(beta))
    bn.running_mean.copy_(t64(mean))
    bn.running_var.copy_(t64(var))
    bn.num_batches_tracked.zero_()


def bn_parameters(rng, num_parallel, channels):
  """Random (gamma, beta, running_mean, running_var), each [num_parallel, channels]."""
  gamma = rng.normal(0.0, 1.0, (num_parallel, channels))
  beta = rng.normal(0.0, 0.5, (num_parallel, channels))
  mean = rng.normal(0.0, 0.5, (num_parallel, channels))
  var = rng.uniform(0.3, 2.0, (num_parallel, channels))
  return gamma, beta, mean, var


def exchange_scales(rng):
  """BN scales [2, 8] around the thresholds 2e-2 and 1e-2, with random signs.

  Channel by channel (modality 0 | modality 1): 0: exactly 0.02 | 0.7; 1: 0.9 | exactly 0.02;
  2: 0.015 | 0.005 (both below 2e-2, one below 1e-2); 3: exactly 0.01 | 0.0 (both below 2e-2);
  4: 0.0199 | 1.3; 5: 0.4 | 0.012; 6: 0.6 | 1.1 (none); 7: 0.0 | 0.025. Signs are random
  (a zero may come out as -0.0), except gamma_0[0] = -0.02, gamma_1[1] = +0.02 and
  gamma_0[3] = -0.01, so that |gamma| (not gamma) decides at the boundary.
  """
  magnitude = np.array([[0.02, 0.9, 0.015, 0.01, 0.0199, 0.4, 0.6, 0.0],
                        [0.7, 0.02, 0.005, 0.0, 1.3, 0.012, 1.1, 0.025]])
  sign = rng.choice([-1.0, 1.0], size=magnitude.shape)
  sign[0, 0], sign[1, 1], sign[0, 3] = -1.0, 1.0, -1.0  # -0.02, +0.02, -0.01 at the boundary
  return magnitude * sign


# --------------------------------------------------------------------------------------------
# (a) Exchange, two modalities; (b) three modalities are not supported
# --------------------------------------------------------------------------------------------
def exchange_vectors(up, rng, out):
  x = rng.normal(0.0, 1.0, (2, BATCH, CHANNELS, HEIGHT, WIDTH))
  gamma = exchange_scales(rng)
  cotangent = rng.normal(0.0, 1.0, x.shape)
  out['exchange_x'] = x
  out['exchange_gamma'] = gamma
  out['exchange_cotangent'] = cotangent
  default = up.config.BN_threshold
  assert default == 2e-2 == inspect.signature(up.model.RefineNet).parameters['bn_threshold'].default
  thresholds = (default, 1e-2)
  out['exchange_thresholds'] = np.array(thresholds)
  bns = up.modules.BatchNorm2dParallel(CHANNELS, 2)
  norms = [getattr(bns, f'bn_{i}') for i in range(2)]
  insnorms = [nn.InstanceNorm2d(CHANNELS, affine=True) for _ in range(2)]
  for i in range(2):
    with torch.no_grad():
      norms[i].weight.copy_(t64(gamma[i]))
      insnorms[i].weight.copy_(t64(gamma[i]))
  for k, threshold in enumerate(thresholds):
    inputs = [t64(x[0], grad=True), t64(x[1], grad=True)]
    result = up.modules.Exchange()(inputs, norms, threshold)
    assert len(result) == 2
    loss = sum((r * t64(w)).sum() for r, w in zip(result, cotangent))
    grads = torch.autograd.grad(loss, inputs)
    out[f'exchange_t{k}_out'] = np.stack([npy(r) for r in result])
    out[f'exchange_t{k}_grad'] = np.stack([npy(g) for g in grads])
    out[f'exchange_t{k}_keep'] = np.abs(gamma) >= threshold
    # The translation copy of Exchange (InstanceNorm scales) gives the same outputs.
    same = up.i2i_modules.Exchange()([t64(x[0]), t64(x[1])], insnorms, threshold)
    for a, b in zip(same, result):
      assert torch.equal(a, b.detach())
    # (b) Three modalities: Exchange reads bn[0], bn[1] only and returns two outputs, the
    # third modality is dropped (not a three-way exchange).
    bn3 = up.modules.BatchNorm2dParallel(CHANNELS, 3)
    for i in range(2):
      with torch.no_grad():
        getattr(bn3, f'bn_{i}').weight.copy_(t64(gamma[i]))
    three = up.modules.Exchange()([t64(x[0]), t64(x[1]), t64(x[1] * 7.0)],
                                  [bn3.bn_0, bn3.bn_1, bn3.bn_2], threshold)
    assert len(three) == 2
    for a, b in zip(three, result):
      assert torch.equal(a, b.detach())


def three_modality_bottleneck_fails(up):
  """`Bottleneck` with num_parallel = 3 raises IndexError (Exchange returned two outputs)."""
  block = up.model.Bottleneck(16, 4, 3, 2e-2).eval()
  try:
    block([torch.zeros(1, 16, 2, 2) for _ in range(3)])
  except IndexError as error:
    return str(error)
  raise AssertionError('Bottleneck with three modalities ran')


# --------------------------------------------------------------------------------------------
# (c) shared conv + private BN; the Bottleneck block
# --------------------------------------------------------------------------------------------
def parallel_vectors(up, rng, out):
  in_channels = 6
  x = rng.normal(0.0, 1.0, (2, BATCH, in_channels, HEIGHT, WIDTH))
  weight = rng.normal(0.0, 1.0 / np.sqrt(9 * in_channels), (CHANNELS, in_channels, 3, 3))
  gamma, beta, mean, var = bn_parameters(rng, 2, CHANNELS)
  cotangent = rng.normal(0.0, 1.0, (2, BATCH, CHANNELS, HEIGHT, WIDTH))
  pre = 'parallel'
  out[f'{pre}_x'] = x
  out[f'{pre}_conv_weight'] = weight
  out[f'{pre}_gamma'], out[f'{pre}_beta'] = gamma, beta
  out[f'{pre}_running_mean'], out[f'{pre}_running_var'] = mean, var
  out[f'{pre}_cotangent'] = cotangent
  for mode in ('eval', 'train'):
    conv = up.model.conv3x3(in_channels, CHANNELS)       # ModuleParallel(Conv2d, no bias)
    assert conv.module.bias is None and conv.module.padding == (1, 1)
    bns = up.modules.BatchNorm2dParallel(CHANNELS, 2)
    with torch.no_grad():
      conv.module.weight.copy_(t64(weight))
    norms = [bns.bn_0, bns.bn_1]
    for i in range(2):
      set_bn(norms[i], gamma[i], beta[i], mean[i], var[i])
    conv.train(mode == 'train')
    bns.train(mode == 'train')
    inputs = [t64(x[0], grad=True), t64(x[1], grad=True)]
    result = bns(conv(inputs))
    loss = sum((r * t64(w)).sum() for r, w in zip(result, cotangent))
    leaves = inputs + [conv.module.weight] + [p for bn in norms for p in (bn.weight, bn.bias)]
    grads = torch.autograd.grad(loss, leaves)
    out[f'{pre}_{mode}_out'] = np.stack([npy(r) for r in result])
    out[f'{pre}_{mode}_grad_x'] = np.stack([npy(g) for g in grads[:2]])
    out[f'{pre}_{mode}_grad_conv_weight'] = npy(grads[2])
    out[f'{pre}_{mode}_grad_gamma'] = np.stack([npy(grads[3]), npy(grads[5])])
    out[f'{pre}_{mode}_grad_beta'] = np.stack([npy(grads[4]), npy(grads[6])])
    if mode == 'train':
      out[f'{pre}_train_new_running_mean'] = np.stack([npy(bn.running_mean) for bn in norms])
      out[f'{pre}_train_new_running_var'] = np.stack([npy(bn.running_var) for bn in norms])
      assert norms[0].momentum == 0.1 and norms[0].eps == 1e-5
    else:
      for i in range(2):
        assert np.array_equal(npy(norms[i].running_mean), mean[i])


def bottleneck_vectors(up, rng, out):
  inplanes, planes = 16, 4
  threshold = up.config.BN_threshold
  # [M, B, C, H, W], smaller than the other cases to keep the file small.
  x = rng.normal(0.0, 1.0, (2, 2, inplanes, 4, 3))
  weights = {
      'conv1': rng.normal(0.0, 1.0 / np.sqrt(inplanes), (planes, inplanes, 1, 1)),
      'conv2': rng.normal(0.0, 1.0 / np.sqrt(9 * planes), (planes, planes, 3, 3)),
      'conv3': rng.normal(0.0, 1.0 / np.sqrt(planes), (planes * 4, planes, 1, 1)),
  }
  norms = {name: bn_parameters(rng, 2, channels)
           for name, channels in (('bn1', planes), ('bn2', planes), ('bn3', 4 * planes))}
  # At 2e-2, modality 0 exchanges channel 1 (channel 3 sits exactly at the threshold and is
  # kept); modality 1 exchanges channels 0 and 2.
  gamma2 = np.array([[0.5, -0.01, -0.8, 0.02], [0.0, 1.1, -0.015, 0.7]])
  norms['bn2'] = (gamma2,) + norms['bn2'][1:]
  pre = 'block'
  out[f'{pre}_x'] = x
  out[f'{pre}_threshold'] = np.array(threshold)
  for name, weight in weights.items():
    out[f'{pre}_{name}_weight'] = weight
  for name, (gamma, beta, mean, var) in norms.items():
    out[f'{pre}_{name}_gamma'], out[f'{pre}_{name}_beta'] = gamma, beta
    out[f'{pre}_{name}_running_mean'], out[f'{pre}_{name}_running_var'] = mean, var
  for mode in ('eval', 'train'):
    block = up.model.Bottleneck(inplanes, planes, 2, threshold)
    assert block.downsample is None
    for name, weight in weights.items():
      with torch.no_grad():
        getattr(block, name).module.weight.copy_(t64(weight))
    for name, (gamma, beta, mean, var) in norms.items():
      for i in range(2):
        set_bn(getattr(getattr(block, name), f'bn_{i}'), gamma[i], beta[i], mean[i], var[i])
    block.train(mode == 'train')
    with torch.no_grad():
      result = block([t64(x[0]), t64(x[1])])
    out[f'{pre}_{mode}_out'] = np.stack([npy(r) for r in result])


# --------------------------------------------------------------------------------------------
# (d) the sparsity penalty, the ensemble head, one training step
# --------------------------------------------------------------------------------------------
class _Blocks(nn.Module):
  """Named container of original Bottlenecks (only their parameters' names and values matter)."""

  def __init__(self, up, num_parallel, planes, count):
    super().__init__()
    self.layer1 = nn.Sequential(*[up.model.Bottleneck(4 * planes, planes, num_parallel, 2e-2)
                                  for _ in range(count)])


def slim_vectors(up, rng, out, num_parallel, planes, count=3):
  """The slim_params choice of main() and sum(L1_penalty) on a stack of Bottlenecks."""
  segmenter = _Blocks(up, num_parallel, planes, count)
  gamma = rng.normal(0.0, 0.3, (count, num_parallel, planes))
  gamma[0, 0, 0] = 0.0     # abs'(0) = 0 in torch
  gamma[1, -1, -1] = 0.0
  bn2 = [[getattr(segmenter.layer1[b].bn2, f'bn_{m}') for m in range(num_parallel)]
         for b in range(count)]
  for b in range(count):
    for m in range(num_parallel):
      with torch.no_grad():
        bn2[b][m].weight.copy_(t64(gamma[b, m]))
  slim_params = select_slim_params(up, segmenter)
  assert len(slim_params) == count * num_parallel
  # Which entries each view covers.
  where = {id(bn2[b][m].weight): (b, m) for b in range(count) for m in range(num_parallel)}
  mask = np.zeros(gamma.shape, dtype=bool)
  for view in slim_params:
    b, m = where[id(view._base)]  # pylint: disable=protected-access
    start = view.storage_offset() - view._base.storage_offset()  # pylint: disable=protected-access
    mask[b, m, start:start + view.numel()] = True
  penalty = sum(up.main.L1_penalty(view).cuda() for view in slim_params)
  weights = [bn2[b][m].weight for b in range(count) for m in range(num_parallel)]
  grads = torch.autograd.grad(penalty, weights)
  pre = f'slim_m{num_parallel}'
  out[f'{pre}_gamma'] = gamma
  out[f'{pre}_mask'] = mask
  out[f'{pre}_penalty'] = npy(penalty)
  out[f'{pre}_grad'] = np.stack([npy(g) for g in grads]).reshape(gamma.shape)
  return segmenter, slim_params


class _Head(nn.Module):
  """A segmenter whose forward is the original RefineNet head on the given logits."""

  def __init__(self, up, alpha, blocks):
    super().__init__()
    self.head = refinenet_head(up)
    self.clf_conv = up.modules.ModuleParallel(nn.Identity())
    self.num_parallel = len(alpha)
    self.alpha = nn.Parameter(t64(alpha))
    self.blocks = blocks  # holds the BN scales that slim_params views

  def forward(self, x1):
    return self.head(self, x1)


def head_vectors(up, rng, out, num_classes=5):
  logits = rng.normal(0.0, 2.0, (2, BATCH, num_classes, HEIGHT, WIDTH))
  alpha = np.array([0.3, -0.9])
  cotangent = rng.normal(0.0, 1.0, (BATCH, num_classes, HEIGHT, WIDTH))
  model = _Head(up, alpha, nn.Module())
  inputs = [t64(logits[0], grad=True), t64(logits[1], grad=True)]
  outputs, alpha_soft = model(inputs)
  assert len(outputs) == 3 and outputs[0] is inputs[0]
  loss = (outputs[2] * t64(cotangent)).sum()
  grad_alpha, grad_x0, grad_x1 = torch.autograd.grad(loss, [model.alpha] + inputs,
                                                     allow_unused=True)
  assert grad_x0 is None and grad_x1 is None  # the ensemble sees detached outputs
  pre = 'ensemble'
  out[f'{pre}_logits'] = logits
  out[f'{pre}_alpha'] = alpha
  out[f'{pre}_cotangent'] = cotangent
  out[f'{pre}_alpha_soft'] = npy(alpha_soft)
  out[f'{pre}_out'] = npy(outputs[2])
  out[f'{pre}_grad_alpha'] = npy(grad_alpha)


class _Loader(list):
  """A one-batch loader with the `dataset.set_stage` that `train` calls."""

  def __init__(self, samples):
    super().__init__(samples)
    self.dataset = types.SimpleNamespace(set_stage=lambda stage: None)


class _NoOptimizer:

  def zero_grad(self):
    pass

  def step(self):
    pass


def train_step_vectors(up, rng, out, blocks, slim_params, num_classes=5):
  """One call of the original `train` (one batch), loss and gradients."""
  ignore = 255
  lamda = up.config.LAMDA
  threshold = up.config.BN_threshold
  logits = rng.normal(0.0, 2.0, (2, BATCH, num_classes, HEIGHT, WIDTH))
  target = rng.integers(0, num_classes, (BATCH, HEIGHT, WIDTH))
  target[rng.random(target.shape) < 0.15] = ignore
  target[0, 0, 0] = ignore
  alpha = np.array([0.4, 1.1])
  model = _Head(up, alpha, blocks)
  inputs = {'rgb': t64(logits[0], grad=True), 'depth': t64(logits[1], grad=True)}
  loader = _Loader([{**inputs, 'mask': torch.from_numpy(target)}])
  created, recorded = [], []

  class RecordingMeter(up.main.AverageMeter):

    def __init__(self):
      created.append(self)
      super().__init__()

    def update(self, val, n=1):
      recorded.append((self, val))
      super().update(val, n)

  crit = nn.NLLLoss(ignore_index=ignore)
  original_meter = up.main.AverageMeter
  up.main.AverageMeter = RecordingMeter  # patch 3
  try:
    with original_code.float_is_identity(), contextlib.redirect_stdout(io.StringIO()) as log:
      up.main.train(model, ['rgb', 'depth'], loader, _NoOptimizer(), _NoOptimizer(), 0, crit,
                    True, slim_params, lamda, threshold)
  finally:
    up.main.AverageMeter = original_meter
  assert len(created) == 2, created  # `batch_time = AverageMeter()`, then `losses = ...`
  (loss,) = [value for meter, value in recorded if meter is created[1]]
  bn2 = [bn.weight for block in blocks.layer1 for bn in (block.bn2.bn_0, block.bn2.bn_1)]
  # Independent check of the composition (3 outputs, penalty counted 3 times).
  with torch.no_grad():
    outs, _ = model([inputs['rgb'], inputs['depth']])
    nll = [crit(torch.log_softmax(o, 1), torch.from_numpy(target)) for o in outs]
    penalty = sum(torch.abs(v).sum() for v in slim_params)
    expected = sum(nll) + 3 * lamda * penalty
  assert abs(loss - expected.item()) <= 1e-12 * abs(loss), (loss, expected.item())
  pre = 'train'
  out[f'{pre}_logits'] = logits
  out[f'{pre}_target'] = target.astype(np.int64)
  out[f'{pre}_alpha'] = alpha
  out[f'{pre}_lamda'] = np.array(lamda)
  out[f'{pre}_ignore_index'] = np.array(ignore, dtype=np.int64)
  out[f'{pre}_loss'] = np.array(loss)
  out[f'{pre}_nll'] = np.array([v.item() for v in nll])
  out[f'{pre}_grad_logits'] = np.stack([npy(inputs['rgb'].grad), npy(inputs['depth'].grad)])
  out[f'{pre}_grad_alpha'] = npy(model.alpha.grad)
  out[f'{pre}_grad_gamma'] = np.stack([npy(w.grad) for w in bn2]).reshape(-1, 2, bn2[0].numel())
  return log.getvalue()


# --------------------------------------------------------------------------------------------
def main(argv=None):
  parser = original_code.argument_parser(
      __doc__, {'cen': 'checkout of yikaiw/CEN (contains semantic_segmentation/)'})
  args = parser.parse_args(argv)
  torch.set_default_dtype(torch.float64)
  torch.set_num_threads(1)
  torch.manual_seed(0)  # nothing random is drawn by torch; module init is overwritten
  up = load_upstream(args.cen_dir)
  print(f'stubbed: {up.stubbed}')
  rng = np.random.default_rng(SEED)
  out = {}
  exchange_vectors(up, rng, out)
  message = three_modality_bottleneck_fails(up)
  print(f'Bottleneck with 3 modalities: IndexError({message!r})')
  parallel_vectors(up, rng, out)
  bottleneck_vectors(up, rng, out)
  blocks, slim_params = slim_vectors(up, rng, out, num_parallel=2, planes=8)
  slim_vectors(up, rng, out, num_parallel=3, planes=7)
  head_vectors(up, rng, out)
  log = train_step_vectors(up, rng, out, blocks, slim_params)
  print('train() printed:', log.strip().replace('\n', ' | '))
  digests = original_code.check_sha256(args.cen_dir, UPSTREAM_FILES)
  out['meta_files'] = np.array(list(digests))
  out['meta_sha256'] = np.array(list(digests.values()))
  original_code.save_vectors(args.out, out)


if __name__ == '__main__':
  main()
