"""Analytic heads read from :class:`~forgetless.statistics.SufficientStatistics`.

``ridge``  W = (G + lambda I)^-1 Q by Cholesky (checked fallback), lambda fixed or chosen by
           an estimate of the leave-one-out classification error from the accumulated sums
           alone (GCV with many classes); scores are the regression's, or (``decision``) those
           of the discriminant analysis the same solve gives (:func:`penalised_discriminant`).
``rls``    recursive least squares: keeps P = (G + lambda I)^-1 and W current batch by batch with
           the Woodbury identity (cheap for streams of small batches).
``ncm``    cosine nearest class mean (SimpleCIL): class means are Q / counts.
``lda``    linear discriminant analysis with a shared, shrunk covariance (streaming LDA / SLDA).
``owm``    orthogonal weight modification, a task-order-dependent comparison head.

Each head says what it is, so the learner never checks its type: ``recursive`` (kept current
from the projected rows of each batch by :meth:`Head.observe` rather than solved from the sums
when predicting) and ``order_free`` (a function of the summed statistics alone, so learners with
it may ``merge`` and ``forget``). Every head exposes ``coef_`` (M x C) and ``intercept_`` (C,)
after :meth:`Head.fit` and scores projected rows with ``decision_function(H)``. :data:`HEADS`
is the one registry; :func:`make_head` builds a head from the learner's parameters.

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
from typing import Any, ClassVar

import numpy as np
from scipy import linalg

from forgetless._lambda_search import GCVPoint, criterion_for, normalising_exponent, select_alpha
from forgetless.linalg import (
    HOST,
    HostLinalg,
    RowSpace,
    numpy_blas_quiet,
    oas_shrinkage,
    ridge_solve,
)
from forgetless.statistics import SufficientStatistics


class Head:
    """What every head is and does; subclasses fill in :meth:`fit` and the class attributes.

    ``PARAMS`` names the learner parameters the head is built from: when one of them changes
    after fitting, the learner rebuilds the head from the statistics (or, for a head that
    cannot be rebuilt from sums, refuses the change).
    """

    name: ClassVar[str] = ""
    PARAMS: ClassVar[tuple[str, ...]] = ()
    linear: ClassVar[bool] = True  # scores are H @ coef_ + intercept_
    recursive: ClassVar[bool] = False  # kept current by observe() on each batch's rows
    order_free: ClassVar[bool] = True  # a function of the summed statistics alone
    needs_fixed_alpha: ClassVar[bool] = False  # refuses alpha="auto"

    coef_: np.ndarray | None = None
    intercept_: np.ndarray | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any], n_components: int) -> Head:
        """A fresh head from the learner's parameters (see ``PARAMS``)."""
        return cls(**{k: params[k] for k in cls.PARAMS})

    def fit(self, stats: SufficientStatistics, ops: HostLinalg = HOST) -> Head:
        """Compute the head from the statistics; ``ops`` says where factorisations run."""
        raise NotImplementedError

    def decision_function(self, H: np.ndarray) -> np.ndarray:
        return H @ self.coef_ + self.intercept_

    def settled_alpha(self, stats: SufficientStatistics) -> float | None:
        """A lambda already chosen for these very sums that a fit keeps (the ridge head with
        ``warm_start``, loaded from a file), else None."""
        return None

    # A recursive head's per-batch life cycle (see RecursiveHead); no-ops for the others.
    def insert_classes(self, positions: np.ndarray) -> None:
        """Empty class columns are about to appear before ``positions`` (``np.insert`` rules)."""

    def observe(self, H: np.ndarray, y_index: np.ndarray) -> None:
        """Rows of the current batch, projected (recursive heads only)."""

    def end_batch(self) -> None:
        """The batch's rows have all been observed."""

    def arrays(self) -> dict[str, np.ndarray]:
        """State a model file must carry beyond the statistics (none: rebuilt from sums)."""
        return {}

    def restore(
        self, arrays: dict[str, np.ndarray], stats: SufficientStatistics, single: bool = False
    ) -> None:
        """Take back what :meth:`arrays` saved (checked against the statistics' shape)."""


class RidgeHead(Head):
    """Ridge regression on one-hot targets: W = (G + lambda I)^-1 Q, with an intercept.

    ``fit_intercept`` centres the sums (G - n m m^T, Q - n m p^T with m the mean feature and p
    the class priors, all from the statistics) so the intercept is not penalised, as in
    scikit-learn's ridge; without it, features with a large common offset (raw pixels) make
    the penalty fight the mean. ``alpha="auto"`` chooses lambda over all statistics so far by
    an estimate of the leave-one-out classification error (GCV beyond 512 classes, with fewer
    than two samples per class, or where no class has any spread; ``criterion_`` says which;
    :mod:`forgetless._lambda_search`), by a
    search that depends on the sums alone, so the choice (and the model) is the one a fresh fit
    on the same sums makes; ``gcv_path_`` holds the score of every lambda tried.
    ``warm_start=True`` starts the search from the previous choice instead: about 3
    factorisations per refit, but where the curve has several local minima it can stop at
    another one than a fresh fit. While the statistics keep G as its n × M factor (at most M / 2
    samples), G is never formed: lambda is chosen over the whole lattice, and the coefficients
    solved, in the factor's n-dimensional row space (:class:`forgetless.linalg.RowSpace`;
    cheaper than one M × M factorisation), with or without ``warm_start``.

    ``decision`` says how classes are scored from the solve: ``"regression"`` (the one-hot
    regression's outputs, RanPAC's rule), ``"discriminant"`` (linear discriminant analysis
    with the within-class scatter penalised by the same lambda, obtained from the same solve
    at the cost of a C x C eigendecomposition, :func:`penalised_discriminant`), or ``"auto"``:
    the discriminant once the classes hold :data:`DISCRIMINANT_MIN_PER_CLASS` samples on
    average (fewer, and its within-class covariance is too noisy: measured on held-out
    training rows, ``benchmarks/small_data.py --layers``), the regression below that.
    Both are functions of the sums. ``decision_`` says which is in use.
    """

    name = "ridge"
    PARAMS = ("alpha", "alphas", "fit_intercept", "warm_start", "decision")

    def __init__(
        self,
        alpha: float | str = "auto",
        alphas: Any = None,
        fit_intercept: bool = True,
        warm_start: bool = False,
        decision: str = "auto",
    ) -> None:
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(map(repr, DECISIONS))}")
        self.alpha = alpha
        self.alphas = alphas
        self.fit_intercept = fit_intercept
        self.warm_start = warm_start
        self.decision = decision
        self.decision_: str | None = None
        self.alpha_: float | None = None
        self.criterion_: str | None = None  # "loo" or "gcv" (alpha="auto"), None when fixed
        self.gcv_path_: list[GCVPoint] = []
        # warm_start: (lambda, the sums it was chosen for) of a loaded learner whose saved one
        # had refitted: a fit of those very sums solves there instead of walking on from it
        self.settled: tuple[float, tuple] | None = None

    def fit(self, stats: SufficientStatistics, ops: HostLinalg = HOST) -> RidgeHead:
        # The factorisations are scipy's; numpy's BLAS threads would compete for the cores.
        with numpy_blas_quiet():
            return self._fit(stats, ops)

    def _fit(self, stats: SufficientStatistics, ops: HostLinalg) -> RidgeHead:
        sums, n = stats.class_sums, stats.n_samples
        energy, extra_df = float(n), 0.0
        centre = self.fit_intercept and n > 0
        mean = stats.feature_sum / n if centre else None
        # With at most half as many samples as units, G's row space (n × n) holds all of its
        # spectrum; otherwise G is built where the factorisations run (on a GPU, it never
        # makes a host-side copy).
        space = _row_space(stats, mean, ops)
        gram = space if space is not None else ops.gram(stats, mean)
        scale = float(stats.diagonal().max(initial=0.0))  # G's largest entry, uncentred
        if centre:
            prior = stats.counts / n
            sums = sums - n * np.outer(mean, prior)
            energy, extra_df = n * (1.0 - float(prior @ prior)), 1.0
        settled = self.settled_alpha(stats)
        self.settled = None
        if self.alpha == "auto" and settled is None:
            search = {
                "start": self.alpha_ if self.warm_start else None,
                "alphas": self.alphas,
                "target_energy": energy,
                "extra_df": extra_df,
                "ops": ops,
                "scale": scale,
                "counts": stats.counts,
                # one sample has no spread about its mean, whatever a forget's rounding left
                "spread": not (centre and n == 1),
            }
            if space is None and _few_samples(stats, ops):
                # A fresh fit on these samples would score lambda exactly on its row space (or
                # walk to an exact local minimum there); G's eigendecomposition does the same,
                # so forget and merge agree with it. Globally, also with warm_start: a walk from
                # the previous choice stops at the nearest local minimum (its estimated score).
                search["method"] = "spectral"
                search["start"] = None
            best, path = select_alpha(gram, sums, n, **search)
            self.criterion_ = criterion_for(stats.counts, n, stats.n_classes)
            if self.criterion_ == "loo" and not any(math.isfinite(p.score) for p in path):
                # No within-class spread anywhere (every class's rows alike): loo is undefined
                # at every lambda; GCV still ranks them (not the largest lambda, the priors).
                best, path = select_alpha(gram, sums, n, criterion="gcv", **search)
                self.criterion_ = "gcv"
            self.alpha_, self.gcv_path_ = best.alpha, path
            # The walk's own Cholesky solve at the chosen lambda, or the solve a fixed alpha
            # equal to alpha_ makes: the same operations, so the same bits.
            coef = best.coef
            if coef is None:
                coef = (
                    space.solve(sums, best.alpha)
                    if space is not None
                    else ridge_solve(gram, sums, best.alpha, ops)
                )
        else:
            self.alpha_ = float(self.alpha if settled is None else settled)
            self.criterion_ = (
                None if settled is None else criterion_for(stats.counts, n, stats.n_classes)
            )
            if space is not None:
                coef = space.solve(sums, self.alpha_)
            else:
                coef = ridge_solve(gram, sums, self.alpha_, ops)
        self.coef_ = coef
        self.intercept_ = prior - mean @ coef if centre else np.zeros(sums.shape[1])
        self.decision_ = "regression"
        if centre and self._discriminant_wanted(stats.counts):
            found = penalised_discriminant(coef, sums, stats.counts)
            if found is not None:
                self.coef_, offsets = found
                self.intercept_ = offsets - mean @ self.coef_
                self.decision_ = "discriminant"
        return self

    def settle(self, alpha: float, stats: SufficientStatistics) -> None:
        """Say that ``alpha`` was chosen (by a warm walk or search) for these very sums."""
        self.settled = (float(alpha), sums_key(stats))

    def settled_alpha(self, stats: SufficientStatistics) -> float | None:
        """The settled lambda where it was chosen for these sums (warm start only), else None."""
        if self.settled is None or not (self.alpha == "auto" and self.warm_start):
            return None
        alpha, key = self.settled
        return alpha if key == sums_key(stats) else None

    def _discriminant_wanted(self, counts: np.ndarray) -> bool:
        """Whether to score by the discriminant (``decision``; "auto": enough per class)."""
        if self.decision == "regression" or counts.size < 2 or np.any(counts < 1):
            return False
        return self.decision == "discriminant" or (
            float(counts.sum()) >= DISCRIMINANT_MIN_PER_CLASS * counts.size
        )


def sums_key(stats: SufficientStatistics) -> tuple:
    """What tells sums apart cheaply: samples, class counts, G's trace, the feature sums' total
    (any batch learned, merged or forgotten changes one of them)."""
    return (
        int(stats.n_samples),
        tuple(int(c) for c in stats.counts),
        float(np.asarray(stats.diagonal(), dtype=np.float64).sum()),
        float(np.asarray(stats.feature_sum, dtype=np.float64).sum()),
    )


def _row_space(stats: SufficientStatistics, mean: np.ndarray | None, ops: Any) -> RowSpace | None:
    """G (centred on ``mean``) as its row space while the statistics keep it as an n × M factor
    (n <= M / 2): on the host, for features whose G needs no rescaling (see
    :func:`forgetless._lambda_search.select_alpha`); None otherwise."""
    if not stats.factored or ops is not HOST or stats.n_samples == 0:
        return None
    space = RowSpace(stats.factor, mean, stats.n_samples)
    mean_eigenvalue = space.trace() / stats.n_components
    if mean_eigenvalue > 0 and normalising_exponent(mean_eigenvalue):
        return None
    return space


def _few_samples(stats: SufficientStatistics, ops: Any) -> bool:
    """Whether these sums hold at most half as many samples as units, searched on G itself: a
    forget (or a merge) brought them back below M / 2 after G was formed, features far from
    unit scale keep the row space off, or the engine is a device's (:func:`_row_space`: the
    torch engine chose otherwise, by two lattice steps, 42 classes on 1,100 units). A fresh fit on
    the same samples scores lambda on its row space, exactly (below 1,024 samples) or by a
    quadrature that ends at an exact local minimum, so the search on G must be exact too, or a
    forget would choose otherwise (it did, by six lattice steps, with 45 classes of about ten
    samples on 1,300 units)."""
    n, m = stats.n_samples, stats.n_components
    return 0 < 2 * n <= m


DECISIONS = ("auto", "regression", "discriminant")
DISCRIMINANT_MIN_PER_CLASS = 8
"""``decision="auto"`` scores by the discriminant from this many samples per class on average.

Chosen on validation rows of the training subsets for today's default learner (the layer-free
ridge on the encoders' readouts, the orthogonal layer on raw pixels; ``benchmarks/small_data.py
--layers``, six datasets, 3 seeds, 1,500 held-out rows): at 10 per class the discriminant scored
better on four of six (+0.3 to +3.3 points; latin-glyphs and WordNet, where LDA led the
regression by 3.3 and 3.6 points, came within a point of it) and worse on openclipart (-1.9) and
Fashion-MNIST's raw pixels (-0.2), +0.76 points on average; at 5 per class -0.04 on average and
down to -4.1 (openclipart). So classes of about 10 samples on average are scored by the
discriminant, of about 5 by the regression. (The earlier threshold, 15, was chosen the same way
for the orthogonal layer then in use.)"""


def penalised_discriminant(
    coef: np.ndarray, centred_sums: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """LDA whose within-class scatter is penalised by the ridge's lambda, from the ridge solve.

    With centred class means U (M x C), counts N, centred G_c = S_W + U N U^T and the solve
    W = (G_c + lambda I)^-1 U N in hand, LDA with covariance (S_W + lambda I) / (n - C)
    ("penalised discriminant analysis", Hastie, Buja and Tibshirani 1995) scores class k by
    (n - C) [u_k^T A^-1 (h - mean) - u_k^T A^-1 u_k / 2] + log prior_k, A = S_W + lambda I.
    Woodbury's identity gives A^-1 U = W N^-1/2 (I - R)^-1 N^-1/2 with
    R = N^-1/2 U^T W N^-1/2 (C x C, eigenvalues in [0, 1)): one C x C eigendecomposition, no
    second M x M factorisation. Where I - R is singular to rounding (the fit interpolates the
    classes), the discriminant is undefined: None.

    Returns (coef, offsets): scores are (h - mean) @ coef + offsets.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0); y = np.repeat([0, 1, 2], 40)
    >>> H = rng.standard_normal((120, 6)) + np.eye(3, 6)[y]; mean = H.mean(0)
    >>> Y = np.eye(3)[y]; Hc = H - mean; lam = 2.0
    >>> W = np.linalg.solve(Hc.T @ Hc + lam * np.eye(6), Hc.T @ Y)
    >>> coef, offsets = penalised_discriminant(W, Hc.T @ Y, np.array([40.0, 40.0, 40.0]))
    >>> U = np.stack([H[y == k].mean(0) - mean for k in range(3)], 1)
    >>> A = Hc.T @ Hc - (U * 40.0) @ U.T + lam * np.eye(6)  # within-class scatter + lambda I
    >>> bool(np.allclose(coef, 117 * np.linalg.solve(A, U)))
    True
    """
    found = discriminant_transform(centred_sums.T @ coef, counts)
    if found is None:
        return None
    transform, offsets = found
    return coef @ transform, offsets


def discriminant_transform(
    cross: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """(T, b) with discriminant scores = regression scores @ T + b, from K = Q_c^T W (C x C)
    and the class counts (:func:`penalised_discriminant`); None where I - R is singular."""
    counts = np.asarray(counts, dtype=np.float64)
    n, c = float(counts.sum()), counts.size
    if n - c <= 0:
        return None
    root = 1.0 / np.sqrt(counts)
    reduced = root[:, None] * (0.5 * (cross + cross.T)) * root[None, :]
    values, vectors = np.linalg.eigh(np.eye(c) - reduced)
    if values.min() <= 1e-10 * max(1.0, values.max()):
        return None
    inverse = (vectors / values) @ vectors.T  # (I - R)^-1
    transform = (n - c) * root[:, None] * inverse * root[None, :]
    quadratic = np.einsum("kj,jk->k", reduced, inverse) / counts  # diag N^-1/2 R (I-R)^-1 N^-1/2
    return transform, -0.5 * (n - c) * quadratic + np.log(counts / n)


def woodbury_add(P: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(G + H^T H + lambda I)^-1 from P = (G + lambda I)^-1, and the gain P H^T K^-1 with
    K = I + H P H^T (the new weights are W + gain (Y - H W), which needs only the old P: the
    new one suffers the cancellation P - ...).

    One b x b solve for b rows: O(M^2 b) instead of a new O(M^3) factorisation.

    >>> import numpy as np
    >>> H = np.array([[1.0, 2.0]]); P = np.eye(2)
    >>> new, _ = woodbury_add(P, H)
    >>> bool(np.allclose(new, np.linalg.inv(np.eye(2) + H.T @ H)))
    True
    """

    def failed() -> ValueError:
        return ValueError(
            "the recursive least-squares update failed: I + H P H^T is not finite and positive "
            f"definite to rounding (largest |h| = {float(np.abs(H).max(initial=0.0)):.3g}; "
            f"P = (G + alpha I)^-1 reaches {float(np.abs(P).max(initial=0.0)):.3g}): scale the "
            "features down or raise alpha, or use head='ridge', which solves from the sums"
        )

    with np.errstate(over="ignore", invalid="ignore"):  # told below, in words
        PHt = P @ H.T
        K = np.eye(H.shape[0]) + H @ PHt
    if not (np.isfinite(PHt).all() and np.isfinite(K).all()):  # e.g. a tiny alpha: P = I / alpha
        raise failed()
    try:
        gain = linalg.solve(K, PHt.T, assume_a="pos").T  # P H^T (I + H P H^T)^-1
    except linalg.LinAlgError as err:  # e.g. features ~1e80: I is lost to rounding in K
        raise failed() from err
    new = P - gain @ PHt.T
    return 0.5 * (new + new.T), gain


def regularised_solve(stats: SufficientStatistics, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """P = (G + alpha I)^-1 and W = P Q from the statistics, by one Cholesky factorisation
    (W solved directly, not as P @ Q: one rounding less). Exact to float64 rounding."""
    m = stats.n_components
    A = stats.gram
    A[np.diag_indices(m)] += alpha
    try:
        factor = linalg.cho_factor(A, check_finite=False)
    except linalg.LinAlgError as err:
        raise ValueError(
            f"G + {alpha:.3g} I is not positive definite; the statistics are not those of any "
            "data (increase alpha if this comes from rounding)"
        ) from err
    P = linalg.cho_solve(factor, np.eye(m), check_finite=False)
    W = linalg.cho_solve(factor, stats.class_sums, check_finite=False)
    # C order, as a model file gives them back: the same layout, the same bits after a load.
    return np.ascontiguousarray(0.5 * (P + P.T)), np.ascontiguousarray(W)


def _inverse_arrays(head: Any) -> dict[str, np.ndarray]:
    """What a head holding P = (G + lambda I)^-1 and W must save."""
    return {"P": head.P, "W": head.coef_}


# Backward errors a saved P = (G + lambda I)^-1 and the rls head's W = P Q may show against the
# file's sums, (P, W), measured once by a one-off script: for float64 sums <= 1e-13 and 3e-10
# after 1,200 one-row updates at cond 8e12; for sums of float32 products (the head updated from
# float64 rows) <= 1e-8 and 1.5e-6 (digits, M = 100, 54 settings).
_BACKWARD_ERRORS = {False: (1e-9, 1e-7), True: (1e-6, 1e-4)}


def _restore_inverse(
    head: Any,
    arrays: dict[str, np.ndarray],
    stats: SufficientStatistics,
    solves: bool,
    single: bool = False,
) -> None:
    """Install a saved P and W, checked against the sums: P must be (G + lambda I)^-1 and,
    where ``solves`` (the coefficients are the ridge solve, not an order-dependent update),
    W must solve (G + lambda I) W = Q, each to a backward error far above what recursive updates
    leave (``single``: sums of float32 products), far below what arrays of another lambda or
    other sums give."""
    inverse_error, solve_error = _BACKWARD_ERRORS[bool(single)]
    m, c = stats.n_components, stats.n_classes
    P, W = arrays.get("P"), arrays.get("W")
    if P is None or W is None or P.shape != (m, m) or W.shape != (m, c):
        raise ValueError(f"the {head.name} head needs arrays P ({m}, {m}) and W ({m}, {c})")
    if not (np.all(np.isfinite(P)) and np.all(np.isfinite(W))):
        raise ValueError(f"the {head.name} head's arrays are not finite")
    if not np.allclose(P, P.T, rtol=1e-10, atol=0.0):
        raise ValueError(f"the {head.name} head's P is not symmetric")
    A = stats.gram
    A[np.diag_indices(m)] += head.alpha_
    size = float(np.linalg.norm(A))
    probe = np.random.default_rng(0).standard_normal(m)
    solved = P @ probe
    if not _backward_error(A, solved, probe, size) <= inverse_error:  # NaN fails too
        raise ValueError(
            f"the {head.name} head's P is not (G + alpha I)^-1 for these sums and alpha "
            f"{head.alpha_:g}"
        )
    if solves and not _backward_error(A, W, stats.class_sums, size) <= solve_error:
        raise ValueError(
            f"the {head.name} head's W does not solve (G + alpha I) W = Q for these sums and "
            f"alpha {head.alpha_:g}"
        )
    head.P = np.ascontiguousarray(P, dtype=np.float64)
    head.coef_ = np.ascontiguousarray(W, dtype=np.float64)
    head.intercept_ = np.zeros(c)


def _backward_error(A: np.ndarray, X: np.ndarray, B: np.ndarray, size: float) -> float:
    """||A X - B|| / (||A|| ||X|| + ||B||): how far X is from solving A X = B, relative to
    the sizes involved (rounding gives about eps; ``size`` is ||A||)."""
    scale = size * float(np.linalg.norm(X)) + float(np.linalg.norm(B))
    return float(np.linalg.norm(A @ X - B)) / scale if scale > 0 else 0.0


def _fixed_alpha(name: str, alpha: Any) -> float:
    if isinstance(alpha, str) or isinstance(alpha, bool) or not alpha > 0:
        raise ValueError(f"head={name!r} needs a fixed alpha > 0, got {alpha!r}")
    return float(alpha)


class RLSHead(Head):
    """Recursive least squares: the ridge solution (no intercept) kept current batch by batch.

    Holds P = (G + lambda I)^-1 and W = P Q. Adding b rows costs O(M^2 b) (Woodbury) instead of
    a new O(M^3) factorisation, so streams of small batches stay cheap. Removing rows (forget,
    a class removal) and merging re-derive P and W from the statistics, which is exact; a
    Woodbury downdate would lose precision. lambda is fixed.
    """

    name = "rls"
    PARAMS = ("alpha",)
    recursive = True
    needs_fixed_alpha = True
    block = 256  # rows per Woodbury step: keeps the b x b solve small next to the M x M update

    def __init__(self, alpha: float = 1.0, n_components: int = 0) -> None:
        self.alpha = alpha
        self.alpha_ = _fixed_alpha(self.name, alpha)
        self.P = np.eye(n_components) / self.alpha_
        self.coef_ = np.zeros((n_components, 0))
        self.intercept_ = np.zeros(0)

    @classmethod
    def from_params(cls, params: dict[str, Any], n_components: int) -> RLSHead:
        return cls(params["alpha"], n_components)

    def insert_classes(self, positions: np.ndarray) -> None:
        self.coef_ = np.insert(self.coef_, positions, 0.0, axis=1)
        self.intercept_ = np.zeros(self.coef_.shape[1])

    def observe(self, H: np.ndarray, y_index: np.ndarray) -> None:
        """Add rows H (with class column indices) in blocks of at most ``block`` rows."""
        for start in range(0, H.shape[0], self.block):
            Hb, yb = H[start : start + self.block], y_index[start : start + self.block]
            Y = np.zeros((Hb.shape[0], self.coef_.shape[1]))
            Y[np.arange(Hb.shape[0]), yb] = 1.0
            self.P, gain = woodbury_add(self.P, Hb)
            self.coef_ = self.coef_ + gain @ (Y - Hb @ self.coef_)

    def fit(self, stats: SufficientStatistics, ops: HostLinalg = HOST) -> RLSHead:
        """Re-derive P and W from the statistics (after a forget, merge or class removal)."""
        self.P, self.coef_ = regularised_solve(stats, self.alpha_)
        self.intercept_ = np.zeros(stats.n_classes)
        return self

    def arrays(self) -> dict[str, np.ndarray]:
        return _inverse_arrays(self)

    def restore(
        self, arrays: dict[str, np.ndarray], stats: SufficientStatistics, single: bool = False
    ) -> None:
        _restore_inverse(self, arrays, stats, solves=True, single=single)


class NCMHead(Head):
    """Cosine nearest class mean (SimpleCIL): score_c = cos(h, mu_c)."""

    name = "ncm"
    linear = False  # rows are normalised before the product

    def fit(self, stats: SufficientStatistics, ops: HostLinalg = HOST) -> NCMHead:
        means = stats.class_sums / np.maximum(stats.counts, 1)
        norms = np.linalg.norm(means, axis=0)
        self.coef_ = means / np.where(norms > 0, norms, 1.0)
        self.intercept_ = np.zeros(stats.n_classes)
        return self

    def decision_function(self, H: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            norms = np.linalg.norm(H, axis=1, keepdims=True)
        far = ~np.isfinite(norms[:, 0]) & np.isfinite(H).all(axis=1)
        if far.any():  # the squares overflowed (rows beyond ~1e154): scale those rows first
            H = H.copy()
            H[far] /= np.abs(H[far]).max(axis=1, keepdims=True)
            norms[far] = np.linalg.norm(H[far], axis=1, keepdims=True)
        return (H @ self.coef_) / np.where(norms > 0, norms, 1.0)


class NoWithinClassScatterWarning(UserWarning):
    """LDA has no within-class spread to estimate a covariance from (one sample per class)."""


class LDAHead(Head):
    """Linear discriminant analysis with a shared covariance, shrunk towards a scaled identity.

    Sigma = (G - sum_c n_c mu_c mu_c^T) / (n - C); shrinkage ``"oas"`` (default) or a number in
    [0, 1]. Scores mu_c^T S^-1 h - mu_c^T S^-1 mu_c / 2 + log prior_c. With no within-class
    spread (one sample per class, or duplicates) there is no covariance to estimate: the head
    then uses the identity (nearest class mean in Euclidean distance) and says so, instead of
    inverting rounding residue.
    """

    name = "lda"
    PARAMS = ("shrinkage",)

    def __init__(self, shrinkage: float | str = "oas") -> None:
        self.shrinkage = shrinkage
        self.shrinkage_: float | None = None

    def fit(self, stats: SufficientStatistics, ops: HostLinalg = HOST) -> LDAHead:
        counts = stats.counts.astype(np.float64)
        n, m = float(counts.sum()), stats.n_components
        means = stats.class_sums / np.maximum(counts, 1.0)
        gram = stats.gram
        scatter = gram - (stats.class_sums * (1.0 / np.maximum(counts, 1.0))) @ stats.class_sums.T
        # Within-class spread below the rounding of G's entries is no spread at all.
        floor = 64 * np.finfo(np.float64).eps * m * max(float(np.abs(np.diag(gram)).max()), 1e-300)
        if n - counts.shape[0] < 1 or float(np.trace(scatter)) <= floor:
            warnings.warn(
                "LDA: no within-class spread to estimate a covariance from (one sample per "
                "class, rows alike, or rows so far from their mean that centring leaves only "
                "rounding: then subtract a typical row from every input); using the identity "
                "covariance, i.e. nearest class mean",
                NoWithinClassScatterWarning,
                stacklevel=2,
            )
            self.shrinkage_ = 1.0
            shrunk = np.eye(m)
        else:
            cov = scatter / (n - counts.shape[0])
            rho = oas_shrinkage(cov, int(n)) if self.shrinkage == "oas" else float(self.shrinkage)
            target = float(np.trace(cov)) / m
            shrunk = (1.0 - rho) * cov
            shrunk[np.diag_indices(m)] += rho * target
            if rho == 0.0:  # no shrinkage: a ridge of at least the scatter's rounding level
                shrunk[np.diag_indices(m)] += max(1e-10 * target, floor / (n - counts.shape[0]))
            self.shrinkage_ = rho
        self.coef_ = ridge_solve(shrunk, means, 0.0, hint="use shrinkage closer to 1")
        prior = np.log(np.maximum(counts, 1.0) / max(n, 1.0))
        self.intercept_ = -0.5 * np.einsum("mc,mc->c", means, self.coef_) + prior
        return self


OWM_ORDER_ERROR = (
    "head='owm' cannot merge, forget or change its settings after fitting: its weights depend "
    "on the order in which tasks were learned, not only on the summed statistics; use "
    "head='ridge' or 'rls' for that"
)


class OWMHead(Head):
    """Orthogonal weight modification (IF2Net / OWM style), a comparison head.

    Each ``partial_fit`` call is one task. The task's update of the output weights is confined
    to the (soft) orthogonal complement of the earlier tasks' feature subspace, held as the
    projector ``A = alpha (G_old + alpha I)^-1`` (eigenvalues near 0 on directions the old
    features span, 1 where they are silent)::

        dW = A dV,  dV = argmin ||Y_t - H_t W - H_t A dV||^2 + alpha ||dV||^2

    so the outputs of earlier tasks' inputs barely move (exactly not, as alpha -> 0), whatever
    the new task asks. On the first task ``A = I`` and the head is plain ridge. ``P`` holds
    ``(G_old + alpha I)^-1``.

    Unlike ridge/RLS, the weights depend on the order of the tasks, not only on the summed
    statistics (``order_free = False``), so learners with this head cannot merge or forget and
    cannot be rebuilt from sums; a fixed ``alpha > 0`` is required.
    """

    name = "owm"
    PARAMS = ("alpha",)
    recursive = True
    order_free = False
    needs_fixed_alpha = True

    def __init__(self, alpha: float = 1.0, n_components: int = 0) -> None:
        self.alpha = alpha
        self.alpha_ = _fixed_alpha(self.name, alpha)
        self.P = np.eye(n_components) / self.alpha_
        self.coef_ = np.zeros((n_components, 0))
        self.intercept_ = np.zeros(0)
        self._task_gram = np.zeros((n_components, n_components))
        self._task_sums = np.zeros((n_components, 0))

    @classmethod
    def from_params(cls, params: dict[str, Any], n_components: int) -> OWMHead:
        return cls(params["alpha"], n_components)

    def insert_classes(self, positions: np.ndarray) -> None:
        self.coef_ = np.insert(self.coef_, positions, 0.0, axis=1)
        self.intercept_ = np.zeros(self.coef_.shape[1])
        self._task_sums = np.zeros(self.coef_.shape)  # a batch starts: nothing observed yet

    def observe(self, H: np.ndarray, y_index: np.ndarray) -> None:
        """Accumulate the current task's sums; :meth:`end_batch` applies them."""
        self._task_gram += H.T @ H
        for c in np.unique(y_index):
            self._task_sums[:, c] += H[y_index == c].sum(axis=0)

    def end_batch(self) -> None:
        """Apply the task accumulated by :meth:`observe`, then protect its subspace."""
        m = self.P.shape[0]
        G_t, Q_t = self._task_gram, self._task_sums
        A = self.alpha_ * self.P  # soft projector onto the old features' complement
        A = 0.5 * (A + A.T)
        system = A @ G_t @ A
        system = 0.5 * (system + system.T)
        system[np.diag_indices(m)] += self.alpha_
        rhs = A @ (Q_t - G_t @ self.coef_)
        failed = ValueError(
            f"the OWM update failed: its systems are not finite or singular to rounding with "
            f"alpha = {self.alpha_:.3g} (largest diagonal of the batch's Gram matrix "
            f"{float(np.diag(G_t).max(initial=0.0)):.3g}); use a larger alpha"
        )
        with np.errstate(over="ignore", invalid="ignore"):  # told below, in words
            step = np.eye(m) + G_t @ self.P
        if not (np.isfinite(system).all() and np.isfinite(rhs).all() and np.isfinite(step).all()):
            raise failed
        try:
            dV = linalg.solve(system, rhs, assume_a="pos")
            # (G_old + G_t + alpha I)^-1 = P (I + G_t P)^-1
            P = linalg.solve(step.T, self.P.T).T
        except linalg.LinAlgError as err:  # alpha lost to rounding beside the features' scale
            raise failed from err
        self.coef_ = self.coef_ + A @ dV
        self.P = np.ascontiguousarray(0.5 * (P + P.T))
        self._task_gram = np.zeros((m, m))
        self._task_sums = np.zeros(self.coef_.shape)

    def fit(self, stats: SufficientStatistics, ops: HostLinalg = HOST) -> OWMHead:
        raise ValueError(OWM_ORDER_ERROR)

    def arrays(self) -> dict[str, np.ndarray]:
        return _inverse_arrays(self)

    def restore(
        self, arrays: dict[str, np.ndarray], stats: SufficientStatistics, single: bool = False
    ) -> None:
        _restore_inverse(self, arrays, stats, solves=False, single=single)


HEADS: dict[str, type[Head]] = {
    head.name: head for head in (RidgeHead, RLSHead, NCMHead, LDAHead, OWMHead)
}
"""The one registry: ``head=`` name -> class."""


def make_head(params: dict[str, Any], n_components: int) -> Head:
    """The head named by ``params["head"]``, built from the learner's parameters."""
    name = params["head"]
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; choose one of {', '.join(HEADS)}")
    return HEADS[name].from_params(params, n_components)


def head_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters the named head is built from (to notice when they change)."""
    head = HEADS.get(params["head"])
    return {"head": params["head"], **{k: params[k] for k in (head.PARAMS if head else ())}}
