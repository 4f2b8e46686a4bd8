"""Trains with the original OGM-GE `train_epoch` on AV digits; run by benchmarks/ogm_speed.py.

Executed by the PyTorch interpreter (Python 3.11, torch 2.13 CPU), not by lqmm's, as a fresh
process. It imports `main.py` of GeWu-Lab/OGM-GE_CVPR2022 from `--ogm-dir` (nothing of it is
copied into lqmm) and calls its `train_epoch` unchanged, epoch after epoch, with the original's
optimizer (SGD, lr 1e-3, momentum 0.9, weight decay 1e-4, StepLR(70, 0.1)) and OGM-GE settings
(concat fusion, alpha 0.8, modulation epochs 0-50).

The model is a stand-in for the original's ResNet-18 pair with lqmm's `BalanceNet` conv
architecture, so both sides train the same network: per modality two 3x3 conv + ReLU + 2x2
max-pool layers (8 and 16 channels) and a linear layer to 64 ReLU features; the original's
`ConcatFusion(128, 10)` head. It is wrapped in `nn.DataParallel` (device_ids empty on a CPU,
which calls the module directly) so that parameter names carry the `module.` prefix the
original's `name.split('.')[1]` test expects. The DataLoader shuffles with batch 64 and, as in
the original, keeps the last partial batch; it runs in-process (num_workers=0).

Stubs: packages that `main.py` and its dataset modules import at module level but that play no
part in `train_epoch` (cv2, librosa, PIL, torchvision, tensorboard...) are replaced by empty
placeholder modules when they are not installed (`original_code.install`, from
`tests/reference/original_code.py`).

Prints one JSON line: {"epoch_s": [...], "loss": [...], "torch", "threads", "num_steps"}.
"""

import argparse
import json
import pathlib
import sys
import time
import types

import numpy as np

# The helpers shared with the reference-vector generators (here: the placeholder modules).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'tests' / 'reference'))
import original_code  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

_STUBBED = ('cv2', 'librosa', 'PIL', 'torchvision', 'tensorboard', 'pandas', 'tqdm')


def _conv_encoder(torch, height, width):
  nn = torch.nn
  return nn.Sequential(
      nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
      nn.Linear((height // 4) * (width // 4) * 16, 64), nn.ReLU())


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--ogm-dir', required=True)
  parser.add_argument('--data', required=True, help='npz with audio, image, label (train split)')
  parser.add_argument('--epochs', type=int, default=3)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()

  original_code.install(_STUBBED)
  import torch  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, str(pathlib.Path(args.ogm_dir).resolve()))
  import main as upstream  # pylint: disable=g-import-not-at-top
  from models.fusion_modules import ConcatFusion  # pylint: disable=g-import-not-at-top

  torch.manual_seed(args.seed)
  arrays = np.load(args.data)
  audio = torch.from_numpy(arrays['audio'])
  image = torch.from_numpy(arrays['image'])
  label = torch.from_numpy(arrays['label'].astype(np.int64))

  class StandIn(torch.nn.Module):
    """The original AVClassifier's interface around the benchmark's conv architecture."""

    def __init__(self):
      super().__init__()
      self.audio_net = _conv_encoder(torch, audio.shape[1], audio.shape[2])
      self.visual_net = _conv_encoder(torch, image.shape[1], image.shape[2])
      self.fusion_module = ConcatFusion(input_dim=128, output_dim=10)

    def forward(self, spec, visual):
      return self.fusion_module(self.audio_net(spec), self.visual_net(visual.unsqueeze(1)))

  model = torch.nn.DataParallel(StandIn())
  optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
  scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 70, 0.1)
  loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(audio, image, label),
                                       batch_size=64, shuffle=True, num_workers=0)
  settings = types.SimpleNamespace(modulation='OGM_GE', fusion_method='concat', alpha=0.8,
                                   modulation_starts=0, modulation_ends=50,
                                   use_tensorboard=False)
  times, losses = [], []
  for epoch in range(args.epochs):
    start = time.perf_counter()
    loss, _, _ = upstream.train_epoch(settings, epoch, model, torch.device('cpu'), loader,
                                      optimizer, scheduler)
    times.append(time.perf_counter() - start)
    losses.append(float(loss))
  print(json.dumps({'epoch_s': times, 'loss': losses, 'torch': torch.__version__,
                    'threads': torch.get_num_threads(), 'num_steps': len(loader)}))


if __name__ == '__main__':
  main()
