"""A switch that turns lqmm's value checks on inside `jax.jit`, `jax.grad` and `jax.vmap`.

lqmm checks every argument it can: shapes and dtypes at trace time (always, also under
`jax.jit`), values (NaN, infinity, negative evidence, labels out of range, a fused result that
overflowed) on concrete arrays. Inside a transformation the values are tracers, so by default a
value check is skipped there: a jitted training step pays nothing for it.

With the switch on, each value check that meets a tracer is staged into the computation as a
`jax.debug.callback` that raises the same error, with the same message, when the program runs.
The error surfaces as a `jax.errors.JaxRuntimeError` whose text contains the original
`ValueError` and its message (which names the argument). It works under `jit`, `grad`, `vmap`,
`lax.scan` and sharded programs, at the cost of a host round trip per check: use it to find a
problem, not in production runs.

The switch acts when a function is traced. Turning it on or off clears JAX's caches of traced
and compiled functions, so that the next call of an already jitted function is traced again with
(or without) the checks.

Usage::

    from lqmm import debug

    with debug.checking():            # value checks staged into every function traced inside
      loss, grads = train_step(state, batch)   # raises JaxRuntimeError naming the argument

    debug.enable()                    # or on for the rest of the process
    debug.disable()

NaN or infinity *produced* inside a computation from valid inputs (e.g. by a custom loss) is
what JAX's own `jax.config.update('jax_debug_nans', True)` finds; lqmm's switch checks the
arguments of lqmm's functions and their documented overflow conditions.
"""

from __future__ import annotations

import contextlib
import threading

import jax

__all__ = ['checking', 'disable', 'enable', 'enabled']

_STATE = threading.local()


def enabled() -> bool:
  """True when value checks are staged into traced functions (see the module docstring)."""
  return getattr(_STATE, 'enabled', False)


def _set(value: bool) -> None:
  if enabled() != value:
    jax.clear_caches()  # retrace jitted functions with (without) the staged checks
  _STATE.enabled = value


def enable() -> None:
  """Stages lqmm's value checks into functions traced from now on (clears JAX's caches)."""
  _set(True)


def disable() -> None:
  """Stops staging value checks (the default; clears JAX's caches when it was on)."""
  _set(False)


@contextlib.contextmanager
def checking(on: bool = True):
  """Context manager: value checks staged into functions traced inside it (`on=True`).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from lqmm import debug, fusion
    >>> fused = jax.jit(fusion.dempster_shafer.fuse)
    >>> with debug.checking():
    ...   try:
    ...     fused(jnp.array([[[0.5, 1.0]]])).block_until_ready()
    ...   except jax.errors.JaxRuntimeError as error:
    ...     print('negative evidence' in str(error))
    True
  """
  previous = enabled()
  _set(on)
  try:
    yield
  finally:
    _set(previous)
