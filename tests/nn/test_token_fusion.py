"""TokenFusion's token exchange, score predictor, block and regulariser against the original.

Reference vectors: `tests/reference/data/tokenfusion_vectors.npz`, generated from yikaiw/
TokenFusion (commit 3834ccf) by `tests/reference/generate_tokenfusion_vectors.py`
(`tests/reference/PROVENANCE_tokenfusion.md`).
"""

import pathlib

import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import strategies as st

from lqmm import nn

VECTORS = pathlib.Path(__file__).parents[1] / 'reference' / 'data' / 'tokenfusion_vectors.npz'


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(VECTORS))


def _set(param, value):
  param.set_value(jnp.asarray(value))   # float64 under the x64 fixture


def _load_linear(layer, ref, name):
  _set(layer.kernel, ref[f'{name}.weight'].T)
  if layer.bias is not None:
    _set(layer.bias, ref[f'{name}.bias'])


def _load_norm(norm, ref, name):
  _set(norm.scale, ref[f'{name}.weight'])
  _set(norm.bias, ref[f'{name}.bias'])


@pytest.mark.parametrize('threshold', [0.02, 0.5])
def test_exchange_equals_the_original(ref, threshold, x64_standard):
  tag = f'{threshold:g}'.replace('.', 'p')
  out = nn.exchange.token_exchange(jnp.asarray(ref['tex_x']), jnp.asarray(ref['tex_scores']),
                                   threshold=threshold)
  np.testing.assert_array_equal(np.asarray(out), ref[f'tex_thr{tag}_out'])


def test_three_streams_reduce_to_the_original_on_two(ref, x64_standard):
  # The original drops a third stream; with the third absent lqmm's rule is the original's.
  mask = jnp.ones((3, 3), jnp.bool_).at[2].set(False)
  out = nn.exchange.token_exchange(jnp.asarray(ref['tex3_x']), jnp.asarray(ref['tex3_scores']),
                                   mask)
  np.testing.assert_array_equal(np.asarray(out[:2]), ref['tex3_thr0p02_out'])


def test_scorer_equals_the_original(ref, x64_standard):
  scorer = nn.exchange.TokenScorer(8, 2, rngs=nnx.Rngs(0))
  for m in range(2):
    _load_norm(scorer.norms[m], ref, f'pred__score_nets.{m}.0')
    for layer, index in zip(scorer.layers[m], (1, 3, 5, 7)):
      _load_linear(layer, ref, f'pred__score_nets.{m}.{index}')
  x = jnp.asarray(ref['pred_x'])
  np.testing.assert_allclose(np.asarray(jax.nn.log_softmax(scorer.logits(x))),
                             ref['pred_log_probs'], rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(np.asarray(scorer(x)), ref['pred_scores'], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize('case', ['pred', 'multi'])
@pytest.mark.parametrize('lamda', ['1em4', '1em6'])
def test_sparsity_equals_the_original(ref, case, lamda, x64_standard):
  weight = float(ref['reg_lamdas'][0 if lamda == '1em4' else 1])
  blocks = [jnp.asarray(ref[key]) for key in sorted(ref) if key.startswith(f'reg_{case}_block')]
  loss, grads = jax.value_and_grad(
      lambda b: nn.exchange.score_sparsity(b, weight=weight))(blocks)
  np.testing.assert_allclose(float(loss), float(ref[f'reg_{case}_lamda{lamda}_loss']),
                             rtol=1e-13)
  for k, grad in enumerate(grads):
    np.testing.assert_array_equal(np.asarray(grad), ref[f'reg_{case}_lamda{lamda}_block{k}_grad'])


def _block(ref, sr):
  pre = f'block_sr{sr}__'
  block = nn.exchange.TokenFusionBlock(8, num_modalities=2, num_heads=int(ref['block_num_heads']),
                                       mlp_ratio=2.0, sr_ratio=sr, rngs=nnx.Rngs(0))
  for m in range(2):
    _load_norm(block.norm1[m], ref, f'{pre}norm1.ln_{m}')
    _load_norm(block.norm2[m], ref, f'{pre}norm2.ln_{m}')
    if sr > 1:
      _load_norm(block.sr_norm[m], ref, f'{pre}attn.norm.ln_{m}')
  for layer, name in ((block.q, 'attn.q.module'), (block.kv, 'attn.kv.module'),
                      (block.proj, 'attn.proj.module'), (block.fc1, 'mlp.fc1.module'),
                      (block.fc2, 'mlp.fc2.module')):
    _load_linear(layer, ref, pre + name)
  if sr > 1:   # torch [out, in, kh, kw] -> flax [kh, kw, in, out]
    _set(block.sr.kernel, ref[pre + 'attn.sr.module.weight'].transpose(2, 3, 1, 0))
    _set(block.sr.bias, ref[pre + 'attn.sr.module.bias'])
  _set(block.dwconv.kernel, ref[pre + 'mlp.dwconv.dwconv.weight'].transpose(2, 3, 1, 0))
  _set(block.dwconv.bias, ref[pre + 'mlp.dwconv.dwconv.bias'])
  return block


@pytest.mark.parametrize('sr', [1, 2])
def test_block_equals_the_original(ref, sr, x64_standard):
  block = _block(ref, sr)
  pre = f'block_sr{sr}'
  height, width = (int(v) for v in ref['block_hw'])
  x, scores, w = (jnp.asarray(ref[f'{pre}_{name}']) for name in ('x', 'scores', 'w'))
  graphdef, state = nnx.split(block)

  def objective(x, scores):
    y = nnx.merge(graphdef, state)(x, scores, height=height, width=width)
    return jnp.sum(y * w), y

  (_, y), (grad_x, grad_scores) = jax.jit(jax.value_and_grad(objective, argnums=(0, 1),
                                                             has_aux=True))(x, scores)
  np.testing.assert_allclose(np.asarray(y), ref[f'{pre}_out'], rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(np.asarray(grad_x), ref[f'{pre}_grad_x'], rtol=1e-9, atol=1e-11)
  np.testing.assert_allclose(np.asarray(grad_scores), ref[f'{pre}_grad_scores'], rtol=1e-9,
                             atol=1e-11)
  plain = block(x, height=height, width=width)
  np.testing.assert_allclose(np.asarray(plain), ref[f'{pre}_out_nomask'], rtol=1e-10,
                             atol=1e-12)
  attention = block.attention(x, height, width)
  exchanged = nn.exchange.token_exchange(attention * scores[..., None], scores)
  np.testing.assert_allclose(np.asarray(exchanged), ref[f'{pre}_attn_out'], rtol=1e-10,
                             atol=1e-12)


# ---------------------------------------------------------------- laws (any M, masks)
@st.composite
def _streams(draw):
  num = draw(st.integers(2, 4))
  batch, tokens, channels = draw(st.integers(1, 3)), draw(st.integers(1, 3)), 2
  values = draw(hnp.arrays(np.float32, (num, batch, tokens, channels),
                           elements=st.floats(-10, 10, width=32)))
  scores = draw(hnp.arrays(np.float32, (num, batch, tokens), elements=st.floats(0, 1, width=32)))
  mask = draw(hnp.arrays(np.bool_, (num, batch)))
  return values, scores, mask


@hypothesis.settings(max_examples=20)
@hypothesis.given(_streams(), st.floats(0, 1))
def test_exchange_laws(streams, threshold):
  tokens, scores, mask = streams
  out = np.asarray(nn.exchange.token_exchange(tokens, scores, mask, threshold=threshold))
  num = tokens.shape[0]
  for m in range(num):
    others = [j for j in range(num) if j != m]
    for b in range(tokens.shape[1]):
      present = [j for j in others if mask[j, b]]
      for n in range(tokens.shape[2]):
        if scores[m, b, n] >= threshold or not present:   # kept, bit for bit
          np.testing.assert_array_equal(out[m, b, n], tokens[m, b, n])
        else:   # the mean of the other present streams; an absent one never a source
          np.testing.assert_allclose(out[m, b, n], tokens[present, b, n].mean(0), rtol=1e-5,
                                     atol=1e-5)


def test_exchange_is_permutation_equivariant():
  key = jax.random.key(0)
  tokens = jax.random.normal(key, (3, 2, 5, 4))
  scores = jax.random.uniform(jax.random.fold_in(key, 1), (3, 2, 5))
  mask = jnp.array([[True, False], [True, True], [False, True]])
  perm = jnp.array([2, 0, 1])
  out = nn.exchange.token_exchange(tokens, scores, mask, threshold=0.5)
  permuted = nn.exchange.token_exchange(tokens[perm], scores[perm], mask[perm], threshold=0.5)
  np.testing.assert_allclose(np.asarray(permuted), np.asarray(out[perm]), rtol=1e-6)


def test_nan_score_gives_nan_token_not_zero():
  tokens = jnp.ones((2, 1, 2, 3))
  scores = jnp.array([[[jnp.nan, 0.9]], [[0.9, 0.9]]])
  out = np.asarray(nn.exchange.token_exchange(tokens, scores))
  assert np.all(np.isnan(out[0, 0, 0])) and np.all(out[0, 0, 1] == 1)


def test_missing_stream_never_reaches_the_others_through_the_block():
  """A missing stream's tokens change nothing in the present streams' outputs."""
  block = nn.exchange.TokenFusionBlock(8, num_modalities=3, num_heads=2, sr_ratio=2,
                                       rngs=nnx.Rngs(1))
  key = jax.random.key(3)
  x = jax.random.normal(key, (3, 2, 12, 8))
  scores = jnp.full((3, 2, 12), 0.01)                     # every token wants to exchange
  mask = jnp.array([[True, True], [True, True], [False, True]])
  run = nnx.jit(lambda block, x: block(x, scores, mask, height=3, width=4))
  out = run(block, x)
  changed = run(block, x.at[2, 0].set(100.0))
  np.testing.assert_array_equal(np.asarray(out[:2, 0]), np.asarray(changed[:2, 0]))
  # ... while a present stream's tokens do reach the others.
  moved = run(block, x.at[2, 1].set(100.0))
  assert not np.allclose(np.asarray(out[:2, 1]), np.asarray(moved[:2, 1]))


def test_block_jits_and_vmaps_over_seeds():
  def run(key):
    block = nn.exchange.TokenFusionBlock(4, num_modalities=2, num_heads=1, rngs=nnx.Rngs(key))
    x = jax.random.normal(key, (2, 1, 4, 4))
    return block(x, jnp.full((2, 1, 4), 0.5), height=2, width=2)

  out = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 3))
  assert out.shape == (3, 2, 1, 4, 4) and np.all(np.isfinite(np.asarray(out)))


def test_exchange_share():
  scores = [jnp.array([0.01, 0.5]), jnp.array([[0.0, 0.03]])]
  assert float(nn.exchange.exchange_share(scores)) == 0.5


@pytest.mark.parametrize('call, match', [
    (lambda: nn.exchange.token_exchange(jnp.ones((1, 2, 3, 4)), jnp.ones((1, 2, 3))),
     'at least 2 modalities'),
    (lambda: nn.exchange.token_exchange(jnp.ones((2, 2, 3, 4)), jnp.ones((2, 2, 4))),
     'scores must have the shape'),
    (lambda: nn.exchange.token_exchange(jnp.ones((2, 2, 3, 4)), jnp.ones((2, 2, 3)),
                                        jnp.ones((2, 3), jnp.bool_)), 'mask must have shape'),
    (lambda: nn.exchange.token_exchange(jnp.ones((2, 2, 3, 4)), jnp.ones((2, 2, 3)),
                                        threshold=np.float32(1.5)), 'threshold'),
    (lambda: nn.exchange.score_sparsity([], weight=1e-4), 'no arrays'),
    (lambda: nn.exchange.score_sparsity(jnp.ones(3), weight=-1.0), 'weight'),
    (lambda: nn.exchange.TokenFusionBlock(6, num_modalities=2, num_heads=4, rngs=nnx.Rngs(0)),
     'num_heads 4 must divide dim 6'),
    (lambda: nn.exchange.TokenFusionBlock(4, num_modalities=2, num_heads=1, rngs=nnx.Rngs(0))(
        jnp.ones((2, 1, 4, 5)), height=2, width=2), r'x must be \[2, B, N, 4\]'),
    (lambda: nn.exchange.TokenFusionBlock(4, num_modalities=2, num_heads=1, rngs=nnx.Rngs(0))(
        jnp.ones((2, 1, 4, 4)), height=3, width=2), 'height \\* width'),
    (lambda: nn.exchange.TokenScorer(8, 2, rngs=nnx.Rngs(0))(jnp.ones((3, 1, 2, 8))),
     r'tokens must be \[2, B, N, 8\]'),
])
def test_bad_input_names_the_argument(call, match):
  with pytest.raises((ValueError, TypeError), match=match):
    call()
