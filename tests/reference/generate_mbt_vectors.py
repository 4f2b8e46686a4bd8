"""Generate reference vectors from scenic's MBT (Multimodal Bottleneck Transformer).

MBT = Nagrani et al., "Attention Bottlenecks for Multimodal Fusion", NeurIPS 2021,
implemented in google-research/scenic, `scenic/projects/mbt/model.py`. The vectors feed
(1) a check that lqmm's Flax NNX MBT uses scenic's parameter names and shapes, so that a
scenic checkpoint maps onto it without renaming, and (2) forward-parity tests against the
original Flax Linen model. The upstream code is imported from `--scenic-dir` (a checkout of
the repository root, the folder that contains `scenic/`) and is never copied into lqmm.

What runs (all upstream, unmodified): `MBT.init` and `MBT.apply` of `scenic.projects.mbt.model`
with a tiny two-modality configuration (`TINY` below), on CPU in float32:

* `init` with `jax.random.PRNGKey(SEED)`; every parameter is then shifted by
  `PERTURBATION * N(0, 1)` (numpy, path order), because scenic initialises the output
  projection and the class tokens to zero, which would make every logit exactly 0;
* `apply(train=False)` with `capture_intermediates=True`: the logits and the outputs of the
  patch embeddings, the positional embeddings, every encoder block and the final norm;
* `apply(train=True)` (dropout and stochastic depth are 0, so it draws no randomness): the
  per-modality logits that scenic returns before averaging in training mode;
* `apply(train=False)` again with `fusion_layer` in 0..num_layers and with
  `test_with_bottlenecks=False`, on the same parameters (the parameter tree does not depend
  on either).

Stubs (PROVENANCE_mbt.md): `tensorflow` (`vit.py` imports `tensorflow.io.gfile`) and `clu`
(`debug_utils.py` imports `clu.parameter_overview`) are served as placeholder modules when
they are not installed (`original_code.stub_packages`); neither is used by the code run.

Usage (`original_code.py`, the helpers shared with the other generators, is imported from
this script's folder)::

    python generate_mbt_vectors.py --scenic-dir /path/to/scenic --out data/mbt_vectors.npz

It also writes the parameter tree (path -> shape) to `--params-json`, by default
`mbt_scenic_params.json` beside `--out`.
"""

import os

# Before jax is imported: CPU only, one thread (deterministic, and light on a shared machine).
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault(
    'XLA_FLAGS', '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1')

import importlib  # pylint: disable=g-import-not-at-top,wrong-import-position
import json  # pylint: disable=g-import-not-at-top,wrong-import-position
import pathlib  # pylint: disable=g-import-not-at-top,wrong-import-position
import re  # pylint: disable=g-import-not-at-top,wrong-import-position
import sys  # pylint: disable=g-import-not-at-top,wrong-import-position

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

import original_code  # beside this script: first on sys.path  # pylint: disable=g-import-not-at-top

SEED = 20210701                    # arXiv 2107.00135; PRNGKey for init and numpy generator
PERTURBATION = 0.1                 # std of the N(0, 1) shift added to every initial parameter
BATCH = 2
MODALITIES = ('spectrogram', 'rgb')   # order of `modality_fusion` (as in the AudioSet config)

# The tiny configuration (names are `MBT`'s attributes; `patches`, `temporal_encoding_config`
# and `attention_config` become ml_collections.ConfigDicts).
TINY = dict(
    mlp_dim=32,
    num_layers=3,
    num_heads=2,
    num_classes=5,
    patches={'size': [4, 3, 2]},     # [fh, fw, ft]; spectrogram uses (fh, fw) only
    hidden_size=16,
    temporal_encoding_config={'method': '3d_conv', 'kernel_init_method': None},
    attention_config={'type': 'spacetime'},
    representation_size=None,
    dropout_rate=0.0,
    attention_dropout_rate=0.0,
    stochastic_droplayer_rate=0.0,
    classifier='token',              # the only classifier that works with use_bottleneck
    modality_fusion=MODALITIES,
    fusion_layer=1,
    return_prelogits=False,
    return_preclassifier=False,
    use_bottleneck=True,
    n_bottlenecks=2,                 # scenic adds 1 with classifier='token': 3 tokens
    test_with_bottlenecks=True,
    share_encoder=False,
)

# Input shapes in scenic's layout (channels last): spectrogram [B, time, mel, 3] (the dataset
# tiles the log-mel spectrogram to 3 channels), rgb [B, frames, height, width, 3].
INPUT_SHAPES = {
    'spectrogram': (BATCH, 20, 9, 3),   # (20/4) x (9/3) = 15 patches
    'rgb': (BATCH, 4, 8, 9, 3),         # (4/2) x (8/4) x (9/3) = 12 tubelets
}

# Upstream files whose code is executed, with their sha256 at the commit used
# (4a38d475ee89cb821078c0e2bf2065ee030e1535). A mismatch only warns.
UPSTREAM_FILES = {
    'scenic/projects/mbt/model.py':
        '008fbd39222513e81684a51a33f0b96abc0c088fdc33ab06c547fc71606511f3',
    'scenic/projects/baselines/vit.py':
        'b2a0cc9fbd455e7b53b648545220ae8c29a61b36195866914aeca1dc7c9fc297',
    'scenic/model_lib/layers/attention_layers.py':
        'a1637a0ef40d558b108c1b4094cf6b78ebe61401c7a8ed5f6f08859d9d326975',
    'scenic/model_lib/layers/nn_layers.py':
        'c6404a39b0539836be5daf9eb886d59c20e5d5d245b2f6bd3425777cbbea8468',
    'scenic/projects/mbt/model_utils.py':
        '1dccfc8a0447a4f3d5fbc875d7ade5c6a77ee954f5b4faecd562c2ef4dfa6125',
    'scenic/projects/vivit/model_utils.py':
        '54155dcad7fd6fe45b9573c676cb99699e3fa52529e26d765894c79c64a4b479',
}

# Imported at module level by the upstream files, not used by the code run.
_OPTIONAL_TOPLEVEL = ('tensorflow', 'clu')

# Intermediate outputs kept: module paths in the 'intermediates' collection, '/'-joined (the
# patch embeddings, the positional embeddings, whole encoder blocks, the final norm).
_KEPT_INTERMEDIATES = re.compile(
    r'embedding(_spectrogram)?'
    r'|Transformer/(posembed_input\w*|encoderblock_\d+(_\w+)?|encoder_norm)')


def load_upstream(root: pathlib.Path):
  """Imports `scenic.projects.mbt.model` from the checkout `root`; returns (module, stubbed)."""
  stubbed = original_code.stub_packages(_OPTIONAL_TOPLEVEL)
  if str(root) not in sys.path:
    sys.path.insert(0, str(root))
  return importlib.import_module('scenic.projects.mbt.model'), stubbed


def build(mbt, **overrides):
  """`mbt.MBT` for `TINY` with `overrides`."""
  import ml_collections  # pylint: disable=import-outside-toplevel
  config = dict(TINY, **overrides)
  for name in ('patches', 'temporal_encoding_config', 'attention_config'):
    config[name] = ml_collections.ConfigDict(config[name])
  return mbt.MBT(**config)


def path_name(path) -> str:
  """'/'-joined names of a jax key path (DictKey entries)."""
  return '/'.join(str(getattr(entry, 'key', entry)) for entry in path)


def perturb(params, rng):
  """Every leaf plus `PERTURBATION * N(0, 1)`, drawn in sorted path order; float32."""
  import jax  # pylint: disable=import-outside-toplevel
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  order = sorted(range(len(flat)), key=lambda i: path_name(flat[i][0]))
  leaves = [None] * len(flat)
  for i in order:
    leaf = np.asarray(flat[i][1], dtype=np.float32)
    noise = rng.standard_normal(leaf.shape).astype(np.float32)
    leaves[i] = (leaf + np.float32(PERTURBATION) * noise).astype(np.float32)
  return jax.tree_util.tree_unflatten(treedef, leaves)


def main(argv=None):
  parser = original_code.argument_parser(
      __doc__, {'scenic': 'checkout of google-research/scenic (contains scenic/)'})
  parser.add_argument('--params-json', type=pathlib.Path, default=None,
                      help='where to write the parameter tree (path -> shape) as JSON; '
                      'default: mbt_scenic_params.json beside --out')
  args = parser.parse_args(argv)
  if args.params_json is None:
    args.params_json = args.out.parent / 'mbt_scenic_params.json'

  mbt, stubbed = load_upstream(args.scenic_dir)
  print(f'stubbed: {stubbed}')
  import flax  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  print(f'jax {jax.__version__}, flax {flax.__version__}, numpy {np.__version__}, '
        f'devices {jax.devices()}')

  rng = np.random.default_rng(SEED)
  inputs = {m: rng.standard_normal(INPUT_SHAPES[m]).astype(np.float32) for m in MODALITIES}

  def fresh_inputs():
    # MBT.__call__ and Encoder.__call__ overwrite the entries of the dict they are given.
    return {m: jnp.asarray(inputs[m]) for m in MODALITIES}

  # The shipped AudioSet config (classifier='gap', use_bottleneck=True) does not build.
  try:
    build(mbt, classifier='gap').init(jax.random.PRNGKey(SEED), fresh_inputs(), train=False)
    print('classifier=gap with use_bottleneck=True: builds')
  except UnboundLocalError as error:
    print(f'classifier=gap with use_bottleneck=True: UnboundLocalError({error})')

  model = build(mbt)
  variables = model.init(jax.random.PRNGKey(SEED), fresh_inputs(), train=False)
  assert set(variables) == {'params'}, set(variables)
  params = perturb(variables['params'], rng)
  variables = {'params': params}

  out = {}
  tree = {}
  for path, leaf in sorted(jax.tree_util.tree_flatten_with_path(params)[0],
                           key=lambda item: path_name(item[0])):
    name = path_name(path)
    out[f'param/{name}'] = np.asarray(leaf, dtype=np.float32)
    tree[name] = list(leaf.shape)
  for m in MODALITIES:
    out[f'input/{m}'] = inputs[m]

  # Evaluation forward (the averaged logits), with the intermediate outputs.
  logits, state = model.apply(variables, fresh_inputs(), train=False,
                              capture_intermediates=True, mutable=['intermediates'])
  out['logits'] = np.asarray(logits, dtype=np.float32)
  for path, value in jax.tree_util.tree_flatten_with_path(state['intermediates'])[0]:
    name = path_name(path)
    module = name.rsplit('/__call__', 1)[0]
    if _KEPT_INTERMEDIATES.fullmatch(module):
      out[f'inter/{module}'] = np.asarray(value, dtype=np.float32)

  # Training-mode forward: per-modality logits (scenic averages them only when train=False).
  train_logits = model.apply(variables, fresh_inputs(), train=True)
  assert isinstance(train_logits, dict), type(train_logits)
  for m in MODALITIES:
    out[f'logits_train/{m}'] = np.asarray(train_logits[m], dtype=np.float32)
  average = (out['logits_train/spectrogram'] + out['logits_train/rgb']) / 2
  print('max |eval logits - mean(train logits)|:', np.abs(out['logits'] - average).max())

  # The same parameters under other fusion layers, and without bottlenecks at test time.
  for fusion_layer in range(TINY['num_layers'] + 1):
    logits_k = build(mbt, fusion_layer=fusion_layer).apply(
        variables, fresh_inputs(), train=False)
    out[f'logits_fusion_layer_{fusion_layer}'] = np.asarray(logits_k, dtype=np.float32)
  assert np.array_equal(out[f'logits_fusion_layer_{TINY["fusion_layer"]}'], out['logits'])
  out['logits_eval_without_bottlenecks'] = np.asarray(
      build(mbt, test_with_bottlenecks=False).apply(variables, fresh_inputs(), train=False),
      dtype=np.float32)

  digests = original_code.check_sha256(args.scenic_dir, UPSTREAM_FILES)
  out['meta_files'] = np.array(list(digests))
  out['meta_sha256'] = np.array(list(digests.values()))
  original_code.save_vectors(args.out, out)

  args.params_json.parent.mkdir(parents=True, exist_ok=True)
  document = {
      'source': 'google-research/scenic scenic/projects/mbt/model.py MBT.init',
      'collection': 'params',
      'dtype': 'float32',
      'config': dict(TINY, modality_fusion=list(MODALITIES)),
      'input_shapes': {m: list(INPUT_SHAPES[m]) for m in MODALITIES},
      'params': tree,
  }
  text = json.dumps(document, indent=1)
  # One line per flat list (a shape, patch size, modality tuple): one line per parameter.
  text = re.sub(r'\[\s+([^\[\]{}]*?)\s+\]',
                lambda match: '[' + ', '.join(
                    item.strip() for item in match.group(1).split(',')) + ']', text)
  args.params_json.write_text(text + '\n')
  print(f'wrote {len(tree)} parameter shapes to {args.params_json}')


if __name__ == '__main__':
  main()
