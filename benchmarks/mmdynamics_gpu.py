"""Multimodal Dynamics training speed on one accelerator, without TFDS or ml_collections.

The experiment (`experiments/mmdynamics_rosmap`) needs lqmm's data stack; the device machines
lack TFDS, so this script reads MOGONET's ROSMAP CSV files directly, scales them like
`lqmm.data.load('rosmap', scaling='minmax')`, and runs the experiment's training (the same model,
loss, optimizer, schedule and epochs, `--seeds` seeds under one jax.vmap) and last-epoch test
evaluation. It prints one JSON line with the compile time, the training time and the
accuracies.

    python benchmarks/mmdynamics_gpu.py --data-dir=path/to/rosmap --seeds=10
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm.nn import dynamics

ORDER = ('mrna', 'meth', 'mirna')


def _load(data_dir):
  def read(name):
    return np.loadtxt(f'{data_dir}/{name}', delimiter=',')
  train = {m: read(f'{i + 1}_tr.csv') for i, m in enumerate(ORDER)}
  test = {m: read(f'{i + 1}_te.csv') for i, m in enumerate(ORDER)}
  scaled = {}
  for split, inputs in (('train', train), ('test', test)):
    scaled[split] = {}
    for m in ORDER:
      low, high = train[m].min(0), train[m].max(0)
      scale = np.where(high - low > 0, high - low, 1.0)
      scaled[split][m] = jnp.asarray(((inputs[m] - low) / scale).astype(np.float32))
  labels = {split: jnp.asarray(read(f'labels_{split[:2]}.csv').astype(np.int32))
            for split in ('train', 'test')}
  return scaled, labels


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data-dir', required=True)
  parser.add_argument('--seeds', type=int, default=10)
  parser.add_argument('--epochs', type=int, default=1001)
  parser.add_argument('--compute-dtype', default='float32', choices=('float32', 'bfloat16'))
  args = parser.parse_args()
  inputs, labels = _load(args.data_dir)
  dims = {m: int(inputs['train'][m].shape[1]) for m in ORDER}
  dtype = None if args.compute_dtype == 'float32' else jnp.bfloat16
  model = nnx.eval_shape(lambda: dynamics.MultimodalDynamics(
      dims, ORDER, 2, hidden=1000, dropout=0.5, compute_dtype=dtype, rngs=nnx.Rngs(0)))
  graphdef, abstract = nnx.split(model, nnx.Param)
  schedule = optax.exponential_decay(1e-4, 500, 0.2, staircase=True)
  optimizer = optax.chain(optax.add_decayed_weights(1e-4), optax.adam(schedule))
  keys = jax.vmap(jax.random.key)(jnp.arange(args.seeds))

  def objective(params, key):
    outputs = nnx.merge(graphdef, params)(inputs['train'], dropout_key=key)
    return dynamics.loss_terms(outputs, labels['train'])['total']

  def run(keys):
    params = jax.vmap(lambda k: dynamics.xavier_normal_init(
        abstract, key=jax.random.fold_in(k, 0)))(keys)
    state = (params, optimizer.init(params))

    def epoch(state, index):
      params, opt_state = state
      step_keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, 1), index))(keys)
      grads = jax.vmap(jax.grad(objective))(params, step_keys)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None

    (params, _), _ = jax.lax.scan(epoch, state, jnp.arange(args.epochs))

    def accuracy(params):
      logits = nnx.merge(graphdef, params)(inputs['test']).logits
      return jnp.mean(jnp.argmax(logits, -1) == labels['test'])
    return jax.vmap(accuracy)(params)

  start = time.perf_counter()
  compiled = jax.jit(run).lower(keys).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  accuracies = np.asarray(compiled(keys))
  run_s = time.perf_counter() - start
  print(json.dumps({'device': str(jax.devices()[0].device_kind), 'jax': jax.__version__,
                    'seeds': args.seeds, 'compute_dtype': args.compute_dtype,
                    'compile_s': compile_s, 'train_s': run_s,
                    'accuracy_mean': float(accuracies.mean()),
                    'accuracy_std': float(accuracies.std(ddof=1)) if args.seeds > 1 else 0.0,
                    'accuracies': accuracies.tolist()}))


if __name__ == '__main__':
  main()
