"""Few-shot subsets: the library's defaults against NCM, LDA and logistic regression. Not a test.

    python benchmarks/small_data.py                  # -> benchmarks/results/small_data.json
    python benchmarks/small_data.py --datasets digits/raw --shots 5 --seeds 0   # a quick look
    python benchmarks/small_data.py --tables         # print the tables of the JSON and stop
    python benchmarks/small_data.py --validation --shots 5 20 --seeds 0 1   # lambda-rule study
    python benchmarks/small_data.py --caps --shots 5 10 20 50   # leverage cap, today's default
    python benchmarks/small_data.py --decisions --shots 5 10 20 50 0   # decision-rule study
    python benchmarks/small_data.py --criteria --shots 5 10 20 50   # lambda rules vs exact LOO
    python benchmarks/small_data.py --layers --shots 5 10 20 50 0   # layer or none, per K
    python benchmarks/small_data.py --units          # the references against the features' unit

Issue 11's small-data goal: with 5-50 samples per class, ``ContinualClassifier()`` (its
defaults) should reach max(NCM, LDA, LogisticRegression) - 1 point. The datasets and encoder
features are those of ``benchmarks/lambda_selection.py`` (same cached subsets). For each seed,
K samples per class are drawn from the training subset (``stratified`` by class, seed = seed)
and every method is trained on them at once (the analytic learners end at the joint model
whatever the task split, so one fit stands for any class-incremental order); all are scored
on the whole test subset. Nothing is tuned on the test rows: the ridge penalty comes from the
sums (``alpha="auto"``), the references use their libraries' defaults
(``NearestCentroid``; ``LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")``, the
Ledoit-Wolf shrunk covariance; ``LogisticRegression(max_iter=5000)``, C = 1, on standardised
features), and the candidate defaults are fixed settings, not searched per dataset. The file
size is what ``ContinualClassifier.save`` writes.

The studies below fit the orthogonal layer of M = 2000 explicitly (the default when they were
run; ``projection="auto"`` builds none on features wider than 1000 values), so they keep their
meaning. ``--validation`` studies a change of the lambda rule without looking at the test rows:
the default learner is fitted on the K-shot rows and scored on 1,500 other rows of the *training*
subset (stratified), at the lambda its search chooses when only lambdas whose average leverage
(df + 1) / n is at most a cap are scored (cap 1: the rule before any cap; it was run
when the search had none); df comes from the spectrum of
the centred G, the scores from the search's own path (``gcv_path_``).

``--caps`` asks the same question of today's default learner (``projection="auto"``, the
decision ``"auto"`` picks), which already scores no lambda above its cap: the learner is fitted
again under each candidate cap (the search's private constant set for the fit) and scored on the
same validation rows.

``--decisions`` studies the ridge head's decision rule the same way (validation rows of the
training subset only): ``decision="regression"`` against ``"discriminant"`` at the lambda the
search chooses, for K shots per class and for K = 0 (four fifths of the training subset fitted,
the other fifth scored). ``decision="auto"``'s first threshold (15 samples per class on average)
comes from it.

``--criteria`` asks whether another lambda rule would have chosen better, on the same validation
rows: the sums' estimate (today's choice) against exact leave-one-out on the fitted rows
themselves (what a rule that looks at the batch in hand could compute: the leverages h_i and
scores of the centred ridge from one n x n eigendecomposition; the discriminant rule maps the
leave-one-out regression scores through the full fit's C x C transform) and the one-standard-
error rule (the largest lambda at or above the choice whose estimated error is within one
standard error, sqrt(p (1 - p) / n), of the chosen one); ``exact_loo_admissible`` is exact
leave-one-out among the lambdas the sums' criterion scores (average leverage at most the
search's cap, 3/4 when this study ran).
Every lambda of the search's lattice is scored on the validation rows, so the best one (an
oracle) is reported too.

``--layers`` asks whether the random layer (orthogonal, M = 2000, ReLU; the default before
``projection="auto"``, which it led to) earns its place on these features, on the same
validation rows: that layer against the layer-free ridge
(``projection="none"``), each with the decision rule ``"auto"`` picks and with the discriminant,
and NCM and LDA (scikit-learn's, as above) for reference; K = 0 fits four fifths of the training
subset and scores the other fifth. Today's threshold of ``decision="auto"`` (8 samples per class)
comes from its layer-free and discriminant columns at K = 5 and 10, measured when the threshold
was 15 (so the "auto" columns there are the regression below 15 per class).

``--units`` asks whether a comparison depends on the unit the features are given in: the main
table's K-shot samples and test rows, with every feature multiplied by 1, 10 and 100, for the
references and the default learner. A method whose predictions change with the unit reads
something other than the data's shape (scikit-learn's ``shrinkage="auto"`` standardises each
class's features, and a feature that is constant within a class, as a third of the readout's
are on latin-glyphs at K = 5, gets variance 1 there, in whatever unit the features come).

``--redo`` measures the main table's given shots and seeds again (as after a change of the
default learner).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from lambda_selection import DATASETS, load  # noqa: E402

from forgetless import ContinualClassifier, __version__, _lambda_search  # noqa: E402
from forgetless.linalg import IllConditionedWarning  # noqa: E402

OUT = Path(__file__).parent / "results" / "small_data.json"
SHOTS = (5, 10, 20, 50)
# name -> ContinualClassifier settings (random_state = seed is added); "default" is the library's
LEARNERS: dict[str, dict[str, Any]] = {
    "default": {},
    "orthogonal-2000": {"projection": "orthogonal"},  # the default before projection="auto"
    "orthogonal-500": {"projection": "orthogonal", "n_components": 500},
    "guided-500": {"projection": "guided", "n_components": 500},
    "guided-1000": {"projection": "guided", "n_components": 1000},
    "linear": {"projection": "none"},
}
REFERENCES = ("ncm", "lda", "logistic")
LEVERAGE_CAPS = (1.0, 0.75, 0.5)
REFIT_CAPS = (0.75, 0.6, 0.5, 0.4)  # --caps: the first is the cap the others are compared with


def few_shot(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Row indices: k per class (all of a class with fewer), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    rows = [rng.permutation(np.flatnonzero(y == c))[:k] for c in np.unique(y)]
    return np.sort(np.concatenate(rows))


def reference(name: str, X: np.ndarray, y: np.ndarray, Xt: np.ndarray) -> np.ndarray:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import NearestCentroid
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = {
        "ncm": NearestCentroid(),
        "lda": LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"),
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
    }[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y).predict(Xt)


def learner(settings: dict[str, Any], seed: int, X: np.ndarray, y: np.ndarray, Xt: np.ndarray):
    clf = ContinualClassifier(random_state=seed, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        tic = time.perf_counter()
        clf.fit(X, y)
        pred = clf.predict(Xt)
        seconds = time.perf_counter() - tic
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.fl"
        clf.save(path)
        size = path.stat().st_size
    alpha = getattr(clf, "alpha_", None)
    return pred, {"seconds": seconds, "file_bytes": size, "alpha": alpha}


def run(
    name: str,
    shots: list[int],
    seeds: list[int],
    doc: dict[str, Any],
    save,
    learners: tuple[str, ...] = tuple(LEARNERS),
) -> None:
    X, y, Xt, yt, _, _ = load(name)
    entry = doc["datasets"].setdefault(name, {"runs": {}})
    entry.update(n_features=int(X.shape[1]), n_classes=int(np.unique(y).size), n_test=len(yt))
    for k in shots:
        for seed in seeds:
            key = f"{k}/{seed}"
            if key in entry["runs"]:
                continue
            rows = few_shot(y, k, seed)
            out: dict[str, Any] = {"shots": k, "seed": seed, "n_train": int(rows.size)}
            for ref in REFERENCES:
                out[ref] = {"accuracy": float((reference(ref, X[rows], y[rows], Xt) == yt).mean())}
            for method in learners:
                pred, info = learner(LEARNERS[method], seed, X[rows], y[rows], Xt)
                out[method] = {"accuracy": float((pred == yt).mean()), **info}
            entry["runs"][key] = out
            print(name, key, {m: round(v["accuracy"], 4) for m, v in out.items()
                              if isinstance(v, dict)}, flush=True)  # fmt: skip
            save()


def validation_split(y: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fitted rows, scored rows) of the training subset: k per class and 1,500 other rows
    (stratified); k = 0, four fifths and the other fifth. Empty scored rows: nothing is left."""
    from forgetless.data import stratified_sample

    if k == 0:
        held = np.sort(stratified_sample(y, y.size // 5, seed=seed))
        return np.setdiff1d(np.arange(y.size), held), held
    rows = few_shot(y, k, seed)
    rest = np.setdiff1d(np.arange(y.size), rows)
    if rest.size == 0:
        return rows, rest
    return rows, rest[np.sort(stratified_sample(y[rest], min(1500, rest.size), seed=seed))]


def validation_cases(name: str, shots: list[int], seeds: list[int], entry: dict[str, Any]):
    """(key, K, seed, X, y, fitted rows, scored rows) for each K and seed not yet in ``entry``:
    the cases of the studies on validation rows (:func:`validation_split`)."""
    X, y, _, _, _, _ = load(name)
    for k in shots:
        for seed in seeds:
            key = f"{k}/{seed}"
            if key not in entry:
                yield key, k, seed, X, y, *validation_split(y, k, seed)


def leverage_caps(name: str, shots: list[int], seeds: list[int], doc: dict[str, Any], save) -> None:
    """Validation accuracy of the default learner at the lambda chosen under each leverage cap."""
    entry = doc.setdefault("validation", {}).setdefault(name, {})
    for key, _, seed, X, y, rows, held in validation_cases(name, shots, seeds, entry):
        clf = ContinualClassifier(projection="orthogonal", random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IllConditionedWarning)
            clf.fit(X[rows], y[rows])
            stats = clf.statistics_
            n = stats.n_samples
            mean = stats.feature_sum / n
            spectrum = np.linalg.eigvalsh(stats.gram - n * np.outer(mean, mean))
            spectrum = np.maximum(spectrum, 0.0)
            path = [(p.alpha, p.score) for p in clf.head_.gcv_path_ if np.isfinite(p.score)]
            out: dict[str, Any] = {"n": int(n), "chosen": float(clf.alpha_), "caps": {}}
            accuracy: dict[float, float] = {}
            for cap in LEVERAGE_CAPS:
                allowed = [
                    (score, -alpha, alpha)
                    for alpha, score in path
                    if (spectrum / (spectrum + alpha)).sum() + 1 <= cap * n
                ]
                if not allowed:
                    continue
                alpha = min(allowed)[2]
                if alpha not in accuracy:
                    clf.set_params(alpha=float(alpha))
                    accuracy[alpha] = float((clf.predict(X[held]) == y[held]).mean())
                out["caps"][str(cap)] = {"alpha": alpha, "accuracy": accuracy[alpha]}
        entry[key] = out
        print(name, key, json.dumps(out["caps"]), flush=True)
        save()


@contextmanager
def leverage_cap(cap: float) -> Iterator[None]:
    """The lambda search scores only lambdas whose average leverage is at most ``cap``, inside."""
    before = _lambda_search._MAX_LEVERAGE
    _lambda_search._MAX_LEVERAGE = cap
    try:
        yield
    finally:
        _lambda_search._MAX_LEVERAGE = before


def refitted_caps(name: str, shots: list[int], seeds: list[int], doc: dict[str, Any], save) -> None:
    """Validation accuracy of today's default learner fitted under each of :data:`REFIT_CAPS`."""
    entry = doc.setdefault("caps", {}).setdefault(name, {})
    for key, _, seed, X, y, rows, held in validation_cases(name, shots, seeds, entry):
        if held.size == 0:
            continue
        out: dict[str, Any] = {"n": int(rows.size), "caps": {}}
        for cap in REFIT_CAPS:
            with leverage_cap(cap), warnings.catch_warnings():
                warnings.simplefilter("ignore", IllConditionedWarning)
                clf = ContinualClassifier(random_state=seed).fit(X[rows], y[rows])
                accuracy = float((clf.predict(X[held]) == y[held]).mean())
            out["caps"][str(cap)] = {"alpha": float(clf.alpha_), "accuracy": accuracy}
        entry[key] = out
        print(name, key, json.dumps(out["caps"]), flush=True)
        save()


def decisions(name: str, shots: list[int], seeds: list[int], doc: dict[str, Any], save) -> None:
    """Validation accuracy of the ridge head's two decision rules at the lambda it chooses, on
    the rows of :func:`validation_split`."""
    entry = doc.setdefault("decisions", {}).setdefault(name, {})
    for key, _, seed, X, y, rows, held in validation_cases(name, shots, seeds, entry):
        if held.size == 0:  # latin-glyphs' subset has 50 per class: none left at K = 50
            continue
        out: dict[str, Any] = {"n": int(rows.size), "classes": int(np.unique(y[rows]).size)}
        for rule in ("regression", "discriminant"):
            clf = ContinualClassifier(projection="orthogonal", random_state=seed, decision=rule)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", IllConditionedWarning)
                clf.fit(X[rows], y[rows])
                out[rule] = float((clf.predict(X[held]) == y[held]).mean())
            out["alpha"] = float(clf.alpha_)
        entry[key] = out
        print(name, key, json.dumps(out), flush=True)
        save()


LAYER_VARIANTS: dict[str, dict[str, Any]] = {
    "orthogonal-2000": {"projection": "orthogonal"},
    "orthogonal-2000-discriminant": {"projection": "orthogonal", "decision": "discriminant"},
    "linear": {"projection": "none"},
    "linear-discriminant": {"projection": "none", "decision": "discriminant"},
}


def layers(name: str, shots: list[int], seeds: list[int], doc: dict[str, Any], save) -> None:
    """Validation accuracy of the default layer against none (see ``--layers`` above)."""
    entry = doc.setdefault("layers", {}).setdefault(name, {})
    for key, _, seed, X, y, rows, held in validation_cases(name, shots, seeds, entry):
        if held.size == 0:
            continue
        out: dict[str, Any] = {"n": int(rows.size), "classes": int(np.unique(y[rows]).size)}
        for ref in ("ncm", "lda"):
            out[ref] = float((reference(ref, X[rows], y[rows], X[held]) == y[held]).mean())
        for variant, settings in LAYER_VARIANTS.items():
            pred, _ = learner(settings, seed, X[rows], y[rows], X[held])
            out[variant] = float((pred == y[held]).mean())
        entry[key] = out
        print(name, key, json.dumps(out), flush=True)
        save()


UNITS = (1.0, 10.0, 100.0)


def units(name: str, shots: list[int], seeds: list[int], doc: dict[str, Any], save) -> None:
    """Test accuracy of the references and the default learner on the main table's samples,
    the features multiplied by each of :data:`UNITS` (see ``--units`` above)."""
    X, y, Xt, yt, _, _ = load(name)
    entry = doc.setdefault("units", {}).setdefault(name, {})
    for k in shots:
        for seed in seeds:
            key = f"{k}/{seed}"
            if key in entry:
                continue
            rows = few_shot(y, k, seed)
            spread = [X[rows][y[rows] == c].std(axis=0) for c in np.unique(y[rows])]
            out: dict[str, Any] = {
                "n": int(rows.size),
                # features with no spread within a class, averaged over the classes
                "constant_within_class": float(np.mean([np.mean(s == 0) for s in spread])),
            }
            for unit in UNITS:
                Xs, Xts = X[rows] * unit, Xt * unit
                cell = {ref: float((reference(ref, Xs, y[rows], Xts) == yt).mean())
                        for ref in REFERENCES}  # fmt: skip
                pred, _ = learner({}, seed, Xs, y[rows], Xts)
                cell["default"] = float((pred == yt).mean())
                out[str(unit)] = cell
            entry[key] = out
            print(name, key, json.dumps(out), flush=True)
            save()


def units_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """Per dataset and K: mean test accuracy (%) of each method at each unit."""

    def cell(rs: list[dict[str, Any]]) -> dict[str, Any]:
        constant = round(float(np.mean([r["constant_within_class"] for r in rs])), 3)
        return {"seeds": len(rs), "constant_within_class": constant} | {
            f"{m} x{unit:g}": round(100 * float(np.mean([r[str(unit)][m] for r in rs])), 2)
            for unit in UNITS
            for m in (*REFERENCES, "default")
        }

    return per_shots(doc, "units", cell)


def by_shots(entry: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A study's runs (keyed ``<K>/<seed>``) grouped by K, in increasing K."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for key, run_ in entry.items():
        groups.setdefault(key.split("/")[0], []).append(run_)
    return dict(sorted(groups.items(), key=lambda kv: int(kv[0])))


def per_shots(doc: dict[str, Any], study: str, cell) -> dict[str, Any]:
    """``{dataset: {K: cell(runs at K)}}`` for the runs of ``doc[study]``."""
    return {
        name: {k: cell(rs) for k, rs in by_shots(entry).items()}
        for name, entry in doc.get(study, {}).items()
    }


def layers_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """Per dataset and K: mean validation accuracy (%) of each variant and reference."""

    def cell(rs: list[dict[str, Any]]) -> dict[str, Any]:
        means = {
            m: round(100 * float(np.mean([r[m] for r in rs])), 2)
            for m in ("ncm", "lda", *LAYER_VARIANTS)
        }
        return {"seeds": len(rs), **means}

    return per_shots(doc, "layers", cell)


def exact_loo_errors(
    H: np.ndarray, y: np.ndarray, alphas: list[float], discriminant: bool
) -> dict[float, float]:
    """Exact leave-one-out error of the centred ridge (with intercept) on its own rows, per
    lambda: f_-i = (f_i - h_i y_i) / (1 - h_i) from the n x n kernel's eigendecomposition; with
    ``discriminant``, the leave-one-out scores are mapped through the full fit's transform."""
    from forgetless.heads import discriminant_transform

    classes, index = np.unique(y, return_inverse=True)
    n = index.size
    Y = np.eye(classes.size)[index]
    counts = Y.sum(axis=0)
    prior = counts / n
    centred = H - H.mean(axis=0)
    values, vectors = np.linalg.eigh(centred @ centred.T)
    values = np.maximum(values, 0.0)
    rotated = vectors.T @ Y
    errors: dict[float, float] = {}
    for alpha in alphas:
        shrink = values / (values + alpha)
        leverage = (vectors**2) @ shrink + 1.0 / n
        fitted = vectors @ (shrink[:, None] * rotated) + prior
        left_out = (fitted - leverage[:, None] * Y) / (1.0 - leverage)[:, None]
        if discriminant:
            found = discriminant_transform(rotated.T @ (shrink[:, None] * rotated), counts)
            if found is None:
                errors[alpha] = 1.0
                continue
            transform, offsets = found
            left_out = (left_out - prior) @ transform + offsets
        errors[alpha] = float((left_out.argmax(axis=1) != index).mean())
    return errors


def criteria(name: str, shots: list[int], seeds: list[int], doc: dict[str, Any], save) -> None:
    """Validation accuracy at the lambda each rule chooses (see ``--criteria`` above)."""
    entry = doc.setdefault("criteria", {}).setdefault(name, {})
    for key, k, seed, X, y, rows, held in validation_cases(name, shots, seeds, entry):
        if held.size == 0 or k == 0:  # k = 0: an n x n eigendecomposition of whole subsets
            continue
        clf = ContinualClassifier(projection="orthogonal", random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IllConditionedWarning)
            clf.fit(X[rows], y[rows])
            chosen, decision = float(clf.alpha_), clf.head_.decision_
            path = [(float(p.alpha), float(p.score)) for p in clf.head_.gcv_path_]
            alphas = [a for a, _ in path]
            accuracy = {}
            for alpha in alphas:
                clf.set_params(alpha=alpha)
                accuracy[alpha] = float((clf.predict(X[held]) == y[held]).mean())
        H = clf.projection_.transform(X[rows])
        loo = exact_loo_errors(H, y[rows], alphas, decision == "discriminant")
        lowest = min(loo.values())
        exact_choice = max(a for a in alphas if loo[a] <= lowest)
        # The same, among the lambdas the sums' criterion scores (finite: average leverage
        # at most the search's cap, enough residual degrees of freedom).
        admissible = [a for a, score in path if math.isfinite(score)] or alphas
        lowest_admissible = min(loo[a] for a in admissible)
        capped_choice = max(a for a in admissible if loo[a] <= lowest_admissible)
        n = rows.size
        at = int(np.argmin([abs(math.log(a / chosen)) for a in alphas]))
        p = math.exp(path[at][1])
        limit = p + math.sqrt(p * (1.0 - p) / n)
        one_se = chosen
        for alpha, score in path[at + 1 :]:
            if not (math.isfinite(score) and math.exp(score) <= limit):
                break
            one_se = alpha
        out = {
            "n": int(n), "classes": int(np.unique(y[rows]).size), "decision": decision,
            "accuracy": {
                "sums": accuracy[chosen],
                "exact_loo": accuracy[exact_choice],
                "exact_loo_admissible": accuracy[capped_choice],
                "one_se": accuracy[one_se],
                "oracle": max(accuracy.values()),
            },
            "alpha": {
                "sums": chosen, "exact_loo": exact_choice,
                "exact_loo_admissible": capped_choice, "one_se": one_se,
            },
            "path": [
                {"alpha": a, "log_error_estimate": score, "exact_loo_error": loo[a],
                 "validation_accuracy": accuracy[a]}
                for a, score in path
            ],
        }  # fmt: skip
        entry[key] = out
        print(name, key, decision, json.dumps(out["accuracy"]), flush=True)
        save()


def criteria_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """Per rule and decision: mean and worst change (points) of validation accuracy against the
    sums' choice."""
    out: dict[str, Any] = {}
    runs = [r for entry in doc.get("criteria", {}).values() for r in entry.values()]
    for group in ("regression", "discriminant", "all"):
        chosen = [r for r in runs if group in ("all", r["decision"])]
        if not chosen:
            continue
        out[group] = {"runs": len(chosen)}
        for rule in ("exact_loo", "exact_loo_admissible", "one_se", "oracle"):
            gains = [100 * (r["accuracy"][rule] - r["accuracy"]["sums"]) for r in chosen]
            out[group][rule] = {
                "mean_points": round(float(np.mean(gains)), 2),
                "worst_points": round(min(gains), 2),
                "best_points": round(max(gains), 2),
            }
    return out


def decisions_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """Per dataset and K: mean validation accuracy of each rule and the discriminant's gain."""

    def cell(rs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "samples_per_class": round(float(np.mean([r["n"] / r["classes"] for r in rs])), 1),
            "regression": round(100 * float(np.mean([r["regression"] for r in rs])), 2),
            "discriminant": round(100 * float(np.mean([r["discriminant"] for r in rs])), 2),
            "gain_points": round(
                100 * float(np.mean([r["discriminant"] - r["regression"] for r in rs])), 2
            ),
            "seeds": len(rs),
        }

    return per_shots(doc, "decisions", cell)


def validation_summary(
    doc: dict[str, Any], study: str = "validation", base_cap: str = "1.0"
) -> dict[str, Any]:
    """Per dataset: the mean and worst change (points) of each cap against ``base_cap``."""
    out: dict[str, Any] = {}
    for name, entry in doc.get(study, {}).items():
        gains: dict[str, list[float]] = {}
        for r in entry.values():
            base = r["caps"][base_cap]["accuracy"]
            for cap, v in r["caps"].items():
                gains.setdefault(cap, []).append(100 * (v["accuracy"] - base))
        out[name] = gains
    pooled: dict[str, list[float]] = {}
    for gains in out.values():
        for cap, g in gains.items():
            pooled.setdefault(cap, []).extend(g)
    if pooled:
        out["all"] = pooled
    return {
        name: {
            cap: {
                "mean_points": round(float(np.mean(g)), 2),
                "worst_points": round(min(g), 2),
                "cases": len(g),
            }
            for cap, g in gains.items()
        }
        for name, gains in out.items()
    }


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """Per dataset and K: mean accuracy over seeds, and the default's gap to the best reference."""
    out: dict[str, Any] = {}
    for name, entry in doc["datasets"].items():
        by_k: dict[int, list[dict[str, Any]]] = {}
        for r in entry["runs"].values():
            by_k.setdefault(r["shots"], []).append(r)
        rows = {}
        for k, runs in sorted(by_k.items()):
            methods = [m for m in (*REFERENCES, *LEARNERS) if all(m in r for r in runs)]
            mean = {m: 100 * float(np.mean([r[m]["accuracy"] for r in runs])) for m in methods}
            best_ref = max(mean[m] for m in REFERENCES)
            rows[str(k)] = {
                "seeds": sorted(r["seed"] for r in runs),
                "accuracy": {m: round(v, 2) for m, v in mean.items()},
                "best_reference": round(best_ref, 2),
                "gap": {m: round(mean[m] - best_ref, 2) for m in LEARNERS if m in mean},
                "file_mb": {
                    m: round(float(np.mean([r[m]["file_bytes"] for r in runs])) / 1e6, 2)
                    for m in LEARNERS
                    if m in mean
                },
            }
        out[name] = rows
    return out


def tables(doc: dict[str, Any]) -> str:
    lines = []
    for name, rows in doc.get("summary", {}).items():
        lines.append(f"\n{name}\n")
        methods = [*REFERENCES, *LEARNERS]
        lines.append("| K | " + " | ".join(methods) + " |")
        lines.append("|---" * (len(methods) + 1) + "|")
        for k, row in sorted(rows.items(), key=lambda kv: int(kv[0])):
            acc = row["accuracy"]
            cells = " | ".join(f"{acc.get(m, float('nan')):.1f}" for m in methods)
            lines.append(f"| {k} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--shots", nargs="+", type=int, default=list(SHOTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--tables", action="store_true")
    parser.add_argument("--validation", action="store_true", help="the leverage-cap study")
    parser.add_argument("--caps", action="store_true", help="the leverage-cap study, refitted")
    parser.add_argument("--decisions", action="store_true", help="the decision-rule study")
    parser.add_argument("--criteria", action="store_true", help="the lambda-rule study")
    parser.add_argument("--layers", action="store_true", help="the layer-or-none study")
    parser.add_argument("--units", action="store_true", help="the features' unit, test rows")
    parser.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=list(LEARNERS))
    parser.add_argument(
        "--redo", action="store_true", help="measure the given shots and seeds again (main table)"
    )
    args = parser.parse_args()
    path = Path(args.out)
    doc = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
    if args.tables:
        print(tables(doc))
        return
    doc.update(
        library_version=__version__,
        machine=platform.platform(),
        method=__doc__.split("\n\n", 2)[2].strip(),
    )

    def save() -> None:
        doc["summary"] = summary(doc)
        doc["validation_summary"] = validation_summary(doc)
        doc["caps_summary"] = validation_summary(doc, "caps", str(REFIT_CAPS[0]))
        doc["decisions_summary"] = decisions_summary(doc)
        doc["criteria_summary"] = criteria_summary(doc)
        doc["layers_summary"] = layers_summary(doc)
        doc["units_summary"] = units_summary(doc)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")  # compact
        tmp.replace(path)

    for name in args.datasets:
        if args.units:
            units(name, args.shots, args.seeds, doc, save)
        elif args.layers:
            layers(name, args.shots, args.seeds, doc, save)
        elif args.criteria:
            criteria(name, args.shots, args.seeds, doc, save)
        elif args.decisions:
            decisions(name, args.shots, args.seeds, doc, save)
        elif args.caps:
            refitted_caps(name, args.shots, args.seeds, doc, save)
        elif args.validation:
            leverage_caps(name, args.shots, args.seeds, doc, save)
        else:
            if args.redo:  # the main table's runs of these shots and seeds, measured afresh
                runs = doc["datasets"].get(name, {}).get("runs", {})
                for k in args.shots:
                    for seed in args.seeds:
                        runs.pop(f"{k}/{seed}", None)
            run(name, args.shots, args.seeds, doc, save, tuple(args.learners))


if __name__ == "__main__":
    main()
