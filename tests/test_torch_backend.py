"""The torch backend on the CPU matches the numpy path."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from forgetless import ContinualClassifier

pytest.importorskip("torch", reason="pip install 'forgetless[torch]'")


@pytest.fixture(scope="module")
def digits():
    return load_digits(return_X_y=True)


@pytest.mark.parametrize("projection", ["orthogonal", "gaussian", "hadamard", "fourier", "none"])
def test_torch_cpu_matches_numpy(digits, projection):
    X, y = digits
    params = dict(projection=projection, n_components=300, alpha=1.0, random_state=2)
    ref = ContinualClassifier(**params)
    dev = ContinualClassifier(**params, device="cpu")
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


def test_cuda_without_a_gpu_is_a_clear_error(digits):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    X, y = digits
    with pytest.raises(ValueError, match="no CUDA device"):
        ContinualClassifier(n_components=50, device="cuda").fit(X, y)
