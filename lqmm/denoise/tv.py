"""Total-variation denoising and weighted TV fusion of several noisy sensors.

Both solve Rudin-Osher-Fatemi (ROF) problems on n-D arrays with the isotropic total variation
of forward differences (a zero difference past the last sample of every axis):

    TV(u) = sum_x |grad u(x)|,   grad_a u(x) = u(x + e_a) - u(x)  (0 on the last slice of a).

`tv_chambolle` is Chambolle's (2004) projection algorithm exactly as scikit-image's
`denoise_tv_chambolle` runs it: it minimises `1/2 ||u - f||^2 + weight TV(u)` through the
dual variable p, `u = f + d(p)`, with scikit-image's step 1 / (2 ndim), its stopping rule (the
normalised energy `(||d||^2 + weight TV(u)) / size` changed by less than `eps` times its first
value) and its return value: the image of the last iteration, computed *before* that
iteration's dual update.

`tv_fusion` fuses M images of the same scene (the survey's variational fusion-and-denoising,
its Eq. 1-2) by minimising

    E(u) = 1/2 sum_m sum_x w_m(x) (u(x) - f_m(x))^2 + lam TV(u)

with scalar or per-pixel weights `w_m >= 0`, by the Chambolle-Pock (2011) primal-dual algorithm
(theta = 1): `u <- (u + tau div p + tau sum_m w_m f_m) / (1 + tau W)` with `W = sum_m w_m`, then
`p <- proj_{|p| <= lam}(p + sigma grad(2 u_new - u_old))`. The steps satisfy
`tau sigma ||grad||^2 < 1` (`||grad||^2 <= 4 ndim`), balanced by default by the scale of the
weights; the iterates then converge and their
distance to the saddle point in the algorithm's metric never increases (tested). The energy
of the iterates is not monotone in general (CP is not a descent method); its trace is returned.
With one image and weight 1, E is ROF's energy, so `tv_fusion` and `tv_chambolle` share the
minimiser; with scalar weights, E equals (up to a constant) the ROF energy of the weighted mean
with data weight W.

Both are pure jnp: `jax.vmap` over a batch of images works, and `tv_fusion` (a `lax.scan` of
`num_iter` steps) and `tv_chambolle` with `eps=0` are differentiable by unrolling, so weights
and `lam` can be learned.

References:
  Chambolle. "An Algorithm for Total Variation Minimization and Applications." JMIV 20, 2004.
  Chambolle, Pock. "A First-Order Primal-Dual Algorithm for Convex Problems with Applications
  to Imaging." JMIV 40, 2011.
  Rudin, Osher, Fatemi. "Nonlinear total variation based noise removal algorithms." Physica D
  60, 1992.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks

__all__ = ['TVFusion', 'gradient', 'divergence', 'total_variation', 'tv_chambolle',
           'tv_fusion', 'tv_fusion_energy']


class TVFusion(NamedTuple):
  """`tv_fusion`'s output.

  Attributes:
    image: the fused image (the primal iterate after `num_iter` steps), shape of one input.
    dual: `[ndim, ...]` the dual field p (|p(x)| <= lam).
    energy: `[num_iter]` E(u) after every step.
  """
  image: jax.Array
  dual: jax.Array
  energy: jax.Array


# ------------------------------------------------------------------ operators


def _gradient(u: jax.Array) -> jax.Array:
  """`[ndim, *shape]` forward differences, zero on the last slice of every axis."""
  parts = []
  for axis in range(u.ndim):
    difference = jnp.diff(u, axis=axis)
    pad = [(0, 0)] * u.ndim
    pad[axis] = (0, 1)
    parts.append(jnp.pad(difference, pad))
  return jnp.stack(parts)


def _negative_divergence(p: jax.Array) -> jax.Array:
  """scikit-image's `d`: `-sum_a p_a + sum_a p_a shifted by one along a` (= -div p, the
  adjoint of `_gradient`)."""
  d = -jnp.sum(p, axis=0)
  for axis in range(p.shape[0]):
    field = p[axis]
    shifted = jnp.concatenate([jnp.zeros_like(jax.lax.slice_in_dim(field, 0, 1, axis=axis)),
                               jax.lax.slice_in_dim(field, 0, field.shape[axis] - 1,
                                                    axis=axis)], axis=axis)
    d = d + shifted
  return d


def _magnitude(g: jax.Array) -> jax.Array:
  """`|g(x)|` over the first axis, with a zero (not NaN) derivative where g(x) = 0."""
  squared = jnp.sum(g * g, axis=0)
  positive = squared > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def _as_image(image, name: str) -> jax.Array:
  if not jnp.issubdtype(jnp.result_type(image), jnp.floating):
    raise TypeError(f'{name} must be a floating array; got dtype {jnp.result_type(image)} '
                    '(scale integer images to [0, 1] first, e.g. image / 255.0).')
  image = checks.upcast(jnp.asarray(image))
  if image.ndim < 1 or image.size == 0:
    raise ValueError(f'{name} must be a non-empty array of at least one dimension; got shape '
                     f'{image.shape}.')
  checks.check_finite(image, name)
  return image


def gradient(u: jax.Array) -> jax.Array:
  """Forward differences of an n-D array, `[ndim, *u.shape]`, zero on each axis' last slice.

  Example:
    >>> import jax.numpy as jnp
    >>> gradient(jnp.array([1.0, 4.0, 2.0])).tolist()
    [[3.0, -2.0, 0.0]]
  """
  return _gradient(_as_image(u, 'u'))


def divergence(p: jax.Array) -> jax.Array:
  """The divergence `[*shape]` of a field `[ndim, *shape]`: minus the adjoint of `gradient`,
  so `sum(gradient(u) * p) == -sum(u * divergence(p))` (p's last slice along each axis, where
  the gradient is 0, does not enter).

  Example:
    >>> import jax.numpy as jnp
    >>> (divergence(jnp.array([[1.0, 0.0, 0.0]])) + 0.0).tolist()
    [1.0, -1.0, 0.0]
  """
  p = _as_image(p, 'p')
  if p.ndim < 2 or p.shape[0] != p.ndim - 1:
    raise ValueError(f'p must have shape [ndim, *shape] with ndim = len(shape); got {p.shape}.')
  # The gradient's last slice along each axis is 0, so the adjoint ignores p's there.
  p = jnp.stack([jnp.where(jnp.arange(p.shape[axis + 1]).reshape(
      (-1,) + (1,) * (p.ndim - axis - 2)) < p.shape[axis + 1] - 1, p[axis], 0.0)
                 for axis in range(p.shape[0])])
  return -_negative_divergence(p)


def total_variation(u: jax.Array) -> jax.Array:
  """Isotropic total variation `sum_x |grad u(x)|` (forward differences).

  Example:
    >>> import jax.numpy as jnp
    >>> float(total_variation(jnp.array([[0.0, 3.0], [4.0, 3.0]])))
    6.0
  """
  return jnp.sum(_magnitude(_gradient(_as_image(u, 'u'))))


# ------------------------------------------------------------------ Chambolle (scikit-image)


def _chambolle_iteration(image, p, weight, tau):
  """One pass of scikit-image's loop body: the current image and energy, then the dual step."""
  d = _negative_divergence(p)
  out = image + d
  g = _gradient(out)
  norm = _magnitude(g)
  energy = (jnp.sum(d * d) + weight * jnp.sum(norm)) / image.size
  p = (p - tau * g) / (norm * (tau / weight) + 1.0)[None]
  return out, energy, p


@functools.partial(jax.jit, static_argnums=(3,))
def _chambolle_fixed(image, weight, _unused, max_num_iter: int):
  tau = 1.0 / (2.0 * image.ndim)

  def step(carry, _):
    out, _, p = _chambolle_iteration(image, carry[0], weight, tau)
    return (p, out), None

  p0 = jnp.zeros((image.ndim,) + image.shape, image.dtype)
  (_, out), _ = jax.lax.scan(step, (p0, image), None, length=max_num_iter)
  return out


@functools.partial(jax.jit, static_argnums=(3,))
def _chambolle_stopping(image, weight, eps, max_num_iter: int):
  tau = 1.0 / (2.0 * image.ndim)

  def cond(carry):
    iteration, _, _, _, _, stopped = carry
    return (iteration < max_num_iter) & ~stopped

  def body(carry):
    iteration, p, _, initial, previous, _ = carry
    out, energy, p = _chambolle_iteration(image, p, weight, tau)
    initial = jnp.where(iteration == 0, energy, initial)
    stopped = (iteration > 0) & (jnp.abs(previous - energy) < eps * initial)
    return iteration + 1, p, out, initial, energy, stopped

  zero = jnp.zeros((), image.dtype)
  carry = (jnp.int32(0), jnp.zeros((image.ndim,) + image.shape, image.dtype), image, zero,
           zero, jnp.asarray(False))
  return jax.lax.while_loop(cond, body, carry)[2]


def tv_chambolle(image, *, weight=0.1, eps=2e-4, max_num_iter: int = 200,
                 channel_axis: int | None = None) -> jax.Array:
  """Total-variation denoising, equal to scikit-image's `denoise_tv_chambolle`.

  Minimises `1/2 ||u - image||^2 + weight TV(u)` by Chambolle's projection algorithm (see the
  module docstring), with scikit-image's arguments and meaning: the loop stops after an
  iteration whose energy changed by less than `eps` times the first iteration's energy, or
  after `max_num_iter` iterations, and returns that iteration's image (computed before its
  dual update). `eps=0` runs exactly `max_num_iter` iterations as a `lax.scan` (differentiable
  in `image` and `weight`); `eps > 0` runs a `lax.while_loop` (not reverse-differentiable).
  float16 computes in float32, as scikit-image; `jax.vmap` over a batch works.

  Args:
    image: n-D float array (grey levels; integers are refused rather than rescaled).
    weight: the TV weight (> 0): larger removes more noise and detail.
    eps: relative energy change that stops the loop (>= 0).
    max_num_iter: iteration cap (static, >= 1).
    channel_axis: denoise each slice along this axis separately (as scikit-image).

  Returns:
    The denoised image, the shape and (at least float32) dtype of `image`.

  Raises:
    TypeError: a non-float `image`. ValueError: an empty or non-finite `image`, `weight` <= 0
      or NaN, `eps` < 0, `max_num_iter` < 1, `channel_axis` out of range.

  Example:
    >>> import jax.numpy as jnp
    >>> noisy = jnp.array([0.0, 0.1, -0.1, 1.0, 1.1, 0.9])
    >>> [round(v, 3) for v in tv_chambolle(noisy, weight=0.1).tolist()]
    [0.033, 0.034, 0.034, 0.965, 0.967, 0.968]
  """
  image = _as_image(image, 'image')
  checks.check_scalar(weight, 'weight', low=0, low_open=True)
  checks.check_scalar(eps, 'eps', low=0)
  max_num_iter = checks.check_integer(max_num_iter, 'max_num_iter', minimum=1)
  weight = jnp.asarray(weight, image.dtype)
  fixed = checks.is_concrete(eps) and float(eps) == 0.0
  solve = _chambolle_fixed if fixed else _chambolle_stopping
  if channel_axis is None:
    return solve(image, weight, jnp.asarray(eps, image.dtype), max_num_iter)
  channel_axis = checks.check_integer(channel_axis, 'channel_axis', minimum=-image.ndim,
                                      maximum=image.ndim - 1) % image.ndim
  if image.ndim < 2:
    raise ValueError(f'channel_axis needs an image of at least 2 dimensions; got {image.shape}.')
  moved = jnp.moveaxis(image, channel_axis, 0)
  out = jax.vmap(lambda channel: solve(channel, weight, jnp.asarray(eps, image.dtype),
                                       max_num_iter))(moved)
  return jnp.moveaxis(out, 0, channel_axis)


# ------------------------------------------------------------------ weighted TV fusion


def _fusion_energy(u, images, weights, lam):
  residual = u[None] - images
  return 0.5 * jnp.sum(weights * residual * residual) + lam * jnp.sum(_magnitude(_gradient(u)))


def _check_fusion(images, weights, lam):
  images = _as_image(images, 'images')
  if images.ndim < 2:
    raise ValueError(f'images must have shape [M, ...] (M images of one scene); got shape '
                     f'{images.shape}.')
  if not jnp.issubdtype(jnp.result_type(weights), jnp.floating):
    raise TypeError(f'weights must be a floating array (e.g. inverse noise variances); got '
                    f'dtype {jnp.result_type(weights)}.')
  weights = checks.upcast(jnp.asarray(weights))
  if weights.ndim == 1:
    if weights.shape[0] != images.shape[0]:
      raise ValueError(f'weights must have one entry per image, shape [M] = '
                       f'({images.shape[0]},), or shape {images.shape}; got {weights.shape}.')
    weights = weights.reshape((-1,) + (1,) * (images.ndim - 1))
  elif weights.shape != images.shape:
    raise ValueError(f'weights must have shape [M] = ({images.shape[0]},) (one per image) or '
                     f'{images.shape} (per pixel); got {weights.shape}.')
  checks.check_finite(weights, 'weights')

  def find_problem(values):
    if np.any(values < 0):
      return (f'weights must be >= 0 (inverse noise variances); got minimum '
              f'{values.min().item()!r}.')
    return None

  checks.check_values(find_problem, weights)
  checks.check_scalar(lam, 'lam', low=0)
  return images, jnp.broadcast_to(weights, images.shape).astype(images.dtype)


@functools.partial(jax.jit, static_argnums=(5,))
def _chambolle_pock(images, weights, lam, tau, sigma, num_iter: int) -> TVFusion:
  total = jnp.sum(weights, axis=0)
  weighted = jnp.sum(weights * images, axis=0)
  shape = images.shape[1:]

  def step(carry, _):
    u, p = carry
    u_new = (u - tau * _negative_divergence(p) + tau * weighted) / (1.0 + tau * total)
    q = p + sigma * _gradient(2.0 * u_new - u)
    norm = _magnitude(q)
    p_new = q / jnp.maximum(1.0, norm / jnp.maximum(lam, jnp.finfo(q.dtype).tiny))[None]
    p_new = jnp.where(lam > 0, p_new, 0.0)
    return (u_new, p_new), _fusion_energy(u_new, images, weights, lam)

  start = jnp.where(total > 0, weighted / jnp.where(total > 0, total, 1.0),
                    jnp.mean(images, axis=0))
  init = (start, jnp.zeros((len(shape),) + shape, images.dtype))
  (u, p), energy = jax.lax.scan(step, init, None, length=num_iter)
  return TVFusion(u, p, energy)


def tv_fusion(images, weights, *, lam, num_iter: int = 300, tau=None, sigma=None) -> TVFusion:
  """Fuses M noisy images of one scene by weighted TV regularisation (Chambolle-Pock).

  Minimises `E(u) = 1/2 sum_m sum_x w_m(x) (u(x) - f_m(x))^2 + lam TV(u)` (see the module
  docstring). Weights are typically inverse noise variances, `w_m = 1 / std_m^2`, scalar per
  image or per pixel; a pixel where every weight is 0 is filled by the TV term alone
  (inpainting). The iteration starts at the weighted mean (the plain mean where every weight
  is 0) with a zero dual field, runs exactly `num_iter` steps (a `lax.scan`: differentiable in
  `images`, `weights` and `lam`, vmappable over a batch) and returns the last iterate with the
  energy trace.

  Args:
    images: `[M, ...]` float, M >= 1 images of the same shape.
    weights: `[M]` or `[M, ...]` (the shape of `images`), >= 0.
    lam: TV weight (>= 0); with `lam = 0` the result is the weighted mean.
    num_iter: steps (static, >= 1).
    tau, sigma: primal and dual steps, both or neither; default `0.99 / (sqrt(4 ndim) s)`
      and `0.99 s / sqrt(4 ndim)` with `s` the mean over pixels of `sum_m w_m` (balanced for
      the data term's scale: on 4 sensors of std 0.1-0.5, 50 steps reach the energy that
      equal steps of 0.35 do not reach in 3000). Their product times `4 ndim` (the bound on
      `||grad||^2`) must be below 1.

  Returns:
    `TVFusion(image, dual, energy)`.

  Raises:
    TypeError: non-float `images`. ValueError: fewer than 2 dimensions, non-finite values,
      `weights` of another shape or negative, `lam` < 0, steps that break
      `tau sigma 4 ndim < 1`.

  Example:
    >>> import jax.numpy as jnp
    >>> images = jnp.array([[0.0, 0.0, 1.0, 1.0], [0.2, -0.2, 1.2, 0.8]])
    >>> fused = tv_fusion(images, jnp.array([4.0, 1.0]), lam=0.01, num_iter=500)
    >>> [round(v, 3) for v in fused.image.tolist()]
    [0.038, -0.036, 1.036, 0.962]
  """
  images, weights = _check_fusion(images, weights, lam)
  num_iter = checks.check_integer(num_iter, 'num_iter', minimum=1)
  bound = 4.0 * (images.ndim - 1)
  dtype = images.dtype
  if (tau is None) != (sigma is None):
    raise ValueError('tau and sigma must be given together (or neither: the default steps).')
  if tau is None:
    # Steps balanced by the data term's scale s (the mean total weight): the iteration is then
    # invariant to scaling the weights and lam together; tau sigma stays 0.98 / ||grad||^2.
    scale = jnp.mean(jnp.sum(weights, axis=0))
    scale = jnp.where(scale > 0, scale, 1.0)
    tau, sigma = 0.99 / float(np.sqrt(bound)) / scale, 0.99 / float(np.sqrt(bound)) * scale
  else:
    checks.check_scalar(tau, 'tau', low=0, low_open=True)
    checks.check_scalar(sigma, 'sigma', low=0, low_open=True)
    if checks.is_concrete((tau, sigma)) and float(tau) * float(sigma) * bound >= 1.0:
      raise ValueError(f'tau * sigma * ||grad||^2 must be below 1 for convergence; got tau = '
                       f'{float(tau)!r}, sigma = {float(sigma)!r}, ||grad||^2 <= {bound:g}.')
  return _chambolle_pock(images, weights, jnp.asarray(lam, dtype), jnp.asarray(tau, dtype),
                         jnp.asarray(sigma, dtype), num_iter)


def tv_fusion_energy(u, images, weights, *, lam) -> jax.Array:
  """`E(u)` of `tv_fusion` for a candidate image `u` (the shape of one image).

  Example:
    >>> import jax.numpy as jnp
    >>> float(tv_fusion_energy(jnp.zeros(2), jnp.ones((1, 2)), jnp.array([2.0]), lam=1.0))
    2.0
  """
  images, weights = _check_fusion(images, weights, lam)
  u = _as_image(u, 'u')
  if u.shape != images.shape[1:]:
    raise ValueError(f'u must have the shape of one image {images.shape[1:]}; got {u.shape}.')
  return _fusion_energy(u.astype(images.dtype), images, weights,
                        jnp.asarray(lam, images.dtype))
