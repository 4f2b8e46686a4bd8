"""Generate reference vectors for three feature-level fusion operators from their original code.

The vectors feed parity tests of lqmm's feature-map fusion (`[M, B, C, H, W]` features, NCHW).
Everything runs in float64 on CPU, on inputs drawn from `numpy.random.default_rng(SEED)`.
No upstream code is copied into lqmm; PyTorch originals are imported unmodified from the
checkouts named on the command line, and the two TensorFlow/Keras-only originals (TensorFlow is
not installed in the scratch environment) are transcribed literally into NumPy below, each
marked as a transcription with its source URL, commit and line numbers. See
PROVENANCE_feature_fusion.md for every key.

Operators and the code that produces each group of keys:

(A) DenseFuse l1-norm fusion (Li & Wu, IEEE TIP 2019).
    * `densefuse_tf_*`: TRANSCRIPTION of `L1_norm` in `fusion_l1norm.py` of
      https://github.com/hli1221/imagefusion_densefuse (TensorFlow 1.x, the authors' original
      code), commit ef23f0f06c4fce7a6c2c04c9d20119e3d96507b9, lines 4-39. No block averaging,
      no epsilon, two inputs, batch size 1.
    * `densefuse_tf_r1_*`: TRANSCRIPTION of the 3x3 mean filter that is COMMENTED OUT in the
      first version of the same file (commit 81c4f1e0c2fedf1998a39d545fad668715566f86, lines
      25-29: `scipy.signal.convolve2d(l1, fil, boundary='symm', mode='same')`), i.e. the
      paper's block average with r = 1, never executed upstream.
    * `densefuse_pt_*`: `fusion_strategy.attention_fusion_weight` of
      https://github.com/hli1221/densefuse-pytorch (the authors' PyTorch port), imported
      unmodified. It is NOT the l1-norm rule: a softmax over the two channel *sums*.
(B) Illumination-aware gate. No code of IAF R-CNN (Li et al., Pattern Recognition 2019) is
    public. The widely used implementation is MBNet's (Zhou et al., ECCV 2020,
    https://github.com/CalayZhou/MBNet, Keras/TensorFlow 1.14), commit
    18674e300d132c4431e69e5472c32108e37b0a1c:
    * `mbnet_*`: TRANSCRIPTION of the gate arithmetic of `keras_MBNet/model/MBNetBackbone.py`
      (`illumination_mechanism` lines 145-175, `Illumination_Gate` lines 181-182),
      `keras_MBNet/model/scale_bias.py` (`Scale_bias.call`, lines 66-67) and
      `keras_MBNet/model/model_AP_IAFA.py` (`IAFA` lines 35-37 and 73-75). The illumination
      CNN itself is not run: its ReLU outputs `w_n`, `w_d` and its sigmoid output `w_absolute`
      are inputs.
(C) CSSA (Cao et al., CVPR Workshops 2023). No code of the authors is public. Two
    reimplementations, both PyTorch and run unmodified:
    * `cssa_*`: https://github.com/artrela/mulitmodal-cssa (CMU 11-785 course project), commit
      38a895a33b59ff1a50369162a428bb02ae0e449f, `model-train.ipynb`: the code cells defining
      `ECABlock`, `ChannelSwitching`, `SpatialAttention`, `CSSA` and `BackbonePipeline`
      (for `find_ECA_k`) are read from the notebook JSON and executed unmodified.
    * `cssa_gc_*`: https://github.com/goodcasper/CSSA-Pytorch, commit
      5e9a6187ab4866637b98364cf675fbe053dd6aec, `module/cssa_module.py`, imported unmodified.

Only two modalities are produced: every original above is strictly bimodal (two named
arguments, or a concatenation split back into two halves).

Stubs and patches:

1. `torchvision` (imported by the notebook cell that defines `BackbonePipeline`, whose
   `find_ECA_k` is the only thing called from it) is served as a placeholder package if it is
   not installed (`original_code.stub_packages`).
2. The notebook cells are executed in a namespace holding `torch` and `np` (`numpy`), which the
   notebook's first code cell imports; nothing else of the notebook runs.
3. `torch.set_default_dtype(torch.float64)`, so the modules' parameters are float64; parameter
   values are then overwritten with seeded draws (stored under `*_param_<state_dict name>`).

Usage (`original_code.py`, the helpers shared with the other generators, is imported from this
script's folder)::

    python generate_feature_fusion_vectors.py \
        --densefuse-tf-dir imagefusion_densefuse --densefuse-pt-dir densefuse-pytorch \
        --mbnet-dir MBNet --cssa-dir mulitmodal-cssa --cssa-gc-dir CSSA-Pytorch \
        --out data/feature_fusion_vectors.npz
"""

from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np
import torch

import original_code  # beside this script, so first on sys.path when it runs

SEED = 20261208
B, C, H, W = 2, 6, 7, 5          # NCHW feature maps, two modalities
GATE_ROWS = 8                    # samples in the scalar illumination-gate table
ANCHORS = 12                     # per-sample detection scores fused by MBNet's IAFA
ECA_K_CHANNELS = (1, 2, 3, 4, 6, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

# Upstream files, with their sha256 at the commits named in the docstring. A mismatch only
# warns (the vectors then record what actually ran, or what the transcription was read from).
UPSTREAM = {
    'densefuse_tf': {'fusion_l1norm.py':
                     '6c4eb731a526870dcf797e41364a4729a299a1d106cdcf06dbb29421ed1b4429'},
    'densefuse_pt': {'fusion_strategy.py':
                     'e0bb395a7eb7e26ee68934a884e9b66d6c85bde3f1f40c617c115fdf184580c3'},
    'mbnet': {
        'keras_MBNet/model/MBNetBackbone.py':
            '869585c593f89acca9138fb3e546b53c40ef072606bab68d659f45424f70eba8',
        'keras_MBNet/model/model_AP_IAFA.py':
            '00481b3735833ea7f40da3c4fc2943a32ad11eaf90a0fc64c060a27b69580c52',
        'keras_MBNet/model/scale_bias.py':
            '54aa677a973d0b1e90c340676dd96200fa1d086316c09d226235256f8c9a76aa',
    },
    'cssa': {'model-train.ipynb':
             'acaacfb2e2471d67f273a0c4bc82f91af45b98ff87302246f8b6ee173eb62d6c'},
    'cssa_gc': {'module/cssa_module.py':
                '333b50b1e02d99c054377d3bf9bf48f61c240127119cdd2a9e3b8bbd56ac7770'},
}

# The notebook cells executed, found by how their source begins (after leading whitespace).
CSSA_CELLS = ('class ECABlock', 'class ChannelSwitching', 'class SpatialAttention',
              'class CSSA', 'from collections import OrderedDict')


# ==============================================================================================
# TRANSCRIPTION (A): DenseFuse `L1_norm`, TensorFlow original, rewritten in NumPy line by line.
#   Source: https://github.com/hli1221/imagefusion_densefuse/blob/
#           ef23f0f06c4fce7a6c2c04c9d20119e3d96507b9/fusion_l1norm.py, lines 4-39.
#   Only tf.abs -> np.abs, tf.reduce_sum -> np.sum and `.eval()` (which evaluates the tensor in
#   the default session) -> the NumPy value itself differ. Inputs are NHWC numpy arrays, as the
#   original receives them from `sess.run` in generate.py (`_handler_l1`, batch size 1).
# ==============================================================================================
def transcribed_densefuse_l1_norm(source_en_a, source_en_b):
  result = []
  narry_a = source_en_a
  narry_b = source_en_b

  dimension = source_en_a.shape

  # caculate L1-norm
  temp_abs_a = np.abs(narry_a)                 # tf.abs(narry_a)
  temp_abs_b = np.abs(narry_b)                 # tf.abs(narry_b)
  _l1_a = np.sum(temp_abs_a, 3)                # tf.reduce_sum(temp_abs_a,3)
  _l1_b = np.sum(temp_abs_b, 3)                # tf.reduce_sum(temp_abs_b,3)

  _l1_a = np.sum(_l1_a, 0)                     # tf.reduce_sum(_l1_a, 0)  (sums over the batch)
  _l1_b = np.sum(_l1_b, 0)                     # tf.reduce_sum(_l1_b, 0)
  l1_a = _l1_a                                 # _l1_a.eval()
  l1_b = _l1_b                                 # _l1_b.eval()

  # caculate the map for source images
  mask_value = l1_a + l1_b

  mask_sign_a = l1_a / mask_value
  mask_sign_b = l1_b / mask_value

  array_MASK_a = mask_sign_a
  array_MASK_b = mask_sign_b

  for i in range(dimension[3]):
    temp_matrix = array_MASK_a * narry_a[0, :, :, i] + array_MASK_b * narry_b[0, :, :, i]
    result.append(temp_matrix)

  result = np.stack(result, axis=-1)

  resule_tf = np.reshape(result, (dimension[0], dimension[1], dimension[2], dimension[3]))

  return resule_tf


def transcribed_densefuse_l1_masks(source_en_a, source_en_b):
  """Lines 6-26 of the same function (its weight maps, which it does not return)."""
  _l1_a = np.sum(np.sum(np.abs(source_en_a), 3), 0)
  _l1_b = np.sum(np.sum(np.abs(source_en_b), 3), 0)
  mask_value = _l1_a + _l1_b
  return _l1_a / mask_value, _l1_b / mask_value


# ==============================================================================================
# TRANSCRIPTION (A, r = 1): the block average that is commented out in the first version of the
#   same function, https://github.com/hli1221/imagefusion_densefuse/blob/
#   81c4f1e0c2fedf1998a39d545fad668715566f86/fusion_l1norm.py, lines 25-29:
#       fil = np.array([[1 / 9, 1 / 9, 1 / 9], [1 / 9, 1 / 9, 1 / 9], [1 / 9, 1 / 9, 1 / 9]])
#       l1_a = signal.convolve2d(l1_a, fil, boundary='symm', mode='same')
#   scipy's boundary='symm' mirrors the edge sample itself (numpy's pad mode 'symmetric'); the
#   kernel is symmetric, so convolution and correlation agree. It was never executed upstream
#   (the file's later version deletes it); it is here because the paper's rule (r = 1) needs it.
# ==============================================================================================
def transcribed_densefuse_mean_filter_symm(l1):
  fil = np.array([[1 / 9, 1 / 9, 1 / 9],
                  [1 / 9, 1 / 9, 1 / 9],
                  [1 / 9, 1 / 9, 1 / 9]])
  padded = np.pad(l1, 1, mode='symmetric')
  out = np.zeros_like(l1)
  for dy in range(3):
    for dx in range(3):
      out = out + fil[dy, dx] * padded[dy:dy + l1.shape[0], dx:dx + l1.shape[1]]
  return out


def transcribed_densefuse_l1_norm_r1(source_en_a, source_en_b):
  """`L1_norm` of commit 81c4f1e with its commented-out scipy filter lines switched on."""
  l1_a = np.sum(np.sum(np.abs(source_en_a), 3), 0)
  l1_b = np.sum(np.sum(np.abs(source_en_b), 3), 0)
  l1_a = transcribed_densefuse_mean_filter_symm(l1_a)
  l1_b = transcribed_densefuse_mean_filter_symm(l1_b)
  mask_value = l1_a + l1_b
  mask_sign_a = l1_a / mask_value
  mask_sign_b = l1_b / mask_value
  dimension = source_en_a.shape
  result = [mask_sign_a * source_en_a[0, :, :, i] + mask_sign_b * source_en_b[0, :, :, i]
            for i in range(dimension[3])]
  return np.reshape(np.stack(result, axis=-1), dimension), mask_sign_a, mask_sign_b


# ==============================================================================================
# TRANSCRIPTION (B): MBNet's illumination gate (Keras 2.1 / TensorFlow 1.14), in NumPy.
#   Source: https://github.com/CalayZhou/MBNet/blob/18674e300d132c4431e69e5472c32108e37b0a1c/
#     keras_MBNet/model/MBNetBackbone.py lines 145-150 (w_n, w_d: Dense(1, relu); their
#       sigmoids), 163-175 (w_absolute: Dense(1, sigmoid); Scale_bias; tanh; w_rgb),
#       181-182 (Illumination_Gate: features times sigmoid(w_d) / sigmoid(w_n));
#     keras_MBNet/model/scale_bias.py lines 66-67 (x * gamma + beta);
#     keras_MBNet/model/model_AP_IAFA.py lines 35-37 and 73-75 (IAFA: scores mixed by w_rgb).
#   Keras `multiply` of a [B, ...] tensor with a [B, 1] one expands the lower-rank input at
#   axis 1 until the ranks agree (keras.layers.merge._Merge.call), i.e. one scalar per sample;
#   `_per_sample` reproduces that.
# ==============================================================================================
def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))           # keras 'sigmoid' = tf.sigmoid


def _per_sample(weight, ndim):
  while weight.ndim < ndim:                 # K.expand_dims(x, 1) until ranks agree
    weight = np.expand_dims(weight, 1)
  return weight


def transcribed_mbnet_illumination_weights(w_n, w_d, w_absolute, gamma, beta):
  """`illumination_mechanism` after its dense layers: returns (w_n_weight, w_d_weight, w_rgb)."""
  w_n_weight = _sigmoid(w_n)                                  # line 149, LWIR
  w_d_weight = _sigmoid(w_d)                                  # line 150, RGB
  illuminate_aware_alf_value = w_absolute * gamma + beta      # line 165 / scale_bias.py 66-67
  tf_half_add = lambda x: 0.5 + x                             # line 167
  tf_sub = lambda x: (x[0] - x[1]) * 0.5                      # line 168
  w_n_illuminate = np.tanh(w_n)                               # line 170, LWIR
  w_d_illuminate = np.tanh(w_d)                               # line 171, RGB
  illuminate_rgb_positive = tf_sub([w_d_illuminate, w_n_illuminate])                # line 172
  illuminate_aware_alf_pre = illuminate_rgb_positive * illuminate_aware_alf_value   # line 174
  w_rgb = tf_half_add(illuminate_aware_alf_pre)                                     # line 175
  return w_n_weight, w_d_weight, w_rgb


def transcribed_mbnet_illumination_gate_inputs(stage_rgb, stage_lwir, w_d_weight, w_n_weight):
  """`Illumination_Gate` lines 181-182 (before its concat, L2Normalization, 1x1 conv, BN)."""
  stage_rgb = stage_rgb * _per_sample(w_d_weight, stage_rgb.ndim)
  stage_lwir = stage_lwir * _per_sample(w_n_weight, stage_lwir.ndim)
  return stage_rgb, stage_lwir


def transcribed_mbnet_iafa_scores(x_class_reshape_rgb, x_class_reshape_lwir, illuminate):
  """`IAFA` lines 35-37 and 73-75: the anchor scores of the two heads mixed by w_rgb."""
  tf_score_onesub = lambda x: 1 - x
  illuminate_rgb_weight = illuminate
  illuminate_lwir_weight = tf_score_onesub(illuminate)
  cls_rgb_illuminate = x_class_reshape_rgb * _per_sample(illuminate_rgb_weight, 3)
  cls_lwir_illuminate = x_class_reshape_lwir * _per_sample(illuminate_lwir_weight, 3)
  return cls_rgb_illuminate + cls_lwir_illuminate


# ==============================================================================================
# Loading the PyTorch originals
# ==============================================================================================
def load_cssa_notebook(notebook_path: pathlib.Path) -> tuple[dict, dict]:
  """Executes the notebook's CSSA cells unmodified; returns (namespace, {cell start: sha256})."""
  notebook = json.loads(notebook_path.read_text())
  namespace = {'torch': torch, 'np': np, '__name__': 'mulitmodal_cssa_notebook'}
  digests = {}
  for start in CSSA_CELLS:
    cells = [''.join(cell['source']) for cell in notebook['cells']
             if cell['cell_type'] == 'code' and ''.join(cell['source']).lstrip().startswith(start)]
    assert len(cells) == 1, (start, len(cells))
    exec(compile(cells[0], f'<model-train.ipynb: {start}>', 'exec'), namespace)  # pylint: disable=exec-used
    digests[start] = hashlib.sha256(cells[0].encode()).hexdigest()
  return namespace, digests


def t64(x, grad=False):
  return torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=grad)


def npy(x):
  return x.detach().cpu().numpy().astype(np.float64)


def set_params(module, draws: dict) -> dict:
  """Overwrites the named parameters with the given arrays; returns {name: array}."""
  state = {}
  with torch.no_grad():
    for name, param in module.named_parameters():
      value = np.asarray(draws[name], dtype=np.float64).reshape(param.shape)
      param.copy_(torch.from_numpy(value))
      state[name] = value
  assert set(state) == set(draws), (set(state), set(draws))
  return state


# ==============================================================================================
# Inputs
# ==============================================================================================
def feature_pair(rng, offsets_scale=1.0):
  """[2, B, C, H, W] signed features with a per-(modality, sample, channel) offset."""
  x = rng.normal(0.0, 1.0, (2, B, C, H, W))
  x += offsets_scale * rng.normal(0.0, 1.0, (2, B, C, 1, 1))
  return x


def relu_feature_pair(rng):
  """ReLU-like (non-negative, ~half zeros) features; two pixels are zero in every channel of
  both modalities (the l1 weights are 0/0 there)."""
  x = np.maximum(rng.normal(0.0, 1.0, (2, B, C, H, W)), 0.0)
  x[:, 0, :, 3, 2] = 0.0
  x[:, 1, :, 0, 0] = 0.0
  return x


# ==============================================================================================
# main
# ==============================================================================================
def main(argv=None) -> None:
  parser = original_code.argument_parser(__doc__, {
      'densefuse-tf': 'checkout of hli1221/imagefusion_densefuse (hashed; transcribed)',
      'densefuse-pt': 'checkout of hli1221/densefuse-pytorch',
      'mbnet': 'checkout of CalayZhou/MBNet (hashed; transcribed)',
      'cssa': 'checkout of artrela/mulitmodal-cssa',
      'cssa-gc': 'checkout of goodcasper/CSSA-Pytorch',
  })
  args = parser.parse_args(argv)
  stubbed = original_code.stub_packages(('torchvision',))           # patch 1
  print(f'stubbed modules: {stubbed}')
  torch.set_default_dtype(torch.float64)                              # patch 3
  torch.manual_seed(0)
  rng = np.random.default_rng(SEED)
  out: dict[str, np.ndarray] = {}

  # ------------------------------ (A) DenseFuse ---------------------------------------------
  densefuse_pt = original_code.load_file(
      'densefuse_fusion_strategy', args.densefuse_pt_dir / 'fusion_strategy.py')
  for case, x in (('signed', feature_pair(rng, 0.5)), ('relu', relu_feature_pair(rng))):
    out[f'densefuse_{case}_x'] = x
    nhwc = np.transpose(x, (0, 1, 3, 4, 2))                           # [2, B, H, W, C]
    fused, weights, fused_r1, weights_r1 = [], [], [], []
    with np.errstate(invalid='ignore'):
      for b in range(B):                                              # batch size 1, as upstream
        a, v = nhwc[0, b:b + 1], nhwc[1, b:b + 1]
        fused.append(transcribed_densefuse_l1_norm(a, v)[0])
        weights.append(np.stack(transcribed_densefuse_l1_masks(a, v)))
        f_r1, wa, wb = transcribed_densefuse_l1_norm_r1(a, v)
        fused_r1.append(f_r1[0])
        weights_r1.append(np.stack([wa, wb]))
    out[f'densefuse_tf_{case}_fused'] = np.transpose(np.stack(fused), (0, 3, 1, 2))
    out[f'densefuse_tf_{case}_weight'] = np.stack(weights, axis=1)  # [2, B, H, W]
    out[f'densefuse_tf_r1_{case}_fused'] = np.transpose(np.stack(fused_r1), (0, 3, 1, 2))
    out[f'densefuse_tf_r1_{case}_weight'] = np.stack(weights_r1, axis=1)
    # The original's own output equals its weight maps applied channel-wise.
    np.testing.assert_array_equal(
        out[f'densefuse_tf_{case}_fused'],
        out[f'densefuse_tf_{case}_weight'][0][:, None] * x[0]
        + out[f'densefuse_tf_{case}_weight'][1][:, None] * x[1])
    # PyTorch port: softmax over the channel sums (not the l1 rule), with gradient.
    x0, x1 = t64(x[0], grad=True), t64(x[1], grad=True)
    pt_fused = densefuse_pt.attention_fusion_weight(x0, x1)
    cot = rng.normal(0.0, 1.0, (B, C, H, W))
    g0, g1 = torch.autograd.grad((pt_fused * t64(cot)).sum(), [x0, x1])
    out[f'densefuse_pt_{case}_fused'] = npy(pt_fused)
    out[f'densefuse_pt_{case}_cot'] = cot
    out[f'densefuse_pt_{case}_grad'] = np.stack([npy(g0), npy(g1)])
  # Batch size 2 in one call: the l1 maps are summed over the batch and the reshape fails.
  try:
    transcribed_densefuse_l1_norm(np.transpose(out['densefuse_signed_x'][0], (0, 2, 3, 1)),
                                  np.transpose(out['densefuse_signed_x'][1], (0, 2, 3, 1)))
    raised = False
  except ValueError:
    raised = True
  assert raised
  out['densefuse_tf_batch2_raises'] = np.array(raised)

  # ------------------------------ (B) MBNet illumination gate -------------------------------
  # w_n, w_d: outputs of Dense(1, activation='relu'), so >= 0; rows 0-1 day-like, 2-3
  # night-like, 4 both zero, 5 equal, 6-7 random. w_absolute: output of Dense(1, 'sigmoid').
  w_n = rng.uniform(0.0, 4.0, (GATE_ROWS, 1))
  w_d = rng.uniform(0.0, 4.0, (GATE_ROWS, 1))
  w_d[0:2], w_n[0:2] = [[3.5], [6.0]], [[0.0], [0.2]]
  w_d[2:4], w_n[2:4] = [[0.0], [0.3]], [[2.5], [7.0]]
  w_d[4], w_n[4] = 0.0, 0.0
  w_n[5] = w_d[5]
  w_absolute = rng.uniform(0.05, 0.95, (GATE_ROWS, 1))
  out['mbnet_w_n'], out['mbnet_w_d'], out['mbnet_w_absolute'] = w_n, w_d, w_absolute
  for tag, (gamma, beta) in (('init', (1.0, 0.0)), ('trained', (1.3, -0.2))):
    w_n_weight, w_d_weight, w_rgb = transcribed_mbnet_illumination_weights(
        w_n, w_d, w_absolute, gamma, beta)
    out[f'mbnet_{tag}_scale_bias'] = np.array([gamma, beta])
    out[f'mbnet_{tag}_w_rgb'] = w_rgb
  out['mbnet_w_n_weight'], out['mbnet_w_d_weight'] = w_n_weight, w_d_weight
  cls_rgb = rng.uniform(0.0, 1.0, (GATE_ROWS, ANCHORS, 1))
  cls_lwir = rng.uniform(0.0, 1.0, (GATE_ROWS, ANCHORS, 1))
  out['mbnet_cls_rgb'], out['mbnet_cls_lwir'] = cls_rgb, cls_lwir
  out['mbnet_trained_cls_fused'] = transcribed_mbnet_iafa_scores(
      cls_rgb, cls_lwir, out['mbnet_trained_w_rgb'])
  feats = feature_pair(rng, 0.5)
  gated = transcribed_mbnet_illumination_gate_inputs(
      feats[0], feats[1], w_d_weight[:B], w_n_weight[:B])
  out['mbnet_x'] = feats
  out['mbnet_gated_x'] = np.stack(gated)

  # ------------------------------ (C) CSSA --------------------------------------------------
  ns, cell_digests = load_cssa_notebook(args.cssa_dir / 'model-train.ipynb')
  find_eca_k = ns['BackbonePipeline'].find_ECA_k                      # does not use self
  out['cssa_find_eca_k_channels'] = np.array(ECA_K_CHANNELS)
  out['cssa_find_eca_k'] = np.array([find_eca_k(None, c) for c in ECA_K_CHANNELS])
  adaptive_k = find_eca_k(None, C)
  cases = {
      # name: (kernel_size, threshold or 'tie', conv-weight draw, input offset scale)
      'k3_t0p5': (3, 0.5, 'normal', 1.0),         # the CSSA class defaults
      'k1_t2em3': (adaptive_k, 2e-3, 'positive', 8.0),   # notebook config + find_ECA_k(6)
      'k3_tie': (3, 'tie', 'normal', 1.0),        # threshold equal to one attention value
  }
  for name, (kernel, thresh, wdraw, offset) in cases.items():
    pre = f'cssa_{name}'
    x = feature_pair(rng, offset)
    if wdraw == 'normal':
      draws = {n: rng.normal(0.0, 1.0, kernel) for n in ('eca_rgb.f.weight', 'eca_ir.f.weight')}
    else:
      draws = {n: rng.uniform(0.5, 1.5, kernel) for n in ('eca_rgb.f.weight', 'eca_ir.f.weight')}
    rgb, ir = t64(x[0], grad=True), t64(x[1], grad=True)
    if thresh == 'tie':                              # the threshold is one attention value
      probe = ns['CSSA'](0.5, kernel)
      set_params(probe, draws)
      thresh = float(probe.eca_rgb(rgb).detach()[0, 2, 0, 0])
    model = ns['CSSA'](thresh, kernel)               # positional, as BackbonePipeline calls it
    state = set_params(model, draws)
    w_rgb, w_ir = model.eca_rgb(rgb), model.eca_ir(ir)
    rgb_feats = model.cs(rgb, ir, w_rgb)
    mask_rgb = model.cs.mask.clone()
    ir_feats = model.cs(ir, rgb, w_ir)
    mask_ir = model.cs.mask.clone()
    fused = model(rgb, ir)
    np.testing.assert_array_equal(npy(fused), npy(model.sa(rgb_feats, ir_feats)))
    cot = rng.normal(0.0, 1.0, (B, C, H, W))
    params = dict(model.named_parameters())
    grads = torch.autograd.grad((fused * t64(cot)).sum(), [rgb, ir] + list(params.values()),
                                allow_unused=True)
    # The attention reaches the output only through the boolean switch mask: the ECA weights
    # get no gradient at all (autograd returns None for them).
    assert all(g is None for g in grads[2:]), 'ECA weights are not on the gradient path'
    out[f'{pre}_x'] = x
    out[f'{pre}_kernel_size'] = np.array(kernel)
    out[f'{pre}_threshold'] = np.array(thresh)
    for pname, value in state.items():
      out[f'{pre}_param_{pname}'] = value
    out[f'{pre}_w'] = np.stack([npy(w_rgb)[..., 0, 0], npy(w_ir)[..., 0, 0]])
    out[f'{pre}_switch'] = np.stack([mask_rgb.numpy()[..., 0, 0], mask_ir.numpy()[..., 0, 0]])
    out[f'{pre}_fused'] = npy(fused)
    out[f'{pre}_cot'] = cot
    out[f'{pre}_grad_x'] = np.stack([npy(grads[0]), npy(grads[1])])
    print(pre, 'switched channels (rgb, ir):', out[f'{pre}_switch'].sum(axis=(1, 2)))
  tie = out['cssa_k3_tie_w'][0, 0, 2] == out['cssa_k3_tie_threshold']
  assert tie and not out['cssa_k3_tie_switch'][0, 0, 2], 'strict < keeps the tied channel'

  # goodcasper/CSSA-Pytorch: kernel 1 with bias, keep where w > 0.5, switch where w <= 0.5.
  gc = original_code.load_file('goodcasper_cssa_module',
                               args.cssa_gc_dir / 'module' / 'cssa_module.py')
  x = feature_pair(rng, 1.0)
  x[0, 0, 1] = 0.75                      # constant channel: its GAP is exactly 0.75
  model = gc.CSSA()
  names = ('channel_switching.RGB_ECA.conv1d.weight', 'channel_switching.RGB_ECA.conv1d.bias',
           'channel_switching.IR_ECA.conv1d.weight', 'channel_switching.IR_ECA.conv1d.bias')
  # RGB: weight 0.5 and bias -0.375 make sample 0's channel 1 exactly sigmoid(0) = 0.5.
  state = set_params(model, dict(zip(names, (0.5, -0.375, rng.normal(0.0, 1.0),
                                             rng.normal(0.0, 0.3)))))
  rgb, ir = t64(x[0], grad=True), t64(x[1], grad=True)
  w_rgb = model.channel_switching.RGB_ECA(rgb)
  w_ir = model.channel_switching.IR_ECA(ir)
  assert float(w_rgb.detach()[0, 1]) == 0.5, float(w_rgb.detach()[0, 1])
  switched = model.channel_switching(rgb, ir)
  fused = model(rgb, ir)
  cot = rng.normal(0.0, 1.0, (B, C, H, W))
  params = dict(model.named_parameters())
  grads = torch.autograd.grad((fused * t64(cot)).sum(), [rgb, ir] + list(params.values()),
                              allow_unused=True)
  assert all(g is None for g in grads[2:]), 'ECA weights are not on the gradient path'
  out['cssa_eca_params_get_no_gradient'] = np.array(True)
  out['cssa_gc_x'] = x
  for pname, value in state.items():
    out[f'cssa_gc_param_{pname}'] = value
  out['cssa_gc_w'] = np.stack([npy(w_rgb), npy(w_ir)])
  out['cssa_gc_fused'] = npy(fused)
  out['cssa_gc_cot'] = cot
  out['cssa_gc_grad_x'] = np.stack([npy(grads[0]), npy(grads[1])])
  np.testing.assert_array_equal(npy(switched)[0, 1], x[1, 0, 1])   # w = 0.5 exactly: switched

  # ------------------------------ metadata --------------------------------------------------
  files, digests = [], []
  roots = (('densefuse_tf', args.densefuse_tf_dir), ('densefuse_pt', args.densefuse_pt_dir),
           ('mbnet', args.mbnet_dir), ('cssa', args.cssa_dir), ('cssa_gc', args.cssa_gc_dir))
  for key, root in roots:
    for name, digest in original_code.check_sha256(root, UPSTREAM[key]).items():
      files.append(f'{key}:{name}')
      digests.append(digest)
  for start, digest in cell_digests.items():
    files.append(f'cssa:model-train.ipynb cell "{start}"')
    digests.append(digest)
  out['meta_files'] = np.array(files)
  out['meta_sha256'] = np.array(digests)
  out['meta_versions'] = np.array([f'torch {torch.__version__}', f'numpy {np.__version__}'])
  original_code.save_vectors(args.out, out)


if __name__ == '__main__':
  main()
