"""The sums' bookkeeping: the symmetric G from its upper triangle, and in-place combination,
bit for bit what the plain formulas give (every route to the same sums must agree exactly)."""

from __future__ import annotations

import numpy as np
import pytest

from forgetless.statistics import (
    SufficientStatistics,
    _downdated_factor,
    _stacked_factor,
    symmetrize_upper,
)


@pytest.mark.parametrize("m", [1, 255, 256, 257, 600])
@pytest.mark.parametrize("order", ["C", "F"])
def test_symmetrize_upper_mirrors_the_upper_triangle_exactly(m, order):
    upper = np.array(np.random.default_rng(m).standard_normal((m, m)), order=order)
    before = upper.copy()
    full = symmetrize_upper(upper)
    expected = np.triu(before) + np.triu(before, 1).T
    np.testing.assert_array_equal(full, expected)
    np.testing.assert_array_equal(upper, before)  # the input is left as it was


def test_adding_and_subtracting_sums_is_exact():
    rng = np.random.default_rng(0)
    H, y = rng.standard_normal((300, 40)), rng.integers(0, 3, 300)
    a, b = SufficientStatistics(40, 3), SufficientStatistics(40, 3)
    a.add(H[:200], y[:200])
    b.add(H[200:], y[200:])
    gram_a, sums_a = a.gram, a.class_sums.copy()
    a += b
    np.testing.assert_array_equal(a.gram, symmetrize_upper(np.triu(gram_a) + np.triu(b.gram)))
    np.testing.assert_array_equal(a.class_sums, sums_a + b.class_sums)
    a -= b
    np.testing.assert_array_equal(a.class_sums, (sums_a + b.class_sums) - b.class_sums)
    assert a.counts.tolist() == np.bincount(y[:200], minlength=3).tolist()


# ---------------------------------------------------------------- few samples: G as its factor
def _rows(n: int, m: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.standard_normal((n, m)), 0.0), rng.integers(0, 3, n)


def test_factor_is_kept_while_samples_are_at_most_half_the_width():
    H, y = _rows(25)
    stats = SufficientStatistics(40, 3)
    stats.add(H[:8], y[:8])
    stats.add(H[8:20], y[8:20])
    assert stats.factored and stats.to_arrays()["gram_factor"].shape == (20, 40)
    np.testing.assert_allclose(stats.gram, H[:20].T @ H[:20], rtol=1e-13, atol=1e-12)
    assert not stats.stays_compact(5)
    stats.add(H[20:], y[20:])  # 25 > 40 // 2: G is kept as its triangle from here on
    assert not stats.factored and "gram_packed" in stats.to_arrays()
    np.testing.assert_allclose(stats.gram, H.T @ H, rtol=1e-13, atol=1e-12)


def test_a_batch_bound_for_whole_sums_builds_no_factor(monkeypatch):
    """A learner whose G is already whole sums a batch by one rank-k update: QR updates of a
    factor (on one BLAS thread) would only be thrown away."""
    from forgetless import ContinualClassifier, statistics

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((300, 8)), rng.integers(0, 3, 300)
    clf = ContinualClassifier(n_components=200, random_state=0).partial_fit(X[:120], y[:120])
    assert not clf.statistics_.factored  # 120 > 200 // 2
    calls = []
    original = statistics._stacked_factor
    monkeypatch.setattr(statistics, "_stacked_factor", lambda *a: calls.append(1) or original(*a))
    clf.partial_fit(X[120:160], y[120:160])  # 40 rows alone would fit a factor
    assert calls == []
    fresh = ContinualClassifier(n_components=200, random_state=0).fit(X[:160], y[:160])
    np.testing.assert_allclose(clf.statistics_.gram, fresh.statistics_.gram, rtol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(X), fresh.predict_proba(X), atol=1e-9)
    small = ContinualClassifier(n_components=200, random_state=0).partial_fit(X[:30], y[:30])
    assert small.statistics_.factored and calls  # few samples: the compact factor, as before


def test_merging_factors_equals_one_batch_and_subtracting_leaves_the_factor():
    H, y = _rows(18)
    a, b, joint = (SufficientStatistics(40, 3) for _ in range(3))
    a.add(H[:7], y[:7])
    b.add(H[7:], y[7:])
    joint.add(H, y)
    a += b
    assert a.factored and a.n_samples == 18
    np.testing.assert_allclose(a.gram, joint.gram, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(a.class_sums, joint.class_sums, rtol=1e-14)
    a -= b  # a subtraction has no factor to keep: G is dense and still exact
    assert not a.factored
    np.testing.assert_allclose(a.gram, H[:7].T @ H[:7], rtol=1e-12, atol=1e-11)


def test_round_trip_through_arrays_is_bit_for_bit_in_both_forms():
    for n in (6, 30):  # factored, then packed triangle
        H, y = _rows(n)
        stats = SufficientStatistics(40, 3)
        stats.add(H, y)
        back = SufficientStatistics.from_arrays(stats.to_arrays())
        assert back.factored == stats.factored
        assert np.array_equal(back.gram_upper, stats.gram_upper)
        assert back.gram.tobytes() == stats.gram.tobytes()


def test_float32_rows_keep_their_float32_update():
    H, y = _rows(6)
    stats = SufficientStatistics(40, 3)
    stats.add(H.astype(np.float32), y)
    assert not stats.factored
    np.testing.assert_allclose(stats.gram, H.T @ H, rtol=1e-5, atol=1e-5)


def test_a_factor_that_no_data_gives_is_refused():
    H, y = _rows(6)
    stats = SufficientStatistics(40, 3)
    stats.add(H, y)
    arrays = stats.to_arrays()
    factor, sums, counts = arrays["gram_factor"], arrays["class_sums"], arrays["counts"]
    with pytest.raises(ValueError, match="upper trapezoidal"):
        SufficientStatistics.from_factor(factor + np.tril(np.ones_like(factor), -1), sums, counts)
    with pytest.raises(ValueError, match="one row per sample"):
        SufficientStatistics.from_factor(factor[:-1], sums, counts)


def test_packing_the_triangle_is_lossless():
    from forgetless.statistics import pack_upper, packed_diagonal, unpack_upper

    upper = np.triu(np.random.default_rng(1).standard_normal((7, 7)))
    packed = pack_upper(upper)
    assert packed.shape == (28,) and np.array_equal(packed[packed_diagonal(7)], np.diag(upper))
    assert np.array_equal(unpack_upper(packed, 7), upper)
    with pytest.raises(ValueError, match="28 values"):
        unpack_upper(packed[:-1], 7)


def test_a_downdated_factor_is_that_of_the_rows_left() -> None:
    rng = np.random.default_rng(3)
    H = rng.standard_normal((9, 30))
    H[4] = H[2]  # a sample learned twice: forgetting one copy leaves the other
    R = _stacked_factor(np.zeros((0, 30)), H)
    gone = [2, 7]
    left = np.setdiff1d(np.arange(9), gone)
    kept = _downdated_factor(R, H[gone])
    assert kept.shape == (7, 30) and not np.tril(kept, -1).any()
    np.testing.assert_allclose(kept.T @ kept, H[left].T @ H[left], atol=1e-12)
    # rows outside the span, or one too many, are not among the rows: no factor
    assert _downdated_factor(R, rng.standard_normal((1, 30))) is None
    assert _downdated_factor(R, H[[2, 2, 2]]) is None  # only two copies were learned
    assert _downdated_factor(R, H[:0]).shape == R.shape


def test_the_attainability_check_agrees_with_the_whole_moment_matrix():
    """The check factorises the Schur complement G - Q N^-1 Q^T (M x M) where it factorised
    the whole [[G, Q], [Q^T, N]] ((M + C) x (M + C): seconds for thousands of classes): the
    same verdict on removals of learned rows, of rows never learned (refused where the sums
    show it) and of rows removed twice, with few and many classes."""
    from scipy import linalg

    def whole_matrix_verdict(after, before):
        m, c = after.n_components, after.n_classes
        margin = 1e-9 * max(float(np.diag(before.gram_upper).max()), 1e-300)
        moment = np.zeros((m + c, m + c))
        moment[:m, :m] = np.triu(after.gram_upper) + np.triu(after.gram_upper, 1).T
        moment[:m, m:] = after.class_sums
        moment[m:, :m] = after.class_sums.T
        moment[m:, m:] = np.diag(after.counts.astype(float))
        moment[np.diag_indices(m + c)] += np.r_[
            np.full(m, margin), np.full(c, 1e-9 * before.n_samples)
        ]
        try:
            linalg.cholesky(moment)
            return True
        except linalg.LinAlgError:
            return False

    verdicts = set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        m, c, n = (6, 3, 40) if seed % 2 else (5, 60, 200)
        H = np.abs(rng.standard_normal((n, m)))
        y = rng.integers(0, c - 1, n)
        y[: c - 1] = np.arange(c - 1)
        y[-1] = c - 1  # the last class holds one sample
        before = SufficientStatistics(m, c)
        before.add(H, y)
        gone = SufficientStatistics(m, c)
        kind = seed % 4
        if kind == 0:  # learned rows
            gone.add(H[:10], y[:10])
        elif kind == 1:  # rows never learned, off the learned rows' span
            gone.add(5 * np.abs(rng.standard_normal((3, m))), y[:3])
        elif kind == 2:  # learned rows removed twice
            rows = np.flatnonzero(y == y[0])
            gone.add(np.vstack([H[rows], H[rows][:1]]), np.r_[y[rows], y[rows][:1]])
        else:  # another learned row under the one-sample class's label: only Q shows it
            gone.add(H[:1], np.array([c - 1]))
        after = before.minus(gone)
        expected = bool(np.all(after.counts >= 0)) and whole_matrix_verdict(after, before)
        try:
            after.check_attainable(before)
            verdict = True
        except ValueError:
            verdict = False
        assert verdict == expected, (seed, kind)
        verdicts.add(verdict)
    assert verdicts == {True, False}  # both outcomes occur among these cases
