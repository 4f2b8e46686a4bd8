"""Generate reference vectors for lqmm's attention fusion from torch.nn.MultiheadAttention.

PyTorch fusion code (cross-modal transformers, MulT-style cross attention, self-attention over
the concatenated modality tokens) builds on `torch.nn.MultiheadAttention` with a
`key_padding_mask` (True = ignore the key). These vectors are its outputs, in float64 on CPU,
for lqmm's `lqmm.nn.attention` parity tests:

* `self_*`: self-attention over the concatenation of two modalities' tokens `[B, N0 + N1, D]`
  with padded tokens masked as keys;
* `cross_*`: modality 0's tokens as queries over modality 1's tokens as keys and values, with
  modality 1's padding masked.

Usage (torch only; nothing else is imported)::

    python tests/reference/generate_attention_vectors.py \
        --out tests/reference/data/attention_vectors.npz
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import original_code  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

SEED = 20261207
B, N0, N1, D, HEADS = 3, 4, 5, 8, 2


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', type=pathlib.Path, required=True)
  args = parser.parse_args()
  torch.set_default_dtype(torch.float64)
  torch.manual_seed(0)
  rng = np.random.default_rng(SEED)
  out = {}
  x0 = rng.normal(0.0, 1.0, (B, N0, D))
  x1 = rng.normal(0.0, 1.0, (B, N1, D))
  valid0 = np.ones((B, N0), bool)
  valid1 = np.ones((B, N1), bool)
  valid0[1, 3:] = False          # sample 1: modality 0 has 3 tokens
  valid1[0, 2:] = False          # sample 0: modality 1 has 2 tokens
  valid1[2, 4:] = False
  out.update(x0=x0, x1=x1, valid0=valid0, valid1=valid1)
  for case in ('self', 'cross'):
    attention = torch.nn.MultiheadAttention(D, HEADS, batch_first=True)
    with torch.no_grad():
      for param in attention.parameters():
        param.copy_(torch.from_numpy(rng.normal(0.0, 0.4, tuple(param.shape))))
    for name, param in attention.named_parameters():
      out[f'{case}__{name}'] = param.detach().numpy().copy()
    if case == 'self':
      query = torch.from_numpy(np.concatenate([x0, x1], axis=1)).requires_grad_(True)
      keys = query
      padding = ~np.concatenate([valid0, valid1], axis=1)
    else:
      query = torch.from_numpy(x0).requires_grad_(True)
      keys = torch.from_numpy(x1).requires_grad_(True)
      padding = ~valid1
    result, weights = attention(query, keys, keys, key_padding_mask=torch.from_numpy(padding),
                                need_weights=True, average_attn_weights=False)
    cotangent = rng.normal(0.0, 1.0, tuple(result.shape))
    leaves = [query] if case == 'self' else [query, keys]
    grads = torch.autograd.grad((result * torch.from_numpy(cotangent)).sum(), leaves)
    out[f'{case}_out'] = result.detach().numpy()
    out[f'{case}_weights'] = weights.detach().numpy()
    out[f'{case}_cotangent'] = cotangent
    out[f'{case}_grad_query'] = grads[0].numpy()
    if case == 'cross':
      out['cross_grad_keys'] = grads[1].numpy()
  out['meta_versions'] = np.array([f'torch {torch.__version__}', f'numpy {np.__version__}'])
  original_code.save_vectors(args.out, out)


if __name__ == '__main__':
  main()
