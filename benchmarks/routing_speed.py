"""Dynamic fusion on Handwritten: inference that runs only the chosen experts, against running all.

A `lqmm.nn.DynamicFusion` with three experts (a small MLP on the Fourier view, a small MLP on
the Karhunen-Loeve view, and a wide MLP on all six views) and a linear gate on all views is
trained with `lqmm.train.fit` (Gumbel-softmax mixture of the experts, the temperature annealed,
plus `resource_weight` times the expected share of the wide expert's FLOPs), for each resource
weight. On the test split, with and without Gaussian noise on the Fourier view, it compares:

1. `run_all`: every expert on every row, the chosen one's output kept (what a dynamic network
   that only masks its branches costs);
2. `infer`: rows grouped by the gate's decision, each expert run only on its rows
   (`lqmm.nn.routing.dispatch`).

It checks that both give the same predictions and reports accuracy, the share of rows sent to
each expert, the FLOPs that ran (XLA's cost analysis of the compiled calls) and the wall time
(median of `--repeats` timed calls after a warm-up; CPU seconds beside it).

    python benchmarks/routing_speed.py --manual-dir ../shared/data
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm import data
from lqmm import train
from lqmm.nn import routing

ORDER = ('pix', 'fou', 'fac', 'zer', 'kar', 'mor')


class MLP(nnx.Module):
  """ReLU MLP on the concatenation of some views."""

  def __init__(self, views, widths, *, dims, rngs):
    self.views = tuple(views)
    sizes = (sum(dims[v] for v in self.views),) + tuple(widths)
    self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])

  def __call__(self, inputs):
    h = jnp.concatenate([inputs[v] for v in self.views], axis=-1)
    for layer in self.layers[:-1]:
      h = jax.nn.relu(layer(h))
    return self.layers[-1](h)


def build(dims, costs=None, example=None, *, wide=512, key=0):
  rngs = nnx.Rngs(key)
  experts = [MLP(('fou',), (32, 10), dims=dims, rngs=rngs),
             MLP(('kar',), (32, 10), dims=dims, rngs=rngs),
             MLP(ORDER, (wide, wide, 10), dims=dims, rngs=rngs)]
  gate = MLP(ORDER, (3,), dims=dims, rngs=rngs)
  return routing.DynamicFusion(gate, experts, costs=costs, example=example)


def train_step(state, batch, key, *, costs, resource_weight, schedule):
  temperature = schedule(state.epoch)

  def loss_fn(params):
    model = state.model(params)
    logits, weights = model(batch['inputs'], key=key, temperature=temperature)
    task = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
    cost = routing.expected_cost(weights, costs)
    w = batch['weight']
    return (jnp.sum(task * w) + resource_weight * jnp.sum(cost * w)) / jnp.sum(w)

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads), {'loss': loss}


def timed(fn, repeats):
  fn()                                           # warm-up: compilation
  walls, cpus = [], []
  for _ in range(repeats):
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    walls.append(time.perf_counter() - start)
    cpus.append(time.process_time() - cpu)
  return statistics.median(walls), statistics.median(cpus)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--manual-dir', default=os.environ.get('LQMM_MANUAL_DIR'))
  parser.add_argument('--weights', default='0,0.5,2', help='resource weights, comma-separated')
  parser.add_argument('--epochs', type=int, default=60)
  parser.add_argument('--noise', type=float, default=3.0, help='std of the noise on fou')
  parser.add_argument('--repeats', type=int, default=20)
  parser.add_argument('--wide', type=int, default=1024, help='width of the all-view expert')
  parser.add_argument('--bucket', type=int, default=None,
                      help='pad groups to multiples of this (default: powers of two)')
  parser.add_argument('--out', default=None, help='write the results as JSON here')
  args = parser.parse_args()
  splits = data.load('handwritten', 'stratified', modalities=ORDER, seed=0,
                     scaling='standard', manual_dir=args.manual_dir)
  dims = {v: int(splits.shapes[v][0]) for v in ORDER}
  example = {v: jnp.zeros((1, dims[v])) for v in ORDER}
  costs = build(dims, example=example, wide=args.wide).costs
  print(f'uptime: {open("/proc/loadavg").read().split()[:3]}; expert FLOPs per row: {costs}')
  test = {v: jnp.asarray(splits.test['inputs'][v]) for v in ORDER}
  noisy = dict(test, fou=test['fou'] + args.noise * jax.random.normal(
      jax.random.key(7), test['fou'].shape))
  labels = np.asarray(splits.test['label'])
  schedule = routing.temperature_schedule(5.0, decay_rate=0.92, minimum=0.1)
  results = []
  for weight in (float(w) for w in args.weights.split(',')):
    init = train.initializer(functools.partial(build, dims, costs, wide=args.wide),
                             optax.adam(1e-3), init_params=lambda abstract, key: nnx.state(
                                 build(dims, costs, wide=args.wide, key=key), nnx.Param))
    step = functools.partial(train_step, costs=costs, resource_weight=weight,
                             schedule=schedule)
    config = dict(train.default_config().train.to_dict(), num_epochs=args.epochs,
                  batch_size=100, num_seeds=1, epochs_per_call=args.epochs,
                  checkpoint_every_epochs=args.epochs, select=())
    with jax.numpy_dtype_promotion('standard'):
      fitted = train.fit(init, step, splits.train, config=config, progress=False)
    state = jax.tree.map(lambda x: x[0], fitted.state)
    model = state.model()
    for condition, inputs in (('clean', test), (f'fou noise std {args.noise:g}', noisy)):
      run_all = nnx.jit(lambda m, x: m.run_all(x))
      reference = np.asarray(run_all(model, inputs))
      out, stats, choice = model.infer(inputs, bucket=args.bucket)
      # Different batch sizes block the matmuls differently in float32: agreement to 1e-4.
      np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-4)
      assert np.array_equal(out.argmax(-1), reference.argmax(-1))
      wall_all, cpu_all = timed(lambda: run_all(model, inputs).block_until_ready(), args.repeats)
      wall_dyn, cpu_dyn = timed(lambda: model.infer(inputs, choice, bucket=args.bucket),
                                args.repeats)
      row = {'resource_weight': weight, 'condition': condition, 'bucket': args.bucket,
             'accuracy': float(np.mean(out.argmax(-1) == labels)),
             'share': [r / len(labels) for r in stats.rows], 'flops_run': stats.flops,
             'flops_all': stats.flops_all, 'flops_saving': stats.saving,
             'wall_all_ms': 1e3 * wall_all, 'cpu_all_ms': 1e3 * cpu_all,
             'wall_dispatch_ms': 1e3 * wall_dyn, 'cpu_dispatch_ms': 1e3 * cpu_dyn}
      results.append(row)
      print(json.dumps(row))
  print(f'max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB')
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  main()
