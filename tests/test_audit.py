"""Regression tests for the audit's failures, one test (or parametrised family) per finding.

Each test states the promise it holds the learner to. Numbers refer to the audit's items.
Setting: ``rng = np.random.default_rng(0); X = rng.standard_normal((60, 5)); y = arange(60) % 3``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from conftest import require
from forgetless import ContinualClassifier


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    y = np.arange(60) % 3
    return X, y


def snapshot(clf: ContinualClassifier, X: np.ndarray) -> dict[str, Any]:
    """Everything observable about a fitted learner (compared bit for bit)."""
    return {
        "predict": clf.predict(X),
        "decision_function": clf.decision_function(X),
        "n_samples_seen_": clf.n_samples_seen_,
        "classes_": clf.classes_.copy(),
    }


def assert_unchanged(clf: ContinualClassifier, X: np.ndarray, before: dict[str, Any], what: str):
    after = snapshot(clf, X)
    assert after["n_samples_seen_"] == before["n_samples_seen_"], (
        f"{what} changed n_samples_seen_ from {before['n_samples_seen_']} to "
        f"{after['n_samples_seen_']}"
    )
    assert np.array_equal(after["classes_"], before["classes_"]), (
        f"{what} changed classes_ from {before['classes_'].tolist()} to "
        f"{after['classes_'].tolist()}"
    )
    np.testing.assert_array_equal(
        after["decision_function"], before["decision_function"], err_msg=f"{what} changed scores"
    )
    np.testing.assert_array_equal(
        after["predict"], before["predict"], err_msg=f"{what} changed predictions"
    )


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


# ---------------------------------------------------------------------- 1. overflow
@pytest.mark.parametrize("head", ["ridge", "rls"])
@pytest.mark.parametrize("compute_dtype, factor", [("float64", 1e200), ("float32", 1e30)])
def test_1_overflowing_batch_is_refused_and_changes_nothing(data, head, compute_dtype, factor):
    """Finite inputs whose squares overflow (1e200 in float64, 1e30 in float32) would put inf
    into G: refuse the batch before anything is committed, fitted or not."""
    X, y = data
    params = dict(n_components=16, head=head, alpha=1.0, compute_dtype=compute_dtype)
    fitted = ContinualClassifier(**params).fit(X, y)
    before = snapshot(fitted, X)
    with pytest.raises(ValueError, match="(?i)finite|overflow"):
        fitted.partial_fit(X[:2] * factor, y[:2])
    assert_unchanged(fitted, X, before, f"a refused overflowing batch (x{factor:g})")

    unfitted = ContinualClassifier(**params)
    with pytest.raises(ValueError, match="(?i)finite|overflow"):
        unfitted.partial_fit(X[:2] * factor, y[:2])
    with pytest.raises(NotFittedError):
        unfitted.predict(X)  # the refused first batch left it unfitted
    with pytest.raises(ValueError, match="(?i)finite|overflow"):
        ContinualClassifier(**params).fit(X[:2] * factor, y[:2])


# ---------------------------------------------------------------------- 2. impossible forgets
def _min_eigenvalue_after(clf: ContinualClassifier, learned: np.ndarray, removed: np.ndarray):
    """Smallest eigenvalue of H_l^T H_l - H_r^T H_r, relative to the largest of H_l^T H_l:
    negative means no real data has these statistics."""
    Hl = clf.projection_.transform(learned)
    Hr = clf.projection_.transform(removed)
    G = Hl.T @ Hl
    return float(np.linalg.eigvalsh(G - Hr.T @ Hr).min() / np.linalg.eigvalsh(G).max())


FORGETS = {
    # name: (rows learned, rows forgotten before, rows to forget now, their scale)
    "never learned": (slice(0, 30), None, slice(30, 40), 1.0),
    "forgotten twice": (slice(0, 30), slice(0, 10), slice(0, 10), 1.0),
    "negative diagonal": (slice(0, 30), None, slice(0, 3), 10.0),
}


@pytest.mark.parametrize("head", ["ridge", "ncm", "lda", "rls"])
@pytest.mark.parametrize("case", list(FORGETS))
def test_2_forget_that_no_data_can_produce_is_refused(data, case, head):
    """Forgetting rows the learner does not hold leaves statistics no real data has (G not
    positive semi-definite, a negative diagonal): refused with ValueError, nothing changed.
    M = 40 > rows learned, so such rows are (generically) outside the span of the learned
    ones and the damage is visible in G (checked below as a precondition)."""
    X, y = data
    learned, before_rows, now, scale = FORGETS[case]
    clf = ContinualClassifier(n_components=40, head=head, alpha=1.0).fit(X[learned], y[learned])
    held = np.arange(60)[learned]
    if before_rows is not None:
        clf.forget(X[before_rows], y[before_rows])  # legitimate
        held = np.setdiff1d(held, np.arange(60)[before_rows])
    rows = X[now] * scale
    assert _min_eigenvalue_after(clf, X[held], rows) < -1e-6, "precondition: G would be indefinite"
    before = snapshot(clf, X)
    with pytest.raises(ValueError):
        clf.forget(rows, y[now])
    assert_unchanged(clf, X, before, f"a refused forget ({case})")


def test_2_negative_counts_are_still_refused(data):
    X, y = data
    clf = ContinualClassifier(n_components=40, alpha=1.0).fit(X[:30], y[:30])
    before = snapshot(clf, X)
    with pytest.raises(ValueError, match="cannot remove"):
        clf.forget(np.vstack([X[:30], X[:3]]), np.concatenate([y[:30], y[:3]]))
    assert_unchanged(clf, X, before, "a refused forget (more rows than learned)")


# ---------------------------------------------------------------------- 3. merge refusals
def test_3_guided_layers_selected_on_different_batches_do_not_merge(data):
    """Two guided learners with equal settings but different first batches have different
    layers: adding their sums is meaningless. Refused, naming the layers; both unchanged."""
    X, y = data
    params = dict(projection="guided", n_components=8, alpha=1.0)
    a = ContinualClassifier(**params).fit(X[:30], y[:30])
    b = ContinualClassifier(**params).fit(X[30:], y[30:])
    before_a, before_b = snapshot(a, X), snapshot(b, X)
    with pytest.raises(ValueError, match="(?i)layer"):
        a.merge(b)
    assert_unchanged(a, X, before_a, "a refused merge (receiving learner)")
    assert_unchanged(b, X, before_b, "a refused merge (other learner)")


def test_3_merge_of_different_widths_is_refused_before_any_change(data):
    """A purely selected guided layer (``base=0``) is capped by its first batch's rows, so
    equal settings can give different widths (here 8 vs 20 units). The refusal must come
    before the receiving learner's class columns are touched: it must still predict and learn
    exactly."""
    X, y = data
    selection = {"method": "units", "base": 0.0}
    params = dict(projection="guided", n_components=20, alpha=1.0, projection_params=selection)
    first = np.flatnonzero(y[:12] < 2)  # 8 rows of classes 0 and 1 only
    a = ContinualClassifier(**params).fit(X[first], y[first])
    b = ContinualClassifier(**params).fit(X[12:], y[12:])  # classes 0, 1, 2
    assert a.coef_.shape[1] != b.coef_.shape[1], "precondition: the widths differ"
    before_a, before_b = snapshot(a, X), snapshot(b, X)
    with pytest.raises(ValueError):
        a.merge(b)
    assert_unchanged(a, X, before_a, "a refused merge of different widths (receiving learner)")
    assert_unchanged(b, X, before_b, "a refused merge of different widths (other learner)")
    a.partial_fit(X[40:50], y[40:50])  # still learns ...
    twin = ContinualClassifier(**params).fit(X[first], y[first]).partial_fit(X[40:50], y[40:50])
    np.testing.assert_array_equal(a.classes_, twin.classes_)
    np.testing.assert_allclose(  # ... exactly, as if the merge had never been tried
        a.decision_function(X), twin.decision_function(X), rtol=1e-12, atol=1e-12
    )


# ---------------------------------------------------------------------- 4. RLS forget
@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


@pytest.mark.parametrize("random_state", [0, 1, 2])
def test_4_rls_forget_is_exact(digits, random_state):
    """RLS, M = 300, alpha = 0.01: learn 1,200 digits, forget the first 1,100. The result is
    the model of the remaining 100 rows (1e-8 of the scores' scale; a ridge head computed from
    the same statistics gets 3e-9) and the legitimate forget is never refused."""
    X, y = digits
    params = dict(head="rls", n_components=300, alpha=0.01, random_state=random_state)
    clf = ContinualClassifier(**params).fit(X[:1200], y[:1200])
    clf.forget(X[:1100], y[:1100])  # must not raise: these rows were all learned
    fresh = ContinualClassifier(**params).fit(X[1100:1200], y[1100:1200])
    err = rel_error(clf.decision_function(X), fresh.decision_function(X))
    assert err <= 1e-8, f"RLS after forget differs from a fit on the rest by {err:.3g} (relative)"
    np.testing.assert_array_equal(clf.predict(X), fresh.predict(X))


# ---------------------------------------------------------------------- 10. label families
@pytest.mark.parametrize(
    "first, second",
    [
        ("int", "bool"),
        ("bool", "int"),
        ("int", "str"),
        ("int", "float"),
    ],
)
def test_10_partial_fit_refuses_another_label_type(data, first, second):
    """One label type per learner: True is not the class 1, nor "1", nor 1.0 (the same rule
    as merge below). Refused, state unchanged."""
    X, y = data
    as_type = {
        "int": lambda v: v,
        "bool": lambda v: v % 2 == 1,
        "str": lambda v: v.astype(str),
        "float": lambda v: v.astype(float),
    }
    clf = ContinualClassifier(n_components=16, alpha=1.0).fit(X[:30], as_type[first](y[:30]))
    before = snapshot(clf, X)
    with pytest.raises(ValueError, match="(?i)label"):
        clf.partial_fit(X[30:40], as_type[second](y[30:40]))
    assert_unchanged(clf, X, before, f"refused {second} labels after {first} labels")


@pytest.mark.parametrize("other", ["float", "bool", "str"])
def test_10_merge_refuses_another_label_type(data, other):
    """Learners whose labels have different types do not merge (int with float included)."""
    X, y = data
    convert = {"float": float, "bool": bool, "str": str}[other]
    a = ContinualClassifier(n_components=16, alpha=1.0).fit(X[:30], y[:30])
    labels = np.array([convert(v % 2 if other == "bool" else v) for v in y[30:]])
    b = ContinualClassifier(n_components=16, alpha=1.0).fit(X[30:], labels)
    before_a, before_b = snapshot(a, X), snapshot(b, X)
    with pytest.raises(ValueError, match="(?i)label"):
        a.merge(b)
    assert_unchanged(a, X, before_a, f"a refused int/{other} merge (receiving learner)")
    assert_unchanged(b, X, before_b, f"a refused int/{other} merge (other learner)")


# ---------------------------------------------------------------------- 11. DataFrame columns
def test_11_dataframe_feature_names_are_checked_like_scikit_learn(data):
    pd = require("pandas", "pip install pandas")
    X, y = data
    columns = ["a", "b", "c", "d", "e"]
    frame = pd.DataFrame(X, columns=columns)
    clf = ContinualClassifier(n_components=16, alpha=1.0).fit(frame.iloc[:40], y[:40])
    assert list(getattr(clf, "feature_names_in_", [])) == columns, "feature_names_in_ not set"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same columns, same order: no warning
        same = clf.predict(frame)
    reordered = frame[columns[::-1]]
    for method in (clf.predict, clf.decision_function):
        with pytest.raises(ValueError, match="(?i)feature names"):
            method(reordered)
    before = snapshot(clf, X)
    with pytest.raises(ValueError, match="(?i)feature names"):
        clf.partial_fit(reordered.iloc[40:], y[40:])  # would add permuted features to G
    assert_unchanged(clf, X, before, "a refused partial_fit with reordered columns")
    with pytest.warns(UserWarning, match="(?i)feature names"):
        plain = clf.predict(X)  # numpy after a DataFrame fit: works, warns as sklearn does
    np.testing.assert_array_equal(plain, same)


# ---------------------------------------------------------------------- 13. determinism
def test_13_statistics_do_not_depend_on_blas_threads(tmp_path):
    """The same thread count gives the same model file, bit for bit; across thread counts the
    sums of the same projected rows are bit for bit the same (both G's forms), and the model's
    G agrees to rounding: the projection is BLAS's product, which some OpenBLAS kernels round
    differently per thread count (small inner dimensions on Haswell), as the README says."""
    from threadpoolctl import threadpool_limits

    from forgetless.statistics import SufficientStatistics

    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 64))
    y = np.arange(3000) % 7
    H = np.maximum(rng.standard_normal((700, 512)), 0.0)
    runs = {}
    for threads in (1, 1, 4):
        with threadpool_limits(limits=threads):
            clf = ContinualClassifier(n_components=512, alpha=1.0, random_state=3)
            clf.partial_fit(X[:1700], y[:1700]).partial_fit(X[1700:], y[1700:])
            path = tmp_path / f"threads-{threads}.fl"
            clf.save(path)
            sums = []
            for rows in (200, 700):  # G as its factor, then as its triangle
                stats = SufficientStatistics(512, 7)
                stats.add(H[: rows // 2], y[: rows // 2])
                stats.add(H[rows // 2 : rows], y[rows // 2 : rows])
                sums.append(stats.gram)
            runs.setdefault(threads, []).append((clf.statistics_.gram, path.read_bytes(), sums))
    (g1, file1, sums1), (g1_again, file1_again, _) = runs[1]
    assert file1 == file1_again, "the model file changes from run to run"
    (g4, _, sums4) = runs[4][0]
    for one, four in zip(sums1, sums4, strict=True):
        np.testing.assert_array_equal(one, four, err_msg="the sums depend on BLAS threads")
    np.testing.assert_allclose(g4, g1, rtol=1e-13, atol=1e-13 * np.abs(g1).max())


def test_13_same_seed_and_data_give_the_same_bytes(tmp_path, data):
    X, y = data
    blobs = []
    for name in ("a", "b"):
        clf = ContinualClassifier(n_components=32, random_state=4).fit(X, y)
        clf.save(tmp_path / f"{name}.fl")
        blobs.append((tmp_path / f"{name}.fl").read_bytes())
    assert blobs[0] == blobs[1]


# ---------------------------------------------------------------------- 14. degenerate regimes
AUTO_FEW_SAMPLES = [
    "fit A+B, forget B",
    "fit A, partial_fit B",
    "fit A, merge B",
    "fit 2 samples, forget 1",
]


@pytest.mark.parametrize("projection", ["orthogonal", "gaussian", "none"])
@pytest.mark.parametrize("route", AUTO_FEW_SAMPLES)
def test_14_auto_alpha_with_fewer_samples_than_units(data, route, projection):
    """alpha="auto", M = 40, 12 samples (n < M, G singular), or a single sample left: the
    chosen alpha_ is still the one a fresh fit on the same net data chooses, whatever route
    led there (rounding residue in the null space must not steer GCV); predictions too."""
    X, y = data
    params = dict(projection=projection, n_components=40, alpha="auto", random_state=0)
    A, B = slice(0, 6), slice(6, 12)
    if route == "fit 2 samples, forget 1":  # one sample left: its centred G is exactly 0
        clf = ContinualClassifier(**params).fit(X[:2], y[:2])
        clf.forget(X[1:2], y[1:2])
        fresh = ContinualClassifier(**params).fit(X[:1], y[:1])
    elif route == "fit A+B, forget B":
        clf = ContinualClassifier(**params).fit(X[:12], y[:12])
        clf.forget(X[B], y[B])
        fresh = ContinualClassifier(**params).fit(X[A], y[A])
    elif route == "fit A, partial_fit B":
        clf = ContinualClassifier(**params).fit(X[A], y[A]).partial_fit(X[B], y[B])
        fresh = ContinualClassifier(**params).fit(X[:12], y[:12])
    else:
        clf = ContinualClassifier(**params).fit(X[A], y[A])
        clf.merge(ContinualClassifier(**params).fit(X[B], y[B]))
        fresh = ContinualClassifier(**params).fit(X[:12], y[:12])
    assert clf.alpha_ == fresh.alpha_, (
        f"{route}: alpha_={clf.alpha_!r}, a fresh fit on the same data chooses {fresh.alpha_!r}"
    )
    np.testing.assert_array_equal(clf.predict(X), fresh.predict(X), err_msg=route)


def _lda_fit_recording_warnings(fit) -> tuple[ContinualClassifier, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = fit()
        clf.predict(np.zeros((1, clf.n_features_in_)))
    return clf, [str(w.message) for w in caught]


@pytest.mark.parametrize("projection", ["orthogonal", "gaussian", "hadamard", "fourier", "none"])
@pytest.mark.parametrize("route", ["fit", "forget down to one per class"])
def test_14_lda_with_one_sample_per_class(data, route, projection):
    """One sample per class: the within-class scatter is zero, so anything the covariance
    holds is rounding residue. The model must not be built on it: every training point is
    classified as itself, no warning tells the user to "increase alpha" (LDA has none), and
    reaching that state by forgetting gives the fresh fit's predictions."""
    X, y = data
    params = dict(projection=projection, n_components=40, head="lda", random_state=0)
    fresh, fresh_warnings = _lda_fit_recording_warnings(
        lambda: ContinualClassifier(**params).fit(X[:3], y[:3])
    )
    if route == "fit":  # a second fit of its own (fresh is the reference, not itself)
        clf, caught = _lda_fit_recording_warnings(
            lambda: ContinualClassifier(**params).fit(X[:3], y[:3])
        )
    else:

        def fit_then_forget():
            clf = ContinualClassifier(**params).fit(X, y)
            return clf.forget(X[3:], y[3:])

        clf, caught = _lda_fit_recording_warnings(fit_then_forget)
    assert (clf.predict(X[:3]) == y[:3]).all(), "LDA misclassifies its own training points"
    bad = [m for m in caught if "increase alpha" in m.lower()]
    assert not bad, f"LDA warns to increase alpha: {bad}"
    np.testing.assert_array_equal(clf.predict(X), fresh.predict(X), err_msg=route)
    err = rel_error(clf.decision_function(X), fresh.decision_function(X))
    assert err <= 1e-8, (
        f"{route}: LDA scores differ from a fresh fit on the same 3 samples by {err:.3g} "
        f"(relative; max |score| {np.abs(clf.decision_function(X)).max():.3g} vs "
        f"{np.abs(fresh.decision_function(X)).max():.3g})"
    )


# ---------------------------------------------------------------------- set_params after fit
@pytest.mark.parametrize("head", ["ridge", "rls"])
def test_set_params_alpha_after_fit_takes_effect(data, head):
    X, y = data
    clf = ContinualClassifier(n_components=16, head=head, alpha=1.0).fit(X[:40], y[:40])
    clf.predict(X)  # a head has been computed at alpha=1
    clf.set_params(alpha=100)
    fresh = ContinualClassifier(n_components=16, head=head, alpha=100).fit(X[:40], y[:40])
    assert clf.alpha_ == 100, f"set_params(alpha=100) ignored: alpha_ is still {clf.alpha_}"
    err = rel_error(clf.decision_function(X), fresh.decision_function(X))
    assert err <= 1e-9, f"after set_params(alpha=100) the model differs by {err:.3g}"
    clf.partial_fit(X[40:], y[40:])  # and it stays in effect for later batches
    fresh.partial_fit(X[40:], y[40:])
    err = rel_error(clf.decision_function(X), fresh.decision_function(X))
    assert err <= 1e-9, f"after set_params(alpha=100) and partial_fit: differs by {err:.3g}"


def test_set_params_head_after_fit_takes_effect(data):
    X, y = data
    clf = ContinualClassifier(n_components=16, alpha=1.0).fit(X, y)
    clf.predict(X)
    clf.set_params(head="ncm")
    fresh = ContinualClassifier(n_components=16, head="ncm").fit(X, y)
    err = rel_error(clf.decision_function(X), fresh.decision_function(X))
    assert err <= 1e-12, f"set_params(head='ncm') not in effect: scores differ by {err:.3g}"
    np.testing.assert_array_equal(clf.predict(X), fresh.predict(X))


INVALID = [
    ("n_components", -5),
    ("alpha", -1),
    ("alphas", [0, -1]),
    ("head", "nope"),
    ("compute_dtype", "float16"),
]


@pytest.mark.parametrize("name, value", INVALID, ids=[f"{n}={v}" for n, v in INVALID])
def test_invalid_params_are_refused_by_fit(data, name, value):
    """An invalid parameter is a ValueError that names it."""
    X, y = data
    with pytest.raises(ValueError, match=name):
        ContinualClassifier(**{name: value}).fit(X, y)


@pytest.mark.parametrize("name, value", INVALID, ids=[f"{n}={v}" for n, v in INVALID])
def test_invalid_params_are_refused_before_any_work(data, name, value):
    """Parameters are validated before the data is even looked at (as scikit-learn's
    parameter validation does): with invalid data too, the parameter's error is the one
    raised, not the data's (here a NaN)."""
    X, y = data
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match=name):
        ContinualClassifier(**{name: value}).fit(X_nan, y)


@pytest.mark.parametrize("name, value", INVALID, ids=[f"{n}={v}" for n, v in INVALID])
def test_invalid_params_set_after_fit_are_refused_and_keep_the_model(data, name, value):
    """set_params(invalid) on a fitted learner: fit refuses and keeps the previous model,
    and partial_fit refuses too rather than silently ignoring the parameter."""
    X, y = data
    good = dict(n_components=16, alpha=1.0, alphas=None, head="ridge", compute_dtype="float64")
    clf = ContinualClassifier(**good).fit(X, y)
    before = snapshot(clf, X)
    clf.set_params(**{name: value})
    with pytest.raises(ValueError, match=name):
        clf.fit(X, y)
    with pytest.raises(ValueError, match=name):
        clf.partial_fit(X[:10], y[:10])
    clf.set_params(**good)
    assert_unchanged(clf, X, before, f"refused fit/partial_fit with {name}={value!r}")
