"""Analytic heads computed from :class:`~forgetless.statistics.SufficientStatistics`.

``ridge``  W = (G + lambda I)^-1 Q by Cholesky (checked fallback), lambda fixed or chosen by
           generalized cross-validation (GCV) from the accumulated sums alone.
``rls``    recursive least squares: keeps P = (G + lambda I)^-1 and W, updated per batch with the
           Woodbury identity (cheap for streams of small batches) and downdated for forgetting.
``ncm``    cosine nearest class mean (SimpleCIL): class means are Q / counts.
``lda``    linear discriminant analysis with a shared, shrunk covariance (streaming LDA / SLDA).

Every head exposes ``coef_`` (M x C) and ``intercept_`` (C,) after ``fit(stats)`` and scores
projected rows with ``decision_function(H)``.

>>> import numpy as np
>>> from forgetless.statistics import SufficientStatistics
>>> rng = np.random.default_rng(0)
>>> H = rng.standard_normal((200, 5)); y = (H[:, 0] > 0).astype(int)
>>> stats = SufficientStatistics(5); stats.add(H, y, n_classes=2)
>>> head = RidgeHead(alpha="auto").fit(stats)
>>> float((head.decision_function(H).argmax(1) == y).mean()) > 0.9
True
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg
from scipy.linalg import lapack

from forgetless.statistics import SufficientStatistics

# Above this condition number of G + lambda I the solve is flagged (float64 keeps ~4 digits).
CONDITION_WARNING = 1e12


class IllConditionedWarning(UserWarning):
    """The regularised Gram matrix is close to singular; results may be inaccurate."""


class HostLinalg:
    """The Cholesky operations the ridge head needs, on numpy arrays (LAPACK via scipy).

    :class:`forgetless.torch_backend.TorchLinalg` has the same methods on a torch device, so
    the same GCV search runs on a GPU when the learner has ``device="cuda"``.
    """

    def asarray(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(array, dtype=np.float64)

    def to_numpy(self, array: np.ndarray) -> np.ndarray:
        return array

    def gram(self, stats: SufficientStatistics, mean: np.ndarray | None = None) -> np.ndarray:
        """The symmetric G, centred (G - n m m^T) when the mean feature m is given."""
        gram = stats.gram
        if mean is not None:
            gram -= stats.n_samples * np.outer(mean, mean)
        return gram

    def trace(self, gram: np.ndarray) -> float:
        return float(np.trace(gram))

    def spectrum(self, gram: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues s of G and the energies ||(V^T Q)_i||^2 along its eigenvectors."""
        eigenvalues, vectors = linalg.eigh(gram, driver="evd", check_finite=False)
        rotated = vectors.T @ targets
        return eigenvalues, np.einsum("ij,ij->i", rotated, rotated)

    def shifted_cholesky(self, gram: np.ndarray, alpha: float) -> tuple | None:
        """(U, A) with A = G + alpha I = U^T U, or None when A is not positive definite."""
        A = np.array(gram, dtype=np.float64, copy=True)
        A[np.diag_indices(A.shape[0])] += alpha
        try:
            upper, _ = linalg.cho_factor(A, lower=False, check_finite=False)
        except linalg.LinAlgError:
            return None
        return upper, A

    def cho_solve(self, upper: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return linalg.cho_solve((upper, False), targets, check_finite=False)

    def probe_norms(self, upper: np.ndarray, probes: np.ndarray) -> np.ndarray:
        """||U^-T z||^2 for each probe column z."""
        half = linalg.solve_triangular(upper, probes, trans="T", check_finite=False)
        return np.einsum("ij,ij->j", half, half)

    def inverse_norm2(self, upper: np.ndarray) -> float:
        """||U^-1||_F^2 = tr(A^-1), exactly."""
        inverse = np.triu(lapack.dtrtri(upper, lower=0)[0])
        return float(np.vdot(inverse, inverse))

    def vdot(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(np.vdot(a, b))

    def condition(self, upper: np.ndarray, matrix: np.ndarray) -> float:
        """LAPACK's 1-norm condition estimate of A from its Cholesky factor."""
        anorm = float(np.abs(matrix).sum(axis=0).max())
        rcond, info = lapack.dpocon(upper, anorm, uplo="U")
        return math.inf if info != 0 or rcond <= 0 else 1.0 / float(rcond)


HOST = HostLinalg()


def ridge_solve(
    gram: np.ndarray, targets: np.ndarray, alpha: float, ops: HostLinalg = HOST
) -> np.ndarray:
    """Solve (G + alpha I) W = Q by Cholesky; fall back to an eigendecomposition.

    The fallback (for a matrix that is not numerically positive definite) drops eigenvalues below
    machine precision, i.e. returns the minimum-norm solution. Either path warns with the
    condition number when it exceeds ``CONDITION_WARNING``. ``ops`` runs the Cholesky path on
    another device (:class:`forgetless.torch_backend.TorchLinalg`); the fallback stays on the host.

    >>> import numpy as np
    >>> ridge_solve(np.eye(2) * 3.0, np.ones((2, 1)), 1.0).ravel().tolist()
    [0.25, 0.25]
    """
    m = gram.shape[0]
    factored = ops.shifted_cholesky(ops.asarray(gram), alpha)
    if factored is None:
        A = np.array(ops.to_numpy(gram), dtype=np.float64, copy=True)
        A[np.diag_indices(m)] += alpha
        evals, evecs = linalg.eigh(A)
        top = max(float(evals.max()), 0.0)
        keep = evals > top * m * np.finfo(np.float64).eps
        cond = math.inf if not keep.all() else top / float(evals.min())
        warnings.warn(
            f"G + {alpha:.3g} I is not positive definite (condition number {cond:.3g}); "
            "using the minimum-norm eigen-solution. Increase alpha.",
            IllConditionedWarning,
            stacklevel=3,
        )
        inv = np.where(keep, 1.0 / np.where(keep, evals, 1.0), 0.0)
        return evecs @ (inv[:, None] * (evecs.T @ targets))
    upper, A = factored
    cond = ops.condition(upper, A)
    if cond > CONDITION_WARNING:
        warnings.warn(
            f"G + {alpha:.3g} I has condition number {cond:.3g} > {CONDITION_WARNING:.0g}; "
            "the ridge solution may be inaccurate. Increase alpha or reduce n_components.",
            IllConditionedWarning,
            stacklevel=3,
        )
    return ops.to_numpy(ops.cho_solve(upper, ops.asarray(targets)))


_PROBES = 64  # Hutchinson probes for tr((G + lambda I)^-1) when M is larger than this


@dataclass
class GCVPoint:
    alpha: float
    score: float  # GCV(alpha); inf where undefined (n <= df, or G + alpha I not factorisable)
    coef: np.ndarray | None = field(default=None, repr=False)


class GCV:
    """GCV(lambda) = n RSS(lambda) / (n - df(lambda))^2 from the sums alone, one Cholesky each.

    With (G + lambda I) W = Q and one-hot targets (||Y||_F^2 = n):
    RSS = n - <W, Q> - lambda ||W||^2 and df = tr((G + lambda I)^-1 G) = M - lambda tr((G +
    lambda I)^-1). The trace comes from the Cholesky factor U: exactly (||U^-1||_F^2, or the
    identity as probes when M <= 64), or as a Hutchinson estimate ||U^-T Z||^2 / k with 64 fixed
    Rademacher probes Z, an O(M^2) extra. The estimate's standard error is checked at every
    lambda: when it exceeds 1 % of n - df (as when M > n and the fit nearly interpolates) the
    exact trace is computed instead, at the cost of one more triangular inversion.

    This per-lambda form serves the warm-started walk (``warm_start=True``), where a few
    factorisations near the previous lambda cost less than an eigendecomposition (5 to 15
    factorisations, measured); a search from scratch uses :func:`gcv_from_spectrum`.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0); H = rng.standard_normal((50, 4))
    >>> Y = np.eye(2)[(H[:, 0] > 0).astype(int)]
    >>> W = np.linalg.solve(H.T @ H + 2 * np.eye(4), H.T @ Y)
    >>> df = np.trace(H @ np.linalg.solve(H.T @ H + 2 * np.eye(4), H.T))
    >>> gcv = GCV(H.T @ H, H.T @ Y, 50)
    >>> bool(np.isclose(gcv(2.0).score, 50 * ((Y - H @ W) ** 2).sum() / (50 - df) ** 2))
    True
    """

    def __init__(
        self,
        gram: np.ndarray,
        class_sums: np.ndarray,
        n: int,
        seed: int = 0,
        target_energy: float | None = None,
        extra_df: float = 0.0,
        ops: HostLinalg = HOST,
    ) -> None:
        self.n, self.ops = float(n), ops
        # ||Y||_F^2 (n for one-hot targets; less once centred) and the intercept's degree of
        # freedom, when the statistics were centred to fit one.
        self.target_energy = float(n) if target_energy is None else float(target_energy)
        self.extra_df = float(extra_df)
        m = gram.shape[0]
        # With more classes than units, GCV only needs Q through Q Q^T: replace Q by an M x M
        # factor R^T with R^T R = Q Q^T (from a QR of Q^T), so each lambda costs O(M^3), not
        # O(M^2 C). The coefficients are then solved once, at the chosen lambda.
        self.compressed = class_sums.shape[1] > m
        if self.compressed:
            r = linalg.qr(class_sums.T, mode="r", check_finite=False)[0]
            class_sums = np.ascontiguousarray(r[:m].T)
        self._exact = m <= _PROBES
        if self._exact:
            probes = np.eye(m)
        else:
            rng = np.random.default_rng(seed)
            probes = rng.choice(np.array([-1.0, 1.0]), size=(m, _PROBES))
        # Moved once to where the factorisations run (the host, or a GPU).
        self.gram, self.class_sums = ops.asarray(gram), ops.asarray(class_sums)
        self.probes = ops.asarray(probes)

    def __call__(self, alpha: float) -> GCVPoint:
        ops, m = self.ops, self.gram.shape[0]
        factored = ops.shifted_cholesky(self.gram, alpha)
        if factored is None:
            return GCVPoint(alpha, math.inf)
        upper = factored[0]
        W = ops.cho_solve(upper, self.class_sums)
        rss = self.target_energy - ops.vdot(W, self.class_sums) - alpha * ops.vdot(W, W)
        trace_inv, stderr = self._trace_inverse(upper)
        df = m - alpha * trace_inv + self.extra_df
        if alpha * stderr > 0.01 * abs(self.n - df):
            # The estimate cannot resolve n - df (e.g. M > n, nearly interpolating): be exact.
            df = m - alpha * ops.inverse_norm2(upper) + self.extra_df
        W = None if self.compressed else ops.to_numpy(W)
        if self.n - df <= 0:
            return GCVPoint(alpha, math.inf, W)
        return GCVPoint(alpha, self.n * max(rss, 0.0) / (self.n - df) ** 2, W)

    def _trace_inverse(self, upper: np.ndarray) -> tuple[float, float]:
        """tr(A^-1) from A = U^T U and the probes, with the estimate's standard error."""
        per_probe = np.asarray(self.ops.to_numpy(self.ops.probe_norms(upper, self.probes)))
        if self._exact:
            return float(per_probe.sum()), 0.0
        k = per_probe.size
        return float(per_probe.mean()), float(per_probe.std(ddof=1) / math.sqrt(k))


def select_alpha(
    gram: np.ndarray,
    class_sums: np.ndarray,
    n: int,
    start: float | None = None,
    alphas: np.ndarray | None = None,
    tolerance: float = 0.25,
    target_energy: float | None = None,
    extra_df: float = 0.0,
    ops: HostLinalg = HOST,
) -> tuple[GCVPoint, list[GCVPoint]]:
    """Choose lambda by GCV over all accumulated statistics.

    Default (no ``start``): one eigendecomposition G = V diag(s) V^T serves the whole lattice
    of lambdas, ``tolerance`` decades apart over [1e-10 trace(G), 1e4 trace(G)/M] (so the chosen
    system's condition number stays below ~1e10), each scored exactly in O(M) from s and the
    energies of V^T Q (see :func:`gcv_from_spectrum`); the lowest interior local minimum is
    chosen (a minimum at an end of the lattice only if the curve has no interior one: with more
    units than samples GCV stays finite as lambda -> 0 and often looks best there, while the
    interpolating fit predicts worse). The choice depends on the sums alone, so an incremental
    learner chooses what a fresh fit on the same data chooses. With ``alphas`` given, those are
    scored the same way and the lowest is chosen.

    With ``start`` (``warm_start=True``, the previous choice): a walk on the same lattice from
    there, one Cholesky factorisation per lambda (see :class:`GCV`), downhill until both
    neighbours are worse: about three factorisations, but it stops at the nearest local minimum.

    ``ops`` runs the factorisations elsewhere (a GPU, see :class:`HostLinalg`).

    Where GCV is undefined everywhere (too few samples to leave residual degrees of freedom, as
    with a single sample) the largest lambda is chosen.

    Returns the best point and every point scored, sorted by lambda. Only a warm walk returns
    coefficients with its best point (from its own factorisation); otherwise solve at
    ``best.alpha`` (``ridge_solve``), the same operations as a fixed alpha.
    """
    trace = ops.trace(gram)
    mean_eig = trace / gram.shape[0] if trace > 0 else 1.0
    lo = math.log10(max(trace, 1e-300)) - 10.0 if trace > 0 else -10.0
    lo, hi = max(lo, math.log10(mean_eig) - 12.0), math.log10(mean_eig) + 4.0
    lo, hi = math.ceil(lo / tolerance) * tolerance, math.floor(hi / tolerance) * tolerance
    energy = float(n) if target_energy is None else float(target_energy)
    if alphas is not None:
        alphas = np.asarray(alphas, dtype=np.float64).ravel()
        if alphas.size == 0 or not np.all(alphas > 0):
            raise ValueError("alphas must be a non-empty list of positive numbers")
    if alphas is not None or start is None or not start > 0:
        grid = (
            np.unique(alphas) if alphas is not None else 10.0 ** np.arange(lo, hi + 1e-9, tolerance)
        )
        eigenvalues, energies = ops.spectrum(gram, class_sums)
        scores = gcv_from_spectrum(eigenvalues, energies, n, grid, energy, extra_df)
        points = [GCVPoint(float(a), float(sc)) for a, sc in zip(grid, scores, strict=True)]
    else:
        points = _warm_walk(gram, class_sums, n, start, lo, hi, tolerance, energy, extra_df, ops)
    finite = [p for p in points if math.isfinite(p.score)]
    if alphas is None and start is None:
        # A minimum at an end of the lattice is the limit lambda -> 0 (the interpolating fit,
        # whose GCV stays finite when M > n, and misleads) or lambda -> inf: prefer the best
        # interior local minimum when the curve has one.
        interior = [
            b
            for a, b, c in zip(finite, finite[1:], finite[2:], strict=False)
            if b.score < a.score and b.score <= c.score
        ]
        finite = interior or finite
    if finite:
        chosen = min(finite, key=lambda p: (p.score, -p.alpha))
    else:  # too few samples for any fit to leave residual degrees of freedom (one sample, say):
        chosen = max(points, key=lambda p: p.alpha)  # then shrink the most
    return chosen, [GCVPoint(p.alpha, p.score) for p in points]


def gcv_from_spectrum(
    eigenvalues: np.ndarray,
    energies: np.ndarray,
    n: float,
    alphas: np.ndarray,
    target_energy: float,
    extra_df: float = 0.0,
) -> np.ndarray:
    """GCV(lambda) for many lambdas from G's eigenvalues s and the energies e_i = ||(V^T Q)_i||^2.

    <W, Q> = sum e/(s+l), ||W||^2 = sum e/(s+l)^2, RSS = ||Y||^2 - <W, Q> - l ||W||^2 and
    df = sum s/(s+l) (+ 1 for an intercept): exact, O(M) per lambda. inf where G + l I is not
    positive definite or n <= df.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0); H = rng.standard_normal((50, 4))
    >>> Y = np.eye(2)[(H[:, 0] > 0).astype(int)]
    >>> s, V = np.linalg.eigh(H.T @ H)
    >>> score = gcv_from_spectrum(s, ((V.T @ H.T @ Y) ** 2).sum(1), 50, np.array([2.0]), 50.0)
    >>> bool(np.isclose(score[0], GCV(H.T @ H, H.T @ Y, 50)(2.0).score))
    True
    """
    denominator = eigenvalues[None, :] + alphas[:, None]
    positive = (denominator > 0).all(axis=1)
    inverse = 1.0 / np.where(denominator > 0, denominator, 1.0)
    w_dot_q = (energies * inverse).sum(axis=1)
    w_norm2 = (energies * inverse**2).sum(axis=1)
    rss = np.maximum(target_energy - w_dot_q - alphas * w_norm2, 0.0)
    residual_df = n - ((eigenvalues * inverse).sum(axis=1) + extra_df)
    ok = positive & (residual_df > 0)
    return np.where(ok, n * rss / np.where(ok, residual_df, 1.0) ** 2, math.inf)


def _warm_walk(
    gram: np.ndarray,
    class_sums: np.ndarray,
    n: int,
    start: float,
    lo: float,
    hi: float,
    tolerance: float,
    target_energy: float,
    extra_df: float,
    ops: HostLinalg,
) -> list[GCVPoint]:
    """Walk the lattice downhill from ``start`` (one factorisation per lambda)."""
    gcv = GCV(gram, class_sums, n, target_energy=target_energy, extra_df=extra_df, ops=ops)
    evaluated: dict[float, GCVPoint] = {}

    def score(t: float) -> float:
        key = round(t, 9)
        if key not in evaluated:
            evaluated[key] = gcv(10.0**key)
        return evaluated[key].score

    best = min(max(round(math.log10(start) / tolerance) * tolerance, lo), hi)
    walk = tolerance
    while True:
        for t in (max(best - walk, lo), min(best + walk, hi)):
            score(t)
        score(best)
        new_best = min(evaluated, key=lambda t: (evaluated[t].score, -t))
        if new_best != best:  # walk downhill, taking longer strides while it keeps going
            best, walk = new_best, min(2.0 * walk, 4.0)
        elif walk <= tolerance:  # a local minimum at the finest step
            break
        else:
            walk = max(walk / 2.0, tolerance)
    return sorted(evaluated.values(), key=lambda p: p.alpha)


class RidgeHead:
    """Ridge regression on one-hot targets: W = (G + lambda I)^-1 Q, with an intercept.

    ``fit_intercept`` centres the sums (G - n m m^T, Q - n m p^T with m the mean feature and p
    the class priors, all from the statistics) so the intercept is not penalised, as in
    scikit-learn's ridge; without it, features with a large common offset (raw pixels) make
    the penalty fight the mean. ``alpha="auto"`` chooses lambda by GCV over all statistics so
    far (see :func:`select_alpha`), by a search that starts from the sums alone, so the choice
    (and the model) is the one a fresh fit on the same data makes. ``warm_start=True`` starts
    the search from the previous choice instead: about 3 factorisations per refit rather than
    10-12, but where the GCV curve has several local minima it can stop at another one than a
    fresh fit, so the model then differs from joint training.
    """

    name = "ridge"
    linear = True  # scores are H @ coef_ + intercept_

    def __init__(
        self,
        alpha: float | str = "auto",
        alphas: np.ndarray | None = None,
        fit_intercept: bool = True,
        warm_start: bool = False,
    ) -> None:
        self.alpha = alpha
        self.alphas = alphas
        self.fit_intercept = fit_intercept
        self.warm_start = warm_start
        self.alpha_: float | None = None
        self.gcv_path_: list[GCVPoint] = []
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None

    def fit(self, stats: SufficientStatistics, ops: HostLinalg = HOST) -> RidgeHead:
        """Solve for the coefficients; ``ops`` says where the factorisations run."""
        sums, n = stats.class_sums, stats.n_samples
        energy, extra_df = float(n), 0.0
        centre = self.fit_intercept and n > 0
        mean = stats.feature_sum / n if centre else None
        # Built where the factorisations run (on a GPU, G never makes a host-side copy).
        gram = ops.gram(stats, mean)
        if centre:
            prior = stats.counts / n
            sums = sums - n * np.outer(mean, prior)
            energy, extra_df = n * (1.0 - float(prior @ prior)), 1.0
        if self.alpha == "auto":
            best, path = select_alpha(
                gram,
                sums,
                n,
                start=self.alpha_ if self.warm_start else None,
                alphas=self.alphas,
                target_energy=energy,
                extra_df=extra_df,
                ops=ops,
            )
            self.alpha_, self.gcv_path_ = best.alpha, path
            # The search's own Cholesky solve at the chosen lambda: the same operations (and so
            # the same bits) as ridge_solve with a fixed alpha equal to alpha_.
            if best.coef is not None:
                self.coef_ = best.coef
            else:
                self.coef_ = ridge_solve(gram, sums, best.alpha, ops)
        else:
            self.alpha_ = float(self.alpha)
            self.coef_ = ridge_solve(gram, sums, self.alpha_, ops)
        self.intercept_ = prior - mean @ self.coef_ if centre else np.zeros(sums.shape[1])
        return self

    def decision_function(self, H: np.ndarray) -> np.ndarray:
        return H @ self.coef_ + self.intercept_


class RLSHead(RidgeHead):
    """Recursive least squares: the ridge solution kept current batch by batch.

    Holds P = (G + lambda I)^-1 and W. Adding b rows costs O(M^2 b) (Woodbury) instead of a new
    O(M^3) factorisation; forgetting rows is the matching downdate, refused when the b x b matrix
    ``I - H P H^T`` is not positive definite (rows that were never added). lambda is fixed.
    """

    name = "rls"
    block = 256  # rows per Woodbury step: keeps the b x b solve small next to the M x M update

    def __init__(self, alpha: float = 1.0, n_components: int = 0) -> None:
        if isinstance(alpha, str) or not alpha > 0:
            raise ValueError(f"head='rls' needs a fixed alpha > 0, got {alpha!r}")
        super().__init__(alpha=float(alpha), fit_intercept=False)
        self.alpha_ = float(alpha)
        self.P = np.eye(n_components) / self.alpha_
        self.coef_ = np.zeros((n_components, 0))
        self.intercept_ = np.zeros(0)

    def insert_classes(self, positions: np.ndarray) -> None:
        self.coef_ = np.insert(self.coef_, positions, 0.0, axis=1)
        self.intercept_ = np.zeros(self.coef_.shape[1])

    def remove_classes(self, indices: np.ndarray) -> None:
        self.coef_ = np.delete(self.coef_, indices, axis=1)
        self.intercept_ = np.zeros(self.coef_.shape[1])

    def update(self, H: np.ndarray, y_index: np.ndarray) -> None:
        """Add rows H (with class column indices) in blocks of at most ``block`` rows."""
        for start in range(0, H.shape[0], self.block):
            Hb, yb = H[start : start + self.block], y_index[start : start + self.block]
            Y = np.zeros((Hb.shape[0], self.coef_.shape[1]))
            Y[np.arange(Hb.shape[0]), yb] = 1.0
            PHt = self.P @ Hb.T
            K = np.eye(Hb.shape[0]) + Hb @ PHt
            gain = linalg.solve(K, PHt.T, assume_a="pos").T  # P H^T (I + H P H^T)^-1
            P = self.P - gain @ PHt.T
            self.P = 0.5 * (P + P.T)
            self.coef_ = self.coef_ + self.P @ (Hb.T @ (Y - Hb @ self.coef_))

    def downdate(self, H: np.ndarray) -> None:
        """Remove rows H from P; the caller sets W = P Q from the reduced statistics."""
        for start in range(0, H.shape[0], self.block):
            Hb = H[start : start + self.block]
            PHt = self.P @ Hb.T
            K = np.eye(Hb.shape[0]) - Hb @ PHt
            try:
                factor = linalg.cho_factor(K, check_finite=False)
            except linalg.LinAlgError as err:
                raise ValueError(
                    "these rows cannot be removed: I - H P H^T is not positive definite, so "
                    "they were not all part of the training data"
                ) from err
            P = self.P + PHt @ linalg.cho_solve(factor, PHt.T, check_finite=False)
            self.P = 0.5 * (P + P.T)

    def fit(self, stats: SufficientStatistics) -> RLSHead:
        """Recompute P and W from the statistics (after a merge or a class removal)."""
        m = stats.n_components
        A = stats.gram
        A[np.diag_indices(m)] += self.alpha_
        self.P = linalg.cho_solve(linalg.cho_factor(A), np.eye(m))
        self.P = 0.5 * (self.P + self.P.T)
        self.coef_ = self.P @ stats.class_sums
        self.intercept_ = np.zeros(stats.n_classes)
        return self


class NCMHead:
    """Cosine nearest class mean (SimpleCIL): score_c = cos(h, mu_c)."""

    name = "ncm"

    def __init__(self) -> None:
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None

    def fit(self, stats: SufficientStatistics) -> NCMHead:
        means = stats.class_sums / np.maximum(stats.counts, 1)
        norms = np.linalg.norm(means, axis=0)
        self.coef_ = means / np.where(norms > 0, norms, 1.0)
        self.intercept_ = np.zeros(stats.n_classes)
        return self

    def decision_function(self, H: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(H, axis=1, keepdims=True)
        return (H @ self.coef_) / np.where(norms > 0, norms, 1.0)


def oas_shrinkage(covariance: np.ndarray, n_samples: int) -> float:
    """Oracle approximating shrinkage (Chen et al., 2010) from a covariance and a sample count.

    >>> import numpy as np
    >>> oas_shrinkage(np.diag([1.0, 2.0, 3.0]), 10**6) < 0.01  # lots of data: little shrinkage
    True
    """
    p = covariance.shape[0]
    mu = float(np.trace(covariance)) / p
    mean_sq = float(np.mean(covariance**2))  # tr(S^2) / p^2
    num = mean_sq + mu**2
    den = (n_samples + 1.0) * (mean_sq - mu**2 / p)
    if den <= 0:
        return 1.0
    rho = min(num / den, 1.0)
    return 0.0 if rho < 1e-15 else rho


class LDAHead:
    """Linear discriminant analysis with a shared covariance, shrunk towards a scaled identity.

    Sigma = (G - sum_c n_c mu_c mu_c^T) / (n - C); shrinkage ``"oas"`` (default) or a number in
    [0, 1]. Scores mu_c^T S^-1 h - mu_c^T S^-1 mu_c / 2 + log prior_c.
    """

    name = "lda"
    linear = True

    def __init__(self, shrinkage: float | str = "oas") -> None:
        if not (shrinkage == "oas" or (not isinstance(shrinkage, str) and 0 <= shrinkage <= 1)):
            raise ValueError(f"shrinkage must be 'oas' or a number in [0, 1], got {shrinkage!r}")
        self.shrinkage = shrinkage
        self.shrinkage_: float | None = None
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None

    def fit(self, stats: SufficientStatistics) -> LDAHead:
        counts = stats.counts.astype(np.float64)
        n, m = float(counts.sum()), stats.n_components
        means = stats.class_sums / np.maximum(counts, 1.0)
        scatter = stats.gram - (stats.class_sums * (1.0 / np.maximum(counts, 1.0))) @ (
            stats.class_sums.T
        )
        cov = scatter / max(n - counts.shape[0], 1.0)
        rho = oas_shrinkage(cov, int(n)) if self.shrinkage == "oas" else float(self.shrinkage)
        target = float(np.trace(cov)) / m
        shrunk = (1.0 - rho) * cov
        shrunk[np.diag_indices(m)] += rho * (target if target > 0 else 1.0)
        if rho == 0.0:
            shrunk[np.diag_indices(m)] += 1e-10 * max(target, 1.0)
        self.shrinkage_ = rho
        self.coef_ = ridge_solve(shrunk, means, 0.0)
        prior = np.log(np.maximum(counts, 1.0) / max(n, 1.0))
        self.intercept_ = -0.5 * np.einsum("mc,mc->c", means, self.coef_) + prior
        return self

    def decision_function(self, H: np.ndarray) -> np.ndarray:
        return H @ self.coef_ + self.intercept_


HEADS = ("ridge", "rls", "ncm", "lda")


class OWMHead(RLSHead):
    """Orthogonal weight modification (IF2Net / OWM style), a comparison head.

    Each ``partial_fit`` call is one task. The task's update of the output weights is confined
    to the (soft) orthogonal complement of the earlier tasks' feature subspace, held as the
    projector ``A = alpha (G_old + alpha I)^-1`` (eigenvalues near 0 on directions the old
    features span, 1 where they are silent)::

        dW = A dV,  dV = argmin ||Y_t - H_t W - H_t A dV||^2 + alpha ||dV||^2

    so the outputs of earlier tasks' inputs barely move (exactly not, as alpha -> 0), whatever
    the new task asks. On the first task ``A = I`` and the head is plain ridge. ``P`` holds
    ``(G_old + alpha I)^-1`` (the RLS inverse, so models save and load like ``head="rls"``).

    Unlike ridge/RLS, the weights depend on the order of the tasks, not only on the summed
    statistics; so learners with this head cannot ``merge``, ``forget`` or ``forget_classes``
    (there is no order-free way to add or remove data), and a fixed ``alpha > 0`` is required.
    """

    name = "owm"

    def __init__(self, alpha: float = 1.0, n_components: int = 0) -> None:
        if isinstance(alpha, str) or not alpha > 0:
            raise ValueError(f"head='owm' needs a fixed alpha > 0, got {alpha!r}")
        super().__init__(alpha, n_components)
        self._task_gram = np.zeros((n_components, n_components))
        self._task_sums = np.zeros((n_components, 0))

    def insert_classes(self, positions: np.ndarray) -> None:
        super().insert_classes(positions)
        self._task_sums = np.zeros(self.coef_.shape)

    def update(self, H: np.ndarray, y_index: np.ndarray) -> None:
        """Accumulate the current task's sums; :meth:`finish_task` applies them."""
        if self._task_sums.shape != self.coef_.shape:
            self._task_sums = np.zeros(self.coef_.shape)
        self._task_gram += H.T @ H
        for c in np.unique(y_index):
            self._task_sums[:, c] += H[y_index == c].sum(axis=0)

    def finish_task(self) -> None:
        """Apply the task accumulated by :meth:`update`, then protect its subspace."""
        m = self.P.shape[0]
        if self._task_sums.shape != self.coef_.shape:
            self._task_sums = np.zeros(self.coef_.shape)
        G_t, Q_t = self._task_gram, self._task_sums
        A = self.alpha_ * self.P  # soft projector onto the old features' complement
        A = 0.5 * (A + A.T)
        system = A @ G_t @ A
        system = 0.5 * (system + system.T)
        system[np.diag_indices(m)] += self.alpha_
        rhs = A @ (Q_t - G_t @ self.coef_)
        dV = linalg.solve(system, rhs, assume_a="pos")
        self.coef_ = self.coef_ + A @ dV
        # (G_old + G_t + alpha I)^-1 = P (I + G_t P)^-1
        P = linalg.solve((np.eye(m) + G_t @ self.P).T, self.P.T).T
        self.P = 0.5 * (P + P.T)
        self._task_gram = np.zeros((m, m))
        self._task_sums = np.zeros(self.coef_.shape)

    def downdate(self, H: np.ndarray) -> None:
        raise ValueError(OWM_ORDER_ERROR)

    def fit(self, stats: SufficientStatistics) -> OWMHead:
        raise ValueError(OWM_ORDER_ERROR)


OWM_ORDER_ERROR = (
    "head='owm' cannot merge or forget: its weights depend on the order in which tasks were "
    "learned, not only on the summed statistics; use head='ridge' or 'rls' for that"
)

HEADS = (*HEADS, "owm")
