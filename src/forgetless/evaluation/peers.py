"""Peers' own procedures on the same features, for side-by-side runs (``forgetless run``).

Each peer runs as its authors' public code does (checked against direct transcriptions of it by
``benchmarks/peers_agreement.py``), with one interface: ``partial_fit(X, y)`` per task or batch,
``decision_function`` and ``predict`` over the classes seen so far. :func:`make_peer` builds one
by name (``PEERS``): ``ranpac``, ``randumb``, ``klda``, ``klda-e``, ``fly-cl``, ``acil``,
``slda``; the width is the runner's ``n_components``, or the peer's own default.

:class:`RanPAC` is the analytic head of RanPAC (McDonnell et al., NeurIPS 2023) as its public
code runs it (``RanPAC.py``: ``setup_RP``, ``replace_fc``, ``optimise_ridge_parameter``), without
its first-task fine-tuning of the encoder (forgetless works on frozen features):

- a random layer ``W ~ N(0, 1)`` (d x M, not scaled), ReLU, no bias, no intercept;
- after each task: ``G += H^T H`` and ``Q += H^T Y`` in float32 (one-hot ``Y``);
- lambda from ``10^-8 .. 10^8`` (17 values), each scored by the mean squared error on the last
  20 % of the **current task's** rows (shuffled) of a ridge fit on its first 80 %:
  ``solve(G_80 + lambda I, Q_80)``, float32;
- then ``W = solve(G + lambda I, Q)`` on all the sums, float32; predictions are the argmax of
  ``relu(X W_rand) W`` over the classes seen so far.

The solves are LU (``scipy.linalg.solve``, like ``torch.linalg.solve``). Rows are projected in
chunks, and only the held-out fifth of a task is kept in memory while its lambda is chosen.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((300, 8)); y = (X[:, 0] > 0).astype(int) + 2 * (X[:, 1] > 0)
>>> model = RanPAC(n_components=200, seed=0).partial_fit(X[y < 2], y[y < 2])
>>> model = model.partial_fit(X[y >= 2], y[y >= 2])
>>> model.classes_.tolist(), float((model.predict(X) == y).mean()) > 0.8
([0, 1, 2, 3], True)
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from forgetless.linalg import numpy_blas_quiet, oas_shrinkage_of_rows

RANPAC_LAMBDAS = 10.0 ** np.arange(-8, 9)
"""RanPAC's candidate ridge penalties (17 values, one per decade)."""


class RanPAC:
    """RanPAC's random-projection ridge head with its own lambda search (see the module)."""

    takes_width = True

    def __init__(self, n_components: int = 10_000, seed: int = 0, chunk_size: int = 2048) -> None:
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.n_components, self.seed, self.chunk_size = int(n_components), int(seed), chunk_size
        self.classes_ = np.array([])
        self.W_rand: np.ndarray | None = None
        self.G: np.ndarray | None = None
        self.Q: np.ndarray | None = None
        self.coef_: np.ndarray | None = None
        self.alpha_: float | None = None
        self.alphas_: list[float] = []  # the lambda chosen after each task

    def _project(self, X: np.ndarray) -> np.ndarray:
        H = np.asarray(X, dtype=np.float32) @ self.W_rand
        return np.maximum(H, 0.0, out=H)

    def _chunks(self, X: np.ndarray, rows: np.ndarray):
        for start in range(0, rows.size, self.chunk_size):
            take = rows[start : start + self.chunk_size]
            yield take, self._project(X[take])

    def partial_fit(self, X: np.ndarray, y: np.ndarray) -> RanPAC:
        """One task: its sums join G and Q, lambda is chosen on this task's rows, W is solved."""
        X, y = np.asarray(X), np.asarray(y)
        if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] < 1:
            raise ValueError("RanPAC needs X (n, d) with n >= 1 rows and one label per row")
        m = self.n_components
        if self.W_rand is None:
            rng = np.random.default_rng(self.seed)
            self.W_rand = rng.standard_normal((X.shape[1], m), dtype=np.float32)
            self.G = np.zeros((m, m), dtype=np.float32)
            self.Q = np.zeros((m, 0), dtype=np.float32)
        classes = np.union1d(self.classes_, y) if self.classes_.size else np.unique(y)
        if classes.size > self.classes_.size:  # new columns, zero for the old sums
            grown = np.zeros((m, classes.size), dtype=np.float32)
            grown[:, np.searchsorted(classes, self.classes_)] = self.Q
            self.Q, self.classes_ = grown, classes
        index = np.searchsorted(classes, y)
        # RanPAC's loader shuffles the task; the first 80 % fit, the last 20 % score.
        order = np.random.default_rng([self.seed, len(self.alphas_)]).permutation(y.size)
        n_fit = int(y.size * 0.8)
        G_fit = np.zeros((m, m), dtype=np.float32)
        Q_fit = np.zeros((m, classes.size), dtype=np.float32)
        held: list[tuple[np.ndarray, np.ndarray]] = []
        for take, H in self._chunks(X, order[:n_fit]):
            G_fit += H.T @ H
            Q_fit += H.T @ _one_hot(index[take], classes.size)
        for take, H in self._chunks(X, order[n_fit:]):
            held.append((H, _one_hot(index[take], classes.size)))
        H_val = np.concatenate([h for h, _ in held])
        Y_val = np.concatenate([t for _, t in held])
        # The factorisations are scipy's: numpy's BLAS threads kept quiet meanwhile, as the
        # library's own heads do (forgetless.linalg.numpy_blas_quiet), so both run at full speed.
        with numpy_blas_quiet():
            self.alpha_ = _ranpac_lambda(G_fit, Q_fit, H_val, Y_val)
        self.alphas_.append(self.alpha_)
        self.G += G_fit
        self.G += H_val.T @ H_val
        self.Q += Q_fit
        self.Q += H_val.T @ Y_val
        with numpy_blas_quiet():
            self.coef_ = _solve(self.G, self.Q, self.alpha_)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((X.shape[0], self.classes_.size), dtype=np.float32)
        for take, H in self._chunks(X, np.arange(X.shape[0])):
            out[take] = H @ self.coef_
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(np.asarray(X)).argmax(axis=1)]


def _one_hot(index: np.ndarray, n_classes: int) -> np.ndarray:
    Y = np.zeros((index.size, n_classes), dtype=np.float32)
    Y[np.arange(index.size), index] = 1.0
    return Y


def _solve(G: np.ndarray, Q: np.ndarray, lam: float) -> np.ndarray:
    """``solve(G + lam I, Q)`` in float32 by LU (LAPACK getrf/getrs, as RanPAC's
    ``torch.linalg.solve``; scipy's ``solve`` adds a condition estimate and, in recent
    versions, runs several times slower)."""
    A = G.copy()
    A[np.diag_indices_from(A)] += np.float32(lam)
    with warnings.catch_warnings():  # RanPAC does not check the condition number either
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        factor = linalg.lu_factor(A, check_finite=False, overwrite_a=True)
        return linalg.lu_solve(factor, Q, check_finite=False)


def _ranpac_lambda(G: np.ndarray, Q: np.ndarray, H_val: np.ndarray, Y_val: np.ndarray) -> float:
    """RanPAC's ``optimise_ridge_parameter``: the lambda of lowest held-out MSE (first on ties)."""
    losses = []
    for lam in RANPAC_LAMBDAS:
        W = _solve(G, Q, float(lam))
        losses.append(float(np.mean((H_val @ W - Y_val) ** 2)))
    return float(RANPAC_LAMBDAS[int(np.argmin(losses))])


# ---------------------------------------------------------------------------------------------
# The other peers. Each takes cached features (the encoder's, as they come: their own code does
# not normalise them), one ``partial_fit`` per task (or stream batch), scores only the classes
# seen so far, and draws its random parts from ``numpy.random.default_rng`` of its seed
# (deterministic for a seed).


def _checked(model, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The checks RanPAC makes, plus finite values and the width of the first batch."""
    X, y = np.asarray(X), np.asarray(y)
    name = type(model).__name__
    if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] < 1:
        raise ValueError(f"{name} needs X (n, d) with n >= 1 rows and one label per row")
    if not np.issubdtype(X.dtype, np.number) or not np.isfinite(X).all():
        raise ValueError(f"{name} needs finite numeric features")
    d = getattr(model, "n_features_in_", None)
    if d is not None and X.shape[1] != d:
        raise ValueError(f"{name} was fitted on {d} features, got {X.shape[1]}")
    return X, y


def _check_width(n_components: int) -> int:
    if int(n_components) < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components}")
    return int(n_components)


def _grow(classes: np.ndarray, y: np.ndarray, *arrays: np.ndarray) -> tuple:
    """The sorted union of the known classes and ``y``, and each per-class array (classes on
    axis 0) re-laid on it with zeros for the new classes."""
    grown = np.union1d(classes, y) if classes.size else np.unique(y)
    where = np.searchsorted(grown, classes)
    out = []
    for a in arrays:
        b = np.zeros((grown.size, *a.shape[1:]), dtype=a.dtype)
        b[where] = a
        out.append(b)
    return (grown, *out)


def _check_gamma(gamma: object) -> None:
    """The RBF width of RanDumb and KLDA: ``"scale"`` or a positive number."""
    if gamma != "scale" and not (isinstance(gamma, (int, float)) and gamma > 0):
        raise ValueError(f'gamma must be "scale" or > 0, got {gamma!r}')


def _scale_gamma(X: np.ndarray) -> float:
    """scikit-learn's ``gamma="scale"`` of ``RBFSampler``: 1 / (d * Var(X)) over all entries."""
    var = float(np.asarray(X, dtype=np.float64).var())
    return 1.0 / (X.shape[1] * var) if var != 0 else 1.0


def _draw_rff(rng: np.random.Generator, d: int, m: int, gamma: float) -> tuple:
    """Random Fourier features of ``exp(-gamma |x - x'|^2)`` (Rahimi & Recht):
    ``W ~ N(0, 2 gamma)``, ``b ~ U[0, 2 pi)``; features ``sqrt(2 / m) cos(x W + b)``."""
    W = np.sqrt(2.0 * gamma) * rng.standard_normal((d, m))
    b = rng.uniform(0.0, 2.0 * np.pi, size=m)
    return W, b


def _rff(X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    H = X @ W
    H += b
    np.cos(H, out=H)
    H *= np.sqrt(2.0 / W.shape[1])
    return H


def _spd_solve(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A^-1 B`` by Cholesky, least squares when ``A`` is not positive definite."""
    try:
        return linalg.cho_solve(linalg.cho_factor(A, check_finite=False), B, check_finite=False)
    except linalg.LinAlgError:
        return linalg.lstsq(A, B, check_finite=False)[0]


class RanDumb:
    """RanDumb (Prabhu et al. 2024, "RanDumb: a simple approach that questions the efficacy of
    continual representation learning"): RBF random Fourier features, then LDA with OAS
    shrinkage, as its public code runs it (scikit-learn ``RBFSampler(gamma="scale")`` and
    ``LinearDiscriminantAnalysis(solver="lsqr", covariance_estimator=OAS())``), streamed:

    - ``gamma = 1 / (d Var(X))`` of the first batch (their code sets it on all the training
      data; a continual learner has only the first batch), ``m`` features;
    - per class, the covariance of its features shrunk by OAS; the shared covariance is their
      average weighted by the class frequencies, the scores are LDA's with log priors.

    Kept: ``sum_c (1 - rho_c) G_c`` (m x m), class sums, counts and sums of squares, so a task's
    call is exact: the model after each call equals their offline fit on all rows seen so far
    when each class arrives in one call (class-incremental). A class seen again keeps the
    shrinkage ``rho_c`` of its first call (the rest stays exact): recomputing it needs each
    class's own m x m scatter (``8 m^2`` bytes per class). In a stream of small batches
    (online-blurry, 16 rows) a class's first call often holds one row, so ``rho_c`` = 1 for
    good and its scatter never joins the covariance, which costs it accuracy there (several
    points on digits). The project's tables run it class-incrementally, where this does not
    arise. Their default
    width is 10,000 (25,000 in their best runs): the m x m float64 covariance costs ``8 m^2``
    bytes.
    """

    takes_width = True

    def __init__(
        self,
        n_components: int = 10_000,
        seed: int = 0,
        gamma: float | str = "scale",
        chunk_size: int = 2048,
    ) -> None:
        self.n_components, self.seed = _check_width(n_components), int(seed)
        _check_gamma(gamma)
        self.gamma, self.chunk_size = gamma, int(chunk_size)
        self.classes_ = np.array([])
        self.n_features_in_: int | None = None

    def partial_fit(self, X: np.ndarray, y: np.ndarray) -> RanDumb:
        """One batch: each class's features and OAS shrinkage join the sums; LDA is re-solved."""
        X, y = _checked(self, X, y)
        X = X.astype(np.float64, copy=False)
        m = self.n_components
        if self.n_features_in_ is None:
            self.gamma_ = _scale_gamma(X) if self.gamma == "scale" else float(self.gamma)
            rng = np.random.default_rng(self.seed)
            self.W_rand, self.b_rand = _draw_rff(rng, X.shape[1], m, self.gamma_)
            self.B = np.zeros((m, m))
            self.sums_, self.counts_ = np.zeros((0, m)), np.zeros(0)
            self.sq_, self.rho_ = np.zeros(0), np.zeros(0)
            self.n_features_in_ = X.shape[1]
        self.classes_, self.sums_, self.counts_, self.sq_, self.rho_ = _grow(
            self.classes_, y, self.sums_, self.counts_, self.sq_, self.rho_
        )
        for k in np.unique(np.searchsorted(self.classes_, y)):
            H = self._features(X[y == self.classes_[k]])
            if self.counts_[k] == 0:  # a new class: OAS on its own centred features
                self.rho_[k] = oas_shrinkage_of_rows(H - H.mean(axis=0))
            self.B += (1.0 - self.rho_[k]) * (H.T @ H)
            self.sums_[k] += H.sum(axis=0)
            self.counts_[k] += H.shape[0]
            self.sq_[k] += float(np.sum(H**2))
        self._solve()
        return self

    def _features(self, X: np.ndarray) -> np.ndarray:
        return _rff(X, self.W_rand, self.b_rand)

    def _solve(self) -> None:
        n, m = self.counts_.sum(), self.n_components
        sums, counts, rho = self.sums_, self.counts_, self.rho_
        scaled = sums * np.sqrt((1.0 - rho) / counts)[:, None]
        trace = np.sum(rho * (self.sq_ - np.sum(sums**2, axis=1) / counts)) / m
        cov = self.B - scaled.T @ scaled
        cov[np.diag_indices_from(cov)] += trace
        cov /= n
        means = sums / counts[:, None]
        self.coef_ = _spd_solve(cov, means.T)  # m x C
        self.intercept_ = -0.5 * np.sum(means.T * self.coef_, axis=0) + np.log(counts / n)
        self.covariance_ = cov

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        out = np.empty((X.shape[0], self.classes_.size))
        for start in range(0, X.shape[0], self.chunk_size):
            rows = slice(start, start + self.chunk_size)
            out[rows] = self._features(X[rows]) @ self.coef_ + self.intercept_
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]


class KLDA:
    """KLDA and KLDA-E (Momeni, Mazumder & Liu, AAAI 2025, "Continual learning using a
    kernel-based method over foundation models"), as their public code runs it:

    - RBF random Fourier features ``sqrt(2 / m) cos(x W + b)``, ``W ~ N(0, 2 gamma)``;
    - per class (in class order within a call): running class mean, then the scatter of the
      class's rows about its **updated** mean joins one shared, unnormalised scatter matrix;
    - ``pinv`` of the scatter (cut-off ``1e-15`` of the largest singular value), scores the
      negative Mahalanobis distance to each class mean; KLDA-E sums the softmax of the scores
      of ``n_ensembles`` independent draws (their default 5).

    Their ``sigma`` (kernel width) is tuned per encoder on unnormalised features (1e-2 for
    paraphrase-MiniLM, 1e-4 for BART-base); the default here is scikit-learn's ``"scale"``
    rule, ``1 / (d Var(X))`` of the first batch (``Var`` over all entries, so it includes
    the spread of the features' means: ``gamma E|x - x'|^2`` is at most 2, 0.74 on digits'
    first task). Float64 (theirs is
    float32 on a GPU). Scores drop the term ``h^T S^+ h``, the same for every class.
    Their default width is 5,000 per draw.
    """

    takes_width = True

    def __init__(
        self,
        n_components: int = 5_000,
        seed: int = 0,
        gamma: float | str = "scale",
        n_ensembles: int = 1,
        rcond: float = 1e-15,
        chunk_size: int = 2048,
    ) -> None:
        self.n_components, self.seed = _check_width(n_components), int(seed)
        _check_gamma(gamma)
        if int(n_ensembles) < 1:
            raise ValueError(f"n_ensembles must be >= 1, got {n_ensembles}")
        self.gamma, self.n_ensembles = gamma, int(n_ensembles)
        self.rcond, self.chunk_size = float(rcond), int(chunk_size)
        self.classes_ = np.array([])
        self.n_features_in_: int | None = None

    def partial_fit(self, X: np.ndarray, y: np.ndarray) -> KLDA:
        """One batch, class by class, into every draw's means and scatter; then the pinv."""
        X, y = _checked(self, X, y)
        X = X.astype(np.float64, copy=False)
        m = self.n_components
        if self.n_features_in_ is None:
            self.gamma_ = _scale_gamma(X) if self.gamma == "scale" else float(self.gamma)
            self.draws_ = []
            for i in range(self.n_ensembles):
                W, b = _draw_rff(np.random.default_rng([self.seed, i]), X.shape[1], m, self.gamma_)
                self.draws_.append({"W": W, "b": b, "scatter": np.zeros((m, m))})
            self.means_, self.counts_ = np.zeros((self.n_ensembles, 0, m)), np.zeros(0)
            self.n_features_in_ = X.shape[1]
        means = np.moveaxis(self.means_, 1, 0)
        self.classes_, means, self.counts_ = _grow(self.classes_, y, means, self.counts_)
        self.means_ = np.moveaxis(means, 0, 1).copy()
        for k in np.unique(np.searchsorted(self.classes_, y)):
            rows = X[y == self.classes_[k]]
            before, n = self.counts_[k], rows.shape[0]
            self.counts_[k] += n
            for i, draw in enumerate(self.draws_):
                H = _rff(rows, draw["W"], draw["b"])
                mean = (self.means_[i, k] * before + H.sum(axis=0)) / self.counts_[k]
                self.means_[i, k] = mean
                H -= mean
                draw["scatter"] += H.T @ H
        for i, draw in enumerate(self.draws_):
            pinv = np.linalg.pinv(draw["scatter"], rcond=self.rcond, hermitian=True)
            M = self.means_[i]
            P = pinv @ M.T  # m x C
            draw["coef"] = 2.0 * P
            draw["intercept"] = -np.sum(M.T * P, axis=0)
        return self

    def _scores(self, X: np.ndarray, draw: dict) -> np.ndarray:
        return _rff(X, draw["W"], draw["b"]) @ draw["coef"] + draw["intercept"]

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """One draw: ``-|h - mu_c|^2_{S^+}`` up to a per-row constant; several: the sum of their
        softmax probabilities (what KLDA-E takes the argmax of)."""
        X = np.asarray(X, dtype=np.float64)
        out = np.zeros((X.shape[0], self.classes_.size))
        for start in range(0, X.shape[0], self.chunk_size):
            rows = slice(start, start + self.chunk_size)
            if self.n_ensembles == 1:
                out[rows] = self._scores(X[rows], self.draws_[0])
                continue
            for draw in self.draws_:
                s = self._scores(X[rows], draw)
                s = np.exp(s - s.max(axis=1, keepdims=True))
                out[rows] += s / s.sum(axis=1, keepdims=True)
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]


FLY_CL_RIDGES = 10.0 ** np.arange(6, 10)
"""Fly-CL's ridge candidates in its published runs (``--ridge_lower 6 --ridge_upper 10``)."""


class FlyCL:
    """Fly-CL (ICLR 2026, "Fly-CL: a fly-inspired framework for enhancing efficient decorrelation
    and reduced training time in pre-trained model-based continual representation learning"),
    as its public code and published runs set it:

    - a sparse random projection ``m x d``: each of the ``m`` rows has ``synaptic_degree``
      (300; all ``d`` when ``d`` is smaller) N(0, 1) weights on distinct random inputs;
    - per sample, only the largest ``int(m * coding_level)`` (30 %) projected values are kept
      (winner-take-all; no other non-linearity);
    - float32 ``G += H^T H``, ``Q += H^T Y``; per task, the ridge of lowest GCV on the **current
      task's** features alone (its SVD; candidates 10^6..10^9), then a Cholesky solve of
      ``G + ridge I``.

    The projection is held dense (same products; on a CPU a dense BLAS product beats a sparse
    one at these sizes). Their default width is 10,000.
    """

    takes_width = True

    def __init__(
        self,
        n_components: int = 10_000,
        seed: int = 0,
        synaptic_degree: int = 300,
        coding_level: float = 0.3,
        ridges: np.ndarray = FLY_CL_RIDGES,
        chunk_size: int = 2048,
    ) -> None:
        self.n_components, self.seed = _check_width(n_components), int(seed)
        if int(synaptic_degree) < 1 or not 0 < coding_level <= 1:
            raise ValueError("synaptic_degree must be >= 1 and 0 < coding_level <= 1")
        self.synaptic_degree, self.coding_level = int(synaptic_degree), float(coding_level)
        self.ridges = np.asarray(ridges, dtype=np.float64)
        if self.ridges.ndim != 1 or self.ridges.size < 1 or not (self.ridges > 0).all():
            raise ValueError("ridges must be a non-empty list of positive values")
        self.k = max(1, int(self.n_components * self.coding_level))
        self.chunk_size = int(chunk_size)
        self.classes_ = np.array([])
        self.n_features_in_: int | None = None
        self.alphas_: list[float] = []

    def _features(self, X: np.ndarray) -> np.ndarray:
        H = np.asarray(X, dtype=np.float32) @ self.P
        m, k = H.shape[1], self.k
        if k < m:  # keep the k largest of each row, zero the rest
            drop = np.argpartition(H, m - k, axis=1)[:, : m - k]
            np.put_along_axis(H, drop, 0.0, axis=1)
        return H

    def partial_fit(self, X: np.ndarray, y: np.ndarray) -> FlyCL:
        """One task: sums join G and Q, the ridge is chosen by GCV on this task, W solved."""
        X, y = _checked(self, X, y)
        m = self.n_components
        if self.n_features_in_ is None:
            d = X.shape[1]
            rng = np.random.default_rng(self.seed)
            degree = min(self.synaptic_degree, d)
            self.P = np.zeros((d, m), dtype=np.float32)
            for unit in range(m):
                inputs = rng.permutation(d)[:degree]
                self.P[inputs, unit] = rng.standard_normal(degree, dtype=np.float32)
            self.G = np.zeros((m, m), dtype=np.float32)
            self.Q = np.zeros((0, m), dtype=np.float32)
            self.n_features_in_ = d
        self.classes_, self.Q = _grow(self.classes_, y, self.Q)
        H = np.concatenate(
            [self._features(X[s : s + self.chunk_size]) for s in range(0, len(y), self.chunk_size)]
        )
        Y = _one_hot(np.searchsorted(self.classes_, y), self.classes_.size)
        self.G += H.T @ H
        self.Q += Y.T @ H
        self.alpha_ = _gcv_ridge(H, Y, self.ridges)
        self.alphas_.append(self.alpha_)
        A = self.G.copy()
        A[np.diag_indices_from(A)] += np.float32(self.alpha_)
        factor = linalg.cho_factor(A, check_finite=False, overwrite_a=True)
        self.coef_ = linalg.cho_solve(factor, self.Q.T, check_finite=False)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        out = np.empty((X.shape[0], self.classes_.size), dtype=np.float32)
        for start in range(0, X.shape[0], self.chunk_size):
            rows = slice(start, start + self.chunk_size)
            out[rows] = self._features(X[rows]) @ self.coef_
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]


def _gcv_ridge(H: np.ndarray, Y: np.ndarray, ridges: np.ndarray) -> float:
    """Fly-CL's ``select_ridge_parameter``: from the thin SVD of this task's ``H``,
    ``GCV = (|Y - Y_hat|^2 / n) / (1 - df / n)^2`` for each ridge; the lowest (first on ties)."""
    U, s, _ = linalg.svd(H, full_matrices=False, check_finite=False)
    s2 = s.astype(np.float64) ** 2
    UtY = U.T @ Y
    n = H.shape[0]
    scores = []
    for r in ridges:
        shrink = s2 / (s2 + r)
        fitted = U @ (shrink[:, None] * UtY)
        rss = float(np.sum((Y - fitted) ** 2))
        scores.append((rss / n) / (1.0 - shrink.sum() / n) ** 2)
    return float(ridges[int(np.argmin(scores))])


class ACIL:
    """ACIL (Zhuang et al., NeurIPS 2022, "ACIL: analytic class-incremental learning with
    absolute memorization and privacy protection"), in its G-ACIL mini-batch form as the
    authors' public code runs it on a frozen encoder:

    - a random "buffer" layer ``U(-1/sqrt(d), 1/sqrt(d))`` (d x m, no bias; PyTorch's default
      ``Linear`` initialisation), ReLU, float64;
    - recursive least squares from ``R = I / gamma`` (gamma = 0.1), per mini-batch ``H`` of at
      most ``batch_size`` rows (4,096): ``K = (I + H R H^T)^-1``, ``R -= R H^T K H R``,
      ``W += R H^T (Y - H W)``; new classes get zero columns.

    Their default width is 8,192. The result equals ridge regression with lambda = gamma on
    all rows seen; the recursion is what they run (one b x b inverse per mini-batch).
    """

    takes_width = True

    def __init__(
        self, n_components: int = 8_192, seed: int = 0, gamma: float = 0.1, batch_size: int = 4096
    ) -> None:
        self.n_components, self.seed = _check_width(n_components), int(seed)
        if not gamma > 0 or int(batch_size) < 1:
            raise ValueError("gamma must be > 0 and batch_size >= 1")
        self.gamma, self.batch_size = float(gamma), int(batch_size)
        self.classes_ = np.array([])
        self.n_features_in_: int | None = None

    def _features(self, X: np.ndarray) -> np.ndarray:
        return np.maximum(np.asarray(X, dtype=np.float64) @ self.W_rand, 0.0)

    def partial_fit(self, X: np.ndarray, y: np.ndarray) -> ACIL:
        """One batch, in mini-batches of ``batch_size`` rows, through the RLS recursion."""
        X, y = _checked(self, X, y)
        m = self.n_components
        if self.n_features_in_ is None:
            d = X.shape[1]
            bound = 1.0 / np.sqrt(d)
            self.W_rand = np.random.default_rng(self.seed).uniform(-bound, bound, (d, m))
            self.R = np.eye(m) / self.gamma
            self.coef_ = np.zeros((0, m))
            self.n_features_in_ = d
        classes, coef = _grow(self.classes_, y, self.coef_)
        R, coef = self.R.copy(), coef.T.copy()  # m x C; committed only if all is finite
        index = np.searchsorted(classes, y)
        for start in range(0, len(y), self.batch_size):
            H = self._features(X[start : start + self.batch_size])
            Y = _one_hot(index[start : start + self.batch_size], classes.size).astype(np.float64)
            RHt = R @ H.T
            K = np.linalg.inv(np.eye(H.shape[0]) + H @ RHt)
            R -= RHt @ K @ RHt.T
            coef += R @ H.T @ (Y - H @ coef)
        if not (np.isfinite(R).all() and np.isfinite(coef).all()):
            raise FloatingPointError("ACIL's recursion lost finiteness; increase gamma")
        self.R, self.coef_, self.classes_ = R, coef.T, classes
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self._features(X) @ self.coef_.T

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]


class SLDA:
    """Deep streaming LDA (Hayes & Kanan, CVPR-W 2020, "Lifelong machine learning with deep
    streaming linear discriminant analysis"), as their public code runs it on the features
    themselves (no random layer, so no width):

    - the first call initialises ("base"): class means and counts, and the covariance by OAS
      of the rows centred on their class means;
    - every later row streams in, in order: with ``t`` rows seen, ``delta = x - mu_y``
      (the class mean before the row; zero for a new class), ``Sigma <- (t Sigma + t/(t+1)
      delta delta^T) / (t + 1)``, then ``mu_y`` and the count are updated;
    - scores ``x^T L mu_c - mu_c^T L mu_c / 2`` with ``L = ((1 - s) Sigma + s I)^-1``,
      shrinkage ``s = 1e-4``, no prior term.

    The rows of a call are accumulated in one product (the recursion is linear in the
    rank-one terms), in float64 (theirs float32 on a GPU).
    """

    takes_width = False

    def __init__(self, seed: int = 0, shrinkage: float = 1e-4) -> None:
        if not 0 <= shrinkage <= 1:
            raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage}")
        self.seed, self.shrinkage = int(seed), float(shrinkage)  # no randomness: seed unused
        self.classes_ = np.array([])
        self.n_features_in_: int | None = None

    def partial_fit(self, X: np.ndarray, y: np.ndarray) -> SLDA:
        """The first call is the base initialisation; later calls stream row by row."""
        X, y = _checked(self, X, y)
        X = X.astype(np.float64, copy=False)
        if self.n_features_in_ is None:
            self.classes_, index = np.unique(y, return_inverse=True)
            counts = np.bincount(index).astype(np.float64)
            means = np.zeros((self.classes_.size, X.shape[1]))
            np.add.at(means, index, X)
            means /= counts[:, None]
            Z = X - means[index]
            rho = oas_shrinkage_of_rows(Z)  # scikit-learn's OAS(assume_centered=True)
            S = (1.0 - rho) * (Z.T @ Z)  # n * OAS covariance, assume_centered
            S[np.diag_indices_from(S)] += rho * float(np.sum(Z**2)) / X.shape[1]
            self.means_, self.counts_, self.n_updates_, self.S = means, counts, X.shape[0], S
            self.n_features_in_ = X.shape[1]
        else:
            self.classes_, self.means_, self.counts_ = _grow(
                self.classes_, y, self.means_, self.counts_
            )
            index = np.searchsorted(self.classes_, y)
            deltas = np.empty_like(X)
            t = self.n_updates_
            for row, k in enumerate(index):
                deltas[row] = (X[row] - self.means_[k]) * np.sqrt(t / (t + 1.0))
                self.means_[k] += (X[row] - self.means_[k]) / (self.counts_[k] + 1.0)
                self.counts_[k] += 1.0
                t += 1
            self.S += deltas.T @ deltas
            self.n_updates_ = t
        A = (1.0 - self.shrinkage) * self.S / self.n_updates_
        A[np.diag_indices_from(A)] += self.shrinkage
        self.coef_ = _spd_solve(A, self.means_.T)  # d x C
        self.intercept_ = -0.5 * np.sum(self.means_.T * self.coef_, axis=0)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]


PEERS: dict[str, tuple[type, dict]] = {
    "ranpac": (RanPAC, {}),
    "randumb": (RanDumb, {}),
    "klda": (KLDA, {}),
    "klda-e": (KLDA, {"n_ensembles": 5}),
    "fly-cl": (FlyCL, {}),
    "acil": (ACIL, {}),
    "slda": (SLDA, {}),
}
"""The peers ``forgetless run`` knows: name -> (class, settings beyond its defaults)."""


def make_peer(name: str, n_components: int | None = None, seed: int = 0):
    """A peer by name, at width ``n_components`` where it has one (its own default if None)."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    cls, settings = PEERS[name]
    kwargs: dict = {**settings, "seed": seed}
    if n_components is not None and getattr(cls, "takes_width", True):
        kwargs["n_components"] = n_components
    return cls(**kwargs)
