"""The unknown-input test: how far an input lies from every class the model learned.

A classifier answers with one of the classes it knows, whatever it is shown. The test keeps, per
class, the sum of its samples' unit-length encoder features (added at learn, subtracted at
forget: exact, no samples kept) and measures an input's :data:`NOVELTY_DISTANCE` to the nearest
class mean direction (:func:`novelty_distances`). The threshold comes from the learned samples
themselves, each measured as if it had not been learned (:func:`leave_one_out_distances`, in
closed form from the sums): an input farther than their :data:`NOVELTY_QUANTILE` is unknown.

>>> import numpy as np
>>> U = unit_rows(np.array([[3.0, 4.0], [0.0, 2.0], [0.0, 0.0]]))
>>> U.tolist()
[[0.6, 0.8], [0.0, 1.0], [0.0, 0.0]]
>>> sums, counts = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1, 1])
>>> novelty_distances(sums, counts, U[:2]).round(2).tolist()  # 1 - cosine to the nearest mean
[0.2, 0.0]
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "NOVELTY_DISTANCE",
    "NOVELTY_QUANTILE",
    "leave_one_out_distances",
    "novelty_distances",
    "unit_rows",
]

# "unknown": an input whose cosine distance to the nearest class mean (of unit-length encoder
# features) is beyond this quantile of the leave-one-out distances of the data in hand.
NOVELTY_QUANTILE = 0.99
NOVELTY_DISTANCE = "1 - cosine to the nearest class mean of unit-length encoder features"


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, in float64 (a zero row stays zero)."""
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def novelty_distances(sums: np.ndarray, counts: np.ndarray, U: np.ndarray) -> np.ndarray:
    """For unit rows ``U``: 1 - the cosine to the nearest class mean direction, over the
    classes with samples (``sums`` rows: sums of their unit-length features). In [0, 2]."""
    live = np.flatnonzero(counts > 0)
    if live.size == 0:
        return np.ones(U.shape[0])
    return np.clip(1.0 - (U @ unit_rows(sums[live]).T).max(axis=1), 0.0, 2.0)


def leave_one_out_distances(
    sums: np.ndarray, counts: np.ndarray, U: np.ndarray, own: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`novelty_distances` of each unit row of ``U``, learned under class ``own``, as if
    it had not been learned: its class's mean direction without it (closed form: its sum minus
    the row). Rows whose class has no other sample and no other class exists are dropped.
    Returns (distances, their classes).

    >>> U = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])  # class 0: rows 0, 1; class 1: row 2
    >>> sums, counts = np.array([U[0] + U[1], U[2]]), np.array([2, 1])
    >>> distances, classes = leave_one_out_distances(sums, counts, U, np.array([0, 0, 1]))
    >>> distances.round(2).tolist(), classes.tolist()  # row 2 is alone: only class 0 is left
    ([0.4, 0.2, 0.55], [0, 0, 1])
    """
    own = np.asarray(own, dtype=np.int64)
    if U.shape[0] == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    cos = np.full((U.shape[0], sums.shape[0]), -np.inf)
    live = np.flatnonzero(counts > 0)
    cos[:, live] = U @ unit_rows(sums[live]).T
    rest = sums[own] - U
    norms = np.linalg.norm(rest, axis=1)
    alone = counts[own] <= 1
    mine = np.einsum("ij,ij->i", U, rest) / np.where(norms > 0, norms, 1.0)
    mine[alone | (norms == 0)] = -np.inf
    cos[np.arange(U.shape[0]), own] = mine
    best = cos.max(axis=1)
    kept = np.isfinite(best)
    return np.clip(1.0 - best[kept], 0.0, 2.0), own[kept]
