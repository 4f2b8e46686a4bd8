"""Input and output validation shared by lqmm's primitives.

Every check raises an error that names the argument, the expected and the received shape or
value. Shape checks run at trace time, so they also fire under `jax.jit`. Value checks (NaN,
negative evidence, label range, a fused result that overflowed its dtype) need concrete values:
they run on concrete arrays (Python, NumPy and JAX scalars and arrays alike) and are skipped
for tracers, where a Python error is impossible, unless `lqmm.debug` is on: then each one is
staged into the traced function as a callback that raises the same error when it runs (see
`lqmm.debug`).

Functions named `check_*` return nothing. Functions named `as_*` validate an argument and return
it upcast to at least float32 (the fusion dtype); they take `(x, name, layout, rank)`: the
argument, its name in error messages, its expected layout (e.g. `'[M, ..., K]'`) and its minimum
number of dimensions, and raise TypeError for a non-floating `x` and ValueError for too few
dimensions or (concrete) invalid values.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import debug


def is_concrete(x) -> bool:
  """True when `x` holds concrete values (not a tracer inside a transformation)."""
  return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(x))


def _raise_problem(find_problem: Callable, *values) -> None:
  """Raises ValueError with `find_problem(*numpy values)` when that is not None."""
  message = find_problem(*(np.asarray(value) for value in values))
  if message is not None:
    raise ValueError(message)


def check_values(find_problem: Callable[..., str | None], *values) -> None:
  """Runs a value check on concrete `values`, or stages it when `lqmm.debug` is on.

  Args:
    find_problem: `(*numpy arrays) -> message or None`; a message becomes a ValueError.
    *values: the arrays (or scalars) to check; Python, NumPy and JAX values alike.

  Raises:
    ValueError: `find_problem` returned a message for concrete `values`. For tracers the check
      is skipped, or, with `lqmm.debug` on, raised when the traced program runs.
  """
  if all(is_concrete(value) for value in values):
    _raise_problem(find_problem, *values)
  elif debug.enabled():
    jax.debug.callback(functools.partial(_raise_problem, find_problem), *values)


def _show(values: np.ndarray) -> str:
  """A short text for a scalar or the range of an array, for error messages."""
  if values.size == 1:
    return repr(values.reshape(()).item())
  if values.size == 0:
    return 'an empty array'
  finite = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
  special = []
  if np.issubdtype(values.dtype, np.floating):
    special = [f'{int(np.count_nonzero(test(values)))} {what}'
               for test, what in ((np.isnan, 'NaN'), (np.isinf, 'infinite'))
               if np.any(test(values))]
  shown = (f'values in [{finite.min().item()!r}, {finite.max().item()!r}]' if finite.size
           else 'no finite values')
  return shown + (f' ({", ".join(special)})' if special else '')


def _is_integer(value) -> bool:
  """True for Python, NumPy and 0-d JAX integers; False for bools."""
  if isinstance(value, (bool, np.bool_)):
    return False
  if isinstance(value, numbers.Integral):
    return True
  if isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 0:
    return np.issubdtype(np.asarray(value).dtype, np.integer)
  return False


def check_integer(value, name: str, *, minimum: int | None = None,
                  maximum: int | None = None) -> int:
  """Returns `value` as an int, or raises naming `name` when it is not an integer in range.

  Python, NumPy and 0-d JAX integers are accepted; bools and floats are not.
  """
  if not _is_integer(value):
    raise TypeError(f'{name} must be an integer; got {value!r} ({type(value).__name__}).')
  value = int(value)
  if minimum is not None and value < minimum:
    raise ValueError(f'{name} must be >= {minimum}; got {value}.')
  if maximum is not None and value > maximum:
    raise ValueError(f'{name} must be <= {maximum}; got {value}.')
  return value


def check_scalar(value, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False,
                 allow_inf: bool = False) -> None:
  """Raises ValueError when a (concrete) hyper-parameter is NaN, infinite or out of range.

  Python, NumPy and JAX scalars (and arrays, checked entry by entry) are treated alike.

  Args:
    value: the hyper-parameter.
    name: its argument name, for the message.
    low: the lower bound, or None for none.
    high: the upper bound, or None for none.
    low_open: exclude `low` itself (`value > low`).
    high_open: exclude `high` itself (`value < high`).
    allow_inf: accept an infinite value (within the bounds).

  Raises:
    TypeError: `value` is not a real number. ValueError: out of range, NaN or infinite.

  Example:
    >>> import numpy as np
    >>> check_scalar(np.float32(-1.0), 'temperature', low=0, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: temperature must be > 0 and finite; got -1.0.
  """
  if isinstance(value, (str, bytes)) or value is None or (
      not jnp.issubdtype(jnp.result_type(value), jnp.number) and
      jnp.result_type(value) != jnp.bool_):
    raise TypeError(f'{name} must be a real number; got {value!r}.')
  if low is not None and high is not None:
    wanted = (f'lie in {"(" if low_open else "["}{low:g}, {high:g}{")" if high_open else "]"}')
  elif low is not None:
    wanted = f'be {">" if low_open else ">="} {low:g}'
  elif high is not None:
    wanted = f'be {"<" if high_open else "<="} {high:g}'
  else:
    wanted = 'be finite'
  if (low is None) != (high is None) and not allow_inf:
    wanted += ' and finite'

  def find_problem(given):
    values = given.astype(np.float64)
    bad = np.isnan(values)
    if not allow_inf:
      bad |= np.isinf(values)
    if low is not None:
      bad |= (values <= low) if low_open else (values < low)
    if high is not None:
      bad |= (values >= high) if high_open else (values > high)
    if np.any(bad):
      return f'{name} must {wanted}; got {_show(given)}.'
    return None

  check_values(find_problem, value)


def check_rank_at_least(x, rank: int, name: str, layout: str) -> None:
  """Raises ValueError when `x` has fewer than `rank` dimensions."""
  if jnp.ndim(x) < rank:
    raise ValueError(
        f'{name} must have at least {rank} dimension(s) laid out as {layout}; '
        f'got shape {jnp.shape(x)}.')


def check_floating(x, name: str) -> None:
  """Raises TypeError when `x` is not a floating-point array."""
  if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
    raise TypeError(f'{name} must be a floating-point array; got dtype {jnp.result_type(x)}.')


def check_finite(x, name: str) -> None:
  """Raises ValueError when a concrete `x` holds NaN or infinity."""

  def find_problem(values):
    if np.all(np.isfinite(values)):
      return None
    bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
    return f'{name} holds {bad} NaN or infinite value(s); expected finite values.'

  check_values(find_problem, x)


def check_stacked(x, name: str, layout: str = '[M, ..., K]', rank: int = 2) -> None:
  """Raises unless `x` is a floating stack `[M, ...]` of at least `rank` dims with M >= 1."""
  check_rank_at_least(x, rank, name, layout)
  check_floating(x, name)
  if jnp.shape(x)[0] == 0:
    raise ValueError(f'{name} has no modalities (M = 0 along axis 0 of {layout}); fusion needs '
                     'at least one (mark absent ones in the mask instead).')


def as_floats(x, name: str, layout: str, rank: int = 1) -> jax.Array:
  """A floating input of at least `rank` dims, checked finite, upcast to at least float32."""
  check_rank_at_least(x, rank, name, layout)
  check_floating(x, name)
  check_finite(x, name)
  return upcast(x)


def check_nonempty(x, name: str, axis: int = 0, what: str = 'batch') -> None:
  """Raises ValueError when `x` has no entries along `axis` (e.g. an empty batch).

  A mean over an empty batch is NaN; lqmm's reductions refuse it instead.
  """
  shape = jnp.shape(x)
  if len(shape) > axis and shape[axis] == 0:
    raise ValueError(f'{name} has an empty {what} (shape {shape}); there is nothing to '
                     'average over.')


def check_dirichlet(alpha, name: str) -> None:
  """Raises when concrete Dirichlet parameters are NaN, infinite or below 1.

  lqmm's evidential rules take alpha = evidence + 1 with evidence >= 0, so alpha >= 1.
  """
  check_floating(alpha, name)
  check_finite(alpha, name)

  def find_problem(values):
    if not np.any(values < 1):
      return None
    return (f'{name} must be Dirichlet parameters alpha = evidence + 1 >= 1 (non-negative '
            f'evidence); got minimum {values.min().item()!r}, i.e. negative evidence '
            f'{values.min().item() - 1!r}.')

  check_values(find_problem, alpha)


def check_mask(mask, expected_shape: Sequence[int], name: str = 'mask') -> None:
  """Raises when `mask` is not a bool array of `expected_shape`."""
  if tuple(jnp.shape(mask)) != tuple(expected_shape):
    raise ValueError(
        f'{name} must have shape {tuple(expected_shape)} (modality axis first, then the batch '
        f'dims of the input); got shape {tuple(jnp.shape(mask))}.')
  if jnp.result_type(mask) != jnp.bool_:
    raise TypeError(f'{name} must be a bool array (True = present); got dtype '
                    f'{jnp.result_type(mask)}.')


def check_labels(labels, num_classes: int, batch_shape: Sequence[int], name: str = 'labels'):
  """Raises when labels are not integers of `batch_shape` within [0, num_classes)."""
  if tuple(jnp.shape(labels)) != tuple(batch_shape):
    raise ValueError(f'{name} must have shape {tuple(batch_shape)} (the batch dims of alpha); '
                     f'got shape {tuple(jnp.shape(labels))}.')
  if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
    raise TypeError(f'{name} must be integer class indices; got dtype {jnp.result_type(labels)}.')

  def find_problem(values):
    if values.size and (values.min() < 0 or values.max() >= num_classes):
      return (f'{name} must lie in [0, {num_classes}); got values in '
              f'[{values.min().item()}, {values.max().item()}].')
    return None

  check_values(find_problem, labels)


def check_key(key, name: str = 'key') -> None:
  """Raises unless `key` is one typed PRNG key from `jax.random.key(seed)`."""
  if key is None or not isinstance(key, jax.Array) or not jnp.issubdtype(
      key.dtype, jax.dtypes.prng_key):
    received = 'None' if key is None else f'{type(key).__name__} of dtype {jnp.result_type(key)}'
    raise TypeError(f'{name} must be a typed PRNG key from jax.random.key(seed); got {received}.')
  if key.shape:
    raise ValueError(f'{name} must be a single key (shape ()); got shape {key.shape}.')


def check_order(order: Sequence[str], available, name: str, kind: str = 'modality') -> None:
  """Raises KeyError naming the first entry of `order` missing from `available` (a mapping).

  `name` is how the message calls `available` (e.g. 'dims', 'shapes', 'inputs').
  """
  missing = [entry for entry in order if entry not in available]
  if not missing:
    return
  if name == 'inputs':
    raise KeyError(f'inputs has no {kind} {missing[0]!r}; it has {sorted(available)}.')
  raise KeyError(f'Unknown {kind} {missing[0]!r} in order; {name} has {sorted(available)}.')


def upcast(x) -> jax.Array:
  """Casts floating `x` to at least float32 (bfloat16/float16 encoders, float32+ fusion math)."""
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.floating) and jnp.dtype(x.dtype).itemsize < 4:
    return x.astype(jnp.float32)
  return x


def check_broadcastable(a, b, name_a: str, name_b: str) -> None:
  """Raises ValueError when the batch dims (all but the last) of `a` and `b` do not broadcast."""
  try:
    np.broadcast_shapes(jnp.shape(a)[:-1], jnp.shape(b)[:-1])
  except ValueError:
    raise ValueError(f'{name_a} and {name_b} must have broadcastable leading dims; got shapes '
                     f'{jnp.shape(a)} and {jnp.shape(b)}.') from None


def check_modality_inputs(inputs, order: Sequence[str], shapes) -> int:
  """Checks `{modality: [B, *shapes[modality]]}` for every modality of `order` (one batch size
  B for all) and returns B.

  Raises:
    KeyError: a modality of `order` missing from `inputs`.
    ValueError: an input whose per-sample shape differs from `shapes`, or batch sizes that
      differ, naming `inputs[<modality>]`.
  """
  check_order(order, inputs, 'inputs')
  batch = None
  for name in order:
    expected = tuple(shapes[name])
    shape = tuple(jnp.shape(inputs[name]))
    if shape[1:] != expected:
      raise ValueError(f'inputs[{name!r}] must be [B, {", ".join(map(str, expected))}]; got '
                       f'shape {shape}.')
    if batch is not None and shape[0] != batch:
      raise ValueError(f'inputs must share the batch size; inputs[{name!r}] has {shape[0]},'
                       f' the earlier ones {batch}.')
    batch = shape[0]
  return batch


def lookup(table: dict, name: str, what: str):
  """Returns `table[name]` or raises KeyError listing the valid names."""
  try:
    return table[name]
  except KeyError:
    raise KeyError(f'Unknown {what} {name!r}; valid names: {", ".join(sorted(table))}.') from None


def as_pair(a, b, name_a: str, name_b: str, *, validate: Callable
            ) -> tuple[jax.Array, jax.Array]:
  """Validates the two inputs `[..., K]` of a binary `combine(a, b)` and returns them upcast.

  Args:
    a: the first input `[..., K]`.
    b: the second input `[..., K]`.
    name_a: the argument name of `a` in error messages.
    name_b: the argument name of `b` in error messages.
    validate: `(x, name) -> array`, the per-input validator (e.g. `as_dirichlet`).

  Returns:
    `(validate(a), validate(b))`.

  Raises:
    ValueError: the class axes (last) differ, the leading dims do not broadcast, or
      `validate` raises.
  """
  a, b = validate(a, name_a), validate(b, name_b)
  if jnp.shape(a)[-1:] != jnp.shape(b)[-1:]:
    raise ValueError(f'{name_a} and {name_b} must have the same number of classes K (last '
                     f'axis); got shapes {jnp.shape(a)} and {jnp.shape(b)}.')
  check_broadcastable(a, b, name_a, name_b)
  return a, b


def as_dirichlet(alpha, name: str = 'alpha', layout: str = '[..., K]', rank: int = 1
                 ) -> jax.Array:
  """Dirichlet parameters `alpha = evidence + 1 >= 1`, checked (no NaN, inf or alpha < 1)."""
  check_rank_at_least(alpha, rank, name, layout)
  check_dirichlet(alpha, name)
  return upcast(alpha)


def as_log_probs(log_probs, name: str = 'log_probs', layout: str = '[..., K]', rank: int = 1
                 ) -> jax.Array:
  """Log-probabilities or logits, checked (no NaN; `-inf`, a zero probability, is allowed)."""
  check_rank_at_least(log_probs, rank, name, layout)
  check_floating(log_probs, name)

  def find_problem(values):
    if np.any(np.isnan(values)):
      return f'{name} holds NaN; expected log-probabilities (use -inf for zero).'
    if np.any(values == np.inf):
      return (f'{name} holds +inf; expected log-probabilities or logits (finite, or -inf for a '
              'zero probability).')
    return None

  check_values(find_problem, log_probs)
  return upcast(log_probs)


def as_probabilities(probs, name: str = 'probs', layout: str = '[..., K]', rank: int = 1
                     ) -> jax.Array:
  """Probabilities, checked (finite, in [0, 1])."""
  probs = as_floats(probs, name, layout, rank)

  def find_problem(values):
    if values.size and (values.min() < 0 or values.max() > 1):
      return (f'{name} must be probabilities in [0, 1]; got values in '
              f'[{values.min().item()!r}, {values.max().item()!r}].')
    return None

  check_values(find_problem, probs)
  return probs


def check_normalized(probs, name: str = 'probs') -> None:
  """Raises ValueError when concrete probabilities `[..., K]` do not sum to 1 over the last axis.

  The tolerance is 1e-3 (1e-2 for 16-bit floats): softmax outputs pass, logits and unnormalised
  scores do not.
  """
  tolerance = 1e-2 if jnp.dtype(jnp.result_type(probs)).itemsize < 4 else 1e-3

  def find_problem(values):
    sums = values.astype(np.float64).sum(axis=-1)
    if sums.size and np.max(np.abs(sums - 1)) > tolerance:
      return (f'{name} must be probabilities that sum to 1 over the last (class) axis; got row '
              f'sums in [{sums.min().item()!r}, {sums.max().item()!r}] (pass softmax(logits), '
              'not logits).')
    return None

  check_values(find_problem, probs)


def _invalid_count(leaves, allow_negative_infinity: bool) -> tuple[int, int]:
  """`(invalid, total)` entries over numpy `leaves`."""
  invalid = total = 0
  for values in leaves:
    bad = np.isnan(values) | (values == np.inf)
    if not allow_negative_infinity:
      bad |= values == -np.inf
    invalid += int(np.count_nonzero(bad))
    total += values.size
  return invalid, total


def _wider_advice(dtype_name: str) -> str:
  """The float64 advice of an overflow message (none when the dtype is already float64)."""
  if jnp.dtype(dtype_name).itemsize >= 8:
    return ''
  return 'run the fusion in float64 (float64 inputs under `with jax.enable_x64(True):`) or '


def check_fused(fused, name: str, *, quantity: str = 'fused evidence',
                remedy: str = 'bound the evidence') -> None:
  """Raises ValueError when a concrete fused result overflowed its dtype.

  Fusion rules whose inputs were checked finite call this on their output: an infinite or NaN
  entry then means the result left the dtype's range (e.g. Dempster-Shafer fusion of many
  confident modalities in float32). Under `jax.jit` (a tracer) the check is skipped.

  Args:
    fused: the fused array, or a pytree of arrays (e.g. an `NIG`).
    name: the input argument(s) of the fusion, named in the message (e.g. `'alpha'`).
    quantity: what overflowed, for the message (e.g. `'fused evidence'`).
    remedy: what to do besides float64, for the message.

  Raises:
    ValueError: a concrete leaf of `fused` holds NaN or infinity.
  """
  leaves = jax.tree.leaves(fused)
  if not leaves:
    return
  dtype = jnp.dtype(jnp.result_type(leaves[0])).name

  def find_problem(*values):
    invalid, total = _invalid_count(values, allow_negative_infinity=False)
    if not invalid:
      return None
    return (f'Fusing {name} overflowed {dtype}: {invalid} of the {total} values of the '
            f'{quantity} are infinite or NaN. To fix it, {_wider_advice(dtype)}{remedy}.')

  check_values(find_problem, *leaves)


def check_fused_log_probs(log_probs, name: str) -> None:
  """Raises ValueError when concrete fused log-probabilities hold NaN or `+inf`.

  A product of experts (or a Bayesian product) normalises `sum_m log p_m` over classes; a row
  is NaN when every class's sum is `-inf`: the experts give every class zero probability
  between them (disjoint supports), or the sum of very negative log-probabilities overflowed
  the dtype. `-inf` entries are valid (zero probability). Skipped under `jax.jit`.

  Args:
    log_probs: the fused log-probabilities `[..., K]`.
    name: the input argument(s) of the fusion, named in the message.

  Raises:
    ValueError: a concrete entry of `log_probs` is NaN or `+inf`.
  """
  dtype = jnp.dtype(jnp.result_type(log_probs)).name

  def find_problem(values):
    invalid, total = _invalid_count([values], allow_negative_infinity=True)
    if not invalid:
      return None
    return (
        f'Fusing {name} gave NaN: {invalid} of the {total} fused log-probabilities are NaN, '
        'where every class\'s summed log-probability is -inf. Either the sum of very negative '
        f'log-probabilities overflowed {dtype}; to fix it, {_wider_advice(dtype)}bound the '
        'log-probabilities from below (e.g. clip them at -1e4). Or the modalities give every '
        'class zero probability between them (disjoint supports), which no dtype can fuse.')

  check_values(find_problem, log_probs)
