"""Fast log-gamma, digamma and trigamma for positive arguments, with cheap derivatives.

Evidential losses evaluate `lgamma` and `digamma` of Dirichlet parameters at every step, and
their gradients need `trigamma`. XLA's generic lowerings of these functions (and JAX's
`polygamma`, built on the Hurwitz zeta function) dominate the compile and run time of small
evidential models on CPU. Here each function shifts its argument by the recurrence
`f(x) = f(x + n) - (terms in x, ..., x + n - 1)` and then uses the asymptotic (Stirling / de
Moivre) series at `z = x + n`, with `n = 8` in float64 and `n = 4` in float32, so the results
agree with SciPy to ~1e-14 in float64 and to float32 rounding in float32.

The derivatives are declared with `jax.custom_jvp`: `lgamma' = digamma`,
`digamma' = trigamma`; trigamma is differentiated by ordinary autodiff of its series.

Valid for `x > 0` (Dirichlet parameters); the results for `x <= 0` are not meaningful.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_SHIFT = 8


def _shifted(x):
  """The recurrence terms `x + i` for `i < n` and the shifted argument `z = x + n`.

  `n` is 8 in float64 (truncation error < 1e-14 at z >= 8) and 4 in lower precision (< 1e-9
  at z >= 4, far below float32 rounding), which halves the work in float32.
  """
  shift = _SHIFT if jnp.result_type(x) == jnp.float64 else _SHIFT // 2
  terms = [x + i for i in range(shift)]
  return terms, x + shift


def _polynomial(coefficients, y):
  """Horner evaluation of `sum_i coefficients[i] * y**i`."""
  result = coefficients[-1]
  for coefficient in reversed(coefficients[:-1]):
    result = coefficient + y * result
  return result


def _pairwise_reciprocal_sum(terms, power: int):
  """`sum_i 1 / terms[i]**power` with one division per pair of terms.

  With `r = 1 / (a b)`: `1/a + 1/b = r (a + b)` and `1/a^2 + 1/b^2 = (r b)^2 + (r a)^2`. When
  `a b` overflows, `r` is 0, which is the correctly rounded value of the (tiny) terms.
  """
  total = 0
  for a, b in zip(terms[0::2], terms[1::2]):
    reciprocal = 1 / (a * b)
    if power == 1:
      total = total + reciprocal * (a + b)
    else:
      total = total + (reciprocal * a) ** 2 + (reciprocal * b) ** 2
  return total


# Asymptotic series in 1 / z^2 (Bernoulli numbers B_2 ... B_14).
_LGAMMA_SERIES = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156)
_DIGAMMA_SERIES = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12)
_TRIGAMMA_SERIES = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6)


@jax.custom_jvp
def lgamma(x: jax.Array) -> jax.Array:
  """`log Gamma(x)` for `x > 0`, elementwise.

  Example:
    >>> import jax.numpy as jnp
    >>> [round(v, 5) for v in lgamma(jnp.array([1.0, 5.0])).tolist()]
    [0.0, 3.17805]
  """
  terms, z = _shifted(x)
  inverse = 1 / z
  series = inverse * _polynomial(_LGAMMA_SERIES, inverse * inverse)
  stirling = (z - 0.5) * jnp.log(z) - z + 0.5 * math.log(2 * math.pi) + series
  return stirling - sum(jnp.log(term) for term in terms)


@jax.custom_jvp
def digamma(x: jax.Array) -> jax.Array:
  """The digamma function `d/dx log Gamma(x)` for `x > 0`, elementwise.

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(digamma(jnp.array(1.0))), 5)
    -0.57722
  """
  terms, z = _shifted(x)
  inverse = 1 / z
  inverse_sq = inverse * inverse
  series = inverse_sq * _polynomial(_DIGAMMA_SERIES, inverse_sq)
  return jnp.log(z) - 0.5 * inverse - series - _pairwise_reciprocal_sum(terms, power=1)


def trigamma(x: jax.Array) -> jax.Array:
  """The trigamma function `d^2/dx^2 log Gamma(x)` for `x > 0`, elementwise.

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(trigamma(jnp.array(1.0))), 5)
    1.64493
  """
  terms, z = _shifted(x)
  inverse = 1 / z
  inverse_sq = inverse * inverse
  series = inverse + 0.5 * inverse_sq + inverse * inverse_sq * _polynomial(_TRIGAMMA_SERIES,
                                                                           inverse_sq)
  return series + _pairwise_reciprocal_sum(terms, power=2)


@jax.custom_jvp
def dirichlet_kl_term(x: jax.Array, offset) -> jax.Array:
  """`lgamma(x) + x - (x - offset) digamma(x)` for `x > 0`, without cancellation at large `x`.

  The KL divergence of a Dirichlet from the uniform one is a difference of such terms,

      KL(Dir(alpha) || Dir(1)) = g(S, K) - sum_k g(alpha_k, 1) - lgamma(K),   S = sum_k alpha_k,

  where the textbook form subtracts numbers of size `S log S` (float32 loses the KL entirely
  beyond S of about 1e8). Each term here grows only like `log x`: with the shift `z = x + n` of
  `lgamma` and `digamma`, the `x log x` and `x` parts cancel algebraically, leaving

      (n - 1/2 + offset) log z + 1/2 + log(2 pi) / 2 + s_1(z) - sum_i log(x + i)
        - (n + offset) / (2 z) + (x - offset) s_2(z) - sum_i (offset + i) / (x + i),

  with `s_1`, `s_2` the Stirling series of `lgamma` and `digamma`. Its derivative
  `1 - (x - offset) trigamma(x)` is declared with `jax.custom_jvp`.

  Args:
    x: `x > 0`, elementwise.
    offset: a scalar or an array broadcasting against `x` (not differentiated).

  Returns:
    `g(x, offset)`, shaped like `x`.

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(dirichlet_kl_term(jnp.array(1.0), 1.0)), 5)  # lgamma(1) + 1
    1.0
  """
  terms, z = _shifted(x)
  inverse = 1 / z
  inverse_sq = inverse * inverse
  lgamma_series = inverse * _polynomial(_LGAMMA_SERIES, inverse_sq)
  digamma_series = inverse_sq * _polynomial(_DIGAMMA_SERIES, inverse_sq)
  shift = len(terms)
  # (x - c) / (2 z) = 1/2 - (n + c) / (2 z) and (x - c) / (x + i) = 1 - (c + i) / (x + i): the
  # constants cancel the -n, and no product of two large numbers is formed (it would overflow).
  return ((shift - 0.5 + offset) * jnp.log(z) + 0.5 + 0.5 * math.log(2 * math.pi)
          + lgamma_series - sum(jnp.log(term) for term in terms)
          - (shift + offset) * 0.5 * inverse + (x - offset) * digamma_series
          - sum((offset + index) / term for index, term in enumerate(terms)))


@dirichlet_kl_term.defjvp
def _dirichlet_kl_term_jvp(primals, tangents):
  (x, offset), (dx, _) = primals, tangents
  return dirichlet_kl_term(x, offset), (1 - (x - offset) * trigamma(x)) * dx


@lgamma.defjvp
def _lgamma_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  return lgamma(x), digamma(x) * dx


@digamma.defjvp
def _digamma_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  return digamma(x), trigamma(x) * dx
