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

import numpy as np
from scipy import linalg

from forgetless._lambda_search import GCVPoint, select_alpha
from forgetless.linalg import HOST, HostLinalg, ridge_solve
from forgetless.statistics import SufficientStatistics


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
