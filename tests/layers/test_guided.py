"""The guided layer: the supervisory criterion, conditioning, determinism, storage, identity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from forgetless.layers import GuidedProjection, build_bytes, layer_from_config, supervisory_scores

REFERENCE = Path(__file__).with_name("reference_layers.npz")
SELECT = {"base": 0.0, "input_norm": "none", "weights": "isotropic"}  # pure SCN selection


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
    layer = GuidedProjection.fit(
        X, y, n_components=60, seed=3, block_size=10, max_samples=400, **SELECT
    )
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
    layer = GuidedProjection.fit(
        X, y, n_components=20, seed=0, r_values=[0.3], patience=2, **SELECT
    )
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
    layer = GuidedProjection.fit(X, y, n_components=150, seed=0, max_samples=800, **SELECT)
    n = layer.report["n_guiding_samples"]
    rows = np.sort(np.random.default_rng(0).choice(len(X), size=800, replace=False))
    H = layer.transform(X[rows])
    np.testing.assert_allclose(H.T @ H, n * np.eye(150), atol=1e-6 * n)
    raw = GuidedProjection.fit(
        X, y, n_components=150, seed=0, max_samples=800, orthogonalize=0, **SELECT
    )
    np.testing.assert_array_equal(raw.weights, layer.weights)  # same selection either way
    assert "transform" not in raw.arrays()
    cond_raw = np.linalg.cond(raw.transform(X[rows]))
    assert 10 < cond_raw**2 < 1e10  # raw units: bounded, but far from 1
    assert np.linalg.cond(H) < 1 + 1e-6


def test_residual_falls_and_stops(digits):
    X, y = digits
    layer = GuidedProjection.fit(
        X, y, n_components=80, seed=0, block_size=20, max_samples=600, **SELECT
    )
    res = layer.report["history"]["residual"]
    assert len(res) == 4 and all(b < a for a, b in zip(res, res[1:], strict=False))
    assert res[0] < 600 and layer.report["stop_reason"] == "budget"
    tight = GuidedProjection.fit(
        X, y, n_components=500, seed=0, max_samples=200, tol=0.05, **SELECT
    )
    assert tight.report["stop_reason"] == "residual stopped falling"
    assert tight.n_components < 200
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((60, 5))
    few = GuidedProjection.fit(
        Z, (Z[:, 0] > 0).astype(int), n_components=100, seed=0, tol=0, **SELECT
    )
    assert few.n_components == 60 and few.report["stop_reason"] == "sample count"
    capped = GuidedProjection.fit(X, y, n_components=300, seed=0, max_condition=1e4, **SELECT)
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
        X[:300], y[:300], n_components=20, seed=5, block_size=5, n_candidates=50, **SELECT
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
    """The saved arrays plus the d ones the l2 input norm applies with (an upper estimate)."""
    X, y = digits
    for params in ({}, {"base": 0.5}, SELECT, {**SELECT, "orthogonalize": False}):
        layer = GuidedProjection.fit(X[:400], y[:400], n_components=30, seed=0, **params)
        saved = sum(a.nbytes for a in layer.arrays().values())
        assert build_bytes(layer.config()) == saved + 8 * 64, params
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


# ---------------------------------------------------------------------- the data-shaped layer
def test_default_layer_is_wider_than_its_first_batch(digits):
    """The default draws its units from a distribution shaped by the guiding rows instead of
    selecting them, so its width is not capped by their count."""
    X, y = digits
    layer = GuidedProjection.fit(X[:60], y[:60], n_components=200, seed=0)
    assert layer.n_components == 200 and layer.n_selected == 0
    assert layer.report["stop_reason"] == "base only" and layer.report["n_base_units"] == 200
    H = layer.transform(X)
    assert np.isfinite(H).all() and np.linalg.matrix_rank(H) > 60


def test_l2_input_norm_makes_the_layer_blind_to_row_scale(digits):
    X, y = digits
    layer = GuidedProjection.fit(X[:300], y[:300], n_components=40, seed=1)
    H = layer.transform(X[300:340])
    np.testing.assert_allclose(layer.transform(7.5 * X[300:340]), H, rtol=1e-10, atol=1e-12)
    plain = GuidedProjection.fit(X[:300], y[:300], n_components=40, seed=1, input_norm="none")
    assert not np.allclose(plain.transform(7.5 * X[300:340]), plain.transform(X[300:340]))
    zero = layer.transform(np.zeros((1, 64)))  # a zero row: act(b), no NaN
    np.testing.assert_allclose(zero[0], np.maximum(layer.offset, 0.0))


def test_covariance_weights_give_every_unit_a_unit_response(digits):
    """weights="covariance": w = S^(1/2) u scaled so (x - mean) . w has RMS 1 under the
    (shrunk) covariance; with shrinkage 0 that is exactly the RMS on the guiding rows."""
    X, y = digits
    rows = X[:500] / np.linalg.norm(X[:500], axis=1, keepdims=True)
    layer = GuidedProjection.fit(X[:500], y[:500], n_components=50, seed=2, shrinkage=0.0)
    Z = (rows - rows.mean(0)) @ layer.weights
    np.testing.assert_allclose(np.sqrt((Z**2).mean(0)), 1.0, rtol=1e-6)
    iso = GuidedProjection.fit(X[:500], y[:500], n_components=50, seed=2, weights="isotropic")
    Zi = (rows - rows.mean(0)) @ iso.weights
    assert np.std(np.sqrt((Zi**2).mean(0))) > 0.05  # isotropic: unit RMS only on average
    # covariance-shaped directions lean toward the inputs' main axes
    top = np.linalg.eigh(np.cov(rows.T))[1][:, -5:]
    share = lambda W: float(np.mean(np.linalg.norm(top.T @ W, axis=0) / np.linalg.norm(W, axis=0)))  # noqa: E731
    assert share(layer.weights) > share(iso.weights)


def test_hybrid_orthogonalises_only_its_selected_units(digits):
    """base=0.5: half the units selected by SCN's criterion (orthogonal on the guiding rows),
    half drawn; saved and loaded bit for bit; a different seed is a different layer."""
    X, y = digits
    layer = GuidedProjection.fit(X[:400], y[:400], n_components=60, seed=0, base=0.5)
    k = layer.n_selected
    assert k == 30 and layer.report["n_base_units"] == 30
    assert layer.arrays()["transform"].shape == (30, 30)
    H = layer.transform(X[:400])
    np.testing.assert_allclose(H[:, :k].T @ H[:, :k], 400 * np.eye(k), atol=1e-6 * 400)
    again = layer_from_config(layer.config(), {n: a.copy() for n, a in layer.arrays().items()})
    assert again.same_as(layer) and again.n_selected == k
    assert (again.transform(X) == layer.transform(X)).all()
    twin = GuidedProjection.fit(X[:400], y[:400], n_components=60, seed=0, base=0.5)
    assert twin.same_as(layer)
    assert not GuidedProjection.fit(X[:400], y[:400], 60, seed=1, base=0.5).same_as(layer)
    # the width cap applies to the selected part only
    small = GuidedProjection.fit(X[:40], y[:40], n_components=100, seed=0, base=0.2)
    assert small.n_components == 20 + small.n_selected and 0 < small.n_selected <= 40


def test_a_layer_saved_before_these_settings_loads_as_a_pure_selection(digits):
    """Files written before input_norm / weights / base existed hold settings without them:
    they load with the legacy values, so they compute what they computed then."""
    X, y = digits
    layer = GuidedProjection.fit(X[:300], y[:300], n_components=20, seed=5, **SELECT)
    config = layer.config()
    config["settings"] = {
        k: v for k, v in config["settings"].items() if k not in (*SELECT, "shrinkage")
    }
    old = layer_from_config(config, layer.arrays())
    assert old.settings["input_norm"] == "none" and old.settings["base"] == 0.0
    assert (old.transform(X) == layer.transform(X)).all()


def test_new_settings_are_checked(digits):
    X, y = digits[0][:100], digits[1][:100]
    for bad in (
        {"input_norm": "l1"},
        {"weights": "uniform"},
        {"base": 1.5},
        {"base": True},
        {"shrinkage": -0.1},
        {"base_bias": -1.0},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            GuidedProjection.fit(X, y, n_components=5, **bad)


def test_unit_settings_of_the_wrong_type_are_refused_by_name(digits):
    from forgetless import ContinualClassifier

    X, y = digits
    for key, value in (
        ("max_samples", 2.5),
        ("max_samples", "10"),
        ("max_samples", float("nan")),
        ("tol", "0.1"),
        ("tol", False),
        ("max_condition", "1e5"),
        ("orthogonalize", "no"),
        ("orthogonalize", None),
        ("scales", [True]),
        ("scales", "2"),
        ("scales", [[1, 2], [3, 4]]),
        ("n_candidates", 10**12),
        ("scales", 10**400),
    ):
        with pytest.raises(ValueError, match=key):
            ContinualClassifier(
                projection="guided",
                n_components=16,
                projection_params={"method": "units", key: value},
            ).fit(X[:100], y[:100])


def test_unit_settings_of_the_right_value_in_another_form_are_accepted(digits):
    """A whole float for max_samples, a 0-d array for scales: accepted before, and still."""
    from forgetless import ContinualClassifier

    X, y = digits
    for key, value in (("max_samples", 50.0), ("scales", np.array(1.0))):
        clf = ContinualClassifier(
            projection="guided", n_components=8, projection_params={"method": "units", key: value}
        ).fit(X[:100], y[:100])
        assert clf.projection_.settings[key] == ([1.0] if key == "scales" else 50)


def test_classes_the_subsample_leaves_out_do_not_stop_the_selection(digits):
    """max_samples drew 12 of 500 rows, missing some of the 10 classes: their target columns
    were all zero and no unit could pass the criterion ('a single class cannot guide')."""
    from forgetless import ContinualClassifier

    X, y = digits
    clf = ContinualClassifier(
        projection="guided",
        n_components=20,
        random_state=0,
        projection_params={"method": "units", "base": 0.0, "max_samples": 12},
    ).fit(X[:500], y[:500])
    # the selection ran until the 12 guiding rows were used up, not stopped at no unit
    assert clf.projection_.n_components == 12
    assert clf.projection_.report["stop_reason"] == "sample count"


def test_features_far_from_unit_scale_are_refused_by_the_units_method(digits):
    """Covariance-shaped units gave constant outputs on features ~1e-100, silently."""
    from forgetless import ContinualClassifier

    X, y = digits
    for scale in (1e-100, 1e100):
        with pytest.raises(ValueError, match="moderate scale.*standardise"):
            ContinualClassifier(
                projection="guided",
                n_components=16,
                projection_params={"method": "units", "weights": "covariance"},
            ).fit(X[:200] * scale, y[:200])


def test_a_projection_params_dict_changed_in_place_is_a_changed_setting(digits):
    from forgetless import ContinualClassifier

    X, y = digits
    params = {"n_landmarks": 60}
    clf = ContinualClassifier(
        projection="guided", n_components=16, projection_params=params, random_state=0
    ).fit(X[:200], y[:200])
    params["flatten"] = 1.0
    with pytest.raises(ValueError, match="projection_params changed after fitting"):
        clf.partial_fit(X[200:300], y[200:300])
    del params["flatten"]
    clf.partial_fit(X[200:300], y[200:300])
