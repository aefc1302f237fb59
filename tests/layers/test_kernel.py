"""The guided kernel layer: its kernel, its landmarks, determinism, storage and hostile files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import load_digits

from conftest import require
from forgetless import ContinualClassifier
from forgetless._install import install_line
from forgetless.layers import GuidedKernelProjection, layer_from_config, make_layer
from forgetless.layers.kernel import arc_cosine_kernel, nystroem_transform, population_draws
from forgetless.layers.random import RandomProjection


def _data(n=400, d=12, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d)) * 2
    y = rng.integers(0, classes, n)
    return centres[y] + rng.standard_normal((n, d)), y


def test_arc_cosine_kernel_is_the_limit_of_a_wide_relu_layer():
    """k(x, x') / (2 pi d) is what relu(x W) . relu(x' W) / M tends to as M grows: a layer of
    200,000 units agrees to 2 % (its Monte Carlo error is about 0.5 %)."""
    X, _ = _data(n=6)
    d = X.shape[1]
    wide = RandomProjection("gaussian", d, 200_000, seed=0).transform(X)
    empirical = wide @ wide.T / wide.shape[1]
    exact = arc_cosine_kernel(X, X) / (2 * math.pi * d)
    np.testing.assert_allclose(empirical, exact, rtol=0.02)


def test_population_draws_have_the_between_and_within_class_covariances():
    """Means drawn as sum_c z_c (m_c - mu) / sqrt(C - 1) have covariance B exactly in
    expectation; checked on 40,000 draws against B and W computed directly."""
    X, y = _data(n=300, d=4, classes=5)
    rng = np.random.default_rng(1)
    draws, report = population_draws(X, y, 40_000, 1, rng)
    assert report == {"n_guiding_classes": 5, "n_pseudo_classes": 40_000}
    means = np.array([X[y == c].mean(0) for c in range(5)])
    B = np.cov(means.T)
    centred = X - means[y]
    W = centred.T @ centred / (len(y) - 5)
    np.testing.assert_allclose(np.cov(draws.T), B + W, rtol=0.05, atol=0.05 * np.trace(B + W) / 4)
    np.testing.assert_allclose(draws.mean(0), means.mean(0), atol=0.05 * math.sqrt(np.trace(B + W)))


@pytest.mark.parametrize("shrinkage", [0.3, 1.0, "oas"])
def test_shrunk_draws_have_the_shrunk_covariances(shrinkage):
    """``shrinkage=r`` draws pseudo-class means from (1 - r) B + r tr(B)/d I and the points
    around them from (1 - r) W + r tr(W)/d I: the same traces, the rest spread evenly over the
    d directions ("oas": each r from scikit-learn's OAS of the rows estimating B and W). Checked
    apart on 400 pseudo-classes of 400 points: the points' spread within each, and the spread
    of their means (whose own estimate carries W / 400)."""
    from sklearn.covariance import oas

    X, y = _data(n=300, d=4, classes=5)
    draws, report = population_draws(X, y, 160_000, 400, np.random.default_rng(1), shrinkage)
    means = np.array([X[y == c].mean(0) for c in range(5)])
    between = (means - means.mean(0)) / 2.0  # sqrt(C - 1): B = between^T between
    within = (X - means[y]) / math.sqrt(300 - 5)
    B, W = between.T @ between, within.T @ within
    if shrinkage == "oas":
        r_between = oas(between, assume_centered=True)[1]
        r_within = oas(within, assume_centered=True)[1]
    else:
        r_between = r_within = shrinkage
    assert report["shrinkage"] == pytest.approx([r_between, r_within], rel=1e-9)
    B_r = (1 - r_between) * B + r_between * np.trace(B) / 4 * np.eye(4)
    W_r = (1 - r_within) * W + r_within * np.trace(W) / 4 * np.eye(4)
    groups = draws.reshape(400, 400, 4)
    centred = groups - groups.mean(axis=1, keepdims=True)
    within_seen = np.einsum("gpi,gpj->ij", centred, centred) / (400 * 399)
    np.testing.assert_allclose(within_seen, W_r, atol=0.02 * np.trace(W) / 4)
    between_seen = np.cov(groups.mean(axis=1).T) - W_r / 400
    np.testing.assert_allclose(between_seen, B_r, atol=0.15 * np.trace(B) / 4)


def test_shrinkage_reaches_beyond_the_first_batch_span():
    """Unshrunk (``shrinkage=0``), every landmark lies in the first batch's span (its rows are
    fewer than the features), so the layer reads an input only through its part in that span:
    x + v and x - v, v orthogonal to the span, get the same features. Shrunk (the default
    "oas", or a number), the layer tells them apart."""
    rng = np.random.default_rng(4)
    d = 40
    X = rng.standard_normal((24, d)) + 3 * np.eye(4, d)[np.arange(24) % 4]
    y = np.arange(24) % 4
    basis = np.linalg.qr(X.T)[0]  # the span of the rows, which holds their means and centre
    v = rng.standard_normal(d)
    v -= basis @ (basis.T @ v)
    v *= 0.5 / np.linalg.norm(v)
    x = X[:3]
    plain = GuidedKernelProjection.fit(X, y, n_components=20, seed=0, shrinkage=0.0)
    assert "shrinkage" not in plain.report
    S = plain.landmarks.astype(np.float64)
    assert np.linalg.norm(S - (S @ basis) @ basis.T) < 1e-4 * np.linalg.norm(S)
    np.testing.assert_allclose(plain.transform(x + v), plain.transform(x - v), atol=1e-4)
    default = GuidedKernelProjection.fit(X, y, n_components=20, seed=0)
    assert default.settings["shrinkage"] == "oas"
    for shrunk in (default, GuidedKernelProjection.fit(X, y, 20, seed=0, shrinkage=0.2)):
        gap = np.abs(shrunk.transform(x + v) - shrunk.transform(x - v)).max()
        assert gap > 0.01 * np.abs(shrunk.transform(x)).max()
        between, within = shrunk.report["shrinkage"]
        assert 0 < between <= 1 and 0 < within <= 1
    assert default.report["shrinkage"][1] > 0.1  # OAS: 24 rows against 40 features


def test_shrinkage_zero_draws_what_the_layer_drew_before_the_setting():
    """The unshrunk draws take the same random numbers in the same order as before the
    setting existed (the isotropic parts are drawn after them, and only when used), the
    classes taken in the order they first appear in the rows."""
    X, y = _data(n=50, d=6, classes=3, seed=1)
    appearance = list(dict.fromkeys(y.tolist()))
    assert appearance != sorted(appearance)  # so the test tells the two orders apart
    draws, _ = population_draws(X, y, 100, 20, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    means = np.array([X[y == c].mean(0) for c in appearance])
    y = np.array([appearance.index(c) for c in y])
    between = (means - means.mean(0)) / math.sqrt(2)
    within = (X - means[y]) / math.sqrt(50 - 3)
    pseudo = means.mean(0) + rng.standard_normal((5, 3)) @ between
    expected = np.repeat(pseudo, 20, axis=0) + rng.standard_normal((100, 50)) @ within
    np.testing.assert_allclose(draws, expected, rtol=1e-12, atol=1e-12)


def test_landmarks_are_not_training_rows():
    X, y = _data()
    layer = GuidedKernelProjection.fit(X, y, n_components=50, seed=0)
    gaps = np.linalg.norm(layer.landmarks[:, None, :] - X[None, :, :], axis=2).min(axis=1)
    assert gaps.min() > 0.1 * np.sqrt(np.mean(np.sum((X - X.mean(0)) ** 2, axis=1)))


@pytest.mark.parametrize("n_landmarks", [60, None])
def test_features_reproduce_the_kernel_on_its_landmarks(n_landmarks):
    """With N = M the Nystroem features are exact on the landmarks: h(s) . h(s') = c k(s, s')
    (up to the float32 rounding of the stored T, amplified by cond(K_SS)). With N > M they are
    its best rank-M approximation: the error is the (M+1)-th eigenvalue (plain Nystroem, the
    default flatten=0)."""
    X, y = _data()
    layer = GuidedKernelProjection.fit(X, y, n_components=60, seed=2, n_landmarks=n_landmarks)
    S = layer.landmarks.astype(np.float64)
    K = arc_cosine_kernel(S, S)
    H = layer.transform(S)
    scale = layer.n_components / np.mean(np.diag(K))
    approx = H @ H.T / scale
    values = np.linalg.eigvalsh(K)[::-1]
    exact = n_landmarks == 60
    assert S.shape[0] == (60 if exact else 120)  # the default: twice the width
    rounding = 1e-6 * values[0] / values[-1] * values[0]  # float32 T: ~6e-8 cond(K) |K|
    tolerance = rounding if exact else 1.01 * values[60] + rounding
    assert np.linalg.norm(approx - K, 2) <= tolerance
    assert layer.report["route"] == ("cholesky" if exact else "eigh")


@pytest.mark.parametrize("device", ["numpy", "torch"])
def test_a_linear_share_adds_the_linear_kernel_on_the_landmarks(device):
    """With ``linear=b`` the features reproduce k + b x . x' on the landmarks (N = M: exactly,
    up to the float32 T), so that kernel is what the ridge head sees; the torch engine computes
    the same features."""
    X, y = _data()
    layer = GuidedKernelProjection.fit(X, y, n_components=60, seed=2, n_landmarks=60, linear=3)
    S = layer.landmarks.astype(np.float64)
    K = arc_cosine_kernel(S, S, linear=3.0)
    np.testing.assert_allclose(K, arc_cosine_kernel(S, S) + 3.0 * S @ S.T, rtol=1e-12)
    if device == "torch":
        require("torch", install_line("torch"))
        from forgetless.engine import make_engine

        H = np.vstack([h for _, _, h in make_engine("cpu").features(layer, S)])
    else:
        H = layer.transform(S)
    approx = H @ H.T * np.mean(np.diag(K)) / layer.n_components
    values = np.linalg.eigvalsh(K)
    assert np.linalg.norm(approx - K, 2) <= 1e-6 * values[-1] / values[0] * values[-1]
    plain = GuidedKernelProjection.fit(X, y, n_components=60, seed=2, n_landmarks=60)
    assert np.array_equal(plain.landmarks, layer.landmarks) and not plain.same_as(layer)


def test_flattening_takes_the_landmarks_spectrum_to_a_power():
    """With flatten=0.5 (N > M) the features of the landmarks are orthogonal with variances
    proportional to the kernel's top eigenvalues to the power 1/2: their condition is the
    square root of plain Nystroem's (the default, flatten=0), the directions are the same, and
    the features' mean square on the landmarks is unchanged. With N = M a flattened layer takes
    the eigendecomposition too."""
    X, y = _data()
    flat = GuidedKernelProjection.fit(X, y, n_components=40, seed=3, flatten=0.5)
    plain = GuidedKernelProjection.fit(X, y, n_components=40, seed=3)
    assert plain.settings["flatten"] == 0.0 and np.array_equal(flat.landmarks, plain.landmarks)
    S = flat.landmarks.astype(np.float64)
    top = np.linalg.eigvalsh(arc_cosine_kernel(S, S))[::-1][:40]
    Hf, Hp = flat.transform(S), plain.transform(S)
    variances = np.linalg.eigvalsh(Hf.T @ Hf)
    np.testing.assert_allclose(
        variances.max() / variances.min(), np.sqrt(top[0] / top[-1]), rtol=1e-3
    )
    np.testing.assert_allclose((Hf**2).sum(), (Hp**2).sum(), rtol=1e-4)
    # the same column space: each flattened feature is a plain one rescaled
    ratio = np.linalg.norm(Hf, axis=0) / np.linalg.norm(Hp, axis=0)
    np.testing.assert_allclose(Hf, Hp * ratio, rtol=1e-3, atol=1e-4 * np.abs(Hp).max())
    # N = M: plain Nystroem factorises; a flattened layer needs the eigenpairs, and whitened
    # (flatten=1) features of the landmarks all have the same variance
    square = GuidedKernelProjection.fit(X, y, n_components=40, seed=3, n_landmarks=40, flatten=1)
    plain_square = GuidedKernelProjection.fit(X, y, n_components=40, seed=3, n_landmarks=40)
    assert (square.report["route"], plain_square.report["route"]) == ("eigh", "cholesky")
    H = square.transform(square.landmarks.astype(np.float64))
    variances = np.linalg.eigvalsh(H.T @ H)
    assert variances.max() / variances.min() < 1.01


@pytest.mark.parametrize("setting, bad", [("flatten", 2), ("linear", -1), ("shrinkage", 1.5)])
def test_a_file_written_before_a_setting_reads_as_without_it(monkeypatch, setting, bad):
    """Layers saved without ``flatten``, ``linear`` or ``shrinkage`` were plain Nystroem of the
    ReLU kernel on unshrunk draws:
    they load as 0, so they still describe (and merge with) what their arrays compute, whatever
    the default becomes; and they compute the same features."""
    from forgetless.layers import kernel

    monkeypatch.setitem(kernel.DEFAULTS, setting, 0.5)  # a later default must not leak in
    X, y = _data()
    layer = GuidedKernelProjection.fit(X, y, n_components=20, seed=0, **{setting: 0.0})
    config = layer.config()
    old = dict(config, settings={k: v for k, v in config["settings"].items() if k != setting})
    again = layer_from_config(old, layer.arrays())
    assert again.settings[setting] == 0.0 and again.same_as(layer)
    assert np.array_equal(again.transform(X), layer.transform(X))
    with pytest.raises(ValueError, match=setting):
        layer_from_config(
            dict(config, settings=dict(config["settings"], **{setting: bad})), layer.arrays()
        )


def test_same_seed_same_layer_bit_for_bit_and_another_seed_differs():
    X, y = _data()
    a = GuidedKernelProjection.fit(X, y, n_components=30, seed=7)
    b = GuidedKernelProjection.fit(X, y, n_components=30, seed=7)
    c = GuidedKernelProjection.fit(X, y, n_components=30, seed=8)
    assert a.same_as(b) and not a.same_as(c)
    assert a.transform(X).tobytes() == b.transform(X).tobytes()


def test_renaming_the_classes_changes_nothing():
    """Labels whose sort order differs ("zero".."nine" against 0..9) give the same layer, bit
    for bit, and the same predictions: the draw follows the rows, not the labels' order."""
    X, y = load_digits(return_X_y=True)
    names = np.array("zero one two three four five six seven eight nine".split())
    digits = ContinualClassifier(projection="guided", n_components=200, random_state=0)
    named = ContinualClassifier(projection="guided", n_components=200, random_state=0)
    digits.partial_fit(X[:600], y[:600])
    named.partial_fit(X[:600], names[y[:600]])
    assert named.projection_.same_as(digits.projection_)
    for name, array in digits.projection_.arrays().items():
        assert array.tobytes() == named.projection_.arrays()[name].tobytes()
    assert np.array_equal(named.predict(X[600:]), names[digits.predict(X[600:])])


def test_one_class_and_one_row_per_class_still_build():
    X, y = _data(n=60)
    one_class = GuidedKernelProjection.fit(X, np.zeros(60, dtype=int), n_components=20, seed=0)
    assert np.all(np.isfinite(one_class.transform(X)))
    singletons = GuidedKernelProjection.fit(X[:5], np.arange(5), n_components=5, seed=0)
    assert np.all(np.isfinite(singletons.transform(X)))


def test_zero_rows_map_to_zero():
    X, y = _data()
    layer = GuidedKernelProjection.fit(X, y, n_components=10, seed=0)
    assert np.array_equal(layer.transform(np.zeros((2, X.shape[1]))), np.zeros((2, 10)))


def test_bad_settings_and_data_are_refused_by_name():
    X, y = _data()
    with pytest.raises(ValueError, match="n_landmarks"):
        GuidedKernelProjection.fit(X, y, n_components=30, n_landmarks=10)
    with pytest.raises(ValueError, match="draws_per_class"):
        GuidedKernelProjection.fit(X, y, n_components=30, draws_per_class=0)
    with pytest.raises(ValueError, match="unknown projection_params"):
        GuidedKernelProjection.fit(X, y, n_components=30, radius=2)
    with pytest.raises(ValueError, match="NaN"):
        GuidedKernelProjection.fit(np.full((5, 3), np.nan), np.zeros(5, dtype=int), 3)
    with pytest.raises(ValueError, match="flatten"):
        GuidedKernelProjection.fit(X, y, n_components=30, flatten=-0.5)
    with pytest.raises(ValueError, match="flatten"):
        GuidedKernelProjection.fit(X, y, n_components=30, flatten="half")
    for linear in (-0.1, float("nan"), float("inf"), True, "3", 1e7):
        with pytest.raises(ValueError, match="linear must be"):
            GuidedKernelProjection.fit(X, y, n_components=30, linear=linear)
    for shrinkage in (-0.1, 1.01, float("nan"), True, "OAS", "0.1", np.array([0.1, 0.2])):
        with pytest.raises(ValueError, match="shrinkage must be"):
            GuidedKernelProjection.fit(X, y, n_components=30, shrinkage=shrinkage)
    with pytest.raises(ValueError, match="shrinkage must be") as refused:  # quoted, not echoed
        GuidedKernelProjection.fit(X, y, n_components=30, shrinkage="x" * 100_000)
    assert len(str(refused.value)) < 200
    with pytest.raises(ValueError, match="ReLU"):
        GuidedKernelProjection.fit(X, y, n_components=30, activation="tanh")
    with pytest.raises(ValueError, match="independent directions"):
        nystroem_transform(np.ones((4, 4)), 3)  # rank 1: three directions do not exist


def test_saved_layer_round_trip_and_hostile_arrays():
    X, y = _data()
    layer = make_layer("guided", X.shape[1], 25, seed=1, X=X, y_index=y)
    assert isinstance(layer, GuidedKernelProjection)
    config, arrays = layer.config(), layer.arrays()
    again = layer_from_config(config, arrays)
    assert again.same_as(layer) and again.signature() == layer.signature()
    assert arrays["landmarks"].dtype == arrays["transform"].dtype == np.float32
    with pytest.raises(ValueError, match="stored as float32"):
        layer_from_config(config, dict(arrays, transform=arrays["transform"].astype(np.float64)))
    with pytest.raises(ValueError, match="exactly its arrays"):
        layer_from_config(config, {"landmarks": arrays["landmarks"]})
    bad = dict(arrays, transform=np.full_like(arrays["transform"], np.inf))
    with pytest.raises(ValueError, match="NaN or infinity"):
        layer_from_config(config, bad)
    with pytest.raises(ValueError, match="do not fit together"):
        layer_from_config(config, dict(arrays, transform=arrays["transform"][:-1]))
    with pytest.raises(ValueError, match="do not match the config"):
        layer_from_config(dict(config, n_components=24), arrays)
    with pytest.raises(ValueError, match="unknown projection_params"):
        layer_from_config(dict(config, settings={"radius": 1}), arrays)


def test_degenerate_landmarks_are_refused_by_either_route():
    """Rank-1 landmark kernels have one direction: asking for 3 is refused whether the layer
    would factorise (N = M) or decompose (N > M), never answered with a blown-up transform."""
    for n in (3, 4):
        with pytest.raises(ValueError, match="independent directions"):
            nystroem_transform(np.ones((n, n)), 3)


@pytest.mark.parametrize("scale", [1e-150, 1e-20, 1e22, 1e30, 1e150])
def test_features_far_from_unit_scale_give_the_same_classifier(scale):
    """T scales like 1 / |x|^2 and is stored in float32: it underflowed to zero above ~1e19
    (every input got one class, silently) and overflowed below ~1e-19."""
    from forgetless import ContinualClassifier

    X, y = _data(n=300, d=8)
    settings = dict(projection="guided", n_components=40, alpha=1.0, random_state=0)
    plain = ContinualClassifier(**settings).fit(X[:200], y[:200])
    scaled = ContinualClassifier(**settings).fit(X[:200] * scale, y[:200])
    T = scaled.projection_.transform_matrix
    assert np.all(np.isfinite(T)) and np.count_nonzero(T) == T.size
    agree = np.mean(scaled.predict(X[200:] * scale) == plain.predict(X[200:]))
    assert agree > 0.95


@pytest.mark.parametrize(
    "compute_dtype, fine, too_small", [("float64", 1e-150, 1e-160), ("float32", 1e-18, 1e-25)]
)
def test_tiny_features_suit_the_kernel_layer_down_to_where_their_squares_underflow(
    compute_dtype, fine, too_small
):
    """The layer rescales its input, so tiny features give the same classifier; below the
    square root of the smallest normal number every layer refuses them (the float32 layer
    divided by norms of 0 and reported an overflow; float64 blamed its landmarks)."""
    from forgetless import ContinualClassifier

    X, y = _data(n=300, d=8)
    settings = dict(projection="guided", n_components=40, alpha=1.0, random_state=0)
    settings["compute_dtype"] = compute_dtype
    plain = ContinualClassifier(**settings).fit(X[:200], y[:200])
    scaled = ContinualClassifier(**settings).fit(X[:200] * fine, y[:200])
    assert np.mean(scaled.predict(X[200:] * fine) == plain.predict(X[200:])) > 0.95
    with pytest.raises(ValueError, match="too small for compute_dtype.*squares underflow"):
        ContinualClassifier(**settings).fit(X[:200] * too_small, y[:200])


def test_features_whose_squares_overflow_are_refused_by_name():
    """Beyond about 1e154 the kernel's |x|^2 overflows: a clear refusal (it was Python's
    'cannot convert float infinity to integer'), and a fitted learner stays as it was."""
    from forgetless import ContinualClassifier

    X, y = _data(n=300, d=8)
    settings = dict(projection="guided", n_components=40, alpha=1.0, random_state=0)
    with pytest.raises(ValueError, match="too large for the guided kernel layer.*overflow"):
        ContinualClassifier(**settings).fit(X[:200] * 1e155, y[:200])
    clf = ContinualClassifier(**settings).fit(X[:200] * 1e150, y[:200])
    before = clf.decision_function(X[200:] * 1e150)
    with pytest.raises(ValueError, match="too large"):
        clf.partial_fit(X[200:] * 1e156, y[200:])
    np.testing.assert_array_equal(clf.decision_function(X[200:] * 1e150), before)


def test_kernel_settings_too_large_to_build_are_refused_before_any_work():
    from forgetless import ContinualClassifier

    X, y = _data(n=60, d=4)
    with pytest.raises(ValueError, match="n_landmarks must be at most"):
        ContinualClassifier(
            projection="guided", n_components=8, projection_params={"n_landmarks": 10**6}
        ).fit(X, y)
    with pytest.raises(ValueError, match="needs 25000 landmarks for n_components=25000"):
        GuidedKernelProjection.fit(X, y, 25000)
    layer = GuidedKernelProjection.fit(X, y, 8, draws_per_class=10**12)  # one pseudo-class
    assert layer.landmarks.shape[0] == 16
