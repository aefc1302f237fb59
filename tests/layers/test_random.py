"""Random layers: orthogonality, kernel approximation, determinism, chunking, storage, identity."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from forgetless.layers import (
    KINDS,
    RANDOM_KINDS,
    RandomProjection,
    build_bytes,
    check_layer_params,
    fwht,
    layer_from_config,
    make_layer,
)

REFERENCE = Path(__file__).with_name("reference_layers.npz")


@pytest.mark.parametrize(
    "kind, d, m",
    [("orthogonal", 20, 70), ("hadamard", 20, 70), ("hadamard", 32, 64), ("orthogonal", 1, 3)],
)
def test_blocks_are_orthogonal(kind, d, m):
    layer = RandomProjection(kind, n_features=d, n_components=m, seed=1)
    blocks = layer.orthogonal_blocks()
    assert len(blocks) == -(-m // blocks[0].shape[0])
    for block in blocks:
        err = np.linalg.norm(block @ block.T - np.eye(block.shape[0]), ord=2)
        assert err <= 1e-10


def test_hadamard_matches_its_explicit_matrix():
    layer = RandomProjection(
        "hadamard", n_features=12, n_components=40, seed=2, activation="identity"
    )
    X = np.random.default_rng(0).standard_normal((5, 12))
    explicit = np.hstack(
        [np.hstack([X, np.zeros((5, 4))]) @ b.T for b in layer.orthogonal_blocks()]
    )[:, :40]
    np.testing.assert_allclose(
        layer.transform(X), explicit * np.sqrt(16) / np.sqrt(12), rtol=1e-12, atol=1e-12
    )


def test_orthogonal_columns_have_gaussian_norms():
    d, m = 64, 4096
    ortho = RandomProjection("orthogonal", d, m, seed=0, activation="identity").weights
    gauss = RandomProjection("gaussian", d, m, seed=0, activation="identity").weights
    a, b = np.linalg.norm(ortho, axis=0), np.linalg.norm(gauss, axis=0)
    assert abs(a.mean() - b.mean()) < 0.02 and abs(a.std() - b.std()) < 0.02


def test_fourier_features_approximate_rbf_kernel():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 10)) * 0.4
    gamma = 0.5
    layer = RandomProjection("fourier", n_features=10, n_components=4000, seed=0, gamma=gamma)
    H = layer.transform(X)
    exact = np.exp(-gamma * ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    assert np.abs(H @ H.T - exact).mean() <= 0.05


def test_ranpac_scale_is_plain_standard_normal():
    unit = RandomProjection("gaussian", 100, 50, seed=4, scale="unit")
    ranpac = RandomProjection("gaussian", 100, 50, seed=4, scale="ranpac")
    np.testing.assert_allclose(ranpac.weights, unit.weights * 10.0)


def _reference_cases():
    for kind in RANDOM_KINDS:
        activations = ["cos"] if kind == "fourier" else ["relu", "gelu", "tanh", "sigmoid"]
        for activation in [*activations, "identity"] if kind != "fourier" else activations:
            for bias in (False, True):
                yield kind, activation, bias


def test_layers_equal_those_of_the_previous_module():
    """Models are saved as seeds, so a layer must stay the one its seed gave before: outputs
    recorded with the module these layers replaced (``projection.py``, commit 13ee027). The
    random draws are compared exactly; outputs to the last bits (BLAS and libm may differ
    between machines, not between runs)."""
    ref = np.load(REFERENCE)
    X = np.random.default_rng(0).standard_normal((4, 12))
    for kind, activation, bias in _reference_cases():
        layer = RandomProjection(kind, 12, 24, seed=11, activation=activation, bias=bias)
        np.testing.assert_allclose(
            layer.transform(X), ref[f"{kind}.{activation}.{int(bias)}.H"], rtol=1e-13, atol=1e-15
        )
    for kind in RANDOM_KINDS:
        layer = RandomProjection(kind, 12, 24, seed=11, bias=True)
        for name, value in layer.parameters().items():
            expected = ref[f"{kind}.{name}"]
            if kind == "orthogonal" and name == "weights":  # through LAPACK's QR
                np.testing.assert_allclose(value, expected, rtol=1e-13, atol=1e-15)
            else:
                np.testing.assert_array_equal(value, expected)
    hadamard = RandomProjection("hadamard", 12, 24, seed=11, activation="identity")
    np.testing.assert_array_equal(hadamard.transform(X), ref["hadamard.identity.0.H"])


@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_config_round_trip_and_determinism(kind):
    layer = RandomProjection(kind, n_features=9, n_components=30, seed=5, bias=kind != "fourier")
    again = RandomProjection.from_config(layer.config())
    X = np.random.default_rng(1).standard_normal((7, 9))
    np.testing.assert_array_equal(layer.transform(X), again.transform(X))
    assert again.same_as(layer) and layer.same_as(again)
    other = RandomProjection(kind, n_features=9, n_components=30, seed=6)
    assert not other.same_as(layer)
    if kind != "none":
        assert not np.array_equal(layer.transform(X), other.transform(X))


@pytest.mark.parametrize("kind", RANDOM_KINDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chunked_transform_equals_whole(kind, dtype):
    layer = RandomProjection(kind, n_features=9, n_components=30, seed=5)
    X = np.random.default_rng(1).standard_normal((50, 9))
    parts = np.vstack([H for _, _, H in layer.iter_transform(X, dtype, chunk_size=7)])
    whole = layer.transform(X, dtype)
    assert parts.dtype == whole.dtype == dtype
    tol = 1e-13 if dtype == np.float64 else 1e-6  # BLAS rounds row blocks of other sizes apart
    np.testing.assert_allclose(parts, whole, rtol=tol, atol=tol)


def test_hadamard_row_blocks_do_not_change_the_result():
    """The numpy path transforms a few rows at a time (cache blocking): any row count and
    any memory order of X gives the same bits as one row at a time."""
    layer = RandomProjection("hadamard", n_features=100, n_components=300, seed=3, bias=True)
    X = np.random.default_rng(2).standard_normal((333, 100))
    whole = layer.transform(X)
    rows = np.vstack([layer.transform(X[i : i + 1]) for i in range(X.shape[0])])
    np.testing.assert_array_equal(whole, rows)
    np.testing.assert_array_equal(layer.transform(np.asfortranarray(X)), whole)
    assert layer.transform(X[:0]).shape == (0, 300)


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "sigmoid", "identity"])
def test_activations(activation):
    layer = RandomProjection("gaussian", 4, 8, seed=0, activation=activation)
    Z = np.random.default_rng(0).standard_normal((3, 4)) @ layer.weights
    H = layer.transform(np.random.default_rng(0).standard_normal((3, 4)))
    expected = {
        "relu": np.maximum(Z, 0),
        "tanh": np.tanh(Z),
        "identity": Z,
        "sigmoid": 1 / (1 + np.exp(-Z)),
        "gelu": Z * 0.5 * (1 + np.vectorize(__import__("math").erf)(Z / np.sqrt(2))),
    }
    np.testing.assert_allclose(H, expected[activation], rtol=1e-12, atol=1e-12)


def test_input_is_never_modified():
    X = np.random.default_rng(0).standard_normal((5, 16))
    X.flags.writeable = False  # a memory map or a broadcast view
    for kind in RANDOM_KINDS:
        RandomProjection(kind, 16, 40, seed=0).transform(X)


def test_bad_layer_settings():
    with pytest.raises(ValueError, match="unknown activation"):
        RandomProjection("gaussian", 4, 8, activation="swish")
    with pytest.raises(ValueError, match="fourier projection uses cos"):
        RandomProjection("fourier", 4, 8, activation="relu")
    with pytest.raises(ValueError, match="expects \\(n, 4\\)"):
        RandomProjection("gaussian", 4, 8).transform(np.ones((2, 5)))
    with pytest.raises(ValueError, match="expects \\(n, 4\\)"):
        next(RandomProjection("gaussian", 4, 8).iter_transform(np.ones((2, 5))))
    with pytest.raises(ValueError, match="unknown projection 'gauss'.*guided"):
        RandomProjection("gauss", 4, 8)


def test_check_layer_params_refuses_what_cannot_go_together():
    check_layer_params("fourier", None, None)
    check_layer_params("guided", "tanh", {"method": "units", "block_size": 5})
    check_layer_params("guided", None, {"n_landmarks": 50})
    with pytest.raises(ValueError, match="ReLU layer's kernel"):
        check_layer_params("guided", "tanh")
    with pytest.raises(ValueError, match="belong to the guided method 'units'"):
        check_layer_params("guided", None, {"block_size": 5})
    with pytest.raises(ValueError, match="unknown guided method"):
        check_layer_params("guided", None, {"method": "magic"})
    with pytest.raises(ValueError, match="unknown projection"):
        check_layer_params("gauss")
    with pytest.raises(ValueError, match="unknown activation"):
        check_layer_params("gaussian", "swish")
    with pytest.raises(ValueError, match="fourier projection uses cos"):
        check_layer_params("fourier", "relu")
    with pytest.raises(ValueError, match="belongs to projection='fourier'"):
        check_layer_params("gaussian", "cos")
    with pytest.raises(ValueError, match="only to projection='guided'"):
        check_layer_params("gaussian", None, {"block_size": 5})
    with pytest.raises(ValueError, match="unknown projection_params"):
        check_layer_params("guided", None, {"radius": 5})
    with pytest.raises(ValueError, match="block_size"):
        check_layer_params("guided", None, {"method": "units", "block_size": 0})


def test_registry_builds_and_rebuilds_every_kind():
    assert KINDS == (*RANDOM_KINDS, "guided")
    X = np.random.default_rng(0).standard_normal((40, 6))
    y = (X[:, 0] > 0).astype(np.int64)
    for kind in KINDS:
        layer = make_layer(kind, 6, 12, seed=1, X=X, y_index=y)
        assert layer.kind == kind
        again = layer_from_config(layer.config(), layer.arrays())
        assert again.same_as(layer)
        np.testing.assert_array_equal(again.transform(X), layer.transform(X))
    with pytest.raises(ValueError, match="only to projection='guided'"):
        make_layer("gaussian", 6, 12, seed=1, params={"block_size": 3})
    with pytest.raises(ValueError, match="labelled data"):
        make_layer("guided", 6, 12, seed=1)
    with pytest.raises(ValueError, match="unknown projection 'tpu'"):
        layer_from_config({"kind": "tpu"})
    config = make_layer("gaussian", 6, 12, seed=1).config()
    with pytest.raises(ValueError, match="unexpected arrays"):
        layer_from_config(config, {"weights": np.zeros((6, 12))})
    with pytest.raises(ValueError, match="may hold"):
        layer_from_config({**config, "extra": 1})


def test_same_as_compares_kind_settings_and_seed():
    base = RandomProjection("gaussian", 8, 16, seed=0)
    assert base.same_as(RandomProjection("gaussian", 8, 16, seed=0))
    for other in (
        RandomProjection("gaussian", 8, 16, seed=1),
        RandomProjection("gaussian", 8, 17, seed=0),
        RandomProjection("gaussian", 8, 16, seed=0, activation="tanh"),
        RandomProjection("orthogonal", 8, 16, seed=0),
        "not a layer",
    ):
        assert not base.same_as(other)


@pytest.mark.parametrize(
    "kind, d, m",
    [
        ("gaussian", 300, 2000),
        ("orthogonal", 300, 2000),
        ("orthogonal", 700, 500),
        ("hadamard", 300, 2000),
        ("fourier", 300, 2000),
        ("none", 300, 1),
    ],
)
def test_build_bytes_bounds_what_building_allocates(kind, d, m):
    config = RandomProjection(kind, 2, 2, seed=0).config() | {"n_features": d, "n_components": m}
    config["bias"] = kind != "fourier"
    estimate = build_bytes(config)
    tracemalloc.start()
    try:
        layer_from_config(config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # an upper bound of the large allocations (a few KiB of small objects aside), not far above
    assert peak <= estimate + 2**16 and estimate <= 2 * peak + 2**16, (peak, estimate)


def test_build_bytes_refuses_nonsense_before_building():
    config = RandomProjection("orthogonal", 2, 2, seed=0).config()
    huge = build_bytes(config | {"n_features": 100_000, "n_components": 1_000_000})
    assert huge > 3 * 10**12  # terabytes: the caller refuses it, and nothing was allocated
    for bad in ({"n_features": -1}, {"n_features": "9"}, {"n_components": True}, {"kind": "x"}):
        with pytest.raises(ValueError):
            build_bytes(config | bad)
    with pytest.raises(ValueError, match="dict"):
        build_bytes(["orthogonal"])


def test_fwht_is_orthogonal_and_involutive():
    X = np.random.default_rng(0).standard_normal((3, 64))
    np.testing.assert_allclose(fwht(fwht(X)), X, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(fwht(X), axis=1), np.linalg.norm(X, axis=1))
    F = np.asfortranarray(X)
    np.testing.assert_array_equal(fwht(F), fwht(X))  # any memory order; the input is kept
    np.testing.assert_array_equal(F, X)
    with pytest.raises(ValueError, match="power-of-two"):
        fwht(np.ones((2, 6)))


def test_a_gamma_whose_weights_would_overflow_is_refused_by_name():
    """sqrt(2 gamma) overflowed at gamma = 1e308, and the error blamed X's features."""
    from forgetless import ContinualClassifier

    X = np.random.default_rng(0).standard_normal((40, 4))
    with pytest.raises(ValueError, match=r"'gamma' parameter .* range \(0.0, 1e\+100\]"):
        ContinualClassifier(projection="fourier", n_components=8, gamma=1e308).fit(X, X[:, 0] > 0)


def test_fourier_kernel_narrower_than_the_rows_is_warned():
    """The default gamma (1 / d) on digits' pixels of 0..16: gamma |x - x'|^2 about 70 between
    typical rows, so the learner fitted its training rows (97 %) and predicted test rows at
    chance (17 %), silently. It now warns with a gamma that fits (at the user's line); a
    suitable gamma, or standardised features, learns without a warning."""
    import warnings

    from sklearn.datasets import load_digits

    from forgetless import ContinualClassifier
    from forgetless.layers.random import KernelWidthWarning

    X, y = load_digits(return_X_y=True)
    clf = ContinualClassifier(projection="fourier", n_components=500, random_state=0)
    with pytest.warns(KernelWidthWarning, match="use gamma about") as caught:
        clf.fit(X[:1200], y[:1200])
    assert len(caught) == 1 and caught[0].filename == __file__
    # heads that read the projected rows themselves, once per learner however many batches
    for head in ("rls", "owm"):
        clf = ContinualClassifier(projection="fourier", n_components=200, head=head, alpha=1.0)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            for part in np.array_split(np.arange(1200), 4):
                clf.partial_fit(X[part], y[part])
        assert sum(issubclass(w.category, KernelWidthWarning) for w in seen) == 1, head
    # where warnings are errors, the call raises with nothing learned (a retry would
    # otherwise learn the batch twice)
    clf = ContinualClassifier(projection="fourier", n_components=200, alpha=1.0)
    for attempt in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("error", KernelWidthWarning)
            with pytest.raises(KernelWidthWarning):
                clf.partial_fit(X[:300], y[:300])
        assert not hasattr(clf, "statistics_"), attempt
    standard = (X - X.mean(0)) / (X.std(0) + 1e-9)
    for rows, gamma in ((X, 1.0 / (64 * X.var())), (standard, None)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", KernelWidthWarning)
            clf = ContinualClassifier(
                projection="fourier", n_components=500, gamma=gamma, random_state=0
            ).fit(rows[:1200], y[:1200])
        assert (clf.predict(rows[1200:]) == y[1200:]).mean() > 0.9
