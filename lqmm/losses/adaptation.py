"""Test-time adaptation losses of READ (reliability-bias test-time adaptation).

On an unlabelled test batch whose modalities are of uneven reliability, READ adapts only the
fusion attention's query / key / value projections (see `lqmm.optim.adapt_selected`) to
minimise, for logits `z [B, K]`, `p = softmax(z)` and `m_b = max_k p_bk`:

- `reliability_aware(z)`: `mean_b m_b (1 - log m_b + log gamma)`. Its gradient in `m_b` is
  `log(gamma / m_b) / B`, so a descent step sharpens the rows more confident than `gamma` and
  flattens the others (gamma = 1/e, where the term is `-mean m log m`);
- `balance_entropy(z)`: `H(softmax(sum_b p_b))`, the entropy of the softmax of the batch's
  summed probabilities (of the sum, as the original code computes it, not of the mean), which
  the total rewards so the batch does not collapse onto one class;
- `read_loss(z) = reliability_aware(z) - balance_weight * balance_entropy(z)`.

The gradient of the maximum goes to the first maximal class of each row, as torch's `max`
(not split between tied classes as `jnp.max`'s). Parity with the original code (XLearning-SCU/
2024-ICLR-READ, commit 2f11912): `tests/reference/PROVENANCE_read.md`.

Reference:
  Yang, Yang, Peng, Sun, Peng, "Test-time Adaptation against Multi-modal Reliability Bias",
  ICLR 2024.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from lqmm import checks

__all__ = ['balance_entropy', 'read_loss', 'reliability_aware']

#: READ's confidence threshold, `exp(-1)`.
GAMMA = math.exp(-1)


def _logits(logits) -> jax.Array:
  if jnp.ndim(logits) != 2:
    raise ValueError(f'logits must be a batch [B, K]; got shape {jnp.shape(logits)}.')
  logits = checks.as_log_probs(logits, 'logits', '[B, K]', rank=2)
  checks.check_nonempty(logits, 'logits')
  return logits


def _confidence(logits: jax.Array) -> jax.Array:
  """`max_k softmax(z)_k` with the gradient on the first maximal class (torch's `max`)."""
  probs = jax.nn.softmax(logits, axis=-1)
  first = jnp.argmax(jax.lax.stop_gradient(probs), axis=-1)
  return jnp.take_along_axis(probs, first[:, None], axis=-1)[:, 0]


def reliability_aware(logits: jax.Array, *, gamma=GAMMA) -> jax.Array:
  """READ's confidence term `mean_b m_b (1 - log m_b + log gamma)` of logits `[B, K]`.

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(reliability_aware(jnp.array([[0.0, 0.0]]))), 4)   # 0.5 (1 - log 0.5 - 1)
    0.3466
  """
  if jnp.ndim(gamma) != 0:
    raise ValueError(f'gamma must be a scalar; got shape {jnp.shape(gamma)}.')
  checks.check_scalar(gamma, 'gamma', low=0, high=1, low_open=True)
  confidence = _confidence(_logits(logits))
  log_gamma = jnp.log(jnp.asarray(gamma, confidence.dtype))
  return jnp.mean(confidence * (1 - jnp.log(confidence) + log_gamma))


def balance_entropy(logits: jax.Array) -> jax.Array:
  """`H(softmax(sum_b softmax(z_b)))`, the entropy READ maximises to keep classes balanced."""
  probs = jax.nn.softmax(_logits(logits), axis=-1)
  return -jnp.sum(jax.nn.softmax(jnp.sum(probs, axis=0)) *
                  jax.nn.log_softmax(jnp.sum(probs, axis=0)))


def read_loss(logits: jax.Array, *, gamma=GAMMA, balance_weight=1.0) -> jax.Array:
  """READ's test-time objective `reliability_aware - balance_weight * balance_entropy`."""
  checks.check_scalar(balance_weight, 'balance_weight', low=0)
  return (reliability_aware(logits, gamma=gamma) -
          balance_weight * balance_entropy(logits))
