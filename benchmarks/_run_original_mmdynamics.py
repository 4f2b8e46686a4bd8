"""Runs the original PyTorch Multimodal Dynamics training (`train_test.py`) on ROSMAP on the CPU.

Executed by the PyTorch interpreter (Python 3.11, torch 2.13 CPU), not by lqmm's. The original
code is TencentAILabHealthcare/mmdynamics; its `train('ROSMAP', modelpath, testonly=False)` is
called unmodified at its ROSMAP defaults (hidden 1000, dropout 0.5, Adam lr 1e-4 with weight
decay 1e-4, StepLR 500 x 0.2, 1,001 full-batch epochs, test every 50 epochs).

Shims, and nothing else:
- `train` moves the model and the labels to CUDA unconditionally; `Tensor.cuda` and
  `Module.cuda` become no-ops.
- `train` picks its ROSMAP settings by testing `'ROSMAP' in data_folder` (case-sensitive) and
  saves its checkpoint under `os.path.join(modelpath, data_folder)`. The runner therefore links
  the data files into `<tmp>/ROSMAP/`, runs from `<tmp>` with the relative folder `ROSMAP`, and
  passes `<tmp>/model` as `modelpath`, so the read-only data folder and the checkout stay
  untouched.

The seed is applied to Python's, NumPy's and torch's generators before `train` runs (the
original sets none). Wall time covers `train` only: data loading and min-max scaling, model
construction, training and the 21 test evaluations. Prints one JSON line with the accuracy,
F1 and AUC printed at the last test (epoch 1000), the best test accuracy over the 21 tests
(for information only; the original selects nothing) and every test accuracy.
"""

import argparse
import contextlib
import io
import json
import os
import pathlib
import random
import re
import sys
import tempfile
import time

# The helpers shared with the reference-vector generators (here: the `.cuda()` patch).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'tests' / 'reference'))
import original_code  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

DATA_FILES = ('1_tr.csv', '1_te.csv', '2_tr.csv', '2_te.csv', '3_tr.csv', '3_te.csv',
              'labels_tr.csv', 'labels_te.csv')


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--mmdyn-dir', required=True, help='folder with the original train_test.py')
  parser.add_argument('--data-dir', required=True, help="folder with MOGONET's ROSMAP csv files")
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--cuda', action='store_true',
                      help="keep the original's .cuda() calls (run on the GPU, as it was written)")
  args = parser.parse_args()

  import numpy  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  if not args.cuda:
    original_code.cuda_to_cpu()

  mmdyn_dir = os.path.abspath(args.mmdyn_dir)
  data_dir = pathlib.Path(args.data_dir).resolve()
  sys.path.insert(0, mmdyn_dir)
  import train_test  # pylint: disable=import-outside-toplevel,import-error

  with tempfile.TemporaryDirectory(prefix='mmdyn_run_') as work:
    (pathlib.Path(work) / 'ROSMAP').mkdir()
    for name in DATA_FILES:
      os.symlink(data_dir / name, pathlib.Path(work) / 'ROSMAP' / name)
    os.chdir(work)
    random.seed(args.seed)
    numpy.random.seed(args.seed)
    torch.manual_seed(args.seed)
    output = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(output):
      train_test.train('ROSMAP', os.path.join(work, 'model'), False)
    if args.cuda:
      torch.cuda.synchronize()
    seconds = time.perf_counter() - start

  text = output.getvalue()
  accuracies = [float(a) for a in re.findall(r'Test ACC: ([0-9.]+)', text)]
  epochs = [int(e) for e in re.findall(r'Test: Epoch (\d+)', text)]
  f1s = re.findall(r'Test F1: ([0-9.]+)', text)
  aucs = re.findall(r'Test AUC: ([0-9.]+)', text)
  print(json.dumps({
      'seconds': seconds, 'accuracy': accuracies[-1], 'f1': float(f1s[-1]),
      'auc': float(aucs[-1]), 'last_epoch': epochs[-1], 'best_accuracy': max(accuracies),
      'accuracy_by_epoch': dict(zip(epochs, accuracies)), 'seed': args.seed,
      'torch': torch.__version__, 'threads': torch.get_num_threads(),
      'device': torch.cuda.get_device_name() if args.cuda else 'cpu'}))


if __name__ == '__main__':
  main()
