"""NumPy reference transcription of the DAIMC solver (Hu & Chen, IJCAI 2018).

Source transcribed (MATLAB, Menglei Hu's code as redistributed by Jie Wen's IMC survey):
  repo   : https://github.com/DarrenZZhang/TSCMA23-Survey_IMC
  commit : fe2231775b1ea17af7bfc3fbf5340c7819a3c923
  files  : DAIMC/DAIMC.m, DAIMC/UpdateV_DAIMC.m, DAIMC/newinit.m, DAIMC/DAIMC_clustering.m,
           utils/NormalizeFea.m

Purpose: generate reference vectors.  Deterministic given the initial factors.

Conventions (same as MATLAB):
  X[v] : (d_v, N)   columns are samples
  w[v] : (N,)       0/1 observation indicator; MATLAB uses W{v} = diag(w[v]) (N, N)
  U[v] : (d_v, r)   view basis
  V    : (N, r)     shared nonnegative representation
  B[v] : (d_v, r)   regression matrix
  r    : number of clusters

Every product with the diagonal W{v} is written with broadcasting
(A @ diag(w) == A * w[None, :], diag(w) @ A == w[:, None] * A); this is an exact
identity for 0/1 weights, only the floating-point summation order differs.
Places where MATLAB semantics had to be interpreted are tagged  [MATLAB-SEM].
"""
import numpy as np
import scipy.linalg as sla

ETA = 1e-10          # eta inside sqrt(||b_k||^2 + eta)
V_FLOOR = 1e-10      # max(denominator, 1e-10) in the V multiplicative rule
INNER_TOL = 1e-4     # UpdateV_DAIMC relative-change tolerance
INNER_MAX = 30       # UpdateV_DAIMC max inner iterations
OUTER_TOL = 1e-4     # DAIMC relative-change tolerance
OUTER_MAX = 30       # DAIMC max outer iterations


# ----------------------------------------------------------------------------------
# preprocessing (DAIMC_clustering.m + NormalizeFea.m with row=0)
# ----------------------------------------------------------------------------------
def normalize_fea_cols(X):
    """NormalizeFea(X, 0): every column (sample) scaled to unit L2 norm.
    feaNorm = max(1e-14, sum(X.^2, 1)); X = X * diag(feaNorm.^-0.5)."""
    X = np.asarray(X, dtype=np.float64)   # [MATLAB-SEM] assume double input
    fea_norm = np.maximum(1e-14, np.sum(X ** 2, axis=0))
    return X * (fea_norm ** -0.5)[None, :]


def preprocess(X_list_dN, w_list):
    """Columns normalised to unit L2, missing columns set to 0, W = diag(w)."""
    Xs = []
    for X, w in zip(X_list_dN, w_list):
        Xn = normalize_fea_cols(X)
        Xn[:, np.asarray(w) == 0] = 0.0
        Xs.append(Xn)
    return Xs, [np.asarray(w, dtype=np.float64) for w in w_list]


# ----------------------------------------------------------------------------------
# initialisation (newinit.m) -- k-means part is random in MATLAB, so the labels and
# centres of each view's k-means are passed in.
# ----------------------------------------------------------------------------------
def newinit_fill(X_list, w_list):
    """Missing columns of each view replaced by the mean of that view's observed columns."""
    out = []
    for X, w in zip(X_list, w_list):
        X = X.copy()
        miss = np.asarray(w) == 0
        mx = X[:, ~miss].mean(axis=1)
        X[:, miss] = mx[:, None]
        out.append(X)
    return out


def newinit_from_kmeans(X_filled, labels_list, centers_list, r):
    """labels_list[v]: (N,) ints in 0..r-1 (MATLAB 1..r minus one);
    centers_list[v]: (r, d_v) centres returned by litekmeans(X_filled[v].T, r, 'Replicates', 20)."""
    n_views = len(X_filled)
    U = []
    sumH = 0.0
    for v in range(n_views):
        d, n = X_filled[v].shape
        U.append(centers_list[v].T + 0.1 * np.ones((d, r)))
        G = np.zeros((n, r))
        G[np.arange(n), labels_list[v]] = 1.0
        sumH = sumH + (G + 0.1 * np.ones((n, r)))
    V = sumH / n_views
    q = np.ones(V.shape[0]) @ V              # Q = diag(column sums of V)
    V = V @ np.linalg.inv(np.diag(q))
    U = [u @ np.diag(q) for u in U]
    lam = 1e-5
    B = []
    for v in range(n_views):
        d = U[v].shape[0]
        invI = np.diag(1.0 / np.diag(lam * np.eye(d)))
        Uv = U[v]
        B.append((invI - invI @ Uv @ np.linalg.inv(Uv.T @ invI @ Uv + np.eye(r)) @ Uv.T @ invI) @ Uv)
    return U, V, B


def newinit(X_list, w_list, r, kmeans_fn):
    """kmeans_fn(Y (N, d), r) -> (labels (N,), centers (r, d)); MATLAB used
    litekmeans(Y, r, 'Replicates', 20)."""
    Xf = newinit_fill(X_list, w_list)
    labs, cens = [], []
    for X in Xf:
        l, c = kmeans_fn(X.T, r)
        labs.append(np.asarray(l))
        cens.append(np.asarray(c))
    return newinit_from_kmeans(Xf, labs, cens, r)


# ----------------------------------------------------------------------------------
# solver
# ----------------------------------------------------------------------------------
def _d_diag(Bv):
    # D{i}(k,k) = 1/sqrt(norm(B{i}(k,:),2)^2 + eta) ; stored as a vector
    return 1.0 / np.sqrt(np.sum(Bv ** 2, axis=1) + ETA)


def lyap(A, B, C):
    """[MATLAB-SEM] MATLAB lyap(A,B,C) solves A*X + X*B + C = 0 (Control Toolbox, SLICOT
    Hessenberg-Schur).  scipy solve_sylvester(A, B, Q) solves A X + X B = Q (Bartels-Stewart).
    So lyap(A,B,-T) == solve_sylvester(A, B, T)."""
    return sla.solve_sylvester(A, B, -C)


def update_v(X_list, w_list, U, V, inner_max=INNER_MAX, inner_tol=INNER_TOL, trace=None):
    """UpdateV_DAIMC.m.  Semi-NMF multiplicative rule for V (N, r)."""
    n_views = len(X_list)
    t = 0
    f = 0.0
    while True:
        t += 1
        sumVUUminus = 0.0
        sumVUUplus = 0.0
        sumXUminus = 0.0
        sumXUplus = 0.0
        for i in range(n_views):
            XU = X_list[i].T @ U[i]                  # (N, r)
            absXU = np.abs(XU)
            XUplus = (absXU + XU) / 2
            XUminus = (absXU - XU) / 2
            UU = U[i].T @ U[i]                       # (r, r)
            absUU = np.abs(UU)
            UUplus = (absUU + UU) / 2
            UUminus = (absUU - UU) / 2
            w = w_list[i][:, None]
            sumXUminus = sumXUminus + w * XUminus    # W{i}*XUminus
            sumXUplus = sumXUplus + w * XUplus
            sumVUUplus = sumVUUplus + w * (V @ UUplus)   # W{i}*V*UUplus
            sumVUUminus = sumVUUminus + w * (V @ UUminus)
        V = V * np.sqrt((sumXUplus + sumVUUminus) / np.maximum(sumXUminus + sumVUUplus, V_FLOOR))
        ff = 0.0
        for i in range(n_views):
            tmp = (X_list[i] - U[i] @ V.T) * w_list[i][None, :]
            ff += np.sum(tmp ** 2)
        if trace is not None:
            trace.append(ff)
        # [MATLAB-SEM] abs((ff-f)/f) with f == 0 on the first pass gives Inf (ff > 0) or NaN
        # (ff == 0); both compare false, so the first pass never stops on the tolerance.
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = abs((ff - f) / f) if f != 0 else (np.inf if ff != f else np.nan)
        if (rel < inner_tol) or (abs(ff - f) > 1e100) or (t == inner_max):
            break
        f = ff
    return V


def objective(X_list, w_list, U, V, B, D, alpha, beta, r):
    ff = 0.0
    for i in range(len(X_list)):
        tmp1 = (X_list[i] - U[i] @ V.T) * w_list[i][None, :]
        tmp2 = B[i].T @ U[i] - np.eye(r)
        tmp3 = np.sum(1.0 / D[i])                    # = sum_k sqrt(||b_k||^2 + eta)
        ff += np.sum(tmp1 ** 2) + alpha * (np.sum(tmp2 ** 2) + beta * tmp3)
    return ff


def daimc(X_list, w_list, init_U, init_V, init_B, alpha, beta, max_iter=OUTER_MAX,
          tol=OUTER_TOL, inner_max=INNER_MAX, inner_tol=INNER_TOL, return_history=False):
    """DAIMC.m main loop.

    X_list[v] (d_v, N) preprocessed data (unit-norm columns, missing columns zero)
    w_list[v] (N,) 0/1 indicators (W{v} = diag(w))
    init_U[v] (d_v, r), init_V (N, r), init_B[v] (d_v, r)
    alpha = options.afa, beta = options.beta

    Returns U, V, B, F (objective after each outer iteration, 1-based order), and
    optionally per-iteration snapshots.
    """
    U = [np.array(u, dtype=np.float64) for u in init_U]
    V = np.array(init_V, dtype=np.float64)
    B = [np.array(b, dtype=np.float64) for b in init_B]
    n_views = len(X_list)
    r = V.shape[1]
    D = [_d_diag(B[i]) for i in range(n_views)]
    F = []
    hist = []
    t = 0
    f = 0.0
    while True:
        t += 1
        # ---- U step: alpha*B B^T U + U (V^T W V) = X W V + alpha*B
        for i in range(n_views):
            w = w_list[i]
            tmp1 = alpha * B[i] @ B[i].T                  # (d, d)
            tmp2 = V.T @ (w[:, None] * V)                 # V' W V   (r, r)
            tmp3 = (X_list[i] * w[None, :]) @ V + alpha * B[i]   # X W V + alpha B  (d, r)
            U[i] = lyap(tmp1, tmp2, -tmp3)
        # ---- V step (inner multiplicative loop)
        V = update_v(X_list, w_list, U, V, inner_max, inner_tol)
        # ---- column normalisation of V, compensated in U
        q = np.ones(V.shape[0]) @ V                       # column sums
        V = V @ np.linalg.inv(np.diag(q))                 # [MATLAB-SEM] V*inv(Q) literal
        for i in range(n_views):
            U[i] = U[i] @ np.diag(q)
            # ---- B step: (0.5*beta*D + U U^T) B = U   written via Woodbury as in MATLAB
            invD = np.diag(1.0 / (0.5 * beta * D[i]))
            Ui = U[i]
            B[i] = (invD - invD @ Ui @ np.linalg.inv(Ui.T @ invD @ Ui + np.eye(r)) @ Ui.T @ invD) @ Ui
            D[i] = _d_diag(B[i])
        ff = objective(X_list, w_list, U, V, B, D, alpha, beta, r)
        F.append(ff)
        if return_history:
            hist.append(dict(U=[u.copy() for u in U], V=V.copy(), B=[b.copy() for b in B], obj=ff))
        # [MATLAB-SEM] abs(ff-f)/f ; f == 0 at t == 1 -> Inf, never < tol
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = abs(ff - f) / f if f != 0 else (np.inf if ff != f else np.nan)
        if (rel < tol) or (abs(ff - f) > 1e100) or (t == max_iter):
            break
        f = ff
    if return_history:
        return U, V, B, np.array(F), hist
    return U, V, B, np.array(F)


# ----------------------------------------------------------------------------------
# JAX-friendly equivalents (same maths) -- for cross-checking an implementation
# ----------------------------------------------------------------------------------
def sylvester_eig(A_sym, M_sym, C):
    """Solve A U + U M = C for symmetric A (d,d) and symmetric M (r,r) via two eigh's.
    Equivalent to lyap(A, M, -C) whenever lambda_i(A) + mu_j(M) != 0."""
    la, P = np.linalg.eigh(A_sym)
    mu, Qm = np.linalg.eigh(M_sym)
    Ct = P.T @ C @ Qm
    return P @ (Ct / (la[:, None] + mu[None, :])) @ Qm.T


def b_update_direct(U, D, beta):
    """(0.5*beta*diag(D) + U U^T)^{-1} U  -- algebraically identical to the Woodbury form."""
    return np.linalg.solve(np.diag(0.5 * beta * D) + U @ U.T, U)


if __name__ == "__main__":
    # tiny self-test on random data
    rng = np.random.default_rng(0)
    N, r, dims = 60, 3, [7, 5, 9]
    Xraw = [rng.random((d, N)) for d in dims]
    w = [np.ones(N) for _ in dims]
    w[0][:10] = 0; w[1][10:20] = 0; w[2][20:25] = 0
    X, w = preprocess(Xraw, w)
    from sklearn.cluster import KMeans

    def km(Y, k):
        m = KMeans(k, n_init=20, random_state=0).fit(Y)
        return m.labels_, m.cluster_centers_

    U0, V0, B0 = newinit(X, w, r, km)
    U, V, B, F = daimc(X, w, U0, V0, B0, alpha=1e-1, beta=1e1)
    print("iters", len(F), "F", F[:5], "...", F[-1])
    # check the JAX-friendly forms against the literal ones
    A = 0.1 * B0[0] @ B0[0].T; M = V0.T @ (w[0][:, None] * V0); C = (X[0] * w[0]) @ V0 + 0.1 * B0[0]
    print("sylv diff", np.abs(lyap(A, M, -C) - sylvester_eig(A, M, C)).max())
    Dd = _d_diag(B0[1]); beta = 10.0
    invD = np.diag(1.0 / (0.5 * beta * Dd)); Ui = U0[1]
    Bw = (invD - invD @ Ui @ np.linalg.inv(Ui.T @ invD @ Ui + np.eye(r)) @ Ui.T @ invD) @ Ui
    print("B diff", np.abs(Bw - b_update_direct(Ui, Dd, beta)).max())
