"""The guided layer: the supervisory criterion, conditioning, determinism, storage, identity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from forgetless.layers import GuidedProjection, build_bytes, layer_from_config, supervisory_scores

REFERENCE = Path(__file__).with_name("reference_layers.npz")


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
    assert a.same_as(b)
    assert not np.array_equal(a.weights, c.weights)
    assert not a.same_as(c)


def test_layer_equals_that_of_the_previous_module(digits):
    """The refactored selection takes the same units as the module it replaced (``guided.py``,
    commit 13ee027), which recorded these arrays; to the last bits, since BLAS may round
    differently on another machine."""
    ref = np.load(REFERENCE)
    X, y = digits
    layer = GuidedProjection.fit(
        X[:300], y[:300], n_components=20, seed=5, block_size=5, n_candidates=50
    )
    for name, value in layer.arrays().items():
        np.testing.assert_allclose(value, ref[f"guided.{name}"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.transform(X[300:304]), ref["guided.H"], rtol=1e-9, atol=1e-9)


def test_same_settings_on_other_data_is_another_layer(digits):
    """What merging relies on: guided layers with equal settings and seed but selected on
    different rows are not the same layer; a saved and reloaded one is."""
    X, y = digits
    a = GuidedProjection.fit(X[:400], y[:400], n_components=30, seed=0, block_size=10)
    b = GuidedProjection.fit(X[400:800], y[400:800], n_components=30, seed=0, block_size=10)
    assert a.config()["settings"] == b.config()["settings"] and a.n_components == b.n_components
    assert not a.same_as(b)
    again = layer_from_config(a.config(), {k: v.copy() for k, v in a.arrays().items()})
    assert again.same_as(a)
    nudged = {k: v.copy() for k, v in a.arrays().items()}
    nudged["offset"][0] = np.nextafter(nudged["offset"][0], np.inf)
    assert not layer_from_config(a.config(), nudged).same_as(a)


def test_build_bytes_counts_the_saved_units(digits):
    X, y = digits
    layer = GuidedProjection.fit(X[:400], y[:400], n_components=30, seed=0, block_size=10)
    assert build_bytes(layer.config()) == sum(a.nbytes for a in layer.arrays().values())
    raw = GuidedProjection.fit(X[:400], y[:400], n_components=30, seed=0, orthogonalize=False)
    assert build_bytes(raw.config()) == sum(a.nbytes for a in raw.arrays().values())
    huge = layer.config() | {"n_features": 10**6, "n_components": 10**6}
    assert build_bytes(huge) > 8 * 10**12
    with pytest.raises(ValueError, match="n_components"):
        build_bytes(layer.config() | {"n_components": 0})


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
    with pytest.raises(ValueError, match="arrays"):
        GuidedProjection.from_config({"kind": "guided", "activation": "relu"}, {})
    layer = GuidedProjection.fit(X, y, n_components=5, seed=0)
    with pytest.raises(ValueError, match="no arrays"):
        GuidedProjection.from_config(layer.config(), {**layer.arrays(), "extra": np.ones(2)})
    with pytest.raises(ValueError, match="one non-negative class index"):
        GuidedProjection.fit(X, y[:-1], n_components=5)
