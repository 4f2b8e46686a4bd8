"""Reference values from DCP's original PyTorch code (XLearning-SCU/2022-TPAMI-DCP at d7a4b47).

Lin, Gou, Liu, Li, Lv, Peng, "Dual Contrastive Prediction for Incomplete Multi-View
Representation Learning", TPAMI 2022 (and COMPLETER, CVPR 2021, whose loss and networks DCP
reuses). Everything runs in float64 on the CPU, with the original files imported unmodified
from `--dcp-dir` (`loss.py`, `model.py`, `model_multiview.py`, `utils/next_batch.py`); nothing
of them is copied here. What is recorded:

- `loss_*`: `loss.instance_contrastive_Loss(z1, z2, lamb)` and its gradients with respect to
  both inputs, for softmax codes (one case nearly one-hot, so that the EPS clamp acts).
- `ae_*`, `pred_*`: an original `Autoencoder` and `Prediction`, their parameters, a
  training-mode forward (batch statistics) with the running statistics it leaves, then an
  eval-mode forward (running statistics).
- `cv_*`, `cg_*`: `DCPMultiView` on three views, trained one epoch with Adam at lr 0 (so the
  parameters stay as drawn while BatchNorm's running statistics move) by the original
  `train_coreview` ('CV') and `train_completegraph` ('CG'); every training batch the original
  drew and the total loss it computed on it (read by wrapping `next_batch_multiview` and
  `Tensor.backward`), the final parameters and statistics, and the representation its
  evaluation passes to k-means (missing views recovered by the original's prediction rules;
  read by replacing `clustering.get_score`).

Usage (a separate Python 3.11 environment with torch, numpy, scikit-learn):
  python tests/reference/generate_dcp_vectors.py --dcp-dir <2022-TPAMI-DCP checkout> \
      --out tests/reference/data/dcp_vectors.npz
"""

from __future__ import annotations

import sys
import types

import numpy as np

SEED = 20221104
LOSS_CASES = [(16, 8, 10.0, 1.0), (32, 5, 10.0, 2.0), (7, 12, 1.0, 1.0), (12, 6, 10.0, 40.0)]
AE_ARCH = [12, 16, 16, 16, 6]
PRED_ARCH = [6, 8, 10, 8]
MV_DIMS = (12, 9, 7)
MV_LATENT = 6
MV_HIDDEN = [16, 16, 16]
MV_PRED = [8, 10, 8]
MV_SAMPLES = 40
MV_BATCH = 8
PINNED = {'loss.py': None, 'model.py': None, 'model_multiview.py': None,
          'utils/next_batch.py': None}


def _state(module) -> dict:
  return {name: value.detach().numpy().copy() for name, value in module.state_dict().items()
          if not name.endswith('num_batches_tracked')}


def main(argv=None) -> None:
  import original_code  # pylint: disable=import-outside-toplevel

  parser = original_code.argument_parser(__doc__, {
      'dcp': 'checkout of XLearning-SCU/2022-TPAMI-DCP (holds loss.py, model_multiview.py)'})
  args = parser.parse_args(argv)

  import torch  # pylint: disable=import-outside-toplevel

  original_code.cuda_to_cpu()
  torch.set_default_dtype(torch.float64)
  sys.path.insert(0, str(args.dcp_dir))
  # model.py imports utils.classify (supervised only, not in every checkout) and
  # utils.clustering (k-means scoring, replaced below): stand-ins for both.
  original_code.empty_submodules('utils', ('classify', 'clustering'))
  loss_lib = original_code.load_file('loss', args.dcp_dir / 'loss.py')
  model_lib = original_code.load_file('model', args.dcp_dir / 'model.py')
  multiview_lib = original_code.load_file('model_multiview', args.dcp_dir / 'model_multiview.py')
  out = {f'sha256_{name}': np.array(digest) for name, digest in
         original_code.check_sha256(args.dcp_dir, PINNED).items()}
  rng = np.random.default_rng(SEED)

  # ---------------------------------------------------------------- the contrastive loss
  out['loss_num_cases'] = np.array(len(LOSS_CASES))
  for case, (batch, width, lamb, scale) in enumerate(LOSS_CASES):
    logits = [scale * rng.normal(size=(batch, width)) for _ in range(2)]
    z1, z2 = (torch.softmax(torch.tensor(x), dim=1).detach().requires_grad_(True)
              for x in logits)
    loss = loss_lib.instance_contrastive_Loss(z1, z2, lamb)
    loss.backward()
    out.update({f'loss_{case}_z1': z1.detach().numpy(), f'loss_{case}_z2': z2.detach().numpy(),
                f'loss_{case}_lamb': np.array(lamb), f'loss_{case}_value': loss.detach().numpy(),
                f'loss_{case}_grad_z1': z1.grad.numpy(), f'loss_{case}_grad_z2': z2.grad.numpy()})

  # ---------------------------------------------------------------- the networks
  torch.manual_seed(SEED)
  autoencoder = model_lib.Autoencoder(AE_ARCH, 'relu', True)
  predictor = model_lib.Prediction(PRED_ARCH)
  for prefix, module, width in (('ae', autoencoder, AE_ARCH[0]), ('pred', predictor,
                                                                    PRED_ARCH[0])):
    for name, value in _state(module).items():
      out[f'{prefix}_initial/{name}'] = value
    x_train = torch.tensor(rng.normal(size=(10, width)))
    x_eval = torch.tensor(rng.normal(size=(5, width)))
    module.train()
    with torch.no_grad():
      if prefix == 'ae':
        train_out = (module.encoder(x_train),)
        train_out += (module.decoder(train_out[0]),)
        module.eval()
        eval_out = (module.encoder(x_eval),)
        eval_out += (module.decoder(eval_out[0]),)
      else:
        train_out = module(x_train)
        module.eval()
        eval_out = module(x_eval)
    out.update({f'{prefix}_x_train': x_train.numpy(), f'{prefix}_x_eval': x_eval.numpy()})
    for index, value in enumerate(train_out):
      out[f'{prefix}_train_out{index}'] = value.numpy()
    for index, value in enumerate(eval_out):
      out[f'{prefix}_eval_out{index}'] = value.numpy()
    for name, value in _state(module).items():
      out[f'{prefix}_final/{name}'] = value

  # ---------------------------------------------------------------- DCPMultiView, CV and CG
  views = [rng.normal(size=(MV_SAMPLES, d)) for d in MV_DIMS]
  mask = np.ones((MV_SAMPLES, len(MV_DIMS)), np.int64)
  # 26 complete rows, then every pattern with the core view or other views missing.
  patterns = [(0, 1, 1), (1, 0, 1), (1, 1, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0)]
  for row in range(26, MV_SAMPLES):
    mask[row] = patterns[(row - 26) % len(patterns)]
  order = rng.permutation(MV_SAMPLES)
  views, mask = [x[order] for x in views], mask[order]
  out.update({'mv_mask': mask, **{f'mv_x{v}': x for v, x in enumerate(views)}})
  for mode, method in (('cv', 'train_coreview'), ('cg', 'train_completegraph')):
    config = {
        'view': len(MV_DIMS), 'print_num': 1,
        'training': {'epoch': 1, 'batch_size': MV_BATCH, 'alpha': 10.0, 'lambda1': 0.1,
                     'lambda2': 0.1, 'start_dual_prediction': 0, 'lr': 0.0},
        'Autoencoder': {**{f'arch{v + 1}': [d, *MV_HIDDEN, MV_LATENT]
                           for v, d in enumerate(MV_DIMS)},
                        'activations': 'relu', 'batchnorm': True},
        'Prediction': {f'arch{v + 1}': list(MV_PRED) for v in range(len(MV_DIMS))}}
    torch.manual_seed(SEED + 1)
    np.random.seed(SEED + 2)  # sklearn.utils.shuffle's global generator
    model = multiview_lib.DCPMultiView(config)
    for name, value in _state(model).items():
      out[f'{mode}_initial/{name}'] = value
    batches, totals, captured = [], [], {}
    original_batches = multiview_lib.next_batch_multiview

    def recording_batches(data, batch_size, _inner=original_batches):
      for batch, number in _inner(data, batch_size):
        batches.append([x.numpy().copy() for x in batch])
        yield batch, number

    def capture(representation, *unused_args):
      captured['representation'] = np.asarray(representation[0])
      return {}

    original_backward = torch.Tensor.backward

    def recording_backward(self, *a, **k):
      totals.append(self.item())
      return original_backward(self, *a, **k)

    multiview_lib.next_batch_multiview = recording_batches
    multiview_lib.clustering.get_score = capture
    torch.Tensor.backward = recording_backward
    try:
      optimizer = torch.optim.Adam(model.parameters(), lr=0.0)
      metrics = {'acc': [0.0], 'nmi': [0.0], 'ARI': [0.0], 'f-mea': [0.0]}
      logger = types.SimpleNamespace(info=lambda *unused: None)
      getattr(model, method)(config, logger, metrics, [torch.tensor(x) for x in views],
                             [np.zeros(MV_SAMPLES)], torch.tensor(mask), optimizer, 'cpu')
    finally:
      multiview_lib.next_batch_multiview = original_batches
      torch.Tensor.backward = original_backward
    out[f'{mode}_num_batches'] = np.array(len(batches))
    for index, (batch, total) in enumerate(zip(batches, totals)):
      for v, x in enumerate(batch):
        out[f'{mode}_batch{index}_x{v}'] = x
      out[f'{mode}_batch{index}_loss'] = np.array(total)
    for name, value in _state(model).items():
      out[f'{mode}_final/{name}'] = value
    out[f'{mode}_representation'] = captured['representation']
  original_code.save_vectors(args.out, out)


if __name__ == '__main__':
  main()
