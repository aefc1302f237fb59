"""Compute engines: the numpy engine equals the layers' own transform; the torch engine (on the
CPU, and on a GPU where there is one) agrees with it for every layer kind and activation."""

from __future__ import annotations

import copy
import pickle
import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

from conftest import require
from forgetless import ContinualClassifier
from forgetless._install import install_line
from forgetless.engine import NumpyEngine, make_engine
from forgetless.layers import ACTIVATIONS, KINDS, RANDOM_KINDS, make_layer
from forgetless.linalg import HOST, ridge_solve
from forgetless.statistics import SufficientStatistics

TORCH_HINT = install_line("torch")


@pytest.fixture(scope="module")
def torch():
    return require("torch", TORCH_HINT)


@pytest.fixture(params=["cpu", "cuda"])
def device(request, torch):
    """Every torch test runs on the CPU, and again on a GPU where there is one."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    return request.param


@pytest.fixture(scope="module")
def digits():
    return load_digits(return_X_y=True)


def _data(n=200, d=24, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (np.abs(X[:, :classes]).argmax(axis=1)).astype(np.int64)
    return X, y


def _layers(d=24, m=40):
    """One layer of every kind with its default activation, plus every other activation."""
    X, y = _data(d=d)
    for kind in KINDS:
        yield make_layer(kind, d, m, seed=3, X=X, y_index=y, params=_small(kind))
    yield make_layer("guided", d, m, seed=3, X=X, y_index=y)  # the kernel method
    for activation in ACTIVATIONS:
        if activation not in ("cos", "relu"):
            yield make_layer("gaussian", d, m, seed=3, activation=activation, bias=True)
            yield make_layer("hadamard", d, m, seed=3, activation=activation, bias=True)
            yield make_layer(
                "guided", d, m, seed=3, activation=activation, X=X, y_index=y, params=UNITS
            )


def _small(kind):
    return {**UNITS, "block_size": 10} if kind == "guided" else None


UNITS = {"method": "units"}


def _label(layer):
    method = layer.config().get("method", "")
    return f"{layer.kind}{'-' + method if method else ''}-{layer.activation}"


LAYERS = list(_layers())


# ---------------------------------------------------------------------- the numpy engine
@pytest.mark.parametrize("layer", LAYERS, ids=_label)
@pytest.mark.parametrize("compute_dtype", ["float64", "float32"])
def test_numpy_engine_is_the_layers_own_transform(layer, compute_dtype):
    X, y = _data()
    engine = make_engine(None, compute_dtype)
    dtype = np.dtype(compute_dtype)
    got = list(engine.features(layer, X, chunk_size=64))
    want = list(layer.iter_transform(X, dtype, chunk_size=64))
    assert [(a, b) for a, b, _ in got] == [(0, 64), (64, 128), (128, 192), (192, 200)]
    for (_, _, H), (_, _, ref) in zip(got, want, strict=True):
        assert H.dtype == dtype
        np.testing.assert_array_equal(H, ref)
    stats = engine.statistics(layer, X, y, 5, True, 64)
    ref = SufficientStatistics(layer.n_outputs, 5, True)
    for start, stop, H in want:
        ref.add(H, y[start:stop])
    np.testing.assert_array_equal(stats.gram, ref.gram)
    np.testing.assert_array_equal(stats.class_sums, ref.class_sums)
    np.testing.assert_array_equal(stats.counts, ref.counts)
    np.testing.assert_array_equal(stats.class_gram(2), ref.class_gram(2))


def test_numpy_engine_scores_and_checks():
    layer = make_layer("orthogonal", 24, 40, seed=0)
    X, y = _data()
    engine = make_engine(None, "float64")
    assert isinstance(engine, NumpyEngine) and engine.linalg is HOST
    coef = np.random.default_rng(1).standard_normal((40, 3))
    intercept = np.array([0.5, -1.0, 0.0])
    want = layer.transform(X) @ coef + intercept
    got = np.vstack([S for _, _, S in engine.scores(layer, X, coef, intercept, 50)])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    best = np.concatenate([b for _, _, b in engine.scores(layer, X, coef, intercept, 50, True)])
    np.testing.assert_array_equal(best, want.argmax(1))
    with pytest.raises(ValueError, match="coef \\(40, C\\)"):
        next(engine.scores(layer, X, coef[:5], intercept))
    with pytest.raises(ValueError, match="expects \\(n, 24\\)"):
        next(engine.features(layer, X[:, :5]))
    with pytest.raises(ValueError, match="class indices must lie in \\[0, 3\\)"):
        engine.statistics(layer, X, y, 3)
    with pytest.raises(ValueError, match="one class index per row"):
        engine.statistics(layer, X, y[:-1], 5)


def test_engine_choice_errors_name_the_value_and_the_choices(monkeypatch):
    with pytest.raises(ValueError, match="'float64' or 'float32', got 'float16'"):
        make_engine(None, "float16")
    for device in ("tpu", "cuda:x", "gpu", "", 3):
        with pytest.raises(ValueError, match="not a torch device.*None \\(numpy\\), 'cpu', 'cuda'"):
            make_engine(device, "float64")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[torch\]"'):
        make_engine("cpu", "float64")
    assert make_engine(None, "float64").device is None  # numpy never needs torch


def test_engines_copy_and_pickle_without_their_cache():
    layer = make_layer("gaussian", 24, 40, seed=0)
    engine = make_engine(None, "float32")
    assert engine.parameters(layer) is engine.parameters(layer)  # converted once
    for twin in (copy.deepcopy(engine), pickle.loads(pickle.dumps(engine))):
        assert type(twin) is NumpyEngine and twin.compute_dtype == "float32"
        assert len(twin._cache) == 0


# ---------------------------------------------------------------------- the torch engine
@pytest.mark.parametrize("layer", LAYERS, ids=_label)
def test_torch_agrees_with_numpy(layer, device):
    X, y = _data()
    host, dev = make_engine(None, "float64"), make_engine(device, "float64")
    ref = np.vstack([H for _, _, H in host.features(layer, X, 64)])
    got = list(dev.features(layer, X, 64))
    assert all(H.dtype == np.float64 and isinstance(H, np.ndarray) for _, _, H in got)
    np.testing.assert_allclose(np.vstack([H for _, _, H in got]), ref, rtol=1e-10, atol=1e-12)

    a = host.statistics(layer, X, y, 5, True, 64)
    b = dev.statistics(layer, X, y, 5, True, 64)
    scale = np.abs(a.gram).max()
    np.testing.assert_allclose(b.gram, a.gram, rtol=1e-10, atol=1e-10 * scale)
    np.testing.assert_allclose(b.class_sums, a.class_sums, rtol=1e-10, atol=1e-10 * scale)
    np.testing.assert_array_equal(b.counts, a.counts)
    for c in range(5):
        np.testing.assert_allclose(b.class_gram(c), a.class_gram(c), rtol=1e-10, atol=1e-10 * scale)

    coef = np.random.default_rng(1).standard_normal((layer.n_outputs, 3))
    intercept = np.array([0.5, -1.0, 0.0])
    want = ref @ coef + intercept
    got = np.vstack([S for _, _, S in dev.scores(layer, X, coef, intercept, 64)])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    best = np.concatenate([s for _, _, s in dev.scores(layer, X, coef, intercept, 64, True)])
    assert (best == want.argmax(1)).mean() > 0.99  # ties aside


@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_torch_float32_is_close(kind, device):
    X, y = _data(n=500, d=50)
    layer = make_layer(kind, 50, 300, seed=1, bias=kind != "fourier")
    a = make_engine(None, "float32").statistics(layer, X, y, 4)
    b = make_engine(device, "float32").statistics(layer, X, y, 4)
    np.testing.assert_allclose(b.gram, a.gram, rtol=1e-4, atol=1e-4 * np.abs(a.gram).max())
    ref = layer.transform(X)
    got = np.vstack([H for _, _, H in make_engine(device, "float32").features(layer, X)])
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_torch_engine_keeps_the_parameters_on_its_device(torch, device):
    layer = make_layer("hadamard", 24, 40, seed=0, bias=True)
    engine = make_engine(device, "float32")
    params = engine.parameters(layer)
    assert params is engine.parameters(layer)
    assert set(params) == {"signs", "offset"}
    assert all(p.device.type == device and p.dtype == torch.float32 for p in params.values())
    other = make_layer("hadamard", 24, 40, seed=0, bias=True)  # equal, but another object
    assert engine.parameters(other) is not params
    twin = copy.deepcopy(engine)
    assert twin.device == device and len(twin._cache) == 0


def test_read_only_input_is_fine(device):
    X, y = _data()
    X.flags.writeable = False
    layer = make_layer("none", 24, 24, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about non-writable arrays it could alter
        stats = make_engine(device, "float64").statistics(layer, X, y, 5)
    np.testing.assert_allclose(stats.gram, X.T @ X, rtol=1e-12)


def test_cuda_without_a_gpu_is_a_clear_error(torch):
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA device"):
            make_engine(f"cuda:{torch.cuda.device_count()}", "float64")
        return
    with pytest.raises(ValueError, match="no CUDA device.*device=None"):
        make_engine("cuda", "float64")


def test_torch_linalg_matches_the_host(device):
    engine = make_engine(device, "float64")
    ops = engine.linalg
    assert ridge_solve(np.eye(2) * 3.0, np.ones((2, 1)), 1.0, ops).ravel().tolist() == [0.25, 0.25]
    X, y = _data()
    layer = make_layer("orthogonal", 24, 30, seed=0)
    stats = engine.statistics(layer, X, y, 5)
    mean = stats.feature_sum / stats.n_samples
    # The host keeps G's upper triangle only (what its operations read); the device, all of it.
    upper = np.triu
    np.testing.assert_allclose(
        upper(ops.to_numpy(ops.gram(stats))), upper(HOST.gram(stats)), rtol=1e-13
    )
    np.testing.assert_allclose(
        upper(ops.to_numpy(ops.gram(stats, mean))),
        upper(HOST.gram(stats, mean)),
        rtol=1e-10,
        atol=1e-9,
    )
    solved = ridge_solve(ops.gram(stats), stats.class_sums, 0.5, ops)
    np.testing.assert_allclose(solved, ridge_solve(HOST.gram(stats), stats.class_sums, 0.5))
    # The rough float32 products that place the lambda search's first factorisation.
    block = np.random.default_rng(0).standard_normal((30, 4))
    rough = ops.to_numpy(ops.product(ops.single(ops.gram(stats)), ops.asarray(block)))
    exact = HOST.product(HOST.gram(stats), block)
    assert np.abs(rough - exact).max() <= 1e-5 * np.abs(exact).max()


# ---------------------------------------------------------------------- through the learner
@pytest.mark.parametrize("projection", ["orthogonal", "gaussian", "hadamard", "fourier", "none"])
def test_learner_on_a_device_matches_numpy(digits, projection, device):
    X, y = digits
    params = dict(projection=projection, n_components=300, alpha=1.0, random_state=2)
    ref = ContinualClassifier(**params)
    dev = ContinualClassifier(**params, device=device)
    for part in np.array_split(np.arange(len(y)), 3):
        ref.partial_fit(X[part], y[part])
        dev.partial_fit(X[part], y[part])
    np.testing.assert_allclose(
        dev.statistics_.gram,
        ref.statistics_.gram,
        rtol=1e-10,
        atol=1e-10 * np.abs(ref.statistics_.gram).max(),
    )
    np.testing.assert_allclose(dev.coef_, ref.coef_, rtol=1e-8, atol=1e-8 * np.abs(ref.coef_).max())
    np.testing.assert_array_equal(dev.predict(X), ref.predict(X))


def test_guided_learner_on_a_device_matches_numpy(digits, device):
    X, y = digits
    params = dict(projection="guided", n_components=80, alpha=1.0, random_state=0)
    ref = ContinualClassifier(**params).fit(X[:1200], y[:1200])
    dev = ContinualClassifier(**params, device=device).fit(X[:1200], y[:1200])
    assert dev.projection_.same_as(ref.projection_)  # selected on the host either way
    np.testing.assert_allclose(dev.coef_, ref.coef_, rtol=1e-7, atol=1e-9 * np.abs(ref.coef_).max())
    np.testing.assert_array_equal(dev.predict(X[1200:]), ref.predict(X[1200:]))


def test_learner_float32_and_other_heads_on_a_device(digits, torch):
    X, y = digits
    ref = ContinualClassifier(n_components=200, alpha=1.0, head="rls").fit(X, y)
    dev = ContinualClassifier(n_components=200, alpha=1.0, head="rls", device="cpu").fit(X, y)
    np.testing.assert_allclose(dev.coef_, ref.coef_, rtol=1e-7, atol=1e-9)
    f32 = ContinualClassifier(
        n_components=200, alpha=1.0, compute_dtype="float32", device="cpu"
    ).fit(X, y)
    assert (f32.predict(X) == ref.predict(X)).mean() > 0.99
    # A learner trained on a device merges with one trained in numpy: same statistics.
    merged = ContinualClassifier(n_components=200, alpha=1.0).fit(X[:900], y[:900])
    merged.merge(
        ContinualClassifier(n_components=200, alpha=1.0, device="cpu").fit(X[900:], y[900:])
    )
    whole = ContinualClassifier(n_components=200, alpha=1.0).fit(X, y)
    np.testing.assert_allclose(merged.coef_, whole.coef_, rtol=1e-8, atol=1e-10)


def test_gcv_search_on_the_device_matches_the_host(digits, device):
    """The ridge head's lambda search and solve run on the device: same lambda, same W (GCV
    scores agree to rounding, amplified where lambda is far below the small eigenvalues)."""
    X, y = digits
    # exact trace, probes, M > n, and the rational quadrature (M >= 1024)
    for n_components, n in ((40, 1797), (300, 1797), (600, 400), (1100, 1797)):
        ref = ContinualClassifier(n_components=n_components, random_state=1).fit(X[:n], y[:n])
        dev = ContinualClassifier(n_components=n_components, random_state=1, device=device)
        dev.fit(X[:n], y[:n])
        assert dev.alpha_ == ref.alpha_
        np.testing.assert_allclose(
            dev.coef_, ref.coef_, rtol=1e-7, atol=1e-9 * abs(ref.coef_).max()
        )
        for a, b in zip(dev.head_.gcv_path_, ref.head_.gcv_path_, strict=True):
            assert a.alpha == b.alpha and np.isclose(a.score, b.score, rtol=1e-3)


def test_gpu_model_loads_on_a_machine_without_one(digits, tmp_path, torch):
    X, y = digits
    clf = ContinualClassifier(n_components=100, device="cpu").fit(X[:1000], y[:1000])
    clf.set_params(device="cuda")  # as if trained on a GPU
    clf.save(tmp_path / "gpu.fl")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device=None"):
            ContinualClassifier.load(tmp_path / "gpu.fl").predict(X[1000:])
    cpu = ContinualClassifier.load(tmp_path / "gpu.fl", device=None)
    assert cpu.device is None
    np.testing.assert_array_equal(
        cpu.predict(X[1000:]), clf.set_params(device="cpu").predict(X[1000:])
    )


def test_unknown_device_is_a_clear_error_and_changes_nothing(digits, tmp_path):
    X, y = digits
    with pytest.raises(ValueError, match="not a torch device"):
        ContinualClassifier(n_components=50, device="tpu").fit(X, y)
    clf = ContinualClassifier(n_components=50).fit(X, y)
    clf.save(tmp_path / "m.fl")
    loaded = ContinualClassifier.load(tmp_path / "m.fl", device="tpu")
    with pytest.raises(ValueError, match="not a torch device"):
        loaded.predict(X[:3])
    before = loaded.statistics_.gram.copy()
    with pytest.raises(ValueError, match="not a torch device"):
        loaded.partial_fit(X[:10], y[:10])
    np.testing.assert_array_equal(loaded.statistics_.gram, before)


@pytest.mark.parametrize(
    "head, extra",
    [("ridge", {}), ("rls", {"alpha": 1.0}), ("ncm", {}), ("lda", {}), ("owm", {"alpha": 1.0})],
)
def test_learner_scores_on_the_device_match_numpy(digits, device, head, extra):
    """Linear heads score on the device (chunked); the others on the host: same answers."""
    X, y = digits
    params = dict(n_components=250, head=head, random_state=3, chunk_size=128, **extra)
    ref, dev = ContinualClassifier(**params), ContinualClassifier(**params, device=device)
    for part in np.array_split(np.arange(1500), 2):
        ref.partial_fit(X[part], y[part])
        dev.partial_fit(X[part], y[part])
    expected = ref.decision_function(X[1500:])
    got = dev.decision_function(X[1500:])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8 * np.abs(expected).max())
    np.testing.assert_array_equal(dev.predict(X[1500:]), ref.predict(X[1500:]))


def test_few_samples_choose_lambda_on_a_device_as_on_the_host(device):
    # at most M / 2 samples and M >= 1024: the host scores lambda exactly (row space, or G's
    # spectrum); the device ran the quadrature on G, whose curve chose two lattice steps away
    # (42 classes, 214 samples, M = 1100: 562 against 178, not a near-tie)
    rng = np.random.default_rng(2)
    C = int(rng.integers(5, 50))
    n, d = int(rng.integers(2 * C + 12, 550)), int(rng.integers(20, 100))
    centers = rng.standard_normal((C, d)) * rng.uniform(0.3, 2)
    y = rng.integers(0, C, n)
    X = centers[y] + rng.standard_normal((n, d))
    params = dict(projection="orthogonal", n_components=1100, random_state=2)
    host = ContinualClassifier(**params).fit(X, y)
    dev = ContinualClassifier(**params, device=device).fit(X, y)
    assert dev.alpha_ == host.alpha_
    np.testing.assert_array_equal(dev.predict(X), host.predict(X))


def test_reversed_views_and_zero_rows_are_data_on_every_engine(digits, device):
    # torch took no view with negative strides (X[::-1]: "At least one stride ... is
    # negative"); the kernel layer in float32 turned a zero row into NaN (1e-300 is 0 there)
    X, y = digits
    params = dict(projection="orthogonal", n_components=100, alpha=1.0, random_state=0)
    host = ContinualClassifier(**params).fit(X[::-1], y[::-1])
    dev = ContinualClassifier(**params, device=device).fit(X[::-1], y[::-1])
    np.testing.assert_array_equal(dev.predict(X[:, ::-1][:, ::-1]), host.predict(X))
    Z = np.vstack([np.zeros(X.shape[1]), X[:300]])
    for engine in (None, device):
        kernel = ContinualClassifier(
            projection="guided", n_components=40, compute_dtype="float32", device=engine,
            random_state=0,
        ).fit(Z, np.concatenate([[0], y[:300]]))  # fmt: skip
        assert kernel.predict(np.zeros((1, X.shape[1]))).shape == (1,)
