"""The learner's promises: exact continual updates, merge, forget, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from conftest import require
from forgetless import ContinualClassifier
from forgetless._install import install_line

RTOL = 1e-9


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    X, y = X[order], y[order]
    return X[:1300], y[:1300], X[1300:], y[1300:]


def tasks(y, groups):
    return [np.flatnonzero(np.isin(y, g)) for g in groups]


FIVE = ([0, 1], [2, 3], [4, 5], [6, 7], [8, 9])


def assert_same_model(a, b, rtol=RTOL):
    np.testing.assert_array_equal(a.classes_, b.classes_)
    scale = np.abs(b.coef_).max()
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("projection", ["orthogonal", "gaussian", "hadamard", "fourier", "none"])
@pytest.mark.parametrize("head", ["ridge", "ncm", "lda"])
def test_partial_fits_equal_joint_fit(digits, projection, head):
    X, y, Xt, _ = digits
    params = dict(projection=projection, n_components=300, head=head, alpha=1.0, random_state=3)
    inc = ContinualClassifier(**params)
    for idx in tasks(y, FIVE):
        inc.partial_fit(X[idx], y[idx])
    joint = ContinualClassifier(**params).fit(X, y)
    assert_same_model(inc, joint)
    np.testing.assert_array_equal(inc.predict(Xt), joint.predict(Xt))


def test_rls_equals_batch_ridge(digits):
    X, y, Xt, _ = digits
    rls = ContinualClassifier(n_components=300, head="rls", alpha=10.0)
    for idx in tasks(y, FIVE):
        for chunk in np.array_split(idx, 3):  # a stream of small batches
            rls.partial_fit(X[chunk], y[chunk])
    ridge = ContinualClassifier(n_components=300, head="ridge", alpha=10.0, fit_intercept=False)
    ridge.fit(X, y)
    assert_same_model(rls, ridge, rtol=1e-7)
    np.testing.assert_array_equal(rls.predict(Xt), ridge.predict(Xt))


def test_order_does_not_matter(digits):
    X, y, Xt, _ = digits
    parts = tasks(y, FIVE)
    a = ContinualClassifier(n_components=300, alpha=1.0)
    b = ContinualClassifier(n_components=300, alpha=1.0)
    for idx in parts:
        a.partial_fit(X[idx], y[idx])
    for idx in reversed(parts):
        b.partial_fit(X[idx], y[idx])
    assert_same_model(a, b)
    np.testing.assert_array_equal(a.predict(Xt), b.predict(Xt))


def test_auto_alpha_uses_all_statistics_and_matches_fixed(digits):
    X, y, _, _ = digits
    inc = ContinualClassifier(n_components=300)
    for idx in tasks(y, FIVE):
        inc.partial_fit(X[idx], y[idx])
    joint = ContinualClassifier(n_components=300).fit(X, y)
    # The choice depends only on the accumulated sums: a warm start lands where a cold one does.
    assert inc.alpha_ == joint.alpha_
    fixed = ContinualClassifier(n_components=300, alpha=inc.alpha_).fit(X, y)
    assert_same_model(inc, fixed)


def test_auto_alpha_equals_a_fresh_fit_at_every_step(digits):
    """Not only at the end: after each task the model is the one joint training on the data so
    far gives (the lambda search starts from the sums, not from the previous choice)."""
    X, y, Xt, _ = digits
    inc = ContinualClassifier(n_components=300, random_state=1)
    warm = ContinualClassifier(n_components=300, random_state=1, warm_start=True)
    seen = np.zeros(len(y), dtype=bool)
    tried = {"cold": 0, "warm": 0}
    for idx in tasks(y, FIVE):
        seen[idx] = True
        inc.partial_fit(X[idx], y[idx])
        warm.partial_fit(X[idx], y[idx])
        joint = ContinualClassifier(n_components=300, random_state=1).fit(X[seen], y[seen])
        assert inc.alpha_ == joint.alpha_
        np.testing.assert_array_equal(inc.predict(Xt), joint.predict(Xt))
        warm._refit_head()
        tried["cold"] += len(inc.head_.gcv_path_)
        tried["warm"] += len(warm.head_.gcv_path_)
    assert tried["warm"] < tried["cold"]  # warm starts walk from the previous lambda


def test_digits_class_incremental_matches_joint_ridge(digits):
    X, y, Xt, yt = digits
    inc = ContinualClassifier(n_components=2000, random_state=0)
    for idx in tasks(y, FIVE):
        inc.partial_fit(X[idx], y[idx])
    joint = ContinualClassifier(n_components=2000, random_state=0).fit(X, y)
    inc_acc, joint_acc = inc.score(Xt, yt), joint.score(Xt, yt)
    assert joint_acc > 0.95
    assert abs(inc_acc - joint_acc) <= 0.005


def test_string_labels_and_new_classes_in_any_call(digits):
    X, y, Xt, yt = digits
    names = np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
    clf = ContinualClassifier(n_components=300)
    clf.partial_fit(X[y < 6], names[y[y < 6]].tolist())
    clf.partial_fit(X[y >= 4], names[y[y >= 4]])
    assert sorted(clf.classes_.tolist()) == sorted(names.tolist())
    assert clf.score(Xt, names[yt]) > 0.9


def test_merge_equals_training_on_both(digits):
    X, y, Xt, _ = digits
    half = len(y) // 2
    a = ContinualClassifier(n_components=300, alpha=1.0).fit(
        X[:half][y[:half] < 7], y[:half][y[:half] < 7]
    )
    b = ContinualClassifier(n_components=300, alpha=1.0).fit(X[half:], y[half:])
    keep = np.concatenate([np.flatnonzero(y[:half] < 7), half + np.arange(len(y) - half)])
    joint = ContinualClassifier(n_components=300, alpha=1.0).fit(X[keep], y[keep])
    assert_same_model(a.merge(b), joint)
    np.testing.assert_array_equal(a.predict(Xt), joint.predict(Xt))


def test_many_way_merge_into_empty_learner(digits):
    X, y, _, _ = digits
    shards = np.array_split(np.arange(len(y)), 4)
    learners = [ContinualClassifier(n_components=200, alpha=1.0).fit(X[s], y[s]) for s in shards]
    merged = ContinualClassifier(n_components=200, alpha=1.0)
    for learner in learners:
        merged.merge(learner)
    assert_same_model(merged, ContinualClassifier(n_components=200, alpha=1.0).fit(X, y))


def test_merging_a_learner_that_saw_nothing_adds_nothing(digits):
    """unfitted.merge(fitted) took the other's model but fitted.merge(unfitted) raised
    NotFittedError (a review): a learner with no data merges as no data, either way round,
    and its settings are still checked."""
    X, y, X_test, _ = digits
    settings = dict(n_components=200, alpha=1.0)
    fitted = ContinualClassifier(**settings).fit(X, y)
    before = fitted.decision_function(X_test)
    assert fitted.merge(ContinualClassifier(**settings)) is fitted
    np.testing.assert_array_equal(fitted.decision_function(X_test), before)
    empty = ContinualClassifier(**settings).merge(ContinualClassifier(**settings))
    assert not empty.__sklearn_is_fitted__()
    with pytest.raises(ValueError, match="n_components"):
        fitted.merge(ContinualClassifier(n_components=100, alpha=1.0))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(random_state=1), "random_state"),
        (dict(n_components=100), "n_components"),
        (dict(projection="gaussian"), "projection"),
    ],
)
def test_merge_refuses_other_configs(digits, change, message):
    X, y, _, _ = digits
    a = ContinualClassifier(n_components=200).fit(X, y)
    params = dict(n_components=200) | change
    b = ContinualClassifier(**params).fit(X, y)
    before = a.statistics_.gram.copy()
    with pytest.raises(ValueError, match=message):
        a.merge(b)
    np.testing.assert_array_equal(a.statistics_.gram, before)


def test_merge_refuses_other_dimension(digits):
    X, y, _, _ = digits
    a = ContinualClassifier(n_components=100).fit(X, y)
    b = ContinualClassifier(n_components=100).fit(X[:, :32], y)
    with pytest.raises(ValueError, match="input widths"):
        a.merge(b)


@pytest.mark.parametrize("head", ["ridge", "rls"])
def test_forget_samples_is_exact(digits, head):
    X, y, Xt, _ = digits
    params = dict(n_components=300, head=head, alpha=10.0)
    clf = ContinualClassifier(**params).fit(X, y)
    drop = np.arange(100, 400)
    clf.forget(X[drop], y[drop])
    keep = np.setdiff1d(np.arange(len(y)), drop)
    assert_same_model(clf, ContinualClassifier(**params).fit(X[keep], y[keep]), rtol=1e-7)


def test_forgetting_some_of_few_samples_keeps_the_sums_compact(digits, tmp_path):
    # G is kept as its n x M factor while n <= M / 2; a forget used to turn it into the whole
    # M x M triangle: a model file 4x larger than a fresh fit's (16 MB against 4 MB here)
    X, y, Xt, _ = digits
    params = dict(projection="orthogonal", n_components=2000, random_state=0)
    clf = ContinualClassifier(**params).fit(X[:300], y[:300])
    clf.forget(X[:40], y[:40])
    fresh = ContinualClassifier(**params).fit(X[40:300], y[40:300])
    assert clf.statistics_.factored and clf.statistics_.factor.shape == (260, 2000)
    gram, want = clf.statistics_.gram_upper, fresh.statistics_.gram_upper
    assert np.abs(gram - want).max() <= 1e-12 * np.abs(want).max()
    assert clf.alpha_ == fresh.alpha_
    np.testing.assert_array_equal(clf.predict(Xt), fresh.predict(Xt))
    clf.save(tmp_path / "forgot.fl")
    fresh.save(tmp_path / "fresh.fl")
    assert (tmp_path / "forgot.fl").stat().st_size <= 1.01 * (tmp_path / "fresh.fl").stat().st_size
    loaded = ContinualClassifier.load(tmp_path / "forgot.fl")
    assert loaded.statistics_.factored and loaded.alpha_ == clf.alpha_
    np.testing.assert_array_equal(loaded.decision_function(Xt), clf.decision_function(Xt))
    # rows never learned are refused as before (state unchanged), forgotten ones too
    coef = clf.coef_.copy()
    for rows in (Xt[:3] + 0.5, X[:3]):
        with pytest.raises(ValueError, match="were not all learned"):
            clf.forget(rows, y[:3])
        np.testing.assert_array_equal(clf.coef_, coef)


def test_forgetting_recorded_sums_of_few_samples_keeps_the_sums_compact(digits, tmp_path):
    # a class's sums recorded as their factor (few rows) remove as one: the learner keeps G as
    # the factor of the rows left (before, forget_statistics turned it into the M x M triangle)
    from forgetless.engine import make_engine

    X, y, Xt, _ = digits
    X, y = X[:300], y[:300]
    params = dict(projection="orthogonal", n_components=2000, random_state=0)
    clf = ContinualClassifier(**params).fit(X, y)
    rows = np.flatnonzero(y == 3)
    record = make_engine(None).statistics(
        clf.projection_, X[rows], np.zeros(rows.size, dtype=np.int64), 1
    )
    assert record.factored
    clf.forget_statistics(record, [3])
    fresh = ContinualClassifier(**params).fit(X[y != 3], y[y != 3])
    assert clf.statistics_.factored and clf.statistics_.n_samples == fresh.statistics_.n_samples
    assert clf.alpha_ == fresh.alpha_
    np.testing.assert_array_equal(clf.predict(Xt), fresh.predict(Xt))
    clf.save(tmp_path / "forgot.fl")
    fresh.save(tmp_path / "fresh.fl")
    assert (tmp_path / "forgot.fl").stat().st_size <= 1.01 * (tmp_path / "fresh.fl").stat().st_size


def test_a_downdate_that_fails_to_converge_keeps_the_forget_exact(digits, monkeypatch):
    import forgetless.statistics

    def fails(R, F):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(forgetless.statistics, "_downdated_factor", fails)
    X, y, Xt, _ = digits
    params = dict(projection="orthogonal", n_components=1000, random_state=0)
    clf = ContinualClassifier(**params).fit(X[:200], y[:200]).forget(X[:20], y[:20])
    fresh = ContinualClassifier(**params).fit(X[20:200], y[20:200])
    assert not clf.statistics_.factored  # G kept whole, as before downdates
    assert clf.alpha_ == fresh.alpha_
    np.testing.assert_array_equal(clf.predict(Xt), fresh.predict(Xt))


@pytest.mark.parametrize("kept", [1, 150])
def test_a_forget_from_few_samples_of_few_units_stays_compact_and_exact(kept):
    # small widths, duplicates and most rows forgotten: the factor follows where its G is the
    # subtracted one to rounding, and lambda and the predictions are a fresh fit's
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((300, 30)), rng.integers(0, 3, 300)
    X[150:], y[150:] = X[:150], y[:150]  # every sample learned twice
    params = dict(projection="orthogonal", n_components=800, random_state=1)
    clf = ContinualClassifier(**params).fit(X, y)
    clf.forget(X[kept:], y[kept:])
    fresh = ContinualClassifier(**params).fit(X[:kept], y[:kept])
    assert clf.statistics_.factored and clf.statistics_.n_samples == kept
    assert clf.alpha_ == fresh.alpha_
    np.testing.assert_array_equal(clf.predict(X), fresh.predict(X))


def test_one_sample_left_by_a_forget_chooses_lambda_as_a_fresh_fit():
    # One sample has no spread about its mean: its centred G is zero. A forget of six of seven
    # rows left rounding there above the search's floor, which then took a lattice of that
    # trace (1e-23 .. 1e-10, not 1e-10 .. 1e4) and chose 1e-10 where a fresh fit chose 1e4
    # (found by tests/test_properties.py when run after other tests)
    rng = np.random.default_rng(2353)
    means = rng.standard_normal((3, 4)) * 1.5
    rng.standard_normal((40, 4))  # the property test's probe rows, drawn first
    rng.choice(np.array([0]), size=7)
    X, y = means[0] + rng.standard_normal((7, 4)), np.array(["ant"] * 7)
    params = dict(projection="hadamard", n_components=19, random_state=4000)
    gone = [0, 5, 2, 4, 3, 1]  # this order: another leaves rounding below the floor
    clf = ContinualClassifier(**params).fit(X, y).forget(X[gone], y[gone])
    fresh = ContinualClassifier(**params).fit(X[6:], y[6:])
    assert clf.alpha_ == fresh.alpha_ == 1e4
    np.testing.assert_array_equal(clf.predict(X), fresh.predict(X))


def test_forget_all_samples_of_a_class_removes_it(digits):
    X, y, _, _ = digits
    clf = ContinualClassifier(n_components=300, alpha=1.0).fit(X, y)
    clf.forget(X[y == 3], y[y == 3])
    assert 3 not in clf.classes_
    assert_same_model(
        clf, ContinualClassifier(n_components=300, alpha=1.0).fit(X[y != 3], y[y != 3])
    )


@pytest.mark.parametrize(
    "before, after",
    [
        (np.arange(2), np.array([False, True])),  # ints, then bools
        (np.arange(2.0), np.arange(2)),  # floats, then ints
        (np.array(["a", "b"]), np.arange(2)),  # strings, then ints
    ],
)
def test_merge_into_a_learner_emptied_by_forget_takes_the_others_labels(digits, before, after):
    """A learner whose classes were all forgotten, merging another, predicts the other's labels
    as that learner does (and as partial_fit of them would): a union with its empty classes
    array had cast bools to ints and ints to floats, or refused ints with a shape error."""
    X, y, _, _ = digits
    rows = np.flatnonzero(y < 2)
    params = dict(n_components=100, alpha=1.0, random_state=0)
    emptied = ContinualClassifier(**params).fit(X[rows], before[y[rows]])
    emptied.forget(X[rows], before[y[rows]])
    other = ContinualClassifier(**params).fit(X[rows], after[y[rows]])
    emptied.merge(other)
    assert emptied.classes_.dtype == other.classes_.dtype
    np.testing.assert_array_equal(emptied.predict(X[:50]), other.predict(X[:50]))
    # and the other way round: merging an emptied learner adds nothing, the labels stay
    expected = other.predict(X[:50])
    emptied_again = ContinualClassifier(**params).fit(X[rows], before[y[rows]])
    emptied_again.forget(X[rows], before[y[rows]])
    other.merge(emptied_again)
    assert other.classes_.dtype == after.dtype
    np.testing.assert_array_equal(other.predict(X[:50]), expected)


def test_forget_refuses_more_than_learned_and_keeps_state(digits):
    X, y, _, _ = digits
    clf = ContinualClassifier(n_components=200, alpha=1.0).fit(X[y != 4], y[y != 4])
    coef, counts = clf.coef_.copy(), clf.statistics_.counts.copy()
    extra = np.concatenate([np.flatnonzero(y == 5), np.flatnonzero(y == 5)[:1]])
    with pytest.raises(ValueError, match="cannot remove .* samples of class 5"):
        clf.forget(X[extra], y[extra])
    with pytest.raises(ValueError, match="never learned"):
        clf.forget(X[y == 4], y[y == 4])
    np.testing.assert_array_equal(clf.statistics_.counts, counts)
    np.testing.assert_array_equal(clf.coef_, coef)


@pytest.mark.parametrize("head", ["ridge", "rls", "lda"])
def test_forget_classes_is_exact(digits, head):
    X, y, Xt, _ = digits
    params = dict(n_components=200, head=head, alpha=1.0, per_class_gram=True)
    clf = ContinualClassifier(**params)
    for idx in tasks(y, FIVE):
        clf.partial_fit(X[idx], y[idx])
    clf.forget_classes([2, 7])
    keep = ~np.isin(y, [2, 7])
    joint = ContinualClassifier(**params).fit(X[keep], y[keep])
    assert_same_model(clf, joint, rtol=1e-7)
    np.testing.assert_array_equal(clf.predict(Xt), joint.predict(Xt))


def test_forget_classes_refuses_kept_class_sums_no_data_gives(digits):
    # G_c that are not the class's own (sums merged from a faulty source; a file's are checked
    # when read) used to be subtracted into a G of negative diagonal without a word
    X, y, _, _ = digits
    clf = ContinualClassifier(n_components=100, alpha=1.0, per_class_gram=True).fit(X, y)
    clf.statistics_._class_grams[0] *= 50.0
    coef, counts = clf.coef_.copy(), clf.statistics_.counts.copy()
    with pytest.raises(ValueError, match="cannot forget these classes: .*nothing was changed"):
        clf.forget_classes([0])
    np.testing.assert_array_equal(clf.coef_, coef)
    np.testing.assert_array_equal(clf.statistics_.counts, counts)


def test_forget_classes_without_per_class_gram_says_how(digits):
    X, y, _, _ = digits
    clf = ContinualClassifier(n_components=100).fit(X, y)
    with pytest.raises(ValueError, match="per_class_gram=True"):
        clf.forget_classes([1])
    with pytest.raises(ValueError, match="never learned"):
        ContinualClassifier(n_components=100, per_class_gram=True).fit(X, y).forget_classes([11])


BAD_INPUTS = [
    ("nan", lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), y), "NaN"),
    (
        "inf",
        lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 5, np.inf, X), y),
        "infinity",
    ),
    (
        "wrong width",
        lambda X, y: (X[:, :10], y),
        "X has 10 features, but ContinualClassifier is expecting 64",
    ),
    ("1-D X", lambda X, y: (X[0], y[:1]), "Expected 2D array"),
    ("length mismatch", lambda X, y: (X, y[:-1]), "samples but y has"),
    ("empty batch", lambda X, y: (X[:0], y[:0]), "0 sample"),
    ("mixed labels", lambda X, y: (X[:4], [1, "a", 2, 3]), "mixes label types"),
    ("new label type", lambda X, y: (X[:4], ["a", "b", "c", "d"]), "unseen label type"),
    (
        "continuous labels",
        lambda X, y: (X[:4], [0.5, 1.5, 2.25, 3.0]),
        "Unknown label type: continuous .* not whole, e.g. 0.5\\): class labels are whole",
    ),
    ("missing y", lambda X, y: (X, None), "requires y"),
    (  # sklearn's own check called it "continuous" (int64 cannot hold it)
        "whole labels beyond int64",
        lambda X, y: (X[:4], [1e19, 1.0, 2.0, 3.0]),
        "whole number 1e\\+19, beyond what class labels can be",
    ),
]


def test_the_fourier_layer_refuses_inputs_its_cos_cannot_resolve(digits):
    # cos keeps the outputs bounded, so no check on the sums fired: 1e200 features changed the
    # model, and features of 1e-50 trained a model at chance, without a word
    X, y, Xt, yt = digits
    X, Xt = X / 16, Xt / 16  # pixels in [0, 1]: phases of about one radian
    clf = ContinualClassifier(projection="fourier", n_components=200, alpha=1.0, random_state=0)
    with pytest.raises(ValueError, match="too small for the fourier layer"):
        clf.fit(X * 1e-50, y)
    clf.fit(X[:600], y[:600])
    coef = clf.coef_.copy()
    for scale, words in ((1e200, "too large"), (1e-50, "too small")):
        with pytest.raises(ValueError, match=f"{words} for the fourier layer"):
            clf.partial_fit(X[600:] * scale, y[600:])
        np.testing.assert_array_equal(clf.coef_, coef)
    with pytest.raises(ValueError, match="too large for the fourier layer"):
        clf.predict(Xt * 1e200)
    assert clf.predict(np.zeros((2, X.shape[1]))).shape == (2,)  # the origin is an input
    assert (clf.predict(Xt) == yt).mean() > 0.8


def _stats_like(clf, change):
    """A copy of ``clf``'s statistics with ``change`` applied to (gram, class_sums, counts)."""
    from forgetless.statistics import SufficientStatistics

    gram = clf.statistics_.gram_upper.copy()
    sums, counts = clf.statistics_.class_sums.copy(), clf.statistics_.counts.copy()
    change(gram, sums, counts)
    return SufficientStatistics.from_sums(gram, sums, counts)


@pytest.mark.parametrize(
    "classes, change, message",
    [
        ([1, "a", "b"], None, "mixes label types"),
        ([0.5, 1.5, 2.5], None, "not whole"),
        ([None, None, None], None, "unsupported label type NoneType"),
        ([0, 1, 2], lambda g, s, c: c.__setitem__(1, -5), "fewer than no samples"),
        ([0, 1, 2], lambda g, s, c: np.negative(g, out=g), "negative diagonal"),
        ([0, 1, 2], lambda g, s, c: np.multiply(s, 1e6, out=s), "class sums are larger than G"),
    ],
)
def test_from_statistics_refuses_what_partial_fit_would(digits, classes, change, message):
    # labels partial_fit refuses, counts and sums no data gives: accepted (a negative count
    # dropped its class and left its rows in G), or refused for the wrong reason
    X, y, _, _ = digits
    keep = y < 3
    clf = ContinualClassifier(n_components=50, alpha=1.0).fit(X[keep], y[keep])
    stats = _stats_like(clf, change or (lambda g, s, c: None))
    with pytest.raises(ValueError, match=message):
        ContinualClassifier.from_statistics(clf, stats, classes)
    ContinualClassifier.from_statistics(clf, _stats_like(clf, lambda g, s, c: None), [0, 1, 2])


@pytest.mark.filterwarnings("ignore::forgetless.layers.random.KernelWidthWarning")
@pytest.mark.parametrize("projection", ["hadamard", "fourier"])
def test_float32_sums_forget_in_many_calls_what_one_call_forgets(tmp_path, projection):
    """Deleting 1,400 of 1,500 learned rows 100 per call was refused at the 14th call (sums in
    float32): the check's margin followed the shrinking sums, not the rounding that the rows
    forgotten before had left, which is relative to the sums they were part of."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:1500], y[:1500]
    gone = np.random.default_rng(0).permutation(1500)[:1400]
    kw = dict(projection=projection, n_components=256, alpha=1.0, random_state=0)
    clf = ContinualClassifier(**kw, compute_dtype="float32")
    for start in range(0, 1500, 300):
        clf.partial_fit(X[start : start + 300], y[start : start + 300])
    for start in range(0, 1400, 100):
        clf.forget(X[gone[start : start + 100]], y[gone[start : start + 100]])
    kept = np.setdiff1d(np.arange(1500), gone)
    fresh = ContinualClassifier(**kw).fit(X[kept], y[kept])
    assert (clf.predict(X[kept]) == fresh.predict(X[kept])).mean() > 0.95
    clf.save(tmp_path / "m.fl")  # the peak travels with the sums
    loaded = ContinualClassifier.load(tmp_path / "m.fl")
    assert loaded.statistics_.peak_diagonal == clf.statistics_.peak_diagonal
    assert loaded.statistics_.peak_diagonal > 10 * loaded.statistics_.diagonal().max()
    with pytest.raises(ValueError, match="not all learned"):  # a row never learned
        loaded.forget(X[kept[:1]] + 3.0, y[kept[:1]])


def test_a_learned_row_near_the_origin_can_be_forgotten_alone():
    """The fourier layer refuses to learn from a batch whose phases barely move cos; a learned
    row near the origin, forgotten alone, was refused by that check (about learning)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 8)), np.arange(40) % 2
    X[0] *= 1e-9
    kw = dict(projection="fourier", n_components=64, alpha=1.0, random_state=0)
    clf = ContinualClassifier(**kw).fit(X, y)
    clf.forget(X[:1], y[:1])
    fresh = ContinualClassifier(**kw).fit(X[1:], y[1:])
    np.testing.assert_allclose(clf.coef_, fresh.coef_, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="too small for the fourier layer"):
        ContinualClassifier(**kw).fit(X[:1].repeat(2, 0), [0, 1])  # learning from it alone


def test_from_statistics_refuses_an_unfitted_learner_and_other_per_class_sums(digits, tmp_path):
    """Sums with per-class Gram matrices joined a learner without them (and the other way):
    accepted, then its own load refused the file it saved, or forget_classes said the
    parameter was off; an unfitted ``like`` gave an AttributeError."""
    X, y, _, _ = digits
    kw = dict(projection="gaussian", n_components=64, alpha=1.0, random_state=0)
    plain = ContinualClassifier(**kw).fit(X[:50], y[:50])
    per_class = ContinualClassifier(**kw, per_class_gram=True).fit(X[50:150], y[50:150])
    for like, sums in ((plain, per_class), (per_class, plain)):
        with pytest.raises(ValueError, match="per-class Gram matrices but like has"):
            ContinualClassifier.from_statistics(like, sums.statistics_, sums.classes_)
    with pytest.raises(ValueError, match="like must be a fitted learner"):
        ContinualClassifier.from_statistics(
            ContinualClassifier(**kw), plain.statistics_, plain.classes_
        )
    joined = ContinualClassifier.from_statistics(
        per_class, per_class.statistics_, per_class.classes_
    )
    joined.save(tmp_path / "m.fl")
    loaded = ContinualClassifier.load(tmp_path / "m.fl")
    np.testing.assert_array_equal(loaded.predict(X[:20]), per_class.predict(X[:20]))


@pytest.mark.parametrize("name, corrupt, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_refused_and_state_unchanged(digits, name, corrupt, message):
    X, y, Xt, _ = digits
    clf = ContinualClassifier(n_components=100, alpha=1.0).fit(X[:600], y[:600])
    gram, counts, classes = clf.statistics_.gram, clf.statistics_.counts.copy(), clf.classes_
    predictions = clf.predict(Xt)
    Xb, yb = corrupt(X[600:], y[600:])
    with pytest.raises(ValueError, match=message):
        clf.partial_fit(Xb, yb)
    np.testing.assert_array_equal(clf.statistics_.gram, gram)
    np.testing.assert_array_equal(clf.statistics_.counts, counts)
    np.testing.assert_array_equal(clf.classes_, classes)
    np.testing.assert_array_equal(clf.predict(Xt), predictions)


def test_sparse_input_is_refused(digits):
    import scipy.sparse as sp

    X, y, _, _ = digits
    with pytest.raises(TypeError, match="dense data is required"):
        ContinualClassifier(n_components=50).fit(sp.csr_matrix(X), y)


def test_bad_predict_input(digits):
    X, y, _, _ = digits
    clf = ContinualClassifier(n_components=50).fit(X, y)
    with pytest.raises(ValueError, match="expecting 64 features"):
        clf.predict(X[:, :5])
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((2, 64), np.nan))


def test_bad_settings_name_the_choices(digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match="'projection' parameter .* among .*gaussian"):
        ContinualClassifier(projection="gauss").fit(X, y)
    with pytest.raises(ValueError, match="'head' parameter .* among"):
        ContinualClassifier(head="svm").fit(X, y)
    with pytest.raises(ValueError, match="rls' needs a fixed alpha"):
        ContinualClassifier(head="rls").fit(X, y)


def test_a_width_no_memory_can_hold_is_refused_before_anything_is_built(digits):
    """n_components = 10**7 needs 8 * 10**14 bytes for G: a clear error, not an allocation
    that fails deep inside or gets the process killed."""
    X, y, _, _ = digits
    clf = ContinualClassifier(n_components=10**7, projection="gaussian")
    with pytest.raises(ValueError, match=r"n_components=10000000 needs [\d,]+ GiB for G"):
        clf.partial_fit(X, y)
    assert not hasattr(clf, "statistics_")
    clf.set_params(n_components=200).partial_fit(X, y)  # the same learner, a sane width
    assert clf.statistics_.n_components == 200


def test_same_seed_same_model_bit_for_bit(digits):
    X, y, _, _ = digits
    a = ContinualClassifier(n_components=300, random_state=7).fit(X, y)
    b = ContinualClassifier(n_components=300, random_state=7).fit(X, y)
    c = ContinualClassifier(n_components=300, random_state=8).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.alpha_ == b.alpha_
    assert not np.array_equal(a.coef_, c.coef_)


def test_float32_compute_is_close_to_float64(digits):
    X, y, Xt, _ = digits
    f64 = ContinualClassifier(n_components=300, alpha=1.0).fit(X, y)
    f32 = ContinualClassifier(n_components=300, alpha=1.0, compute_dtype="float32").fit(X, y)
    # float32 rounding of G (~1e-7 relative) is amplified by the condition number of G + alpha I:
    # here (raw pixels, small alpha) about 1e-3 in the coefficients, but the decisions agree.
    rel = np.linalg.norm(f32.coef_ - f64.coef_) / np.linalg.norm(f64.coef_)
    assert rel < 1e-2
    assert (f32.predict(Xt) == f64.predict(Xt)).mean() > 0.99


def test_binary_decision_function_and_proba(digits):
    X, y, Xt, _ = digits
    keep = np.isin(y, [3, 8])
    clf = ContinualClassifier(n_components=200).fit(X[keep], y[keep])
    scores = clf.decision_function(Xt)
    assert scores.shape == (len(Xt),)
    np.testing.assert_array_equal(clf.predict(Xt), np.where(scores > 0, 8, 3))
    proba = clf.predict_proba(Xt)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_chunked_prediction_matches_one_chunk(digits):
    X, y, Xt, _ = digits
    one = ContinualClassifier(n_components=300, alpha=1.0).fit(X, y)
    many = ContinualClassifier(n_components=300, alpha=1.0, chunk_size=7).fit(X, y)
    assert_same_model(one, many)
    np.testing.assert_array_equal(one.predict(Xt), many.predict(Xt))


def test_forget_statistics_recorded_per_class_is_exact(digits):
    """A class's sums recorded when it was learned remove it exactly later, without its data;
    sums it never learned are refused with the learner unchanged."""
    from forgetless.engine import make_engine

    X, y, Xt, _ = digits
    clf = ContinualClassifier(n_components=200, alpha=1.0).fit(X, y)
    rows = np.flatnonzero(y == 3)
    record = make_engine(None).statistics(
        clf.projection_, X[rows], np.zeros(rows.size, dtype=np.int64), 1
    )
    wrong = make_engine(None).statistics(clf.projection_, Xt[:50], np.zeros(50, dtype=np.int64), 1)
    coef = clf.coef_.copy()
    with pytest.raises(ValueError, match="not all learned"):
        clf.forget_statistics(wrong, [4])
    np.testing.assert_array_equal(clf.coef_, coef)
    clf.forget_statistics(record, [3])
    joint = ContinualClassifier(n_components=200, alpha=1.0).fit(X[y != 3], y[y != 3])
    assert_same_model(clf, joint, rtol=1e-7)


@pytest.mark.parametrize("decision", ["regression", "discriminant"])
def test_both_decisions_are_exact_through_tasks_merge_and_forget(digits, decision):
    """Both of the ridge head's decision rules are functions of the sums: partial fits, a merge
    and a forget give the fresh fit on the net data."""
    X, y, Xt, _ = digits
    params = dict(n_components=300, alpha=3.0, decision=decision, random_state=1)
    inc = ContinualClassifier(**params)
    for idx in tasks(y, FIVE[:3]):
        inc.partial_fit(X[idx], y[idx])
    other = ContinualClassifier(**params)
    for idx in tasks(y, FIVE[3:]):
        other.partial_fit(X[idx], y[idx])
    inc.merge(other)
    assert_same_model(inc, ContinualClassifier(**params).fit(X, y))
    assert inc.head_.decision_ == decision
    drop = np.arange(50, 250)
    inc.forget(X[drop], y[drop])
    keep = np.setdiff1d(np.arange(len(y)), drop)
    joint = ContinualClassifier(**params).fit(X[keep], y[keep])
    assert_same_model(inc, joint, rtol=1e-7)
    np.testing.assert_array_equal(inc.predict(Xt), joint.predict(Xt))


def test_decision_setting_is_checked_and_changes_after_fitting(digits):
    X, y, Xt, yt = digits
    with pytest.raises(ValueError, match="'decision' parameter .* among"):
        ContinualClassifier(decision="vote").fit(X, y)
    with pytest.raises(ValueError, match="decision='discriminant' needs fit_intercept=True"):
        ContinualClassifier(decision="discriminant", fit_intercept=False).fit(X, y)
    clf = ContinualClassifier(n_components=300, alpha=3.0, decision="regression").fit(X, y)
    regression = clf.coef_.copy()
    clf.set_params(decision="discriminant")  # rebuilt from the sums at the next prediction
    assert clf.score(Xt, yt) > 0.9
    assert clf.head_.decision_ == "discriminant"
    assert not np.allclose(clf.coef_, regression)


def test_auto_projection_lifts_narrow_features_and_keeps_wide_ones(digits, tmp_path):
    """The default layer exists where it is at least twice as wide as the features (digits'
    64 pixels, 300 units) and not on wider features, where the default is the linear probe."""
    X, y, Xt, _ = digits
    narrow = ContinualClassifier(n_components=300, random_state=1).fit(X, y)
    assert narrow.projection_.kind == "orthogonal" and narrow.projection_.n_outputs == 300
    same = ContinualClassifier(projection="orthogonal", n_components=300, random_state=1)
    np.testing.assert_array_equal(narrow.coef_, same.fit(X, y).coef_)

    wide = ContinualClassifier(n_components=100, random_state=1).fit(X, y)  # 100 < 2 x 64
    assert wide.projection_.kind == "none" and wide.statistics_.n_components == 64
    linear = ContinualClassifier(projection="none", random_state=1).fit(X, y)
    np.testing.assert_array_equal(wide.coef_, linear.coef_)
    assert wide.get_params()["projection"] == "auto"

    path = tmp_path / "wide.fl"
    wide.save(path)
    again = ContinualClassifier.load(path)
    assert again.projection_.kind == "none" and again.get_params()["projection"] == "auto"
    np.testing.assert_array_equal(again.decision_function(Xt), wide.decision_function(Xt))
    # The activation and bias belong to the layer "auto" would build: without one, the
    # features go to the head as they are (they used to pass through relu and a random shift).
    for extra in ({"activation": "relu"}, {"bias": True}, {"activation": "relu", "bias": True}):
        unlifted = ContinualClassifier(n_components=100, random_state=1, **extra).fit(X, y)
        np.testing.assert_array_equal(unlifted.coef_, linear.coef_)
        unlifted.save(path)
        np.testing.assert_array_equal(ContinualClassifier.load(path).coef_, linear.coef_)
        lifted = ContinualClassifier(n_components=300, random_state=1, **extra).fit(X, y)
        explicit = ContinualClassifier(projection="orthogonal", n_components=300, random_state=1)
        np.testing.assert_array_equal(lifted.coef_, explicit.set_params(**extra).fit(X, y).coef_)
    # A file of an earlier release holds the relu its rule applied, and says so; it does not
    # merge with a learner of the same settings made now.
    from forgetless.persistence import read_model_file, write_model_file

    unlifted = ContinualClassifier(n_components=100, random_state=1, activation="relu")
    unlifted.fit(X, y).save(path)
    metadata, arrays = read_model_file(path, kind="forgetless-model", version=3)
    relu = ContinualClassifier(projection="none", activation="relu", random_state=1).fit(X, y)
    metadata["layer"] = relu.projection_.config()
    metadata["layer_signature"] = relu.projection_.signature()
    write_model_file(path, metadata, arrays, kind="forgetless-model", version=3)
    old = ContinualClassifier.load(path)
    assert "activation='relu'" in repr(old.projection_)
    with pytest.raises(ValueError, match="different layers: .* a file of an earlier release"):
        unlifted.merge(old)
    # Learners of one setting on features of one width build the same layer, so they merge.
    half = len(y) // 2
    a = ContinualClassifier(n_components=100).fit(X[:half], y[:half])
    b = ContinualClassifier(n_components=100).fit(X[half:], y[half:])
    assert_same_model(a.merge(b), ContinualClassifier(n_components=100).fit(X, y))


def test_unsigned_labels_that_would_turn_classes_into_floats_are_refused():
    """int64 classes and uint64 labels have no common integer type: numpy would make every
    class a float. Such a batch (or merge) is refused, naming the cast, and nothing changes."""
    X, y = load_digits(return_X_y=True)
    clf = ContinualClassifier(projection="gaussian", n_components=64, alpha=1.0, random_state=0)
    clf.fit(X[:300], y[:300])
    before = clf.decision_function(X[:20])
    with pytest.raises(ValueError, match="cast them to int64"):
        clf.partial_fit(X[300:400], y[300:400].astype(np.uint64))
    other = ContinualClassifier(projection="gaussian", n_components=64, alpha=1.0, random_state=0)
    other.fit(X[300:400], y[300:400].astype(np.uint64))
    with pytest.raises(ValueError, match="cast them to"):
        clf.merge(other)
    assert clf.classes_.dtype == np.int64
    np.testing.assert_array_equal(clf.decision_function(X[:20]), before)
    # narrower unsigned labels join as integers
    clf.partial_fit(X[300:400], y[300:400].astype(np.uint8))
    assert clf.classes_.dtype == np.int64


def test_the_lda_head_works_on_features_of_any_finite_size():
    """The OAS shrinkage is computed scale-free: features ~1e80 (squares past float64) fit and
    predict as the same features at unit scale do."""
    X, y = load_digits(return_X_y=True)
    X = X / 16
    small = ContinualClassifier(projection="none", head="lda").fit(X[:500], y[:500])
    large = ContinualClassifier(projection="none", head="lda").fit(X[:500] * 1e80, y[:500])
    np.testing.assert_array_equal(large.predict(X[500:] * 1e80), small.predict(X[500:]))


@pytest.mark.parametrize("per_class_gram", [False, True])
def test_a_learner_that_forgot_every_sample_saves_loads_and_learns_as_new(
    digits, tmp_path, per_class_gram
):
    """Subtracting every row left rounding in G (M = 256 > n) that the loader's
    Cauchy-Schwarz check refused; no row left now means sums of exactly zero."""
    X, y, X_test, _ = digits
    settings = {"n_components": 256, "random_state": 0, "per_class_gram": per_class_gram}
    clf = ContinualClassifier(**settings).partial_fit(X[:60], y[:60])
    if per_class_gram:
        clf.forget_classes(np.unique(y[:60]))
    else:
        clf.forget(X[:60], y[:60])
    clf.save(tmp_path / "empty.fl")
    again = ContinualClassifier.load(tmp_path / "empty.fl").partial_fit(X[60:300], y[60:300])
    fresh = ContinualClassifier(**settings).partial_fit(X[60:300], y[60:300])
    assert np.array_equal(again.decision_function(X_test), fresh.decision_function(X_test))


def test_statistics_forgotten_follow_the_classes_as_given(digits):
    """Column i of the statistics holds classes[i], in the order given (what the code did;
    its docstring said sorted classes): both orders forget exactly."""
    from forgetless.statistics import SufficientStatistics

    X, y, X_test, _ = digits
    settings = {"projection": "gaussian", "n_components": 100, "alpha": 1.0, "random_state": 0}
    rows = np.flatnonzero(np.isin(y, [3, 5]))[:20]
    keep = np.setdiff1d(np.arange(len(y)), rows)
    fresh = ContinualClassifier(**settings).fit(X[keep], y[keep])
    for given in ([3, 5], [5, 3]):
        clf = ContinualClassifier(**settings).fit(X, y)
        H = clf.projection_.transform(X[rows])
        recorded = SufficientStatistics(H.shape[1])
        recorded.add(H, np.searchsorted(given, y[rows]) if given == [3, 5] else
                     (y[rows] == 3).astype(int), n_classes=2)  # fmt: skip
        clf.forget_statistics(recorded, given)
        np.testing.assert_allclose(clf.coef_, fresh.coef_, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "settings",
    [
        {"projection": "none", "bias": True},
        {"projection": "gaussian", "activation": "tanh", "projection_scale": "ranpac"},
    ],
)
def test_float32_sums_load_back_and_forget_most_of_their_rows(digits, tmp_path, settings):
    """Sums of float32 products break Cauchy-Schwarz and positive semi-definiteness by about
    1e-7: files written that way were refused on load, and forgetting 90 % of the rows in
    another grouping was refused as 'not all learned'."""
    X, y, X_test, _ = digits
    kw = {"n_components": 150, "alpha": 1.0, "random_state": 2, "compute_dtype": "float32"}
    clf = ContinualClassifier(**kw, **settings)
    for part in np.array_split(np.arange(400), 4):
        clf.partial_fit(X[part] / 16, y[part])
    clf.save(tmp_path / "f32.fl")
    loaded = ContinualClassifier.load(tmp_path / "f32.fl")
    assert np.array_equal(loaded.predict(X_test), clf.predict(X_test))
    gone = np.random.default_rng(0).permutation(400)[:360]
    loaded.forget(X[gone] / 16, y[gone])
    assert loaded.statistics_.n_samples == 40


@pytest.mark.parametrize("route", ["set_params", "merge", "forget"])
def test_float32_sums_in_a_float64_learner_still_forget_their_rows(digits, tmp_path, route):
    """Sums learned with float32 products stay float32's after compute_dtype="float64" (a
    speed setting, changed afterwards) or a merge into a float64 learner: forgetting their rows
    was refused as 'not all learned', with the float64 margin. The record survives a file."""
    X, y, _, _ = digits
    kw = {"projection": "gaussian", "n_components": 150, "alpha": 1.0, "random_state": 2}
    single = ContinualClassifier(**kw, compute_dtype="float32")
    for part in np.array_split(np.arange(400), 4):
        single.partial_fit(X[part] / 16, y[part])
    if route == "set_params":
        clf = single.set_params(compute_dtype="float64")
    elif route == "merge":
        clf = ContinualClassifier(**kw).fit(X[400:600] / 16, y[400:600]).merge(single)
    else:  # learned in float64, a forget's sums made in float32
        clf = ContinualClassifier(**kw).fit(X[:440] / 16, y[:440])
        clf.set_params(compute_dtype="float32").forget(X[400:440] / 16, y[400:440])
        clf.set_params(compute_dtype="float64")
    clf.save(tmp_path / "mixed.fl")
    clf = ContinualClassifier.load(tmp_path / "mixed.fl")
    assert clf.get_params()["compute_dtype"] == "float64" and clf.single_sums_
    gone = np.random.default_rng(0).permutation(400)[:360]
    clf.forget(X[gone] / 16, y[gone])
    assert clf.statistics_.n_samples == (240 if route == "merge" else 40)
    plain = ContinualClassifier(**kw).fit(X[:200] / 16, y[:200])
    assert not plain.single_sums_
    with pytest.raises(ValueError, match="not all learned"):
        plain.forget(X[600:700] / 16, y[600:700])
    # files written before the record read it from their setting; a hostile value is refused
    from forgetless.persistence import ModelFileError, read_model_file, write_model_file

    plain.save(tmp_path / "plain.fl")
    metadata, arrays = read_model_file(tmp_path / "plain.fl", kind="forgetless-model", version=3)
    for value, loads_as in ((None, False), ("yes", None)):
        edited = {k: v for k, v in metadata.items() if k != "single_precision_sums"}
        if value is not None:
            edited["single_precision_sums"] = value
        write_model_file(tmp_path / "edited.fl", edited, arrays, kind="forgetless-model", version=3)
        if loads_as is None:
            with pytest.raises(ModelFileError, match="single_precision_sums must be true or"):
                ContinualClassifier.load(tmp_path / "edited.fl")
        else:
            assert ContinualClassifier.load(tmp_path / "edited.fl").single_sums_ is loads_as


def test_a_learner_merges_with_its_saved_copy_whatever_the_settings_types(digits, tmp_path):
    """JSON turns tuples into lists: a learner refused to merge with its own reloaded copy
    when a setting was a tuple; alpha=1 merged with alpha=1.0 only one way round."""
    X, y, _, _ = digits
    a = ContinualClassifier(n_components=100, alphas=(0.1, 1.0, 10.0), random_state=0)
    a.fit(X[:300], y[:300]).save(tmp_path / "a.fl")
    ContinualClassifier.load(tmp_path / "a.fl").merge(a)
    one = ContinualClassifier(n_components=100, alpha=1, random_state=0).fit(X[:300], y[:300])
    other = ContinualClassifier(n_components=100, alpha=1.0, random_state=0).fit(X[300:], y[300:])
    one.merge(other)
    other.merge(ContinualClassifier(n_components=100, alpha=1, random_state=0).fit(X, y))
    with pytest.raises(ValueError):
        ContinualClassifier(n_components=100, alpha=2.0, random_state=0).fit(X, y).merge(other)


def test_rows_never_learned_are_refused_even_when_they_would_empty_the_learner():
    """Zeroing the sums of an emptied learner must come after the check that the rows were
    learned, or any rows with the right counts would pass it and wipe the learner."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 8)), np.array([0, 0, 0, 1, 1, 1])
    clf = ContinualClassifier(projection="none", random_state=0).partial_fit(X, y)
    coef = clf.coef_.copy()
    with pytest.raises(ValueError, match="not all learned"):
        clf.forget(5 * rng.normal(size=(6, 8)), y)
    assert clf.statistics_.n_samples == 6 and np.array_equal(clf.coef_, coef)
    clf.forget(X, y)
    assert clf.statistics_.n_samples == 0


def test_pandas_labels_are_the_strings_or_numbers_they_hold(tmp_path):
    """A pandas Series of strings arrived as objects: the learner fitted, then could not be
    saved, and refused the same labels as numpy strings as 'float labels (object)'."""
    pd = require("pandas", install_line("dask"))
    X, y = load_digits(return_X_y=True)
    names = np.array([f"d{v}" for v in y[:200]])
    clf = ContinualClassifier(n_components=64, alpha=1.0, random_state=0)
    clf.fit(X[:200], pd.Series(names))
    assert clf.classes_.dtype.kind == "U"
    clf.partial_fit(X[200:260], np.array([f"d{v}" for v in y[200:260]]))
    clf.save(tmp_path / "m.fl")
    loaded = ContinualClassifier.load(tmp_path / "m.fl")
    loaded.partial_fit(X[260:300], pd.Series(pd.Categorical([f"d{v}" for v in y[260:300]])))
    assert (
        ContinualClassifier(n_components=8, alpha=1.0)
        .fit(X[:50], pd.Series(y[:50]))
        .classes_.dtype.kind
        == "i"
    )
    for labels, kind in (
        (np.array(["2020-01-01", "2021-01-01"] * 25, dtype="datetime64[D]"), "datetime64"),
        (np.arange(50).astype(np.longdouble) % 2, "float128"),
    ):
        with pytest.raises(ValueError, match=f"labels of type {kind}.*cannot store"):
            ContinualClassifier(n_components=8, alpha=1.0).fit(X[:50], labels)


def test_a_fraction_a_nul_ended_label_and_a_merge_with_itself_are_refused(digits):
    """Found by an audit: Fraction(1, 3) passed as a number raised numpy's TypeError inside
    scikit-learn's check; numpy's strings drop a trailing NUL, so "a" and "a\\x00" became one
    class; ``clf.merge(clf)`` counted its data twice."""
    from fractions import Fraction

    X, y, _, _ = digits
    with pytest.raises(ValueError, match="alpha must be an int or a float, got Fraction"):
        ContinualClassifier(alpha=Fraction(1, 3)).fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="NUL character"):
        ContinualClassifier(n_components=8, alpha=1.0).fit(X[:4], ["a", "a\x00", "b", "b"])
    clf = ContinualClassifier(n_components=8, alpha=1.0).fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="cannot merge itself"):
        clf.merge(clf)
    assert clf.statistics_.n_samples == 50


def test_bools_are_neither_numbers_nor_labels_of_another_type(digits):
    """True passed scikit-learn's integer checks as 1 (n_components=True: one unit), and
    counted as class 1 beside integer labels in one batch."""
    X, y, _, _ = digits
    for setting in ("n_components", "alpha", "random_state", "chunk_size", "shrinkage", "gamma"):
        with pytest.raises(ValueError, match=f"{setting} must be a number, not a bool"):
            ContinualClassifier(**{setting: True}).fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="mixes label types \\(bool and int\\)"):
        ContinualClassifier(n_components=8, alpha=1.0).fit(X[:4], [True, False, 2, 2])
    for alphas in ({0.1, 10.0}, ["0.1", "10"], [True], [[0.1, 1.0]]):
        with pytest.raises(ValueError, match="alphas must be a non-empty 1-D list"):
            ContinualClassifier(alphas=alphas).fit(X[:50], y[:50])


def test_a_numpy_bool_setting_is_the_bool_a_saved_file_holds(digits, tmp_path):
    """np.True_ is saved as True: the reloaded copy could not merge with the learner it was
    saved from, and set_params(bias=np.True_) was refused as a change."""
    X, y, _, _ = digits
    a = ContinualClassifier(n_components=32, alpha=1.0, fit_intercept=np.True_, random_state=0)
    a.fit(X[:300], y[:300])
    a.save(tmp_path / "a.fl")
    merged = ContinualClassifier.load(tmp_path / "a.fl").merge(a)
    np.testing.assert_array_equal(merged.statistics_.counts, 2 * a.statistics_.counts)
    b = ContinualClassifier(n_components=32, alpha=1.0, bias=True, random_state=0).fit(X, y)
    b.set_params(bias=np.True_).predict(X[:5])
    with pytest.raises(ValueError, match="bias changed after fitting"):
        b.set_params(bias=np.False_).predict(X[:5])


def test_named_classes_are_checked_like_labels(digits):
    X, y, _, _ = digits
    clf = ContinualClassifier(n_components=32, alpha=1.0, per_class_gram=True, random_state=0)
    clf.fit(X[:300], y[:300])
    before = clf.decision_function(X[:20])
    for classes, message in (
        ([[0]], "one label or a 1-D list"),
        (None, "must name class labels, got None"),
        ([0, "x"], "classes mixes label types"),
    ):
        with pytest.raises(ValueError, match=message):
            clf.forget_classes(classes)
    with pytest.raises(ValueError, match="classes mixes label types"):
        clf.partial_fit(X[300:310], y[300:310], classes=[*range(10), "x"])
    with pytest.raises(ValueError, match="y has int labels but classes lists str labels"):
        clf.partial_fit(X[300:310], y[300:310], classes=["a", "b"])
    with pytest.raises(ValueError, match="unsupported label type set in classes"):
        clf.partial_fit(X[300:310], y[300:310], classes={0, 1})
    np.testing.assert_array_equal(clf.decision_function(X[:20]), before)
    clf.forget_classes(np.int64(3))  # one label alone
    assert 3 not in clf.classes_


def test_with_per_class_sums_a_row_never_learned_by_its_class_is_refused():
    """The pooled sums passed (the row lies in the span of the other class's rows), but the
    class's own Gram matrix became indefinite: sums of no data."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 8))
    y = np.r_[np.zeros(290, int), np.ones(10, int)]
    clf = ContinualClassifier(n_components=32, alpha=1.0, per_class_gram=True).fit(X, y)
    before = clf.decision_function(X[:20])
    with pytest.raises(ValueError, match="sums of class column 1 would no longer be positive"):
        clf.forget(rng.standard_normal((1, 8)), [1])
    np.testing.assert_array_equal(clf.decision_function(X[:20]), before)
    clf.forget(X[295:], y[295:])  # rows it did learn
    assert clf.statistics_.counts.tolist() == [290, 5]


def test_an_owm_update_singular_to_rounding_is_a_clear_error(digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match="OWM update failed.*use a larger alpha"):
        ContinualClassifier(head="owm", alpha=1e-15, n_components=64, random_state=0).fit(
            X[:6], y[:6]
        )


def test_numbers_named_as_classes_or_joining_float_classes_work_as_before(digits):
    """Float labels with integer classes=, and integer labels joining a learner of float
    classes (pandas' nullable Int64 labels were read as floats before, and models were saved
    so), are numbers compared as numbers; alphas may be any 1-D sequence (range)."""
    X, y, _, _ = digits
    clf = ContinualClassifier(n_components=32, alpha=1.0, random_state=0)
    clf.partial_fit(X[:300], y[:300].astype(float), classes=list(range(10)))
    clf.partial_fit(X[300:400], y[300:400])  # int labels into float classes
    assert clf.classes_.dtype == np.float64 and clf.statistics_.counts.sum() == 400
    auto = ContinualClassifier(n_components=32, alphas=range(1, 4)).fit(X[:300], y[:300])
    assert auto.alpha_ in (1.0, 2.0, 3.0)


@pytest.mark.parametrize(
    "compute_dtype, scale, fine", [("float32", 1e-25, 1e-12), ("float64", 1e-160, 1e-50)]
)
def test_features_too_small_for_the_sums_are_refused_and_nothing_changes(
    compute_dtype, scale, fine
):
    """Their products underflow: G lost its digits while the class sums kept theirs, so the
    model predicted at chance and its file was refused on load (or the lambda search failed)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 5)), np.repeat([0, 1, 2], 20)
    clf = ContinualClassifier(compute_dtype=compute_dtype, projection="none", random_state=0)
    clf.fit(X, y)
    gram, coef = clf.statistics_.gram_upper.copy(), clf.coef_.copy()
    with pytest.raises(ValueError, match="features are too small for compute_dtype"):
        clf.partial_fit(X * scale, y)
    assert (clf.statistics_.gram_upper == gram).all() and (clf.coef_ == coef).all()
    with pytest.raises(ValueError, match="features are too small"):
        ContinualClassifier(compute_dtype=compute_dtype).fit(X * scale, y)
    small = ContinualClassifier(compute_dtype=compute_dtype, projection="none", random_state=0)
    assert (small.fit(X * fine, y).predict(X * fine) == clf.predict(X)).mean() > 0.9


@pytest.mark.parametrize("scale", [1e8, 1e20, 1e-8])
def test_a_batch_on_another_scale_than_the_learned_sums_is_refused(scale):
    """A batch 1e20 times the learned scale was accepted; every prediction then failed in the
    lambda search ("Eigenvalues did not converge"), and forgetting it did not restore the
    model: float64 sums cannot keep both sides' digits. One 1e-8 times smaller vanished."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((120, 6)), np.repeat([0, 1, 2], 40)
    clf = ContinualClassifier(random_state=0).fit(X[:60], y[:60])
    counts = clf.statistics_.counts.copy()
    with pytest.raises(ValueError, match="on another scale than the ones learned"):
        clf.partial_fit(X[60:] * scale, y[60:])
    assert (clf.statistics_.counts == counts).all()
    other = ContinualClassifier(random_state=0).fit(X[60:] * scale, y[60:])
    with pytest.raises(ValueError, match="on another scale than the ones learned"):
        clf.merge(other)
    assert (clf.statistics_.counts == counts).all()
    clf.partial_fit(X[60:] * 1e3, y[60:])  # far apart, but both sides keep their digits


@pytest.mark.parametrize(
    "compute_dtype, scale", [("float64", 1e-200), ("float32", 1e-50), ("float32", 1e-30)]
)
def test_features_whose_products_round_to_zero_are_refused(compute_dtype, scale):
    """So small that G is exactly 0 (or the input itself is 0 in float32): every check on the
    sums passed and the model predicted at chance, silently."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 5)), np.repeat([0, 1, 2], 20)
    for projection in ("gaussian", "none"):
        with pytest.raises(ValueError, match="features are too small for compute_dtype"):
            ContinualClassifier(compute_dtype=compute_dtype, projection=projection).fit(
                X * scale, y
            )
    clf = ContinualClassifier(compute_dtype=compute_dtype, random_state=0).fit(X, y)
    counts = clf.statistics_.counts.copy()
    with pytest.raises(ValueError, match="squares underflow"):
        clf.partial_fit(X * scale, y)
    assert (clf.statistics_.counts == counts).all()
    zeros = ContinualClassifier(compute_dtype=compute_dtype, projection="none").fit(0 * X, y)
    assert zeros.statistics_.n_samples == 60  # exact zeros are data, not underflow


def test_a_warm_started_learner_goes_on_after_loading_as_the_saved_one(tmp_path):
    """warm_start walks from the last refit's lambda; a loaded learner searched afresh and
    settled elsewhere (a review: lambda 56 saved, 10 loaded, 13 of 300 predictions changed).
    The file keeps the walk's start: the same lambda and scores, bit for bit, now and after
    one more batch; a hostile start is refused."""
    from forgetless.persistence import ModelFileError, read_model_file, write_model_file

    rng = np.random.default_rng(13)
    means = rng.standard_normal((10, 30)) * rng.choice([0.3, 1, 3])
    noise = rng.choice([0.3, 1.0, 3.0], size=10)
    y = rng.integers(0, 10, 800)
    X = means[y] + rng.standard_normal((800, 30)) * noise[y][:, None]
    X_test = means[y[:300]] + rng.standard_normal((300, 30)) * noise[y[:300]][:, None]
    order = np.argsort(y, kind="stable")  # class-incremental
    X, y = X[order], y[order]
    kw = dict(projection="orthogonal", n_components=100, warm_start=True, random_state=0)
    clf = ContinualClassifier(**kw)
    for part in np.array_split(np.arange(800), 5):
        clf.partial_fit(X[part], y[part]).predict(X_test)  # a refit after each task
    clf.save(tmp_path / "warm.fl")
    loaded = ContinualClassifier.load(tmp_path / "warm.fl")
    np.testing.assert_array_equal(loaded.decision_function(X_test), clf.decision_function(X_test))
    assert loaded.alpha_ == clf.alpha_
    quiet = ContinualClassifier(**kw)
    for part in np.array_split(np.arange(800), 5):
        quiet.partial_fit(X[part], y[part])  # predicting only at the end walks elsewhere here
    assert quiet.alpha_ != clf.alpha_
    more = means[y[:50]] + rng.standard_normal((50, 30))
    for learner in (clf, loaded):
        learner.partial_fit(more, y[:50])
    np.testing.assert_array_equal(loaded.decision_function(X_test), clf.decision_function(X_test))
    metadata, arrays = read_model_file(tmp_path / "warm.fl", kind="forgetless-model", version=3)
    edits = [("warm_start_alpha", v, "must be a positive number") for v in
             (-1.0, "10", 0.0, True, [1.0], 10, 10**400)]  # fmt: skip
    # whether the saved lambda is the current sums' own
    edits += [("warm_start_settled", v, "must be true or false") for v in ("yes", 1, None)]
    for key, value, problem in edits:
        write_model_file(
            tmp_path / "edited.fl",
            {**metadata, key: value},
            arrays,
            kind="forgetless-model",
            version=3,
        )
        with pytest.raises(ModelFileError, match=f"{key} {problem}"):
            ContinualClassifier.load(tmp_path / "edited.fl")
    # a fixed alpha (0 is allowed) walks nothing: its file loads (it was refused, a review)
    fixed = ContinualClassifier(**kw | {"alpha": 0.0}).fit(X, y)
    fixed.save(tmp_path / "fixed.fl")
    np.testing.assert_array_equal(
        ContinualClassifier.load(tmp_path / "fixed.fl").decision_function(X_test),
        fixed.decision_function(X_test),
    )


def _offset_warnings(fit) -> list:
    """The OffsetRoundingWarnings ``fit()`` raises (every other warning let through)."""
    import warnings

    from forgetless.linalg import OffsetRoundingWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit()
    return [w for w in caught if issubclass(w.category, OffsetRoundingWarning)]


def test_rows_far_from_their_mean_are_warned_for_every_head_and_precision():
    """Centring sums of rows far from their mean cancels digits; past four digits left the
    models fell to chance silently (float32 sums from an offset of 1e4 on digits, NCM's cosine
    from 1e8, a ridge without intercept whose lambda lattice lay above the spread). Each now
    warns, naming the remedy, at the line of the user's call."""
    X, y = load_digits(return_X_y=True)
    Xt = X[1400:]
    X, y = X[:1400], y[:1400]
    cases = [
        ({"compute_dtype": "float32"}, 1e4),
        ({"compute_dtype": "float32", "projection": "none"}, 1e4),
        ({"head": "ncm"}, 1e8),
        ({"head": "lda"}, 1e8),
        ({"fit_intercept": False, "projection": "orthogonal", "n_components": 256}, 1e5),
        ({}, 1e10),
    ]
    for settings, offset in cases:
        clf = ContinualClassifier(random_state=0, **settings)
        caught = _offset_warnings(lambda c=clf, o=offset: c.fit(X + o, y).predict(Xt + o))
        assert len(caught) == 1, (settings, offset)
        assert "centre the features" in str(caught[0].message)
        assert caught[0].filename == __file__, caught[0].filename  # the user's line
    # ordinary features never: pixels 0..16, 0..1, standardised, float32, batches, every head
    standard = (X - X.mean(0)) / (X.std(0) + 1e-9)
    for rows in (X, X / 16.0, standard, X + 100.0):
        for settings in ({}, {"compute_dtype": "float32"}, {"head": "ncm"}, {"head": "lda"}):
            clf = ContinualClassifier(random_state=0, **settings)

            def batches(c=clf, r=rows):
                for part in np.array_split(np.arange(len(r)), 4):
                    c.partial_fit(r[part], y[part])
                    c.predict(r[:5])

            assert not _offset_warnings(batches), settings


def test_forgetting_rows_far_larger_than_those_left_is_warned():
    """Rows offset by 7e7 learned beside ordinary ones, then forgotten: the sums left carry
    rounding the size of the forgotten rows' squares, and the model no longer equals a fresh
    fit on the rows left (23 % accurate against 98 %, silently). The forget now warns; an
    ordinary forget does not."""
    X, y = load_digits(return_X_y=True)
    kw = {"projection": "orthogonal", "n_components": 256, "alpha": 1.0, "random_state": 0}
    clf = ContinualClassifier(**kw).fit(X[:1000], y[:1000])
    clf.partial_fit(X[1000:1200] + 7e7, y[1000:1200])
    caught = _offset_warnings(lambda: clf.forget(X[1000:1200] + 7e7, y[1000:1200]))
    assert len(caught) == 1 and "forgotten rows were far larger" in str(caught[0].message)
    ordinary = ContinualClassifier(**kw).fit(X[:1200], y[:1200])
    assert not _offset_warnings(lambda: ordinary.forget(X[1000:1200], y[1000:1200]))
    # nor forgetting nearly everything of one scale, float32 sums included (a review found
    # the first version of this check warning there)
    standard = (X - X.mean(0)) / (X.std(0) + 1e-9)
    tiled = np.vstack([standard] * 10)
    labels = np.tile(y, 10)
    small = ContinualClassifier(**kw, compute_dtype="float32").fit(tiled, labels)
    assert not _offset_warnings(lambda: small.forget(tiled[20:], labels[20:]))


def test_numerical_warnings_come_once_per_learner_at_the_users_line():
    """A stream of batches whose rows lie far from their mean warns once, not at every refit
    (the message's numbers differ per batch, so Python's own once-per-line rule repeated it),
    also where scikit-learn's ``score`` triggers the refit."""
    X, y = load_digits(return_X_y=True)
    clf = ContinualClassifier(compute_dtype="float32", random_state=0)

    def stream():
        for part in np.array_split(np.arange(1400), 6):
            clf.partial_fit(X[part] + 1e4, y[part])
            clf.predict(X[:5] + 1e4)

    assert len(_offset_warnings(stream)) == 1
    fresh = ContinualClassifier(compute_dtype="float32", random_state=0)
    fresh.partial_fit(X[:1000] + 1e4, y[:1000])
    caught = _offset_warnings(lambda: fresh.score(X[1000:] + 1e4, y[1000:]))
    assert len(caught) == 1 and caught[0].filename == __file__


def test_rows_all_alike_at_a_huge_scale_predict_the_priors():
    """Identical rows of size 1e38 on the row space: no spread, a rounding level beyond
    2^200, which the search refused to normalise (a crash, found by a review)."""
    import warnings

    rows = np.full((6, 8), 1e38)
    clf = ContinualClassifier(projection="orthogonal", n_components=64, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(rows, [0, 0, 0, 0, 1, 1])
        assert clf.predict(rows[:2]).tolist() == [0, 0]


def test_warm_start_model_loads_at_the_lambda_it_was_saved_with(tmp_path):
    """A warm-start learner refitted and saved: the loaded one used to walk on from the saved
    lambda over the same sums, and this search's choice (1000) is not the walk's local minimum
    (562), so 0.8 % of its predictions changed. It now solves at the saved lambda until new
    data arrive, then walks from it as the saved learner would."""
    rng = np.random.default_rng(1)
    means = rng.normal(size=(4, 20)) * 1.2 / np.sqrt(20)
    y = rng.integers(0, 4, 1500)
    X = means[y] + rng.normal(size=(1500, 20)) * 0.5 + 1e2
    kw = {"projection": "orthogonal", "n_components": 200, "warm_start": True}
    clf = ContinualClassifier(**kw).fit(X[:1000], y[:1000])
    expected = clf.decision_function(X[1000:])
    clf.save(tmp_path / "warm.fl")
    loaded = ContinualClassifier.load(tmp_path / "warm.fl")
    assert loaded.alpha_ == clf.alpha_
    np.testing.assert_array_equal(loaded.decision_function(X[1000:]), expected)
    for learner in (clf, loaded):  # and both walk on alike
        learner.partial_fit(X[1000:1200], y[1000:1200])
    assert loaded.alpha_ == clf.alpha_
    np.testing.assert_array_equal(
        loaded.decision_function(X[1200:]), clf.decision_function(X[1200:])
    )
    # new data before any prediction: the loaded learner walks on too (it solved at the saved
    # lambda over the new sums, a review found), and a loaded learner saved again keeps saying so
    clf.save(tmp_path / "warm.fl")
    for route in ("learn", "merge", "forget", "save again"):
        loaded = ContinualClassifier.load(tmp_path / "warm.fl")
        original = ContinualClassifier.load(tmp_path / "warm.fl")
        original.decision_function(X[:1])  # refitted at the saved lambda, as the saved one
        for learner in (original, loaded):
            if route == "learn":
                learner.partial_fit(X[1200:1400], y[1200:1400])
            elif route == "merge":
                learner.merge(ContinualClassifier(**kw).fit(X[1200:1400], y[1200:1400]))
            elif route == "forget":
                learner.forget(X[1000:1100], y[1000:1100])
        if route == "save again":
            loaded.save(tmp_path / "again.fl")
            loaded = ContinualClassifier.load(tmp_path / "again.fl")
        assert loaded.alpha_ == original.alpha_, route
        np.testing.assert_array_equal(
            loaded.decision_function(X[1400:]), original.decision_function(X[1400:])
        )


def test_alpha_zero_is_the_minimum_norm_solution_on_few_samples_too():
    """alpha=0 is allowed: with many samples G + 0 I is solved by its minimum-norm solution
    with a warning; with few (the sums kept as their row-space factor) it divided by zero."""
    import warnings

    from sklearn.datasets import load_digits

    from forgetless.linalg import IllConditionedWarning

    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        few = ContinualClassifier(alpha=0).fit(X[:50], y[:50])
        assert few.score(X[1000:], y[1000:]) > 0.6  # 5 digits of each class
        forgot = ContinualClassifier(alpha=0).fit(X[:400], y[:400]).forget(X[50:400], y[50:400])
        np.testing.assert_allclose(
            forgot.decision_function(X[1000:]), few.decision_function(X[1000:]), atol=1e-9
        )
    with pytest.warns(IllConditionedWarning):
        ContinualClassifier(alpha=0).fit(X[:50], y[:50]).predict(X[:5])


def test_alpha_zero_on_all_zero_features_predicts_the_class_frequencies():
    """All-zero features (zeros are data) with alpha=0 on few samples: the row-space solve
    divided 0 by 0 (a bare ZeroDivisionError at every predict); the minimum-norm solution is
    no weight, so the intercept alone decides: the more frequent class."""
    import warnings

    from forgetless.linalg import IllConditionedWarning

    X, y = np.zeros((7, 5)), np.array([0, 1, 0, 1, 0, 1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        clf = ContinualClassifier(projection="orthogonal", n_components=20, alpha=0.0).fit(X, y)
        np.testing.assert_array_equal(clf.predict(X), np.zeros(7))


@pytest.mark.parametrize("head", ["ridge", "rls", "owm"])
def test_an_alpha_of_a_few_subnormals(head):
    """A positive alpha below the smallest normal float64 failed inside LAPACK or scipy: the
    ridge head now solves with it as with alpha = 0 along directions it cannot lift (on the
    row space and on G alike); the recursive heads, which start from P = I / alpha, refuse
    it by name, as both refuse such values in ``alphas`` and an alpha no float holds."""
    X, y = np.random.default_rng(0).standard_normal((60, 8)), np.arange(60) % 3
    if head == "ridge":
        for width in (400, 40):  # 60 rows: the row space, then G
            clf = ContinualClassifier(n_components=width, alpha=5e-324).fit(X, y)
            assert np.isfinite(clf.decision_function(X)).all(), width
    else:
        with pytest.raises(ValueError, match="starts from P = I / alpha: alpha must be at least"):
            ContinualClassifier(n_components=40, head=head, alpha=5e-324).fit(X, y)
        smallest = float(np.finfo(float).tiny)  # accepted; its overflow is an error in words
        with pytest.raises(ValueError, match="update failed: .* (raise|larger) alpha"):
            ContinualClassifier(n_components=40, head=head, alpha=smallest).fit(X, y)
    with pytest.raises(ValueError, match="alphas must be .* at least"):
        ContinualClassifier(n_components=40, alphas=[1e-320, 1.0]).fit(X, y)
    with pytest.raises(ValueError, match="alpha must be 'auto' or a finite number"):
        ContinualClassifier(n_components=40, head=head, alpha=10**400).fit(X, y)


def test_forgetting_a_float32_copy_of_learned_rows_says_rounding_counts():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 32)), np.arange(40) % 3
    clf = ContinualClassifier(projection="none", alpha=1.0).fit(X, y)
    before = clf.decision_function(X)
    with pytest.raises(ValueError, match="such as a float32 copy .* count as other rows"):
        clf.forget(X[:20].astype(np.float32), y[:20])
    np.testing.assert_array_equal(clf.decision_function(X), before)  # nothing changed


def test_the_same_data_give_the_same_file_whether_or_not_it_predicted_before_saving(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((120, 8)), np.arange(120) % 3
    fitted = ContinualClassifier(random_state=0).fit(X, y)
    fitted.predict(X[:2])  # refits the head
    fitted.save(tmp_path / "a.fl")
    ContinualClassifier(random_state=0).partial_fit(X, y).save(tmp_path / "b.fl")  # no refit
    assert (tmp_path / "a.fl").read_bytes() == (tmp_path / "b.fl").read_bytes()


def test_merging_into_an_unfitted_learner_keeps_its_own_head_settings():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 6)), np.arange(200) % 4
    other = ContinualClassifier(n_components=40, warm_start=True, random_state=0).fit(X, y)
    mine = ContinualClassifier(n_components=40, random_state=0).merge(other)
    assert mine.warm_start is False and mine.head_.warm_start is False
    fresh = ContinualClassifier(n_components=40, random_state=0).fit(X, y)
    assert mine.alpha_ == fresh.alpha_
    np.testing.assert_array_equal(mine.predict(X), fresh.predict(X))


def test_coef_is_laid_out_as_scikit_learns_so_feature_selection_reads_features():
    """coef_ is (n_classes, n_features) where no layer is built: RFE and SelectFromModel read
    one weight per feature (with (M, C) they ranked classes as features: RFE kept digits'
    always-blank pixels, SelectFromModel crashed)."""
    from sklearn.datasets import load_digits
    from sklearn.feature_selection import RFE, SelectFromModel

    X, y = load_digits(return_X_y=True)
    clf = ContinualClassifier(projection="none", alpha=1.0).fit(X, y)
    assert clf.coef_.shape == (10, 64) and clf.intercept_.shape == (10,)
    np.testing.assert_allclose(
        X @ clf.coef_.T + clf.intercept_, clf.decision_function(X), rtol=1e-9, atol=1e-9
    )
    blank = np.flatnonzero(X.std(axis=0) == 0)  # pixels no digit ever inks
    assert blank.size >= 3
    kept = RFE(ContinualClassifier(projection="none", alpha=1.0), n_features_to_select=10)
    assert not np.isin(np.flatnonzero(kept.fit(X, y).support_), blank).any()
    chosen = SelectFromModel(ContinualClassifier(projection="none", alpha=1.0)).fit(X, y)
    assert 0 < chosen.get_support().sum() < 64
    assert not np.isin(np.flatnonzero(chosen.get_support()), blank).any()


@pytest.mark.filterwarnings("error")
def test_numpy_settings_fit_and_save_as_plain_numbers(tmp_path):
    """gamma=np.float32(0.1) warned of an overflow twice in fit and could not be saved (JSON);
    a generator in projection_params gave deepcopy's TypeError, naming nothing."""
    X = np.random.default_rng(0).standard_normal((200, 8))
    y = np.arange(200) % 3
    for gamma in (np.float32(0.1), np.int64(1)):
        clf = ContinualClassifier(projection="fourier", n_components=30, gamma=gamma)
        clf.set_params(random_state=0).fit(X, y).save(tmp_path / "m.fl")
        loaded = ContinualClassifier.load(tmp_path / "m.fl")
        np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    odd = ContinualClassifier(
        projection="guided", projection_params={"method": "units", "scales": (s for s in [1.0])}
    )
    with pytest.raises(ValueError, match="projection_params must hold plain values"):
        odd.fit(X, y)


def test_a_layer_too_large_to_build_is_refused_before_it_is_built(monkeypatch):
    """The memory check counted G and the weights only: an orthogonal layer on 20,000 features
    draws 20,000 x 20,000 blocks (about 18 GiB), and a guided kernel layer fits an N x N kernel
    several times over; both went ahead on an 8 GiB machine."""
    import forgetless.learner as learner_module

    monkeypatch.setattr(learner_module, "_physical_memory", lambda: 8 << 30)
    X = np.zeros((2, 20000))
    X[0, 0] = 1.0
    with pytest.raises(ValueError, match="building the orthogonal layer .* takes about 18 GiB"):
        ContinualClassifier(projection="orthogonal", n_components=2000).partial_fit(X, [0, 1])
    X = np.random.default_rng(0).standard_normal((50, 8))
    guided = ContinualClassifier(
        projection="guided", n_components=1000, projection_params={"n_landmarks": 20000}
    )
    with pytest.raises(ValueError, match="building the guided layer .* fewer landmarks"):
        guided.fit(X, np.arange(50) % 3)
    assert not guided.__sklearn_is_fitted__()


def test_learners_in_two_threads_give_the_bits_each_gives_alone(digits, monkeypatch):
    """Same seed and data, same model, whatever thread learns it and whatever other threads
    do. Both learners keep their sums as a factor (150 rows, 300 units), factorised inside
    ``one_thread``; learner B's factor waits there up to a second for learner A's whole fit,
    in another thread. Before, one_thread did nothing outside the main thread (threadpoolctl
    lets only the thread that first set a limit, here the main thread's ridge fits, set
    one), so both factors ran on two BLAS threads and rounded otherwise; where B's limit did
    hold, it held for A's products too. Now A waits for B (the compute lock), and the limits
    hold in whatever thread sets them."""
    import threading

    import threadpoolctl

    import forgetless.statistics as statistics_module
    from forgetless.engine import Engine

    def threads() -> dict[str, int]:
        return {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info()}

    X, y = digits[0][:150], digits[1][:150]

    def learn(seed: int) -> np.ndarray:  # 150 rows of 300 units: sums kept as a factor
        clf = ContinualClassifier(projection="gaussian", n_components=300, random_state=seed)
        return clf.partial_fit(X, y).coef_

    before = threads()
    alone = {"A": learn(0), "B": learn(1)}
    b_inside, a_done = threading.Event(), threading.Event()
    seen: dict[str, list[dict[str, int]]] = {"A": [], "B": []}
    factor, project = statistics_module._stacked_factor_here, Engine.project

    def slow_factor(R: np.ndarray, H: np.ndarray) -> np.ndarray:
        if threading.current_thread().name == "B":  # inside one_thread
            seen["B"].append(threads())
            b_inside.set()
            a_done.wait(1.0)
        return factor(R, H)

    def watched_project(self, layer, rows):
        if threading.current_thread().name == "A":
            seen["A"].append(threads())
        return project(self, layer, rows)

    monkeypatch.setattr(statistics_module, "_stacked_factor_here", slow_factor)
    monkeypatch.setattr(Engine, "project", watched_project)
    together: dict[str, np.ndarray] = {}

    def a() -> None:
        b_inside.wait(10)
        try:
            together["A"] = learn(0)
        finally:
            a_done.set()

    def b() -> None:
        together["B"] = learn(1)

    workers = [threading.Thread(target=a, name="A"), threading.Thread(target=b, name="B")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not any(worker.is_alive() for worker in workers)
    assert np.array_equal(together["A"], alone["A"])
    assert np.array_equal(together["B"], alone["B"])
    assert seen["B"] and all(set(counts.values()) == {1} for counts in seen["B"])
    assert seen["A"] and all(counts == before for counts in seen["A"])  # no limit of B's
    assert threads() == before
