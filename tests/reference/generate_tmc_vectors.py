"""Generate reference test vectors from the original PyTorch TMC implementation.

The vectors are used by parity tests of the JAX reimplementation.  They are
produced by running the *unmodified* ``model.py`` from the ``TMC ICLR/``
directory of https://github.com/hanmenghan/TMC (Han et al., "Trusted
Multi-View Classification", ICLR 2021) in float64 on CPU.

The only runtime patch is ``torch.Tensor.cuda = lambda self, *a, **k: self``,
because the original ``KL`` helper unconditionally calls ``.cuda()``.

Contents of the output ``.npz`` (all float64 unless stated):

* ``ds_M{M}_K{K}_alpha``  [M, B, K]  per-view Dirichlet parameters (evidence + 1)
* ``ds_M{M}_K{K}_fused``  [B, K]     ``TMC.DS_Combin`` output
* ``ds_grad_M3_K10_{alpha,w,grad}``  gradient of ``(fused * w).sum()`` w.r.t.
  every view's alpha (``grad`` has shape [M, B, K])
* ``{ce,mse}_K{K}_step{s}_{alpha,labels,loss,grad,annealing_coef,
  global_step,annealing_step}``  per-sample losses from ``ce_loss`` /
  ``mse_loss`` ([B,1] squeezed to [B]) and the gradient of ``loss.sum()``
  w.r.t. alpha.

Usage (``original_code.py``, the file loader shared with the other generators
and the benchmark runners, is imported from this script's folder)::

    python generate_tmc_vectors.py --tmc-dir "/path/to/TMC/TMC ICLR" \
        --out data/tmc_vectors.npz
"""

from __future__ import annotations


import numpy as np
import torch

import original_code  # beside this script, so first on sys.path when it runs

SEED = 20240611
DS_MS = (2, 3, 6)
DS_KS = (2, 10)
DS_B = 64
LOSS_KS = (2, 10)
LOSS_B = 32
STEP_PAIRS = ((0, 50), (10, 50), (50, 50), (120, 50))


def ds_evidence(rng: np.random.Generator, m: int, b: int, k: int) -> np.ndarray:
    """Evidence [m, b, k] spanning 0 .. 1e4, mixing several regimes per row.

    Row regimes (chosen independently per view and sample):
      0: all zeros (alpha == 1, maximal uncertainty)
      1: log-uniform in [1e-4, 1e4] with ~30% exact zeros
      2: tiny values in [0, 1e-3]
      3: one dominant class at 1e4, the rest log-uniform small or zero
         (produces strongly conflicting views)
      4: uniform in [0, 50]
    """
    e = np.zeros((m, b, k))
    regime = rng.integers(0, 5, size=(m, b))
    # Guarantee that every regime occurs for every view.
    regime[:, :5] = np.arange(5)
    for v in range(m):
        for i in range(b):
            r = regime[v, i]
            if r == 0:
                row = np.zeros(k)
            elif r == 1:
                row = 10.0 ** rng.uniform(-4.0, 4.0, size=k)
                row[rng.random(k) < 0.3] = 0.0
            elif r == 2:
                row = rng.uniform(0.0, 1e-3, size=k)
            elif r == 3:
                row = 10.0 ** rng.uniform(-4.0, 0.0, size=k)
                row[rng.random(k) < 0.3] = 0.0
                row[rng.integers(k)] = 1e4
            else:
                row = rng.uniform(0.0, 50.0, size=k)
            e[v, i] = row
    return e


def loss_evidence(rng: np.random.Generator, b: int, k: int) -> np.ndarray:
    """Evidence [b, k] in [0, ~50] with ~20% exact zeros and one all-zero row."""
    e = rng.uniform(0.0, 50.0, size=(b, k))
    e[rng.random((b, k)) < 0.2] = 0.0
    e[0] = 0.0
    return e


def ds_fuse(tmc, alpha: np.ndarray, k: int, requires_grad: bool = False):
    m = alpha.shape[0]
    model = tmc.TMC(classes=k, views=m, classifier_dims=[[1]] * m)
    views = {v: torch.tensor(alpha[v], requires_grad=requires_grad) for v in range(m)}
    return views, model.DS_Combin(views)


def main(argv=None) -> None:
    parser = original_code.argument_parser(
        __doc__, {"tmc": "checkout of the 'TMC ICLR/' directory containing model.py"})
    args = parser.parse_args(argv)

    torch.Tensor.cuda = lambda self, *a, **k: self  # original KL calls .cuda()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)  # only affects unused nn.Linear initialisation
    tmc = original_code.load_file("tmc_model", args.tmc_dir / "model.py")
    rng = np.random.default_rng(SEED)
    out: dict[str, np.ndarray] = {}

    # (a) Dempster-Shafer fusion.
    for m in DS_MS:
        for k in DS_KS:
            alpha = ds_evidence(rng, m, DS_B, k) + 1.0
            with torch.no_grad():
                _, fused = ds_fuse(tmc, alpha, k)
            out[f"ds_M{m}_K{k}_alpha"] = alpha
            out[f"ds_M{m}_K{k}_fused"] = fused.numpy()

    # (b) Evidential losses.
    for name, fn in (("ce", tmc.ce_loss), ("mse", tmc.mse_loss)):
        for k in LOSS_KS:
            for step, anneal in STEP_PAIRS:
                alpha_np = loss_evidence(rng, LOSS_B, k) + 1.0
                labels = rng.integers(0, k, size=LOSS_B).astype(np.int64)
                alpha = torch.tensor(alpha_np, requires_grad=True)
                loss = fn(torch.tensor(labels), alpha, k, step, anneal)
                loss.sum().backward()
                p = f"{name}_K{k}_step{step}"
                out[f"{p}_alpha"] = alpha_np
                out[f"{p}_labels"] = labels
                out[f"{p}_loss"] = loss.detach().numpy().squeeze(1)
                out[f"{p}_grad"] = alpha.grad.numpy()
                # Same expression as the original code.
                out[f"{p}_annealing_coef"] = np.float64(min(1, step / anneal))
                out[f"{p}_global_step"] = np.int64(step)
                out[f"{p}_annealing_step"] = np.int64(anneal)

    # (c) Gradient through DS fusion.
    m, k = 3, 10
    alpha = ds_evidence(rng, m, DS_B, k) + 1.0
    w = rng.standard_normal((DS_B, k))
    views, fused = ds_fuse(tmc, alpha, k, requires_grad=True)
    (fused * torch.tensor(w)).sum().backward()
    out["ds_grad_M3_K10_alpha"] = alpha
    out["ds_grad_M3_K10_w"] = w
    out["ds_grad_M3_K10_grad"] = np.stack([views[v].grad.numpy() for v in range(m)])

    original_code.save_vectors(args.out, out)


if __name__ == "__main__":
    main()
