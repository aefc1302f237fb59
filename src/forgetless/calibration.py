"""Calibrated probabilities for a taught model: one temperature, fitted on held-out samples.

A ridge head's scores are not probabilities, and a softmax of them is as sure of itself as their
scale happens to make it. :func:`fit_temperature_held_out` lets a copy of the learner forget a
stratified share of the samples in hand, scores them, and fits one temperature T by minimising
their negative log-likelihood (:func:`fit_temperature`); the model's probabilities are then
``softmax(scores / T)``. One number, fitted on samples the scoring learner has not seen, keeps
the ranking of the classes and only sets how sure the probabilities are.
:func:`expected_calibration_error` measures the result (benchmarks/calibration.py).

>>> import numpy as np
>>> scores = np.array([[4.0, 0.0], [0.0, 4.0], [3.0, 0.0], [4.0, 0.0], [0.0, 3.0], [0.0, 4.0]])
>>> y = np.array([0, 1, 0, 1, 1, 0])  # four of six right, each by a wide margin
>>> softmax(scores).max(axis=1).round(2).tolist()
[0.98, 0.98, 0.95, 0.98, 0.95, 0.98]
>>> t, nll = fit_temperature(scores, y)
>>> round(t, 1)
9.0
>>> softmax(scores / t).max(axis=1).round(2).tolist()  # near the 4 / 6 they are right
[0.61, 0.61, 0.58, 0.61, 0.58, 0.61]
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from forgetless.learner import ContinualClassifier

__all__ = [
    "CALIBRATION_MIN_HELD_OUT",
    "TEMPERATURE_RANGE",
    "calibration_record",
    "expected_calibration_error",
    "fit_temperature",
    "fit_temperature_held_out",
    "full_scores",
    "softmax",
]

# A temperature is fitted on held-out samples of the data in hand when at least this many can be
# held out.
CALIBRATION_MIN_HELD_OUT = 8
TEMPERATURE_RANGE = (1e-3, 1e2)  # where the temperature is searched (and files checked)


def full_scores(clf: ContinualClassifier, X: np.ndarray) -> np.ndarray:
    """Scores (n, C) for every class (the two-class decision function is one column)."""
    scores = clf.decision_function(X)
    if scores.ndim == 1:
        if clf.classes_.size == 1:
            return np.zeros((scores.shape[0], 1))
        scores = np.stack([np.zeros_like(scores), scores], axis=1)
    if clf.classes_.size == 1:
        return np.zeros((scores.shape[0], 1))
    return scores


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The temperature T minimising the cross-entropy of ``softmax(scores / T)`` against labels
    ``y`` (column indices), searched over T in [1e-3, 1e2]; returns (T, its loss).

    The targets are smoothed by the rule of succession (1 / (n + 2) of the mass spread over the
    other classes): when every held-out sample is right, the plain likelihood would drive T to 0
    and every probability to 1; this keeps the confidence near the (n + 1) / (n + 2) accuracy
    such a sample supports, and vanishes as n grows.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    scores = np.asarray(scores, dtype=np.float64)
    n, c = scores.shape
    rows = np.arange(n)
    eps = 1.0 / (n + 2) if c > 1 else 0.0
    true = scores[rows, y]
    rest = (scores.sum(axis=1) - true) / max(c - 1, 1)

    def loss(log_t: float) -> float:
        t = np.exp(log_t)
        target = (1 - eps) * true + eps * rest
        return float(np.mean(logsumexp(scores / t, axis=1) - target / t))

    low, high = TEMPERATURE_RANGE
    best = minimize_scalar(loss, bounds=(np.log(low), np.log(high)), method="bounded")
    return float(np.exp(best.x)), float(best.fun)


def calibration_record(fitted: tuple[float, int, float], event_id: int) -> dict[str, Any]:
    """What the model keeps of a fitted temperature: T, held-out count, their NLL, the event."""
    temperature, held_out, nll = fitted
    return {"temperature": temperature, "held_out": held_out, "nll": nll, "event": event_id}


def fit_temperature_held_out(
    clf: ContinualClassifier, X: np.ndarray, names: np.ndarray, seed: int = 0
) -> tuple[float, int, float] | str | None:
    """Fit T on held-out samples of the data in hand: ``clf`` learned (X, names) among
    others; a copy forgets a stratified share of them (a fifth, or about 12 samples when a fifth
    is fewer, at most half), scores them, and T minimises their NLL. None when fewer than 8 can
    be held out or fewer than two classes remain; a reason (text) when the NLL's minimum lies
    at an end of the range (the held-out scores hardly differ between classes, as with one
    sample per class left in the copy: T at its floor made the model overconfident). Returns
    (T, samples held out, NLL)."""
    from forgetless.data.base import stratified_split

    if len(names) < CALIBRATION_MIN_HELD_OUT:
        return None
    _, y = np.unique(names, return_inverse=True)
    fraction = max(0.2, min(0.5, 1.5 * CALIBRATION_MIN_HELD_OUT / max(len(y), 1)))
    _, held = stratified_split(y, fraction, seed=seed)
    if held.size < CALIBRATION_MIN_HELD_OUT:
        return None
    trial = copy.deepcopy(clf)
    trial.forget(X[held], names[held])
    known = np.isin(names[held], trial.classes_)
    if known.sum() < CALIBRATION_MIN_HELD_OUT or trial.classes_.size < 2:
        return None
    scores = full_scores(trial, X[held][known])
    truth = np.searchsorted(trial.classes_, names[held][known])
    temperature, nll = fit_temperature(scores, truth)
    low, high = TEMPERATURE_RANGE
    if not low * 1.01 < temperature < high / 1.01:
        return "the held-out samples' scores tell the classes apart too little to fit a temperature"
    return temperature, int(known.sum()), nll


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width bins.

    >>> expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]))
    0.35
    """
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return round(float(total), 12)
