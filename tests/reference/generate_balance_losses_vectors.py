"""Generate reference vectors for PMR, CML and MMCosine from the original PyTorch code.

The vectors feed the parity tests of `lqmm.losses.prototype`, `lqmm.losses.calibration` and
`lqmm.losses.cosine`. Everything runs in float64 on CPU, on inputs drawn from a seeded numpy
generator. The upstream code is imported (or, where it sits inside a training loop, its lines
are extracted verbatim and executed) from three checkouts; it is never copied here.

* PMR (Fan et al., CVPR 2023), https://github.com/fanyunfeng-bit/Modal-Imbalance-PMR,
  `main_Prototype_grad.py`: `EU_dist`, `calculate_prototype` and `train_epoch` are called
  unmodified, on a model shell that returns given features and a one-batch loader.
* CML (Ma et al., ICML 2023), https://github.com/QingyangZhang/CML:
  `cpm/CPM_Nets.py` `CPMNet_Works.rank_loss` is called unmodified (its internal logits are
  captured by wrapping `F.softmax` in that module's namespace); the MIWAE variant lives inside
  the training loop of `miwae/train.py`, so its confidence lines and rank-loss loop are
  extracted verbatim (asserted) and executed.
* MMCosine (Xu et al., ICASSP 2023), https://github.com/GeWu-Lab/MMCosine_ICASSP23,
  `main_CD.py`: `train_epoch` is called unmodified (D = 512 per modality, as hard-coded
  upstream); for a small D the single literal `512` is replaced (asserted count) and the
  function recompiled. The MMCosine logits themselves are obtained by executing the
  extracted `if args.mmcosine:` block.

Stubs and patches are listed in PROVENANCE_balance_losses.md; the stubs come from
`original_code.py` beside this script (shared with the other generators and the benchmark
runners), which the script imports from its own folder.

Usage::

  python generate_balance_losses_vectors.py --pmr-dir Modal-Imbalance-PMR \
      --cml-dir CML --mmcosine-dir MMCosine_ICASSP23 --out data/balance_losses_vectors.npz
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import sys
import textwrap
import types
import warnings

import numpy as np
import torch
import torch.nn as nn

import original_code  # beside this script, so first on sys.path when it runs

SEED = 20250611

UPSTREAM_FILES = {
    'pmr': {'main_Prototype_grad.py':
            'fba4170cf477abd9e7021370303defe36bb4c779c2b4216850060f2d00a337e9'},
    'cml': {'cpm/CPM_Nets.py': '5949fc7765d296f2ef1554fae5d5efe231274431629d3816bcac26571db71a03',
            'cpm/util/classfiy.py':
            '3ee55a92f6083ff6fedfab566aa29ada2e15078fc4d41db766830e65ece369ee',
            'cpm/util/util.py': '78a21b62e21e08c58dae2c751a54fa48a96c68fd0e8b223d9362c6f80b7ae761',
            'cpm/util/CPM.py': '394cb225119185eb4e5c2961e6d439e0abeaef80f5f12815463628d854d111ea',
            'miwae/train.py': '28062366ccfa2439fa762936d8b284f33feaf7fb26bd578af082eee298444e8d'},
    'mmcosine': {'main_CD.py':
                 'ee2643c89302b8ac85547bbd7aee95121fd01a7a0827f9793a7bb656de12e4dc'},
}
COMMITS = {
    'pmr': '3615e48983555089b0e693380087617c3797a641',
    'cml': '9d2496e6f37ad5571d44165da0a35b4e46c8a1e6',
    'mmcosine': '00ba0a9cbd9b866b5017e972a1266d7b664bf86e',
}

# Local packages and third-party modules imported at module level by the upstream scripts but
# unused by the functions exercised (datasets, backbones, tensorboard).
_STUBBED = ('dataset', 'models', 'utils', 'torchvision', 'PIL', 'tensorboard')


# --------------------------------------------------------------------------------------------
# stubs
# --------------------------------------------------------------------------------------------
def install_stubs():
  """Patches 1 (placeholder imports) and 2 (`.cuda()` is the identity)."""
  # first=True: also shadows the checkouts' own `dataset`, `models` and `utils` packages.
  original_code.stub_packages(_STUBBED, only_missing=False, first=True)
  original_code.stub_tensorboard()  # torch.utils.tensorboard raises without tensorboard
  original_code.cuda_to_cpu()


def t64(x, grad=False):
  return torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=grad)


def npy(x):
  return x.detach().cpu().numpy().astype(np.float64)


def extract(source: str, first: str, last: str) -> str:
  """The lines of `source` from the one containing `first` to the one containing `last`."""
  lines = source.splitlines()
  starts = [i for i, line in enumerate(lines) if first in line]
  assert len(starts) >= 1, first
  start = starts[0]
  stop = next(i for i in range(start, len(lines)) if last in lines[i])
  return textwrap.dedent('\n'.join(lines[start:stop + 1]))


# --------------------------------------------------------------------------------------------
# PMR
# --------------------------------------------------------------------------------------------
class _FeatureModel(nn.Module):
  """Returns stored per-sample features; the sample index travels in `spec`."""

  def __init__(self, audio, visual, fc_weight=None, fc_bias=None):
    super().__init__()
    self.audio = audio
    self.visual = visual
    self.fusion_module = nn.Module()
    if fc_weight is not None:
      self.fusion_module.fc_out = nn.Linear(fc_weight.shape[1], fc_weight.shape[0])
      with torch.no_grad():
        self.fusion_module.fc_out.weight.copy_(t64(fc_weight))
        self.fusion_module.fc_out.bias.copy_(t64(fc_bias))
    self.last = None

  def forward(self, spec, image):
    index = spec.reshape(spec.shape[0], -1)[:, 0].long()
    audio = self.audio[index].clone().requires_grad_(True)
    visual = self.visual[index].clone().requires_grad_(True)
    out = None
    if hasattr(self.fusion_module, 'fc_out'):
      out = self.fusion_module.fc_out(torch.cat((audio, visual), dim=1))
    self.last = (audio, visual)
    return audio, visual, out


class _NoOptimizer:

  def zero_grad(self):
    pass

  def step(self):
    pass


def _loader(num_samples, batch_size, labels):
  batches = []
  for start in range(0, num_samples, batch_size):
    index = torch.arange(start, min(start + batch_size, num_samples))
    batches.append((index.double(), torch.zeros(len(index), 1), torch.from_numpy(labels[index.numpy()])))
  return batches


def _dyadic(x):
  """Rounds to multiples of 1/64: exact in float64 and compressible in the npz."""
  return np.round(np.asarray(x) * 64) / 64


def pmr_vectors(module, rng, out):
  num_classes, dim = 6, 16          # dataset 'CREMAD' fixes 6 classes upstream
  args = types.SimpleNamespace(dataset='CREMAD', embed_dim=dim, momentum_coef=0.2)

  # ---- prototypes: one data pass over the first len(loader) // 10 batches, then the EMA.
  for tag, num_samples, batch_size in (('big', 120, 6), ('small', 30, 8)):
    labels = np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, num_samples - num_classes)])
    features = rng.normal(0.0, 1.0, (2, num_samples, dim)) + 3.0 * rng.normal(0.0, 1.0, (2, num_classes, dim))[:, labels]
    features = _dyadic(features)
    model = _FeatureModel(t64(features[0]), t64(features[1]))
    loader = _loader(num_samples, batch_size, labels)
    new_a, new_v = module.calculate_prototype(args, model, loader, 'cpu', 0)
    old = rng.normal(0.0, 1.0, (2, num_classes, dim))
    ema_a, ema_v = module.calculate_prototype(args, model, loader, 'cpu', 1, t64(old[0]), t64(old[1]))
    used = max(len(loader) // 10, 1) * batch_size
    pre = f'pmr_proto_{tag}'
    out[f'{pre}_features'] = features
    out[f'{pre}_labels'] = labels
    out[f'{pre}_rows_used'] = np.array(used)
    out[f'{pre}_epoch0'] = np.stack([npy(new_a), npy(new_v)])
    out[f'{pre}_old'] = old
    out[f'{pre}_ema'] = np.stack([npy(ema_a), npy(ema_v)])
  out['pmr_momentum'] = np.array(args.momentum_coef)

  # An absent class: the original divides by a zero count.
  labels = np.array([0, 1, 2, 3, 4, 0, 1, 2], dtype=np.int64)  # class 5 absent
  features = rng.normal(0.0, 1.0, (2, 8, dim))
  model = _FeatureModel(t64(features[0]), t64(features[1]))
  new_a, _ = module.calculate_prototype(args, model, _loader(8, 8, labels), 'cpu', 0)
  out['pmr_proto_absent_features'] = features
  out['pmr_proto_absent_labels'] = labels
  out['pmr_proto_absent_epoch0_audio'] = npy(new_a)

  # ---- one training step (fusion 'concat'); a single-batch loader makes the returned
  # epoch averages equal the step's values.
  batch = 24
  cases = {
      # name: (epoch, alpha, which modality is noisier)
      'audio_weak': (3, 1.0, 'audio'),
      'visual_weak': (3, 0.5, 'visual'),
      'tie': (3, 1.0, 'tie'),
      'outside': (101, 1.0, 'audio'),   # modulation_ends = 100
  }
  for name, (epoch, alpha, weak) in cases.items():
    labels = np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, batch - num_classes)])
    protos = 2.0 * rng.normal(0.0, 1.0, (2, num_classes, dim))
    noise = {'audio': (2.0, 0.5), 'visual': (0.5, 2.0), 'tie': (1.0, 1.0)}[weak]
    feats = _dyadic(np.stack([protos[m][labels] + noise[m] * rng.normal(0.0, 1.0, (batch, dim))
                              for m in range(2)]))
    if weak == 'tie':
      protos[1] = protos[0]
      feats[1] = feats[0]
    weight = rng.normal(0.0, 0.3, (num_classes, 2 * dim))
    bias = rng.normal(0.0, 0.3, num_classes)
    targs = types.SimpleNamespace(
        dataset='CREMAD', fusion_method='concat', modulation='Proto', modulation_starts=0,
        modulation_ends=100, alpha=alpha, optimizer='Adam', momentum_coef=0.2)
    model = _FeatureModel(t64(feats[0]), t64(feats[1]), weight, bias)
    loader = _loader(batch, batch, labels)
    with contextlib.redirect_stdout(io.StringIO()):
      result = module.train_epoch(targs, epoch, model, 'cpu', loader, _NoOptimizer(), None,
                                  t64(protos[0]), t64(protos[1]))
    (loss, loss_a, loss_v, loss_p_a, loss_p_v, _, _, ratio_a, ratio_a_p, _, _) = result
    audio, visual = model.last
    pre = f'pmr_step_{name}'
    out[f'{pre}_features'] = feats
    out[f'{pre}_labels'] = labels
    out[f'{pre}_prototypes'] = protos
    out[f'{pre}_fc_weight'] = weight
    out[f'{pre}_fc_bias'] = bias
    out[f'{pre}_epoch'] = np.array(epoch)
    out[f'{pre}_alpha'] = np.array(alpha)
    out[f'{pre}_loss'] = np.array(loss)
    out[f'{pre}_loss_fc_unimodal'] = np.array([loss_a, loss_v])
    out[f'{pre}_prototype_ce'] = np.array([loss_p_a, loss_p_v])
    out[f'{pre}_ratio_proto'] = np.array(float(torch.as_tensor(ratio_a_p).detach()))
    out[f'{pre}_ratio_fc'] = np.array(float(torch.as_tensor(ratio_a).detach()))
    out[f'{pre}_grad_features'] = np.stack([npy(audio.grad), npy(visual.grad)])
    out[f'{pre}_grad_fc_weight'] = npy(model.fusion_module.fc_out.weight.grad)
    out[f'{pre}_neg_distance'] = np.stack([
        npy(-module.EU_dist(t64(feats[m]), t64(protos[m]))) for m in range(2)])
  out['pmr_step_modulation_window'] = np.array([0, 100])


# --------------------------------------------------------------------------------------------
# CML
# --------------------------------------------------------------------------------------------
class _CapturingFunctional:
  """`torch.nn.functional` with `softmax` recording its (grad-retaining) input."""

  def __init__(self, functional):
    self._functional = functional
    self.captured = []

  def __getattr__(self, name):
    return getattr(self._functional, name)

  def softmax(self, x, *args, **kwargs):
    x.retain_grad()
    self.captured.append(x)
    return self._functional.softmax(x, *args, **kwargs)


@contextlib.contextmanager
def float32_default():
  """The upstream setting: float32 default dtype (`torch.eye` inside `rank_loss` follows it)."""
  torch.set_default_dtype(torch.float32)
  try:
    yield
  finally:
    torch.set_default_dtype(torch.float64)


def cml_cpm_vectors(cml_dir, rng, out):
  sys.path.insert(0, str(cml_dir / 'cpm'))
  cpm = importlib.import_module('CPM_Nets')
  for inputs in (2, 3):
    num, lsd, num_classes = 40, 8, 4
    labels = np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, num - num_classes)])
    centres = rng.normal(0.0, 1.0, (num_classes, lsd))
    # Later inputs (fewer views) are noisier, so predictions and confidences vary.
    h_list = [t64(centres[labels] + (0.6 + 0.5 * s) * rng.normal(0.0, 1.0, (num, lsd)), grad=True)
              for s in range(inputs)]
    onehot = torch.from_numpy(np.eye(num_classes)[labels])
    gt = torch.from_numpy(labels[:, None] + 1)       # upstream labels start at 1
    model = cpm.CPMNet_Works.__new__(cpm.CPMNet_Works)
    nn.Module.__init__(model)
    model.input_num = inputs
    results = {}
    # '_f64': `rank_loss` keeps float64 (it casts to float32 with `.float()`).
    for suffix, context in (('', float32_default), ('_f64', original_code.float_is_identity)):
      capture = _CapturingFunctional(cpm.F)
      original = cpm.F
      cpm.F = capture
      try:
        with context(), warnings.catch_warnings():
          warnings.simplefilter('ignore')
          dtype = torch.get_default_dtype()
          loss = model.rank_loss(onehot.to(dtype), gt,
                                 [h.detach().to(dtype).requires_grad_(True) for h in h_list])
      finally:
        cpm.F = original
      logits = capture.captured
      assert len(logits) == inputs
      loss.backward()
      results[suffix] = (logits, loss)
    pre = f'cml_cpm_S{inputs}'
    logits, loss = results['_f64']
    assert all(z.dtype == torch.float64 for z in logits)
    out[f'{pre}_logits'] = np.stack([npy(z) for z in logits])
    out[f'{pre}_labels'] = labels
    out[f'{pre}_loss'] = npy(loss)
    out[f'{pre}_grad_logits'] = np.stack([npy(z.grad) for z in logits])
    logits32, loss32 = results['']
    assert all(z.dtype == torch.float32 for z in logits32)
    out[f'{pre}_logits_f32'] = np.stack([npy(z) for z in logits32])
    out[f'{pre}_loss_f32'] = npy(loss32)


MIWAE_CONFIDENCE = ('probability = F.softmax(logits)', 'predict_list.append(predict)')
MIWAE_RANK = ('for num in range(train_input_num-1):',
              'rank_loss += torch.nn.ReLU()(torch.sub(conf1,conf2)*sign1-args.epsilon).sum()')


def cml_miwae_vectors(cml_dir, rng, out):
  source = (cml_dir / 'miwae' / 'train.py').read_text()
  confidence_src = extract(source, *MIWAE_CONFIDENCE)
  rank_src = extract(source, *MIWAE_RANK)
  assert confidence_src.count('\n') == 4 and rank_src.count('\n') == 8, (confidence_src, rank_src)
  confidence_code = compile(confidence_src, '<miwae/train.py confidence lines>', 'exec')
  rank_code = compile(rank_src, '<miwae/train.py rank-loss lines>', 'exec')
  from torch.nn import functional
  for inputs, epsilon in ((3, 0.0), (3, 0.05), (2, 0.0)):
    batch, num_classes = 48, 5
    labels = rng.integers(0, num_classes, batch)
    logits = rng.normal(0.0, 1.0, (inputs, batch, num_classes))
    logits += 2.0 * np.eye(num_classes)[labels][None] * (1.0 - 0.3 * np.arange(inputs))[:, None, None]
    leaves = [t64(z, grad=True) for z in logits]
    namespace = {'F': functional, 'torch': torch, 'confidence_list': [], 'predict_list': [],
                 'target': torch.from_numpy(labels), 'train_input_num': inputs,
                 'args': types.SimpleNamespace(epsilon=epsilon), 'rank_loss': 0}
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      for leaf in leaves:
        namespace['logits'] = leaf
        exec(confidence_code, namespace)  # pylint: disable=exec-used
    exec(rank_code, namespace)  # pylint: disable=exec-used
    loss = namespace['rank_loss']
    loss.backward()
    pre = f'cml_miwae_S{inputs}_eps{epsilon:g}'.replace('.', 'p')
    out[f'{pre}_logits'] = logits
    out[f'{pre}_labels'] = labels
    out[f'{pre}_tolerance'] = np.array(epsilon)
    out[f'{pre}_loss'] = npy(loss)
    out[f'{pre}_grad_logits'] = np.stack([npy(leaf.grad) for leaf in leaves])


# --------------------------------------------------------------------------------------------
# MMCosine
# --------------------------------------------------------------------------------------------
class _Wrapped(nn.Module):
  """DataParallel-like shell: `model.module.fusion_module.fc_out` and `model(spec, image, args)`."""

  def __init__(self, audio, visual, weight, bias):
    super().__init__()
    self.module = _FeatureModel(audio, visual, weight, bias)

  def forward(self, spec, image, args=None):
    return self.module(spec, image)


MMCOSINE_BLOCK = ('if args.mmcosine:', 'out=out_a+out_v')


def mmcosine_vectors(module, source, rng, out):
  block = extract(source, *MMCOSINE_BLOCK)
  assert block.count('512') == 2, block
  for tag, dim, batch, num_classes, scaling in (('D512', 512, 4, 3, 10.0),
                                                ('D7', 7, 16, 5, 10.0),
                                                ('D7_s2p5', 7, 16, 5, 2.5)):
    if dim == 512:
      train_epoch = module.train_epoch
      # Dyadic inputs keep the stored file small (they compress well) and are exact.
      draw = lambda shape, scale: _dyadic(rng.normal(0.0, scale, shape))
    else:
      src = textwrap.dedent(inspect.getsource(module.train_epoch))
      assert src.count('512') == 4, src.count('512')
      namespace = dict(module.train_epoch.__globals__)
      exec(compile(src.replace('512', str(dim)), f'<train_epoch with {dim}>', 'exec'), namespace)  # pylint: disable=exec-used
      train_epoch = namespace['train_epoch']
      draw = lambda shape, scale: rng.normal(0.0, scale, shape)
    labels = np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, batch - num_classes)])
    feats = draw((2, batch, dim), 1.0)
    weight = draw((num_classes, 2 * dim), 0.3)
    bias = draw((num_classes,), 0.3)
    if dim != 512:
      feats[0, 0] = 0.0                 # a zero audio feature: normalised by eps = 1e-12
      feats[1, 1] *= 1e3                # scale must not matter
      weight[num_classes - 1, dim:] = 0.0  # a zero class weight in the visual slice
    args = types.SimpleNamespace(mmcosine=True, scaling=scaling, lam=0.0, use_tensorboard=False)
    model = _Wrapped(t64(feats[0]), t64(feats[1]), weight, bias)
    loader = [(torch.arange(batch).double(), torch.zeros(batch, 1), torch.from_numpy(labels), [''] * batch)]
    with contextlib.redirect_stdout(io.StringIO()):
      loss, loss_a, loss_v = train_epoch(args, 0, model, 'cpu', loader, _NoOptimizer())
    audio, visual = model.module.last
    # The logits: the extracted block, executed on fresh leaves.
    namespace = {'F': module.F, 'torch': torch, 'args': args, 'model': model,
                 'a': t64(feats[0]), 'v': t64(feats[1])}
    exec(compile(block.replace('512', str(dim)), '<main_CD.py mmcosine block>', 'exec'), namespace)  # pylint: disable=exec-used
    pre = f'mmcos_{tag}'
    out[f'{pre}_features'] = feats
    out[f'{pre}_labels'] = labels
    out[f'{pre}_fc_weight'] = weight
    out[f'{pre}_fc_bias'] = bias
    out[f'{pre}_scaling'] = np.array(scaling)
    out[f'{pre}_modality_logits'] = np.stack([npy(namespace['out_a']), npy(namespace['out_v'])])
    out[f'{pre}_logits'] = npy(namespace['out'])
    out[f'{pre}_loss'] = np.array([loss, loss_a, loss_v])
    out[f'{pre}_grad_features'] = np.stack([npy(audio.grad), npy(visual.grad)])
    if dim != 512:  # (size: the D = 512 weight gradient is left out)
      out[f'{pre}_grad_fc_weight'] = npy(model.module.fusion_module.fc_out.weight.grad)
    assert model.module.fusion_module.fc_out.bias.grad is None or not torch.any(
        model.module.fusion_module.fc_out.bias.grad)


# --------------------------------------------------------------------------------------------
def main(argv=None):
  parser = original_code.argument_parser(__doc__, {
      'pmr': 'checkout of Modal-Imbalance-PMR (holds main_Prototype_grad.py)',
      'cml': 'checkout of CML (holds cpm/ and miwae/)',
      'mmcosine': 'checkout of MMCosine_ICASSP23 (holds main_CD.py)'})
  args = parser.parse_args(argv)

  install_stubs()
  torch.set_default_dtype(torch.float64)
  torch.manual_seed(0)
  rng = np.random.default_rng(SEED)
  out = {}

  pmr = original_code.load_file('main_Prototype_grad', args.pmr_dir / 'main_Prototype_grad.py')
  pmr_vectors(pmr, rng, out)
  cml_cpm_vectors(args.cml_dir, rng, out)
  cml_miwae_vectors(args.cml_dir, rng, out)
  mmcosine_path = args.mmcosine_dir / 'main_CD.py'
  mmcosine = original_code.load_file('main_CD', mmcosine_path)
  mmcosine_vectors(mmcosine, mmcosine_path.read_text(), rng, out)

  names, digests = [], []
  for key, root in (('pmr', args.pmr_dir), ('cml', args.cml_dir), ('mmcosine', args.mmcosine_dir)):
    for name, digest in original_code.check_sha256(root, UPSTREAM_FILES[key]).items():
      names.append(f'{key}:{COMMITS[key]}:{name}')
      digests.append(digest)
  out['meta_files'] = np.array(names)
  out['meta_sha256'] = np.array(digests)
  original_code.save_vectors(args.out, out)


if __name__ == '__main__':
  main()
