"""The torch backend on the CPU matches the numpy path."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from forgetless import ContinualClassifier

torch = pytest.importorskip("torch", reason="pip install 'forgetless[torch]'")

# On a machine with a GPU the same agreement is checked on it (float64 throughout).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def digits():
    return load_digits(return_X_y=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("projection", ["orthogonal", "gaussian", "hadamard", "fourier", "none"])
def test_torch_matches_numpy(digits, projection, device):
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


def test_torch_float32_and_other_heads(digits):
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


@pytest.mark.parametrize("device", DEVICES)
def test_gcv_search_on_the_device_matches_the_host(digits, device):
    """The ridge head's lambda search and solve run on the device: same lambda, same W (GCV
    scores agree to rounding, amplified where lambda is far below the small eigenvalues)."""
    X, y = digits
    for n_components, n in ((40, 1797), (300, 1797), (600, 400)):  # exact, probes, M > n
        ref = ContinualClassifier(n_components=n_components, random_state=1).fit(X[:n], y[:n])
        dev = ContinualClassifier(n_components=n_components, random_state=1, device=device)
        dev.fit(X[:n], y[:n])
        assert dev.alpha_ == ref.alpha_
        np.testing.assert_allclose(
            dev.coef_, ref.coef_, rtol=1e-7, atol=1e-9 * abs(ref.coef_).max()
        )
        for a, b in zip(dev.head_.gcv_path_, ref.head_.gcv_path_, strict=True):
            assert a.alpha == b.alpha and np.isclose(a.score, b.score, rtol=1e-3)


def test_gpu_model_loads_on_a_machine_without_one(digits, tmp_path):
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


def test_cuda_without_a_gpu_is_a_clear_error(digits):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    X, y = digits
    with pytest.raises(ValueError, match="no CUDA device"):
        ContinualClassifier(n_components=50, device="cuda").fit(X, y)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "head, extra",
    [("ridge", {}), ("rls", {"alpha": 1.0}), ("ncm", {}), ("lda", {}), ("owm", {"alpha": 1.0})],
)
def test_scores_on_the_device_match_numpy(digits, device, head, extra):
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
