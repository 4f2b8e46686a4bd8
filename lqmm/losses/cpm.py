"""CPM-Nets' latent-space classification: a class-mean similarity and its structured hinge.

CPM-Nets (Zhang et al. 2019) learns one latent vector `h_n` per sample, which must reconstruct
the views sample n has (and only those: imputation-free), and classifies in the latent space
by similarity to the classes. With `F(h, h') = <h, h'>` and class c's members `T_c`:

    s_c(h_n) = mean_{m in T_c, m != n} F(h_n, h_m)                   (class-mean similarity)
    loss_n   = max(0, Delta(y_n, yhat_n) + max_c s_c(h_n) - s_{y_n}(h_n))

where `yhat_n = argmax_c s_c(h_n)` and `Delta` is 0/1 (the survey's Eq. 5 family). A test
sample is predicted as `argmax_c` of its mean similarity to the training latents of class c.

References:
  Zhang, Han, Fu, Zhou, Hu. "CPM-Nets: Cross Partial Multi-View Networks." NeurIPS 2019
    (original code: hanmenghan/CPM_Nets, `util/model.py` and `util/classfiy.py`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lqmm import checks

__all__ = ['class_mean_similarity', 'classification_loss']


def _check_latent(latent, name: str) -> jax.Array:
  latent = checks.as_floats(latent, name, '[N, d]', rank=2)
  checks.check_finite(latent, name)
  checks.check_nonempty(latent, name)
  return latent


def class_mean_similarity(query, reference, reference_labels, *, num_classes: int,
                          exclude_self: bool = False) -> jax.Array:
  """Mean inner product of each query latent with the reference latents of every class.

  Args:
    query: `[Q, d]` latents (test samples, or the training samples themselves).
    reference: `[N, d]` training latents.
    reference_labels: i32 `[N]`.
    num_classes: C (static).
    exclude_self: `query` is `reference` and each sample leaves itself out of its class mean
      (the training-time form); needs Q = N.

  Returns:
    `[Q, C]` similarities. A class with no (other) member scores `-inf`.

  Raises:
    ValueError / TypeError: wrong ranks, widths or labels; `exclude_self` with Q != N.

  Example:
    >>> import jax.numpy as jnp
    >>> reference = jnp.array([[1., 0.], [0., 1.]])
    >>> class_mean_similarity(jnp.array([[2., 1.]]), reference, jnp.array([0, 1]),
    ...                       num_classes=2).tolist()
    [[2.0, 1.0]]
  """
  query = _check_latent(query, 'query')
  reference = _check_latent(reference, 'reference')
  num_classes = checks.check_integer(num_classes, 'num_classes', minimum=1)
  if jnp.shape(query)[1] != jnp.shape(reference)[1]:
    raise ValueError(f'query and reference must have the same width; got {jnp.shape(query)} '
                     f'and {jnp.shape(reference)}.')
  checks.check_labels(reference_labels, num_classes, jnp.shape(reference)[:1],
                      'reference_labels')
  one_hot = jax.nn.one_hot(reference_labels, num_classes, dtype=reference.dtype)  # [N, C]
  similarity = query @ reference.T  # [Q, N]
  count = jnp.broadcast_to(jnp.sum(one_hot, 0, keepdims=True),
                           (jnp.shape(query)[0], num_classes))
  if exclude_self:
    if jnp.shape(query)[0] != jnp.shape(reference)[0]:
      raise ValueError(f'exclude_self needs query to be reference; got {jnp.shape(query)[0]} '
                       f'and {jnp.shape(reference)[0]} rows.')
    similarity = similarity * (1 - jnp.eye(jnp.shape(query)[0], dtype=similarity.dtype))
    count = count - one_hot
  total = similarity @ one_hot
  return jnp.where(count > 0, total / jnp.maximum(count, 1), -jnp.inf)


def classification_loss(latent, labels, *, num_classes: int) -> jax.Array:
  """CPM-Nets' per-sample structured hinge on the training latents, `[N]`.

  `loss_n = max(0, 1[yhat_n != y_n] + max_c s_c - s_{y_n})` with `s = class_mean_similarity(
  latent, latent, labels, exclude_self=True)`; classes without other members are ignored in
  the max. The original sums it over the training set.

  Args:
    latent: `[N, d]` latents of the training samples.
    labels: i32 `[N]`.
    num_classes: C (static).

  Returns:
    `[N]` non-negative losses.

  Raises:
    ValueError / TypeError: as `class_mean_similarity`; a sample alone in its class (its
      class mean is undefined).
  """
  latent = _check_latent(latent, 'latent')
  scores = class_mean_similarity(latent, latent, labels, num_classes=num_classes,
                                 exclude_self=True)
  own = jnp.take_along_axis(scores, jnp.asarray(labels)[:, None], axis=1)[:, 0]
  checks.check_values(
      lambda values: ('labels: a sample is alone in its class; its class mean is undefined.'
                      if jnp.isinf(values).any() else None), own)
  best = jnp.max(scores, axis=1)
  wrong = (jnp.argmax(scores, axis=1) != labels).astype(scores.dtype)
  return jax.nn.relu(wrong + best - own)
