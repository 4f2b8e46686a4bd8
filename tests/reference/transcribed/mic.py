"""NumPy reference transcription of MIC (Shao, He, Yu, ECML-PKDD 2015).

Source transcribed (author's MATLAB release):
  repo   : https://github.com/software-shao/Multi-Incomplete-view-Clustering
  commit : 7562b88831e03fbfd304c02335fdda5c7eebae0c
  files  : MultiNMF_incomplete_original_l21.m, PerViewNMF_incomplete_original_l21.m, NMF.m

Conventions (same as the MATLAB code, NOTE: opposite orientation to DAIMC):
  X[v] : (N, d_v)  rows are samples, nonnegative, missing rows already filled
  c[v] : (N,)      diagonal of the weight matrix C{v} (MATLAB passes C{v} = diag(c[v]))
  U[v] : (N, K)    per-view coefficient / representation   (MATLAB name U{i})
  V[v] : (d_v, K)  per-view basis                           (MATLAB name V{i})
  Ustar: (N, K)    consensus (MATLAB centroidU)
(C.^2) on a diagonal matrix is diag(c**2); products with it are written by broadcasting.
Places where MATLAB semantics had to be interpreted are tagged  [MATLAB-SEM].
Only the nRepeat == 1 code paths are transcribed (random restarts are not deterministic).
"""
import numpy as np


# ------------------------------------------------------------------ NMF.m (Deng Cai)
def _normalize_uv_l1_basis(Ub, Vc):
    """NormalizeUV(U, V, NormV=0, Norm=1): columns of the basis scaled to unit L1, coefficient
    columns scaled up.  No floor on the norms in this branch (the floor line is commented out)."""
    norms = np.sum(np.abs(Ub), axis=0)
    return Ub / norms[None, :], Vc * norms[None, :]


def nmf_cai(X, k, U_init, V_init, max_iter=None, differror=1e-4, mean_fit_ratio=0.1):
    """NMF(X, k, options, U_, V_) with options.nRepeat == 1.
    X (mFea, nSmp) = (d, N).  U_init: basis (d, k) or None ; V_init: coefficients (N, k) or None.
    When an argument is None the MATLAB code draws it at random, so here the caller must
    provide it already drawn *in the raw form* (see draw_nmf_random_init)."""
    U = np.array(U_init, dtype=np.float64)
    V = np.array(V_init, dtype=np.float64)
    U, V = _normalize_uv_l1_basis(U, V)
    if max_iter is None:
        obj = np.sum((U @ V.T - X) ** 2)
        mean_fit = obj * 10
    n_iter = 0
    max_err = 1.0
    while max_err > differror:
        XU = X.T @ U
        UU = U.T @ U
        VUU = V @ UU
        V = V * (XU / np.maximum(VUU, 1e-10))
        XV = X @ V
        VV = V.T @ V
        UVV = U @ VV
        U = U * (XV / np.maximum(UVV, 1e-10))
        n_iter += 1
        if max_iter is None:
            newobj = np.sum((U @ V.T - X) ** 2)
            mean_fit = mean_fit_ratio * mean_fit + (1 - mean_fit_ratio) * newobj
            max_err = (mean_fit - newobj) / mean_fit
        else:
            max_err = 1.0
            if n_iter >= max_iter:
                max_err = 0.0
    U, V = _normalize_uv_l1_basis(U, V)
    return U, V          # basis (d, k), coefficients (N, k)


def draw_nmf_random_init(rng, d, N, k, need_U=True, need_V=True):
    """What NMF.m does when U_ / V_ are empty:
    U = abs(rand(d,k)); U = U ./ max(sqrt(sum(U.^2,1)),1e-10) ; V = abs(rand(N,k)); V = V/sum(V(:))."""
    U = V = None
    if need_U:
        U = np.abs(rng.random((d, k)))
        U = U / np.maximum(np.sqrt(np.sum(U ** 2, axis=0)), 1e-10)[None, :]
    if need_V:
        V = np.abs(rng.random((N, k)))
        V = V / V.sum()
    return U, V


# ------------------------------------------------------------------ PerViewNMF_incomplete_original_l21.m
def _normalize_mic(U, V):
    """Normalize(U, V): basis V (d,K) columns to unit L1 (floor 1e-30), U (N,K) columns scaled up."""
    norms = np.maximum(np.sum(np.abs(V), axis=0), 1e-30)
    return U * norms[None, :], V / norms[None, :]


def perview_objective(X, U, V, Ustar, c, alpha, beta):
    tmp = c[:, None] * (U - Ustar)
    dX = c[:, None] * (U @ V.T - X)
    col_l2 = np.sum(np.sqrt(np.sum(U ** 2, axis=0)))   # sum_k ||U(:,k)||  (column norms!)
    return np.sum(dX ** 2) + alpha * np.sum(tmp ** 2) + beta * col_l2


def perview_nmf(X, k, Ustar, U, V, c, alpha, beta, max_iter=None, differror=1e-4,
                mean_fit_ratio=0.1):
    """One call of PerViewNMF_incomplete_original_l21 with a given (non-empty) U, V,
    i.e. nRepeat forced to 1, minIter 0."""
    U = np.array(U, dtype=np.float64)
    V = np.array(V, dtype=np.float64)
    c2 = (c ** 2)[:, None]
    U, V = _normalize_mic(U, V)
    if max_iter is None:
        obj = perview_objective(X, U, V, Ustar, c, alpha, beta)
        mean_fit = obj * 10
    n_iter = 0
    max_err = 1.0
    while max_err > differror:
        # U step
        XV = c2 * (X @ V)                         # (C.^2)*X*V
        VV = V.T @ V
        UVV = c2 * (U @ VV)                       # (C.^2)*U*VV
        XV = XV + alpha * c2 * Ustar
        # [MATLAB-SEM] D(j,j) = 1/norm(U(j,:)): ROW norms of U, no epsilon (Inf if a row is 0)
        with np.errstate(divide="ignore"):
            dvec = 1.0 / np.sqrt(np.sum(U ** 2, axis=1))
        UVV = UVV + alpha * c2 * U + 0.5 * beta * dvec[:, None] * U
        U = U * np.sqrt(XV / np.maximum(UVV, 1e-30))
        # V step
        XU = X.T @ (c2 * U)                       # X'*(C.^2)*U
        UU = U.T @ (c2 * U)
        VUU = V @ UU
        V = V * np.sqrt(XU / np.maximum(VUU, 1e-30))
        U, V = _normalize_mic(U, V)
        n_iter += 1
        if max_iter is None:
            newobj = perview_objective(X, U, V, Ustar, c, alpha, beta)
            mean_fit = mean_fit_ratio * mean_fit + (1 - mean_fit_ratio) * newobj
            max_err = (mean_fit - newobj) / mean_fit
        else:
            max_err = 1.0
            if n_iter >= max_iter:
                max_err = 0.0
    U, V = _normalize_mic(U, V)
    return U, V


# ------------------------------------------------------------------ MultiNMF_incomplete_original_l21.m
def consensus(U, c_list, alpha):
    num = 0.0
    den = 0.0
    for i in range(len(U)):
        c2 = (c_list[i] ** 2)[:, None]
        num = num + alpha[i] * c2 * U[i]
        den = den + alpha[i] * c2
    return num / den                              # CC_inv*CU (diagonal)


def mic_objective(X_list, c_list, U, V, Ustar, alpha, beta):
    logL = 0.0
    for i in range(len(X_list)):
        tmp1 = c_list[i][:, None] * (X_list[i] - U[i] @ V[i].T)
        tmp2 = c_list[i][:, None] * (U[i] - Ustar)
        tmp3 = np.sum(np.sqrt(np.sum(U[i] ** 2, axis=0)))   # column norms
        logL += np.sum(tmp1 ** 2) + alpha[i] * np.sum(tmp2 ** 2) + beta[i] * tmp3
    return logL


def mic_init(X_list, K, nmf_basis_inits, first_coef_init, max_iter=None, differror=1e-4,
             mean_fit_ratio=0.1):
    """Three cyclic sweeps of plain NMF (no weights).
    nmf_basis_inits[j][i]: raw random basis for sweep j (0..2), view i (d_i, K)
       (MATLAB: abs(rand) then unit-L2 columns, see draw_nmf_random_init)
    first_coef_init: raw random coefficients (N, K) for sweep 0, view 0 (abs(rand), /sum)."""
    n = len(X_list)
    U = [None] * n
    V = [None] * n
    for j in range(3):
        coef0 = first_coef_init if j == 0 else U[n - 1]
        V[0], U[0] = nmf_cai(X_list[0].T, K, nmf_basis_inits[j][0], coef0, max_iter, differror,
                             mean_fit_ratio)
        for i in range(1, n):
            V[i], U[i] = nmf_cai(X_list[i].T, K, nmf_basis_inits[j][i], U[i - 1], max_iter,
                                 differror, mean_fit_ratio)
    return U, V


def mic(X_list, c_list, init_U, init_V, alpha, beta, rounds, max_iter=None, differror=1e-4,
        mean_fit_ratio=0.1):
    """Main MIC loop given the initial per-view factors (output of mic_init).
    alpha, beta: per-view sequences.  Returns U, V, the consensus of the LAST round (computed
    before that round's per-view update, exactly as MATLAB returns it), objective per round,
    and the consensus of every round (what printResult/k-means sees each round)."""
    U = [np.array(u, dtype=np.float64) for u in init_U]
    V = [np.array(v, dtype=np.float64) for v in init_V]
    n = len(X_list)
    logs = []
    cents = []
    old = np.zeros_like(U[0])
    Ustar = None
    for j in range(rounds):
        Ustar = consensus(U, c_list, alpha)
        logs.append(mic_objective(X_list, c_list, U, V, Ustar, alpha, beta))
        cents.append(Ustar.copy())
        avg_diff = np.sum(np.abs(old - Ustar) ** 2)
        # MATLAB sets converge = 1 when avg_diff < 1e-12 but does NOT break
        old = Ustar
        for i in range(n):
            U[i], V[i] = perview_nmf(X_list[i], U[i].shape[1], Ustar, U[i], V[i], c_list[i],
                                     alpha[i], beta[i], max_iter, differror, mean_fit_ratio)
    return U, V, Ustar, np.array(logs), cents


def fill_and_weight(X_list_Nd, obs_list, missing_weight="ratio"):
    """NOT in the author's repo (no driver script there).  Paper-described preprocessing:
    missing rows filled with the mean of the observed rows of that view; weight 1 for observed
    rows and n_v/N for filled rows (missing_weight='ratio'), or 0 ('zero')."""
    Xs, cs = [], []
    for X, o in zip(X_list_Nd, obs_list):
        o = np.asarray(o).astype(bool)
        X = np.array(X, dtype=np.float64)
        X[~o] = X[o].mean(axis=0)[None, :]
        c = np.ones(X.shape[0])
        c[~o] = o.mean() if missing_weight == "ratio" else 0.0
        Xs.append(X)
        cs.append(c)
    return Xs, cs


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    N, K, dims = 50, 3, [6, 8]
    Xraw = [rng.random((N, d)) for d in dims]
    obs = [np.ones(N), np.ones(N)]
    obs[0][:8] = 0; obs[1][8:15] = 0
    X, c = fill_and_weight(Xraw, obs)
    basis = [[draw_nmf_random_init(rng, d, N, K, True, False)[0] for d in dims] for _ in range(3)]
    _, V0 = draw_nmf_random_init(rng, dims[0], N, K, False, True)
    U0, Vb0 = mic_init(X, K, basis, V0, max_iter=10)
    U, V, Us, logs, _ = mic(X, c, U0, Vb0, [1e-2] * 2, [1e-2] * 2, rounds=20, max_iter=10)
    print(logs[:3], logs[-1])
