"""Choosing the ridge penalty lambda by generalized cross-validation from the sums alone.

Private to the heads: :class:`forgetless.heads.RidgeHead` calls :func:`select_alpha`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from forgetless.linalg import HOST, HostLinalg

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
    scale: float | None = None,
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

    ``ops`` runs the factorisations elsewhere (a GPU, see :class:`HostLinalg`). ``scale`` is
    the size of G's entries before centring (its largest diagonal value): eigenvalues and a
    trace below its rounding level are zero, whatever route (a forget, a merge) left them.

    Where GCV is undefined everywhere (too few samples to leave residual degrees of freedom, as
    with a single sample) the largest lambda is chosen.

    Returns the best point and every point scored, sorted by lambda. Only a warm walk returns
    coefficients with its best point (from its own factorisation); otherwise solve at
    ``best.alpha`` (``ridge_solve``), the same operations as a fixed alpha.
    """
    m = gram.shape[0]
    floor = m * np.finfo(np.float64).eps * (scale if scale is not None else 0.0)
    trace = ops.trace(gram)
    trace = trace if trace > m * floor else 0.0
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
        eigenvalues = _without_rounding_noise(eigenvalues, floor)
        scores = gcv_from_spectrum(eigenvalues, energies, n, grid, energy, extra_df)
        points = [GCVPoint(float(a), float(sc)) for a, sc in zip(grid, scores, strict=True)]
    else:
        points = _warm_walk(gram, class_sums, n, start, lo, hi, tolerance, energy, extra_df, ops)
    finite = [p for p in points if math.isfinite(p.score)]
    if alphas is None and start is None:
        # A minimum at an end of the lattice is the limit lambda -> 0 (the interpolating fit,
        # whose GCV stays finite when M > n, and misleads) or lambda -> inf: prefer the best
        # interior local minimum when the curve has one.
        # Scores closer than _TIE (relative) are rounding apart: equal for every comparison.
        interior = [
            b
            for a, b, c in zip(finite, finite[1:], finite[2:], strict=False)
            if _below(b.score, a.score) and not _below(c.score, b.score)
        ]
        finite = interior or finite
    if finite:
        lowest = min(p.score for p in finite)
        # Among the scores tied with the lowest, the largest lambda (the most shrinkage).
        chosen = max((p for p in finite if not _below(lowest, p.score)), key=lambda p: p.alpha)
    else:  # too few samples for any fit to leave residual degrees of freedom (one sample, say):
        chosen = max(points, key=lambda p: p.alpha)  # then shrink the most
    return chosen, [GCVPoint(p.alpha, p.score) for p in points]


_TIE = 1e-6  # GCV scores this close (relative) are ties: rounding can order them either way


def _below(a: float, b: float) -> bool:
    """``a`` lower than ``b`` by more than a tie."""
    return a < b - _TIE * abs(b)


_RESOLUTION = 1e4 * np.finfo(np.float64).eps  # per unit, relative to ||Y||^2


def _without_rounding_noise(eigenvalues: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """G's eigenvalues with those below its rounding level set to zero.

    Sums that reach the same data by another route (a forget, a merge, other batches) differ
    from a fresh fit's in the last bits, which shows in G's null space as eigenvalues of
    +-1e-16 relative; left as they are, a negative one makes small lambdas look undefined and
    the search picks another lambda than a fresh fit. Nothing below M eps max(s) (or below
    ``floor``, the rounding level of the uncentred G) is signal.

    >>> _without_rounding_noise(np.array([-1e-15, 1e-17, 0.5, 2.0])).tolist()
    [0.0, 0.0, 0.5, 2.0]
    """
    top = float(eigenvalues.max(initial=0.0))
    floor = max(eigenvalues.size * np.finfo(np.float64).eps * top, floor)
    return np.where(eigenvalues > floor, eigenvalues, 0.0)


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
    rss = target_energy - w_dot_q - alphas * w_norm2
    residual_df = n - ((eigenvalues * inverse).sum(axis=1) + extra_df)
    # A residual below the rounding of ||Y||^2 is not resolved (the fit interpolates): GCV says
    # nothing there, and rounding would decide between routes to the same sums.
    resolved = rss > _RESOLUTION * eigenvalues.size * target_energy
    ok = positive & (residual_df > 0) & resolved
    return np.where(ok, n * np.maximum(rss, 0.0) / np.where(ok, residual_df, 1.0) ** 2, math.inf)


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
