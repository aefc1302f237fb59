"""Random layers: orthogonality, kernel approximation, determinism, chunking."""

from __future__ import annotations

import numpy as np
import pytest

from forgetless.projection import KINDS, RandomProjection, fwht


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


@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trip_and_determinism(kind):
    layer = RandomProjection(kind, n_features=9, n_components=30, seed=5, bias=kind != "fourier")
    again = RandomProjection.from_config(layer.config())
    X = np.random.default_rng(1).standard_normal((7, 9))
    np.testing.assert_array_equal(layer.transform(X), again.transform(X))
    other = RandomProjection(kind, n_features=9, n_components=30, seed=6)
    if kind != "none":
        assert not np.array_equal(layer.transform(X), other.transform(X))


@pytest.mark.parametrize("kind", KINDS)
def test_chunked_transform_equals_whole(kind):
    layer = RandomProjection(kind, n_features=9, n_components=30, seed=5)
    X = np.random.default_rng(1).standard_normal((50, 9))
    parts = np.vstack([H for _, _, H in layer.iter_transform(X, chunk_size=7)])
    np.testing.assert_allclose(parts, layer.transform(X), rtol=1e-13, atol=1e-13)


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


def test_bad_layer_settings():
    with pytest.raises(ValueError, match="unknown activation"):
        RandomProjection("gaussian", 4, 8, activation="swish")
    with pytest.raises(ValueError, match="fourier projection uses cos"):
        RandomProjection("fourier", 4, 8, activation="relu")
    with pytest.raises(ValueError, match="expects \\(n, 4\\)"):
        RandomProjection("gaussian", 4, 8).transform(np.ones((2, 5)))


def test_fwht_is_orthogonal_and_involutive():
    X = np.random.default_rng(0).standard_normal((3, 64))
    np.testing.assert_allclose(fwht(fwht(X)), X, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(fwht(X), axis=1), np.linalg.norm(X, axis=1))
