"""Choosing the ridge penalty lambda from the sums alone.

Private to the heads: :class:`forgetless.heads.RidgeHead` calls :func:`select_alpha`.

Two criteria, both functions of the sums (G, Q, class counts, n), so an incremental learner
chooses what a fresh fit on the same data chooses:

- ``loo`` (the default given class counts, for 2 to 512 classes with at least two samples per
  class on average): an estimate of the leave-one-out *classification* error
  (:func:`loo_error`).
- ``gcv``: generalized cross-validation, a leave-one-out estimate of the squared error of the
  one-hot regression (:class:`GCV`, :func:`gcv_from_spectrum`).

Ways to score the lattice of lambdas:

- rational quadrature (the default where it is cheaper): six block steps of plain Lanczos
  (products G @ U, in float32) place the minimum roughly; a float32 Cholesky factorisation
  there and six block steps of shift-invert Lanczos with it (:func:`shift_invert_nodes`) give
  the curve near it; the curve's choice is factorised in float64 (its coefficients), which
  also checks the curve there, and a float64 curve is drawn around it only where the check
  cannot confirm its order against its neighbours. Typically one float32 and one float64
  factorisation and about twenty products or triangular solves with C + 8 columns.
- Krylov quadrature (``method="krylov"``): plain block Lanczos grown until the curve settles
  (:func:`krylov_spectrum`), many more steps where G's spectrum is steep.
- spectral: one eigendecomposition scores every lambda exactly (small M, many classes, a user
  grid, or when the quadrature fails its check).
- row space: with at most half as many samples as units, G given as a
  :class:`~forgetless.linalg.RowSpace` (the statistics' n × M factor) is an n × n matrix E on
  its row space, and the search runs there: the rational quadrature on E (from n = 1024), or
  one n × n eigendecomposition that scores every lambda exactly.
- a warm walk of factorisations from the previous choice (``warm_start=True``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import linalg
from scipy.linalg import blas
from scipy.special import log_ndtr, logsumexp

from forgetless.linalg import HOST, HostLinalg, RowSpace, one_thread

_PROBES = 64  # Hutchinson probes for tr((G + lambda I)^-1) when M is larger than this
_KRYLOV_PROBES = 8  # Rademacher probes of the quadrature's trace (degrees of freedom)
_KRYLOV_MIN_UNITS = 1024  # below this width the eigendecomposition costs milliseconds: exact
_KRYLOV_FIRST, _KRYLOV_EVERY = 6, 2  # block steps before the first convergence test, and between
_KRYLOV_STEPS = 16  # the quadrature is tried where M/2 dimensions allow this many block steps
_KRYLOV_RTOL = 1e-3  # the curve near its minimum moves less than this between tests: converged
_KRYLOV_CHECK = 0.02  # the curve and the factorised criterion must agree this well there
_RATIONAL_STEPS = 6  # shift-invert block steps per factorisation
_PLAIN_STEPS = 6  # plain (float32) block steps that place the first factorisation
_RATIONAL_ROUNDS = 4  # factorisations tried before the exact spectrum decides
_RATIONAL_BELOW = 2  # lattice steps below the plain steps' choice to factorise first
_TRUSTED_STEPS = 2  # a shift-invert curve decides this many lattice steps from its factorisation
_CONFIRM_SHARE = 1.0  # a move stands where the curve's error there is below its margin
_SNAP = 1e-9  # lattice steps: the lattice's ends are decided to this margin
_LOO_MAX_CLASSES = 512  # the loo criterion costs O(C^2) per lambda: GCV above this
_OUTER_PRODUCTS = 1 << 21  # moments_from_nodes forms r x C^2 outer products up to this size
_MAX_LEVERAGE = 0.6  # the loo criterion scores lambdas whose average leverage is at most this


_METHODS = ("auto", "rational", "krylov", "spectral")


@dataclass
class GCVPoint:
    alpha: float
    score: float  # the criterion at alpha; inf where undefined (n <= df, not factorisable)
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

    This per-lambda form (:meth:`moments`, which also gives the loo criterion's K and K2)
    serves the warm-started walk and the check of the Krylov search at its choice.

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
        exact_trace: bool = False,
    ) -> None:
        self.n, self.ops = float(n), ops
        self.exact_trace = exact_trace  # tr((G + alpha I)^-1) from the factor, not probes
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
        """GCV at ``alpha``, and the coefficients."""
        moments = self.moments(alpha)
        if moments is None:
            return GCVPoint(alpha, math.inf)
        W, cross, _, df = moments
        rss = self.target_energy - float(np.trace(cross)) - alpha * float(np.sum(W * W))
        df += self.extra_df
        W = None if self.compressed else W
        if self.n - df <= 0:
            return GCVPoint(alpha, math.inf, W)
        return GCVPoint(alpha, self.n * max(rss, 0.0) / (self.n - df) ** 2, W)

    def moments(self, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
        """(W, K, K2, df) at ``alpha`` from one Cholesky factorisation: W = (G + alpha I)^-1 Q,
        K = Q^T W, K2 = W^T G W = K - alpha W^T W and df = tr((G + alpha I)^-1 G) (Hutchinson,
        or exact where the estimate cannot resolve n - df); None if not positive definite."""
        factored = self.ops.shifted_cholesky(self.gram, alpha)
        if factored is None:
            return None
        return self.moments_from_factor(factored, alpha)

    def moments_from_factor(
        self, upper: Any, alpha: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """:meth:`moments` from the Cholesky factor U of G + alpha I (U^T U) in hand."""
        ops, m = self.ops, self.gram.shape[0]
        W = ops.cho_solve(upper, self.class_sums)
        if self.exact_trace:
            trace_inv, stderr = ops.inverse_norm2(upper), 0.0
        else:
            trace_inv, stderr = self._trace_inverse(upper)
        df = m - alpha * trace_inv
        if alpha * stderr > 0.01 * abs(self.n - df - self.extra_df):
            # The estimate cannot resolve n - df (e.g. M > n, nearly interpolating): be exact.
            df = m - alpha * ops.inverse_norm2(upper)
        W = np.asarray(ops.to_numpy(W))
        sums = np.asarray(ops.to_numpy(self.class_sums))
        cross = sums.T @ W
        cross = 0.5 * (cross + cross.T)
        return W, cross, cross - alpha * (W.T @ W), float(df)

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
    method: str = "auto",
    counts: np.ndarray | None = None,
    criterion: str = "auto",
    spread: bool = True,
    _lattice: np.ndarray | None = None,
) -> tuple[GCVPoint, list[GCVPoint]]:
    """Choose lambda over all accumulated statistics.

    ``gram`` is G's upper triangle (centred where the head fits an intercept), or G as a
    :class:`~forgetless.linalg.RowSpace` (at most half as many samples as units): the search
    runs on the n × n matrix that G is on its row space, globally whatever ``start`` says (by
    the rational quadrature below from n = 1024, else by one exact eigendecomposition), and
    gives the coefficients at the choice.

    ``criterion``: ``"loo"`` (:func:`loo_error`, needs the class ``counts``), ``"gcv"``, or
    ``"auto"``: loo when ``counts`` are given for 2 to 512 classes, none empty, with
    n - C >= max(C, 10) (at least two samples per class on average, and ten within-class degrees
    of freedom for its covariance); gcv otherwise.

    Default (no ``start``): the lattice of lambdas ``tolerance`` decades apart over
    [1e-10 trace(G), 1e4 trace(G)/M] (so the chosen system's condition number stays below
    ~1e10), but never below G's rounding level M eps ``scale`` (rows far from their mean: a
    centred G keeps only the digits their offset leaves; a trace below that level is no
    spread, and then the lattice lies above it, so the solution is the priors'), is scored,
    and the lowest interior local minimum is chosen (a minimum at an end of the lattice only if
    the curve has no interior one: with more units than samples the fit
    interpolates as lambda -> 0, which predicts worse than either criterion can tell). Among
    scores tied to 1e-6 (relative) with the lowest, the lowest GCV (where the loo error is
    floored, see :func:`loo_error`), then the largest lambda. The curve comes from

    - ``method="rational"`` (what ``"auto"`` uses from M = 1024 units where 12 block steps of
      C + 8 columns fit in M dimensions, C the number of classes): six plain block Lanczos
      steps (:func:`krylov_spectrum`) locate the minimum roughly; G + sigma I is factorised two
      lattice steps below it and six shift-invert steps (:func:`shift_invert_nodes`) give the
      curve, accurate near sigma (its trace scaled to the factorisation's own there). Where
      the curve chooses another lambda, that lambda is factorised (its coefficients come from
      there); within two lattice steps of sigma, where the curve is accurate, the choice stands
      if the curve agrees with the factorised criterion there (exact K = Q^T W), else the
      curve from that factorisation chooses again, and so on (usually one or two
      factorisations and one curve; after 4 factorisations, or on a cycle, the exact spectral
      curve decides). The choice's
      factorisation gives the coefficients (returned with the best point); if the curve is off
      by more than 2 % there, the exact spectral curve decides instead. A lattice neighbour
      factorised on the way is compared by its exact score, and the lower one is chosen. On
      the row space (n x n factorisations, cheap) every factorised score is exact and the
      search ends by walking down the exact criterion to a local minimum of the lattice
      (:func:`_exact_descent`).
    - ``method="krylov"``: plain block Lanczos quadrature grown until the curve near its
      minimum moves by less than 1e-3 between tests, then checked the same way.
    - ``method="spectral"``: one eigendecomposition G = V diag(s) V^T scores every lambda exactly
      from s and V^T Q (see :func:`gcv_from_spectrum`, :func:`loo_error`).

    Every way the choice depends on the sums alone (the quadrature's probes are fixed), so an
    incremental learner chooses what a fresh fit on the same data chooses (unless two lambdas
    score within rounding of each other). With ``alphas`` given, those are scored exactly
    (spectral) and the lowest is chosen.

    With ``start`` (``warm_start=True``, the previous choice): a walk on the same lattice from
    there, one Cholesky factorisation per lambda (see :class:`GCV`), downhill until both
    neighbours are worse: about three factorisations, but it stops at the nearest local minimum.

    Where G's mean diagonal lies beyond 2^+-200 (features beyond about 1e30 or below 1e-30),
    the quadratures run on G / 4^k and Q / 2^k (the same criterion at lambda / 4^k, exactly),
    so their powers of G stay in float64's range and the choice scales with the features; they
    then return no coefficients.

    ``ops`` runs the factorisations and products elsewhere (a GPU, see :class:`HostLinalg`).
    ``scale`` is the size of G's entries before centring (its largest diagonal value):
    eigenvalues and a trace below its rounding level are zero, whatever route (a forget, a
    merge) left them.

    Where the criterion is undefined everywhere (too few samples to leave residual degrees of
    freedom, as with a single sample) the largest lambda is chosen. ``spread=False`` says so
    up front (a single sample, centred: G is zero whatever rounding the route to these sums
    left, such as a forget of other samples): the lattice of a zero trace, its largest lambda.

    Returns the best point and every point scored, sorted by lambda. The warm walk, the
    quadratures and the row space return coefficients with their best point (from the
    factorisation or eigendecomposition at that lambda); otherwise (and where every score is
    undefined) solve at ``best.alpha`` (``ridge_solve``, or ``RowSpace.solve``).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _METHODS))}, got {method!r}")
    rows = gram if isinstance(gram, RowSpace) else None
    m = rows.width if rows is not None else gram.shape[0]
    floor = m * np.finfo(np.float64).eps * (scale if scale is not None else 0.0)
    trace = (rows.trace() if rows is not None else ops.trace(gram)) if spread else 0.0
    trace = trace if trace > floor else 0.0
    if trace > 0 and floor > trace / m * 1e4:
        trace = 0.0  # the sums' rounding exceeds every lambda of the lattice: no spread left
    mean_eig = trace / m if trace > 0 else max(1.0, floor)
    lo = math.log10(max(trace, 1e-300)) - 10.0 if trace > 0 else -10.0
    lo, hi = max(lo, math.log10(mean_eig) - 12.0), math.log10(mean_eig) + 4.0
    if floor > 0:
        # No lambda below the rounding level of G's sums (centring rows far from their mean
        # cancels most of their digits): perturbations of G that size (a tenth of it or less,
        # measured) would decide the solution, not the data.
        lo = max(lo, math.log10(floor))
    # The ends snap to the lattice with a margin: two routes to the same sums (G formed, or its
    # row space) differ in the trace's last bits, which must not move an end across a step.
    lo = math.ceil(lo / tolerance - _SNAP) * tolerance
    hi = math.floor(hi / tolerance + _SNAP) * tolerance
    # a zero trace has no curve to search (no powers of G): nothing to normalise
    half = normalising_exponent(mean_eig) if trace > 0 else 0
    if half and rows is not None:
        raise ValueError("a RowSpace search needs G's mean eigenvalue within 2^+-200")
    if half and _lattice is None and start is None and alphas is None:
        # The quadratures' powers of G would overflow or underflow: search on G / 4^k and
        # Q / 2^k instead, the same criterion at lambda / 4^k exactly (powers of two), on the
        # same lattice of lambdas. (The warm walk and given alphas only factorise: no powers.)
        factor = math.ldexp(1.0, -2 * half)
        grid = 10.0 ** np.arange(lo, hi + 1e-9, tolerance)
        best, points = select_alpha(
            gram * factor,
            class_sums * math.ldexp(1.0, -half),
            n,
            tolerance=tolerance,
            target_energy=target_energy,
            extra_df=extra_df,
            ops=ops,
            scale=None if scale is None else scale * factor,
            method=method,
            counts=counts,
            criterion=criterion,
            _lattice=grid * factor,
        )
        # alpha / factor is the lattice value itself (exact for a power of two); no
        # coefficients: the head solves at the choice with G itself, the same operations (and
        # bits) as a fixed alpha
        return GCVPoint(best.alpha / factor, best.score), [
            GCVPoint(p.alpha / factor, p.score) for p in points
        ]
    energy = float(n) if target_energy is None else float(target_energy)
    if alphas is not None:
        alphas = np.asarray(alphas, dtype=np.float64).ravel()
        if alphas.size == 0 or not np.all(alphas > 0):
            raise ValueError("alphas must be a non-empty list of positive numbers")
    scorer = _Scorer(n, energy, extra_df, counts, class_sums.shape[1], criterion, m)
    grid = np.unique(alphas) if alphas is not None else 10.0 ** np.arange(lo, hi + 1e-9, tolerance)
    if not spread:
        points = [GCVPoint(float(a), math.inf) for a in grid]
        return _choose(points, interior=alphas is None), points
    if rows is not None:  # global and cheap: no warm walk needed
        quadrature = alphas is None and trace > 0 and method in ("auto", "rational")
        return _row_space_search(rows, class_sums, grid, floor, scorer, alphas is None, quadrature)
    if alphas is None and start is not None and start > 0:
        points, tiebreak = _warm_walk(gram, class_sums, start, lo, hi, tolerance, scorer, ops)
        best = _choose(points, interior=False, tiebreak=tiebreak)
        return best, [GCVPoint(p.alpha, p.score) for p in points]
    if _lattice is not None:  # the lattice of a search normalised by a power of two (above)
        grid = _lattice
    if alphas is None and trace > 0 and method in ("auto", "rational"):
        found = _rational_search(gram, class_sums, grid, floor, scorer, ops)
        if found is not None:
            return found
    if alphas is None and trace > 0 and method == "krylov":
        found = _krylov_search(gram, class_sums, grid, floor, scorer, ops, force=True)
        if found is not None:
            return found
    return spectral_choice(gram, class_sums, grid, floor, scorer, ops, interior=alphas is None)


def spectral_choice(
    gram: Any,
    class_sums: Any,
    grid: np.ndarray,
    floor: float,
    scorer: _Scorer,
    ops: HostLinalg = HOST,
    interior: bool = True,
) -> tuple[GCVPoint, list[GCVPoint]]:
    """Every lambda of ``grid`` scored exactly from one eigendecomposition of G, and the
    choice by the search's rules (the route the quadratures fall back to)."""
    if scorer.criterion == "gcv":
        eigenvalues, rotated = ops.spectrum(gram, class_sums)  # energies suffice
    else:
        eigenvalues, rotated = _rotated_spectrum(gram, class_sums, ops)
    eigenvalues = _without_rounding_noise(eigenvalues, floor)
    scores = scorer.curve(eigenvalues, rotated, grid)
    points = [GCVPoint(float(a), float(sc)) for a, sc in zip(grid, scores, strict=True)]
    tiebreak = scorer.curve(eigenvalues, rotated, grid, criterion="gcv")
    return _choose(points, interior=interior, tiebreak=tiebreak), points


def _row_space_search(
    rows: RowSpace,
    class_sums: np.ndarray,
    grid: np.ndarray,
    floor: float,
    scorer: _Scorer,
    interior: bool,
    quadrature: bool,
) -> tuple[GCVPoint, list[GCVPoint]]:
    """The lattice scored on G's row space, where G is the n × n matrix E: by the rational
    quadrature on E (with ``quadrature``, from n = 1024; the same criterion, since G's other
    eigenvalues are zero and the class sums have no part along them), or exactly from E's
    eigendecomposition; the coefficients at the choice from the same factorisation or
    eigenvectors, taken back to the M units."""
    if quadrature:
        coordinates = rows.coordinates(class_sums)
        found = _rational_search(
            np.asfortranarray(rows.inner),
            coordinates,
            grid,
            floor,
            scorer,
            HOST,
            exact_descent=True,
        )
        if found is not None:
            best, points = found
            if rows.reliable(best.alpha):  # the factorisation's own solve
                coef = rows.expand(best.coef)
            else:  # lambda near G's rounding: the minimum-norm solve drops its directions
                coef = rows.solve(class_sums, best.alpha)
            return GCVPoint(best.alpha, best.score, coef), points
    eigenvalues, vectors, rotated = rows.spectrum(class_sums)
    eigenvalues = _without_rounding_noise(eigenvalues, floor)
    rotated = rotated * (eigenvalues > 0)[:, None]
    # G's other M - n eigenvalues are zero and Q has no part along them: one node of
    # multiplicity M - n, so the scores (and their resolution, which scales with M) are those
    # of G's full spectrum.
    nodes = np.append(eigenvalues, 0.0)
    coordinates = np.vstack([rotated, np.zeros((1, rotated.shape[1]))])
    weights = np.append(np.ones(eigenvalues.size), float(rows.width - rows.rank))
    scores = scorer.curve(nodes, coordinates, grid, weights)
    points = [GCVPoint(float(a), float(sc)) for a, sc in zip(grid, scores, strict=True)]
    tiebreak = scorer.curve(nodes, coordinates, grid, weights, criterion="gcv")
    best = _choose(points, interior=interior, tiebreak=tiebreak)
    if not any(math.isfinite(p.score) for p in points):
        return best, points  # undefined everywhere: the caller decides (GCV), then solves
    if rows.reliable(best.alpha):  # the Cholesky solve a fixed alpha makes: the same bits
        coef = rows.solve(class_sums, best.alpha)
    else:  # lambda near G's rounding: the minimum-norm solve, as a fixed alpha's
        coef = rows.solve_from_spectrum(eigenvalues, vectors, rotated, best.alpha)
    return GCVPoint(best.alpha, best.score, coef), points


def criterion_for(counts: np.ndarray | None, n: float, n_classes: int) -> str:
    """The criterion ``criterion="auto"`` uses for these class counts (see :func:`select_alpha`).

    >>> criterion_for(np.array([50, 50]), 100, 2), criterion_for(np.array([1, 1]), 2, 2)
    ('loo', 'gcv')
    """
    loo = (
        counts is not None
        and 2 <= n_classes <= _LOO_MAX_CLASSES
        and n - n_classes >= max(n_classes, 10)  # the within-class covariance needs samples
        and bool(np.all(np.asarray(counts) > 0))
    )
    return "loo" if loo else "gcv"


def _rotated_spectrum(gram: Any, targets: Any, ops: HostLinalg) -> tuple:
    """Eigenvalues of G and V^T Q (the loo criterion needs the cross terms, not only energies);
    engines without ``rotated_spectrum`` decompose on the host."""
    if hasattr(ops, "rotated_spectrum"):
        return ops.rotated_spectrum(gram, targets)
    return HOST.rotated_spectrum(np.asarray(ops.to_numpy(gram)), np.asarray(ops.to_numpy(targets)))


class _Scorer:
    """The criterion of one search: curves from a (quadrature of the) spectrum, and points
    from a factorisation (:meth:`GCV.moments`)."""

    def __init__(
        self,
        n: float,
        energy: float,
        extra_df: float,
        counts: np.ndarray | None,
        n_classes: int,
        criterion: str,
        units: int = 1,
    ) -> None:
        if criterion not in ("auto", "loo", "gcv"):
            raise ValueError(f"criterion must be 'auto', 'loo' or 'gcv', got {criterion!r}")
        if criterion == "loo" and counts is None:
            raise ValueError("criterion='loo' needs the class counts")
        self.criterion = criterion_for(counts, n, n_classes) if criterion == "auto" else criterion
        self.n, self.energy, self.extra_df = float(n), float(energy), float(extra_df)
        self.counts = None if counts is None else np.asarray(counts, dtype=np.float64)
        self.units = units  # M: the resolution of RSS scales with it (see gcv_from_spectrum)

    def curve(
        self,
        nodes: np.ndarray,
        rotated: np.ndarray,
        alphas: np.ndarray,
        multiplicities: np.ndarray | None = None,
        criterion: str | None = None,
    ) -> np.ndarray:
        """Scores over ``alphas`` from nodes s with V^T Q (``rotated``, or its row energies for
        gcv) and trace weights (``multiplicities``; ones for an exact spectrum), by this
        search's criterion or the one named."""
        if (criterion or self.criterion) == "gcv":
            energies = rotated if rotated.ndim == 1 else np.einsum("ij,ij->i", rotated, rotated)
            return gcv_from_spectrum(
                nodes, energies, self.n, alphas, self.energy, self.extra_df, multiplicities
            )
        return loo_error(
            nodes, rotated, self.counts, alphas, self.extra_df, multiplicities, self.energy
        )

    def from_moments(
        self,
        alphas: np.ndarray,
        cross: np.ndarray,
        cross2: np.ndarray,
        df: np.ndarray,
        criterion: str | None = None,
    ) -> np.ndarray:
        """Scores over ``alphas`` from K, K2 (L x C x C) and df (L,), as a quadrature gives
        them: RSS = ||Y||^2 - 2 tr K + tr K2 for gcv."""
        rss = self.energy - 2.0 * np.einsum("lcc->l", cross) + np.einsum("lcc->l", cross2)
        # A residual below the rounding of ||Y||^2: the fit interpolates, and neither criterion
        # can tell how it predicts (leverages -> 1).
        resolved = rss > _RESOLUTION * self.units * self.energy
        if (criterion or self.criterion) == "loo":
            scores = _loo_from_moments(cross, cross2, df, self.counts, self.extra_df)
            return np.where(resolved, scores, math.inf)
        residual_df = self.n - df - self.extra_df
        resolved &= rss > _GCV_RESOLUTION * self.units * self.energy
        ok = (residual_df > 0) & resolved & np.isfinite(rss)
        return np.where(
            ok, self.n * np.maximum(rss, 0.0) / np.where(ok, residual_df, 1.0) ** 2, math.inf
        )

    def point(self, alpha: float, moments: tuple | None, criterion: str | None = None) -> float:
        """The score at ``alpha`` from a factorisation's (W, K, K2, df), by this search's
        criterion or the one named."""
        if moments is None:
            return math.inf
        W, cross, cross2, df = moments
        scores = self.from_moments(
            np.array([alpha]), cross[None], cross2[None], np.array([df]), criterion
        )
        return float(scores[0])


def _choose(points: list[GCVPoint], interior: bool, tiebreak: np.ndarray | None = None) -> GCVPoint:
    """The point of lowest score; with ``interior``, the lowest interior local minimum when the
    curve has one. Among scores tied with the lowest: the lowest ``tiebreak`` (a second
    criterion, one value per point; GCV where loo cannot tell lambdas apart), then the largest
    lambda (the most shrinkage)."""
    finite = [p for p in points if math.isfinite(p.score)]
    if interior:
        # A minimum at an end of the lattice is the limit lambda -> 0 (the interpolating fit,
        # whose GCV stays finite when M > n, and misleads) or lambda -> inf: prefer the best
        # interior local minimum when the curve has one.
        # Scores closer than _TIE (relative) are rounding apart: equal for every comparison.
        inner = [
            b
            for a, b, c in zip(finite, finite[1:], finite[2:], strict=False)
            if _below(b.score, a.score) and not _below(c.score, b.score)
        ]
        finite_or_inner = inner or finite
    else:
        finite_or_inner = finite
    if finite_or_inner:
        lowest = min(p.score for p in finite_or_inner)
        # Ties are searched among all finite points (a floored loo error makes a plateau),
        # but only those within a tie of that score: an end of the lattice scoring well below
        # the interior minimum is the limit the interior rule sets aside, not a tie.
        tied = [p for p in finite if not _below(lowest, p.score) and not _below(p.score, lowest)]
        if tiebreak is not None and len(tied) > 1:
            # The second criterion chooses among the tied points, by the same rules.
            second = {p.alpha: float(t) for p, t in zip(points, tiebreak, strict=True)}
            pick = _choose([GCVPoint(p.alpha, second[p.alpha]) for p in tied], interior)
            return next(p for p in tied if p.alpha == pick.alpha)
        return max(tied, key=lambda p: p.alpha)
    # Too few samples for any fit to leave residual degrees of freedom (one sample, say):
    return max(points, key=lambda p: p.alpha)  # then shrink the most


_TIE = 1e-6  # scores this close (relative) are ties: rounding can order them either way


def _below(a: float, b: float) -> bool:
    """``a`` lower than ``b`` by more than a tie."""
    return a < b - _TIE * abs(b)


_RESOLUTION = 1e4 * np.finfo(np.float64).eps  # per unit, relative to ||Y||^2
# GCV divides RSS by (n - df)^2, both -> 0 as the fit interpolates: RSS's rounding (about
# eps M ||Y||^2) must stay far below a tie (_TIE) of the score, or rounding decides between
# routes to the same sums (a forget, a merge). From this RSS on, it is below 1e-7 (relative).
_GCV_RESOLUTION = 1e7 * np.finfo(np.float64).eps  # per unit, relative to ||Y||^2


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
    multiplicities: np.ndarray | None = None,
) -> np.ndarray:
    """GCV(lambda) for many lambdas from G's eigenvalues s and the energies e_i = ||(V^T Q)_i||^2.

    <W, Q> = sum e/(s+l), ||W||^2 = sum e/(s+l)^2, RSS = ||Y||^2 - <W, Q> - l ||W||^2 and
    df = sum s/(s+l) (+ 1 for an intercept): exact, O(M) per lambda. inf where G + l I is not
    positive definite or n <= df. From a quadrature (:func:`krylov_spectrum`) the nodes s carry
    weights: ``energies`` for Q and ``multiplicities`` (summing to about M) for the trace.

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
    counted = eigenvalues if multiplicities is None else eigenvalues * multiplicities
    residual_df = n - ((counted * inverse).sum(axis=1) + extra_df)
    # A residual near the rounding of ||Y||^2 is not resolved (the fit interpolates): GCV says
    # nothing there, and rounding would decide between routes to the same sums.
    size = eigenvalues.size if multiplicities is None else float(multiplicities.sum())
    resolved = rss > _GCV_RESOLUTION * size * target_energy
    ok = positive & (residual_df > 0) & resolved
    return np.where(ok, n * np.maximum(rss, 0.0) / np.where(ok, residual_df, 1.0) ** 2, math.inf)


def loo_error(
    nodes: np.ndarray,
    rotated: np.ndarray,
    counts: np.ndarray,
    alphas: np.ndarray,
    extra_df: float = 0.0,
    multiplicities: np.ndarray | None = None,
    target_energy: float | None = None,
) -> np.ndarray:
    """log of an estimate of the leave-one-out classification error, for each lambda, from
    G's spectrum (nodes s, B = V^T Q) and the class counts: sums only.

    With W = (G + l I)^-1 Q: K = Q^T W = B^T diag(1/(s+l)) B and K2 = W^T G W =
    B^T diag(s/(s+l)^2) B (C x C). The training samples of class k score, on average,
    m_k = K[:, k] / n_k (leaving out the intercept's class-prior offset, which favours large
    classes and, measured, misleads), with the pooled within-class covariance
    S = (K2 - sum_k K[:, k] K[k, :] / n_k) / (n - C). Leaving a sample out lowers its own
    class's score by its leverage (exact for ridge: f_-i = (f_i - h_ii y_i) / (1 - h_ii));
    with the average leverage h = (df + 1) / n (1 for the intercept, ``extra_df``), the margin
    of class k over class j is a_kj = m_kk - m_jk - h, with variance v_kj = S_kk + S_jj - 2 S_kj.
    The error is estimated as sum_k (n_k / n) max_j Phi(-a_kj / sqrt(v_kj)): the chance, under
    a Gaussian model, that the nearest rival outscores the true class. inf where fewer than
    max(C, 10) residual degrees of freedom n - df - 1 remain or the average leverage h exceeds
    0.6 (near interpolation leverages are large and uneven, and an average misleads), or
    (given ``target_energy`` = ||Y||^2) where the residual
    ||Y||^2 - 2 tr K + tr K2 is below its rounding: the fit interpolates, leverages -> 1, and
    the estimate says nothing. Estimates below half a sample (0.5 / n) are floored there:
    leave-one-out cannot resolve smaller error rates, so separable classes leave a plateau of
    ties, among which the search lets GCV decide.

    Unlike GCV (the squared error of the one-hot regression, which also counts the errors of
    scores that do not decide the prediction), it looks at margins only
    (``benchmarks/lambda_selection.py`` measures both against every fixed lambda).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0); y = np.repeat([0, 1], 50)
    >>> H = rng.standard_normal((100, 5)) + 2.0 * np.eye(2, 5)[y]; H -= H.mean(0)
    >>> s, V = np.linalg.eigh(H.T @ H)
    >>> Y = np.eye(2)[y] - 0.5
    >>> errors = np.exp(loo_error(s, V.T @ H.T @ Y, np.array([50, 50]), np.array([1.0]), 1.0))
    >>> bool(0.0 < errors[0] < 0.2)
    True
    """
    counts = np.asarray(counts, dtype=np.float64)
    nodes = np.asarray(nodes, dtype=np.float64)
    positive = np.all(nodes[None, :] + alphas[:, None] > 0, axis=1)
    cross, cross2, df = moments_from_nodes(nodes, rotated, alphas, multiplicities)
    scores = _loo_from_moments(cross, cross2, df, counts, extra_df)
    if target_energy is not None:
        rss = target_energy - 2.0 * np.einsum("lcc->l", cross) + np.einsum("lcc->l", cross2)
        size = nodes.size if multiplicities is None else float(multiplicities.sum())
        positive &= rss > _RESOLUTION * size * target_energy
    return np.where(positive, scores, math.inf)


def moments_from_nodes(
    nodes: np.ndarray,
    rotated: np.ndarray,
    alphas: np.ndarray,
    multiplicities: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K = B^T diag(1/(s+l)) B, K2 = B^T diag(s/(s+l)^2) B (L x C x C) and
    df = sum w s/(s+l) (L,) for each lambda l, from nodes s, B (``rotated``) and trace weights w
    (``multiplicities``; ones for an exact spectrum)."""
    inverse = 1.0 / (nodes[None, :] + alphas[:, None])  # (L, r)
    c = rotated.shape[1]
    if rotated.shape[0] * c * c <= _OUTER_PRODUCTS:
        # Every lambda's K and K2 in one product: [1/(s+l); s/(s+l)^2] (2L x r) times the
        # nodes' outer products b_i b_i^T (r x C^2), where those fit in a few megabytes.
        outer = (rotated[:, :, None] * rotated[:, None, :]).reshape(rotated.shape[0], c * c)
        both = np.vstack([inverse, inverse * (nodes[None, :] * inverse)]) @ outer  # s/(s+l) <= 1
        cross, cross2 = both.reshape(2, alphas.size, c, c)
    else:
        cross, cross2 = np.empty((alphas.size, c, c)), np.empty((alphas.size, c, c))
        for i, row in enumerate(inverse):  # one (C x r)(r x C) product per lambda, in BLAS
            weighted = rotated * row[:, None]
            cross[i] = rotated.T @ weighted
            cross2[i] = weighted.T @ (weighted * nodes[:, None])
    counted = nodes if multiplicities is None else nodes * multiplicities
    return cross, cross2, (counted[None, :] * inverse).sum(axis=1)


def _loo_from_moments(
    cross: np.ndarray, cross2: np.ndarray, df: np.ndarray, counts: np.ndarray, extra_df: float
) -> np.ndarray:
    """:func:`loo_error` from K, K2 (L x C x C) and df (L,)."""
    n, c = float(counts.sum()), counts.size
    cross = 0.5 * (cross + np.swapaxes(cross, 1, 2))
    means = cross / counts[None, None, :]  # [l, j, k]: column j's mean score on class k
    between = np.matmul(means, cross)  # sum_k K_jk K_km / n_k
    within = cross2 - between
    # Within-class spread below the rounding of K2: the fit interpolates the classes, and
    # rounding residue (another route to the same sums) would decide.
    unresolved = np.einsum("lkk->l", within) <= _RESOLUTION * c * np.abs(
        np.einsum("lkk->l", cross2)
    )
    spread = within / max(n - c, 1.0)
    spread = 0.5 * (spread + np.swapaxes(spread, 1, 2))
    leverage = (df + extra_df) / n
    own = np.einsum("lkk->lk", means)  # m_kk
    margin = own[:, :, None] - np.swapaxes(means, 1, 2) - leverage[:, None, None]  # [l, k, j]
    diag = np.einsum("lkk->lk", spread)
    variance = diag[:, :, None] + diag[:, None, :] - 2.0 * spread
    # A pair's variance below the rounding of the diagonal is no spread at all.
    noise = _RESOLUTION * c * np.abs(diag).max(axis=1, initial=0.0)[:, None, None]
    variance = np.where(variance > noise, variance, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = margin / np.sqrt(np.maximum(variance, 1e-300))
        z = np.where(variance > 0, z, np.where(margin > 0, np.inf, -np.inf))
    # The nearest rival: the smallest z (the tail Phi(-z) falls as z grows), then one tail.
    log_p = log_ndtr(-np.where(np.eye(c, dtype=bool)[None], np.inf, z).min(axis=2))
    scores = logsumexp(log_p + np.log(counts / n)[None, :], axis=1)
    # Leave-one-out can resolve an error rate down to about one sample in n, no lower: the
    # Gaussian tails of separable classes (often the first task, with more units than samples)
    # give estimates like exp(-5000) that only rank rounding. Below half a sample, all are ties.
    scores = np.maximum(scores, math.log(0.5 / n))
    # The estimate needs residual degrees of freedom, as many as it needs to exist at all
    # (criterion_for: n - C >= max(C, 10)). Nearer to interpolation (more units than samples,
    # lambda -> 0) the average leverage is ~1 and leave-one-out extrapolates from a handful of
    # degrees of freedom: there its floored plateau chose lambda ~ 1e-5 where 18 classifies
    # 20 points better (6 classes, 450 samples, 512 units; benchmarks/teachable_small.py).
    residual = n - df - extra_df
    # Leave-one-out gives every sample the average leverage h; where h is large the real
    # leverages are large and uneven, and the estimate is optimistic about small lambdas (with
    # more units than samples: 5 samples per class of 45 text classes chose lambda = 0.32 where
    # 1.8 classifies 2 points better on held-out training rows). Only lambdas with h <= 0.6 are
    # scored (studied on held-out training rows: benchmarks/small_data.py --validation chose
    # 3/4 over no cap; --caps, on 69 few-shot cases, 0.6 over 3/4: 31 better, 12 worse).
    capped = leverage <= _MAX_LEVERAGE
    return np.where((residual >= max(c, 10)) & capped & ~unresolved, scores, math.inf)


def _warm_walk(
    gram: np.ndarray,
    class_sums: np.ndarray,
    start: float,
    lo: float,
    hi: float,
    tolerance: float,
    scorer: _Scorer,
    ops: HostLinalg,
) -> tuple[list[GCVPoint], np.ndarray | None]:
    """Walk the lattice downhill from ``start`` (one factorisation per lambda); returns the
    points scored, by lambda, and their GCV scores where the criterion is loo (its ties are
    decided by GCV, as in the cold search: a floored loo plateau was walked to its largest
    lambda, 1e4 where the cold search chose 178 on digits with 1,024 units and two BLAS
    threads, 98.2 % against 99.2 %)."""
    factorised = GCV(
        gram, class_sums, scorer.n, target_energy=scorer.energy, extra_df=scorer.extra_df, ops=ops
    )
    evaluated: dict[float, GCVPoint] = {}
    second: dict[float, float] = {}
    by_gcv = scorer.criterion == "loo"

    def score(t: float) -> None:
        key = round(t, 9)
        if key not in evaluated:
            alpha = 10.0**key
            moments = factorised.moments(alpha)
            coef = None if moments is None or factorised.compressed else moments[0]
            evaluated[key] = GCVPoint(alpha, scorer.point(alpha, moments), coef)
            if by_gcv:
                second[key] = scorer.point(alpha, moments, criterion="gcv")

    def lowest() -> float:
        keys = sorted(evaluated)
        tiebreak = np.array([second[t] for t in keys]) if by_gcv else None
        pick = _choose([evaluated[t] for t in keys], interior=False, tiebreak=tiebreak)
        return next(t for t in keys if evaluated[t] is pick)

    best = min(max(round(math.log10(start) / tolerance) * tolerance, lo), hi)
    walk = tolerance
    while True:
        for t in (max(best - walk, lo), min(best + walk, hi)):
            score(t)
        score(best)
        new_best = lowest()
        if new_best != best:  # walk downhill, taking longer strides while it keeps going
            best, walk = new_best, min(2.0 * walk, 4.0)
        elif walk <= tolerance:  # a local minimum at the finest step
            break
        else:
            walk = max(walk / 2.0, tolerance)
    keys = sorted(evaluated)
    return [evaluated[t] for t in keys], np.array([second[t] for t in keys]) if by_gcv else None


def krylov_spectrum(
    gram: Any,
    start: np.ndarray,
    ops: HostLinalg = HOST,
    max_dim: int | None = None,
    apply: Callable[[Any], Any] | None = None,
    first: int = _KRYLOV_FIRST,
    start_qr: tuple[np.ndarray, np.ndarray] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
    """Block Lanczos of G from the columns of ``start`` (M x b), for quadrature.

    ``apply`` replaces the product G @ block by another symmetric operator (the shift-invert
    search passes (G + sigma I)^-1 @ block, see :func:`shift_invert_nodes`).

    Grows an orthonormal basis U of the block Krylov space span{X, G X, G^2 X, ...} (full
    reorthogonalisation; directions G cannot reach any more are dropped), one product G @ U_j
    per step (run by ``ops``, so on the learner's device), and yields after every second step
    from step ``first`` (6) on ``(T, E, exact)``: T = U^T G U (block tridiagonal) and
    E = U^T X, so that for any function f

        X^T f(G) X  ~=  E^T f(T) E        (block Gauss quadrature, :func:`quadrature_moments`)

    which is exact for polynomials of degree < 2 x steps, and exact for every f once the space
    is invariant (``exact``: nothing new to add). Stops at ``max_dim`` dimensions.
    ``start_qr``: the QR factors of ``start`` when already in hand (several runs from one start).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0); A = rng.standard_normal((60, 30)); G = A.T @ A
    >>> X = rng.standard_normal((30, 2))
    >>> for T, E, exact in krylov_spectrum(G, X):
    ...     pass
    >>> bool(exact and np.allclose(E.T @ np.linalg.solve(T + np.eye(T.shape[0]), E),
    ...                            X.T @ np.linalg.solve(G + np.eye(30), X)))
    True
    """
    m, b = start.shape
    max_dim = m if max_dim is None else min(max_dim, m)
    first_block, r0 = start_qr or np.linalg.qr(np.asarray(start, dtype=np.float64))
    # The basis in one Fortran-ordered array, filled a block at a time: its leading columns are
    # contiguous, so the Gram-Schmidt products run in BLAS (scipy's, on every core) with no copy.
    # Room for 8 blocks to start with, doubled when full.
    basis = np.empty((m, min(8 * b, max_dim + b)), order="F")
    size = first_block.shape[1]
    basis[:, :size] = first_block
    projected = np.zeros((max_dim + b, max_dim + b))  # T = U^T G U, filled block by block
    done, steps, drop = 0, 0, None
    while True:
        block = basis[:, done:size]
        moved = ops.asarray(block)
        raw = ops.to_numpy(ops.product(gram, moved) if apply is None else apply(moved))
        product = np.asarray(raw, dtype=np.float64, order="F")
        steps += 1
        if drop is None:  # directions whose image is below this are G's rounding noise
            scale = max(float(np.linalg.norm(product, axis=0).max()), 1e-300)
            drop = max(1e-10, 100 * float(np.finfo(raw.dtype).eps)) * scale
        # Classical Gram-Schmidt (twice where needed); the first pass's coefficients are T's new
        # columns.
        spanned = basis[:, :size]
        coefficients = blas.dgemm(1.0, spanned, product, trans_a=1)
        projected[:size, done:size] = coefficients
        projected[done:size, :size] = coefficients.T
        within = np.linalg.norm(product - block @ coefficients[done:size])
        new = blas.dgemm(-1.0, spanned, coefficients, beta=1.0, c=product, overwrite_c=1)
        if np.linalg.norm(new) < 0.7 * within:  # a second pass where the first lost digits
            again = blas.dgemm(1.0, spanned, new, trans_a=1)
            new = blas.dgemm(-1.0, spanned, again, beta=1.0, c=new, overwrite_c=1)
        directions, smallest = _orthonormal_columns(new, drop, smallest=True)
        if directions.shape[1] and smallest < 1e-6 * scale:
            # Normalising a tiny remainder magnifies what rounding left of the basis in it
            # (~1e-16 of the product): near invariance, project once more and drop what was
            # mostly that. Elsewhere the magnification stays below 1e6: nothing to do.
            directions -= spanned @ (spanned.T @ directions)
            directions = _orthonormal_columns(directions, 0.5)
        directions = directions[:, : max(max_dim - size, 0)]
        done = size
        # Invariant (G maps the space into itself, or it is all of R^M): the quadrature is exact.
        exact = size >= m or (directions.shape[1] == 0 and size < max_dim)
        last = exact or size >= max_dim
        if last or (steps >= first and (steps - first) % _KRYLOV_EVERY == 0):
            start_coordinates = np.zeros((size, b))
            start_coordinates[: r0.shape[0]] = r0
            yield projected[:size, :size], start_coordinates, exact
        if last:
            return
        grown = size + directions.shape[1]
        if grown > basis.shape[1]:
            wider = np.empty((m, min(2 * grown, max_dim + b)), order="F")
            wider[:, :size] = basis[:, :size]
            basis = wider
        basis[:, size:grown] = directions
        size = grown


def quadrature_moments(
    T: np.ndarray, E: np.ndarray, c: int, alphas: np.ndarray, bandwidth: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From :func:`krylov_spectrum`'s (T, E) with E = [E_Q, E_Z] (targets, then probes):
    K = E_Q^T (T + l)^-1 E_Q, K2 = E_Q^T (T + l)^-1 T (T + l)^-1 E_Q and the Hutchinson
    df = tr(E_Z^T T (T + l)^-1 E_Z) / k for each lambda l, by banded Cholesky solves (T is
    block tridiagonal: ``bandwidth`` above the diagonal), O(d bandwidth^2) per lambda.
    Where T + l I is not positive definite: nan."""
    d = T.shape[0]
    u = min(bandwidth, d - 1)
    band = np.zeros((u + 1, d))
    for offset in range(u + 1):
        band[u - offset, offset:] = np.diagonal(T, offset)
    k = E.shape[1] - c
    cross = np.full((alphas.size, c, c), np.nan)
    cross2 = np.full((alphas.size, c, c), np.nan)
    df = np.full(alphas.size, np.nan)
    # Small factorisations: one BLAS thread (threads would spend more time meeting than working).
    with one_thread():
        for i, alpha in enumerate(alphas):
            shifted = band.copy()
            shifted[u] += alpha
            try:
                factor = linalg.cholesky_banded(shifted, lower=False, check_finite=False)
            except linalg.LinAlgError:
                continue
            solved = linalg.cho_solve_banded((factor, False), E, check_finite=False)
            cross[i] = E[:, :c].T @ solved[:, :c]
            cross2[i] = solved[:, :c].T @ (T @ solved[:, :c])
            if k:
                probes = E[:, c:]
                df[i] = (np.sum(probes * probes) - alpha * np.sum(probes * solved[:, c:])) / k
    return cross, cross2, df


def _orthonormal_columns(vectors: np.ndarray, drop: float, smallest: bool = False) -> Any:
    """An orthonormal basis of the columns' span, without directions of size below ``drop``:
    two passes of Cholesky-QR through the small Gram matrix's eigendecomposition (matrix
    products, which stay fast where a tall QR or SVD does not). With ``smallest``, also the
    size of the smallest direction kept (how much normalising magnified it)."""
    least = np.inf
    for attempt in range(2):
        sizes, rotation = np.linalg.eigh(vectors.T @ vectors)
        keep = sizes > drop**2
        if attempt == 0 and keep.any():
            least = float(np.sqrt(sizes[keep].min()))
        vectors = vectors @ (rotation[:, keep] / np.sqrt(sizes[keep]))
        drop = 1e-8  # the second pass only restores orthogonality (columns have norm ~1)
    return (vectors, least) if smallest else vectors


def _krylov_search(
    gram: Any,
    class_sums: Any,
    grid: np.ndarray,
    floor: float,
    scorer: _Scorer,
    ops: HostLinalg,
    force: bool = False,
) -> tuple[GCVPoint, list[GCVPoint]] | None:
    """The curve by Krylov quadrature, its choice and the factorisation there (see
    :func:`select_alpha`); None where the spectral route must decide (too small or too many
    classes for the quadrature to pay, no convergence within M/2 dimensions, a failed check)."""
    m = class_sums.shape[0]
    if not force and m < _KRYLOV_MIN_UNITS:
        return None
    start, rotation = _quadrature_start(class_sums, ops)
    c, block = rotation.shape[1], start.shape[1]
    budget = m // 2
    if not force and budget < _KRYLOV_STEPS * block:
        return None  # too many classes for this width: the quadrature would cost more

    def curve(T: np.ndarray, E: np.ndarray, where: np.ndarray, criterion: str | None = None):
        scores = np.full(grid.size, math.inf)
        cross, cross2, df = quadrature_moments(T, E, c, grid[where], 2 * block - 1)
        # Back to class columns: Q ~= P R^T, so Q^T f(G) Q ~= R (P^T f(G) P) R^T.
        cross = rotation @ cross @ rotation.T
        cross2 = rotation @ cross2 @ rotation.T
        found = scorer.from_moments(grid[where], cross, cross2, df, criterion)
        scores[where] = np.where(np.isfinite(df), found, math.inf)
        return scores

    everywhere = np.arange(grid.size)
    previous, window = None, everywhere
    for T, E, exact in krylov_spectrum(gram, start, ops, max_dim=m if force else budget):
        # Convergence is judged near the minimum: after the first test, only the lattice
        # within 6 steps of it is scored, until the last, complete curve.
        scores = curve(T, E, window)
        if exact or (previous is not None and _settled(previous, scores)):
            break
        previous = scores
        best = int(np.argmin(scores))
        window = everywhere[max(best - 6, 0) : best + 7]
    else:
        if not force:
            return None  # not converged within the budget
    if window.size < grid.size:
        scores = curve(T, E, everywhere)
    points = [GCVPoint(float(a), float(sc)) for a, sc in zip(grid, scores, strict=True)]
    chosen = _choose(points, interior=True, tiebreak=curve(T, E, everywhere, "gcv"))
    if not math.isfinite(chosen.score):
        return None
    factorised = GCV(
        gram, class_sums, scorer.n, target_energy=scorer.energy, extra_df=scorer.extra_df, ops=ops
    )
    # No condition estimate (ridge_solve's warning): lambda >= 1e-10 trace(G) on the lattice
    # bounds the condition number of G + lambda I by 1e10 + 1, below the warning's 1e12.
    moments = factorised.moments(chosen.alpha)
    check = scorer.point(chosen.alpha, moments)
    if not force and not _agrees(check, chosen.score, scorer.criterion):
        return None
    return GCVPoint(chosen.alpha, chosen.score, None if moments is None else moments[0]), points


def _quadrature_start(class_sums: Any, ops: HostLinalg) -> tuple[np.ndarray, np.ndarray]:
    """The quadrature's starting block [P, Z] (M x (r + 8)): the principal directions of the
    class sums (:func:`_principal_directions`) and fixed Rademacher probes for the trace (seeded
    by M, so the choice depends on the sums alone), with the rotation R (C x r) back to
    classes."""
    sums = np.asarray(ops.to_numpy(class_sums), dtype=np.float64)
    targets, rotation = _principal_directions(sums)
    m = sums.shape[0]
    probes = np.random.default_rng(m).choice(np.array([-1.0, 1.0]), size=(m, _KRYLOV_PROBES))
    return np.hstack([targets, probes]), rotation


def shift_invert_nodes(
    upper: Any,
    sigma: float,
    start: np.ndarray,
    ops: HostLinalg = HOST,
    steps: int = 6,
    start_qr: tuple[np.ndarray, np.ndarray] | None = None,
    eps: float = float(np.finfo(np.float64).eps),
) -> tuple[np.ndarray, np.ndarray]:
    """Rational Gauss quadrature of G's spectrum, from the Cholesky factor U of G + sigma I.

    Block Lanczos of (G + sigma I)^-1 (two triangular solves per step, the cost of a product
    G @ block) from ``start``, for ``steps`` steps, gives T and E; with T = V diag(t) V^T the
    nodes are s_j = 1/t_j - sigma and the coordinates C = V^T E, so that for f(s) = 1/(s + l)
    and its kin

        X^T f(G) X  ~=  C^T diag(f(s)) C.

    Exact for rational functions of G with poles at -sigma up to degree 2 ``steps`` - 1, which
    is what the ridge moments are near l = sigma: a handful of steps resolves the curve within
    about a decade of sigma, where plain Krylov (polynomials in G) needs many steps to resolve
    G's small eigenvalues (the steep spectrum of a random layer).

    >>> import numpy as np
    >>> from scipy import linalg
    >>> rng = np.random.default_rng(0); A = rng.standard_normal((200, 80)); G = A.T @ A
    >>> X = rng.standard_normal((80, 3)); U = linalg.cholesky(G + 2.0 * np.eye(80))
    >>> s, C = shift_invert_nodes(U, 2.0, X, steps=3)
    >>> K = C.T @ (C / (s + 5.0)[:, None])
    >>> bool(np.allclose(K, X.T @ np.linalg.solve(G + 5.0 * np.eye(80), X), rtol=1e-3))
    True
    """

    def solve(block: Any) -> Any:
        return ops.cho_solve(upper, block)

    room = (steps + 1) * start.shape[1]  # T's size after ``steps`` steps, and a block to spare
    T, E, _ = next(
        krylov_spectrum(None, start, ops, max_dim=room, apply=solve, first=steps, start_qr=start_qr)
    )
    inverse, vectors = np.linalg.eigh(T)
    # (G + sigma I)^-1 has eigenvalues in (0, 1/sigma]; one rounded to ~0 stands for a
    # direction of huge s, where every f of the ridge moments vanishes: it is dropped.
    top = float(inverse.max(initial=0.0))
    valid = inverse > top * T.shape[0] * eps
    return 1.0 / inverse[valid] - sigma, (vectors.T @ E)[valid]


def normalising_exponent(mean_diagonal: float) -> int:
    """k where G's mean diagonal lies beyond 2^+-200 (features beyond about 1e30 or below
    1e-30), so that G / 4^k is near 1; else 0. Beyond that the quadratures' powers of G would
    pass float64's range (about 2^+-1022) and move the choice; ordinary sums are searched as
    they are, bit for bit."""
    if not math.isfinite(mean_diagonal) or mean_diagonal <= 0.0:
        return 0
    exponent = math.frexp(mean_diagonal)[1]
    return 0 if abs(exponent) <= 200 else exponent // 2


def _single_scale(mean_diagonal: float) -> float:
    """A power of two that brings G's float32 copy near 1 where its values would overflow or
    lose their digits in float32 (features beyond about 1e15 or below 1e-15: G's entries then
    pass 2^100 or fall below 2^-100); 1 otherwise, so ordinary sums are copied as they are."""
    if not math.isfinite(mean_diagonal) or mean_diagonal <= 0.0:
        return 1.0
    exponent = math.frexp(mean_diagonal)[1]
    return 1.0 if abs(exponent) <= 100 else math.ldexp(1.0, exponent)


def _rational_search(
    gram: Any,
    class_sums: Any,
    grid: np.ndarray,
    floor: float,
    scorer: _Scorer,
    ops: HostLinalg,
    exact_descent: bool = False,
) -> tuple[GCVPoint, list[GCVPoint]] | None:
    """The curve by shift-invert quadrature around a factorised lambda, moved until the curve
    from the factorisation at lambda chooses lambda itself (see :func:`select_alpha`); None
    where the spectral route must decide (too small or too many classes to pay, no such fixed
    point within _RATIONAL_ROUNDS factorisations, a failed check). ``exact_descent`` (the row
    space's search): exact factorised scores, and the choice walked to an exact local minimum."""
    m = class_sums.shape[0]
    if m < _KRYLOV_MIN_UNITS:
        return None
    start, rotation = _quadrature_start(class_sums, ops)
    c, block = rotation.shape[1], start.shape[1]
    if 2 * _RATIONAL_STEPS * block > m:
        return None  # too many classes for this width: the quadrature would cost more

    def choose(
        nodes: np.ndarray, coordinates: np.ndarray, anchor: tuple[float, float] | None = None
    ) -> tuple[GCVPoint, list[GCVPoint]]:
        """The curve from quadrature nodes; with ``anchor`` = (sigma, df at sigma from the
        factorisation), the trace estimate is scaled to agree there."""
        nodes = _without_rounding_noise(nodes, floor)
        rotated = coordinates[:, :c] @ rotation.T
        weights = np.einsum("ij,ij->i", coordinates[:, c:], coordinates[:, c:]) / _KRYLOV_PROBES
        cross, cross2, df = moments_from_nodes(nodes, rotated, grid, weights)
        if anchor is not None:
            # The quadrature's trace has 8 probes' error, correlated across lambdas (the same
            # probes): scaled to agree with the factorisation's own at sigma (64 probes, or
            # exact where those cannot resolve n - df), the curve near sigma keeps only the
            # error of the change (a scale, not a shift: df still vanishes as lambda grows).
            sigma, exact_df = anchor
            estimate = float((nodes * weights / (nodes + sigma)).sum())
            if estimate > 0 and exact_df > 0:
                df = df * (exact_df / estimate)
        scores = scorer.from_moments(grid, cross, cross2, df)
        tiebreak = scorer.from_moments(grid, cross, cross2, df, criterion="gcv")
        points = [GCVPoint(float(a), float(sc)) for a, sc in zip(grid, scores, strict=True)]
        return _choose(points, interior=True, tiebreak=tiebreak), points

    # Where to look first: a few plain Krylov steps (products G @ U) place the minimum within
    # about a decade, but they under-resolve small eigenvalues and so err high (by 2 to 10
    # times on the benchmarks' data): start _RATIONAL_BELOW lattice steps lower, where the
    # choice most often lies.
    room = (_PLAIN_STEPS + 1) * block
    scale = _single_scale(ops.trace(gram) / m)
    rough = ops.single(gram, scale)  # only places sigma: float32 products serve
    start_qr = np.linalg.qr(start)  # every run below starts from it
    T, E, _ = next(
        krylov_spectrum(rough, start, ops, max_dim=room, first=_PLAIN_STEPS, start_qr=start_qr)
    )
    plain, vectors = np.linalg.eigh(T)
    chosen, _ = choose(np.maximum(plain * scale, 0.0), vectors.T @ E)
    if not math.isfinite(chosen.score):
        return None
    sigma = float(grid[max(int(np.searchsorted(grid, chosen.alpha)) - _RATIONAL_BELOW, 0)])
    # On the row space (``exact_descent``: n x n, cheap) every factorised score is exact: the trace
    # from the factor's inverse, not 64 probes.
    factorised = GCV(
        gram,
        class_sums,
        scorer.n,
        target_energy=scorer.energy,
        extra_df=scorer.extra_df,
        ops=ops,
        exact_trace=exact_descent,
    )
    # A first curve from a float32 factorisation at sigma (in place of the float32 copy: half
    # a float64 factorisation's time, its solves too) places the first float64 factorisation,
    # which the coefficients need in any case: where that confirms the curve's choice, the
    # search ends with one factorisation in float64 and one in float32.
    # (Not on the row space: its factorisations are n x n, and its exact descent factorises
    # the choice's neighbours in any case.)
    looked = (
        None
        if exact_descent
        else _single_precision_curve(rough, scale, sigma, start, start_qr, factorised, choose)
    )
    del rough
    first_guess = sigma
    if looked is not None:
        sigma = looked[0].alpha
    tried: dict[float, tuple] = {}  # the moments of every lambda factorised so far
    work = None  # one buffer for every factorisation here (each is used up before the next)

    def factorise(alpha: float) -> Any:
        """G + alpha I's factor (None where not positive definite); its moments kept."""
        nonlocal work
        factored = ops.shifted_cholesky(gram, alpha, out=work)
        work = factored if isinstance(factored, np.ndarray) else None
        if factored is not None:
            tried[alpha] = factorised.moments_from_factor(factored, alpha)
        return factored

    factored = factorise(sigma)
    rounds = _RATIONAL_ROUNDS
    if (
        looked is not None
        and factored is not None
        and abs(_steps_apart(grid, sigma, first_guess)) <= _TRUSTED_STEPS
        and _confirmed(scorer.point(sigma, tried[sigma]), *looked, scorer.criterion)
    ):
        chosen, points = looked
        rounds = 0  # confirmed: no float64 curve needed
    for _ in range(rounds):
        if factored is None:
            return None
        nodes, coordinates = shift_invert_nodes(factored, sigma, start, ops, start_qr=start_qr)
        chosen, points = choose(nodes, coordinates, anchor=(sigma, tried[sigma][3]))
        if not math.isfinite(chosen.score):
            return None
        if chosen.alpha == sigma:
            break  # the curve from the factorisation at sigma chooses sigma itself
        if chosen.alpha in tried or len(tried) >= _RATIONAL_ROUNDS:
            return None  # a cycle, or no fixed point within the rounds: the exact spectrum decides
        near = abs(_steps_apart(grid, chosen.alpha, sigma)) <= _TRUSTED_STEPS
        sigma = chosen.alpha
        factored = factorise(sigma)  # the choice's coefficients come from its factorisation
        if (
            near
            and factored is not None
            and _confirmed(scorer.point(sigma, tried[sigma]), chosen, points, scorer.criterion)
        ):
            # Within a few lattice steps of its factorisation the curve is accurate: where its
            # error at its choice is small against the margin to the choice's neighbours, the
            # choice needs no curve of its own.
            break
    else:
        if rounds:
            return None
    if factored is None:
        return None
    # Check the curve at the choice against the factorised criterion (exact K and K2, the trace
    # from 64 probes), whose W is a fixed alpha's solve, bit for bit. No condition estimate:
    # lambda >= 1e-10 trace(G) bounds it by 1e10 + 1.
    moments = tried[sigma]
    exact = scorer.point(sigma, moments)
    if not _agrees(exact, chosen.score, scorer.criterion):
        return None
    if exact_descent:
        return _exact_descent(grid, sigma, points, tried, factorise, scorer)
    # The path holds the factorised scores where there are some. A lattice neighbour of the
    # choice factorised on the way (a move, or the first guess) is compared by its exact score.
    # Every route to the same sums runs this same search on G, and the curve decides near-ties
    # (they lie within the 64-probe trace's own error of each other). The lower factorised
    # score wins.
    at = int(np.argmin(np.abs(grid - sigma)))
    for j, alpha in enumerate(grid):
        if float(alpha) in tried:
            points[j] = GCVPoint(float(alpha), scorer.point(float(alpha), tried[float(alpha)]))
    for j in (at - 1, at + 1):
        if 0 <= j < grid.size and float(grid[j]) in tried and _below(points[j].score, exact):
            sigma, exact = float(grid[j]), points[j].score
            moments = tried[sigma]
    return GCVPoint(sigma, exact, moments[0]), points


def _single_precision_curve(
    rough: Any,
    scale: float,
    sigma: float,
    start: np.ndarray,
    start_qr: tuple[np.ndarray, np.ndarray],
    factorised: GCV,
    choose: Callable[..., tuple[GCVPoint, list[GCVPoint]]],
) -> tuple[GCVPoint, list[GCVPoint]] | None:
    """The shift-invert curve around ``sigma`` from a float32 factorisation of the float32
    copy ``rough`` (G / ``scale``; factorised in place, so used up), its trace anchored by the
    64 probes of ``factorised``; None where float32 cannot factorise it or the curve scores
    nothing. Its rounding (about 1e-7 of G's largest eigenvalue) only decides where the first
    float64 factorisation goes: every choice is confirmed there in float64."""
    shift = sigma / scale
    upper = factorised.ops.single_cholesky(rough, shift)
    if upper is None:
        return None
    eps = float(np.finfo(np.float32).eps)
    nodes, coordinates = shift_invert_nodes(
        upper, shift, start, factorised.ops, start_qr=start_qr, eps=eps
    )
    per_probe = factorised.ops.probe_norms(upper, factorised.probes)
    trace_inverse = float(np.mean(factorised.ops.to_numpy(per_probe))) / scale
    df = factorised.gram.shape[0] - sigma * trace_inverse
    chosen, points = choose(nodes * scale, coordinates, anchor=(sigma, df))
    return (chosen, points) if math.isfinite(chosen.score) else None


def _exact_descent(
    grid: np.ndarray,
    sigma: float,
    points: list[GCVPoint],
    tried: dict[float, tuple],
    factorise: Callable[[float], Any],
    scorer: _Scorer,
) -> tuple[GCVPoint, list[GCVPoint]] | None:
    """From the curve's choice ``sigma``, down the exact criterion to a local minimum of the
    lattice: each neighbour factorised (``tried`` holds exact moments), a lower score wins, a
    tie (within _TIE) goes to the lower GCV, then to the larger lambda, as :func:`_choose`
    rules. The row space's search ends here, so that a fresh fit chooses what G's
    eigendecomposition chooses after a forget wherever the exact curve has one minimum (the
    64-probe trace had ordered near-ties wrongly: 5e-5 apart, relative). None where the walk
    reaches an end of the lattice (the exact spectrum's interior rule decides) or a
    factorisation fails."""

    def rank(alpha: float) -> tuple[float, float]:
        return scorer.point(alpha, tried[alpha]), scorer.point(alpha, tried[alpha], "gcv")

    def better(a: float, b: float) -> bool:
        (score_a, gcv_a), (score_b, gcv_b) = rank(a), rank(b)
        if not (math.isfinite(score_a) and math.isfinite(score_b)):
            # A lambda the criterion does not score (beyond the leverage cap) is never chosen
            # over one it scores, as in _choose (a tie with inf would fall to GCV).
            return math.isfinite(score_a) and not math.isfinite(score_b)
        if _below(score_a, score_b) or _below(score_b, score_a):
            return _below(score_a, score_b)
        if _below(gcv_a, gcv_b) or _below(gcv_b, gcv_a):
            return _below(gcv_a, gcv_b)
        return a > b

    at = int(np.argmin(np.abs(grid - sigma)))
    for _ in range(grid.size):
        if at in (0, grid.size - 1):
            return None
        best = float(grid[at])
        for j in (at - 1, at + 1):
            neighbour = float(grid[j])
            if neighbour not in tried and factorise(neighbour) is None:
                return None
            if better(neighbour, best):
                best = neighbour
        if best == float(grid[at]):
            break
        at = int(np.argmin(np.abs(grid - best)))
    for j, alpha in enumerate(grid):
        if float(alpha) in tried:
            points[j] = GCVPoint(float(alpha), scorer.point(float(alpha), tried[float(alpha)]))
    sigma = float(grid[at])
    return GCVPoint(sigma, points[at].score, tried[sigma][0]), points


def _confirmed(exact: float, chosen: GCVPoint, points: list[GCVPoint], criterion: str) -> bool:
    """The curve's choice stands without a curve of its own: the factorised score there agrees
    with the curve (:func:`_agrees`), and the curve's error there is below the margin by which
    the choice beats its lattice neighbours on the curve (_CONFIRM_SHARE of it). The curve's
    error is much the same at neighbouring lambdas (one set of probes, a smooth rational
    approximation), so their order is the exact one. (On the benchmarks' whole runs, each
    second curve drawn where the error lay between a quarter of the margin and the margin
    left the search at the lambda the first had chosen: ``lambda_selection.py --only
    choices``.)"""
    if not _agrees(exact, chosen.score, criterion):
        return False
    at = next(i for i, p in enumerate(points) if p.alpha == chosen.alpha)
    neighbours = [points[i].score for i in (at - 1, at + 1) if 0 <= i < len(points)]
    gap = min((s - chosen.score for s in neighbours if math.isfinite(s)), default=math.inf)
    # A plateau (neighbours tied with the choice: a tie-break decided) is never confirmed.
    return gap > _TIE * abs(chosen.score) and abs(exact - chosen.score) <= _CONFIRM_SHARE * gap


def _steps_apart(grid: np.ndarray, a: float, b: float) -> int:
    """How many lattice steps separate lattice values ``a`` and ``b``."""
    return int(np.argmin(np.abs(grid - a))) - int(np.argmin(np.abs(grid - b)))


def _agrees(exact: float, estimate: float, criterion: str) -> bool:
    """The factorised score and the quadrature's agree to _KRYLOV_CHECK (relative)."""
    if not (math.isfinite(exact) and math.isfinite(estimate)):
        return False
    # loo scores are log errors: a relative error d of the margins' z moves them by ~2 d |log|
    scale = max(abs(exact), 1.0) if criterion == "loo" else abs(exact)
    return abs(exact - estimate) <= _KRYLOV_CHECK * scale


def _principal_directions(class_sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P = Q R (M x r) and R (C x r, orthonormal columns) with Q ~= P R^T up to a 1e-10 share
    of ||Q||^2: the criteria need Q only through Q^T f(G) Q ~= R P^T f(G) P R^T, and centred
    class sums have rank < C, so the quadrature's block is smaller."""
    sizes, rotation = np.linalg.eigh(class_sums.T @ class_sums)
    order = np.argsort(sizes)[::-1]
    sizes, rotation = np.maximum(sizes[order], 0.0), rotation[:, order]
    total = float(sizes.sum())
    if total <= 0:
        return class_sums[:, :1] * 0.0, rotation[:, :1]
    kept = min(int(np.searchsorted(np.cumsum(sizes), (1.0 - 1e-10) * total)) + 1, sizes.size)
    return class_sums @ rotation[:, :kept], rotation[:, :kept]


def _settled(previous: np.ndarray, scores: np.ndarray) -> bool:
    """The same minimum as at the last test, and the curve within 4 lattice steps of it moved
    by less than _KRYLOV_RTOL (relative), or by less than a quarter of the margin by which the
    minimum beats its neighbours (then the ranking there cannot have changed)."""
    best = int(np.argmin(scores))
    if best != int(np.argmin(previous)) or not math.isfinite(scores[best]):
        return False
    window = slice(max(best - 4, 0), best + 5)
    a, b = previous[window], scores[window]
    both = np.isfinite(a) & np.isfinite(b)
    moved = float(np.max(np.abs(a[both] - b[both]), initial=0.0))
    neighbours = [scores[i] for i in (best - 1, best + 1) if 0 <= i < scores.size]
    gap = min((x - scores[best] for x in neighbours if math.isfinite(x)), default=math.inf)
    return moved <= _KRYLOV_RTOL * max(abs(float(scores[best])), 1.0) or moved <= 0.25 * gap
