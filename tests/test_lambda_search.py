"""The lambda search of ``alpha="auto"``: the leave-one-out error criterion against a direct
computation, the Krylov quadrature against the exact spectrum, and what is guaranteed: the
choice is a function of the sums (a fresh fit, any batching, merge and forget choose the same
lambda), and the model at the chosen lambda is the one a fixed alpha gives."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtr

from forgetless import ContinualClassifier
from forgetless._lambda_search import (
    GCV,
    criterion_for,
    krylov_spectrum,
    loo_error,
    quadrature_moments,
    select_alpha,
    shift_invert_nodes,
)


def relu_problem(n=900, d=20, m=1100, c=6, seed=0, separation=0.5):
    """Projected, centred features of a class-structured problem, as the ridge head sees them
    (overlapping classes by default: the loo error is well above its floor)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    X = rng.standard_normal((n, d)) + separation * rng.standard_normal((c, d))[y]
    H = np.maximum(X @ rng.standard_normal((d, m)) / np.sqrt(d), 0.0)
    H -= H.mean(axis=0)
    counts = np.bincount(y, minlength=c)
    Y = np.eye(c)[y] - counts / n
    return H, y, Y, counts


def direct_loo_error(H, y, Y, counts, alpha):
    """The estimate spelled out from the rows: class means and pooled covariance of the fitted
    scores, the average leverage, the nearest rival's Gaussian tail."""
    n, m = H.shape
    A = H.T @ H + alpha * np.eye(m)
    W = np.linalg.solve(A, H.T @ Y)
    F = H @ W
    leverage = (np.trace(np.linalg.solve(A, H.T @ H)) + 1.0) / n
    c = counts.size
    means = np.stack([F[y == k].mean(axis=0) for k in range(c)])  # row k: class k's mean scores
    within = sum((F[y == k] - means[k]).T @ (F[y == k] - means[k]) for k in range(c)) / (n - c)
    error = 0.0
    for k in range(c):
        tails = [
            ndtr(
                -(means[k, k] - means[k, j] - leverage)
                / math.sqrt(within[k, k] + within[j, j] - 2 * within[k, j])
            )
            for j in range(c)
            if j != k
        ]
        error += counts[k] / n * max(tails)
    return error


def test_loo_error_equals_its_definition_from_the_rows():
    H, y, Y, counts = relu_problem(n=300, m=40, c=4)
    s, V = np.linalg.eigh(H.T @ H)
    alphas = np.array([0.1, 3.0, 100.0])
    estimate = np.exp(loo_error(s, V.T @ (H.T @ Y), counts, alphas, extra_df=1.0))
    direct = [direct_loo_error(H, y, Y, counts, a) for a in alphas]
    np.testing.assert_allclose(estimate, direct, rtol=1e-8)


def test_loo_error_is_undefined_where_the_fit_interpolates():
    H, y, Y, counts = relu_problem(n=60, m=200, c=3)  # more units than samples
    s, V = np.linalg.eigh(H.T @ H)
    tiny = np.array([1e-12 * s.max()])
    energy = float((Y**2).sum())
    assert math.isinf(loo_error(s, V.T @ H.T @ Y, counts, tiny, 1.0, target_energy=energy)[0])


@pytest.mark.parametrize("alpha", [1e-160, 1.0, 1e160])
def test_moments_stay_finite_at_extreme_lambdas(alpha):
    """K2 = B^T diag(s / (s + l)^2) B from the nodes, without squaring 1 / (s + l) first (which
    overflows or vanishes at l ~ 1e+-160: given alphas are scored unnormalised)."""
    from forgetless._lambda_search import moments_from_nodes

    nodes = np.array([0.0, 1e-3, 1.0, 5.0])
    rotated = np.random.default_rng(0).standard_normal((4, 2))
    cross, cross2, df = moments_from_nodes(nodes, rotated, np.array([alpha]))
    weights = (nodes / (nodes + alpha)) / (nodes + alpha)
    np.testing.assert_allclose(cross2[0], rotated.T @ (rotated * weights[:, None]), rtol=1e-12)
    np.testing.assert_allclose(cross[0], rotated.T @ (rotated / (nodes + alpha)[:, None]))
    assert np.isfinite(cross2).all() and np.isfinite(df).all()


def test_criterion_rule():
    assert criterion_for(np.array([40, 40, 40]), 120, 3) == "loo"
    assert criterion_for(None, 120, 3) == "gcv"  # no class counts
    assert criterion_for(np.array([1, 1, 1]), 3, 3) == "gcv"  # fewer than 2 samples per class
    assert criterion_for(np.array([3, 3, 3]), 9, 3) == "gcv"  # under 10 within-class dof
    assert criterion_for(np.full(600, 10), 6000, 600) == "gcv"  # more than 512 classes
    assert criterion_for(np.array([120]), 120, 1) == "gcv"


def test_block_lanczos_quadrature_is_gauss_quadrature():
    """E^T f(T) E equals X^T f(G) X once the Krylov space is invariant, and the banded moments
    equal the dense ones."""
    H, y, Y, counts = relu_problem(n=200, m=60, c=3)
    G = H.T @ H
    probes = np.random.default_rng(1).choice([-1.0, 1.0], size=(60, 4))
    start = np.hstack([H.T @ Y, probes])
    *_, (T, E, exact) = krylov_spectrum(G, start)
    assert exact
    # The start's QR factors, when passed in (several runs from one start), change nothing.
    *_, (T2, E2, _) = krylov_spectrum(G, start, start_qr=np.linalg.qr(start))
    assert np.array_equal(T, T2) and np.array_equal(E, E2)
    alphas = np.array([0.5, 20.0])
    cross, cross2, df = quadrature_moments(T, E, 3, alphas, T.shape[0] - 1)
    for i, a in enumerate(alphas):
        R = np.linalg.inv(G + a * np.eye(60))
        Q = H.T @ Y
        np.testing.assert_allclose(cross[i], Q.T @ R @ Q, rtol=1e-8)
        np.testing.assert_allclose(cross2[i], Q.T @ R @ G @ R @ Q, rtol=1e-8)
        expected = np.trace(probes.T @ (G @ R) @ probes) / 4
        assert df[i] == pytest.approx(expected, rel=1e-8)


def test_shift_invert_quadrature_is_exact_once_the_space_is_invariant():
    """Nodes and coordinates from the factor of G + sigma I reproduce K, K2 and the probes'
    trace at every lambda once the steps span the space, and K at lambda = sigma after one."""
    H, y, Y, counts = relu_problem(n=200, m=60, c=3)
    G, Q = H.T @ H, H.T @ Y
    probes = np.random.default_rng(1).choice([-1.0, 1.0], size=(60, 4))
    start = np.hstack([Q, probes])
    upper = np.linalg.cholesky(G + 3.0 * np.eye(60)).T
    for steps, alphas in ((1, [3.0]), (9, [0.5, 3.0, 80.0])):
        s, C = shift_invert_nodes(upper, 3.0, start, steps=steps)
        for a in alphas:
            R = np.linalg.inv(G + a * np.eye(60))
            weighted = C[:, :3] / (s + a)[:, None]
            np.testing.assert_allclose(C[:, :3].T @ weighted, Q.T @ R @ Q, rtol=1e-8)
            if steps > 1:
                K2 = weighted.T @ (weighted * s[:, None])
                np.testing.assert_allclose(K2, Q.T @ R @ G @ R @ Q, rtol=1e-7)
                df = np.sum(C[:, 3:] ** 2 * (s / (s + a))[:, None]) / 4
                assert df == pytest.approx(np.trace(probes.T @ G @ R @ probes) / 4, rel=1e-8)


@pytest.mark.parametrize("method", ["auto", "krylov"])
@pytest.mark.parametrize("criterion", ["loo", "gcv"])
def test_quadrature_search_chooses_what_the_exact_spectrum_chooses(criterion, method):
    H, y, Y, counts = relu_problem()
    G, Q, n = H.T @ H, H.T @ Y, H.shape[0]
    kwargs = dict(target_energy=float((Y**2).sum()), extra_df=1.0, counts=counts)
    exact, exact_path = select_alpha(G, Q, n, method="spectral", criterion=criterion, **kwargs)
    fast, fast_path = select_alpha(G, Q, n, criterion=criterion, method=method, **kwargs)
    assert fast.coef is not None  # a quadrature ran (it returns its factorisation's W)
    assert fast.alpha == exact.alpha
    near = {p.alpha: p.score for p in exact_path}
    for p in fast_path:  # the curve near the choice, within the check's 2 %
        if abs(math.log10(p.alpha / exact.alpha)) <= 1.0:
            assert p.score == pytest.approx(near[p.alpha], rel=0.02)
    # The coefficients are those of the Cholesky solve a fixed alpha makes.
    W = np.linalg.solve(G + exact.alpha * np.eye(G.shape[0]), Q)
    np.testing.assert_allclose(fast.coef, W, rtol=1e-7, atol=1e-10 * np.abs(W).max())


@pytest.mark.parametrize("seed, separation", [(14, 0.5), (39, 1.0)])
def test_quadrature_search_factorises_each_lambda_once(monkeypatch, seed, separation):
    """A near-tie neighbour the search already factorised on its way (here: the first lambda
    tried) reuses those moments: every lambda is factorised once, and the choice is the exact
    spectrum's."""
    from forgetless.linalg import HostLinalg

    factorised = []
    original = HostLinalg.shifted_cholesky

    def counted(self, gram, alpha, out=None):
        factorised.append(float(alpha))
        return original(self, gram, alpha, out=out)

    monkeypatch.setattr(HostLinalg, "shifted_cholesky", counted)
    H, y, Y, counts = relu_problem(seed=seed, separation=separation)
    G, Q, n = H.T @ H, H.T @ Y, H.shape[0]
    kwargs = dict(target_energy=float((Y**2).sum()), extra_df=1.0, counts=counts)
    best, _ = select_alpha(G, Q, n, **kwargs)
    assert best.coef is not None and len(factorised) >= 1  # the quadrature ran
    assert len(factorised) == len(set(factorised))
    assert best.alpha == select_alpha(G, Q, n, method="spectral", **kwargs)[0].alpha


@pytest.mark.parametrize(
    "seed, separation, steps", [(7, 0.5, 2), (8, 0.5, 2), (0, 0.5, 2), (18, 1.0, 1)]
)
def test_a_confirmed_first_look_needs_one_float64_factorisation(
    monkeypatch, seed, separation, steps
):
    """The curve from a float32 factorisation chooses a lambda one or two lattice steps away;
    that lambda is factorised in float64 (its coefficients), and where the float64 criterion
    confirms the curve there, no float64 curve is run: one factorisation in each precision, one
    curve, the exact spectrum's choice, and the coefficients of a fixed alpha's solve."""
    import forgetless._lambda_search as search
    from forgetless.linalg import HostLinalg

    factorised, single, curves = [], [], []
    original, original_curve = HostLinalg.shifted_cholesky, search.shift_invert_nodes
    original_single = HostLinalg.single_cholesky

    def counted(self, gram, alpha, out=None):
        factorised.append(float(alpha))
        return original(self, gram, alpha, out=out)

    def counted_single(self, rough, alpha):
        single.append(float(alpha))
        return original_single(self, rough, alpha)

    def counted_curve(*args, **kwargs):
        curves.append(args[1])
        return original_curve(*args, **kwargs)

    monkeypatch.setattr(HostLinalg, "shifted_cholesky", counted)
    monkeypatch.setattr(HostLinalg, "single_cholesky", counted_single)
    monkeypatch.setattr(search, "shift_invert_nodes", counted_curve)
    H, y, Y, counts = relu_problem(seed=seed, separation=separation)
    G, Q, n = H.T @ H, H.T @ Y, H.shape[0]
    kwargs = dict(target_energy=float((Y**2).sum()), extra_df=1.0, counts=counts)
    best, _ = select_alpha(G, Q, n, **kwargs)
    assert len(single) == 1 and len(factorised) == 1 and len(curves) == 1
    assert abs(round(4 * math.log10(factorised[0] / single[0]))) == steps
    assert best.alpha == factorised[0]
    assert best.alpha == select_alpha(G, Q, n, method="spectral", **kwargs)[0].alpha
    W = np.linalg.solve(G + best.alpha * np.eye(G.shape[0]), Q)
    np.testing.assert_allclose(best.coef, W, rtol=1e-7, atol=1e-10 * np.abs(W).max())


@pytest.mark.parametrize("seed, separation", [(7, 0.5), (18, 1.0), (39, 1.0)])
def test_the_search_stands_without_its_float32_look(monkeypatch, seed, separation):
    """Where float32 cannot factorise G + sigma I (its rounding, about 1e-7 of G's largest
    eigenvalue, beyond sigma), the float64 rounds alone decide: the exact spectrum's choice."""
    from forgetless.linalg import HostLinalg

    monkeypatch.setattr(HostLinalg, "single_cholesky", lambda self, rough, alpha: None)
    H, y, Y, counts = relu_problem(seed=seed, separation=separation)
    G, Q, n = H.T @ H, H.T @ Y, H.shape[0]
    kwargs = dict(target_energy=float((Y**2).sum()), extra_df=1.0, counts=counts)
    best, _ = select_alpha(G, Q, n, **kwargs)
    assert best.coef is not None
    assert best.alpha == select_alpha(G, Q, n, method="spectral", **kwargs)[0].alpha


def test_separable_classes_leave_ties_that_gcv_decides():
    """Well separated classes and more units than samples: the loo estimate would fall to
    exp(-thousands); it is floored at half a sample, and among the tied lambdas GCV decides."""
    H, y, Y, counts = relu_problem(n=240, d=20, m=400, c=4)
    H = H + 40.0 * np.eye(4, 400)[y]  # far apart
    H -= H.mean(axis=0)
    G, Q, n = H.T @ H, H.T @ Y, H.shape[0]
    kwargs = dict(target_energy=float((Y**2).sum()), extra_df=1.0, counts=counts)
    best, path = select_alpha(G, Q, n, **kwargs)
    floor = math.log(0.5 / n)
    plateau = [p.alpha for p in path if p.score == pytest.approx(floor, rel=1e-6)]
    assert len(plateau) > 3 and best.alpha in plateau
    _, gcv_path = select_alpha(G, Q, n, criterion="gcv", **kwargs)
    gcv = {p.alpha: p.score for p in gcv_path}
    assert gcv[best.alpha] == min(gcv[a] for a in plateau)


def test_warm_walk_breaks_a_loo_plateau_by_gcv_as_the_cold_search_does():
    """Separable classes floor leave-one-out at half a sample over a run of lambdas; the walk
    took the plateau's largest lambda there (digits, 1,024 units, two BLAS threads: 1e4 where
    the cold search chose 178, 98.2 % against 99.2 %)."""
    H, y, Y, counts = relu_problem(n=240, d=20, m=400, c=4)
    H = H + 40.0 * np.eye(4, 400)[y]
    H -= H.mean(axis=0)
    G, Q, n = H.T @ H, H.T @ Y, H.shape[0]
    kwargs = dict(target_energy=float((Y**2).sum()), extra_df=1.0, counts=counts)
    cold, path = select_alpha(G, Q, n, **kwargs)
    _, gcv_path = select_alpha(G, Q, n, criterion="gcv", **kwargs)
    step = lambda alpha: round(4 * math.log10(alpha))  # noqa: E731 (the lattice's index)
    gcv = {step(p.alpha): p.score for p in gcv_path}
    floor = math.log(0.5 / n)
    plateau = {step(p.alpha) for p in path if p.score == pytest.approx(floor, rel=1e-6)}
    assert len(plateau) > 3
    for start in (min(plateau), max(plateau)):
        warm, walked = select_alpha(G, Q, n, start=10.0 ** (start / 4), **kwargs)
        assert step(warm.alpha) in plateau and step(warm.alpha) < max(plateau)
        on_plateau = [step(p.alpha) for p in walked if step(p.alpha) in plateau]
        assert gcv[step(warm.alpha)] == min(gcv[i] for i in on_plateau)


def test_warm_walk_scores_the_same_criterion():
    H, y, Y, counts = relu_problem(n=600, m=80)
    G, Q, n = H.T @ H, H.T @ Y, H.shape[0]
    kwargs = dict(target_energy=float((Y**2).sum()), extra_df=1.0, counts=counts)
    cold, path = select_alpha(G, Q, n, **kwargs)
    warm, walked = select_alpha(G, Q, n, start=cold.alpha * 1.8, **kwargs)
    assert warm.alpha == cold.alpha and warm.coef is not None
    scores = {round(4 * math.log10(p.alpha)): p.score for p in path}
    for p in walked:  # factorised scores (exact K, Hutchinson df) match the spectral curve
        assert p.score == pytest.approx(scores[round(4 * math.log10(p.alpha))], rel=1e-3)
    assert GCV(G, Q, n, target_energy=kwargs["target_energy"], extra_df=1.0)(1.0).coef is not None


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 8, 2400)
    X = rng.standard_normal((2400, 16)) + 1.5 * rng.standard_normal((8, 16))[y]
    return X, y


def test_auto_alpha_is_a_function_of_the_sums_on_the_quadrature_route(blobs):
    """The guarantee of alpha="auto" where the quadrature decides (M >= 1024): the same lambda
    and the same model whatever the batching, after a merge and after a forget, as a fresh fit
    on the net data; a fixed alpha equal to alpha_ gives that model."""
    X, y = blobs
    params = dict(n_components=1100, random_state=0)
    fresh = ContinualClassifier(**params).fit(X, y)
    assert fresh.head_.criterion_ == "loo"
    assert fresh.head_.gcv_path_ and fresh.alpha_ in [p.alpha for p in fresh.head_.gcv_path_]
    batches = ContinualClassifier(**params)
    for task in np.array_split(np.argsort(y, kind="stable"), 4):  # class-incremental batches
        batches.partial_fit(X[task], y[task])
    merged = ContinualClassifier(**params).fit(X[:1000], y[:1000])
    merged.merge(ContinualClassifier(**params).fit(X[1000:], y[1000:]))
    forgot = ContinualClassifier(**params).fit(np.vstack([X, X[:300]]), np.r_[y, y[:300]])
    forgot.forget(X[:300], y[:300])
    fixed = ContinualClassifier(n_components=1100, random_state=0, alpha=fresh.alpha_).fit(X, y)
    for other in (batches, merged, forgot, fixed):
        assert other.alpha_ == fresh.alpha_
        np.testing.assert_allclose(other.coef_, fresh.coef_, rtol=1e-7, atol=1e-9)
        np.testing.assert_array_equal(other.predict(X), fresh.predict(X))
    again = ContinualClassifier(**params).fit(X, y)  # deterministic: the same bits
    np.testing.assert_array_equal(again.coef_, fresh.coef_)


def test_loo_chooses_better_than_gcv_where_gcv_undersmooths():
    """A case GCV gets wrong in the way measured on openclipart (few samples per class, many
    classes, heavy-tailed leverage): the loo criterion's lambda classifies held-out data at
    least as well as GCV's."""
    rng = np.random.default_rng(7)
    c, d, m = 12, 30, 300
    centres = rng.standard_normal((c, d))

    def draw(k):
        y = rng.integers(0, c, k)
        scale = rng.standard_t(3, size=(k, 1))  # heavy tails: uneven leverage
        return centres[y] + 0.8 * scale * rng.standard_normal((k, d)), y

    X, y = draw(360)
    Xv, yv = draw(3000)
    loo = ContinualClassifier(n_components=m, random_state=0).fit(X, y)
    gcv_alpha, _ = select_alpha(
        *_centred(loo), criterion="gcv", method="spectral", extra_df=1.0,
        target_energy=_energy(loo),
    )  # fmt: skip
    gcv = ContinualClassifier(n_components=m, random_state=0, alpha=gcv_alpha.alpha).fit(X, y)
    assert loo.head_.criterion_ == "loo" and loo.alpha_ > gcv_alpha.alpha  # GCV undersmooths
    assert loo.score(Xv, yv) >= gcv.score(Xv, yv) + 0.01  # 0.900 against 0.882 here


def _centred(clf):
    stats = clf.statistics_
    n = stats.n_samples
    mean = stats.feature_sum / n
    prior = stats.counts / n
    return stats.gram - n * np.outer(mean, mean), stats.class_sums - n * np.outer(mean, prior), n


def _energy(clf):
    prior = clf.statistics_.counts / clf.statistics_.n_samples
    return clf.statistics_.n_samples * (1.0 - float(prior @ prior))


def test_bad_arguments_are_refused():
    H, y, Y, counts = relu_problem(n=100, m=20, c=3)
    with pytest.raises(ValueError, match="criterion"):
        select_alpha(H.T @ H, H.T @ Y, 100, criterion="aic")
    with pytest.raises(ValueError, match="counts"):
        select_alpha(H.T @ H, H.T @ Y, 100, criterion="loo")
    with pytest.raises(ValueError, match="method"):
        select_alpha(H.T @ H, H.T @ Y, 100, method="lanczos")


def test_more_units_than_samples_keeps_residual_degrees_of_freedom():
    """With more units than samples the fit interpolates as lambda -> 0: every leverage nears 1
    and leave-one-out extrapolates from nothing (its floored estimate used to tie there, and
    GCV then chose lambda ~ 1e-4: df = 99 of 100 samples on digits). The chosen lambda leaves
    at least max(C, 10) residual degrees of freedom and classifies held-out digits better
    than the interpolating choice did (90.2 %; now 90.9 %)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    rng = np.random.default_rng(0)
    train = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:10] for c in range(10)])
    held = np.setdiff1d(np.arange(y.size), train)
    clf = ContinualClassifier(projection="gaussian", n_components=512, random_state=0)
    clf.fit(X[train], y[train])
    G, _, n = _centred(clf)
    s = np.maximum(np.linalg.eigvalsh(G), 0.0)
    df = float(np.sum(s / (s + clf.alpha_)))
    assert n - 1 - df >= 10
    assert clf.score(X[held], y[held]) >= 0.905


def test_an_end_scoring_below_the_interior_minimum_is_not_a_tie():
    """The interior minimum wins over an end of the lattice; the tie set held every point
    not above it, so a lower end won by the GCV tie-break or the largest-lambda rule (with a
    +3e5 offset on digits' features, lambda 0.018 instead of 3162, one point of accuracy)."""
    from forgetless._lambda_search import GCVPoint, _choose

    alphas = 10.0 ** np.arange(-2, 3)
    for scores, gcv in [
        ([-6.0, -4.0, -4.5, -4.2, -4.1], None),
        ([-4.0, -4.3, -4.5, -4.2, -6.0], None),
        ([-6.0, -4.0, -4.5, -4.2, -4.1], np.array([0.1, 0.9, 0.5, 0.8, 0.9])),
    ]:
        points = [GCVPoint(a, s) for a, s in zip(alphas, scores, strict=True)]
        assert _choose(points, interior=True, tiebreak=gcv).alpha == 1.0
    plateau = [GCVPoint(a, -5.0) for a in alphas]  # a floored curve: ties, the largest lambda
    assert _choose(plateau, interior=True).alpha == 100.0


def test_classes_without_spread_fall_back_to_gcv_not_the_largest_lambda():
    """Every class's rows copies of one prototype: the leave-one-out estimate is undefined at
    every lambda, and the largest lambda was chosen, which predicts by the class priors
    (training accuracy 0.22 on digits' prototypes)."""
    from sklearn.datasets import load_digits

    from forgetless import ContinualClassifier

    X, y = load_digits(return_X_y=True)
    prototypes = np.stack([X[y == k][0] for k in y[:1200]])
    clf = ContinualClassifier(projection="none").fit(prototypes, y[:1200])
    assert clf.head_.criterion_ == "gcv"
    assert clf.alpha_ < max(p.alpha for p in clf.head_.gcv_path_)
    assert (clf.predict(prototypes) == y[:1200]).mean() == 1.0


@pytest.mark.parametrize("scale", [1e20, 1e50, 1e-20, 1e-50, 1e80, 1e120])
def test_features_far_from_unit_scale_choose_the_same_lambda_relative_to_their_scale(scale):
    """The quadrature's first look at the spectrum copies G to float32: features of 1e20 made
    that copy overflow and every prediction failed ("Eigenvalues did not converge"); features
    of 1e-20 underflowed it and placed the search elsewhere. The choice scales with G now.
    (Fewer samples than M / 2: the plain fit scores its row space exactly, the far scales
    search G itself, on a flat curve where only factorising the near-tie orders the two.)"""
    from forgetless import ContinualClassifier

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((150, 6)), np.repeat([0, 1, 2], 50)
    X[:, 0] += y
    settings = dict(projection="gaussian", n_components=1100, random_state=0)
    plain = ContinualClassifier(**settings).fit(X, y)
    scaled = ContinualClassifier(**settings).fit(X * scale, y)
    assert scaled.alpha_ == pytest.approx(plain.alpha_ * scale**2, rel=1e-9)
    assert (scaled.predict(X * scale) == plain.predict(X)).all()


def test_a_forget_back_to_few_samples_chooses_what_a_fresh_fit_chooses():
    """150 samples on 1,100 units: a fresh fit scores lambda exactly on its row space; a learner
    that saw 600 more and forgot them keeps G whole and searches it by quadrature. On this flat
    curve the two best lambdas differ by 0.15 % (relative): the search factorises the near-tie
    and chooses the exact criterion's lambda, as the fresh fit does (a search that left the
    near-tie to the curve chose the other)."""
    from forgetless import ContinualClassifier

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((150, 6)), np.repeat([0, 1, 2], 50)
    X[:, 0] += y
    extra, extra_y = rng.standard_normal((600, 6)), np.repeat([0, 1, 2], 200)
    extra[:, 0] += extra_y
    settings = dict(projection="gaussian", n_components=1100, random_state=0)
    fresh = ContinualClassifier(**settings).fit(X, y)
    forgot = ContinualClassifier(**settings).partial_fit(np.vstack([X, extra]), np.r_[y, extra_y])
    forgot.forget(extra, extra_y)
    assert fresh.statistics_.factored and not forgot.statistics_.factored  # the two routes
    assert forgot.alpha_ == pytest.approx(fresh.alpha_, rel=1e-12)
    assert (forgot.predict(X) == fresh.predict(X)).all()


def test_a_warm_started_forget_back_to_few_samples_searches_globally():
    """warm_start walks from the previous lambda, but while at most M / 2 samples are in, every
    refit searches globally: after a forget back to 60 samples on 200 units (G kept whole) the
    walk stopped at lambda = 1778, five lattice points scored, where a fresh fit on the 60
    samples (its row space) chose 562; 32 of 297 predictions differed."""
    from sklearn.datasets import load_digits

    from forgetless import ContinualClassifier

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(3)
    noisy = y.copy()
    flipped = rng.random(y.size) < 0.3
    noisy[flipped] = rng.integers(0, 10, flipped.sum())
    kw = dict(projection="gaussian", n_components=200, warm_start=True, random_state=0)
    forgot = ContinualClassifier(**kw).partial_fit(X[:400], noisy[:400])
    forgot.predict(X[:1])  # a refit: the walk's start
    forgot.forget(X[60:400], noisy[60:400])
    fresh = ContinualClassifier(**kw).fit(X[:60], noisy[:60])
    assert fresh.statistics_.factored and not forgot.statistics_.factored  # the two routes
    assert forgot.alpha_ == pytest.approx(fresh.alpha_, rel=1e-12)
    assert (forgot.predict(X[1500:]) == fresh.predict(X[1500:])).all()


@pytest.mark.parametrize("seed", [3, 4])
def test_a_forget_back_below_half_the_width_scores_lambda_exactly(seed):
    """45 barely separated classes of about ten samples on 1,300 units: the quadrature on a G
    of rank 443 chose lambda six lattice steps above the exact choice a fresh fit makes on its
    row space (predictions agreed on 72 and 79 % of the rows). With G whole and at most M / 2
    samples, lambda is scored exactly from G's spectrum."""
    from forgetless import ContinualClassifier

    rng = np.random.default_rng(seed)
    centres = 0.2 * rng.standard_normal((45, 10))
    y, extra_y = rng.integers(0, 45, 443), rng.integers(0, 45, 500)
    X = rng.standard_normal((443, 10)) + centres[y]
    extra = rng.standard_normal((500, 10)) + centres[extra_y]
    settings = dict(projection="gaussian", n_components=1300, random_state=0)
    fresh = ContinualClassifier(**settings).fit(X, y)
    forgot = ContinualClassifier(**settings).partial_fit(np.vstack([X, extra]), np.r_[y, extra_y])
    forgot.forget(extra, extra_y)
    assert fresh.statistics_.factored and not forgot.statistics_.factored
    assert forgot.alpha_ == pytest.approx(fresh.alpha_, rel=1e-12)
    assert (forgot.predict(X) == fresh.predict(X)).mean() >= 0.99


@pytest.mark.parametrize(
    "seed, n, extra, projection, noise",
    [(84, 1049, 150, "hadamard", 4.0), (2850, 1046, 100, "orthogonal", 0.0)],
)
def test_a_forget_back_below_half_the_width_meets_the_row_space_quadrature(
    seed, n, extra, projection, noise
):
    """From 1,024 samples a fresh fit searches its row space by the quadrature, a forget back
    there G's exact spectrum. The quadrature ordered a near-tie by its 64-probe trace (seed 84:
    the exact scores 5e-5 apart, relative) and broke a floored plateau by the curve's GCV
    (seed 2850: 2e-3 apart), so the two chose different lambdas (a review found 7 of 117
    random cases). The row space's scores are now exact and its search ends at an exact local
    minimum: the same lambda and coefficients."""
    from forgetless import ContinualClassifier

    rng = np.random.default_rng(seed)
    means = 1.5 * rng.standard_normal((2, 10))
    y = rng.integers(0, 2, n + extra)
    X = means[y] + rng.standard_normal((n + extra, 10))
    X += noise * np.random.default_rng(seed).standard_normal(X.shape)
    settings = dict(projection=projection, n_components=2100, random_state=seed)
    fresh = ContinualClassifier(**settings).fit(X[:n], y[:n])
    forgot = ContinualClassifier(**settings).fit(X, y).forget(X[n:], y[n:])
    assert fresh.statistics_.factored and not forgot.statistics_.factored  # the two routes
    assert forgot.alpha_ == pytest.approx(fresh.alpha_, rel=1e-12)
    np.testing.assert_allclose(
        forgot.coef_, fresh.coef_, rtol=0, atol=1e-9 * abs(fresh.coef_).max()
    )


def test_the_exact_descent_never_walks_to_a_lambda_the_criterion_does_not_score():
    """50 classes on 2,100 units, 1,040 samples: the lowest lambda leave-one-out scores (below
    it the average leverage passes the cap) ends a floored plateau. The descent took a score of
    inf for a tie and let GCV walk it into the capped region (a review: 56 where the exact
    spectrum, and a forget, choose 100)."""
    from forgetless import ContinualClassifier

    rng = np.random.default_rng(0)
    n, extra, c, d = 1040, 150, 50, 200
    y = np.arange(n + extra) % c
    X = rng.standard_normal((c, d))[y] + 0.5 * rng.standard_normal((n + extra, d))
    settings = dict(projection="orthogonal", n_components=2100, random_state=0)
    fresh = ContinualClassifier(**settings).fit(X[:n], y[:n])
    forgot = ContinualClassifier(**settings).fit(X, y).forget(X[n:], y[n:])
    path = {p.alpha: p.score for p in fresh.head_.gcv_path_}
    assert math.isfinite(path[fresh.alpha_])
    assert fresh.alpha_ == pytest.approx(forgot.alpha_, rel=1e-12)


@pytest.mark.parametrize("n, classes", [(600, 5), (1040, 100)])
def test_the_row_space_solves_at_its_choice_as_a_fixed_alpha_does(n, classes):
    """Where the row space scores lambda from its eigendecomposition (below 1,024 samples, or
    too many classes for the quadrature), the coefficients came from the spectrum, 1e-16 away
    from the Cholesky solve a fixed alpha makes (a review); now the same solve, bit for bit."""
    from forgetless import ContinualClassifier

    rng = np.random.default_rng(5)
    y = np.arange(n) % classes
    X = rng.standard_normal((classes, 10))[y] + rng.standard_normal((n, 10))
    settings = dict(projection="orthogonal", n_components=2100, random_state=0)
    auto = ContinualClassifier(**settings).fit(X, y)
    assert auto.statistics_.factored  # the row space
    fixed = ContinualClassifier(alpha=auto.alpha_, **settings).fit(X, y)
    np.testing.assert_array_equal(auto.coef_, fixed.coef_)


@pytest.mark.parametrize("scale", [1e80, 1e-50])
@pytest.mark.parametrize("search", ["warm_start", "alphas"])
def test_far_scales_keep_the_warm_walk_and_given_lambdas_relative_to_their_scale(scale, search):
    """Beyond 2^+-200 on G's diagonal the search runs on G / 4^k: a warm walk and a list of
    lambdas to choose from land where they land at unit scale, and the coefficients are the
    ones a fixed alpha at the choice gives (the head solves with G itself)."""
    from forgetless import ContinualClassifier

    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((300, 6)), np.repeat([0, 1, 2], 100)
    X[:, 0] += y
    order = rng.permutation(300)
    X, y = X[order], y[order]
    settings = dict(projection="gaussian", n_components=400, random_state=0)
    chosen, coefs = [], []
    for s in (1.0, scale):
        extra = {"warm_start": True} if search == "warm_start" else {"alphas": [1e-3, 1, 1e3]}
        kw = extra if search == "warm_start" else {"alphas": [a * s * s for a in extra["alphas"]]}
        clf = ContinualClassifier(**settings, **kw)
        clf.partial_fit(X[:150] * s, y[:150])
        first = clf.alpha_  # a refit now, so that the second one walks from it
        clf.partial_fit(X[150:] * s, y[150:])
        fixed = ContinualClassifier(**settings, alpha=clf.alpha_)
        fixed.partial_fit(X[:150] * s, y[:150]).partial_fit(X[150:] * s, y[150:])
        assert np.array_equal(clf.coef_, fixed.coef_)
        chosen.append((first / s**2, clf.alpha_ / s**2))
        coefs.append(clf.coef_ * s)
    assert chosen[1] == pytest.approx(chosen[0], rel=1e-9)
    if search == "warm_start":  # the second refit walked (a few factorisations), not searched
        assert len(clf.head_.gcv_path_) <= 8
    np.testing.assert_allclose(coefs[1], coefs[0], rtol=1e-6, atol=1e-9 * np.abs(coefs[0]).max())
