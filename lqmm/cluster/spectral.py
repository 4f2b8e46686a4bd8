"""Spectral clustering on a given affinity (normalised cuts, Ng-Jordan-Weiss embedding)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from lqmm import checks
from lqmm.cluster import kmeans as kmeans_lib

__all__ = ['spectral_clustering', 'spectral_embedding']


def _check_affinity(affinity, num_clusters) -> jax.Array:
  affinity = checks.as_floats(affinity, 'affinity', '[N, N]', rank=2)
  if affinity.ndim != 2 or affinity.shape[0] != affinity.shape[1]:
    raise ValueError(f'affinity must be a square [N, N] matrix; got shape {affinity.shape}.')
  checks.check_nonempty(affinity, 'affinity', what='sample')
  num_clusters = checks.check_integer(num_clusters, 'num_clusters', minimum=1,
                                      maximum=affinity.shape[0])

  def find_problem(values):
    if not (values >= 0).all():
      return ('affinity must be finite and non-negative; got '
              f'{int((~(values >= 0)).sum())} negative or NaN entries.')
    if not (values < float('inf')).all():
      return 'affinity holds infinite entries.'
    scale = max(float(abs(values).max()), 1e-30)
    if abs(values - values.T).max() > 1e-4 * scale:
      return ('affinity must be symmetric (pass (A + A.T) / 2 for a directed graph); the '
              f'largest asymmetry is {abs(values - values.T).max():.3g}.')
    return None

  checks.check_values(find_problem, affinity)
  return affinity


def spectral_embedding(affinity: jax.Array, num_clusters: int) -> jax.Array:
  """Rows of the top-`K` eigenvectors of `D^-1/2 A D^-1/2`, each normalised to unit length.

  These are the eigenvectors of the `K` smallest eigenvalues of the normalised Laplacian
  `I - D^-1/2 A D^-1/2`, computed by `jnp.linalg.eigh`. A sample of zero degree (an isolated
  or missing row) gets a zero row before normalisation, and stays zero.

  Args:
    affinity: symmetric non-negative `[N, N]`.
    num_clusters: K (static), in `[1, N]`.

  Returns:
    `[N, K]` embedding (unit rows, zero rows for isolated samples).

  Raises:
    ValueError: a non-square, asymmetric (beyond 1e-4 relative), negative or non-finite
      affinity; K out of range.

  References:
    Ng, Jordan, Weiss. "On Spectral Clustering: Analysis and an Algorithm." NeurIPS 2001.
  """
  affinity = _check_affinity(affinity, num_clusters)
  return _embedding(affinity, num_clusters)


@functools.partial(jax.jit, static_argnums=1)
def _embedding(affinity, num_clusters: int) -> jax.Array:
  affinity = (affinity + affinity.T) / 2
  degree = jnp.sum(affinity, axis=1)
  scale = jnp.where(degree > 0, jax.lax.rsqrt(jnp.where(degree > 0, degree, 1)), 0)
  normalized = scale[:, None] * affinity * scale[None, :]
  _, vectors = jnp.linalg.eigh(normalized)
  top = vectors[:, ::-1][:, :num_clusters]
  norm = jnp.linalg.norm(top, axis=1, keepdims=True)
  return top / jnp.maximum(norm, jnp.finfo(top.dtype).tiny)


def spectral_clustering(affinity: jax.Array, num_clusters: int, *, key: jax.Array,
                        num_restarts: int = 10, max_iter: int = 300) -> jax.Array:
  """Cluster labels from k-means on `spectral_embedding(affinity, K)`.

  Args:
    affinity: symmetric non-negative `[N, N]`.
    num_clusters: K (static).
    key: a typed PRNG key (k-means++ seeding).
    num_restarts: k-means restarts (static).
    max_iter: k-means iteration cap (static).

  Returns:
    int32 `[N]` labels in `[0, K)`.

  Raises:
    As `spectral_embedding` and `lqmm.cluster.kmeans`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> block = jnp.kron(jnp.eye(2), jnp.ones((3, 3)))
    >>> labels = spectral_clustering(block, 2, key=jax.random.key(0))
    >>> bool((labels[:3] == labels[0]).all() & (labels[3:] == labels[3]).all()
    ...      & (labels[0] != labels[3]))
    True
  """
  embedding = spectral_embedding(affinity, num_clusters)
  return kmeans_lib.kmeans(embedding, num_clusters, key=key, num_restarts=num_restarts,
                           max_iter=max_iter).labels
