"""Runs the original PyTorch TMC training script (`TMC ICLR/train.py`) on the CPU and times it.

Executed by the PyTorch interpreter (Python 3.11, torch 2.13 CPU), not by lqmm's. The original
moves its model and tensors to CUDA unconditionally; `.cuda()` is made a no-op so that the
unmodified script runs on the CPU. Its data.py passes `feature_range=[0, 1]` (a list) to
scikit-learn's MinMaxScaler, which scikit-learn >= 1.2 rejects; the shim turns it into a tuple.
Prints one JSON line: {"seconds", "accuracy", "seed"}.
"""

import argparse
import contextlib
import io
import json
import os
import pathlib
import random
import re
import runpy
import sys
import time

# The helpers shared with the reference-vector generators (here: the `.cuda()` patch).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'tests' / 'reference'))
import original_code  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--tmc-dir', required=True, help='folder with the original train.py')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--threads', type=int, default=None,
                      help='torch.set_num_threads (default: torch\'s own choice)')
  args = parser.parse_args()

  import numpy  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  original_code.cuda_to_cpu()
  if args.threads is not None:
    torch.set_num_threads(args.threads)
  from sklearn import preprocessing  # pylint: disable=import-outside-toplevel
  original_scaler = preprocessing.MinMaxScaler

  class MinMaxScaler(original_scaler):  # accepts the list the original passes
    def __init__(self, feature_range=(0, 1), **kwargs):
      super().__init__(feature_range=tuple(feature_range), **kwargs)

  preprocessing.MinMaxScaler = MinMaxScaler
  random.seed(args.seed)
  numpy.random.seed(args.seed)
  torch.manual_seed(args.seed)

  os.chdir(args.tmc_dir)
  sys.path.insert(0, os.path.abspath(args.tmc_dir))
  sys.argv = ['train.py']
  output = io.StringIO()
  start = time.perf_counter()
  with contextlib.redirect_stdout(output):
    runpy.run_path('train.py', run_name='__main__')
  seconds = time.perf_counter() - start
  accuracies = re.findall(r'acc: ([0-9.]+)', output.getvalue())
  print(json.dumps({'seconds': seconds, 'accuracy': float(accuracies[-1]), 'seed': args.seed,
                    'torch': torch.__version__, 'threads': torch.get_num_threads()}))


if __name__ == '__main__':
  main()
