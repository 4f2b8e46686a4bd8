"""Dynamic networks: Gumbel decisions, temperature schedules, resource losses and inference
that runs only the chosen branches (same predictions as running everything, fewer FLOPs)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lqmm.nn import routing


class _MLP(nnx.Module):
  def __init__(self, widths, *, rngs):
    self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])

  def __call__(self, batch):
    h = batch['x'] if isinstance(batch, dict) else batch
    for layer in self.layers[:-1]:
      h = jax.nn.relu(layer(h))
    return self.layers[-1](h)


class _Slice(nnx.Module):
  """An expert that sees one modality's columns of `batch['x']`."""

  def __init__(self, start, stop, widths, *, rngs):
    self.start, self.stop = start, stop
    self.net = _MLP((stop - start,) + tuple(widths), rngs=rngs)

  def __call__(self, batch):
    return self.net(batch['x'][:, self.start:self.stop])


def _fusion():
  rngs = nnx.Rngs(0)
  gate = _MLP((12, 8, 3), rngs=rngs)
  experts = [_Slice(0, 4, (16, 5), rngs=rngs), _Slice(4, 12, (32, 5), rngs=rngs),
             _Slice(0, 12, (256, 256, 5), rngs=rngs)]
  example = {'x': jnp.zeros((1, 12))}
  return routing.DynamicFusion(gate, experts, example=example)


def test_gumbel_softmax_hard_is_one_hot_with_the_soft_gradient():
  logits = jnp.array([[0.3, -1.0, 2.0], [1.0, 1.0, 0.0]])
  key = jax.random.key(0)
  soft = routing.gumbel_softmax(logits, key=key, temperature=0.5)
  hard = routing.gumbel_softmax(logits, key=key, temperature=0.5, hard=True)
  np.testing.assert_allclose(np.asarray(soft.sum(-1)), 1, rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(hard), np.eye(3)[np.asarray(soft.argmax(-1))])
  weights = jnp.array([1.0, 2.0, 3.0])
  grad_soft = jax.grad(lambda z: jnp.sum(routing.gumbel_softmax(
      z, key=key, temperature=0.5) @ weights))(logits)
  grad_hard = jax.grad(lambda z: jnp.sum(routing.gumbel_softmax(
      z, key=key, temperature=0.5, hard=True) @ weights))(logits)
  np.testing.assert_allclose(np.asarray(grad_hard), np.asarray(grad_soft), rtol=1e-5, atol=1e-7)


def test_gumbel_argmax_samples_the_softmax():
  logits = jnp.log(jnp.array([0.2, 0.5, 0.3]))
  keys = jax.random.split(jax.random.key(1), 20000)
  hard = jax.vmap(lambda k: routing.gumbel_softmax(logits, key=k, hard=True))(keys)
  np.testing.assert_allclose(np.asarray(hard.mean(0)), [0.2, 0.5, 0.3], atol=0.015)


def test_temperature_schedule_decays_to_its_floor():
  schedule = routing.temperature_schedule(5.0, decay_rate=0.5, minimum=0.5)
  assert float(routing.temperature_schedule(5.0, decay_rate=0.5)(10)) < 0.5   # no floor
  np.testing.assert_allclose([float(schedule(t)) for t in (0, 1, 2, 3, 10)],
                             [5.0, 2.5, 1.25, 0.625, 0.5], rtol=1e-6)


def test_costs_and_budget():
  probs = jnp.array([[1.0, 0.0], [0.5, 0.5]])
  np.testing.assert_allclose(np.asarray(routing.expected_cost(probs, [1.0, 4.0])),
                             [0.25, 0.625], rtol=1e-6)
  np.testing.assert_allclose(float(routing.budget_loss(probs, [1.0, 4.0], budget=0.3)),
                             0.4375 - 0.3, rtol=1e-6)
  assert float(routing.budget_loss(probs, [1.0, 4.0], budget=0.5)) == 0.0


def test_dynamic_fusion_runs_only_the_chosen_experts():
  model = _fusion()
  batch = {'x': jax.random.normal(jax.random.key(2), (20, 12))}
  choice = np.array([0] * 11 + [1] * 6 + [2] * 3)
  everything = np.asarray(jnp.stack([e(batch) for e in model.experts], 1))[np.arange(20), choice]
  out, stats, used = model.infer(batch, choice)
  np.testing.assert_allclose(out, everything, rtol=1e-5, atol=1e-6)
  assert stats.rows == [11, 6, 3] and stats.padded_rows == [16, 8, 4]
  # The run-everything FLOPs are every expert on 20 rows; far fewer ran.
  assert stats.flops < 0.35 * stats.flops_all
  # Finer buckets: groups padded to multiples of 4, fewer FLOPs, the same outputs.
  finer, finer_stats, _ = model.infer(batch, choice, bucket=4)
  np.testing.assert_allclose(finer, out, rtol=1e-5, atol=1e-6)
  assert finer_stats.padded_rows == [12, 8, 4] and finer_stats.flops < stats.flops
  # With the gate's own decisions: the same predictions as run_all.
  out, stats, choice = model.infer(batch)
  np.testing.assert_allclose(out, np.asarray(model.run_all(batch)), rtol=1e-5, atol=1e-6)
  assert sum(stats.rows) == 20


def test_dynamic_fusion_costs_are_the_experts_flops():
  model = _fusion()
  assert model.costs[2] > 10 * model.costs[0]
  key = jax.random.key(3)
  batch = {'x': jax.random.normal(key, (6, 12))}
  out, weights = model(batch, key=key, temperature=1.0, hard=True)
  assert out.shape == (6, 5)
  np.testing.assert_array_equal(np.asarray(weights.sum(-1)), 1)
  loss = routing.budget_loss(weights, model.costs, budget=0.5)
  grads = nnx.grad(lambda m: routing.budget_loss(
      m(batch, key=key, hard=True)[1], m.costs, budget=0.01))(model)
  assert float(loss) >= 0 and np.any(np.asarray(grads['gate']['layers'][1]['kernel'][...]) != 0)


def test_modality_selection_skips_the_unused_modalities():
  rngs = nnx.Rngs(4)

  class Policy(nnx.Module):
    def __init__(self):
      self.net = _MLP((12, 8, 4), rngs=rngs)

    def __call__(self, batch):
      return self.net(batch).reshape(-1, 2, 2)

  branches = {'a': _Slice(0, 4, (8, 3), rngs=rngs), 'b': _Slice(4, 12, (128, 128, 3), rngs=rngs)}
  model = routing.ModalitySelection(Policy(), branches, ('a', 'b'),
                                    example={'x': jnp.zeros((1, 12))})
  batch = {'x': jax.random.normal(jax.random.key(5), (16, 12))}
  mask = jnp.ones((2, 16), jnp.bool_).at[1, :4].set(False)     # b absent for 4 rows
  fused, stats, keep = model.infer(batch, mask)
  np.testing.assert_allclose(fused, np.asarray(model.run_all(batch, mask)), rtol=1e-5,
                             atol=1e-6)
  assert not keep[1, :4].any()
  assert stats.rows == [int(keep[0].sum()), int(keep[1].sum())]
  assert stats.flops <= stats.flops_all
  key = jax.random.key(6)
  logits, used = model(batch, mask, key=key, temperature=0.5)
  assert logits.shape == (16, 3) and not np.asarray(used[1, :4]).any()


@pytest.mark.parametrize('call, match', [
    (lambda: routing.budget_loss(jnp.ones((2, 2)), [1.0, 1.0], budget=0.0), 'budget'),
    (lambda: routing.budget_loss(jnp.ones((2, 2)), [1.0, 1.0], budget=np.float32(1.5)), 'budget'),
    (lambda: routing.expected_cost(jnp.ones((2, 3)), [1.0, 1.0]), r'one cost per choice'),
    (lambda: routing.expected_cost(jnp.ones((2, 2)), [-1.0, 1.0]), 'costs must be >= 0'),
    (lambda: routing.gumbel_softmax(jnp.ones(3), key=jax.random.key(0), temperature=0.0),
     'temperature'),
    (lambda: routing.temperature_schedule(1.0, minimum=2.0), 'minimum'),
    (lambda: routing.gumbel_softmax(jnp.ones(3)), 'needs key'),
    (lambda: routing.gumbel_softmax(jnp.ones(3), noise=jnp.ones(2)), 'noise must have the shape'),
    (lambda: routing.combine_kept(jnp.ones((2, 1, 3)), jnp.ones((2, 1)), average='max'),
     'Unknown average'),
    (lambda: routing.dispatch([lambda b: b], np.array([0, 0]), jnp.ones((2, 3)), bucket=0),
     'bucket'),
    (lambda: routing.dispatch([lambda b: b], np.array([0, 1]), jnp.ones((2, 3))),
     r'choice must lie in \[0, 1\)'),
    (lambda: routing.dispatch([lambda b: b], np.array([0.0, 0.0]), jnp.ones((2, 3))),
     'choice must be integer'),
    (lambda: routing.DynamicFusion(_MLP((2, 2), rngs=nnx.Rngs(0)),
                                   [_MLP((2, 2), rngs=nnx.Rngs(0))] * 2),
     'costs or example'),
])
def test_bad_input_names_the_argument(call, match):
  with pytest.raises((ValueError, TypeError), match=match):
    call()


# ---------------------------------------------------------------- parity with the originals
# `tests/reference/data/dynamic_vectors.npz` from zihuixue/DynMM (cbab632) and IBM/AdaMML
# (be50c02) by `tests/reference/generate_dynamic_vectors.py` (`PROVENANCE_dynamic.md`).
import pathlib  # noqa: E402

DYNAMIC = pathlib.Path(__file__).parents[1] / 'reference' / 'data' / 'dynamic_vectors.npz'


@pytest.fixture(scope='module')
def dyn():
  return dict(np.load(DYNAMIC))


@pytest.mark.parametrize('num', [2, 3, 5])
def test_tempered_softmax_is_dynmms_diff_softmax(dyn, num, x64):
  pre = f'dynmm_ds_E{num}'
  logits, cot = jnp.asarray(dyn[f'{pre}_logits']), jnp.asarray(dyn[f'{pre}_cot'])
  for t, tau in enumerate(dyn['dynmm_ds_taus']):
    for h, hard in enumerate((False, True)):
      fn = lambda z, tau=tau, hard=hard: routing.tempered_softmax(  # noqa: E731
          z, temperature=float(tau), hard=hard)
      np.testing.assert_allclose(np.asarray(fn(logits)), dyn[f'{pre}_out'][h, t], rtol=1e-12,
                                 atol=1e-300)
      grad = jax.grad(lambda z, fn=fn: jnp.sum(fn(z) * cot))(logits)
      np.testing.assert_allclose(np.asarray(grad), dyn[f'{pre}_grad'][t], rtol=1e-9,
                                 atol=1e-12)


@pytest.mark.parametrize('num', [2, 3])
def test_dynmm_modality_level_output_and_resource_term(dyn, num, x64):
  pre = f'dynmm_mod_E{num}'
  logits, preds = jnp.asarray(dyn[f'{pre}_gate_logits']), jnp.asarray(dyn[f'{pre}_preds'])
  last = [0.0] * (num - 1) + [1.0]              # DynMM charges the last expert's weight
  for h, hard in enumerate((False, True)):
    weights = routing.tempered_softmax(logits, hard=hard)
    np.testing.assert_allclose(np.asarray(weights), dyn[f'{pre}_weight'][h], rtol=1e-12)
    output = jnp.einsum('be,ebc->bc', weights, preds)
    np.testing.assert_allclose(np.asarray(output), dyn[f'{pre}_output'][h], rtol=1e-12)
    term = jnp.mean(routing.expected_cost(weights, last))
    np.testing.assert_allclose(float(term), dyn[f'{pre}_loss2'][h], rtol=1e-12)


def test_dynmm_fusion_level_flop_loss(dyn, x64):
  for mode in range(3):
    weights = jnp.asarray(dyn['dynmm_fus_weight'][mode])
    for t, table in enumerate(('r34', 'r50')):
      costs = dyn[f'dynmm_fus_depth_enc_flop_{table}']
      loss = jnp.mean(routing.expected_cost(weights, costs, normalize=False)) / costs.size
      np.testing.assert_allclose(float(loss), dyn['dynmm_fus_loss_flop'][mode, t], rtol=1e-12)


def test_temperature_schedules_are_the_originals(dyn):
  epochs = dyn['dynmm_temp_epochs']
  for row in range(2):
    start, end, steps = dyn['dynmm_temp_configs'][row]
    schedule = routing.temperature_schedule(start, decay_rate=end / start,
                                            transition_steps=int(steps))
    np.testing.assert_allclose([float(schedule(int(e))) for e in epochs],
                               dyn['dynmm_temp_exp'][row], rtol=1e-5)
  adamml = routing.temperature_schedule(5.0, decay_rate=float(dyn['adamml_decay_ratio']))
  np.testing.assert_allclose([float(adamml(e)) for e in range(dyn['adamml_temperature'].size)],
                             dyn['adamml_temperature'], rtol=1e-5)


def test_gumbel_decisions_with_the_originals_noise(dyn, x64):
  logits, cot = jnp.asarray(dyn['adamml_gumbel_logits']), jnp.asarray(dyn['adamml_gumbel_cot'])
  for t, tau in enumerate(dyn['adamml_gumbel_taus']):
    noise = -jnp.log(-jnp.log(jnp.asarray(dyn['adamml_gumbel_u'][t])))
    fn = lambda z, tau=tau, noise=noise: routing.gumbel_softmax(  # noqa: E731
        z, temperature=float(tau), hard=True, noise=noise)[:, 1]
    np.testing.assert_array_equal(np.asarray(fn(logits)), dyn['adamml_gumbel_decisions'][t])
    grad = jax.grad(lambda z, fn=fn: jnp.sum(fn(z) * cot))(logits)
    np.testing.assert_allclose(np.asarray(grad), dyn['adamml_gumbel_grad_logits'][t],
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('num', [2, 3])
def test_adamml_combination_over_all_modalities(dyn, num, x64):
  pre = f'adamml_fwd_M{num}'
  logits = jnp.asarray(dyn[f'{pre}_logits'])                       # [M, S, N, C]
  decisions = jnp.asarray(dyn[f'{pre}_decisions'])                  # [S, M, N]
  segments = jnp.stack([routing.combine_kept(logits[:, s], decisions[s], average='all')
                        for s in range(logits.shape[1])])
  np.testing.assert_allclose(np.asarray(segments.mean(0)), dyn[f'{pre}_final'][0], rtol=1e-12)


def test_costs_follow_each_branchs_parameters_not_only_its_function():
  """One compiled function, two parameter sizes: each branch's FLOPs are its own."""
  fn = jax.jit(lambda s, x: jnp.tanh(x @ s['w1']) @ s['w2'])
  small = {'w1': jnp.ones((8, 4)), 'w2': jnp.ones((4, 3))}
  big = {'w1': jnp.ones((8, 512)), 'w2': jnp.ones((512, 3))}
  _, stats = routing.dispatch([(fn, small), (fn, big)], np.array([0] * 12 + [1] * 4),
                              jnp.ones((16, 8)))
  assert stats.flops < stats.flops_all and 0 < stats.saving < 1


def test_a_constant_schedule_ignores_its_floor():
  schedule = routing.temperature_schedule(5.0, decay_rate=1.0, minimum=1.0)
  assert float(schedule(0)) == float(schedule(10)) == 5.0
