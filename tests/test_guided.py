"""Guided projection in the learner: storage, settings, exactness of later batches.

The layer itself (criterion, conditioning, determinism) is tested in tests/layers/test_guided.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from forgetless import ContinualClassifier
from forgetless.linalg import ridge_solve


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.mark.parametrize(
    "settings, transform",
    [
        ({"method": "units", "block_size": 16}, None),
        ({"method": "units", "block_size": 16, "base": 0.5}, (32, 32)),
    ],
    ids=["default", "hybrid"],
)
def test_save_and_load_without_pickle(digits, tmp_path, settings, transform):
    X, y = digits
    clf = ContinualClassifier(
        projection="guided", n_components=64, projection_params=settings, alpha=1.0
    ).fit(X[:900], y[:900])
    assert clf.projection_.n_components == 64 and clf.coef_.shape == (10, 64)
    path = tmp_path / "guided.fl"
    clf.save(path)
    with np.load(path, allow_pickle=False) as archive:
        assert archive["layer.weights"].shape == (64, 64)
        if transform is None:
            assert "layer.transform" not in archive.files
        else:
            assert archive["layer.transform"].shape == transform
    loaded = ContinualClassifier.load(path)
    np.testing.assert_array_equal(loaded.projection_.weights, clf.projection_.weights)
    np.testing.assert_array_equal(loaded.decision_function(X[900:]), clf.decision_function(X[900:]))
    assert loaded.projection_.config() == clf.projection_.config()
    assert loaded.projection_.same_as(clf.projection_)
    twin = ContinualClassifier(**clf.get_params()).fit(X[:900], y[:900])
    twin.save(tmp_path / "twin.fl")
    assert (tmp_path / "twin.fl").read_bytes() == path.read_bytes()  # same model, same bytes


def test_kernel_layer_saves_and_loads_without_pickle(digits, tmp_path):
    X, y = digits
    clf = ContinualClassifier(projection="guided", n_components=64, alpha=1.0, random_state=3)
    clf.partial_fit(X[y < 3], y[y < 3])
    clf.partial_fit(X[y >= 3], y[y >= 3])
    path = tmp_path / "kernel.fl"
    clf.save(path)
    with np.load(path, allow_pickle=False) as archive:
        assert archive["layer.landmarks"].shape == (128, 64)  # N = 2 M landmarks
        assert archive["layer.transform"].shape == (128, 64)
    loaded = ContinualClassifier.load(path)
    assert loaded.projection_.same_as(clf.projection_)
    np.testing.assert_array_equal(loaded.decision_function(X), clf.decision_function(X))
    twin = ContinualClassifier(**clf.get_params())
    twin.partial_fit(X[y < 3], y[y < 3])
    twin.partial_fit(X[y >= 3], y[y >= 3])
    twin.save(tmp_path / "twin.fl")
    assert (tmp_path / "twin.fl").read_bytes() == path.read_bytes()  # same model, same bytes


def test_units_settings_without_their_method_are_refused_by_name(digits):
    X, y = digits[0][:100], digits[1][:100]
    with pytest.raises(ValueError, match=r"\['block_size'\] belong to the guided method 'units'"):
        ContinualClassifier(projection="guided", projection_params={"block_size": 5}).fit(X, y)
    with pytest.raises(ValueError, match="ReLU layer's kernel"):
        ContinualClassifier(projection="guided", activation="tanh").fit(X, y)


def test_bad_settings_are_refused(digits):
    X, y = digits[0][:100], digits[1][:100]
    with pytest.raises(ValueError, match="only to projection='guided'"):
        ContinualClassifier(projection_params={"block_size": 5}).fit(X, y)
    with pytest.raises(ValueError, match="unknown projection_params"):
        ContinualClassifier(projection="guided", projection_params={"radius": 3}).fit(X, y)


@pytest.mark.parametrize(
    "settings",
    [
        None,
        {"n_landmarks": 120},
        {"method": "units"},
        {"method": "units", "base": 0.5},
        {"method": "units", "base": 0.0},
    ],
    ids=["kernel", "kernel-cholesky", "units", "hybrid", "selection"],
)
def test_later_partial_fit_is_exact_with_the_frozen_layer(digits, settings):
    """Task 1 selects the layer; tasks 2..5 stream in. The result equals one fit on the union
    of all five tasks with that same layer (built by fitting task 1, forgetting it, and
    learning the union in a single call)."""
    X, y = digits
    tasks = [np.isin(y, [2 * t, 2 * t + 1]) for t in range(5)]
    params = dict(
        projection="guided",
        n_components=120,
        alpha=0.5,
        random_state=4,
        projection_params=settings,
    )
    if "fit_intercept" in ContinualClassifier().get_params():
        params["fit_intercept"] = False  # so the direct solve below needs no centring
    stream = ContinualClassifier(**params)
    for mask in tasks:
        stream.partial_fit(X[mask], y[mask])
    assert stream.projection_.report["n_guiding_classes"] == 2  # selected on task 1 only

    joint = ContinualClassifier(**params).fit(X[tasks[0]], y[tasks[0]])
    assert joint.projection_.same_as(stream.projection_)
    joint.forget(X[tasks[0]], y[tasks[0]])
    assert joint.n_samples_seen_ == 0
    order = np.random.default_rng(0).permutation(len(y))
    joint.partial_fit(X[order], y[order])
    np.testing.assert_allclose(joint.coef_, stream.coef_, rtol=1e-9, atol=1e-12)

    # And against a direct solve on the union's projected features.
    H = stream.projection_.transform(X)
    direct = ridge_solve(H.T @ H, H.T @ np.eye(10)[y], 0.5)
    np.testing.assert_allclose(stream.coef_.T, direct, rtol=1e-9, atol=1e-9)
    assert stream.score(X, y) > 0.9


def test_units_layer_in_float32_keeps_large_features_apart(digits):
    # row norms whose square overflows float32 (about 5e21 here, within the layer's 1e60
    # bound) made every row act(offset): a model at chance, fitted without an error
    X, y = digits
    X, Xt, y, yt = X[::2], X[1::2], y[::2], y[1::2]
    scores = {}
    for dtype in ("float64", "float32"):
        clf = ContinualClassifier(
            projection="guided", n_components=100, projection_params={"method": "units"},
            random_state=0, compute_dtype=dtype,
        )  # fmt: skip
        clf.fit(X * 1e20, y)
        scores[dtype] = (clf.predict(Xt * 1e20) == yt).mean()
    assert scores["float32"] > 0.85 and abs(scores["float32"] - scores["float64"]) < 0.02


@pytest.mark.parametrize(
    "setting, words",
    [
        ({"max_condition": float("inf")}, "max_condition must be a finite number"),
        ({"weights": np.array(["auto"])}, "weights must be one of"),
        ({"input_norm": np.array(["l2", "none"])}, "input_norm must be one of"),
    ],
)
def test_units_settings_that_could_not_be_saved_are_refused_first(digits, setting, words):
    # they trained, then save failed (inf is no JSON; an array no JSON either) or numpy's
    # "truth value is ambiguous" came first
    X, y = digits
    clf = ContinualClassifier(
        projection="guided", n_components=20, projection_params={"method": "units", **setting}
    )
    with pytest.raises(ValueError, match=words):
        clf.fit(X[:200], y[:200])


@pytest.mark.parametrize("params", [None, {"method": "units"}])
def test_guided_model_does_not_depend_on_the_inputs_memory_layout(params, tmp_path):
    """The same values in Fortran order (a DataFrame's usual layout) give the same model file
    bit for bit, so learners fitted on either merge: the guided layers reduce over the rows
    in memory order, which had given another layer."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]

    def saved(rows, name):
        clf = ContinualClassifier(
            projection="guided", n_components=60, alpha=1.0, projection_params=params
        ).fit(rows, y)
        clf.save(tmp_path / name)
        return clf, (tmp_path / name).read_bytes()

    c_order, c_bytes = saved(np.ascontiguousarray(X), "c.fl")
    f_order, f_bytes = saved(np.asfortranarray(X), "f.fl")
    assert c_bytes == f_bytes
    c_order.merge(f_order)
