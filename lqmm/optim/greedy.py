"""The greedy learner's diagnostics and re-balancing schedule (Wu et al., ICML 2022).

A multi-branch model where each modality m has a main branch (its own encoder) and a bypass
(the cross-modal connections that feed it the other modalities, e.g. MMTM blocks) learns greedily:
the branch of the modality that is easier to fit relies on its own input and under-uses the
others. The paper measures this with

- the conditional utilisation rate `u(j | k) = (A_k - A_k^{j off}) / A_k`: the relative accuracy
  branch k loses when modality j's information flow into it is turned off
  (`conditional_utilization`); and
- its cheap proxy during training, the conditional learning speed: for every parameter group, the
  ratio `sum |g|^2 / sum |w|^2` of squared gradient and weight norms, accumulated over steps;
  modality m's balance is `BDR_m = log10(speed(bypass m) / speed(main m))`.

The schedule (`greedy_schedule`): from `start_epoch` on, when the spread of the BDRs exceeds
`epsilon`, the next `window` steps are re-balancing steps that care for the modality with the
largest BDR (its bypass is cut off from the other modality, so its own encoder must learn); the
accumulators are not updated during re-balancing steps. The transform passes gradients unchanged:
it only keeps the schedule in its state, and the model reads `state.curating` and `state.caring`
before the next forward. Checked against nyukat/greedy_multimodal_learning, whose 1-based
`starting_epoch=2` is `start_epoch=1` here.

References:
  Wu, Jastrzebski, Cho and Geras, "Characterizing and Overcoming the Greedy Nature of Learning in
  Multi-modal Deep Neural Networks", ICML 2022.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lqmm import checks
from lqmm.optim import extra_args
from lqmm.optim import labels as labels_lib

__all__ = ['GateMeans', 'GreedyState', 'SHARED_BYPASS', 'bypass_label', 'conditional_utilization',
           'greedy_group_labels', 'greedy_schedule', 'group_sums', 'init_gate_means', 'main_label',
           'update_gate_means']

#: Label of leaves that belong to every modality's bypass (e.g. MMTM's shared squeeze layer).
SHARED_BYPASS = 'bypass:all'


def _modality_index(modality) -> int:
  """`modality` as a Python int; raises unless it is a non-negative integer."""
  if isinstance(modality, bool) or not jnp.issubdtype(jnp.result_type(modality), jnp.integer):
    raise TypeError(f'modality must be a non-negative integer index; got {modality!r}.')
  if jnp.ndim(modality):
    raise ValueError(f'modality must be a scalar index; got shape {jnp.shape(modality)}.')
  index = int(modality)
  if index < 0:
    raise ValueError(f'modality must be a non-negative index; got {index}.')
  return index


def main_label(modality: int) -> str:
  """The group label of modality `modality`'s main branch: `'main:<m>'`.

  Raises:
    TypeError: `modality` is not an integer. ValueError: `modality` is negative.
  """
  return f'main:{_modality_index(modality)}'


def bypass_label(modality: int) -> str:
  """The group label of modality `modality`'s bypass: `'bypass:<m>'`.

  Raises:
    TypeError: `modality` is not an integer. ValueError: `modality` is negative.
  """
  return f'bypass:{_modality_index(modality)}'


def greedy_group_labels(params: Any, order: Sequence[str]) -> Any:
  """Labels a multi-branch parameter tree with the greedy schedule's groups.

  The tree is laid out like `lqmm.nn.GreedyNet`'s: `encoders/<modality>/...` is that modality's
  main branch (`main_label`), `mmtm/excite/<index>/...` modality `index`'s bypass
  (`bypass_label`), `mmtm/squeeze/...` the bypass shared by every modality (`SHARED_BYPASS`);
  every other leaf (the heads) is labelled `'other'`.

  Args:
    params: a parameter pytree (e.g. `nnx.state(model, nnx.Param)`).
    order: the modality order; `order.index(name)` is modality `name`'s index.

  Returns:
    A pytree of `params`' structure with a `str` label at every leaf, the `group_labels` of
    `greedy_schedule`.

  Raises:
    KeyError: an `encoders/<modality>` entry names a modality missing from `order`.

  Example:
    >>> params = {'encoders': {'audio': {'w': 0}, 'video': {'w': 0}},
    ...           'mmtm': {'excite': {'0': {'w': 0}}, 'squeeze': {'w': 0}}, 'head': {'w': 0}}
    >>> labels = greedy_group_labels(params, ('audio', 'video'))
    >>> labels['encoders']['video']['w'], labels['mmtm']['excite']['0']['w'], labels['head']['w']
    ('main:1', 'bypass:0', 'other')
  """
  index_of = {name: index for index, name in enumerate(order)}

  def label(path, _):
    names = [str(getattr(entry, 'key', getattr(entry, 'name', ''))) for entry in path]
    if names[0] == 'encoders':
      if names[1] not in index_of:
        raise KeyError(f'params has an encoder for modality {names[1]!r}, which order '
                       f'{tuple(order)} does not list.')
      return main_label(index_of[names[1]])
    if names[:2] == ['mmtm', 'excite']:
      return bypass_label(int(names[2]))
    if names[:2] == ['mmtm', 'squeeze']:
      return SHARED_BYPASS
    return 'other'

  return jax.tree_util.tree_map_with_path(label, params)


def conditional_utilization(accuracy: jax.Array, accuracy_flow_off: jax.Array) -> jax.Array:
  """`u = (A - A_off) / A` per branch: how much each branch relies on the other modalities.

  Args:
    accuracy: `[M]` accuracy of each modality's branch with all information flows on, > 0
      (fractions or percentages alike: the rate is scale-free).
    accuracy_flow_off: `[M]` the same with the cross-modal flow into that branch turned off
      (e.g. replaced by its training-set average), >= 0.

  Returns:
    `[M]` conditional utilisation rates. For two modalities `u[0] = u(m1 | m0)` and
    `u[1] = u(m0 | m1)`, so the paper's imbalance `d_util = u(m1 | m0) - u(m0 | m1)` is
    `u[0] - u[1]`.

  Raises:
    ValueError: an argument is not `[M]` or the shapes differ, or (concrete) an `accuracy`
      entry is not > 0 or an `accuracy_flow_off` entry is negative, NaN or infinite.
    TypeError: an argument is not floating-point.
  """
  for value, name, positive in ((accuracy, 'accuracy', True),
                                (accuracy_flow_off, 'accuracy_flow_off', False)):
    checks.check_rank_at_least(value, 1, name, '[M]')
    checks.check_floating(value, name)
    checks.check_scalar(value, name, low=0, low_open=positive)
  if jnp.shape(accuracy) != jnp.shape(accuracy_flow_off):
    raise ValueError(f'accuracy and accuracy_flow_off must have the same shape [M]; got shapes '
                     f'{jnp.shape(accuracy)} and {jnp.shape(accuracy_flow_off)}.')
  return (accuracy - accuracy_flow_off) / accuracy


def _label_lookup(group_labels):
  """A function from a leaf's path string (`labels.leaf_path`) to its group label."""
  if callable(group_labels):
    return group_labels
  table = {labels_lib.leaf_path(path): label
           for path, label in jax.tree_util.tree_flatten_with_path(group_labels)[0]}

  def lookup(path):
    if path not in table:
      raise ValueError(f'group_labels has no label for the parameter {path!r}; it labels '
                       f'{sorted(table)[:8]}.')
    return table[path]

  return lookup


def group_sums(tree: Any, group_labels: Any, num_modalities: int) -> jax.Array:
  """`[2, M]` sums of squares of `tree`'s leaves per group: row 0 main, row 1 bypass.

  Args:
    tree: parameters or gradients (a subtree with `optax.MaskedNode`s is fine).
    group_labels: a label pytree covering `tree`'s leaf paths, or a callable from a leaf path
      (`lqmm.optim.leaf_path`) to its label.
    num_modalities: M.

  Raises:
    ValueError: a main or bypass group has no leaf, or a leaf has no label.
  """
  lookup = _label_lookup(group_labels)
  sums = [[None] * num_modalities for _ in range(2)]
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    label = lookup(labels_lib.leaf_path(path))
    squares = jnp.sum(jnp.square(checks.upcast(leaf)))
    for modality in range(num_modalities):
      for row, names in enumerate(((main_label(modality),),
                                   (bypass_label(modality), SHARED_BYPASS))):
        if label in names:
          sums[row][modality] = squares if sums[row][modality] is None else (
              sums[row][modality] + squares)
  empty = [name for row, make in enumerate((main_label, bypass_label))
           for modality in range(num_modalities) if sums[row][modality] is None
           for name in [make(modality)]]
  if empty:
    raise ValueError(f'group_labels leaves the groups {empty} empty; label every modality\'s main '
                     f'branch and bypass (or {SHARED_BYPASS!r}).')
  return jnp.stack([jnp.stack(row) for row in sums])


class GateMeans(NamedTuple):
  """Running means of the cross-modal gates (the constants of re-balancing steps).

  Attributes:
    count: `i32[]` updates so far.
    values: one `[C_m]` cumulative mean per modality.
  """
  count: jax.Array
  values: tuple


def init_gate_means(channels: Sequence[int], dtype=jnp.float32) -> GateMeans:
  """Zero means for gates of `channels` widths (the first update overwrites them)."""
  return GateMeans(jnp.zeros([], jnp.int32),
                   tuple(jnp.zeros((width,), dtype) for width in channels))


def update_gate_means(means: GateMeans, gates: Sequence[jax.Array], *,
                      faithful: bool = False) -> GateMeans:
  """Adds one step's batch-mean gates `[C_m]` to the cumulative means.

  Args:
    means: the running means.
    gates: this step's batch-mean gate of every modality (before any replacement).
    faithful: the original's slip: every modality's mean is fed modality 0's gates (it needs
      equal widths).

  Returns:
    The updated means.
  """
  if len(gates) != len(means.values):
    raise ValueError(f'gates must hold {len(means.values)} modalities; got {len(gates)}.')
  if faithful:
    gates = [gates[0]] * len(gates)
  count = means.count + 1
  weight = 1 / count.astype(means.values[0].dtype)
  values = tuple(old * (1 - weight) + gate.astype(old.dtype) * weight
                 for old, gate in zip(means.values, gates))
  return GateMeans(count, values)


class GreedyState(NamedTuple):
  """State of `greedy_schedule`.

  Attributes:
    speeds: `[2, M]` cumulative learning speeds `sum_t |g_t|^2 / |w_t|^2`, row 0 main, row 1
      bypass, summed over the steps where they were measured.
    balance: `[M]` the BDRs `log10(bypass / main)` of the last measurement.
    curating: bool, whether the next step is a re-balancing step.
    caring: `i32[]` the modality the re-balancing steps care for.
    curation_step: `i32[]` re-balancing steps taken in the current window.
    gate_means: running means of the cross-modal gates (with `channels`; empty otherwise).
  """
  speeds: jax.Array
  balance: jax.Array
  curating: jax.Array
  caring: jax.Array
  curation_step: jax.Array
  gate_means: GateMeans

  def model_kwargs(self) -> dict:
    """The re-balancing options of `lqmm.nn.mmtm.MMTM` for the next forward."""
    num_modalities = self.balance.shape[0]
    replace = self.curating & (jnp.arange(num_modalities) == self.caring)
    return {'replace': replace, 'constants': list(self.gate_means.values)}


def greedy_schedule(group_labels: Any, num_modalities: int = 2, *, epsilon: float = 0.01,
                    window: int = 5, start_epoch: int = 1,
                    channels: Sequence[int] | None = None,
                    faithful_gate_means: bool = False) -> optax.GradientTransformationExtraArgs:
  """Tracks conditional learning speeds and decides the re-balancing steps; updates unchanged.

  `update` needs `params` and the keyword-only extra arg `epoch` (0-based). Chain it before the
  optimizer so that it sees the raw gradients, as the original's callback does.

  Args:
    group_labels: a pytree of `params`' structure labelling every leaf `main_label(m)`,
      `bypass_label(m)`, `SHARED_BYPASS` or anything else (ignored); or a callable from a leaf
      path (`lqmm.optim.leaf_path`) to its label (useful inside `optax.partition`).
    num_modalities: M.
    epsilon: the BDR spread that triggers re-balancing (the paper's alpha; 0.01).
    window: re-balancing steps per trigger (5).
    start_epoch: first epoch (0-based) that may re-balance (the original's 2, 1-based).
    channels: gate widths `C_m`: the state then keeps the running gate means that re-balancing
      steps use (`GreedyState.model_kwargs`), and `update` needs the extra arg `gates` (this
      step's batch-mean gates, `BalanceOutputs.gates` of `lqmm.nn.GreedyNet`).
    faithful_gate_means: feed every running mean from modality 0's gates (the original's slip).

  Returns:
    An `optax.GradientTransformationExtraArgs` whose state is a `GreedyState`.

  Raises:
    ValueError: bad `num_modalities` or `window`.

  Example:
    >>> labels = {'a': 'main:0', 'b': 'main:1', 'x': 'bypass:0', 'y': 'bypass:1'}
    >>> params = {'a': jnp.ones(2), 'b': jnp.ones(2), 'x': jnp.ones(2), 'y': jnp.ones(2)}
    >>> grads = {'a': jnp.ones(2), 'b': jnp.ones(2), 'x': 3 * jnp.ones(2), 'y': jnp.ones(2)}
    >>> tx = greedy_schedule(labels)
    >>> _, state = tx.update(grads, tx.init(params), params, epoch=1)
    >>> bool(state.curating), int(state.caring)
    (True, 0)
  """
  if num_modalities < 2:
    raise ValueError(f'num_modalities must be >= 2; got {num_modalities}.')
  if isinstance(window, int) and window < 1:
    raise ValueError(f'window must be >= 1; got {window}.')

  def init_fn(params):
    del params
    return GreedyState(speeds=jnp.zeros((2, num_modalities), jnp.float32),
                       balance=jnp.zeros((num_modalities,), jnp.float32),
                       curating=jnp.asarray(False), caring=jnp.zeros([], jnp.int32),
                       curation_step=jnp.zeros([], jnp.int32),
                       gate_means=init_gate_means(channels or ()))

  def update_fn(updates, state, params=None, *, epoch=None, gates=None, **other_extra_args):
    del other_extra_args
    extra_args.require('greedy_schedule', epoch=epoch)
    gate_means = state.gate_means
    if channels:
      extra_args.require('greedy_schedule (channels are set)', gates=gates)
      gate_means = update_gate_means(gate_means, gates, faithful=faithful_gate_means)
    if params is None:
      raise TypeError('greedy_schedule.update needs params (the weight norms enter the learning '
                      'speed); call tx.update(grads, state, params, epoch=...).')
    measure = (epoch < start_epoch) | ~state.curating
    speeds_now = (group_sums(updates, group_labels, num_modalities)
                  / group_sums(params, group_labels, num_modalities))
    speeds = jnp.where(measure, state.speeds + speeds_now.astype(state.speeds.dtype),
                       state.speeds)
    balance = jnp.where(measure, jnp.log10(speeds[1] / speeds[0]), state.balance)
    spread = balance.max() - balance.min()
    trigger = (epoch >= start_epoch) & ~state.curating & (spread > epsilon)
    leader = jnp.argmax(balance).astype(jnp.int32)
    step = state.curation_step + 1
    finished = state.curating & (step >= window)
    curating = jnp.where(state.curating, ~finished, trigger)
    caring = jnp.where(state.curating, state.caring, jnp.where(trigger, leader, 0))
    curation_step = jnp.where(state.curating, step, 0)
    return updates, GreedyState(speeds, balance, curating, caring.astype(jnp.int32),
                                curation_step.astype(jnp.int32), gate_means)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
