"""Heads from sums: GCV against its spectral formula, RLS, NCM, LDA, the checked solve."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from forgetless._lambda_search import GCV, gcv_from_spectrum, select_alpha
from forgetless.heads import HEADS, LDAHead, NCMHead, RidgeHead, RLSHead
from forgetless.linalg import IllConditionedWarning, ridge_solve
from forgetless.statistics import SufficientStatistics


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    n, m, c = 400, 40, 4
    y = rng.integers(0, c, n)
    H = rng.standard_normal((n, m)) + 1.5 * np.eye(c, m)[y]
    stats = SufficientStatistics(m)
    stats.add(H, y, n_classes=c)
    return H, y, stats


def spectral_gcv(H, Y, alpha):
    """GCV by the textbook route: eigendecomposition of G (MATH.md)."""
    sigma, V = np.linalg.eigh(H.T @ H)
    B = V.T @ (H.T @ Y)
    rss = (Y**2).sum() - ((B**2).sum(1) * (sigma + 2 * alpha) / (sigma + alpha) ** 2).sum()
    df = (sigma / (sigma + alpha)).sum()
    return len(H) * rss / (len(H) - df) ** 2


def test_gcv_from_sums_equals_spectral_and_direct(problem):
    H, y, stats = problem
    Y = np.eye(4)[y]
    gcv = GCV(stats.gram, stats.class_sums, len(y))
    for alpha in (1e-3, 0.1, 3.0, 100.0, 1e5):
        A = H.T @ H + alpha * np.eye(H.shape[1])
        W = np.linalg.solve(A, H.T @ Y)
        df = np.trace(H @ np.linalg.solve(A, H.T))
        direct = len(y) * ((Y - H @ W) ** 2).sum() / (len(y) - df) ** 2
        assert gcv(alpha).score == pytest.approx(spectral_gcv(H, Y, alpha), rel=1e-9)
        assert gcv(alpha).score == pytest.approx(direct, rel=1e-9)
        np.testing.assert_allclose(gcv(alpha).coef, W, rtol=1e-9)


def test_search_finds_the_global_minimum_on_its_lattice(problem):
    H, y, stats = problem
    Y = np.eye(4)[y]
    fine = np.logspace(-6, 6, 2401)
    curve = np.array([spectral_gcv(H, Y, a) for a in fine])
    cold, path = select_alpha(stats.gram, stats.class_sums, len(y))
    # Every lattice point (a quarter decade apart) is scored exactly from one eigendecomposition.
    lattice = np.array([p.alpha for p in path])
    np.testing.assert_allclose(np.diff(np.log10(lattice)), 0.25)
    exact = np.array([spectral_gcv(H, Y, a) for a in lattice])
    np.testing.assert_allclose([p.score for p in path], exact, rtol=1e-8)
    assert cold.alpha == lattice[np.argmin(exact)]
    assert abs(np.log10(cold.alpha) - np.log10(fine[curve.argmin()])) <= 0.125 + 1e-9
    assert cold.score <= curve.min() * 1.01
    warm, warm_path = select_alpha(stats.gram, stats.class_sums, len(y), start=cold.alpha * 2)
    assert len(warm_path) <= 5
    assert warm.score <= curve.min() * 1.01 and warm.coef is not None


def test_search_is_global_where_a_walk_stops_early():
    """A GCV curve with two minima: the walk from one side stops at the near one, the default
    search returns the better one."""
    eigenvalues = np.repeat([0.0173933, 5.5016516], [24, 26])
    energies = np.repeat([0.2918847, 44.641465], [24, 26])
    n, target = 315, 1167.82
    grid = 10.0 ** np.arange(-6, 6.01, 0.25)
    curve = gcv_from_spectrum(eigenvalues, energies, n, grid, target)
    interior = (curve[1:-1] < curve[:-2]) & (curve[1:-1] < curve[2:])
    assert interior.sum() >= 2  # the curve really has two local minima
    V = np.linalg.qr(np.random.default_rng(0).standard_normal((50, 50)))[0]
    gram = V @ np.diag(eigenvalues) @ V.T
    sums = V @ np.sqrt(np.stack([energies, np.zeros(50)], axis=1))
    best, _ = select_alpha(gram, sums, n, target_energy=target)
    minima = grid[1:-1][interior]
    scores = gcv_from_spectrum(eigenvalues, energies, n, minima, target)
    assert best.alpha == pytest.approx(minima[np.argmin(scores)])
    far = minima[np.argmax(scores)]
    walked, _ = select_alpha(gram, sums, n, start=far, target_energy=target)
    assert walked.alpha == pytest.approx(far)


def test_hutchinson_gcv_is_close_to_exact():
    rng = np.random.default_rng(1)
    n, m = 600, 200
    y = rng.integers(0, 5, n)
    H = np.maximum(rng.standard_normal((n, m)) + np.eye(5, m)[y], 0)
    stats = SufficientStatistics(m)
    stats.add(H, y, n_classes=5)
    for alpha in (0.1, 10.0, 1000.0):
        estimate = GCV(stats.gram, stats.class_sums, n)(alpha).score
        exact = spectral_gcv(H, np.eye(5)[y], alpha)
        assert estimate == pytest.approx(exact, rel=0.02)


def test_user_grid_is_scored_point_by_point(problem):
    H, y, stats = problem
    grid = [0.1, 1.0, 10.0, 1e3, 1e5]
    best, path = select_alpha(stats.gram, stats.class_sums, len(y), alphas=grid)
    assert [p.alpha for p in path] == grid
    for p in path:  # each scored exactly, by GCV (no class counts given)
        assert p.score == pytest.approx(spectral_gcv(H, np.eye(4)[y], p.alpha), rel=1e-8)
    assert best.alpha == min(path, key=lambda p: p.score).alpha
    assert best.alpha not in (grid[0], grid[-1])  # this problem's minimum is inside the grid
    with pytest.raises(ValueError, match="positive"):
        select_alpha(stats.gram, stats.class_sums, len(y), alphas=[-1.0])


def test_ridge_head_matches_closed_form(problem):
    H, y, stats = problem
    head = RidgeHead(alpha=2.0, fit_intercept=False).fit(stats)
    W = np.linalg.solve(H.T @ H + 2.0 * np.eye(H.shape[1]), H.T @ np.eye(4)[y])
    np.testing.assert_allclose(head.coef_, W, rtol=1e-10)


def test_ridge_intercept_from_centred_sums_matches_scikit_learn(problem):
    from sklearn.linear_model import Ridge

    H, y, stats = problem
    Y = np.eye(4)[y]
    ours = RidgeHead(alpha=2.0, decision="regression").fit(stats)
    theirs = Ridge(alpha=2.0).fit(H, Y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_.T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-9, atol=1e-12)


def test_rls_observed_in_blocks_equals_rebuilt_from_sums(problem):
    """Woodbury updates batch by batch and the Cholesky rebuild from the sums (used after a
    forget or merge) give the same head."""
    H, y, stats = problem
    streamed = RLSHead(alpha=0.5, n_components=H.shape[1])
    streamed.insert_classes(np.zeros(4, dtype=np.int64))
    for part in np.array_split(np.arange(len(y)), 3):
        streamed.observe(H[part], y[part])
    rebuilt = RLSHead(alpha=0.5, n_components=H.shape[1]).fit(stats)
    np.testing.assert_allclose(streamed.coef_, rebuilt.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(streamed.P, rebuilt.P, rtol=1e-9, atol=1e-12)


def test_heads_say_what_they_are():
    assert set(HEADS) == {"ridge", "rls", "ncm", "lda", "owm"}
    assert [n for n, h in HEADS.items() if h.recursive] == ["rls", "owm"]
    assert [n for n, h in HEADS.items() if not h.order_free] == ["owm"]
    assert [n for n, h in HEADS.items() if not h.linear] == ["ncm"]


def test_ncm_is_cosine_to_class_means(problem):
    H, y, stats = problem
    head = NCMHead().fit(stats)
    means = np.stack([H[y == c].mean(0) for c in range(4)], axis=1)
    cos = (H @ means) / np.linalg.norm(H, axis=1, keepdims=True) / np.linalg.norm(means, axis=0)
    np.testing.assert_allclose(head.decision_function(H), cos, rtol=1e-10)
    # rows whose squares overflow (beyond ~1e154) keep their cosines: they used to score 0
    # everywhere, so every row went to the first class
    np.testing.assert_allclose(head.decision_function(H * 1e200), cos, rtol=1e-10)


def test_lda_matches_scikit_learn(problem):
    H, y, stats = problem
    ours = LDAHead(shrinkage=0.2).fit(stats)
    theirs = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.2).fit(H, y)
    agree = (ours.decision_function(H).argmax(1) == theirs.predict(H)).mean()
    assert agree > 0.99
    auto = LDAHead().fit(stats)
    assert 0.0 <= auto.shrinkage_ <= 1.0
    ours_acc = (auto.decision_function(H).argmax(1) == y).mean()
    assert ours_acc >= theirs.score(H, y) - 0.02


def test_ridge_solve_warns_with_condition_number():
    G = np.diag([1.0, 1e-14])
    with pytest.warns(IllConditionedWarning, match="condition number"):
        ridge_solve(G, np.ones((2, 1)), 0.0)
    singular = np.ones((3, 3))  # rank one: Cholesky fails, eigen fallback gives min-norm
    with pytest.warns(IllConditionedWarning, match="not positive definite"):
        W = ridge_solve(singular, np.ones((3, 1)), 0.0)
    np.testing.assert_allclose(W, np.full((3, 1), 1.0 / 3.0), rtol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ridge_solve(np.eye(3), np.ones((3, 1)), 1.0)


def test_gcv_is_inf_where_undefined(problem):
    _, y, stats = problem
    gcv = GCV(stats.gram, stats.class_sums, 30)  # n = 30 < M = 40: df > n for small lambda
    assert math.isinf(gcv(1e-9).score)
    assert math.isfinite(gcv(1e6).score)
    assert math.isinf(GCV(-np.eye(3), np.ones((3, 1)), 10)(0.5).score)  # not factorisable


def test_gcv_with_more_classes_than_units_is_unchanged():
    rng = np.random.default_rng(3)
    n, m, c = 900, 30, 120  # C > M: GCV works on a compressed M x M factor of Q
    y = np.arange(n) % c
    H = rng.standard_normal((n, m)) + 0.3 * rng.standard_normal((c, m))[y]
    stats = SufficientStatistics(m)
    stats.add(H, y, n_classes=c)
    compressed = GCV(stats.gram, stats.class_sums, n)
    assert compressed.compressed
    for alpha in (0.5, 50.0):
        assert compressed(alpha).score == pytest.approx(
            spectral_gcv(H, np.eye(c)[y], alpha), rel=1e-9
        )
    head = RidgeHead(fit_intercept=False).fit(stats)
    W = np.linalg.solve(H.T @ H + head.alpha_ * np.eye(m), H.T @ np.eye(c)[y])
    np.testing.assert_allclose(head.coef_, W, rtol=1e-9, atol=1e-12)


def test_a_minimum_at_the_lattice_edge_yields_to_an_interior_one():
    """With more units than samples GCV stays finite as lambda -> 0 and can look lowest at the
    lattice's lower end (the interpolating fit, whose residual is below rounding: such points
    are undefined); the search takes the best interior minimum."""
    from sklearn.datasets import load_digits

    from forgetless import ContinualClassifier
    from forgetless._lambda_search import select_alpha

    X, y = load_digits(return_X_y=True)
    clf = ContinualClassifier(n_components=2000, random_state=0, fit_intercept=False)
    clf.fit(X[:200], y[:200])
    stats = clf.statistics_
    best, full_path = select_alpha(
        stats.gram, stats.class_sums, stats.n_samples, target_energy=float(stats.n_samples),
        criterion="gcv", scale=float(np.diag(stats.gram_upper).max()),
    )  # fmt: skip
    path = [p for p in full_path if math.isfinite(p.score)]
    scores = np.array([p.score for p in path])
    assert path[0].alpha > full_path[0].alpha  # the interpolating end is undefined
    chosen = [p.alpha for p in path].index(best.alpha)
    assert 0 < chosen < len(path) - 1
    assert scores[chosen] < scores[chosen - 1] and scores[chosen] <= scores[chosen + 1]
    interior = [i for i in range(1, len(path) - 1) if scores[i] < scores[i - 1]]
    assert scores[chosen] == min(scores[i] for i in interior if scores[i] <= scores[i + 1])


def test_discriminant_is_penalised_lda_by_hand(problem):
    """decision="discriminant": LDA with covariance (S_W + lambda I) / (n - C) and the class
    priors, obtained from the ridge solve (Woodbury) instead of a second factorisation."""
    H, y, stats = problem
    n, m, c = H.shape[0], H.shape[1], 4
    head = RidgeHead(alpha=2.0, decision="discriminant").fit(stats)
    assert head.decision_ == "discriminant"
    counts = np.bincount(y, minlength=c).astype(float)
    means = np.stack([H[y == k].mean(0) for k in range(c)], 1)
    within = sum((H[y == k] - means[:, k]).T @ (H[y == k] - means[:, k]) for k in range(c))
    covariance = (within + 2.0 * np.eye(m)) / (n - c)
    coef = np.linalg.solve(covariance, means)
    intercept = -0.5 * np.einsum("mc,mc->c", means, coef) + np.log(counts / n)
    # Scores agree up to a constant per sample (centring the means moves every class alike).
    ours = head.decision_function(H)
    theirs = H @ coef + intercept
    np.testing.assert_allclose(head.coef_ - head.coef_[:, :1], coef - coef[:, :1], atol=1e-10)
    np.testing.assert_allclose(ours - ours[:, :1], theirs - theirs[:, :1], rtol=1e-9, atol=1e-9)


def test_auto_decision_switches_on_samples_per_class():
    """decision="auto" scores by the discriminant from 8 samples per class on average."""
    from forgetless.heads import DISCRIMINANT_MIN_PER_CLASS

    rng = np.random.default_rng(1)
    chosen = {}
    for per_class in (DISCRIMINANT_MIN_PER_CLASS - 1, DISCRIMINANT_MIN_PER_CLASS):
        y = np.repeat(np.arange(3), per_class)
        H = rng.standard_normal((y.size, 8)) + np.eye(3, 8)[y]
        stats = SufficientStatistics(8)
        stats.add(H, y, n_classes=3)
        chosen[per_class] = RidgeHead(alpha=1.0).fit(stats).decision_
        assert RidgeHead(alpha=1.0, decision="regression").fit(stats).decision_ == "regression"
    assert chosen == {7: "regression", 8: "discriminant"}
    with pytest.raises(ValueError, match="decision must be one of"):
        RidgeHead(decision="vote")


def test_discriminant_is_undefined_where_the_fit_interpolates():
    """With lambda -> 0 and more units than samples I - R is singular: the head keeps the
    regression's scores and says so instead of inverting rounding residue."""
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 4)
    H = rng.standard_normal((12, 50))
    stats = SufficientStatistics(50)
    stats.add(H, y, n_classes=3)
    head = RidgeHead(alpha=1e-14, decision="discriminant")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        head.fit(stats)
    assert head.decision_ == "regression"
    assert np.isfinite(head.coef_).all()


def test_the_rls_update_refuses_features_it_cannot_hold_by_name():
    """Features ~1e80: the recursive update's I + H P H^T loses I to rounding. The batch is
    refused with a message naming the remedy, and the learner is unchanged."""
    from sklearn.datasets import load_digits

    from forgetless import ContinualClassifier

    X, y = load_digits(return_X_y=True)
    clf = ContinualClassifier(projection="gaussian", n_components=64, head="rls", alpha=1.0)
    clf.partial_fit(X[:200], y[:200])
    before = clf.decision_function(X[:10])
    with pytest.raises(ValueError, match="recursive least-squares update failed"):
        clf.partial_fit(X[200:300] * 1e80, y[200:300])
    np.testing.assert_array_equal(clf.decision_function(X[:10]), before)
    # a tiny alpha fails the same way, and the message names it as a cause too
    with pytest.raises(ValueError, match=r"reaches 1e\+300\): .*or raise alpha"):
        ContinualClassifier(projection="gaussian", n_components=64, head="rls", alpha=1e-300).fit(
            X[:200], y[:200]
        )


def _factored_and_whole(rng, n=60, m=200, classes=4, duplicates=0):
    """The same sums twice: kept as the n × M factor (few samples) and as G itself."""
    H = rng.standard_normal((n, m)) + 0.3 + np.linspace(0, 1, m)  # an offset to centre away
    y = np.arange(n) % classes
    H[n - duplicates :] = H[:duplicates]  # repeated samples: a rank-deficient factor
    y[n - duplicates :] = y[:duplicates]
    factored, whole = SufficientStatistics(m), SufficientStatistics(m, compact=False)
    factored.add(H, y, n_classes=classes)
    whole.add(H, y, n_classes=classes)
    return factored, whole


@pytest.mark.parametrize("duplicates", [0, 7])
@pytest.mark.parametrize(
    "params",
    [
        {},  # alpha="auto", the loo criterion, the discriminant where due
        {"decision": "regression", "fit_intercept": False},
        {"alpha": 3.0},
        {"alphas": [0.1, 1.0, 10.0]},
        {"warm_start": True},
    ],
)
def test_few_samples_solve_in_the_row_space_as_the_whole_gram_does(params, duplicates):
    """While G is kept as its n × M factor, the ridge head chooses lambda and solves from the
    n-dimensional row space (never forming G): the same lambda as from G itself, the same
    coefficients to 1e-9, with or without repeated samples."""
    factored, whole = _factored_and_whole(np.random.default_rng(0), duplicates=duplicates)
    assert factored.factored and not whole.factored
    small = RidgeHead(**params).fit(factored)
    assert factored._gram_stale  # G was never formed: no M × M work
    big = RidgeHead(**params).fit(whole)
    assert small.alpha_ == big.alpha_ and small.decision_ == big.decision_
    scale = np.abs(big.coef_).max()
    np.testing.assert_allclose(small.coef_, big.coef_, rtol=0, atol=1e-9 * scale)
    offset = max(1.0, np.abs(big.intercept_).max())
    np.testing.assert_allclose(small.intercept_, big.intercept_, rtol=0, atol=1e-9 * offset)


def test_few_samples_many_classes_choose_by_gcv_in_the_row_space():
    factored, whole = _factored_and_whole(np.random.default_rng(1), n=40, classes=30)
    small, big = RidgeHead().fit(factored), RidgeHead().fit(whole)
    assert small.criterion_ == big.criterion_ == "gcv" and small.alpha_ == big.alpha_
    np.testing.assert_allclose(small.coef_, big.coef_, rtol=0, atol=1e-9 * np.abs(big.coef_).max())


def test_row_space_solve_warns_when_ill_conditioned():
    factored, _ = _factored_and_whole(np.random.default_rng(2))
    with pytest.warns(IllConditionedWarning, match="condition number"):
        RidgeHead(alpha=1e-12).fit(factored)


def test_row_space_quadrature_chooses_as_the_whole_gram_does():
    """From 1,024 samples the row space's matrix is searched by the rational quadrature (a few
    n × n factorisations instead of an eigendecomposition): the same lambda as from G itself."""
    factored, whole = _factored_and_whole(np.random.default_rng(3), n=1100, m=2400, classes=6)
    small = RidgeHead(decision="regression").fit(factored)
    big = RidgeHead(decision="regression").fit(whole)
    assert small.alpha_ == big.alpha_
    np.testing.assert_allclose(small.coef_, big.coef_, rtol=0, atol=1e-9 * np.abs(big.coef_).max())


def _exact_centred_ridge(X, y, alpha):
    """The intercept ridge's coefficients from an SVD of the centred rows (no Gram formed)."""
    classes = np.unique(y)
    Hc, Yc = X - X.mean(0), (y[:, None] == classes).astype(float)
    Yc -= Yc.mean(0)
    U, s, Vt = np.linalg.svd(Hc, full_matrices=False)
    return Vt.T @ ((s / (s**2 + alpha))[:, None] * (U.T @ Yc))


@pytest.mark.parametrize(
    "offset, spread, params",
    [
        (100.0, 1.0, {"alpha": 1e-8}),  # a common offset: centring cancels digits
        (100.0, 1.0, {"alphas": [1e-10]}),
        (0.0, 1e8, {"alpha": 1000.0}),  # large features: lambda near G's rounding level
        (0.0, 1e8, {"alphas": [1000.0]}),
    ],
)
def test_row_space_drops_rounding_directions_as_the_exact_ridge_does(offset, spread, params):
    """A lambda near G's rounding level (or below it) is solved with the rounding's directions
    dropped (the intercept's direction among them): the exact ridge's coefficients, not a fit
    of rounding noise divided by lambda."""
    from forgetless import ContinualClassifier

    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    X = spread * (rng.standard_normal((60, 300)) + 0.3 * rng.standard_normal((3, 300))[y]) + offset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        clf = ContinualClassifier(projection="none", decision="regression", **params).fit(X, y)
    assert clf.statistics_.factored
    exact = _exact_centred_ridge(X, y, clf.alpha_)
    np.testing.assert_allclose(clf.coef_.T, exact, rtol=0, atol=1e-8 * np.abs(exact).max())


@pytest.mark.parametrize("downdate", [False, True])
def test_lattice_ends_do_not_move_with_the_route_to_the_same_sums(downdate, monkeypatch):
    """Two samples with simple values: the trace's last bits differ between the row space and
    G formed whole (after a forget the factor cannot follow closely enough), and must not move
    the lattice's end, the choice here; nor between a fresh factor and a downdated one."""
    import forgetless.statistics
    from forgetless import ContinualClassifier

    if not downdate:  # the route of a forget whose downdated factor strays: G kept whole
        monkeypatch.setattr(forgetless.statistics, "_downdated_factor", lambda R, F: None)
    X = np.zeros((2, 300))
    X[1, :150] = 2.0
    y = np.array([0, 1])
    fresh = ContinualClassifier(projection="none").fit(X, y)
    forgot = ContinualClassifier(projection="none").fit(
        np.vstack([X, np.ones((1, 300))]), np.array([0, 1, 1])
    )
    forgot.forget(np.ones((1, 300)), np.array([1]))
    forgot.predict(X)
    assert fresh.statistics_.factored and forgot.statistics_.factored == downdate
    assert fresh.alpha_ == forgot.alpha_
    np.testing.assert_allclose(
        fresh.coef_, forgot.coef_, rtol=0, atol=1e-9 * np.abs(fresh.coef_).max()
    )


def offset_problem(offset: float, n: int = 1000, d: int = 20, c: int = 4):
    """Four Gaussian classes in d dimensions, every row moved by ``offset`` (train, test)."""
    rng = np.random.default_rng(0)
    means = rng.normal(size=(c, d))
    y, yt = rng.integers(0, c, n), rng.integers(0, c, 500)
    X = means[y] + rng.normal(size=(n, d)) + offset
    return X, y, means[yt] + rng.normal(size=(500, d)) + offset, yt


def test_ridge_keeps_lambda_above_the_rounding_of_rows_far_from_their_mean():
    """Rows offset by 1e7 times their spread: ReLU units see them almost linearly, and centring
    G = H^T H cancels 14 of float64's digits. lambda used to land below that rounding (1e4,
    where it is about 4e4) and the model predicted at chance; the search keeps lambda above
    G's rounding level (M eps times its largest diagonal value)."""
    from forgetless import ContinualClassifier
    from forgetless.linalg import OffsetRoundingWarning

    X, y, Xt, yt = offset_problem(1e7)
    clf = ContinualClassifier(projection="orthogonal", n_components=200, random_state=0)
    with pytest.warns(OffsetRoundingWarning):  # the learner says so (tests/test_learner.py)
        clf.fit(X, y)
    floor = 200 * np.finfo(np.float64).eps * float(clf.statistics_.diagonal().max())
    assert clf.alpha_ >= floor
    assert (clf.predict(Xt) == yt).mean() >= 0.95
    # lost altogether (1e12): lambda far above the rounding, so the scores are the priors'
    X, y, Xt, _ = offset_problem(1e12)
    with pytest.warns(OffsetRoundingWarning):
        clf = ContinualClassifier(projection="none", random_state=0).fit(X, y)
        scores = clf.decision_function(Xt)
    np.testing.assert_allclose(scores, scores[:1].repeat(len(Xt), 0), rtol=1e-6, atol=1e-9)


def test_lda_without_shrinkage_regularises_at_least_to_rounding():
    """shrinkage=0 on digits moved by 1e4: the always-blank pixels become constant columns whose
    within-class scatter is rounding; a 1e-10 ridge let it rule the solve (near chance), a
    ridge of the scatter's rounding level keeps the clean data's accuracy."""
    from sklearn.datasets import load_digits

    from forgetless import ContinualClassifier

    X, y = load_digits(return_X_y=True)
    clean = None
    for offset in (0.0, 1e4, 1e6):
        clf = ContinualClassifier(projection="none", head="lda", shrinkage=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            accuracy = (
                clf.fit(X[:1200] + offset, y[:1200]).predict(X[1200:] + offset) == y[1200:]
            ).mean()
        clean = accuracy if clean is None else clean
        assert accuracy >= clean - 0.01, (offset, accuracy, clean)
    assert clean >= 0.9  # LDA on digits' clean pixels (chance is 0.1)
