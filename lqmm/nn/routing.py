"""Dynamic networks that pick their branches per sample, and inference that really skips.

Training needs differentiable decisions; inference needs decisions that save compute.

- Decisions: `gumbel_softmax` (soft, or hard with the straight-through gradient) and
  `straight_through` (the one-hot of the argmax forward, the probabilities' gradient
  backward); `temperature_schedule` anneals the Gumbel temperature as an optax schedule.
- Costs: `expected_cost` (the gate's expected share of the largest branch's FLOPs) and
  `budget_loss` (its excess over a budget in (0, 1]), the resource terms of DynMM and AdaMML.
- `DynamicFusion` (DynMM-style): a gate chooses one of E expert networks per sample (e.g. one
  per modality and one that fuses them); training mixes all experts by the Gumbel weights.
- `ModalitySelection` (AdaMML-style): a policy keeps or skips each modality per sample; the
  prediction is the mean of the kept modalities' logits.
- `dispatch`: inference that groups a batch by decision and runs each branch only on its
  rows. XLA needs static shapes, so every group is padded up to a bucket (the next power of
  two by default: at most log2(B) + 1 compiled sizes per branch); groups run as separate
  jitted calls from the host. `DispatchStats` counts the FLOPs that actually ran (XLA's cost
  analysis of each compiled call, padding included) beside those of running every branch on
  every row, so the saving is measured, not assumed. Under `jit` or `vmap`, `lax.switch` on a
  per-sample index becomes a select that runs every branch; that is why dispatch happens on
  the host.

References:
  Xue, Marculescu, "Dynamic Multimodal Fusion", CVPR Workshops 2023 (DynMM).
  Panda, Chen, Fan, Sun, Saenko, Oliva, Feris, "AdaMML: Adaptive Multi-Modal Learning for
  Efficient Video Recognition", ICCV 2021.
  Jang, Gu, Poole, "Categorical Reparameterization with Gumbel-Softmax", ICLR 2017.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lqmm import checks

__all__ = ['DispatchStats', 'DynamicFusion', 'ModalitySelection', 'budget_loss', 'combine_kept',
           'dispatch', 'expected_cost', 'flops', 'gumbel_softmax', 'straight_through',
           'tempered_softmax', 'temperature_schedule']


# ---------------------------------------------------------------- decisions
def straight_through(probs: jax.Array, axis: int = -1) -> jax.Array:
  """The one-hot of `argmax(probs)` forward, the gradient of `probs` backward."""
  checks.check_floating(probs, 'probs')
  probs = jnp.asarray(probs)
  hard = jax.nn.one_hot(jnp.argmax(probs, axis=axis), probs.shape[axis], dtype=probs.dtype,
                        axis=axis)
  return probs + jax.lax.stop_gradient(hard - probs)


def tempered_softmax(logits: jax.Array, *, temperature=1.0, hard: bool = False,
                     axis: int = -1) -> jax.Array:
  """`softmax(logits / temperature)`, with `hard=True` its straight-through one-hot.

  DynMM's `DiffSoftmax`, the decision of its gates: no noise; at inference the hard form is
  the argmax (ties go to the first index). The straight-through gradient is that of the
  tempered softmax, so it scales with 1 / temperature.
  """
  checks.check_floating(logits, 'logits')
  checks.check_scalar(temperature, 'temperature', low=0, low_open=True)
  logits = jnp.asarray(logits)
  soft = jax.nn.softmax(logits / jnp.asarray(temperature, logits.dtype), axis=axis)
  return straight_through(soft, axis=axis) if hard else soft


def gumbel_softmax(logits: jax.Array, *, key: jax.Array | None = None, temperature=1.0,
                   hard: bool = False, axis: int = -1, noise: jax.Array | None = None
                   ) -> jax.Array:
  """`softmax((logits + g) / temperature)` with standard Gumbel noise g.

  With `hard=True` the forward value is the one-hot of the perturbed argmax and the gradient
  that of the soft sample (straight-through Gumbel-softmax, as `torch.nn.functional.
  gumbel_softmax(hard=True)`).

  Args:
    logits: unnormalised log-probabilities, choices along `axis`.
    key: PRNG key (the noise); not needed when `noise` is given.
    temperature: tau > 0 (a scalar, e.g. from `temperature_schedule`).
    hard: one-hot forward, straight-through gradient.
    axis: the choice axis.
    noise: the Gumbel noise itself (`-log(-log u)` of uniforms u), shaped as `logits`.
  """
  checks.check_floating(logits, 'logits')
  logits = jnp.asarray(logits)
  if noise is None:
    if key is None:
      raise ValueError('gumbel_softmax needs key (or the noise itself).')
    checks.check_key(key)
    noise = jax.random.gumbel(key, logits.shape, logits.dtype)
  elif tuple(jnp.shape(noise)) != logits.shape:
    raise ValueError(f'noise must have the shape of logits {logits.shape}; got '
                     f'{tuple(jnp.shape(noise))}.')
  return tempered_softmax(logits + jnp.asarray(noise, logits.dtype), temperature=temperature,
                          hard=hard, axis=axis)


def temperature_schedule(initial: float = 5.0, *, decay_rate: float = 0.965,
                         transition_steps: int = 1, minimum: float | None = None
                         ) -> optax.Schedule:
  """`initial * decay_rate ** (step / transition_steps)`, floored at `minimum` when given, as an
  optax schedule (`optax.exponential_decay`): call it with the epoch or the step.

  AdaMML: `initial=5, decay_rate=0.965` per epoch, no floor (the defaults). DynMM's global
  gate: `initial=start, decay_rate=end / start, transition_steps=epoch_hard` (1 -> 0.001 over
  500 epochs), no floor.
  """
  checks.check_scalar(initial, 'initial', low=0, low_open=True)
  checks.check_scalar(decay_rate, 'decay_rate', low=0, high=1, low_open=True)
  checks.check_integer(transition_steps, 'transition_steps', minimum=1)
  if minimum is not None:
    checks.check_scalar(minimum, 'minimum', low=0, high=initial, low_open=True)
  if float(decay_rate) == 1.0:   # optax would clip a non-decaying schedule to `end_value`
    return optax.constant_schedule(float(initial))
  return optax.exponential_decay(float(initial), transition_steps, float(decay_rate),
                                 end_value=None if minimum is None else float(minimum))


# ---------------------------------------------------------------- costs
def _static_costs(costs, choices: int) -> tuple[float, ...]:
  """Host-side costs of a module (plain floats: a module may be built under a trace)."""
  values = np.asarray(costs, dtype=np.float64)
  if values.shape != (choices,):
    raise ValueError(f'costs must hold one cost per choice, shape ({choices},); got '
                     f'{values.shape}.')
  if not (np.all(np.isfinite(values)) and np.all(values >= 0) and np.any(values > 0)):
    raise ValueError(f'costs must be finite, >= 0, with a positive one; got {values.tolist()}.')
  return tuple(float(v) for v in values)


def combine_kept(logits: jax.Array, keep: jax.Array, *, average: str = 'kept') -> jax.Array:
  """`sum_m keep_m z_m / n`, `[B, K]`, with n the number of kept modalities ('kept', at least
  1) or M ('all', AdaMML's code). `logits: [M, B, K]`, `keep: [M, B]` (0/1 or bool)."""
  logits = jnp.asarray(logits)
  weights = jnp.asarray(keep).astype(logits.dtype)[..., None]                 # [M, B, 1]
  total = jnp.sum(logits * weights, axis=0)
  if average == 'all':
    return total / logits.shape[0]
  if average != 'kept':
    raise ValueError(f"Unknown average {average!r}; valid names: all, kept.")
  return total / jnp.maximum(jnp.sum(weights, axis=0), 1)


def _costs(costs, choices: int) -> jax.Array:
  costs = jnp.asarray(costs)
  if costs.shape != (choices,):
    raise ValueError(f'costs must hold one cost per choice, shape ({choices},); got '
                     f'{costs.shape}.')
  checks.check_values(
      lambda values: None if np.all(values >= 0) and np.any(values > 0) else
      f'costs must be >= 0 with a positive one; got {values.tolist()}.', costs)
  return costs


def expected_cost(probs: jax.Array, costs, *, normalize: bool = True) -> jax.Array:
  """`sum_e p_e c_e / max(c)`: the expected share of the costliest choice's compute, `[...]`.

  DynMM's modality-level term is its mean with costs `[0, ..., 0, 1]` (the weight of the
  last, multimodal expert); its fusion-level term is the mean of `normalize=False` over the
  batch divided by E (absolute GFLOPs, averaged over the choices).

  Args:
    probs: decision probabilities (or hard one-hot decisions) `[..., E]`.
    costs: `[E]`, e.g. FLOPs per sample of each branch (`flops`), >= 0.
    normalize: divide by the largest cost (a share in [0, 1]); False keeps the costs' units.
  """
  checks.check_floating(probs, 'probs')
  probs = jnp.asarray(probs)
  costs = _costs(costs, probs.shape[-1]).astype(probs.dtype)
  return probs @ (costs / jnp.max(costs) if normalize else costs)


def budget_loss(probs: jax.Array, costs, *, budget) -> jax.Array:
  """`relu(mean(expected_cost) - budget)`: nothing while the batch's mean expected compute is
  within `budget` (a share of the costliest choice, in (0, 1]), linear beyond it."""
  checks.check_scalar(budget, 'budget', low=0, high=1, low_open=True)
  return jax.nn.relu(jnp.mean(expected_cost(probs, costs)) - budget)


# ---------------------------------------------------------------- dispatch
def flops(fn: Callable, *args) -> float:
  """The FLOPs XLA's cost analysis counts for `jax.jit(fn)(*args)` (compiled, not run)."""
  return _cost(jax.jit(fn).lower(*args).compile())


@dataclasses.dataclass
class DispatchStats:
  """What `dispatch` ran.

  Attributes:
    rows: rows routed to each branch.
    padded_rows: rows each branch actually computed (its groups padded to buckets).
    flops: FLOPs that ran (every compiled call's cost analysis, padding included).
    flops_all: FLOPs of running every branch on the whole batch (the run-everything version).
  """
  rows: list[int]
  padded_rows: list[int]
  flops: float
  flops_all: float

  @property
  def saving(self) -> float:
    """The share of `flops_all` that was not run."""
    return 1.0 - self.flops / self.flops_all if self.flops_all else 0.0


def _bucket(size: int, batch: int, step: int | None) -> int:
  """The padded group size: the next power of two, or the next multiple of `step`."""
  if step is None:
    return min(1 << max(size - 1, 0).bit_length(), batch)
  return min(-(-size // step) * step, batch)


def _cost(compiled) -> float:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis.get('flops', 0.0))


#: FLOPs of compiled calls, per (jitted function, argument shapes): counted once.
_COSTS: dict[Any, float] = {}


class _Compiled:
  """One branch, jitted, and the FLOPs of its compiled calls (cached per input shape).

  A branch is a function of the batch, or a pair `(fn, state)` called as `fn(state, batch)`,
  so that a model's parameters are arguments of the compiled call, not constants in it. Pass
  the same function object on every call (e.g. from a module-level cache) to reuse its
  compilations.
  """

  def __init__(self, branch):
    if isinstance(branch, tuple):
      fn, self.state = branch
    else:
      fn, self.state = _plain(branch), None
    self.fn = fn if hasattr(fn, 'lower') else _jitted(fn)
    self.gathered = _gathered(self.fn)

  def cost(self, batch) -> float:
    # The parameters' shapes are part of the key: two modules of one class (equal graph
    # definitions, so one compiled function) can differ in width.
    key = (self.fn, _shapes(self.state), _shapes(batch))
    if key not in _COSTS:
      if len(_COSTS) >= 4096:
        _COSTS.clear()
      _COSTS[key] = _cost(self.fn.lower(self.state, batch).compile())
    return _COSTS[key]

  def run(self, batch, take: np.ndarray):
    """The branch on rows `take` of `batch` (gathered inside the compiled call) and the FLOPs
    of the branch on that many rows."""
    rows = jax.tree.map(lambda x: jax.ShapeDtypeStruct((take.size,) + x.shape[1:], x.dtype),
                        batch)
    return self.gathered(self.state, batch, take), self.cost(rows)


@functools.lru_cache(maxsize=256)
def _gathered(fn: Callable) -> Callable:
  """`fn(state, rows take of batch)` as one compiled call (no eager gathers per leaf)."""
  return jax.jit(lambda state, batch, take: fn(state, jax.tree.map(lambda x: x[take], batch)))


def _shapes(tree) -> tuple:
  return tuple((tuple(leaf.shape), str(leaf.dtype)) for leaf in jax.tree.leaves(tree))


@functools.lru_cache(maxsize=256)
def _jitted(fn: Callable):
  """`jax.jit(fn)`, one per function object (repeated dispatches reuse its compilations)."""
  return jax.jit(fn)


@functools.lru_cache(maxsize=256)
def _plain(branch: Callable):
  """`branch(batch)` as a jitted `fn(state, batch)` (one per branch function)."""
  return jax.jit(lambda state, batch: branch(batch))


def dispatch(branches: Sequence, choice: np.ndarray, inputs, *, bucket: int | None = None
             ) -> tuple[Any, DispatchStats]:
  """Runs branch `choice[b]` on row b only, grouping rows by branch; returns its outputs.

  Args:
    branches: E branches, each a function of a batch pytree (leading axis B) or a pair
      `(fn, state)` called as `fn(state, batch)`; every branch's outputs have the same shapes
      and dtypes per row (leading axis B).
    choice: int `[B]`, the branch of each row (host values).
    inputs: the batch pytree.
    bucket: None pads each group to the next power of two (few compiled sizes, up to 2x
      padding); an integer k pads to the next multiple of k (less padding, up to B / k
      compiled sizes per branch).

  Returns:
    `(outputs, DispatchStats)`: numpy outputs in the batch's row order (None if B = 0).
  """
  if bucket is not None:
    checks.check_integer(bucket, 'bucket', minimum=1)
  choice = np.asarray(choice)
  leaves = jax.tree.leaves(inputs)
  if not leaves:
    raise ValueError('inputs holds no arrays.')
  batch = leaves[0].shape[0]
  if choice.shape != (batch,) or not np.issubdtype(choice.dtype, np.integer):
    raise ValueError(f'choice must be integer branch indices of shape ({batch},); got '
                     f'{choice.dtype} {choice.shape}.')
  if choice.size and (choice.min() < 0 or choice.max() >= len(branches)):
    raise ValueError(f'choice must lie in [0, {len(branches)}); got values in '
                     f'[{choice.min()}, {choice.max()}].')
  compiled = [_Compiled(branch) for branch in branches]
  outputs, total = None, 0.0
  rows, padded = [], []
  for index, branch in enumerate(compiled):
    selected = np.nonzero(choice == index)[0]
    rows.append(int(selected.size))
    if not selected.size:
      padded.append(0)
      continue
    size = _bucket(selected.size, batch, bucket)
    take = np.concatenate([selected, np.full(size - selected.size, selected[-1])])
    result, cost = branch.run(inputs, take)
    total += cost
    padded.append(size)
    if outputs is None:
      outputs = jax.tree.map(lambda y: np.zeros((batch,) + y.shape[1:], y.dtype), result)
    jax.tree.map(lambda buffer, y, selected=selected: buffer.__setitem__(
        selected, np.asarray(y)[:selected.size]), outputs, result)
  everything = sum(branch.cost(inputs) for branch in compiled)
  return outputs, DispatchStats(rows, padded, total, everything)


# ---------------------------------------------------------------- modules
@functools.lru_cache(maxsize=256)
def _apply(graphdef) -> Callable:
  """The jitted `fn(state, batch) = merge(graphdef, state)(batch)`, one per module structure,
  so repeated inference reuses its compilations."""
  return jax.jit(lambda state, batch: nnx.merge(graphdef, state)(batch))


def _pure(module) -> tuple[Callable, Any]:
  """`(fn, state)` with `fn(state, batch) = module(batch)` (a branch for `dispatch`)."""
  graphdef, state = nnx.split(module)
  return _apply(graphdef), state


@functools.lru_cache(maxsize=256)
def _skip(shape: tuple, dtype) -> Callable:
  """A branch that computes nothing: zeros `[rows, *shape]`."""
  return lambda batch: jnp.zeros(jax.tree.leaves(batch)[0].shape[:1] + shape, dtype)


@nnx.jit
def _decide_experts(model, inputs):
  return model.decide(inputs)


@nnx.jit
def _decide_modalities(model, inputs, mask):
  return model.decide(inputs, mask)


class DynamicFusion(nnx.Module):
  """A gate that picks one expert network per sample (DynMM's modality-level gating).

  Args:
    gate: a module mapping the batch to logits `[B, E]` (cheap: it always runs).
    experts: E modules mapping the batch to outputs `[B, ...]` (e.g. logits).
    costs: `[E]` per-sample costs for the resource loss; None = `flops` of each expert on
      one row of `example`.
    example: a one-row batch, needed when `costs` is None.
  """

  def __init__(self, gate: nnx.Module, experts: Sequence[nnx.Module], *,
               costs: Sequence[float] | None = None, example=None):
    if len(experts) < 2:
      raise ValueError(f'experts must hold at least 2 networks; got {len(experts)}.')
    self.gate = gate
    self.experts = nnx.List(list(experts))
    if costs is None:
      if example is None:
        raise ValueError('costs or example is needed (example: a one-row batch to count each '
                         "expert's FLOPs).")
      costs = [flops(*_pure(expert), example) for expert in experts]
    self.costs = _static_costs(costs, len(experts))

  def probabilities(self, inputs) -> jax.Array:
    """The gate's softmax `[B, E]`."""
    return jax.nn.softmax(self.gate(inputs), axis=-1)

  def __call__(self, inputs, *, key: jax.Array, temperature=1.0, hard: bool = False
               ) -> tuple[jax.Array, jax.Array]:
    """Training: `(sum_e w_e expert_e(inputs), w [B, E])` with Gumbel-softmax weights w
    (every expert runs)."""
    weights = gumbel_softmax(self.gate(inputs), key=key, temperature=temperature, hard=hard)
    outputs = jnp.stack([expert(inputs) for expert in self.experts], axis=1)   # [B, E, ...]
    shape = weights.shape + (1,) * (outputs.ndim - 2)
    return jnp.sum(outputs * weights.reshape(shape).astype(outputs.dtype), axis=1), weights

  def decide(self, inputs) -> jax.Array:
    """Inference decisions, int `[B]`: the gate's argmax."""
    return jnp.argmax(self.gate(inputs), axis=-1)

  def run_all(self, inputs) -> jax.Array:
    """Inference by running every expert and keeping the chosen one's output (the reference
    that `infer` must equal)."""
    outputs = jnp.stack([expert(inputs) for expert in self.experts], axis=1)
    choice = self.decide(inputs)
    return jnp.take_along_axis(outputs, choice.reshape((-1, 1) + (1,) * (outputs.ndim - 2)),
                               axis=1)[:, 0]

  def infer(self, inputs, choice=None, *, bucket: int | None = None
            ) -> tuple[Any, DispatchStats, np.ndarray]:
    """Inference that runs only the chosen expert per row: `(outputs, stats, choice)`
    (`bucket` as `dispatch`'s)."""
    if choice is None:
      choice = np.asarray(_decide_experts(self, inputs))
    outputs, stats = dispatch([_pure(expert) for expert in self.experts], choice, inputs,
                              bucket=bucket)
    return outputs, stats, choice


class ModalitySelection(nnx.Module):
  """A policy that keeps or skips every modality per sample (AdaMML's modality selection).

  Args:
    policy: a module mapping the batch to logits `[B, M, 2]` (index 1 = use the modality).
    branches: `{modality: module}` mapping the batch to that modality's logits `[B, K]`.
    order: the modalities' order.
    costs: `[M]` per-sample costs; None = `flops` of each branch on `example`.
    example: a one-row batch, needed when `costs` is None.
    average: 'kept' (the mean over the kept modalities; lqmm's default) or 'all' (AdaMML's
      code: the sum of the kept modalities' logits over M, so dropping a modality shrinks the
      logits, and a sample that keeps none gets zeros either way).
  """

  def __init__(self, policy: nnx.Module, branches: Mapping[str, nnx.Module],
               order: Sequence[str], *, costs: Sequence[float] | None = None, example=None,
               average: str = 'kept'):
    checks.check_order(order, branches, 'branches')
    if average not in ('kept', 'all'):
      raise ValueError(f"Unknown average {average!r}; valid names: all, kept.")
    self.average = average
    self.order = tuple(order)
    self.policy = policy
    self.branches = nnx.Dict({name: branches[name] for name in order})
    if costs is None:
      if example is None:
        raise ValueError('costs or example is needed (example: a one-row batch to count each '
                         "branch's FLOPs).")
      costs = [flops(*_pure(self.branches[name]), example) for name in order]
    self.costs = _static_costs(costs, len(order))

  def combine(self, logits: jax.Array, keep: jax.Array) -> jax.Array:
    """The kept modalities' logits `[M, B, K]` averaged (`average`); zeros where none is kept."""
    return combine_kept(logits, keep, average=self.average)

  def __call__(self, inputs, mask: jax.Array | None = None, *, key: jax.Array,
               temperature=1.0) -> tuple[jax.Array, jax.Array]:
    """Training: `(fused logits [B, K], keep [M, B])`, keep from hard straight-through
    Gumbel-softmax decisions (every branch runs); an absent modality is never kept."""
    keep = gumbel_softmax(self.policy(inputs), key=key, temperature=temperature,
                          hard=True)[..., 1].T                                  # [M, B]
    if mask is not None:
      checks.check_mask(mask, keep.shape)
      keep = keep * jnp.asarray(mask).astype(keep.dtype)
    logits = jnp.stack([self.branches[name](inputs) for name in self.order])
    return self.combine(logits, keep), keep

  def decide(self, inputs, mask: jax.Array | None = None) -> jax.Array:
    """Inference decisions, bool `[M, B]`."""
    keep = (jnp.argmax(self.policy(inputs), axis=-1) == 1).T
    if mask is None:
      return keep
    checks.check_mask(mask, keep.shape)
    return jnp.logical_and(keep, jnp.asarray(mask))

  def run_all(self, inputs, mask: jax.Array | None = None) -> jax.Array:
    """Inference running every branch (the reference for `infer`)."""
    logits = jnp.stack([self.branches[name](inputs) for name in self.order])
    return self.combine(logits, self.decide(inputs, mask))

  def infer(self, inputs, mask: jax.Array | None = None, *, bucket: int | None = None
            ) -> tuple[np.ndarray, DispatchStats, np.ndarray]:
    """Inference running each modality's branch only on the rows that keep it:
    `(fused logits, stats, keep [M, B])`."""
    keep = np.asarray(_decide_modalities(self, inputs, mask))
    logits, flops_run, flops_all, rows, padded = [], 0.0, 0.0, [], []
    for index, name in enumerate(self.order):
      fn, state = _pure(self.branches[name])
      shape = jax.eval_shape(fn, state, inputs)
      skip = _skip(tuple(shape.shape[1:]), shape.dtype)
      # Rows that skip the modality go to a branch that computes nothing.
      out, stats = dispatch([skip, (fn, state)], keep[index].astype(np.int64), inputs,
                            bucket=bucket)
      logits.append(np.where(keep[index][:, None], out, 0))
      flops_run += stats.flops
      flops_all += stats.flops_all
      rows.append(stats.rows[1])
      padded.append(stats.padded_rows[1])
    fused = np.asarray(self.combine(jnp.asarray(np.stack(logits)), jnp.asarray(keep)))
    return fused, DispatchStats(rows, padded, flops_run, flops_all), keep
