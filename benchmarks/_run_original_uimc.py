"""Runs the original PyTorch UIMC protocol (`UIMC/main_hand.py`) on given masks and splits, on CPU.

Executed by the PyTorch interpreter (Python 3.11, torch CPU, numpy, scipy, scikit-learn), not by
lqmm's. The original code is Xie et al., "Exploring and Exploiting Uncertainty for Incomplete
Multi-View Classification" (CVPR 2023), xiexiaoxie41/UIMC at commit
2d89795a7cb5f6d88508546a0cc22ed40fe932b8, folder `UIMC/`. For every (eta, seed) of a masks file
the runner replays the `__main__` flow of `main_hand.py` on Handwritten (`data/handwritten0.mat`):
`process_data` (StandardScaler per view), `select_k_neighbors.get_samples` (n_sample 30, k 10:
class-conditional Gaussian draws for the missing training views, k-neighbour Gaussian draws for
the missing test views, both re-standardized), the `UGC` model (classifier dims 240, 76, 216, 47,
64, 6; 10 classes; annealing 50), Adam (lr 1e-3, weight decay 1e-5), batch 100 with
`shuffle=True`, `EarlyStopping(patience=30)` on minus the mean training loss, then
`nn.DataParallel(model)`, `load_state_dict(torch.load('checkpoint_hand.pt'), False)` and
`test()`: each test sample's n_sample copies form one batch, and the sample counts as correct
when the majority vote of their fused predictions is its label.

The original modules are imported from `--uimc-dir` and their functions and classes are called
(`AverageMeter` and `DataLoader` through `main_hand`, which imports without running anything);
only the `__main__` loops (`train`, `test`, the epoch loop) are re-written here, statement for
statement in behaviour (the per-epoch prints go to stderr, `--quiet` drops them).

Deviations from `main_hand.py`, and nothing else:
1. The presence mask `Sn` is the file's mask as float32 (instead of `get_sn`) and the partition
   is the file's train/test indices (instead of `build_ad_dataset(Y, p=0.8, seed=999)`). X and Y
   come from the original `util.read_mymat` called with missing rate 0, whose all-ones `get_sn`
   mask is discarded (a cheap, deterministic draw; no random mask is wasted).
2. CPU instead of CUDA: `torch.Tensor.cuda` and `torch.nn.Module.cuda` are made the identity
   (this covers the model, the batches and `torch.ones((1, c)).cuda()` in `model.KL`).
   `nn.DataParallel` without a GPU just calls the wrapped module.
3. `torch.manual_seed(torch_seed + seed)` right before the model is built (the original seeds
   nothing); it fixes the initial weights and the DataLoader's shuffling. The Gaussian draws of
   `get_samples` use `np.random.default_rng()` without a seed, in the original and here, so two
   runs of the same (eta, seed) differ slightly.
4. Each (eta, seed) runs in a fresh temporary working directory (EarlyStopping writes
   `checkpoint_hand.pt` to the working directory, and `test-hand.txt` is appended there), and
   the DataLoaders use `num_workers=0` instead of 1 (no worker process per loader; batches are
   the same, built in the main process).
5. Prints: everything the original prints per run goes to stderr (or nowhere with `--quiet`);
   stdout gets the final summary only.
Compatibility shims that change no computation: `torchvision` and `pandas` (imported, unused by
`util.py`) and `matplotlib` (imported, unused by `model.py`) are stubbed when not installed, and
`numpy.Inf` (removed in NumPy 2, read by `EarlyStopping.__init__`) is set to `numpy.inf`.

The DataParallel load is a no-op: `EarlyStopping` saves the bare `UGC`'s state dict (keys
`Net.0.fc.0.weight`, ...), the wrapper expects `module.Net.0.fc.0.weight`, ..., and
`strict=False` turns the total mismatch into a silent return (every key missing, every key
unexpected). The test therefore uses the weights of the LAST epoch, not the best checkpoint. The
runner keeps that behaviour and records, per run, the numbers of missing and unexpected keys,
whether the load changed any parameter, and whether the checkpoint differs from the final weights
(i.e. whether a working load would have mattered).

Timing per run: `prep_seconds` covers `process_data`, `get_samples` and the DataLoaders;
`train_seconds` runs from there to the end of `test()` (seeding, model construction, training,
checkpoint writes, the DataParallel load and the test); `test_seconds` and `epoch_seconds` are
parts of it. The `*_cpu_seconds` are `time.process_time()` differences (all threads). The thread
variables OMP/OPENBLAS/MKL_NUM_THREADS default to `--threads` (before numpy is imported) so that
numpy's BLAS in `get_samples` uses the same number of threads as torch.

Masks file (`.npz`): `etas` float [E], `seeds` int [S], `mask` bool [E, S, 2000, 6] (True =
present; views pix, fou, fac, zer, kar, mor, the order of the .mat's X), `train_index` int
[S, 1600] and `test_index` int [S, 400] (rows of handwritten0.mat).

Usage:
  /work/torch-venv/bin/python benchmarks/_run_original_uimc.py \
      --masks /tmp/uimc_masks.npz --out /tmp/uimc_original.json --epochs 3 --threads 1
"""

import argparse
import collections
import contextlib
import hashlib
import json
import os
import pathlib
import sys
import tempfile
import time
import warnings

# The helpers shared with the reference-vector generators (the `.cuda()` patch, the stubs).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'tests' / 'reference'))
import original_code  # pylint: disable=g-import-not-at-top,wrong-import-position

REPOSITORY = 'xiexiaoxie41/UIMC'
COMMIT = '2d89795a7cb5f6d88508546a0cc22ed40fe932b8'
ORIGINAL_FILES = ('main_hand.py', 'model.py', 'util.py', 'select_k_neighbors.py', 'get_sn.py',
                  'EarlyStopping_hand.py')
DATA_FILE = 'data/handwritten0.mat'
# main_hand.py's argparse defaults and hard-coded settings.
BATCH_SIZE = 100
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-5
ANNEALING_EPOCHS = 50
PATIENCE = 30
NUM_DRAWS = 30  # --n-sample
NUM_NEIGHBORS = 10  # --k
NUM_CLASSES = 10
NUM_VIEWS = 6
CLASSIFIER_DIMS = [[240], [76], [216], [47], [64], [6]]


def parse_arguments():
  """The command line."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--uimc-dir', type=pathlib.Path, default=pathlib.Path(
      '/work/originals/UIMC/UIMC'), help='folder with the original main_hand.py')
  parser.add_argument('--masks', type=pathlib.Path, required=True, help='masks and splits .npz')
  parser.add_argument('--epochs', type=int, default=3, help="main_hand.py's default: 3")
  parser.add_argument('--threads', type=int, default=1, help='torch.set_num_threads')
  parser.add_argument('--out', type=pathlib.Path, required=True, help='results .json')
  parser.add_argument('--etas', type=float, nargs='+', help='run only these etas')
  parser.add_argument('--seeds', type=int, nargs='+', help='run only these seeds')
  parser.add_argument('--torch-seed', type=int, default=0,
                      help='torch.manual_seed(torch_seed + seed) before each model')
  parser.add_argument('--quiet', action='store_true', help="drop the original's prints")
  return parser.parse_args()


def file_sha256(path) -> str:
  """The hex sha256 of the file `path`."""
  return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def import_originals(uimc_dir):
  """Imports the original `main_hand` (and through it model, util, ...) on the CPU.

  Args:
    uimc_dir: the checkout's `UIMC/` folder.

  Returns:
    The module `main_hand` (its `__main__` block does not run).
  """
  import numpy  # pylint: disable=import-outside-toplevel
  original_code.install(('torchvision', 'pandas', 'matplotlib'))
  original_code.cuda_to_cpu()
  if not hasattr(numpy, 'Inf'):
    numpy.Inf = numpy.inf  # read by EarlyStopping.__init__; removed in NumPy 2
  sys.path.insert(0, str(pathlib.Path(uimc_dir).resolve()))
  import main_hand  # pylint: disable=import-outside-toplevel,import-error
  return main_hand


def load_masks(path, etas, seeds):
  """Reads the masks file and picks the requested (eta, seed) pairs.

  Args:
    path: the `.npz` file.
    etas: the etas to keep, or None for all.
    seeds: the seeds to keep, or None for all.

  Returns:
    (arrays, pairs): the file's arrays and a list of (eta index, seed index).
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  with np.load(path) as data:
    arrays = {name: data[name] for name in ('etas', 'seeds', 'mask', 'train_index',
                                            'test_index')}
  num_etas, num_seeds = len(arrays['etas']), len(arrays['seeds'])
  expected = (num_etas, num_seeds, 2000, NUM_VIEWS)
  if arrays['mask'].shape != expected:
    raise ValueError(f'mask has shape {arrays["mask"].shape}, expected {expected}')
  if not arrays['mask'].any(axis=-1).all():
    raise ValueError('every row must keep at least one view (get_samples needs one)')
  for name, size in (('train_index', 1600), ('test_index', 400)):
    if arrays[name].shape != (num_seeds, size):
      raise ValueError(f'{name} has shape {arrays[name].shape}, expected {(num_seeds, size)}')
  for seed_index in range(num_seeds):
    rows = np.concatenate([arrays['train_index'][seed_index], arrays['test_index'][seed_index]])
    if not np.array_equal(np.sort(rows), np.arange(2000)):
      raise ValueError(f'seed index {seed_index}: train and test must partition the 2000 rows')
  eta_indices = [index for index, eta in enumerate(arrays['etas'])
                 if etas is None or any(np.isclose(eta, wanted) for wanted in etas)]
  seed_indices = [index for index, seed in enumerate(arrays['seeds'])
                  if seeds is None or int(seed) in seeds]
  pairs = [(eta_index, seed_index) for eta_index in eta_indices for seed_index in seed_indices]
  if not pairs:
    raise ValueError('no (eta, seed) left after --etas / --seeds')
  return arrays, pairs


def train_epoch(main_hand, model, optimizer, train_loader, epoch):
  """`train(epoch)` of main_hand.py: one pass over the shuffled expanded training set.

  The loop keeps the original's variable names, statement for statement.

  Args:
    main_hand: the imported original module (for `AverageMeter`).
    model: the `UGC` model.
    optimizer: its Adam optimizer.
    train_loader: the shuffled DataLoader of (views, Sn, label) batches.
    epoch: the 1-based epoch, the annealing step of the loss.

  Returns:
    The mean of the batch losses (`loss_meter.avg`).
  """
  import torch  # pylint: disable=import-outside-toplevel
  variable = torch.autograd.Variable
  model.train()
  loss_meter = main_hand.AverageMeter()
  for batch_idx, (data, sn, target) in enumerate(train_loader):
    for v_num in range(len(data)):
      data[v_num] = variable(data[v_num].float().cuda())
    target = variable(target.long().cuda())
    sn = variable(sn.long().cuda())
    optimizer.zero_grad()
    _, _, loss = model(data, target, epoch, batch_idx, sn)
    loss.backward()
    optimizer.step()
    loss_meter.update(loss.item())
  print(f'Train Epoch: {epoch} [{batch_idx * len(data[0])}/{len(train_loader.dataset)} '
        f'({100. * batch_idx / len(train_loader):.0f}%)]\tLoss: {loss_meter.avg:.6f}')
  return loss_meter.avg


def test(model, epoch, dataloader, num_draws):
  """`test(epoch, dataloader)` of main_hand.py: majority vote over each sample's draws.

  The loop keeps the original's variable names, statement for statement; like the original, it
  passes the batch itself as the (unused) `sn` argument of the test forward.

  Args:
    model: the model (here the `nn.DataParallel` wrapper, as in the original).
    epoch: the last training epoch (unused by the test forward).
    dataloader: the unshuffled DataLoader whose batches are one test sample's `num_draws` copies.
    num_draws: n_sample, the batch size of `dataloader`.

  Returns:
    (accuracy, number of test samples).
  """
  import torch  # pylint: disable=import-outside-toplevel
  variable = torch.autograd.Variable
  model.eval()
  data_num, correct_num = 0, 0
  for batch_idx, (data, target) in enumerate(dataloader):
    for v_num in range(len(data)):
      data[v_num] = variable(data[v_num].float().cuda())
    target = variable(target.long().cuda())
    data_num += target.size(0)
    with torch.no_grad():
      _, evidences = model(data, target, epoch, batch_idx, data, 1)
      _, predicted = torch.max(evidences.data, 1)
      list_ = predicted.detach().cpu().numpy().tolist()
      most_ = collections.Counter(list_).most_common(1)[0][0]
      if most_ == target[0]:
        correct_num += 1
  data_num = int(data_num / num_draws)
  acc = correct_num / data_num
  print('total_num：', data_num)
  print('====> accuracy：', acc)
  return acc, data_num


def run_one(main_hand, x_raw, y, sn, train_index, test_index, epochs, torch_seed, eta):
  """One (eta, seed): main_hand.py's `__main__` from `process_data` to the result file.

  Args:
    main_hand: the imported original module.
    x_raw: the views as `read_mymat` returns them, [2000, d_v] float64 each.
    y: labels [2000, 1] int32.
    sn: the presence mask [2000, 6] float32.
    train_index: the 1600 training rows.
    test_index: the 400 test rows.
    epochs: `--epochs`.
    torch_seed: the value for `torch.manual_seed`.
    eta: the missing rate, written to `test-hand.txt` where the original writes its own.

  Returns:
    A dict with the accuracy, timings and sizes.
  """
  import torch  # pylint: disable=import-outside-toplevel
  data_loader = main_hand.DataLoader

  wall_start, cpu_start = time.perf_counter(), time.process_time()
  x = main_hand.process_data(x_raw, NUM_VIEWS)
  x_train, y_train, x_test, y_test, sn_train = main_hand.get_samples(
      x=x, y=y, sn=sn, train_index=train_index, test_index=test_index, n_sample=NUM_DRAWS,
      k=NUM_NEIGHBORS)
  train_loader = data_loader(dataset=main_hand.partial_mv_dataset(x_train, sn_train, y_train),
                             batch_size=BATCH_SIZE, shuffle=True, num_workers=0,
                             collate_fn=main_hand.partial_mv_tabular_collate)
  test_loader = data_loader(dataset=main_hand.mv_dataset(x_test, y_test), batch_size=NUM_DRAWS,
                            shuffle=False, num_workers=0, collate_fn=main_hand.mv_tabular_collate)
  prep_wall, prep_cpu = time.perf_counter(), time.process_time()

  torch.manual_seed(torch_seed)
  model = main_hand.UGC(NUM_CLASSES, NUM_VIEWS, CLASSIFIER_DIMS, ANNEALING_EPOCHS)
  optimizer = main_hand.optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
  model.cuda()
  early_stopping = main_hand.EarlyStopping(patience=PATIENCE, verbose=True)
  losses, epoch_seconds, stopped_early = [], [], False
  for epoch in range(1, epochs + 1):
    epoch_start = time.perf_counter()
    loss = train_epoch(main_hand, model, optimizer, train_loader, epoch)
    epoch_seconds.append(time.perf_counter() - epoch_start)
    losses.append(loss)
    early_stopping(loss * (-1), model)
    if early_stopping.early_stop:
      print('Early stopping')
      stopped_early = True
      break
  final_state = {name: value.clone() for name, value in model.state_dict().items()}
  model = torch.nn.DataParallel(model)
  checkpoint = torch.load('checkpoint_hand.pt')
  keys = model.load_state_dict(checkpoint, False)  # the original drops this return value
  load_changed = any(not torch.equal(value, final_state[name])
                     for name, value in model.module.state_dict().items())
  checkpoint_differs = any(not torch.equal(checkpoint[name], final_state[name])
                           for name in final_state if name in checkpoint)
  test_start = time.perf_counter()
  acc, num_test = test(model, epoch, test_loader, NUM_DRAWS)
  end_wall, end_cpu = time.perf_counter(), time.process_time()

  with open('./test-hand.txt', 'a', encoding='utf-8') as file:
    file.write('\tmissing_rate:' + str(eta) + '\taccuracy:' + str(acc) + '\n')
  return {
      'accuracy': acc,
      'num_test_samples': num_test,
      'train_seconds': end_wall - prep_wall,
      'train_cpu_seconds': end_cpu - prep_cpu,
      'prep_seconds': prep_wall - wall_start,
      'prep_cpu_seconds': prep_cpu - cpu_start,
      'test_seconds': end_wall - test_start,
      'epoch_seconds': epoch_seconds,
      'epochs_run': len(losses),
      'stopped_early': stopped_early,
      'train_losses': losses,
      'steps_per_epoch': len(train_loader),
      'train_rows': len(train_loader.dataset),
      'test_rows': len(test_loader.dataset),
      'incomplete_train_samples': int((sn[train_index].sum(axis=1) < NUM_VIEWS).sum()),
      'incomplete_test_samples': int((sn[test_index].sum(axis=1) < NUM_VIEWS).sum()),
      'load_missing_keys': len(keys.missing_keys),
      'load_unexpected_keys': len(keys.unexpected_keys),
      'load_changed_parameters': load_changed,
      'checkpoint_differs_from_final': checkpoint_differs,
  }


def summarize(runs) -> str:
  """A table of mean accuracy and mean times per eta."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  lines = [(f'{"eta":>6} {"runs":>4} {"acc mean":>9} {"acc std":>8} {"steps/ep":>8} '
            f'{"prep s":>8} {"train s":>8}')]
  for eta in sorted({run['eta'] for run in runs}):
    group = [run for run in runs if run['eta'] == eta]
    accuracies = np.array([run['accuracy'] for run in group])
    lines.append(
        f'{eta:6.3f} {len(group):4d} {accuracies.mean():9.4f} {accuracies.std():8.4f} '
        f'{np.mean([run["steps_per_epoch"] for run in group]):8.1f} '
        f'{np.mean([run["prep_seconds"] for run in group]):8.1f} '
        f'{np.mean([run["train_seconds"] for run in group]):8.1f}')
  return '\n'.join(lines)


def main():
  args = parse_arguments()
  with open(os.devnull, 'w', encoding='utf-8') as devnull:
    benchmark(args, devnull if args.quiet else sys.stderr)


def benchmark(args, log):
  """Runs every selected (eta, seed), writes `args.out` after each, prints the summary.

  Args:
    args: the parsed command line.
    log: where the original's prints go (stderr, or os.devnull with `--quiet`).
  """
  for name in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(name, str(args.threads))
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(args.threads)
  uimc_dir = args.uimc_dir.resolve()
  main_hand = import_originals(uimc_dir)
  warnings.filterwarnings('ignore')  # as main_hand.py (its import already did this)
  arrays, pairs = load_masks(args.masks, args.etas, args.seeds)

  with contextlib.redirect_stdout(log):
    x_raw, y, _ = main_hand.read_mymat(str(uimc_dir / 'data') + '/', 'handwritten0.mat',
                                       ['X', 'Y'], 0)
  widths = [view.shape[1] for view in x_raw]
  if widths != [dims[0] for dims in CLASSIFIER_DIMS] or y.shape != (2000, 1):
    raise ValueError(f'unexpected data: view widths {widths}, labels {y.shape}')

  result = {
      'source': {
          'repo': REPOSITORY, 'commit': COMMIT, 'folder': 'UIMC',
          'sha256': {name: file_sha256(uimc_dir / name) for name in ORIGINAL_FILES + (DATA_FILE,)},
      },
      'settings': {
          'masks': str(args.masks.resolve()), 'masks_sha256': file_sha256(args.masks),
          'epochs': args.epochs, 'batch_size': BATCH_SIZE, 'lr': LEARNING_RATE,
          'weight_decay': WEIGHT_DECAY, 'annealing_epochs': ANNEALING_EPOCHS,
          'patience': PATIENCE, 'n_sample': NUM_DRAWS, 'k': NUM_NEIGHBORS,
          'classifier_dims': CLASSIFIER_DIMS, 'num_workers': 0, 'device': 'cpu',
          'torch_seed': args.torch_seed,
          'thread_env': {name: os.environ.get(name) for name in (
              'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')},
      },
      'runs': [],
      'torch_version': torch.__version__,
      'threads': torch.get_num_threads(),
  }
  total_wall, total_cpu = time.perf_counter(), time.process_time()
  for eta_index, seed_index in pairs:
    eta = float(arrays['etas'][eta_index])
    seed = int(arrays['seeds'][seed_index])
    sn = arrays['mask'][eta_index, seed_index].astype('float32')  # Sn, as get_sn's float32
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix='uimc_run_') as folder:
      os.chdir(folder)
      try:
        with contextlib.redirect_stdout(log):
          run = run_one(main_hand, x_raw, y, sn, arrays['train_index'][seed_index],
                        arrays['test_index'][seed_index], args.epochs, args.torch_seed + seed,
                        eta)
      finally:
        os.chdir(previous)
    run = {'eta': eta, 'seed': seed, **run}
    result['runs'].append(run)
    result['total_wall_s'] = time.perf_counter() - total_wall
    result['total_cpu_s'] = time.process_time() - total_cpu
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + '\n', encoding='utf-8')
    print(f'eta {eta:.3f} seed {seed}: accuracy {run["accuracy"]:.4f}, prep '
          f'{run["prep_seconds"]:.1f} s, train+test {run["train_seconds"]:.1f} s, '
          f'{run["steps_per_epoch"]} steps/epoch', file=sys.stderr)
  print(summarize(result['runs']))
  print(f'total {result["total_wall_s"]:.1f} s wall, {result["total_cpu_s"]:.1f} s cpu, '
        f'torch {torch.__version__}, {torch.get_num_threads()} thread(s) -> {args.out}')


if __name__ == '__main__':
  main()
