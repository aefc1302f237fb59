"""Host linear algebra for the heads: checked Cholesky solves and the ill-conditioning warning.

Every solve of ``(G + lambda I) W = Q`` goes through :func:`ridge_solve`: Cholesky first (with
LAPACK's condition estimate), an eigendecomposition fallback for a matrix that is not numerically
positive definite, and an :class:`IllConditionedWarning` naming the condition number either way.
:class:`HostLinalg` is the set of operations the lambda search needs; a torch engine provides
the same methods on a device (:mod:`forgetless.engine`). The process's BLAS thread limits have
one owner here (:func:`one_thread`, :func:`numpy_blas_quiet`), under :func:`compute_lock`.

>>> import numpy as np
>>> ridge_solve(np.eye(2) * 3.0, np.ones((2, 1)), 1.0).ravel().tolist()
[0.25, 0.25]
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import threadpoolctl
from scipy import linalg
from scipy.linalg import blas, lapack
from threadpoolctl import ThreadpoolController

# Above this condition number of G + lambda I the solve is flagged (float64 keeps ~4 digits).
CONDITION_WARNING = 1e12
_BLOCK = 256  # columns at a time where a full-size temporary is not needed


# ------------------------------------------------------------------ BLAS threads
# BLAS thread limits (threadpoolctl) belong to the whole process, not to a thread. This section
# is their one owner: every limit forgetless sets goes through `_limited`, under the lock below.
_COMPUTE = threading.RLock()
_POOLS: list[ThreadpoolController] = []  # the thread pools, listed once (a millisecond)
_LIMITS: dict[str, Any] = {"active": [], "original": None, "numpy_own": None}


def compute_lock() -> Any:
    """The process-wide re-entrant lock under which forgetless computes: held by the computing
    methods of :class:`~forgetless.ContinualClassifier` (``fit``, ``partial_fit``, ``predict``,
    ``decision_function``, ``coef_``, ``merge``, ``forget``, ``save``, ``load``, ...), by a
    Dask partition's sums and by every BLAS limit context (:func:`one_thread`,
    :func:`numpy_blas_quiet`).

    Why: BLAS thread limits belong to the whole process, and OpenBLAS rounds some products
    differently with the thread count, so a learner whose products ran while another thread
    was inside a limit got other bits. Under this lock forgetless computes in one thread at a
    time: its results are the same, bit for bit, whatever other threads do. That loses
    little, as BLAS already runs one computation on every core; other work (encoders, reading
    files, the caller's own code) still runs alongside. Nothing that holds it waits for
    another thread; do not wait under it yourself for other threads' forgetless work (e.g.
    ``partial_fit_dask`` on a threaded scheduler inside ``with compute_lock():``), which
    would wait for it in turn.
    """
    return _COMPUTE


def serialised(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` run under :func:`compute_lock` (re-entrant: it may call others that are)."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _COMPUTE:
            return function(*args, **kwargs)

    return run


def _pools() -> list[Any]:
    """threadpoolctl's controllers of the process's thread pools (scipy's BLAS loaded first)."""
    if not _POOLS:
        _POOLS.append(ThreadpoolController())
        numpy_home = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
        _LIMITS["numpy_own"] = [
            pool.user_api == "blas"
            and os.path.basename(os.path.dirname(pool.filepath)) in ("numpy.libs", "numpy")
            and os.path.dirname(os.path.dirname(pool.filepath)) == numpy_home
            for pool in _POOLS[0].lib_controllers
        ]
    return _POOLS[0].lib_controllers


def _set_limits(pools: list[Any]) -> None:
    """Give every pool the thread count the active contexts call for (see :func:`_limited`)."""
    active, original = _LIMITS["active"], _LIMITS["original"]
    for pool, threads, own in zip(pools, original, _LIMITS["numpy_own"], strict=True):
        one = "one_thread" in active or ("numpy_blas_quiet" in active and own)
        pool.set_num_threads(1 if one else threads)


@contextlib.contextmanager
def _limited(kind: str) -> Iterator[None]:
    """The one way forgetless limits BLAS threads, under :func:`compute_lock`.

    The thread counts in force follow from the contexts active, whatever their order: any
    ``one_thread`` puts every pool on one thread; otherwise any ``numpy_blas_quiet`` puts
    numpy's own BLAS on one thread; the rest keep the counts found when the first context was
    entered, which are restored exactly when the last one leaves (nested contexts included).
    """
    with _COMPUTE:
        pools = _pools()
        if not _LIMITS["active"]:
            _LIMITS["original"] = [pool.num_threads for pool in pools]
            _openblas_control(take=True)
        _LIMITS["active"].append(kind)
        try:
            _set_limits(pools)
            yield
        finally:
            _LIMITS["active"].remove(kind)
            _set_limits(pools)
            if not _LIMITS["active"]:
                _LIMITS["original"] = None
                _openblas_control(take=False)


def _openblas_control(take: bool) -> None:
    """threadpoolctl (3.8 here) lets one thread at a time set a pthreads OpenBLAS's limit,
    the first to set it, and silently ignores the others: forgetless's limits would
    hold in one thread and do nothing in the rest (the bits of a learner would depend on the
    thread it learns in). The first context takes that control (the lock keeps forgetless's
    own contexts from meeting) and the last one hands it back."""
    controller = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(controller, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=take)


def one_thread() -> contextlib.AbstractContextManager[None]:
    """A context in which BLAS (every thread pool) runs on one thread: for small
    factorisations (threads would spend more time meeting than working) and where the bits
    must not depend on the thread count. It holds :func:`compute_lock`."""
    return _limited("one_thread")


def numpy_blas_quiet() -> contextlib.AbstractContextManager[None]:
    """A context in which numpy's own BLAS runs on one thread, where numpy and scipy each bring
    a BLAS of their own (as their wheels do): between calls, a BLAS keeps its threads spinning
    for a while, on the cores the other one's threads need. A triangular solve by scipy right
    after a numpy product took 1.9 times as long at M = 4000 on two cores, 1.08 times inside
    this context (``benchmarks/lambda_selection.py --only blas``).
    The heads factorise with scipy; numpy's products there are small. Where numpy and scipy
    share one BLAS, nothing changes. It holds :func:`compute_lock`; nested in (or around) a
    :func:`one_thread`, everything is on one thread while that one is active.
    """
    return _limited("numpy_blas_quiet")


class IllConditionedWarning(UserWarning):
    """The regularised Gram matrix is close to singular; results may be inaccurate."""


class OffsetRoundingWarning(IllConditionedWarning):
    """The centred statistics keep little of the rows' spread: the rows lie far from their
    mean against their spread, and centring their summed squares cancels most digits."""


class HostLinalg:
    """The Cholesky operations the ridge head needs, on numpy arrays (LAPACK via scipy).

    On the host, G is held as its upper triangle (:meth:`gram`) and every method reads only
    that triangle. The torch engine (:mod:`forgetless.engine`) has the same methods on a device,
    on the full matrix, so the same lambda search runs on a GPU when the learner has
    ``device="cuda"`` (the Krylov search only multiplies there, :meth:`product`;
    ``rotated_spectrum``, where an engine lacks it, runs on the host).
    """

    def asarray(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(array, dtype=np.float64)

    def to_numpy(self, array: np.ndarray) -> np.ndarray:
        return array

    def gram(self, stats: Any, mean: np.ndarray | None = None) -> np.ndarray:
        """G of the statistics, centred (G - n m m^T) when the mean m is given: a fresh
        Fortran-ordered array whose **upper triangle** holds the values (below the diagonal is
        unspecified). Every operation here reads only that triangle, so G is never mirrored:
        one copy and a rank-one update (BLAS syr), a quarter of the time of the full matrix."""
        gram = np.array(stats.gram_upper, dtype=np.float64, order="F", copy=True)
        if mean is not None:
            gram = blas.dsyr(-float(stats.n_samples), mean, a=gram, lower=0, overwrite_a=1)
        return gram

    def product(self, gram: np.ndarray, block: np.ndarray) -> np.ndarray:
        """G @ block from G's upper triangle (BLAS symm; in float32 for :meth:`single`'s G)."""
        if gram.dtype == np.float32:
            return blas.ssymm(1.0, gram, np.asarray(block, dtype=np.float32), side=0, lower=0)
        return blas.dsymm(1.0, gram, block, side=0, lower=0)

    def single(self, gram: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """G / ``scale`` in float32, for products whose rounding does not matter (a rough first
        look at the spectrum): symm in single precision takes about two thirds of the time.
        ``scale`` (a power of two) keeps G's values within float32's range."""
        if scale == 1.0:
            return gram.astype(np.float32, order="F")
        out = np.empty(gram.shape, dtype=np.float32, order="F")
        return np.multiply(gram, 1.0 / scale, out=out, casting="same_kind")

    def norm1(self, gram: np.ndarray) -> float:
        """The 1-norm (largest absolute column sum) of the symmetric G held in its upper
        triangle, a block of columns at a time (no full-size temporary)."""
        m = gram.shape[0]
        sums = np.zeros(m)
        for start in range(0, m, _BLOCK):
            stop = min(start + _BLOCK, m)
            part = np.abs(gram[:stop, start:stop])
            part[start:][np.tril_indices(stop - start, -1)] = 0.0  # the tile's lower triangle
            sums[start:stop] += part.sum(axis=0)  # column j: rows i <= j
            sums[:start] += part[:start].sum(axis=1)  # row i < start: its mirrored entries
            tile = part[start:]
            sums[start:stop] += tile.sum(axis=1) - np.diagonal(tile)  # mirrored within the tile
        return float(sums.max(initial=0.0))

    def trace(self, gram: np.ndarray) -> float:
        return float(np.trace(gram))

    def spectrum(self, gram: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues s of G and the energies ||(V^T Q)_i||^2 along its eigenvectors."""
        eigenvalues, vectors = linalg.eigh(gram, lower=False, driver="evd", check_finite=False)
        rotated = vectors.T @ targets
        return eigenvalues, np.einsum("ij,ij->i", rotated, rotated)

    def rotated_spectrum(
        self, gram: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues s of G and V^T Q itself (M x C; the loo criterion needs cross terms)."""
        eigenvalues, vectors = linalg.eigh(gram, lower=False, driver="evd", check_finite=False)
        return eigenvalues, vectors.T @ targets

    def shifted_cholesky(
        self, gram: np.ndarray, alpha: float, out: np.ndarray | None = None
    ) -> np.ndarray | None:
        """U with G + alpha I = U^T U (from G's upper triangle), or None when that is not
        positive definite. One copy of G, factorised in place; into ``out`` (an M x M
        Fortran-ordered float64 array, overwritten) when given, as when several lambdas are
        factorised in turn: writing into memory already in use is about 3x faster than a fresh
        copy."""
        if out is None:
            A = np.array(gram, dtype=np.float64, order="F", copy=True)
        else:
            A = out
            np.copyto(A, gram)
        A[np.diag_indices(A.shape[0])] += alpha
        try:
            upper, _ = linalg.cho_factor(A, lower=False, overwrite_a=True, check_finite=False)
        except linalg.LinAlgError:
            return None
        return upper

    def single_cholesky(self, rough: np.ndarray, alpha: float) -> np.ndarray | None:
        """U with rough + alpha I = U^T U in float32, factorised in place of :meth:`single`'s
        copy (used up), or None where that is not positive definite in float32: a rough
        first look at the lambda curve at half the cost of a float64 factorisation."""
        rough[np.diag_indices(rough.shape[0])] += np.float32(alpha)
        try:
            upper, _ = linalg.cho_factor(rough, lower=False, overwrite_a=True, check_finite=False)
        except linalg.LinAlgError:
            return None
        return upper

    def cho_solve(self, upper: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """(U^T U)^-1 targets, in the factor's precision (float32 for :meth:`single_cholesky`'s)."""
        targets = np.asarray(targets, dtype=upper.dtype)
        return linalg.cho_solve((upper, False), targets, check_finite=False)

    def probe_norms(self, upper: np.ndarray, probes: np.ndarray) -> np.ndarray:
        """||U^-T z||^2 for each probe column z."""
        probes = np.asarray(probes, dtype=upper.dtype)
        half = linalg.solve_triangular(upper, probes, trans="T", check_finite=False)
        return np.einsum("ij,ij->j", half, half)

    def inverse_norm2(self, upper: np.ndarray) -> float:
        """||U^-1||_F^2 = tr(A^-1), exactly."""
        inverse = np.triu(lapack.dtrtri(upper, lower=0)[0])
        return float(np.vdot(inverse, inverse))

    def vdot(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(np.vdot(a, b))

    def condition(self, upper: np.ndarray, norm1: float) -> float:
        """LAPACK's 1-norm condition estimate of A = U^T U, given A's 1-norm."""
        rcond, info = lapack.dpocon(upper, norm1, uplo="U")
        return math.inf if info != 0 or rcond <= 0 else 1.0 / float(rcond)


HOST = HostLinalg()


class RowSpace:
    """G = RᵀR (R: n × M with n < M, the statistics' factor) seen from the n-dimensional row
    space of R, where every ridge solve and G's whole spectrum cost n × n work.

    A Householder QR of Rᵀ gives an orthonormal basis F (M × n, kept as LAPACK's reflectors)
    and a triangle T with Rᵀ = F T, so G = F (T Tᵀ) Fᵀ. With the mean m of the rows (``mean``,
    for the centred G - n m mᵀ of a ridge with an intercept; m lies in the row space),
    G - n m mᵀ = F E Fᵀ with E = T Tᵀ - n μ μᵀ, μ = Fᵀ m. For Q in the row space (as the
    class sums Hᵀ Y are), (G + λ I)⁻¹ Q = F (E + λ I)⁻¹ Fᵀ Q; the other M - n eigenvalues of
    G are zero. About 2 n² M + 10 n³ flops instead of n M² (forming G) plus M³ / 3 per
    factorisation.

    E's eigenvalues below G's rounding level (``floor``: M eps times G's largest diagonal
    value before centring, or its largest eigenvalue) are rounding, not signal, like the
    intercept's direction or repeated samples: a λ near that level is solved from the
    eigendecomposition with those directions dropped (the minimum-norm solution, as
    :func:`ridge_solve` does where G + λ I is not positive definite). Otherwise the solves agree
    with an M × M Cholesky solve to about eps times the condition number.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0); R = np.triu(rng.standard_normal((3, 6)))
    >>> mean = R.T @ rng.standard_normal(3) / 10; Q = R.T @ rng.standard_normal((3, 2))
    >>> G = R.T @ R - 4 * np.outer(mean, mean)
    >>> W = RowSpace(R, mean, 4).solve(Q, 0.5)
    >>> bool(np.allclose(W, np.linalg.solve(G + 0.5 * np.eye(6), Q)))
    True
    """

    def __init__(self, factor: np.ndarray, mean: np.ndarray | None = None, n: int = 0) -> None:
        rows, self.width = factor.shape
        self.rank = rows  # n: the dimension of the row space (G's rank is at most n)
        if rows >= self.width:
            raise ValueError(f"a row space needs fewer rows than columns, got {factor.shape}")
        scale = float(np.einsum("ij,ij->j", factor, factor).max(initial=0.0))  # G's diagonal
        self.floor = self.width * np.finfo(np.float64).eps * scale
        (self._reflectors, self._tau), _ = linalg.qr(factor.T, mode="raw", check_finite=False)
        triangle = np.triu(self._reflectors[:rows])
        inner = triangle @ triangle.T
        if mean is not None:
            mu = self.coordinates(np.asarray(mean, dtype=np.float64)[:, None])[:, 0]
            inner -= float(n) * np.outer(mu, mu)
        self.inner = 0.5 * (inner + inner.T)  # E, n × n

    def trace(self) -> float:
        return float(np.trace(self.inner))

    def coordinates(self, vectors: np.ndarray) -> np.ndarray:
        """Fᵀ V (n × k) for V (M × k)."""
        return self._apply(np.asarray(vectors, dtype=np.float64), "T")[: self.rank]

    def expand(self, coordinates: np.ndarray) -> np.ndarray:
        """F C (M × k) for C (n × k)."""
        full = np.zeros((self.width, coordinates.shape[1]), order="F")
        full[: self.rank] = coordinates
        return self._apply(full, "N")

    def _apply(self, block: np.ndarray, trans: str) -> np.ndarray:
        block = np.array(block, dtype=np.float64, order="F", copy=True)
        if block.shape[1] == 0:
            return block
        lwork = max(1, block.shape[1]) * 64
        out, _, info = lapack.dormqr("L", trans, self._reflectors, self._tau, block, lwork, 1)
        if info != 0:  # pragma: no cover - LAPACK argument errors only
            raise RuntimeError(f"dormqr failed (info={info})")
        return out

    def rounding(self, top: float) -> float:
        """G's rounding level, given (a bound on) its largest eigenvalue ``top``."""
        return max(self.floor, self.width * np.finfo(np.float64).eps * top)

    def spectrum(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """G's n eigenvalues on its row space (ascending; those below :meth:`rounding` set to
        zero), their eigenvectors in the row space's coordinates (n × n), and Vᵀ Q along them
        (n × C; zero along the eigenvalues set to zero, where Q has only rounding)."""
        eigenvalues, vectors = linalg.eigh(self.inner, driver="evd", check_finite=False)
        signal = eigenvalues > self.rounding(float(eigenvalues.max(initial=0.0)))
        rotated = (vectors.T @ self.coordinates(targets)) * signal[:, None]
        return np.where(signal, eigenvalues, 0.0), vectors, rotated

    def solve_from_spectrum(
        self,
        eigenvalues: np.ndarray,
        vectors: np.ndarray,
        rotated: np.ndarray,
        alpha: float,
        hint: str = "increase alpha",
    ) -> np.ndarray:
        """(G + α I)⁻¹ Q from :meth:`spectrum`'s output (the minimum-norm solution), with
        :func:`ridge_solve`'s ill-conditioning warning."""
        top = float(eigenvalues.max(initial=0.0))
        _warn_condition((top + alpha) / alpha if alpha > 0 else math.inf, alpha, hint)
        shifted = eigenvalues + alpha  # zero only along directions Q has nothing of (alpha = 0)
        with np.errstate(over="ignore"):  # an alpha of a few subnormals: as alpha = 0 there
            inverse = np.where(shifted > 0, 1.0 / np.where(shifted > 0, shifted, 1.0), 0.0)
        inverse[~np.isfinite(inverse)] = 0.0
        return self.expand(vectors @ (rotated * inverse[:, None]))

    def solve(self, targets: np.ndarray, alpha: float, hint: str = "increase alpha") -> np.ndarray:
        """(G + α I)⁻¹ Q: by a Cholesky factorisation of E + α I (n × n) where α stands well
        above G's rounding level and the condition number (largest + α) / α (G has M - n zero
        eigenvalues) is below ``CONDITION_WARNING``; else from the eigendecomposition (the
        minimum-norm solution, with the warning)."""
        if self.reliable(alpha):
            upper = HOST.shifted_cholesky(self.inner, alpha)
            if upper is not None:
                return self.expand(HOST.cho_solve(upper, self.coordinates(targets)))
        return self.solve_from_spectrum(*self.spectrum(targets), alpha, hint)

    def reliable(self, alpha: float) -> bool:
        """Whether a factorisation of E + α I solves accurately (α well above G's rounding
        level, a condition number below ``CONDITION_WARNING``)."""
        top = HOST.norm1(self.inner)  # >= the largest eigenvalue
        well_above = alpha >= _ABOVE_ROUNDING * self.rounding(top)
        return well_above and alpha > 0 and (top + alpha) / alpha <= CONDITION_WARNING


_ABOVE_ROUNDING = 1e6  # a λ this many times G's rounding level leaves rounding 1e-6 of weight


def _warn_condition(cond: float, alpha: float, hint: str) -> None:
    """The ill-conditioning warning of every solve (the caller's caller is named)."""
    if cond > CONDITION_WARNING:
        warnings.warn(
            f"G + {alpha:.3g} I has condition number {cond:.3g} > {CONDITION_WARNING:.0g}; "
            f"the solution may be inaccurate; {hint} or reduce n_components.",
            IllConditionedWarning,
            stacklevel=4,
        )


def ridge_solve(
    gram: np.ndarray,
    targets: np.ndarray,
    alpha: float,
    ops: HostLinalg = HOST,
    hint: str = "increase alpha",
) -> np.ndarray:
    """Solve (G + alpha I) W = Q by Cholesky; fall back to an eigendecomposition.

    The fallback (for a matrix that is not numerically positive definite) drops eigenvalues below
    machine precision, i.e. returns the minimum-norm solution. Either path warns with the
    condition number when it exceeds ``CONDITION_WARNING`` and says what to do (``hint``).
    ``ops`` runs the Cholesky path on another device (a torch engine's ``linalg``); the
    fallback stays on the host.

    >>> import numpy as np
    >>> ridge_solve(np.eye(2) * 3.0, np.ones((2, 1)), 1.0).ravel().tolist()
    [0.25, 0.25]
    """
    m = gram.shape[0]
    gram = ops.asarray(gram)
    upper = ops.shifted_cholesky(gram, alpha)
    if upper is None:
        A = np.array(ops.to_numpy(gram), dtype=np.float64, copy=True)
        A[np.diag_indices(m)] += alpha
        evals, evecs = linalg.eigh(A, lower=False)
        top = max(float(evals.max()), 0.0)
        keep = evals > top * m * np.finfo(np.float64).eps
        cond = math.inf if not keep.all() else top / float(evals.min())
        warnings.warn(
            f"G + {alpha:.3g} I is not positive definite (condition number {cond:.3g}); "
            f"using the minimum-norm eigen-solution; {hint}.",
            IllConditionedWarning,
            stacklevel=3,
        )
        inv = np.where(keep, 1.0 / np.where(keep, evals, 1.0), 0.0)
        return evecs @ (inv[:, None] * (evecs.T @ targets))
    # G is positive semi-definite (its diagonal >= 0), so ||G + alpha I||_1 = ||G||_1 + alpha.
    _warn_condition(ops.condition(upper, ops.norm1(gram) + alpha), alpha, hint)
    return ops.to_numpy(ops.cho_solve(upper, ops.asarray(targets)))


def oas_shrinkage(scatter: np.ndarray, n_samples: int, dim: int | None = None) -> float:
    """The oracle approximating shrinkage intensity (Chen et al. 2010, in scikit-learn's form)
    of a covariance toward its mean eigenvalue times I: near 0 where many samples estimate an
    anisotropic covariance well, up to 1 where they are few against the dimension.

    ``scatter`` is any matrix with the covariance's nonzero spectrum up to a common scale: the
    covariance itself (``dim`` defaults to its size), or the n x n Gram Z Z^T of the centred rows
    Z when n < dim (then pass ``dim``). The estimate is scale-free; it is computed on
    ``scatter`` divided by its largest entry, so features of any finite size give the same rho.

    >>> import numpy as np
    >>> oas_shrinkage(np.diag([1.0, 2.0, 3.0]), 10**6) < 0.01  # lots of data: little shrinkage
    True
    >>> rows = np.random.default_rng(0).standard_normal((20, 50)) * np.linspace(0.1, 3.0, 50)
    >>> rho = oas_shrinkage(rows @ rows.T, 20, dim=50)
    >>> round(rho, 2), bool(np.isclose(rho, oas_shrinkage(rows.T @ rows, 20)))
    (0.74, True)
    """
    p = scatter.shape[0] if dim is None else int(dim)
    if p == 1:
        return 0.0  # one feature: the shrunk covariance is the covariance (scikit-learn's 0)
    scale = float(np.abs(scatter).max(initial=0.0))
    if not scale > 0 or not math.isfinite(scale):
        return 1.0
    scatter = scatter / scale
    mu = float(np.trace(scatter)) / p
    mean_sq = float(np.einsum("ij,ij->", scatter, scatter)) / (p * p)  # tr(S^2) / p^2
    num = mean_sq + mu**2
    den = (n_samples + 1.0) * (mean_sq - mu**2 / p)
    if den <= 0:
        return 1.0
    rho = min(num / den, 1.0)
    return 0.0 if rho < 1e-15 else rho


def oas_shrinkage_of_rows(rows: np.ndarray) -> float:
    """:func:`oas_shrinkage` of the covariance rows^T rows / n (rows already centred), from the
    smaller of the two Grams (the same nonzero spectrum). Rows far from unit size are scaled
    first (the estimate is scale-free, and their squares could overflow or underflow)."""
    n, d = rows.shape
    top = float(np.abs(rows).max(initial=0.0))
    if math.isfinite(top) and top > 0 and not 2.0**-100 <= top <= 2.0**100:
        rows = rows / top
    return oas_shrinkage(rows @ rows.T if n < d else rows.T @ rows, n, dim=d)
