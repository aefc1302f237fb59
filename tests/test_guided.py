"""Guided projection: the supervisory criterion, conditioning, determinism, storage, exactness."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from forgetless import ContinualClassifier
from forgetless.guided import GuidedProjection, supervisory_scores
from forgetless.linalg import ridge_solve


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _raw(layer: GuidedProjection, X: np.ndarray) -> np.ndarray:
    return np.maximum(X @ layer.weights + layer.offset, 0.0)


def test_every_chosen_unit_satisfied_the_criterion(digits):
    """Replay the selection with plain least squares: each unit had xi_q > 0 for every class
    against the residual of the units chosen before it, at the r the selection recorded."""
    X, y = digits[0][:400], digits[1][:400]
    layer = GuidedProjection.fit(X, y, n_components=60, seed=3, block_size=10, max_samples=400)
    assert layer.n_components == 60 and len(layer.report["unit_r"]) == 60
    G = _raw(layer, X)
    Y = np.eye(10)[y]
    for L in range(60):
        if L:
            coef, *_ = np.linalg.lstsq(G[:, :L], Y, rcond=None)
            E = Y - G[:, :L] @ coef
        else:
            E = Y
        xi = supervisory_scores(E, G[:, L : L + 1], layer.report["unit_r"][L], L)
        assert (xi > 0).all(), (L, xi.min())


def test_a_strict_criterion_refuses_candidates(digits):
    """With r = 0.3, the second unit on must explain about a third or more of every class's
    residual at once (mu_0 = 1 - r makes the first threshold 0): no random unit does, so the
    selection stops after one unit and says why."""
    X, y = digits[0][:300], digits[1][:300]
    Y = np.eye(10)[y]
    xi = supervisory_scores(Y, np.ones((300, 1)), 0.3, 9)
    assert (xi < 0).all()  # a constant unit serves no class well enough
    assert (supervisory_scores(Y, np.ones((300, 1)), 0.3, 0) > 0).all()
    layer = GuidedProjection.fit(X, y, n_components=20, seed=0, r_values=[0.3], patience=2)
    assert layer.n_components == 1
    assert layer.report["stop_reason"] == "no admissible candidate"


def test_scores_match_their_formula():
    rng = np.random.default_rng(1)
    E, g = rng.standard_normal((50, 3)), rng.standard_normal((50, 4))
    xi = supervisory_scores(E, g, 0.99, 7)
    mu = 0.01 / 8
    for q in range(3):
        for k in range(4):
            want = (E[:, q] @ g[:, k]) ** 2 / (g[:, k] @ g[:, k]) - (1 - 0.99 - mu) * (
                E[:, q] @ E[:, q]
            )
            assert xi[q, k] == pytest.approx(want, rel=1e-12)
    assert (supervisory_scores(E, np.zeros((50, 1)), 0.99, 0) == -np.inf).all()


def test_orthogonalised_layer_is_perfectly_conditioned_on_its_guiding_data(digits):
    X, y = digits
    layer = GuidedProjection.fit(X, y, n_components=150, seed=0, max_samples=800)
    n = layer.report["n_guiding_samples"]
    rows = np.sort(np.random.default_rng(0).choice(len(X), size=800, replace=False))
    H = layer.transform(X[rows])
    np.testing.assert_allclose(H.T @ H, n * np.eye(150), atol=1e-6 * n)
    raw = GuidedProjection.fit(X, y, n_components=150, seed=0, max_samples=800, orthogonalize=0)
    np.testing.assert_array_equal(raw.weights, layer.weights)  # same selection either way
    assert "transform" not in raw.arrays()
    cond_raw = np.linalg.cond(raw.transform(X[rows]))
    assert 10 < cond_raw**2 < 1e10  # raw units: bounded, but far from 1
    assert np.linalg.cond(H) < 1 + 1e-6


def test_residual_falls_and_stops(digits):
    X, y = digits
    layer = GuidedProjection.fit(X, y, n_components=80, seed=0, block_size=20, max_samples=600)
    res = layer.report["history"]["residual"]
    assert len(res) == 4 and all(b < a for a, b in zip(res, res[1:], strict=False))
    assert res[0] < 600 and layer.report["stop_reason"] == "budget"
    tight = GuidedProjection.fit(X, y, n_components=500, seed=0, max_samples=200, tol=0.05)
    assert tight.report["stop_reason"] == "residual stopped falling"
    assert tight.n_components < 200
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((60, 5))
    few = GuidedProjection.fit(Z, (Z[:, 0] > 0).astype(int), n_components=100, seed=0, tol=0)
    assert few.n_components == 60 and few.report["stop_reason"] == "sample count"
    capped = GuidedProjection.fit(X, y, n_components=300, seed=0, max_condition=1e4)
    assert capped.report["stop_reason"] == "condition bound"
    assert max(capped.report["history"]["condition"]) <= 1e4


def test_deterministic_for_a_seed(digits):
    X, y = digits[0][:500], digits[1][:500]
    a = GuidedProjection.fit(X, y, n_components=50, seed=7, block_size=10)
    b = GuidedProjection.fit(X, y, n_components=50, seed=7, block_size=10)
    c = GuidedProjection.fit(X, y, n_components=50, seed=8, block_size=10)
    for name, arr in a.arrays().items():
        assert np.array_equal(arr, b.arrays()[name])
    assert a.signature() == b.signature()
    assert not np.array_equal(a.weights, c.weights)


def test_save_and_load_without_pickle(digits, tmp_path):
    X, y = digits
    clf = ContinualClassifier(
        projection="guided", n_components=64, projection_params={"block_size": 16}, alpha=1.0
    ).fit(X[:900], y[:900])
    assert clf.projection_.n_components == 64 and clf.coef_.shape == (64, 10)
    path = tmp_path / "guided.fl"
    clf.save(path)
    with np.load(path, allow_pickle=False) as archive:
        assert archive["projection.weights"].shape == (64, 64)
        assert archive["projection.transform"].shape == (64, 64)
    loaded = ContinualClassifier.load(path)
    np.testing.assert_array_equal(loaded.projection_.weights, clf.projection_.weights)
    np.testing.assert_array_equal(loaded.decision_function(X[900:]), clf.decision_function(X[900:]))
    assert loaded.projection_.config() == clf.projection_.config()
    twin = ContinualClassifier(**clf.get_params()).fit(X[:900], y[:900])
    twin.save(tmp_path / "twin.fl")
    assert (tmp_path / "twin.fl").read_bytes() == path.read_bytes()  # same model, same bytes


def test_bad_settings_are_refused(digits):
    X, y = digits[0][:100], digits[1][:100]
    with pytest.raises(ValueError, match="unknown projection_params"):
        GuidedProjection.fit(X, y, n_components=5, radius=3)
    with pytest.raises(ValueError, match="r_values"):
        GuidedProjection.fit(X, y, n_components=5, r_values=[0.99, 0.9])
    with pytest.raises(ValueError, match="block_size"):
        GuidedProjection.fit(X, y, n_components=5, block_size=0)
    with pytest.raises(ValueError, match="activation"):
        GuidedProjection.fit(X, y, n_components=5, activation="swish")
    with pytest.raises(ValueError, match="only to projection='guided'"):
        ContinualClassifier(projection_params={"block_size": 5}).fit(X, y)
    with pytest.raises(ValueError, match="arrays"):
        GuidedProjection.from_config({"kind": "guided", "activation": "relu"}, {})


def test_later_partial_fit_is_exact_with_the_frozen_layer(digits):
    """Task 1 selects the layer; tasks 2..5 stream in. The result equals one fit on the union
    of all five tasks with that same layer (built by fitting task 1, forgetting it, and
    learning the union in a single call)."""
    X, y = digits
    tasks = [np.isin(y, [2 * t, 2 * t + 1]) for t in range(5)]
    params = dict(projection="guided", n_components=120, alpha=0.5, random_state=4)
    if "fit_intercept" in ContinualClassifier().get_params():
        params["fit_intercept"] = False  # so the direct solve below needs no centring
    stream = ContinualClassifier(**params)
    for mask in tasks:
        stream.partial_fit(X[mask], y[mask])
    assert stream.projection_.report["n_guiding_classes"] == 2  # selected on task 1 only

    joint = ContinualClassifier(**params).fit(X[tasks[0]], y[tasks[0]])
    np.testing.assert_array_equal(joint.projection_.weights, stream.projection_.weights)
    joint.forget(X[tasks[0]], y[tasks[0]])
    assert joint.n_samples_seen_ == 0
    order = np.random.default_rng(0).permutation(len(y))
    joint.partial_fit(X[order], y[order])
    np.testing.assert_allclose(joint.coef_, stream.coef_, rtol=1e-9, atol=1e-12)

    # And against a direct solve on the union's projected features.
    H = stream.projection_.transform(X)
    direct = ridge_solve(H.T @ H, H.T @ np.eye(10)[y], 0.5)
    np.testing.assert_allclose(stream.coef_, direct, rtol=1e-9, atol=1e-9)
    assert stream.score(X, y) > 0.9
