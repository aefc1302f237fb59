"""Metrics of a continual run, read from its accuracy matrix.

``A[i, j]`` is the accuracy on task j's test data after training step i (NaN for j > i), and
``seen[i]`` the accuracy on the test data of every class seen after step i. Final and average
incremental accuracy are per test sample (over all classes seen); forgetting, BWT, min-ACC and
WC-ACC are unweighted means over tasks, as in the papers they come from. A metric that a run
cannot define (forgetting after one task, a stability gap without a task switch) is NaN, not 0.

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
        return float("nan")  # no earlier task
    return float(np.mean([np.nanmax(A[: T - 1, j]) - A[T - 1, j] for j in range(T - 1)]))


def backward_transfer(A: np.ndarray) -> float:
    """Mean over earlier tasks of (accuracy at the end - accuracy right after learning it)."""
    A = np.asarray(A, dtype=float)
    T = A.shape[0]
    if T < 2:
        return float("nan")  # no earlier task
    return float(np.mean([A[T - 1, j] - A[j, j] for j in range(T - 1)]))


# ---------------------------------------------------------------------- continual evaluation
# De Lange et al., "Continual evaluation for lifelong learning: identifying the stability gap".
# ``trace`` is an array (E, T): accuracy on each task's test data at E evaluation points during
# training (NaN for tasks not yet introduced); ``iterations`` (E,) the training iteration of
# each evaluation; ``task_end`` (T,) the iteration at which each task's training ended. Every
# task's end is one of the evaluations. A learner evaluated only there (forgetless run's
# analytic methods, which learn a task in one closed-form step) has no dip to show: its
# stability gap is then the mean drop from one task's end to the next, and its min-ACC the lowest
# accuracy seen at task ends.


def _after(iterations: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (iterations > lo) & (iterations <= hi)


def min_accuracy(
    trace: np.ndarray, iterations: np.ndarray, task_end: Sequence[int], k: int
) -> float:
    """min-ACC after task k: mean over earlier tasks of the lowest accuracy they fell to at any
    evaluation after they were learned, up to the end of task k.

    >>> import numpy as np
    >>> trace = np.array([[0.9, np.nan], [0.4, 0.2], [0.7, 0.8]])
    >>> min_accuracy(trace, np.array([10, 15, 20]), [10, 20], 1)
    0.4
    """
    if k == 0:
        return float("nan")
    iterations = np.asarray(iterations)
    lows = []
    for j in range(k):
        window = _after(iterations, task_end[j], task_end[k])
        values = trace[window, j]
        lows.append(np.nanmin(values) if values.size else np.nan)
    return float(np.nanmean(lows))


def worst_case_accuracy(
    A: np.ndarray, trace: np.ndarray, iterations: np.ndarray, task_end: Sequence[int], k: int
) -> float:
    """WC-ACC after task k (0-based): (1/(k+1)) A[k, k] + (1 - 1/(k+1)) min-ACC."""
    if k == 0:
        return float(A[0, 0])
    n = k + 1
    return float(A[k, k] / n + (1.0 - 1.0 / n) * min_accuracy(trace, iterations, task_end, k))


def stability_gap(trace: np.ndarray, iterations: np.ndarray, task_end: Sequence[int]) -> float:
    """Mean over task switches of the dip on earlier tasks: accuracy at the switch minus the
    lowest accuracy reached while the next task trains.

    >>> import numpy as np
    >>> trace = np.array([[0.9, np.nan], [0.4, 0.2], [0.7, 0.8]])
    >>> round(stability_gap(trace, np.array([10, 15, 20]), [10, 20]), 3)
    0.5
    """
    iterations = np.asarray(iterations)
    gaps = []
    for i in range(1, len(task_end)):
        at_switch = np.flatnonzero(iterations <= task_end[i - 1])
        window = _after(iterations, task_end[i - 1], task_end[i])
        if not at_switch.size or not window.any():
            continue
        before = trace[at_switch[-1], :i]
        during = np.nanmin(trace[window, :i], axis=0)
        gaps.append(float(np.nanmean(before - during)))
    return float(np.mean(gaps)) if gaps else float("nan")
