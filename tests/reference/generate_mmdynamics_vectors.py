"""Generate reference vectors from the original PyTorch Multimodal Dynamics model.

Han et al., "Multimodal Dynamics: Dynamical Fusion for Trustworthy Multimodal
Classification", CVPR 2022; code at https://github.com/TencentAILabHealthcare/mmdynamics.
The class ``MMDynamic`` is imported unmodified from the original ``model.py`` found in
``--mmdyn-dir``; nothing of it is copied here.  Everything runs in float64 on the CPU.

The original model has no ``.cuda()`` call of its own (only its training script has), but
``Tensor.cuda`` / ``Module.cuda`` are still made no-ops so that nothing can leave the CPU.

Per-view intermediate values (gate pre-activations, encoder outputs, TCP logits and
confidences) are read with forward hooks on the original sub-modules; the individual loss
terms are recomputed from them with the same torch calls as the original and checked to sum
to the original's total loss.

torch is imported inside ``main`` only, so that ``pytest --doctest-modules`` can import this
file in an environment without torch. So is ``original_code`` (the helpers shared with the other
generators and the benchmark runners), which the script imports from its own folder.

Usage::

    python tests/reference/generate_mmdynamics_vectors.py --mmdyn-dir /path/to/mmdynamics \
        --out tests/reference/data/mmdynamics_vectors.npz

See PROVENANCE_mmdynamics.md for the keys.
"""

from __future__ import annotations


import numpy as np

SEED = 20240611
BATCH = 16
NUM_CLASS = 2
# The full ROSMAP sizes (3 x 200 inputs, hidden 1000) give ~740k parameters, i.e. ~12 MB for
# float64 parameters plus gradients.  The default keeps the structure at smaller, distinct
# widths (distinct so that a view mix-up shows); pass --in-dims 200 200 200 --hidden 1000 for
# the real sizes.
IN_DIMS = (64, 48, 32)
HIDDEN = 100
# The original ROSMAP optimiser settings (train_test.py): Adam, lr 1e-4, weight decay 1e-4.
ADAM_LR = 1e-4
ADAM_WEIGHT_DECAY = 1e-4
ADAM_STEPS = 3


def main(argv=None) -> None:
  # Beside this script, so first on sys.path when it runs.
  import original_code  # pylint: disable=import-outside-toplevel

  parser = original_code.argument_parser(__doc__, {
      'mmdyn': 'checkout of TencentAILabHealthcare/mmdynamics (holds model.py)'})
  parser.add_argument('--in-dims', type=int, nargs=3, default=list(IN_DIMS))
  parser.add_argument('--hidden', type=int, default=HIDDEN)
  args = parser.parse_args(argv)

  import torch  # pylint: disable=import-outside-toplevel
  import torch.nn.functional as F  # pylint: disable=import-outside-toplevel

  original_code.cuda_to_cpu()
  torch.set_default_dtype(torch.float64)
  original = original_code.load_file('mmdyn_model', args.mmdyn_dir / 'model.py')

  in_dims = list(args.in_dims)
  views = len(in_dims)
  torch.manual_seed(SEED)
  # dropout=0: the per-view F.dropout becomes the identity in training mode (the classifier
  # has no Dropout module for a one-entry hidden_dim list).
  model = original.MMDynamic(in_dims, [args.hidden], NUM_CLASS, dropout=0.0)
  initial_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

  rng = np.random.default_rng(SEED)
  # Min-max scaled inputs lie in [0, 1] on the training split, as the original's loader gives.
  xs_np = [rng.uniform(0.0, 1.0, size=(BATCH, d)) for d in in_dims]
  labels_np = rng.integers(0, NUM_CLASS, size=BATCH).astype(np.int64)
  labels_np[:NUM_CLASS] = np.arange(NUM_CLASS)  # every class present
  xs = [torch.tensor(x) for x in xs_np]
  labels = torch.tensor(labels_np)

  captured = {}

  def hook(name):
    def fn(unused_module, unused_inputs, output):
      captured[name] = output
    return fn

  handles = []
  for v in range(views):
    handles.append(model.FeatureInforEncoder[v].register_forward_hook(hook(f'gate_pre_v{v}')))
    handles.append(model.FeatureEncoder[v].register_forward_hook(hook(f'enc_pre_v{v}')))
    handles.append(model.TCPClassifierLayer[v].register_forward_hook(hook(f'tcp_logits_v{v}')))
    handles.append(model.TCPConfidenceLayer[v].register_forward_hook(hook(f'tcp_conf_v{v}')))

  out: dict[str, np.ndarray] = {}
  for name, value in initial_state.items():
    out[f'param/{name}'] = value.numpy().copy()
  for v in range(views):
    out[f'input/x{v}'] = xs_np[v]
  out['input/labels'] = labels_np

  # Training-mode forward and backward.
  model.train()
  model.zero_grad()
  loss, logits = model(xs, labels)
  loss.backward()
  out['train/loss'] = np.float64(loss.item())
  out['train/logits'] = logits.detach().numpy()
  for name, p in model.named_parameters():
    out[f'grad/{name}'] = p.grad.detach().numpy().copy()

  # Loss terms, recomputed from the hooked values with the original's own torch calls.
  criterion = torch.nn.CrossEntropyLoss(reduction='none')
  with torch.no_grad():
    total = torch.mean(criterion(logits, labels))
    out['train/loss_mm_ce'] = np.float64(total.item())
    for v in range(views):
      gate = torch.sigmoid(captured[f'gate_pre_v{v}'])
      hidden = F.relu(captured[f'enc_pre_v{v}'])
      tcp_logits = captured[f'tcp_logits_v{v}']
      conf = captured[f'tcp_conf_v{v}'].view(-1)
      p_true = torch.gather(F.softmax(tcp_logits, dim=1), 1, labels.unsqueeze(1)).view(-1)
      gate_term = torch.mean(gate)
      mse_term = F.mse_loss(conf, p_true)
      ce_term = torch.mean(criterion(tcp_logits, labels))
      total = total + gate_term + mse_term + ce_term
      out[f'train/gate_v{v}'] = gate.numpy()
      out[f'train/hidden_v{v}'] = hidden.numpy()
      out[f'train/tcp_logits_v{v}'] = tcp_logits.numpy()
      out[f'train/tcp_conf_v{v}'] = conf.numpy()
      out[f'train/p_true_v{v}'] = p_true.numpy()
      out[f'train/loss_gate_v{v}'] = np.float64(gate_term.item())
      out[f'train/loss_conf_mse_v{v}'] = np.float64(mse_term.item())
      out[f'train/loss_tcp_ce_v{v}'] = np.float64(ce_term.item())
      # The classifier input is the concatenation of hidden * confidence over the views.
      out[f'train/weighted_hidden_v{v}'] = (hidden * captured[f'tcp_conf_v{v}']).numpy()
  gap = abs(total.item() - loss.item())
  assert gap <= 1e-12 * max(1.0, abs(loss.item())), f'loss terms do not add up: {gap}'
  for h in handles:
    h.remove()

  # Inference path: eval mode, forward(infer=True) through the original's infer().
  model.eval()
  with torch.no_grad():
    out['infer/logits'] = model.infer(xs).numpy()

  # A few full-batch steps of the original optimiser (coupled L2 weight decay), same batch.
  model.train()
  optimizer = torch.optim.Adam(model.parameters(), lr=ADAM_LR, weight_decay=ADAM_WEIGHT_DECAY)
  step_losses = []
  for _ in range(ADAM_STEPS):
    optimizer.zero_grad()
    step_loss, _ = model(xs, labels)
    step_losses.append(step_loss.item())
    step_loss.backward()
    optimizer.step()
  out['adam/loss'] = np.array(step_losses)
  for name, value in model.state_dict().items():
    out[f'adam/param/{name}'] = value.detach().numpy().copy()

  original_code.save_vectors(args.out, out)
  print(f'loss {loss.item():.17g}; terms check |sum - loss| = {gap:.3g}')


if __name__ == '__main__':
  main()
