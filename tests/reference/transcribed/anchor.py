"""NumPy reference transcription of FIMVC-VIA (Liu et al., TNNLS 2022), for reference vectors only.

Source: https://github.com/Tracesource/FIMVC-VIA at 9fda6691432a037bc70ef10584ab61988fd17947
(the .m files last changed in d07b08182ca9a63d7212cf846b9b88d9e7be61fd): missingalgo_qp.m,
findindex.m, NormalizeData.m, constructA.m; the simplex projection is EProjSimplex_new as
transcribed in `graph.py` (FIMVC-VIA calls it but does not ship it; the survey toolbox's copy).

Layout conventions (MATLAB's, kept): X[v] is (d_v, N), columns are samples; ind (N, V),
1 = present; Z (m, N); A[v] (d_v, m). Places where MATLAB semantics had to be interpreted are
tagged [MATLAB-SEM].
"""

import numpy as np

from .graph import eproj_simplex_new


def normalize_data(x):
  """NormalizeData.m: every column divided by max(1e-12, its 2-norm)."""
  out = np.empty_like(x, dtype=float)
  for i in range(x.shape[1]):
    out[:, i] = x[:, i] / max(1e-12, np.linalg.norm(x[:, i]))
  return out


def findindex(data, index):
  """findindex.m: ind(index{v}, v) = 1; NaN -> 0; NormalizeData. `index[v]` are 0-based here."""
  num_views, num_samples = len(data), data[0].shape[1]
  ind = np.zeros((num_samples, num_views))
  xs = []
  for v in range(num_views):
    ind[index[v], v] = 1
    origin = np.array(data[v], dtype=float)
    origin[np.isnan(origin)] = 0
    xs.append(normalize_data(origin))
  return xs, ind


def construct_a(ind):
  """constructA.m: per view a (1, N) 0/1 row of the present samples."""
  return [ind[:, v].reshape(1, -1).copy() for v in range(ind.shape[1])]


def missingalgo_qp(xs, num_classes, lam, numanchor, ind, z_init=None, max_iter=50):
  """missingalgo_qp.m. `z_init` (m, N) replaces the original's `Z(:, 1:m) = eye(m)` when given
  (the tests also start from other anchor rows); max_iter is the file's `maxIter = 50`.

  Returns dict(UU, V, A, Z, alpha, obj, iter)."""
  m = numanchor
  numview = len(xs)
  numsample = ind.shape[0]
  if z_init is None:
    z = np.zeros((m, numsample))
    z[:, :m] = np.eye(m)
  else:
    z = np.array(z_init, dtype=float)
  missingindex = construct_a(ind)
  a = [np.zeros((x.shape[0], m)) for x in xs]
  alpha = np.ones(numview) / numview
  obj = []
  it = 0
  while True:
    it += 1
    for ia in range(numview):
      part1 = xs[ia] @ z.T
      # [MATLAB-SEM] svd(part1, 'econ'): U (d, r), V (m, r), r = min(d, m); A = U * V'.
      u, _, vt = np.linalg.svd(part1, full_matrices=False)
      a[ia] = u @ vt
    c1 = np.zeros(numsample)
    c2 = np.zeros((m, numsample))
    for v in range(numview):
      c1 = c1 + alpha[v] ** 2 * ind[:, v]
      c2 = c2 + alpha[v] ** 2 * (a[v].T @ xs[v])
    c1 = c1 + lam * np.ones(numsample)
    for ii in range(numsample):
      ut = c2[:, ii] / c1[ii]
      z[:, ii] = eproj_simplex_new(ut)
    big_m = np.zeros(numview)
    for iv in range(numview):
      big_m[iv] = np.linalg.norm(xs[iv] - a[iv] @ (z * np.tile(missingindex[iv], (m, 1))),
                                 'fro') ** 2
    mfra = big_m ** -1.0
    q = 1 / mfra.sum()
    alpha = q * mfra
    term1 = 0.0
    for iv in range(numview):
      term1 += alpha[iv] ** 2 * np.linalg.norm(
          xs[iv] - a[iv] @ (z * np.tile(missingindex[iv], (m, 1))), 'fro') ** 2
    term2 = lam * np.linalg.norm(z, 'fro') ** 2
    obj.append(term1 + term2)
    # [MATLAB-SEM] `(iter>1) && (A || B || C)`: && binds looser than ||.
    if it > 1 and (abs((obj[-2] - obj[-1]) / obj[-2]) < 1e-3 or it > max_iter
                   or obj[-1] < 1e-10):
      uu, _, vt = np.linalg.svd(z.T, full_matrices=False)
      return dict(UU=uu[:, :num_classes], V=vt.T, A=a, Z=z, alpha=alpha,
                  obj=np.array(obj), iter=it)
