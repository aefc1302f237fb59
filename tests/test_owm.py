"""Orthogonal-update head: task updates confined to the complement of earlier features."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from forgetless import ContinualClassifier
from forgetless.heads import HEADS, OWMHead
from forgetless.linalg import ridge_solve

ALPHA = 0.5


@pytest.fixture(scope="module")
def tasks() -> list[tuple[np.ndarray, np.ndarray]]:
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return [
        (X[np.isin(y, [2 * t, 2 * t + 1])], y[np.isin(y, [2 * t, 2 * t + 1])]) for t in range(5)
    ]


def _learner(**kw) -> ContinualClassifier:
    return ContinualClassifier(
        projection="gaussian", n_components=80, head="owm", alpha=ALPHA, **kw
    )


def test_first_task_is_ridge_and_second_follows_the_formula(tasks):
    (X1, y1), (X2, y2) = tasks[0], tasks[1]
    clf = _learner().partial_fit(X1, y1)
    H1 = clf.projection_.transform(X1)
    Y1 = np.eye(2)[y1]
    G1 = H1.T @ H1
    W1 = ridge_solve(G1, H1.T @ Y1, ALPHA)
    np.testing.assert_allclose(clf.coef_.T, W1, rtol=1e-9, atol=1e-12)

    clf.partial_fit(X2, y2)
    H2 = clf.projection_.transform(X2)
    Y2 = np.eye(4)[y2]
    W1_wide = np.hstack([W1, np.zeros((80, 2))])
    A = ALPHA * np.linalg.inv(G1 + ALPHA * np.eye(80))
    G2 = H2.T @ H2
    dV = np.linalg.solve(A @ G2 @ A + ALPHA * np.eye(80), A @ (H2.T @ Y2 - G2 @ W1_wide))
    np.testing.assert_allclose(clf.coef_.T, W1_wide + A @ dV, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(
        clf.head_.P, np.linalg.inv(G1 + G2 + ALPHA * np.eye(80)), rtol=1e-7, atol=1e-12
    )


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_old_outputs_move_less_than_with_rls(tasks):
    """The projector is soft, alpha (G_old + alpha I)^-1: old outputs are protected more as
    alpha -> 0, while RLS (a joint least-squares fit) lets them move."""
    (X1, y1), (X2, y2) = tasks[0], tasks[1]
    drift = {}
    for head, alpha in (("owm", 1e-3), ("owm", 1e-8), ("rls", 1e-8)):
        clf = ContinualClassifier(
            projection="gaussian", n_components=80, head=head, alpha=alpha
        ).partial_fit(X1, y1)
        H1 = clf.projection_.transform(X1)
        before = H1 @ clf.coef_.T
        clf.partial_fit(X2, y2)
        after = H1 @ clf.coef_[:2].T
        drift[head, alpha] = float(np.linalg.norm(after - before) / np.linalg.norm(before))
    assert drift["rls", 1e-8] > 0.05
    assert drift["owm", 1e-8] < 1e-3
    assert drift["owm", 1e-8] < drift["owm", 1e-3] < drift["rls", 1e-8]


def test_a_task_is_one_call_whatever_the_chunks(tasks):
    whole, chunked = _learner(), _learner(chunk_size=37)
    for X, y in tasks[:3]:
        whole.partial_fit(X, y)
        chunked.partial_fit(X, y)
    np.testing.assert_allclose(chunked.coef_, whole.coef_, rtol=1e-9, atol=1e-12)


def test_class_incremental_accuracy_and_persistence(tasks, tmp_path):
    clf = _learner()
    for X, y in tasks[:4]:
        clf.partial_fit(X, y)
    path = tmp_path / "owm.fl"
    clf.save(path)
    loaded = ContinualClassifier.load(path)
    assert isinstance(loaded.head_, OWMHead)
    X5, y5 = tasks[4]
    clf.partial_fit(X5, y5)
    loaded.partial_fit(X5, y5)
    np.testing.assert_array_equal(loaded.coef_, clf.coef_)
    X = np.vstack([t[0] for t in tasks])
    y = np.concatenate([t[1] for t in tasks])
    assert 0.6 < clf.score(X, y) < 1.0


def test_merge_and_forget_are_refused_without_change(tasks):
    (X1, y1), (X2, y2) = tasks[0], tasks[1]
    clf = _learner().partial_fit(X1, y1)
    coef = clf.coef_.copy()
    other = _learner().partial_fit(X2, y2)
    with pytest.raises(ValueError, match="order"):
        clf.merge(other)
    with pytest.raises(ValueError, match="order"):
        clf.forget(X1[:5], y1[:5])
    with pytest.raises(ValueError, match="order"):
        _learner(per_class_gram=True).partial_fit(X1, y1).forget_classes([0])
    np.testing.assert_array_equal(clf.coef_, coef)
    assert clf.n_samples_seen_ == len(y1)
    with pytest.raises(ValueError, match="fixed alpha"):
        ContinualClassifier(head="owm").fit(X1, y1)
    assert "owm" in HEADS
