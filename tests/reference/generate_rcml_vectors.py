"""Reference vectors for lqmm.fusion.conflictive from RCML's original code (jiajunsi/RCML).

Runs `model.RCML.forward` (with identity evidence collectors, so the given evidence goes
straight into its view-by-view averaging), `loss_function.get_dc_loss` and `get_loss` in the
PyTorch scratch environment. See PROVENANCE_rcml.md.

    /work/torch-venv/bin/python tests/reference/generate_rcml_vectors.py \
        --rcml-dir <RCML checkout> --out tests/reference/data/rcml_vectors.npz
"""

import numpy as np

SEED = 20261207
PINNED = {'model.py': None, 'loss_function.py': None}
#: (views, batch, classes, epoch, annealing_step, gamma).
CASES = [(2, 6, 4, 3, 50, 1.0), (3, 5, 10, 60, 50, 1.0), (6, 8, 10, 10, 50, 0.5)]


def main(argv=None) -> None:
  import original_code  # pylint: disable=import-outside-toplevel

  parser = original_code.argument_parser(__doc__, {'rcml': 'checkout of jiajunsi/RCML'})
  args = parser.parse_args(argv)
  import torch  # pylint: disable=import-outside-toplevel
  from torch import nn  # pylint: disable=import-outside-toplevel

  torch.set_default_dtype(torch.float64)
  model_lib = original_code.load_file('rcml_model', args.rcml_dir / 'model.py')
  loss_lib = original_code.load_file('rcml_loss', args.rcml_dir / 'loss_function.py')
  out = {f'sha256_{name}': np.array(digest) for name, digest in
         original_code.check_sha256(args.rcml_dir, PINNED).items()}
  rng = np.random.default_rng(SEED)
  for case, (views, batch, classes, epoch, annealing, gamma) in enumerate(CASES):
    evidence = rng.gamma(0.8, 3.0, (views, batch, classes))
    labels = rng.integers(0, classes, batch)
    model = model_lib.RCML(views, [[1]] * views, classes)
    model.EvidenceCollectors = nn.ModuleList([nn.Identity() for _ in range(views)])
    inputs = {v: torch.tensor(evidence[v]) for v in range(views)}
    evidences, fused = model(inputs)
    dc = loss_lib.get_dc_loss(evidences, 'cpu')
    # get_loss builds its annealing coefficient in float32 (torch.tensor(..., float32)).
    loss = loss_lib.get_loss(evidences, fused, torch.tensor(labels), epoch, classes, annealing,
                             gamma, 'cpu')
    prefix = f'case{case}_'
    out.update({prefix + 'evidence': evidence, prefix + 'labels': labels,
                prefix + 'epoch': np.array(epoch), prefix + 'annealing': np.array(annealing),
                prefix + 'gamma': np.array(gamma), prefix + 'fused': fused.numpy(),
                prefix + 'dc': dc.numpy(), prefix + 'loss': loss.detach().numpy()})
  out['num_cases'] = np.array(len(CASES))
  original_code.save_vectors(args.out, out)


if __name__ == '__main__':
  main()
