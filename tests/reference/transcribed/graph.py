"""NumPy reference transcriptions: BSV / Concat preprocessing, IMSC_AGL, PIC (graph part + fusion),
LF-IMVC (TPAMI 2019) and, as a side variant, EE-R-IMVC (TPAMI 2020).

For generating reference vectors only. Every solver is deterministic given the initial arrays passed in;
no k-means is run here (the final k-means of every method is random in MATLAB and is described in
graph_spec.md).

Sources transcribed (read with git, see graph_spec.md section 0 for exact paths):
  survey toolbox : https://github.com/DarrenZZhang/TSCMA23-Survey_IMC  commit fe2231775b1ea17af7bfc3fbf5340c7819a3c923
      BSV_Concat/BSV.m, BSV_Concat/Concat.m, utils/NormalizeFea.m,
      IMSC_AGL/IMSAGL.m, IMSC_AGL/IMSC_AGL_clustering.m, IMSC_AGL/EProjSimplex_new.m, IMSC_AGL/L2_distance_1.m,
      IMSC_AGL/solveF.m, IMSC_AGL/solveU.m, PIC/constructW.m (used by IMSC_AGL, it is not in IMSC_AGL/),
      PIC/PIC.m, PIC/PIC_clustering.m, PIC/constructS_PNG.m, PIC/L2_distance_nan.m, PIC/SCompletion.m
  LF-IMVC        : https://github.com/xinwangliu/Late-Fusion-Incomplete-Multi-view-Clustering
                   commit 7f75ecbe8bf4553c9d2f9f99798596b2f8eb1501
      IncompleteMultikernelLatefusionclusteringV1Hv.m, updateWPabsentClusteringV1.m,
      updateHPabsentClusteringV1.m, mykernelkmeans.m, kcenter.m, knorm.m, Demo.m, and the paper PDF in the repo
  EE-R-IMVC      : https://github.com/xinwangliu/TPAMI_EEIMVC  commit 565930e6a69d7cbbb996833d319117c840df11a7
      incompleteLateFusionMKCOrthHp_lambda.m, myInitializationHp.m, algorithm2.m, mycombFun.m,
      updateHPabsentClusteringOrthHp.m, updateBetaAbsentClustering.m

Layout conventions (MATLAB's, kept):
  feature views  X[v] : (d_v, N)  columns are samples         (survey data, "one column one sample")
  mask                : (N, V)    1 = observed (the survey's folds{f})
  IMSC_AGL  X[v]      : (d_v, n_v) observed columns only; G[v] : (n_v, N) rows of eye(N) of observed samples
            Z, W, S   : (n_v, n_v);  F[v], U : (N, k)
  LF-IMVC   HP        : MATLAB HP(:,:,p) is (N, k, m); here stored as an array (m, N, k)  -> HP[p] == HP(:,:,p)
            WP        : (m, k, k);  Hstar : (N, k)
Places where MATLAB semantics had to be interpreted are tagged [MATLAB-SEM].
"""
import itertools

import numpy as np


# =====================================================================================================
# shared helpers
# =====================================================================================================
def normalize_fea(fea, row):
    """NormalizeFea(fea, row). row=1: every row to unit L2 norm; row=0: every column.
    Squared norm floored at 1e-14 before the inverse square root.
    [MATLAB-SEM] MATLAB max(1e-14, NaN) returns 1e-14 (max ignores NaN) -> np.fmax, not np.maximum."""
    fea = np.asarray(fea, dtype=float)
    if row:
        nrm = np.fmax(1e-14, np.sum(fea ** 2, axis=1))
        return fea * (nrm ** -0.5)[:, None]
    nrm = np.fmax(1e-14, np.sum(fea ** 2, axis=0))
    return fea * (nrm ** -0.5)[None, :]


def _top_k_sym(M, k):
    """Eigenvectors of the k largest (algebraic) eigenvalues of a symmetric matrix.
    [MATLAB-SEM] MATLAB eig on an exactly symmetric matrix returns ascending real eigenvalues; the
    survey code sorts 'descend' and takes the first k. eigs(M,k,'lr'/'la') returns the same subspace.
    Column signs / basis inside a repeated eigenvalue are arbitrary (LAPACK dependent)."""
    w, V = np.linalg.eigh(M)
    order = np.argsort(-w, kind="stable")
    return V[:, order[:k]]


def _polar(A):
    """U V' from the thin SVD A = U S V' (orthogonal Procrustes maximiser of tr(X'A))."""
    U, _, Vt = np.linalg.svd(A, full_matrices=False)
    return U @ Vt


# =====================================================================================================
# BSV / Concat (BSV_Concat/BSV.m, BSV_Concat/Concat.m)
# =====================================================================================================
def bsv_concat_fill(X, mask):
    """Per-view preprocessing shared by BSV and Concat.
    X[v]: (d_v, N). Returns list of (d_v, N): columns scaled to unit norm (NormalizeFea(.,0)) on ALL columns,
    then every missing column replaced by the mean of the observed (already normalised) columns.
    (BSV.m transposes X{v} first when size(X{1},2) ~= N; Concat.m does not - callers must pass (d_v, N).)"""
    out = []
    for v, Xv in enumerate(X):
        X1 = normalize_fea(Xv, 0)
        obs = mask[:, v] == 1
        m = X1[:, obs].mean(axis=1)
        X1 = X1.copy()
        X1[:, ~obs] = m[:, None]
        out.append(X1)
    return out


def concat_matrix(X, mask):
    """Concat: vertical stack of the filled views -> (sum d_v, N); MATLAB then runs kmeans(new_X', k)."""
    return np.vstack(bsv_concat_fill(X, mask))


# =====================================================================================================
# IMSC_AGL
# =====================================================================================================
def eu_dist2_sq(a, b):
    """EuDist2(a, b, 0) with b given: squared distances, negatives clipped to 0, no symmetrisation."""
    aa = np.sum(a * a, axis=1)
    bb = np.sum(b * b, axis=1)
    D = aa[:, None] + bb[None, :] - 2.0 * (a @ b.T)
    D[D < 0] = 0.0
    return D


def construct_w_knn_binary(fea, k=5):
    """constructW(fea, NeighborMode='KNN', k, WeightMode='Binary') with default bSelfConnected=0, bTrueKNN=0.
    fea: (n, d) rows are samples. For every row take the k+1 smallest squared distances by repeated
    min (first index on ties [MATLAB-SEM] MATLAB min and np.argmin both return the first), set those
    entries to 1, drop the diagonal, then W = max(W, W'). (Block processing does not change the result.)"""
    n = fea.shape[0]
    dist = eu_dist2_sq(fea, fea)
    W = np.zeros((n, n))
    rows = np.arange(n)
    for _ in range(k + 1):
        j = np.argmin(dist, axis=1)
        W[rows, j] = 1.0
        dist[rows, j] = 1e100
    W[rows, rows] = 0.0
    return np.maximum(W, W.T)


def eproj_simplex_new(v, k=1.0):
    """EProjSimplex_new: min 0.5||x-v||^2 s.t. x>=0, sum x = k, by Newton on the shift.
    Literal: stops when |f|<=1e-10, or after the counter ft exceeds 100."""
    v = np.asarray(v, dtype=float)
    n = v.size
    ft = 1
    v0 = v - v.mean() + k / n
    if v0.min() < 0:
        f = 1.0
        lam = 0.0
        while abs(f) > 1e-10:
            v1 = v0 - lam
            pos = v1 > 0
            npos = pos.sum()
            g = -npos
            f = v1[pos].sum() - k
            lam = lam - f / g
            ft += 1
            if ft > 100:
                break
        return np.maximum(v1, 0.0)
    return v0


def l2_distance_1(a, b):
    """L2_distance_1(a,b): a,b are (dim, n) with columns as points; squared distances clipped at 0.
    [MATLAB-SEM] a one-row input is padded with a zero row (no effect on the distances)."""
    if a.shape[0] == 1:
        a = np.vstack([a, np.zeros((1, a.shape[1]))])
        b = np.vstack([b, np.zeros((1, b.shape[1]))])
    aa = np.sum(a * a, axis=0)
    bb = np.sum(b * b, axis=0)
    d = aa[:, None] + bb[None, :] - 2.0 * (a.T @ b)
    return np.maximum(np.real(d), 0.0)


def _nan_inf_fix(M):
    M = M.copy()
    M[np.isnan(M)] = 0.0
    M[np.isinf(M)] = 1e5      # [MATLAB-SEM] isinf catches +inf and -inf; both become +1e5
    return M


def solve_f(Z, G, k):
    """solveF: per view, F = eigenvectors of G' L G (L = Laplacian of (|Z|+|Z'|)/2), ascending order,
    skipping eigenvalues <= 1e-6 when more than k eigenvalues exceed 1e-6.
    [MATLAB-SEM] the MATLAB code indexes V with positions in the sorted list; eig of a symmetric matrix
    is already ascending so sorted position == column index; same with eigh."""
    F = []
    for Zi, Gi in zip(Z, G):
        Wm = (np.abs(Zi) + np.abs(Zi.T)) / 2.0
        L = np.diag(Wm.sum(axis=0)) - Wm
        M = _nan_inf_fix(Gi.T @ L @ Gi)
        d, V = np.linalg.eigh(M)
        order = np.argsort(d, kind="stable")
        d_sorted = d[order]
        ind2 = np.nonzero(d_sorted > 1e-6)[0]
        if len(ind2) > k:
            F.append(V[:, ind2[:k]])
        else:
            F.append(V[:, order[:k]])
    return F


def solve_u(F, k):
    """solveU: top-k eigenvectors of sum_v F_v F_v' (computed by the driver, then unused by IMSAGL)."""
    M = _nan_inf_fix(sum(f @ f.T for f in F))
    return _top_k_sym(M, k)


def imsc_agl_prepare(Xraw, mask, k, knn=5):
    """IMSC_AGL_clustering.m preprocessing.
    Xraw[v]: (d_v, N). Rows of X' (samples) scaled to unit norm, missing samples removed.
    Returns X (list (d_v, n_v)), G (list (n_v, N)), Z_ini (list (n_v, n_v)), invXX, F_ini."""
    N = mask.shape[0]
    X, G, Z_ini, invXX = [], [], [], []
    for v, Xv in enumerate(Xraw):
        X1 = normalize_fea(Xv.T, 1)
        obs = mask[:, v] == 1
        Xo = X1[obs].T
        X.append(Xo)
        G.append(np.eye(N)[obs])
        Z_ini.append(construct_w_knn_binary(Xo.T, knn))
        invXX.append(np.linalg.inv(Xo.T @ Xo + 2.0 * np.eye(Xo.shape[1])))
    F_ini = solve_f(Z_ini, G, k)
    return X, G, Z_ini, invXX, F_ini


def imsc_agl(X, G, Z_ini, F_ini, invXX, k, lam1=0.1, lam2=1000.0, lam3=100.0, mu=0.01, rho=1.1,
             max_iter=100, u_overwrite=True):
    """IMSAGL.m main loop, line by line.

    u_overwrite=True (faithful): inside the view loop the eigenvector output of the F-step is stored in
    the same variable U that holds the consensus, so view v>=2 uses F_{v-1}(new) in lam3*U*U', the
    objective uses U = F_V, and the function RETURNS F_V of the last iteration (not the consensus).
    u_overwrite=False: the evident intent (consensus U for every view, consensus returned).
    Returns dict(U=..., obj=list, Z, W, S, E, F, n_iter)."""
    nv = len(X)
    Z = [z.astype(float).copy() for z in Z_ini]
    S = [z.copy() for z in Z]
    W = [z.copy() for z in Z]
    F = [f.copy() for f in F_ini]
    E = [np.zeros_like(x) for x in X]
    C1 = [np.zeros_like(x) for x in X]
    C2 = [np.zeros_like(z) for z in Z]
    C3 = [np.zeros_like(z) for z in Z]
    obj = []
    U = None
    it = 0
    for it in range(1, max_iter + 1):
        # ---- consensus U from the current F's
        FFF = _nan_inf_fix(sum(f @ f.T for f in F))
        U = _top_k_sym(FFF, k)
        U_cons = U
        FFF = 0.0
        o1 = 0.0
        o2 = 0.0
        XXv = 0.0
        for i in range(nv):
            Xi, Gi = X[i], G[i]
            # ---- Z
            G1 = Xi - E[i] + C1[i] / mu
            G2 = S[i] - C2[i] / mu
            G3 = W[i] - C3[i] / mu
            Z[i] = invXX[i] @ (Xi.T @ G1 + G2 + G3)
            # ---- W (row-wise simplex projection, diagonal excluded and left untouched)
            P = Gi @ F[i]
            Q = l2_distance_1(P.T, P.T)
            M = Z[i] + C3[i] / mu
            lw = M - 0.5 * lam1 * Q / mu
            lw = lw - np.diag(np.diag(lw))
            n_i = Z[i].shape[1]
            Wi = W[i].copy()
            for ic in range(n_i):
                ind = np.r_[0:ic, ic + 1:n_i]
                Wi[ic, ind] = eproj_simplex_new(lw[ic, ind])
            W[i] = Wi
            # ---- S (singular value thresholding at 1/mu)
            temp = Z[i] + C2[i] / mu
            AU, SU, VUt = np.linalg.svd(temp, full_matrices=False)
            AU[np.isnan(AU)] = 0.0
            VUt[np.isnan(VUt)] = 0.0
            SU[np.isnan(SU)] = 0.0
            svp = int(np.sum(SU > 1.0 / mu))
            if svp >= 1:
                SU = SU[:svp] - 1.0 / mu
                S[i] = (AU[:, :svp] * SU[None, :]) @ VUt[:svp, :]
            else:
                SU = np.zeros(1)
                S[i] = np.zeros_like(temp)
            # ---- F
            WW = (np.abs(W[i]) + np.abs(W[i].T)) * 0.5
            LL = np.diag(WW.sum(axis=0)) - WW
            GLG = Gi.T @ LL @ Gi
            Mf = _nan_inf_fix(lam3 * (U @ U.T) - lam1 * GLG)
            Fi = _top_k_sym(Mf, k)          # eigs(M, k, 'lr')
            F[i] = Fi
            if u_overwrite:
                U = Fi                       # [MATLAB-SEM] faithful to "[U,D] = eigs(...)" then "F{i} = U"
            FFF = FFF + Fi @ Fi.T
            # ---- E (elementwise soft threshold)
            t1 = Xi - Xi @ Z[i] + C1[i] / mu
            t2 = lam2 / mu
            E[i] = np.maximum(0.0, t1 - t2) + np.minimum(0.0, t1 + t2)
            # ---- multipliers
            leq1 = Xi - Xi @ Z[i] - E[i]
            leq2 = Z[i] - S[i]
            leq3 = Z[i] - W[i]
            C1[i] = C1[i] + mu * leq1
            C2[i] = C2[i] + mu * leq2
            C3[i] = C3[i] + mu * leq3
            # ---- objective pieces
            o1 += np.sum(np.abs(SU)) + lam1 * np.trace(Fi.T @ GLG @ Fi) + lam2 * np.sum(np.abs(E[i]))
            o2 += np.sum(leq1 ** 2) + np.sum(leq2 ** 2) + np.sum(leq3 ** 2)
            XXv += np.sum(Xi ** 2)
        U_obj = U if u_overwrite else U_cons
        if not u_overwrite:
            U = U_cons
        obj.append((o1 + o2 + lam3 * (nv * k - np.trace(U_obj.T @ FFF @ U_obj))) / XXv)
        mu = min(rho * mu, 1e8)
        if it > 2 and abs(obj[-1] - obj[-2]) < 1e-7:
            break
    return dict(U=U, obj=obj, Z=Z, W=W, S=S, E=E, F=F, n_iter=it)


def row_normalize_safe(U):
    """IMSC_AGL_clustering.m post-processing: rows scaled to unit norm, all-zero rows left as is."""
    nrm = np.sqrt(np.sum(U * U, axis=1))
    nrm[nrm == 0] = 1.0
    return U / nrm[:, None]


# =====================================================================================================
# PIC (graph construction, completion, fusion; PIC_clustering.m + PIC.m)
# =====================================================================================================
def pic_preprocess(Xraw, mask):
    """PIC_clustering.m: X[v] (d_v,N); missing columns -> NaN; every column (sample) z-scored over its
    features with std(.) (n-1 denominator; std==0 -> eps). Missing columns stay NaN."""
    out = []
    for v, Xv in enumerate(Xraw):
        D = np.asarray(Xv, dtype=float).copy()
        D[:, mask[:, v] == 0] = np.nan
        for j in range(D.shape[1]):
            col = D[:, j]
            s = np.std(col, ddof=1)
            if s == 0:
                s = np.finfo(float).eps
            D[:, j] = (col - np.mean(col)) / s
        out.append(D)
    return out


def l2_distance_nan(a, b):
    """L2_distance_nan: squared distances (NOT clipped at 0), then diag forced via d - diag(diag(d)).
    [MATLAB-SEM] NaN - NaN = NaN, so rows/cols of missing samples stay all-NaN, diagonal included."""
    if a.shape[0] == 1:
        a = np.vstack([a, np.zeros((1, a.shape[1]))])
        b = np.vstack([b, np.zeros((1, b.shape[1]))])
    aa = np.sum(a * a, axis=0)
    bb = np.sum(b * b, axis=0)
    d = aa[:, None] + bb[None, :] - 2.0 * (a.T @ b)
    return d - np.diag(np.diag(d))


def construct_s_png(X, k=13, issymmetric=0):
    """constructS_PNG(X, k, 0) on (dim, n) data with NaN columns for missing samples.
    Row i: sort distances ascending, take positions 2..k+2 (k+1 entries; position 1 assumed to be self),
    S(i,id) = (d_{k+1} - d_j) / (k d_{k+1} - sum_{j<=k} d_j + eps).
    [MATLAB-SEM] MATLAB sort puts NaN last and is stable -> argsort(kind='stable') also puts NaN last.
    For an all-NaN row MATLAB gives idx = 1:n, so S(i, 2:k+2) = NaN (overwritten later by SCompletion)."""
    n = X.shape[1]
    D = l2_distance_nan(X, X)
    idx = np.argsort(D, axis=1, kind="stable")
    S = np.zeros((n, n))
    eps = np.finfo(float).eps
    for i in range(n):
        ids = idx[i, 1:k + 2]
        di = D[i, ids]
        S[i, ids] = (di[k] - di) / (k * di[k] - np.sum(di[:k]) + eps)
    if issymmetric == 1:
        S = (S + S.T) / 2.0
    return S, D


def s_completion(Wl, mask, issymmetric=1):
    """SCompletion: row id of view v kept if id observed in v; else the sum of W{vv}(id,:) over views vv
    where id is observed, divided by its row sum. Then S = (S+S')/2."""
    nv = len(Wl)
    N = Wl[0].shape[0]
    S = []
    for v in range(nv):
        Sv = np.zeros((N, N))
        for i in range(N):
            if mask[i, v] == 1:
                Sv[i] = Wl[v][i]
            else:
                cnt = False
                for vv in range(nv):
                    if mask[i, vv] == 1:
                        Sv[i] = Sv[i] + Wl[vv][i]
                        cnt = True
                if cnt:
                    Sv[i] = Sv[i] / np.sum(Sv[i])
        S.append(Sv)
    if issymmetric == 1:
        S = [(s + s.T) / 2.0 for s in S]
    return S


def _qp_simplex(H, f, tol=1e-10):
    """Exact solution of min 0.5 w'Hw + f'w, w>=0, sum w = 1 by enumerating active sets (small m).
    Stands in for MATLAB quadprog('active-set'); unique optimum when H is positive definite."""
    m = len(f)
    best, best_val = None, np.inf
    for r in range(1, m + 1):
        for Sset in itertools.combinations(range(m), r):
            Sset = list(Sset)
            A = np.zeros((r + 1, r + 1))
            A[:r, :r] = H[np.ix_(Sset, Sset)]
            A[:r, r] = 1.0
            A[r, :r] = 1.0
            rhs = np.r_[-f[Sset], 1.0]
            try:
                sol = np.linalg.solve(A, rhs)
            except np.linalg.LinAlgError:
                continue
            w = np.zeros(m)
            w[Sset] = sol[:r]
            nu = sol[r]
            if np.any(w[Sset] < -tol):
                continue
            mult = H @ w + f + nu
            if np.any(mult < -1e-8 * max(1.0, np.abs(mult).max())):
                continue
            val = 0.5 * w @ H @ w + f @ w
            if val < best_val:
                best, best_val = w, val
    return best


def pic_fusion(S, numC, beta=0.1):
    """PIC.m (the readable .m; the survey actually runs PIC.p, see spec). Returns (VV, weights, Lstar).
    VV = row-normalised top-numC left singular vectors of Lstar = sum_i w_i D_i^-1/2 S_i D_i^-1/2;
    MATLAB then runs kmeans(VV, numC).
    WARNING: eigvec ./ sum(eigvec,2) depends on singular-vector signs (LAPACK dependent), so the
    weights are not reproducible bit-for-bit across libraries."""
    nv = len(S)
    L, E, Sig = [], [], []
    for Si in S:
        dg = np.sum(Si, axis=1)
        with np.errstate(divide="ignore"):
            di = 1.0 / np.sqrt(dg)
        di[np.isinf(di)] = 0.0
        Li = (di[:, None] * Si) * di[None, :]
        Li[np.isnan(Li)] = 0.0
        Li[Li == np.inf] = 0.0
        Uu, sv, _ = np.linalg.svd(Li)
        E.append(Uu / np.sum(Uu, axis=1, keepdims=True))
        Sig.append(sv)
        L.append(Li)
    phi = np.zeros((nv, nv))
    for i in range(nv):
        for j in range(i, nv):
            ca = np.linalg.svd(E[i][:, :numC].T @ E[j][:, :numC], compute_uv=False)
            ca = ca / ca.max()
            phi[i, j] = np.pi - np.max(np.real(np.arccos(np.clip(ca, -1, 1))))
            phi[j, i] = phi[i, j]
    Q = np.diag(phi.sum(axis=0)) - phi
    CC = np.zeros((nv, nv))
    DD = np.zeros(nv)
    for m in range(nv):
        AA = E[m] @ E[m].T
        bb = (E[m] * Sig[m][None, :]) @ E[m].T
        for i in range(nv):
            DD[i] += np.trace(L[i] @ bb)
            for j in range(nv):
                CC[i, j] += np.trace(L[i] @ AA @ L[j].T)
    beta = beta * np.linalg.norm(CC, "fro") / np.linalg.norm(Q, "fro")
    H = CC + beta * Q
    H = (H + H.T) / 2.0
    w = _qp_simplex(H, -DD)
    Lstar = sum(w[i] * L[i] for i in range(nv))
    V1 = np.linalg.svd(Lstar)[0][:, :numC]
    VV = V1 / np.maximum(np.sqrt(np.sum(V1 * V1, axis=1)), 1e-10)[:, None]
    return VV, w, Lstar


# =====================================================================================================
# LF-IMVC (TPAMI 2019) and EE-R-IMVC (TPAMI 2020)
# =====================================================================================================
def kcenter(K):
    """kcenter on a stack (m, n, n) (MATLAB 3-D branch: adds 1e-12*I after symmetrising)."""
    K = np.array(K, dtype=float)
    n = K.shape[-1]
    out = np.empty_like(K)
    for p in range(K.shape[0]):
        D = K[p].sum(axis=0) / n
        Ev = D.sum() / n
        J = np.ones((n, 1)) * D[None, :]
        Kc = K[p] - J - J.T + Ev * np.ones((n, n))
        out[p] = 0.5 * (Kc + Kc.T) + 1e-12 * np.eye(n)
    return out


def knorm(K):
    """knorm: K ./ sqrt(diag(K) diag(K)') per slice."""
    K = np.array(K, dtype=float)
    for p in range(K.shape[0]):
        d = np.diag(K[p])
        K[p] = K[p] / np.sqrt(np.outer(d, d))
    return K


def lfimvc_init_hp(K, mask, k, jitter=1e-8, row_normalize=False):
    """Base partitions H_p^(0) (paper Sec. 3.3 / EEIMVC myInitializationHp.m): top-k eigenvectors
    (eigs 'la') of (K_p(s_p,s_p)+K_p(s_p,s_p)')/2 + jitter*I on the observed block, zero rows for missing.
    row_normalize=True reproduces the LF-IMVC repo's mykernelkmeans (rows scaled to unit norm), which
    its Demo applies to FULL kernels. Returns (m, N, k). Column signs are arbitrary (they matter!)."""
    m, N = K.shape[0], K.shape[1]
    HP = np.zeros((m, N, k))
    for p in range(m):
        obs = np.nonzero(mask[:, p] == 1)[0]
        KA = K[p][np.ix_(obs, obs)]
        KA = (KA + KA.T) / 2.0 + jitter * np.eye(len(obs))
        H = _top_k_sym(KA, k)
        if row_normalize:
            H = H / np.sqrt(np.sum(H ** 2, axis=1, keepdims=True))
        HP[p][obs] = H
    return HP


def lfimvc(HP00, k, lam, max_iter=200, tol=1e-4):
    """IncompleteMultikernelLatefusionclusteringV1Hv.m (= paper Eq. (9), Algorithm 1).
    HP00: (m, N, k) incomplete base partitions with zero rows for missing samples (Hhat_p^(0)).
    Init HP = HP00, WP = I. Per iteration:
      Hstar = polar(sum_p HP_p WP_p);  WP_p = polar(HP_p' Hstar);  HP_p = polar(Hstar WP_p' + lam HP00_p)
      obj = tr(Hstar' sum_p HP_p WP_p) + lam sum_p tr(HP_p' HP00_p)
      stop when iter>2 and (|obj_t - obj_{t-1}|/|obj_t| < 1e-4  or  iter > max_iter).
    Returns dict(H_normalized, Hstar, WP, HP, obj, n_iter)."""
    HP00 = np.asarray(HP00, dtype=float)
    m, N, _ = HP00.shape
    HP = HP00.copy()
    WP = np.stack([np.eye(k)] * m)
    obj = []
    it = 0
    while True:
        it += 1
        T = sum(HP[p] @ WP[p] for p in range(m))
        Hstar = _polar(T)
        WP = np.stack([_polar(HP[p].T @ Hstar) for p in range(m)])
        HP = np.stack([_polar(Hstar @ WP[p].T + lam * HP00[p]) for p in range(m)])
        T = sum(HP[p] @ WP[p] for p in range(m))
        obj2 = sum(np.trace(HP[p].T @ HP00[p]) for p in range(m))
        obj.append(np.trace(Hstar.T @ T) + lam * obj2)
        # [MATLAB-SEM] (iter>2) && (A<tol || iter>maxIter): relative change divides by obj(iter), abs taken
        if it > 2 and (abs((obj[-1] - obj[-2]) / obj[-1]) < tol or it > max_iter):
            break
    Hn = Hstar / np.sqrt(np.sum(Hstar ** 2, axis=1, keepdims=True))
    return dict(H_normalized=Hn, Hstar=Hstar, WP=WP, HP=HP, obj=obj, n_iter=it)


def eeimvc(K, mask, k, lam, HP00=None, H0=None, qnorm=2, max_iter=100, tol=1e-4):
    """incompleteLateFusionMKCOrthHp_lambda.m (EE-R-IMVC, TPAMI 2020) - side variant for reference.
    Observed rows of HP stay fixed at HP00; missing rows = polar(Hstar(mis,:) WP_p'); weights beta;
    regulariser lam*H0 with H0 = kernel k-means (top-k eigvecs) of sum_p beta_p KA_p where KA_p is K_p with
    missing rows/cols zeroed. HP00 / H0 may be passed to fix eigenvector signs."""
    m, N = K.shape[0], K.shape[1]
    if HP00 is None:
        HP00 = lfimvc_init_hp(K, mask, k)
    HP = HP00.copy()
    WP = np.stack([np.eye(k)] * m)
    beta = np.ones(m) * (1.0 / m) ** (1.0 / qnorm)
    if H0 is None:
        KC = np.zeros((N, N))
        for p in range(m):
            obs = np.nonzero(mask[:, p] == 1)[0]
            KA = np.zeros((N, N))
            KAp = K[p][np.ix_(obs, obs)]
            KA[np.ix_(obs, obs)] = (KAp + KAp.T) / 2.0
            KC += beta[p] * KA
        H0 = _top_k_sym((KC + KC.T) / 2.0, k)
    R = sum(beta[p] * (HP[p] @ WP[p]) for p in range(m)) + lam * H0
    obj = []
    it = 0
    while True:
        it += 1
        Hstar = _polar(R)
        WP = np.stack([_polar(HP[p].T @ Hstar) for p in range(m)])
        newHP = np.zeros_like(HP)
        for p in range(m):
            mis = np.nonzero(mask[:, p] == 0)[0]
            obs = np.nonzero(mask[:, p] == 1)[0]
            if len(mis):
                newHP[p][mis] = _polar(Hstar[mis] @ WP[p].T)
            newHP[p][obs] = HP00[p][obs]
        HP = newHP
        h = np.array([np.trace(Hstar.T @ (HP[p] @ WP[p])) for p in range(m)])
        beta = h ** (1.0 / (qnorm - 1)) / np.sum(h ** (qnorm / (qnorm - 1))) ** (1.0 / qnorm)
        R = sum(beta[p] * HP[p] @ WP[p] for p in range(m)) + lam * H0
        obj.append(np.trace(Hstar.T @ R))
        if it > 2 and (abs((obj[-1] - obj[-2]) / obj[-1]) < tol or it > max_iter):
            break
    Hn = Hstar / np.sqrt(np.sum(Hstar ** 2, axis=1, keepdims=True))
    return dict(H_normalized=Hn, Hstar=Hstar, WP=WP, HP=HP, beta=beta, obj=obj, n_iter=it)


# =====================================================================================================
# self-test
# =====================================================================================================
def _toy(seed=0, N=60, k=3, dims=(5, 7, 4)):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), N // k)
    X = []
    for d in dims:
        C = rng.normal(size=(d, k)) * 3
        X.append(np.abs(C[:, y] + rng.normal(size=(d, N))))
    V = len(dims)
    mask = np.ones((N, V), dtype=int)
    for i in range(N):
        if rng.random() < 0.4:
            drop = rng.choice(V, size=rng.integers(1, V), replace=False)
            mask[i, drop] = 0
    return X, mask, y


def _nmi(a, b):
    from sklearn.metrics import normalized_mutual_info_score
    return normalized_mutual_info_score(a, b)


if __name__ == "__main__":
    from sklearn.cluster import KMeans

    X, mask, y = _toy()
    k = 3
    N = mask.shape[0]

    # --- simplex projection vs sort-based exact projection
    rng = np.random.default_rng(1)
    for _ in range(50):
        v = rng.normal(size=17) * 3
        x = eproj_simplex_new(v)
        u = np.sort(v)[::-1]
        css = np.cumsum(u) - 1
        r = np.nonzero(u - css / np.arange(1, 18) > 0)[0][-1]
        xe = np.maximum(v - css[r] / (r + 1), 0)
        assert np.abs(x - xe).max() < 1e-9 and abs(x.sum() - 1) < 1e-9
    print("EProjSimplex_new matches exact projection")

    # --- BSV / Concat
    Xf = bsv_concat_fill(X, mask)
    assert all(np.allclose(Xf[v][:, mask[:, v] == 0], Xf[v][:, mask[:, v] == 1].mean(1, keepdims=True))
               for v in range(len(X)))
    Xc = concat_matrix(X, mask)
    print("Concat matrix", Xc.shape, "NMI(kmeans)=%.3f" % _nmi(y, KMeans(k, n_init=10, random_state=0).fit_predict(Xc.T)))

    # --- IMSC_AGL
    Xs, G, Z_ini, invXX, F_ini = imsc_agl_prepare(X, mask, k)
    assert all(np.allclose(z, z.T) and np.all(np.diag(z) == 0) for z in Z_ini)
    res = imsc_agl(Xs, G, Z_ini, F_ini, invXX, k, max_iter=40)
    Ue = row_normalize_safe(res["U"])
    print("IMSC_AGL iters=%d obj[0]=%.4g obj[-1]=%.4g" % (res["n_iter"], res["obj"][0], res["obj"][-1]),
          "NMI=%.3f" % _nmi(y, KMeans(k, n_init=10, random_state=0).fit_predict(Ue)))
    for Wi in res["W"]:
        assert np.allclose(Wi.sum(1), 1, atol=1e-8) and Wi.min() >= 0 and np.all(np.diag(Wi) == 0)
    # basis invariance: rotating every F_ini by an orthogonal matrix leaves U U' unchanged
    Rq = np.linalg.qr(rng.normal(size=(k, k)))[0]
    res2 = imsc_agl(Xs, G, Z_ini, [f @ Rq for f in F_ini], invXX, k, max_iter=5)
    res1 = imsc_agl(Xs, G, Z_ini, F_ini, invXX, k, max_iter=5)
    dUU = np.abs(res1["U"] @ res1["U"].T - res2["U"] @ res2["U"].T).max()
    print("IMSC_AGL basis invariance |dUU'|max = %.2e" % dUU)
    assert dUU < 1e-6

    # --- PIC
    Dp = pic_preprocess(X, mask)
    Wg = [construct_s_png(d, 13, 0)[0] for d in Dp]
    Sg = s_completion(Wg, mask, 1)
    assert all(np.isfinite(s).all() for s in Sg)
    VV, wts, _ = pic_fusion(Sg, k, 0.1)
    print("PIC weights", np.round(wts, 4), "NMI=%.3f" % _nmi(y, KMeans(k, n_init=10, random_state=0).fit_predict(VV)))

    # --- LF-IMVC on linear kernels of the unit-normalised views
    Kst = np.stack([normalize_fea(x, 0).T @ normalize_fea(x, 0) for x in X])
    Kst = knorm(kcenter(Kst))
    HP00 = lfimvc_init_hp(Kst, mask, k)
    for lam in (2.0 ** -3, 1.0, 8.0):
        r = lfimvc(HP00, k, lam)
        ob = np.array(r["obj"])
        assert np.all(np.diff(ob) >= -1e-9 * np.abs(ob).max()), "LF-IMVC objective not monotone"
        assert np.allclose(r["Hstar"].T @ r["Hstar"], np.eye(k), atol=1e-10)
        print("LF-IMVC lam=%g iters=%d obj %.6f -> %.6f (monotone)" % (lam, r["n_iter"], ob[0], ob[-1]),
              "NMI=%.3f" % _nmi(y, KMeans(k, n_init=10, random_state=0).fit_predict(r["H_normalized"])))
    r = eeimvc(Kst, mask, k, 1.0, HP00=HP00)
    print("EE-R-IMVC iters=%d beta=%s NMI=%.3f" % (r["n_iter"], np.round(r["beta"], 3),
          _nmi(y, KMeans(k, n_init=10, random_state=0).fit_predict(r["H_normalized"]))))
    print("self-test OK")
