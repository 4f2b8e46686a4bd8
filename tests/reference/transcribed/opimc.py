"""NumPy reference transcription of OPIMC (Hu & Chen, AAAI 2019), survey redistribution.

Source transcribed:
  repo   : https://github.com/DarrenZZhang/TSCMA23-Survey_IMC
  commit : fe2231775b1ea17af7bfc3fbf5340c7819a3c923
  files  : OPIMC/OPIMC.m, OPIMC/UpdateV.m, OPIMC/OPIMC_clustering.m

Conventions: X[v] (d_v, N) columns are samples (already in the processing order; the driver
shuffles with randperm), w[v] (N,) 0/1, U[v] (d_v, k), V (n_block, k) one-hot (soft only on the
very first block of pass 1).  Labels are 0-based here (MATLAB 1-based).
Random draws used by MATLAB that survive are passed in:
  U_first[v] : rand(d_v, k) drawn at block 1 of pass 1
  V_first    : rand(n_block1, k) drawn at block 1 of pass 1 (before row normalisation)
"""
import numpy as np


def normalize_cols(X):
    n = np.maximum(1e-14, np.sum(X ** 2, axis=0))
    return X * (n ** -0.5)[None, :]


def update_v_hard(Xb, wb, U):
    """UpdateV.m: D = sum_i W_i (1 * colsum(U_i.^2) - 2 X_i' U_i); V = one-hot(argmin_row D)."""
    n = Xb[0].shape[1]
    k = U[0].shape[1]
    D = np.zeros((n, k))
    for i in range(len(Xb)):
        bb = np.sum(U[i] * U[i], axis=0)
        ab = Xb[i].T @ U[i]
        D = D + wb[i][:, None] * (bb[None, :] - 2 * ab)
    lab = np.argmin(D, axis=1)                 # MATLAB min: first index on ties, same as numpy
    V = np.zeros((n, k))
    V[np.arange(n), lab] = 1.0
    return V, lab


def _loss(U, R, T, Xb, wb, V, alpha):
    s = 0.0
    for i in range(len(U)):
        tmp1 = R[i] + Xb[i] @ V
        tmp2 = T[i] + V.T @ (wb[i][:, None] * V)
        s += -2 * np.trace(U[i].T @ tmp1) + np.trace(U[i].T @ U[i] @ tmp2) + alpha * np.linalg.norm(U[i], 'fro') ** 2
    return s


def opimc(X_list, w_list, k, alpha, block_size, U_first, V_first, max_iter=30, tol=1e-6,
          n_pass=1, zero_missing=False):
    X = [np.array(x, dtype=np.float64) for x in X_list]
    if zero_missing:          # NOT done by the survey driver (see spec); paper-consistent option
        for i in range(len(X)):
            X[i][:, w_list[i] == 0] = 0.0
    nv = len(X)
    total = X[0].shape[1]
    nblock = int(np.ceil(total / block_size))
    U = [None] * nv
    R = [None] * nv
    T = [None] * nv
    labels = np.zeros((n_pass, total), dtype=int)
    losses = np.zeros((n_pass, nblock))
    sum_num = 0
    for p in range(n_pass):
        if p == 0:
            for i in range(nv):
                R[i] = np.zeros((X[i].shape[0], k))
                T[i] = np.zeros((k, k))
        else:
            labels[p] = labels[p - 1]
        for b in range(nblock):
            rng_ = np.arange(b * block_size, min((b + 1) * block_size, total))
            # in-place column normalisation of the block (NormalizeFea(.,0))
            for i in range(nv):
                X[i][:, rng_] = normalize_cols(X[i][:, rng_])
            Xb = [X[i][:, rng_] for i in range(nv)]
            wb = [np.asarray(w_list[i], dtype=np.float64)[rng_] for i in range(nv)]
            if p == 0:
                sum_num += len(rng_)
                if b == 0:
                    U = [np.array(u, dtype=np.float64) for u in U_first]
                    V = np.array(V_first, dtype=np.float64)
                    V = V / V.sum(axis=1, keepdims=True)
                    labels[p, rng_] = np.argmax(V, axis=1)
                else:
                    V, lab = update_v_hard(Xb, wb, U)
                    labels[p, rng_] = lab
            else:
                V = np.zeros((len(rng_), k)); V[np.arange(len(rng_)), labels[p, rng_]] = 1.0
            it = 0
            conv = False
            log_out = _loss(U, R, T, Xb, wb, V, alpha)
            log_new = log_out
            while it < max_iter and not conv:
                if p != 0 and it == 0:
                    Vp = np.zeros((len(rng_), k)); Vp[np.arange(len(rng_)), labels[p - 1, rng_]] = 1.0
                    for i in range(nv):
                        T[i] = T[i] - Vp.T @ (wb[i][:, None] * Vp)
                        R[i] = R[i] - Xb[i] @ Vp
                for i in range(nv):
                    VWV = V.T @ (wb[i][:, None] * V)
                    A = T[i] + VWV + alpha * np.eye(k)
                    Cm = R[i] + Xb[i] @ V
                    Unew = np.linalg.solve(A.T, Cm.T).T          # tmp2 / tmp1  (right division)
                    if p == 0 and b == 0:
                        z = np.where(np.diag(VWV) == 0)[0]
                        Unew[:, z] = Xb[i].mean(axis=1)[:, None]
                    else:
                        z = np.where(np.diag(T[i] + VWV) == 0)[0]
                        Unew[:, z] = U[i][:, z]
                    U[i] = Unew
                V, lab = update_v_hard(Xb, wb, U)
                labels[p, rng_] = lab
                log_new = _loss(U, R, T, Xb, wb, V, alpha)
                with np.errstate(divide='ignore', invalid='ignore'):
                    if abs((log_new - log_out) / log_out) < tol:
                        conv = True
                log_out = log_new
                it += 1
            for i in range(nv):
                R[i] = R[i] + Xb[i] @ V
                T[i] = T[i] + V.T @ (wb[i][:, None] * V)
            losses[p, b] = log_new / sum_num
    return labels[n_pass - 1], U, losses


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    N, k, dims, s = 95, 3, [5, 7], 30
    X = [rng.random((d, N)) for d in dims]
    w = [np.ones(N), np.ones(N)]; w[0][:10] = 0; w[1][10:20] = 0
    Uf = [rng.random((d, k)) for d in dims]
    Vf = rng.random((s, k))
    lab, U, L = opimc(X, w, k, 10.0, s, Uf, Vf)
    print(np.bincount(lab), L)
