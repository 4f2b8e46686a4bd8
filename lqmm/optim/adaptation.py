"""Test-time adaptation of a chosen part of a model, as one optax transform.

READ (Yang et al., ICLR 2024) adapts only the query / key / value projections of the fusion
transformer's attention on each unlabelled test batch, one optimizer step per batch, without
resetting between batches (continual), and scores the batch with a second forward after its
update. `adapt_selected(tx, params, pattern)` is that selection as an optax transform: `tx`
(READ: Adam 1e-4) acts on the leaves whose path matches `pattern` (a regular expression on
`/`-joined paths, as `lqmm.optim.modality_labels`), every other leaf gets a zero update. A
pattern that matches nothing is an error (the original selects by exact module names under a
`DataParallel` prefix and, on an unwrapped model, silently adapts nothing).

The losses are `lqmm.losses.adaptation` (`read_loss`).
"""

from __future__ import annotations

import optax

from lqmm.optim.labels import modality_labels

__all__ = ['adapt_selected']

ADAPT, FROZEN = 'adapt', 'frozen'


def adapt_selected(tx: optax.GradientTransformation, params, pattern: str
                      ) -> optax.GradientTransformation:
  """`tx` on the leaves of `params` whose path matches `pattern`; zero updates elsewhere.

  Args:
    tx: the optimizer of the adapted leaves (READ: `optax.adam(1e-4)`).
    params: the parameter tree (its structure labels the leaves).
    pattern: a regular expression searched in each leaf's `/`-joined path, e.g.
      `r'fusion/blocks/0/attention/(query|key|value)/'`.

  Returns:
    An `optax.GradientTransformation` (an `optax.partition`).

  Raises:
    ValueError: `pattern` matches no leaf.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> params = {'encoder': {'w': jnp.ones(2)}, 'fusion': {'query': jnp.ones(2)}}
    >>> tx = adapt_selected(optax.sgd(0.5), params, '^fusion/query')
    >>> grads = {'encoder': {'w': jnp.ones(2)}, 'fusion': {'query': jnp.ones(2)}}
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> updates['encoder']['w'], updates['fusion']['query']
    (Array([0., 0.], dtype=float32), Array([-0.5, -0.5], dtype=float32))
  """
  labels = modality_labels(params, {ADAPT: pattern}, default=FROZEN)
  return optax.partition({ADAPT: tx, FROZEN: optax.set_to_zero()}, labels)
