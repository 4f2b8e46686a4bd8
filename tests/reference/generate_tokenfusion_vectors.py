"""Generate reference test vectors from the original PyTorch TokenFusion implementation.

TokenFusion = Wang et al., "Multimodal Token Fusion for Vision Transformers",
CVPR 2022, https://github.com/yikaiw/TokenFusion.  The vectors feed parity tests
of the JAX reimplementation (token exchange, score predictor, score sparsity
regulariser, and one shared-weight TokenFusion block).  Everything is run in
float64 on CPU, on inputs and weights drawn from a seeded numpy generator; the
upstream code is imported from ``--tokenfusion-dir`` (a checkout of the
repository root, the directory that contains ``semantic_segmentation/``) and is
never copied here.

Upstream objects that are called (all in ``semantic_segmentation/``):

* ``models/modules.py``: ``TokenExchange.forward`` (and, through the block,
  ``ModuleParallel`` and ``LayerNormParallel``).
* ``models/mix_transformer.py``: ``PredictorLG.forward`` and ``Block.forward``
  (which runs ``Attention``, ``Mlp`` and ``DWConv``).
* ``main.py``: ``train`` (one step on a stand-in segmenter, to obtain the
  L1 score regulariser exactly as the training loop adds it to the loss).

Stubs and patches (all documented in PROVENANCE_tokenfusion.md):

1. Third-party packages imported at module level but not used by the code
   exercised (timm, mmcv, cv2, tqdm, matplotlib, PIL) are served as empty
   placeholder modules when they are not installed (``original_code.install``).
   With timm stubbed, ``trunc_normal_`` in the ``_init_weights`` methods is a
   no-op; every parameter is overwritten from the generator afterwards.
2. ``.cuda()`` is the identity (``original_code.cuda_to_cpu``).
3. ``main.tqdm`` (a progress bar around the batch iterator) is replaced by the
   identity, and ``main.AverageMeter`` by a subclass that also records its
   instances, so that the loss value the step computed can be read back.
4. ``main.train`` is given a stand-in segmenter that returns fixed score maps
   (and a zero-logit output), a one-batch loader, a no-op optimiser and a
   segmentation criterion that returns 0, so the loss it builds is exactly
   ``lamda * L1``.  Nothing inside ``train`` is changed.
5. One glue line of ``MixVisionTransformer.forward_features`` is re-expressed
   here (not called): the score map made from the predictor's output is
   ``softmax(score.reshape(B, -1, 2), dim=2)[:, :, 0]`` (mix_transformer.py:364).
   The block case takes its score map directly from the generator instead.

Usage (``original_code.py``, the helpers shared with the other generators and
the benchmark runners, is imported from this script's folder)::

    python generate_tokenfusion_vectors.py --tokenfusion-dir /path/to/TokenFusion \
        --out data/tokenfusion_vectors.npz
"""

from __future__ import annotations

import importlib
import pathlib
import sys
import types

import numpy as np
import torch
import torch.nn as nn

import original_code  # beside this script, so first on sys.path when it runs

SEED = 20220625
B, N, C = 3, 10, 8
H, W = 2, 5                        # N = H * W for the block's depth-wise conv
THRESHOLDS = (0.02, 0.5)           # 0.02 is the value hard-coded in Attention.forward
M3 = 3                             # modalities fed to TokenExchange in case (b)
BLOCK_HEADS = 2
BLOCK_MLP_RATIO = 2.0
BLOCK_SR_RATIOS = (1, 2)
PREDICTOR_GAIN = lambda name: 8.0 if name.endswith(".7.weight") else 2.0  # noqa: E731
REG_LAMDAS = (1e-4, 1e-6)          # config.py LAMDA default; README training command
REG_TOKENS = (10, 10, 4)           # tokens per block for the multi-block case

# Upstream files whose code is executed, with their sha256 at the commit used
# (3834ccf7765bb0bd50ea729069ad5adbd6de288d).  A mismatch only warns.
UPSTREAM_FILES = {
    "semantic_segmentation/models/modules.py":
        "dd168694404015b6d82bbf51a44c991506f5e5708ea7f44b6eeadb60e5a5a285",
    "semantic_segmentation/models/mix_transformer.py":
        "97aa735d3dc584c3a2a9370232e9e76f20f11333fd83509d5249c061b1acf24c",
    "semantic_segmentation/main.py":
        "466aa3ab2d250d4d7e888cc7c65ba2332580e5adc23c32e82aaad4fb42851881",
    "semantic_segmentation/config.py":
        "af53f6c496224684be2eabbfab31a98367676d7e4761ad88865faf20a81beab0",
}

# Packages imported at module level by the upstream files but not needed by
# the code exercised here.
_OPTIONAL_TOPLEVEL = ("timm", "mmcv", "cv2", "tqdm", "matplotlib", "PIL")


def t64(a, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def npy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def load_upstream(root: pathlib.Path):
    seg = root / "semantic_segmentation"
    if str(seg) not in sys.path:
        sys.path.insert(0, str(seg))   # for `models`, `utils`, `config` of the checkout
    ns = types.SimpleNamespace()
    ns.modules = importlib.import_module("models.modules")
    ns.mit = importlib.import_module("models.mix_transformer")
    ns.main = original_code.load_file("tokenfusion_main", seg / "main.py")
    return ns


# --------------------------------------------------------------------------
# input generators
# --------------------------------------------------------------------------
def draw_scores(rng, shape) -> np.ndarray:
    """Scores in [0, 1] with every threshold edge case present in each modality.

    Regimes: 0 U(0, 0.02) (below the default threshold); 1 exactly 0.02;
    2 the float64 just below 0.02; 3 exactly 0.5; 4 the float64 just below 0.5;
    5 U(0, 1); 6 U(0.02, 1).  Regimes 0-4 are each forced once per modality
    (tokens 0-4 of batch row 0); the rest is drawn with weights favouring 0, 5, 6.
    """
    probs = np.array([0.25, 0.06, 0.04, 0.06, 0.04, 0.3, 0.25])
    regime = rng.choice(7, size=shape, p=probs)
    regime[:, 0, :5] = np.arange(5)
    s = np.empty(shape)
    for r, value in enumerate((None, 0.02, np.nextafter(0.02, 0.0), 0.5,
                               np.nextafter(0.5, 0.0), None, None)):
        sel = regime == r
        if value is not None:
            s[sel] = value
        elif r == 0:
            s[sel] = rng.uniform(0.0, 0.02, sel.sum())
        elif r == 5:
            s[sel] = rng.uniform(0.0, 1.0, sel.sum())
        else:
            s[sel] = rng.uniform(0.02, 1.0, sel.sum())
    return s


def set_parameters(rng, model: nn.Module, gain=lambda name: 1.0) -> dict:
    """Overwrites every parameter from `rng` (in `named_parameters` order); returns them.

    1-d `*weight` (LayerNorm scale): 1 + 0.2 N(0,1); `*bias`: 0.2 N(0,1);
    other weights (Linear, Conv2d): N(0,1) / sqrt(fan_in), with fan_in the number of
    elements of one output slice, times `gain(name)` (used to spread the predictor's two
    logits apart, so that some scores fall below the threshold).
    """
    params = dict(model.named_parameters())
    out = {}
    with torch.no_grad():
        for name, p in params.items():
            if name.endswith("bias"):
                value = 0.2 * rng.normal(0.0, 1.0, p.shape)
            elif p.dim() == 1:
                value = 1.0 + 0.2 * rng.normal(0.0, 1.0, p.shape)
            else:
                value = gain(name) * rng.normal(0.0, 1.0, p.shape) / np.sqrt(p[0].numel())
            p.copy_(t64(value))
            out[name] = value
    return out


# --------------------------------------------------------------------------
# stand-ins for main.train (patches 3 and 4)
# --------------------------------------------------------------------------
class _Dataset:

    def set_stage(self, stage):
        del stage


class _Loader(list):
    dataset = _Dataset()


class _Segmenter(nn.Module):
    """Returns a zero-logit output and the given score maps, as WeTr.forward would."""

    def __init__(self, masks):
        super().__init__()
        self.masks = masks

    def forward(self, inputs):
        return [torch.zeros(inputs[0].shape[0], 2, 1, 1)], self.masks


class _NoOptimiser:

    def zero_grad(self):
        pass

    def step(self):
        pass


def run_train_step(main, masks, lamda: float) -> float:
    """The loss `main.train` builds for one batch whose segmenter returns `masks`."""
    meters = []

    class _RecordingMeter(importlib.import_module("utils.meter").AverageMeter):

        def __init__(self):
            super().__init__()
            meters.append(self)

    main.AverageMeter = _RecordingMeter                   # patch 3
    main.tqdm = lambda iterable, *args, **kwargs: iterable  # patch 3
    batch = masks[0][0].shape[0]
    sample = {"rgb": torch.zeros(batch, 3, 1, 1), "depth": torch.zeros(batch, 1, 1, 1),
              "mask": torch.zeros(batch, 1, 1, dtype=torch.long)}
    main.train(_Segmenter(masks), ["rgb", "depth"], _Loader([sample]), _NoOptimiser(), 0,
               lambda output, target: output.new_zeros(()), True, lamda)
    assert len(meters) == 2, len(meters)                  # batch_time, losses
    assert meters[1].count == 1
    return meters[1].val


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def main(argv=None) -> None:
    parser = original_code.argument_parser(
        __doc__, {"tokenfusion": "checkout of the TokenFusion repository root"})
    args = parser.parse_args(argv)

    stubbed = original_code.install(_OPTIONAL_TOPLEVEL)  # patch 1
    print(f"stubbed modules: {stubbed}")
    original_code.cuda_to_cpu()                          # patch 2
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    up = load_upstream(args.tokenfusion_dir.resolve())
    assert up.modules.num_parallel == 2
    rng = np.random.default_rng(SEED)
    out: dict[str, np.ndarray] = {}
    exchange = up.modules.TokenExchange()

    # ---------------- (a) token exchange, 2 modalities ----------------
    x = rng.normal(0.0, 1.0, (2, B, N, C))
    s = draw_scores(rng, (2, B, N))
    out["tex_x"], out["tex_scores"] = x, s
    out["tex_thresholds"] = np.array(THRESHOLDS)
    for thr in THRESHOLDS:
        y = exchange([t64(x[0]), t64(x[1])], [t64(s[0]), t64(s[1])], mask_threshold=thr)
        tag = f"{thr:g}".replace(".", "p")
        out[f"tex_thr{tag}_out"] = np.stack([npy(y_) for y_ in y])

    # ---------------- (b) token exchange given 3 modalities ----------------
    x3 = rng.normal(0.0, 1.0, (M3, B, N, C))
    s3 = draw_scores(rng, (M3, B, N))
    y3 = exchange([t64(v) for v in x3], [t64(v) for v in s3], mask_threshold=THRESHOLDS[0])
    assert len(y3) == 2, len(y3)  # the original returns two modalities whatever it is given
    y3_first_two = exchange([t64(x3[0]), t64(x3[1])], [t64(s3[0]), t64(s3[1])],
                            mask_threshold=THRESHOLDS[0])
    for a, b in zip(y3, y3_first_two):
        np.testing.assert_array_equal(npy(a), npy(b))
    out["tex3_x"], out["tex3_scores"] = x3, s3
    out["tex3_thr0p02_out"] = np.stack([npy(y_) for y_ in y3])

    # ---------------- (c) score predictor ----------------
    predictor = up.mit.PredictorLG(embed_dim=C)
    weights = set_parameters(rng, predictor, gain=PREDICTOR_GAIN)
    for name, value in weights.items():
        out[f"pred__{name}"] = value
    xp = rng.normal(0.0, 1.0, (2, B, N, C))
    logp = predictor([t64(xp[0]), t64(xp[1])])
    # glue of forward_features (mix_transformer.py:364), re-expressed (patch 5)
    pmask = [torch.softmax(l.reshape(B, -1, 2), dim=2)[:, :, 0] for l in logp]
    out["pred_x"] = xp
    out["pred_log_probs"] = np.stack([npy(l) for l in logp])
    out["pred_scores"] = np.stack([npy(m) for m in pmask])
    frac = float((out["pred_scores"] < THRESHOLDS[0]).mean())
    print(f"predictor: fraction of scores < {THRESHOLDS[0]}: {frac:.2f}")

    # ---------------- (d) L1 score regulariser (main.train) ----------------
    cases = {"reg_pred": [out["pred_scores"]]}
    multi = []
    for k, n_tokens in enumerate(REG_TOKENS):
        if k == 0:  # signed, with exact zeros: pins abs() and its gradient at 0
            m = rng.normal(0.0, 1.0, (2, B, n_tokens))
            m[rng.uniform(size=m.shape) < 0.2] = 0.0
        else:
            m = rng.uniform(0.0, 1.0, (2, B, n_tokens))
        multi.append(m)
    cases["reg_multi"] = multi
    for pre, blocks in cases.items():
        for k, m in enumerate(blocks):
            out[f"{pre}_block{k}_scores"] = m
        for lamda in REG_LAMDAS:
            masks = [[t64(m[0], grad=True), t64(m[1], grad=True)] for m in blocks]
            loss = run_train_step(up.main, masks, lamda)
            tag = f"{lamda:.0e}".replace("-0", "m").replace("-", "m")
            out[f"{pre}_lamda{tag}_loss"] = np.float64(loss)
            for k, pair in enumerate(masks):
                out[f"{pre}_lamda{tag}_block{k}_grad"] = np.stack([npy(t.grad) for t in pair])
    out["reg_lamdas"] = np.array(REG_LAMDAS)
    out["reg_config_lamda"] = np.float64(up.main.LAMDA)

    # ---------------- (e) one TokenFusion block ----------------
    for sr in BLOCK_SR_RATIOS:
        pre = f"block_sr{sr}"
        block = up.mit.Block(dim=C, num_heads=BLOCK_HEADS, mlp_ratio=BLOCK_MLP_RATIO,
                             qkv_bias=True, sr_ratio=sr)
        block.eval()
        for name, value in set_parameters(rng, block).items():
            out[f"{pre}__{name}"] = value
        xb = rng.normal(0.0, 1.0, (2, B, N, C))
        sb = draw_scores(rng, (2, B, N))
        wb = rng.normal(0.0, 1.0, (2, B, N, C))
        out[f"{pre}_x"], out[f"{pre}_scores"], out[f"{pre}_w"] = xb, sb, wb
        captured = {}
        hook = block.attn.register_forward_hook(
            lambda module, inputs, output: captured.__setitem__("attn", output))
        xs = [t64(xb[0], grad=True), t64(xb[1], grad=True)]
        ms = [t64(sb[0], grad=True), t64(sb[1], grad=True)]
        yb = block(xs, H, W, ms)
        objective = sum((y_ * t64(w_)).sum() for y_, w_ in zip(yb, wb))
        gx = torch.autograd.grad(objective, xs + ms)
        out[f"{pre}_attn_out"] = np.stack([npy(a) for a in captured["attn"]])
        out[f"{pre}_out"] = np.stack([npy(y_) for y_ in yb])
        out[f"{pre}_grad_x"] = np.stack([npy(g) for g in gx[:2]])
        out[f"{pre}_grad_scores"] = np.stack([npy(g) for g in gx[2:]])
        y_plain = block([t64(xb[0]), t64(xb[1])], H, W, None)
        out[f"{pre}_out_nomask"] = np.stack([npy(y_) for y_ in y_plain])
        hook.remove()
    out["block_hw"] = np.array([H, W], dtype=np.int64)
    out["block_num_heads"] = np.int64(BLOCK_HEADS)
    out["block_sr_ratios"] = np.array(BLOCK_SR_RATIOS, dtype=np.int64)

    digests = original_code.check_sha256(
        args.tokenfusion_dir, {name: UPSTREAM_FILES[name] for name in sorted(UPSTREAM_FILES)})
    out["meta_files"] = np.array(list(digests))
    out["meta_sha256"] = np.array(list(digests.values()))
    original_code.save_vectors(args.out, out)


if __name__ == "__main__":
    main()
