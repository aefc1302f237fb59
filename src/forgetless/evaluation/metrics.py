"""Metrics of a continual run, read from its accuracy matrix.

``A[i, j]`` is the accuracy on task j's test data after training step i (NaN for j > i), and
``seen[i]`` the accuracy on the test data of every class seen after step i.

>>> import numpy as np
>>> A = np.array([[0.9, np.nan], [0.6, 0.8]])
>>> round(forgetting(A), 3), round(backward_transfer(A), 3)
(0.3, -0.3)
>>> round(average_incremental_accuracy([0.9, 0.7]), 3), final_accuracy([0.9, 0.7])
(0.8, 0.7)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def final_accuracy(seen: Sequence[float]) -> float:
    """Accuracy on all classes seen, after the last step."""
    return float(seen[-1])


def average_incremental_accuracy(seen: Sequence[float]) -> float:
    """Mean over steps of the accuracy on all classes seen so far."""
    return float(np.mean(seen))


def forgetting(A: np.ndarray) -> float:
    """Mean over earlier tasks of (best accuracy before the last step - accuracy at the end)."""
    A = np.asarray(A, dtype=float)
    T = A.shape[0]
    if T < 2:
        return 0.0
    return float(np.mean([np.nanmax(A[: T - 1, j]) - A[T - 1, j] for j in range(T - 1)]))


def backward_transfer(A: np.ndarray) -> float:
    """Mean over earlier tasks of (accuracy at the end - accuracy right after learning it)."""
    A = np.asarray(A, dtype=float)
    T = A.shape[0]
    if T < 2:
        return 0.0
    return float(np.mean([A[T - 1, j] - A[j, j] for j in range(T - 1)]))
