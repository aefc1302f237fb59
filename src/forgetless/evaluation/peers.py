"""Peers' own procedures on the same features, for side-by-side runs (``forgetless run``).

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

RANPAC_LAMBDAS = 10.0 ** np.arange(-8, 9)
"""RanPAC's candidate ridge penalties (17 values, one per decade)."""


class RanPAC:
    """RanPAC's random-projection ridge head with its own lambda search (see the module)."""

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
        self.alpha_ = _ranpac_lambda(G_fit, Q_fit, H_val, Y_val)
        self.alphas_.append(self.alpha_)
        self.G += G_fit
        self.G += H_val.T @ H_val
        self.Q += Q_fit
        self.Q += H_val.T @ Y_val
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
    """``solve(G + lam I, Q)`` in float32 (LU), as RanPAC's ``torch.linalg.solve``."""
    A = G.copy()
    A[np.diag_indices_from(A)] += np.float32(lam)
    with warnings.catch_warnings():  # RanPAC does not check the condition number either
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.solve(A, Q, check_finite=False, overwrite_a=True)


def _ranpac_lambda(G: np.ndarray, Q: np.ndarray, H_val: np.ndarray, Y_val: np.ndarray) -> float:
    """RanPAC's ``optimise_ridge_parameter``: the lambda of lowest held-out MSE (first on ties)."""
    losses = []
    for lam in RANPAC_LAMBDAS:
        W = _solve(G, Q, float(lam))
        losses.append(float(np.mean((H_val @ W - Y_val) ** 2)))
    return float(RANPAC_LAMBDAS[int(np.argmin(losses))])
