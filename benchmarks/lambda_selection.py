"""Choosing lambda: final accuracy and time of whole class-incremental runs, per criterion.

    python benchmarks/lambda_selection.py            # 6 datasets x 3 seeds x M = 2000, 4000
    python benchmarks/lambda_selection.py --quick    # digits, one seed, M = 600: a minute
    python benchmarks/lambda_selection.py --only refit --refit-sizes 2000 4000 10000
    python benchmarks/lambda_selection.py --projection auto --sizes 2000 --only final runs

Writes ``benchmarks/results/lambda_selection.json`` (resumable: entries already there are kept
and not run again; ``--redo`` runs the selected ones again, ``--fresh`` starts a new file).
Timings depend on the machine and its load; every ratio is measured within one process, the
methods of one dataset and seed run back to back.

On each dataset (stratified subsets as ``benchmarks/scenarios.py`` takes them, features from the
on-disk cache), each seed (class order and layer) and each width M, on the features each method
reads in ``forgetless run`` (``forgetless.experiment.method_features``: forgetless's centred on
the first step's mean and scaled, RanPAC's as the encoder gives them) and the same 6-step
class-incremental order:

- ``default``: ``ContinualClassifier(projection="orthogonal", n_components=M)``: lambda by
  the leave-one-out error estimate (``loo``), scored by Krylov quadrature, one factorisation
  per refit.
- ``gcv``: the previous default, GCV scored by one eigendecomposition per refit (the slowest;
  ``--without-gcv`` leaves it out).
- ``ranpac``: RanPAC's own procedure (:class:`forgetless.evaluation.peers.RanPAC`).
- ``final`` (``--only final``, cheap): each criterion's final accuracy from the final sums, a
  run's last lambda being chosen from them, against every lattice lambda's.
- ``fixed``: every lambda of the lattice, for reference only (an oracle: it looks at the test
  split). A fixed lambda's model after the run equals a fresh fit on all the data, so one
  eigendecomposition of the final sums gives every lattice lambda's final accuracy.
- ``validation``: the same criteria against every fixed lambda on a validation split (a fifth
  of the training rows, the rest trained on): what the criterion was chosen on.

Each method's time is the whole run: six ``partial_fit`` calls and the refit the first
prediction after each triggers (``predict`` of one row), as ``forgetless run`` counts it.
``refit`` measures one refit of the default (and of the previous default) against one Cholesky
factorisation of the same G, in factorisation-equivalents, at several M; ``profile`` is
cProfile of one whole default run at M = 4000; ``blas`` (``--only blas``) times a triangular
solve alone, after a numpy product and after one under ``numpy_blas_quiet``, and the centred G's
two constructions (why the head fits as it does). ``selection-bias`` (``--only selection-bias``)
asks how optimistic the best fixed lambda on the test split is as a yardstick: a lambda chosen
on half of the test rows and scored on the other half, against the default there
(:func:`selection_bias`). ``choices`` (``--only choices``) logs every refit of whole runs that
the rational quadrature searches: its factorisations, and its choice against the exact
spectrum's (:func:`search_choices`; ``--choices-key`` names the entry, so another release's
library, on ``PYTHONPATH``, can be measured by the same command). ``rules`` (``--only rules``)
scores other lambda rules against the default's on validation rows of the training data, where
a rule may be chosen (:func:`rules`; ``--datasets`` also takes the ``EXTERNAL`` encoder's cases).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import io
import json
import os
import platform
import pstats
import time
from pathlib import Path

import numpy as np
from scipy import linalg
from scipy.special import log_ndtr, logsumexp

import forgetless.heads as heads_module
from forgetless import ContinualClassifier, __version__
from forgetless._lambda_search import _loo_from_moments, moments_from_nodes, select_alpha
from forgetless.evaluation.peers import RanPAC
from forgetless.experiment import method_features
from forgetless.heads import discriminant_transform
from forgetless.linalg import numpy_blas_quiet
from forgetless.scenarios import class_incremental

RESULTS = Path(__file__).parent / "results"
OUT = RESULTS / "lambda_selection.json"

# name -> (dataset, encoder, encoder options, train rows, test rows, first step's classes,
# classes per later step): six steps each.
DATASETS = {
    "fashion-mnist/efficientnet-lite0": (
        "fashion-mnist", "efficientnet-lite0", {"image_size": 112}, 3000, 1000, 5, 1
    ),
    "latin-glyphs/efficientnet-lite0": (
        "latin-glyphs", "efficientnet-lite0", {"image_size": 112}, 3100, 1240, 12, 10
    ),
    "openclipart/efficientnet-lite0": (
        "openclipart", "efficientnet-lite0", {"image_size": 112}, 3000, 1000, 8, 6
    ),
    "wordnet/minilm": ("wordnet", "minilm", {}, 12000, 3000, 10, 7),
    "digits/raw": ("digits", "raw", {}, None, None, 5, 1),
    "fashion-mnist/raw": ("fashion-mnist", "raw", {}, 12000, 2000, 5, 1),
    # data no setting was tuned on: every training row (11,740; at least 82 per class)
    "fortunes/minilm": ("fortunes", "minilm", {}, None, 2000, 7, 5),
}  # fmt: skip
# Encoders no setting was tuned on (``--only rules`` with ``--datasets``; not in the default list):
# the ONNX ResNet-50-thin's 2,048 values, the subsets and step sizes of the datasets above.
EXTERNAL = {
    "fashion-mnist/opennsfw-resnet50": ("fashion-mnist", "opennsfw-resnet50", {}, 3000, 1000, 5, 1),
    "fashion-mnist-8000/opennsfw-resnet50": (
        "fashion-mnist", "opennsfw-resnet50", {}, 8000, 2000, 5, 1
    ),
    "openclipart/opennsfw-resnet50": ("openclipart", "opennsfw-resnet50", {}, 3000, 1000, 8, 6),
}  # fmt: skip


PROJECTION = {"projection": "orthogonal"}  # --projection auto: today's default layer rule


def learner_at(m: int, seed: int) -> ContinualClassifier:
    """The default learner with the random layer these runs study, M units wide (explicit:
    ``projection="auto"`` builds no layer where M is less than twice the features' width;
    ``--projection auto`` runs that rule instead)."""
    return ContinualClassifier(**PROJECTION, n_components=m, random_state=seed)


def load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Features (train, test) through the cache, and the scenario's step sizes."""
    from forgetless.cache import FeatureCache, dataset_features
    from forgetless.data import load_dataset, stratified_sample
    from forgetless.encoders import load_encoder

    dataset, encoder, options, n_train, n_test, initial, increment = {**DATASETS, **EXTERNAL}[name]
    ds = load_dataset(dataset)
    for split, size in (("train", n_train), ("test", n_test)):
        whole = getattr(ds, split)
        if size and size < len(whole):
            rows = stratified_sample(whole.labels, size, seed=0)
            ds = dataclasses.replace(ds, **{split: whole.subset(rows)})
    X, Xt = dataset_features(load_encoder(encoder, **options), ds, FeatureCache(), progress=False)
    return (
        np.asarray(X, dtype=np.float64),
        np.asarray(ds.train.labels),
        np.asarray(Xt, dtype=np.float64),
        np.asarray(ds.test.labels),
        initial,
        increment,
    )


def normalised(X: np.ndarray, Xt: np.ndarray, first: np.ndarray) -> tuple:
    """Centred on the first step's mean, one scalar scale (as ``forgetless run`` hands them to
    its own methods; RanPAC reads the features as they come, as in ``forgetless run``)."""
    return method_features("forgetless", X, Xt, first)


@contextlib.contextmanager
def previous_default(**settings):
    """The lambda search before this benchmark's change: GCV, one eigendecomposition (or the
    ``select_alpha`` settings given: ``method="krylov"`` is the plain Krylov quadrature the
    default used before the rational one)."""
    original = heads_module.select_alpha
    settings = settings or {"criterion": "gcv", "method": "spectral"}

    def gcv(*args, **kwargs):
        kwargs.update(settings)
        return original(*args, **kwargs)

    heads_module.select_alpha = gcv
    try:
        yield
    finally:
        heads_module.select_alpha = original


@contextlib.contextmanager
def without_row_space():
    """The ridge head as before the row space: G formed and searched at M × M even while the
    statistics keep it as an n × M factor."""
    original = heads_module._row_space
    heads_module._row_space = lambda *args: None
    try:
        yield
    finally:
        heads_module._row_space = original


def whole_run(model, X, y, Xt, yt, scenario) -> dict:
    """Time the six steps (partial_fit, then the refit a prediction triggers); accuracy on all
    classes seen after each step (not timed)."""
    seconds, seen_acc, alphas = [], [], []
    for i, step in enumerate(scenario.steps):
        start = time.perf_counter()
        model.partial_fit(X[step.train], y[step.train])
        model.predict(Xt[:1])
        seconds.append(time.perf_counter() - start)
        alphas.append(float(model.alpha_) if model.alpha_ is not None else None)
        seen = scenario.seen_test(i)
        seen_acc.append(float((model.predict(Xt[seen]) == yt[seen]).mean()))
    return {
        "final_accuracy": seen_acc[-1],
        "accuracy_seen": seen_acc,
        "alpha_per_step": alphas,
        "step_seconds": seconds,
        "total_seconds": float(sum(seconds)),
    }


def lattice_correct(clf: ContinualClassifier, Xt: np.ndarray, yt: np.ndarray) -> dict:
    """For every lattice lambda (the ones the search scored) and the final sums of ``clf``,
    which test rows each decision rule gets right (lattice x rows, booleans), from one
    eigendecomposition: ``regression`` scores by the regression, ``discriminant`` by the
    discriminant from the same solve (a row of None where it is undefined). A fixed lambda's
    model is the fresh fit on these sums."""
    stats = clf.statistics_
    n = stats.n_samples
    mean = stats.feature_sum / n
    prior = stats.counts / n
    gram = stats.gram - n * np.outer(mean, mean)
    sums = stats.class_sums - n * np.outer(mean, prior)
    s, V = linalg.eigh(gram, driver="evd", check_finite=False)
    B = V.T @ sums
    HtV = (clf.projection_.transform(Xt) - mean) @ V
    truth = np.searchsorted(clf.classes_, yt)
    lattice = sorted(p.alpha for p in clf.head_.gcv_path_)
    regression, discriminant = [], []
    for a in lattice:
        coefs = B / (s + a)[:, None]
        scores = HtV @ coefs
        regression.append((scores + prior).argmax(1) == truth)
        found = discriminant_transform(B.T @ coefs, stats.counts)
        discriminant.append(
            None if found is None else (scores @ found[0] + found[1]).argmax(1) == truth
        )
    return {"alphas": lattice, "regression": regression, "discriminant": discriminant}


def lattice_accuracy(clf: ContinualClassifier, Xt: np.ndarray, yt: np.ndarray) -> dict:
    """Every lattice lambda's accuracy on (Xt, yt) for the final sums of ``clf``
    (:func:`lattice_correct`): ``accuracy`` scoring by the regression, ``accuracy_discriminant``
    by the discriminant (None where it is undefined)."""
    rows = lattice_correct(clf, Xt, yt)
    return {
        "alphas": rows["alphas"],
        "accuracy": [float(ok.mean()) for ok in rows["regression"]],
        "accuracy_discriminant": [
            None if ok is None else float(ok.mean()) for ok in rows["discriminant"]
        ],
    }


def selection_bias(name: str, m: int, seed: int, splits: int = 200) -> dict:
    """How optimistic "the best fixed lambda on the test split" is as a yardstick: the test
    rows are split in random halves ``splits`` times; on each, the best lattice lambda of one
    half (the default's decision rule) is scored on the other half, against the best lambda of
    that half itself (an oracle, as the goal measures it on the whole split) and the default.
    The default is the fit on all the training rows at once, which is the run's final model
    (its lambda comes from the sums alone)."""
    X, y, Xt, yt, initial, increment = load(name)
    scenario = class_incremental(y, yt, initial=initial, increment=increment, seed=seed)
    X, Xt = normalised(X, Xt, scenario.steps[0].train)
    default = learner_at(m, seed).fit(X, y)
    default_ok = default.predict(Xt) == yt
    rows = lattice_correct(default, Xt, yt)
    rule = default.head_.decision_
    usable = [ok for ok in rows[rule] if ok is not None]
    correct = np.array(usable, dtype=float)  # lattice x test rows
    rng = np.random.default_rng(seed)
    oracle, held_out = [], []
    for _ in range(splits):
        order = rng.permutation(yt.size)
        chosen_on, scored_on = order[: yt.size // 2], order[yt.size // 2 :]
        best = int(np.argmax(correct[:, chosen_on].mean(axis=1)))
        base = float(default_ok[scored_on].mean())
        held_out.append(float(correct[best, scored_on].mean()) - base)
        oracle.append(float(correct[:, scored_on].mean(axis=1).max()) - base)
    return {
        "dataset": name, "M": m, "seed": seed, "decision": rule, "splits": splits,
        "default_accuracy": float(default_ok.mean()),
        "best_fixed_accuracy": float(correct.mean(axis=1).max()),
        "oracle_minus_default": float(np.mean(oracle)),
        "held_out_choice_minus_default": float(np.mean(held_out)),
    }  # fmt: skip


def validation_fit(name: str, m: int, seed: int) -> tuple:
    """(learner, fitted rows, their labels, held-out rows, their labels): a fifth of each class
    of the training rows held out, the default learner fitted on the rest (one fit: a run's
    final model), the features normalised on the first step's fitted rows."""
    X, y, _, _, initial, increment = load(name)
    rng = np.random.default_rng(1000 + seed)
    held = np.zeros(y.size, dtype=bool)
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        held[rng.permutation(rows)[: max(1, rows.size // 5)]] = True
    scenario = class_incremental(y[~held], y[held], initial=initial, increment=increment, seed=seed)
    Xf, Xv = normalised(X[~held], X[held], scenario.steps[0].train)
    return learner_at(m, seed).fit(Xf, y[~held]), Xf, y[~held], Xv, y[held]


def validation(name: str, m: int, seed: int) -> dict:
    """Criteria on a validation split: train on four fifths of the training rows (one fit: a
    run's final model), score the rest for every lattice lambda and each criterion's choice."""
    clf, _, _, Xv, yv = validation_fit(name, m, seed)
    curve = lattice_accuracy(clf, Xv, yv)
    stats = clf.statistics_
    n = stats.n_samples
    mean, prior = stats.feature_sum / n, stats.counts / n
    gram = stats.gram - n * np.outer(mean, mean)
    sums = stats.class_sums - n * np.outer(mean, prior)
    chosen = {}
    for criterion in ("loo", "gcv"):
        best, _ = select_alpha(
            gram, sums, n, target_energy=n * (1.0 - float(prior @ prior)), extra_df=1.0,
            counts=stats.counts, criterion=criterion, method="spectral",
        )  # fmt: skip
        chosen[criterion] = best.alpha
    index = {round(np.log10(a) * 4): i for i, a in enumerate(curve["alphas"])}
    return {
        **curve,
        "chosen": chosen,
        "chosen_accuracy": {
            k: curve["accuracy"][index[round(np.log10(a) * 4)]] for k, a in chosen.items()
        },
    }


def discriminant_loo(
    cross: np.ndarray, cross2: np.ndarray, df: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """A candidate criterion: the sums' leave-one-out estimate (today's ``loo``, the same
    Gaussian model of the scores and average leverage) of the *discriminant's* error instead of
    the regression's: the leave-one-out regression scores (F - h (e_k - prior)) / (1 - h) of
    class k mapped through the fit's C x C transform T(lambda), their mean and within-class
    covariance T^T S T taken to the nearest rival's margin. log error per lambda, inf where the
    default's criterion scores nothing (its leverage cap and degrees of freedom)."""
    n, c = float(counts.sum()), counts.size
    prior = counts / n
    out = np.full(df.size, np.inf)
    for i in range(df.size):
        K = 0.5 * (cross[i] + cross[i].T)
        found = discriminant_transform(K, counts)
        h = (df[i] + 1.0) / n
        if found is None or h > 0.6 or n - df[i] - 1.0 < max(c, 10):
            continue
        T, b = found
        means = K / counts[None, :]  # [j, k]: column j's mean score on class k
        within = cross2[i] - means @ K
        spread = 0.5 * (within + within.T) / (n - c)
        shifted = means.T - h * (np.eye(c) - prior[None, :])  # [k, j], times (1 - h)
        scores = shifted @ T + (1.0 - h) * b[None, :]  # class k's mean discriminant scores
        cov = T.T @ spread @ T
        diag = np.diag(cov)
        variance = np.maximum(diag[:, None] + diag[None, :] - 2.0 * cov, 1e-300)
        z = (np.diag(scores)[:, None] - scores) / np.sqrt(variance)
        z[np.eye(c, dtype=bool)] = np.inf
        log_p = log_ndtr(-z.min(axis=1))
        out[i] = max(float(logsumexp(log_p + np.log(prior))), np.log(0.5 / n))
    return out


def rules(name: str, m: int, seed: int) -> dict:
    """Lambda rules on the validation split of :func:`validation_fit`, each scored on the
    held-out rows by the decision the default uses: the default's choice (the sums' estimate);
    exact leave-one-out on the fitted rows (the hat matrix's diagonal; for the discriminant, the
    leave-one-out regression scores mapped through the fit's C x C transform), which a rule
    needs the rows for; the one-standard-error rule on the sums' estimate (the smallest lattice
    lambda at or below the choice whose estimate is within sqrt(p (1 - p) / n) of the lowest,
    p); the estimate shaped for the discriminant (:func:`discriminant_loo`); and the best
    lattice lambda on the held-out rows (an oracle no procedure may use). Also the error each
    estimates at the default's choice, against the held-out error there."""
    clf, Xf, yf, Xv, yv = validation_fit(name, m, seed)
    decision = clf.head_.decision_
    correct = lattice_correct(clf, Xv, yv)
    lattice = np.asarray(correct["alphas"])
    accuracy = np.array([np.nan if ok is None else ok.mean() for ok in correct[decision]])
    stats = clf.statistics_
    n, counts = stats.n_samples, stats.counts.astype(np.float64)
    mean, prior = stats.feature_sum / n, counts / n
    gram = stats.gram - n * np.outer(mean, mean)
    sums = stats.class_sums - n * np.outer(mean, prior)
    s, V = linalg.eigh(gram, driver="evd", check_finite=False)
    s = np.maximum(s, 0.0)
    B = V.T @ sums
    cross, cross2, df = moments_from_nodes(s, B, lattice)
    estimate = np.exp(_loo_from_moments(cross, cross2, df, counts, 1.0))
    shaped = np.exp(discriminant_loo(cross, cross2, df, counts))
    rotated = (clf.projection_.transform(Xf) - mean) @ V
    truth = np.searchsorted(clf.classes_, yf)
    targets = np.eye(clf.classes_.size)[truth]
    exact = []
    for a, K in zip(lattice, cross, strict=True):
        leverage = (rotated**2) @ (1.0 / (s + a)) + 1.0 / n
        fitted = rotated @ (B / (s + a)[:, None]) + prior
        scores = (fitted - leverage[:, None] * targets) / (1.0 - leverage[:, None])
        if decision == "discriminant":
            found = discriminant_transform(K, counts)
            if found is None:
                exact.append(np.inf)
                continue
            scores = (scores - prior) @ found[0] + found[1]
        exact.append(float((scores.argmax(1) != truth).mean()))
    exact = np.asarray(exact)
    at = int(np.argmin(np.abs(np.log(lattice / clf.alpha_))))
    lowest = float(np.min(estimate[np.isfinite(estimate)]))
    within = lowest + np.sqrt(lowest * (1.0 - lowest) / n)
    one_se = [i for i in range(at + 1) if estimate[i] <= within]

    def lowest_at(values: np.ndarray) -> int:  # ties: the largest lambda
        return int(np.flatnonzero(values == np.min(values))[-1])

    chosen = {
        "default": at,
        "exact_loo": lowest_at(exact),
        "one_se": one_se[0] if one_se else at,
        "discriminant_estimate": lowest_at(shaped),
        "oracle": lowest_at(-np.nan_to_num(accuracy, nan=-1.0)),
    }
    return {
        "dataset": name, "M": m, "seed": seed, "decision": decision, "n": int(n),
        "classes": int(counts.size), "held_out": int(yv.size), "units": int(s.size),
        "alphas": lattice.tolist(), "accuracy": accuracy.tolist(),
        "estimate": estimate.tolist(), "exact_loo": exact.tolist(),
        "discriminant_estimate": shaped.tolist(),
        "chosen": {k: float(lattice[i]) for k, i in chosen.items()},
        "chosen_accuracy": {k: float(accuracy[i]) for k, i in chosen.items()},
        "error_at_default": {
            "estimate": float(estimate[at]), "exact_loo": float(exact[at]),
            "held_out": float(1.0 - accuracy[at]),
        },
    }  # fmt: skip


def summarise_rules(entries: list[dict]) -> dict:
    """Per dataset and width (mean over its seeds; keyed "<dataset>" at M = 2000, else
    "<dataset> M=<M>") and over all: each rule's held-out accuracy minus the default's, in
    points, and the errors at the default's choice (%)."""
    per = {}
    for name, m in dict.fromkeys((e["dataset"], e["M"]) for e in entries):
        es = [e for e in entries if e["dataset"] == name and e["M"] == m]
        per[name if m == 2000 else f"{name} M={m}"] = {
            "seeds": [e["seed"] for e in es],
            "default_accuracy": 100 * float(np.mean([e["chosen_accuracy"]["default"] for e in es])),
            **{
                f"{rule}_minus_default": round(100 * float(np.mean(
                    [e["chosen_accuracy"][rule] - e["chosen_accuracy"]["default"] for e in es]
                )), 2)
                for rule in es[0]["chosen_accuracy"] if rule != "default"
            },
            **{
                f"{kind}_error": round(100 * float(np.mean(
                    [e["error_at_default"][kind] for e in es]
                )), 2)
                for kind in ("estimate", "exact_loo", "held_out")
            },
        }  # fmt: skip
    keys = [k for k in next(iter(per.values())) if k.endswith("_minus_default")]
    return {
        "datasets": per,
        "mean": {k: round(float(np.mean([p[k] for p in per.values()])), 2) for k in keys},
        "worst": {k: round(float(np.min([p[k] for p in per.values()])), 2) for k in keys},
    }


def final(name: str, m: int, seed: int) -> dict:
    """Final accuracy of each criterion, cheaply: a run's last lambda is chosen from the final
    sums (those of a fit on all training rows), so one fit and one eigendecomposition give the
    criterion's choice and every lattice lambda's accuracy (the oracle ``best fixed``)."""
    X, y, Xt, yt, initial, increment = load(name)
    scenario = class_incremental(y, yt, initial=initial, increment=increment, seed=seed)
    X, Xt = normalised(X, Xt, scenario.steps[0].train)
    clf = learner_at(m, seed).fit(X, y)
    curve = lattice_accuracy(clf, Xt, yt)
    stats = clf.statistics_
    n = stats.n_samples
    mean, prior = stats.feature_sum / n, stats.counts / n
    gram = stats.gram - n * np.outer(mean, mean)
    sums = stats.class_sums - n * np.outer(mean, prior)
    index = {round(np.log10(a) * 4): i for i, a in enumerate(curve["alphas"])}
    chosen = {"default": clf.alpha_}
    best, _ = select_alpha(
        gram, sums, n, target_energy=n * (1.0 - float(prior @ prior)), extra_df=1.0,
        counts=stats.counts, criterion="gcv", method="spectral",
        scale=float(np.diag(stats.gram_upper).max()),
    )  # fmt: skip
    chosen["gcv"] = best.alpha
    decision = clf.head_.decision_
    return {
        "dataset": name, "M": m, "seed": seed, **curve, "chosen": chosen, "decision": decision,
        "chosen_accuracy": {
            # the shipped model itself; gcv (the earlier default) scored by the regression
            "default": float((clf.predict(Xt) == yt).mean()),
            "gcv": curve["accuracy"][index[round(np.log10(chosen["gcv"]) * 4)]],
        },
    }  # fmt: skip


def summarise_final(entries: list[dict]) -> list[dict]:
    """Per dataset and M: mean final accuracy of the default and of GCV, and of the one fixed
    lambda best on the seeds' mean (an oracle: it looks at the test split)."""
    table = []
    for name, m in sorted({(e["dataset"], e["M"]) for e in entries}, key=lambda k: (k[1], k[0])):
        es = [e for e in entries if e["dataset"] == name and e["M"] == m]
        best = _best_fixed(es)
        row = {"dataset": name, "M": m, "seeds": [e["seed"] for e in es], "best_fixed": best}
        for k in ("default", "gcv"):
            row[k] = _ms([e["chosen_accuracy"][k] for e in es])
            row[k]["minus_best_fixed"] = row[k]["mean"] - best["final_accuracy"]["mean"]
        decisions = {e.get("decision", "regression") for e in es}
        if decisions == {"discriminant"} and all("accuracy_discriminant" in e for e in es):
            # The default scores by the discriminant here: its lambda against the best fixed
            # lambda under the same rule, too.
            same = _best_fixed(es, key="accuracy_discriminant")
            row["best_fixed_discriminant"] = same
            row["default"]["minus_best_fixed_same_rule"] = (
                row["default"]["mean"] - same["final_accuracy"]["mean"]
            )
        row["default"]["decision"] = "/".join(sorted(decisions))
        table.append(row)
    return table


def one(name: str, m: int, seed: int, with_gcv: bool = True) -> dict:
    X, y, Xt, yt, initial, increment = load(name)
    scenario = class_incremental(y, yt, initial=initial, increment=increment, seed=seed)
    raw = method_features("ranpac", X, Xt, scenario.steps[0].train)
    X, Xt = normalised(X, Xt, scenario.steps[0].train)
    out: dict = {"dataset": name, "M": m, "seed": seed, "n_train": int(y.size),
                 "n_test": int(yt.size), "classes": int(np.unique(y).size)}  # fmt: skip
    default = learner_at(m, seed)
    out["default"] = whole_run(default, X, y, Xt, yt, scenario)
    out["default"]["criterion"] = default.head_.criterion_
    if with_gcv:
        with previous_default():
            out["gcv"] = whole_run(learner_at(m, seed), X, y, Xt, yt, scenario)
    out["ranpac"] = whole_run(RanPAC(n_components=m, seed=seed), raw[0], y, raw[1], yt, scenario)
    out["ranpac"]["features"] = "raw"
    out["fixed"] = lattice_accuracy(default, Xt, yt)
    out["validation"] = validation(name, m, seed)
    return out


REFIT_ROUTES = ("default", "whole_gram", "krylov", "gcv")


def refit_cost(sizes: list[int], name: str = "wordnet/minilm", repeats: int = 3) -> list[dict]:
    """One refit (``head.fit`` of the final sums) against one Cholesky of the same centred G,
    interleaved, best of ``repeats``: factorisation-equivalents. ``default`` is today's head
    (the row space while the sums keep G as its n × M factor, else the rational quadrature),
    ``whole_gram`` the same without the row space (G formed and searched at M × M),
    ``krylov`` the plain Krylov quadrature (the default before the rational one), ``gcv`` the
    eigendecomposition route (the first default; once at M = 10,000); the last three at M × M."""
    from forgetless.heads import RidgeHead

    X, y, _, _, _, _ = load(name)
    out = []
    for m in sizes:
        clf = learner_at(m, 0).fit(X, y)
        stats = clf.statistics_
        n = stats.n_samples
        mean = stats.feature_sum / n
        gram = stats.gram - n * np.outer(mean, mean)
        gram[np.diag_indices(m)] += clf.alpha_
        times: dict[str, list[float]] = {
            "cholesky": [], "default": [], "whole_gram": [], "krylov": [], "gcv": []
        }  # fmt: skip
        alphas: dict[str, float] = {}
        for r in range(repeats):
            # The reference at full speed: numpy's BLAS threads quiet, as in the head's refit.
            with numpy_blas_quiet():
                start = time.perf_counter()
                linalg.cho_factor(gram, check_finite=False)
                times["cholesky"].append(time.perf_counter() - start)
            start = time.perf_counter()
            head = RidgeHead().fit(stats)
            times["default"].append(time.perf_counter() - start)
            alphas["default"] = head.alpha_
            for label, settings in (
                ("whole_gram", None), ("krylov", {"method": "krylov"}), ("gcv", {})
            ):  # fmt: skip
                if label == "gcv" and r > 0 and m > 4000:
                    continue
                with (
                    without_row_space(),
                    previous_default(**settings)
                    if settings is not None
                    else contextlib.nullcontext(),
                ):
                    start = time.perf_counter()
                    alphas[label] = RidgeHead().fit(stats).alpha_
                    times[label].append(time.perf_counter() - start)
        chol = min(times["cholesky"])
        out.append({
            "M": m, "dataset": name, "n": int(n), "classes": int(stats.n_classes),
            "cholesky_seconds": chol,
            "factored": bool(stats.factored),
            **{f"{k}_refit_seconds": min(times[k]) for k in REFIT_ROUTES},
            **{f"{k}_factorisations": min(times[k]) / chol for k in REFIT_ROUTES},
            "alphas": alphas,
            "default_points_scored": len(head.gcv_path_),
            "all_seconds": times,
        })  # fmt: skip
        print(json.dumps(out[-1]), flush=True)
    return out


def search_choices(name: str, m: int, seed: int) -> dict:
    """Every refit of a whole run that the rational quadrature searches (``--only choices``):
    how many factorisations and shift-invert curves (six block solves each) it made, and its
    choice against the exact spectrum's (one eigendecomposition of the same sums, scored by the
    same criterion and rules), with the exact criterion at both (a choice that differs is a
    near-tie when those are close)."""
    from unittest import mock

    import forgetless._lambda_search as search
    from forgetless.linalg import HostLinalg

    X, y, Xt, yt, initial, increment = load(name)
    scenario = class_incremental(y, yt, initial=initial, increment=increment, seed=seed)
    X, Xt = normalised(X, Xt, scenario.steps[0].train)
    refits: list[dict] = []
    inside = [False]
    factorise, rational = HostLinalg.shifted_cholesky, search._rational_search
    single = HostLinalg.single_cholesky
    curve = search.shift_invert_nodes

    def counted(self, gram, alpha, out=None):
        if inside[0]:
            refits[-1]["factorisations"] += 1
        return factorise(self, gram, alpha, out=out)

    def looked(self, rough, alpha):
        if inside[0]:
            refits[-1]["float32_factorisations"] += 1
        return single(self, rough, alpha)

    def drawn(*args, **options):
        refits[-1]["curves"] += 1
        return curve(*args, **options)

    def logged(gram, class_sums, grid, floor, scorer, ops, **options):
        refits.append({"factorisations": 0, "float32_factorisations": 0, "curves": 0})
        inside[0] = True
        try:
            found = rational(gram, class_sums, grid, floor, scorer, ops, **options)
        finally:
            inside[0] = False
        exact, points = search.spectral_choice(gram, class_sums, grid, floor, scorer, ops)
        chosen = None if found is None else found[0].alpha
        by_alpha = {p.alpha: p.score for p in points}
        refits[-1].update(
            searched=found is not None or refits[-1]["factorisations"] > 0,
            chosen=chosen, exact=exact.alpha, exact_score=exact.score,
            exact_score_of_choice=by_alpha.get(chosen),
        )  # fmt: skip
        return found

    with (
        mock.patch.object(HostLinalg, "shifted_cholesky", counted),
        mock.patch.object(HostLinalg, "single_cholesky", looked),
        mock.patch.object(search, "_rational_search", logged),
        mock.patch.object(search, "shift_invert_nodes", drawn),
    ):
        run = whole_run(learner_at(m, seed), X, y, Xt, yt, scenario)
    searched = [r for r in refits if r["searched"]]
    return {
        "dataset": name, "M": m, "seed": seed, "refits": searched,
        "factorisations": sum(r["factorisations"] for r in searched),
        "float32_factorisations": sum(r["float32_factorisations"] for r in searched),
        "curves": sum(r["curves"] for r in searched),
        "same_as_exact": sum(r["chosen"] == r["exact"] for r in searched),
        "final_accuracy": run["final_accuracy"], "alpha_per_step": run["alpha_per_step"],
    }  # fmt: skip


def summarise_choices(entries: list[dict]) -> dict:
    """Totals over ``search_choices`` entries: refits searched, factorisations, choices equal
    to the exact spectrum's, the largest relative gap in the exact criterion where they differ,
    and the mean final accuracy."""
    refits = [r for e in entries for r in e["refits"]]
    gaps = [
        (r["exact_score_of_choice"] - r["exact_score"]) / abs(r["exact_score"])
        for r in refits
        if r["chosen"] != r["exact"] and r["exact_score_of_choice"] is not None
    ]
    return {
        "runs": len(entries), "refits": len(refits),
        "factorisations": sum(r["factorisations"] for r in refits),
        "float32_factorisations": sum(r.get("float32_factorisations", 0) for r in refits),
        "curves": sum(r.get("curves", 0) for r in refits),
        "same_as_exact": sum(r["chosen"] == r["exact"] for r in refits),
        "largest_relative_gap_where_different": max(gaps, default=0.0),
        "mean_final_accuracy": float(np.mean([e["final_accuracy"] for e in entries])),
    }  # fmt: skip


def speed(name: str, m: int, seed: int, repeats: int = 2) -> dict:
    """Whole 6-step runs, timed back to back in this process, best of ``repeats`` (rounds
    alternate the methods): the default at width M, the same without the row space
    (``whole_gram``: G formed and searched at M × M while few samples are in, as before),
    RanPAC's own procedure at M, and with ``--projection auto`` also ``ContinualClassifier()``
    as it comes (``library_default``: its own width, so no layer on the readouts). (Entries
    before the row space timed ``krylov``, the plain Krylov quadrature, instead.)"""
    X, y, Xt, yt, initial, increment = load(name)
    scenario = class_incremental(y, yt, initial=initial, increment=increment, seed=seed)
    raw = method_features("ranpac", X, Xt, scenario.steps[0].train)
    X, Xt = normalised(X, Xt, scenario.steps[0].train)
    makers = {
        "default": lambda: learner_at(m, seed),
        "whole_gram": lambda: learner_at(m, seed),
        "ranpac": lambda: RanPAC(n_components=m, seed=seed),
    }
    if PROJECTION.get("projection") == "auto":  # and what ContinualClassifier() alone builds
        makers["library_default"] = lambda: ContinualClassifier(random_state=seed)
    runs: dict[str, list[dict]] = {k: [] for k in makers}
    for _ in range(repeats):
        for label, make in makers.items():
            features = raw if label == "ranpac" else (X, Xt)
            with without_row_space() if label == "whole_gram" else contextlib.nullcontext():
                runs[label].append(whole_run(make(), features[0], y, features[1], yt, scenario))
    out: dict = {"dataset": name, "M": m, "seed": seed, "repeats": repeats}
    for label, done in runs.items():
        best = min(done, key=lambda r: r["total_seconds"])
        out[label] = {**best, "all_totals": [r["total_seconds"] for r in done]}
    out["ranpac"]["features"] = "raw"
    out["ranpac_over_default"] = out["ranpac"]["total_seconds"] / out["default"]["total_seconds"]
    out["whole_gram_over_default"] = (
        out["whole_gram"]["total_seconds"] / out["default"]["total_seconds"]
    )
    if "library_default" in out:
        out["ranpac_over_library_default"] = (
            out["ranpac"]["total_seconds"] / out["library_default"]["total_seconds"]
        )
    return out


def blas_contention(m: int = 4000, columns: int = 53, repeats: int = 7) -> dict:
    """Why the head fits under ``numpy_blas_quiet``: one triangular solve pair (scipy) with C + 8
    columns, alone, right after a numpy product, and right after one inside the context; and
    the centred G built as before (mirrored, outer product, subtraction) against the upper
    triangle's copy and rank-one update. Best of ``repeats``, one process."""
    from scipy.linalg import blas, lapack

    from forgetless.linalg import HOST
    from forgetless.statistics import symmetrize_upper

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((m + m // 2, m))
    upper = blas.dsyrk(1.0, np.asfortranarray(rows.T), trans=0, lower=0)
    factor = lapack.dpotrf(np.array(upper, order="F"), lower=0)[0]
    block = np.asfortranarray(rng.standard_normal((m, columns)))
    basis = rng.standard_normal((m, 7 * columns))
    mean, n = rows.mean(axis=0), float(rows.shape[0])

    def best(run) -> float:
        return min(run() for _ in range(repeats))

    def solve(before=None, quiet=False) -> float:
        with numpy_blas_quiet() if quiet else contextlib.nullcontext():
            if before is not None:
                before()
            start = time.perf_counter()
            linalg.cho_solve((factor, False), block, check_finite=False)
            return time.perf_counter() - start

    def timed(work) -> float:
        start = time.perf_counter()
        work()
        return time.perf_counter() - start

    class Stats:  # what HostLinalg.gram reads
        gram_upper, n_samples = upper, n

    def before_centring():
        full = symmetrize_upper(upper)
        full -= n * np.outer(mean, mean)

    numpy_product = lambda: basis.T @ block  # noqa: E731  (a Lanczos step's small product)
    out = {
        "M": m, "columns": columns,
        "solve_alone_seconds": best(solve),
        "solve_after_numpy_product_seconds": best(lambda: solve(numpy_product)),
        "solve_after_numpy_product_quiet_seconds": best(lambda: solve(numpy_product, quiet=True)),
        "centred_gram_before_seconds": best(lambda: timed(before_centring)),
        "centred_gram_upper_seconds": best(lambda: timed(lambda: HOST.gram(Stats, mean))),
    }  # fmt: skip
    out["slowdown_after_numpy"] = (
        out["solve_after_numpy_product_seconds"] / out["solve_alone_seconds"]
    )
    out["slowdown_after_numpy_quiet"] = (
        out["solve_after_numpy_product_quiet_seconds"] / out["solve_alone_seconds"]
    )
    return out


def profile(name: str = "wordnet/minilm", m: int = 4000) -> str:
    X, y, Xt, yt, initial, increment = load(name)
    scenario = class_incremental(y, yt, initial=initial, increment=increment, seed=0)
    X, Xt = normalised(X, Xt, scenario.steps[0].train)
    clf = learner_at(m, 0)
    profiler = cProfile.Profile()
    profiler.enable()
    for step in scenario.steps:
        clf.partial_fit(X[step.train], y[step.train])
        clf.predict(Xt[:1])
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    return text.getvalue()


def summarise(runs: list[dict]) -> list[dict]:
    """Mean and std over seeds, per dataset and M: final accuracy and run time per method, the
    best fixed lambda (of the seeds' mean accuracy), the criteria on validation splits."""
    table = []
    keys = sorted(
        {(r["dataset"], r["M"]) for r in runs},
        key=lambda k: (k[1], list(DATASETS).index(k[0]) if k[0] in DATASETS else 99),
    )
    for name, m in keys:
        rs = [r for r in runs if r["dataset"] == name and r["M"] == m]
        row: dict = {"dataset": name, "M": m, "seeds": [r["seed"] for r in rs]}
        for method in ("default", "gcv", "ranpac"):
            if not all(method in r for r in rs):  # gcv: left out with --without-gcv
                continue
            acc = [r[method]["final_accuracy"] for r in rs]
            sec = [r[method]["total_seconds"] for r in rs]
            row[method] = {"final_accuracy": _ms(acc), "total_seconds": _ms(sec)}
        row["best_fixed"] = _best_fixed([r["fixed"] for r in rs])
        val = [r["validation"] for r in rs]
        best_val = _best_fixed(val)
        row["validation"] = {
            "best_fixed": best_val,
            **{k: _ms([v["chosen_accuracy"][k] for v in val]) for k in ("loo", "gcv")},
        }
        row["speedup_vs_ranpac"] = (
            row["ranpac"]["total_seconds"]["mean"] / row["default"]["total_seconds"]["mean"]
        )
        table.append(row)
    return table


def _ms(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}


def _best_fixed(curves: list[dict], key: str = "accuracy") -> dict:
    """The one lattice lambda with the best accuracy averaged over seeds (lattices are quarter
    decades: aligned by their exponent); ``key`` names the curve (a decision rule's)."""
    per = [
        {
            exponent: value
            for exponent, value in zip(
                (round(np.log10(a) * 4) for a in c["alphas"]), c[key], strict=True
            )
            if value is not None
        }
        for c in curves
    ]
    common = sorted(set.intersection(*(set(p) for p in per)))
    means = [float(np.mean([p[k] for p in per])) for k in common]
    best = int(np.argmax(means))
    at = common[best]
    return {
        "alpha": 10.0 ** (at / 4),
        "final_accuracy": {"mean": means[best], "std": float(np.std([p[at] for p in per]))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits, seed 0, M = 600")
    parser.add_argument(
        "--datasets", nargs="+", default=list(DATASETS), choices=[*DATASETS, *EXTERNAL]
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--refit-sizes", type=int, nargs="+", default=[2000, 4000, 10000])
    parser.add_argument(
        "--only",
        choices=[
            "final",
            "runs",
            "refit",
            "profile",
            "speed",
            "blas",
            "selection-bias",
            "choices",
            "rules",
        ],
        nargs="+",
        default=["final", "runs", "refit", "profile"],
    )
    parser.add_argument("--refit-datasets", nargs="+", default=["wordnet/minilm"])
    parser.add_argument("--speed", nargs="+", help="NAME:M whole runs for --only speed (seed 0)",
                        default=["wordnet/minilm:4000", "wordnet/minilm:2000"])  # fmt: skip
    parser.add_argument("--out", help="the JSON file (default: by --quick and --projection)")
    parser.add_argument(
        "--refit-key", default="refit",
        help="--only refit: the JSON entry it writes (another for another release's code)",
    )  # fmt: skip
    parser.add_argument(
        "--speed-key", default="speed",
        help="--only speed: the JSON entry it writes (another for another release's code)",
    )  # fmt: skip
    parser.add_argument(
        "--choices-key", default="search_choices",
        help="--only choices: the JSON entry it writes (another for another release's code)",
    )  # fmt: skip
    parser.add_argument("--fresh", action="store_true", help="start a new file")
    parser.add_argument(
        "--without-gcv", action="store_true",
        help="runs: leave out GCV by eigendecomposition (the earlier default; the slowest)",
    )  # fmt: skip
    parser.add_argument(
        "--redo", action="store_true",
        help="final, runs, speed, selection-bias, choices: run the selected entries again, "
        "replacing them (the file's others are kept)",
    )  # fmt: skip
    parser.add_argument(
        "--projection",
        choices=["orthogonal", "auto"],
        default="orthogonal",
        help="the default learner's layer (auto: to lambda_selection_auto.json)",
    )
    args = parser.parse_args()
    PROJECTION["projection"] = args.projection
    if args.quick:
        args.datasets, args.sizes, args.seeds, args.refit_sizes = ["digits/raw"], [600], [0], [600]
    if args.out is None:  # the quick run has its own file, and so has --projection auto
        name = "auto" if args.projection == "auto" else ""
        name = "quick" if args.quick else name
        args.out = str(RESULTS / f"lambda_selection{'_' + name if name else ''}.json")
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() and not args.fresh else {}
    results.setdefault("runs", [])
    results["projection"] = args.projection
    results["machine"] = {
        "platform": platform.platform(), "cpus": os.cpu_count(), "library_version": __version__,
        "note": "2 shared cores; timings vary with the load of other processes",
    }  # fmt: skip

    def save() -> None:
        results["summary"] = summarise(results["runs"]) if results["runs"] else []
        if results.get("final"):
            results["final_summary"] = summarise_final(results["final"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, separators=(",", ":")) + "\n")  # compact

    def done(entries: list[dict], key: tuple, fields: tuple = ("dataset", "M", "seed")) -> bool:
        """Whether an entry for ``key`` is there already; with --redo it is removed (it runs
        again and its new result takes its place)."""
        matches = [e for e in entries if tuple(e[f] for f in fields) == key]
        if args.redo:
            entries[:] = [e for e in entries if not any(e is hit for hit in matches)]
            return False
        return bool(matches)

    if "final" in args.only:
        results.setdefault("final", [])
        for m in args.sizes:
            for name in args.datasets:
                for seed in args.seeds:
                    if done(results["final"], (name, m, seed)):
                        continue
                    results["final"].append(final(name, m, seed))
                    save()
                    e = results["final"][-1]
                    print(f"{name} M={m} seed={seed}: final accuracy " + ", ".join(
                        f"{k} {100 * v:.2f} %" for k, v in e["chosen_accuracy"].items()
                    ) + f", best fixed {100 * max(e['accuracy']):.2f} %", flush=True)  # fmt: skip
    if "runs" in args.only:
        for m in args.sizes:
            for name in args.datasets:
                for seed in args.seeds:
                    if done(results["runs"], (name, m, seed)):
                        continue
                    start = time.perf_counter()
                    results["runs"].append(one(name, m, seed, not args.without_gcv))
                    save()
                    r = results["runs"][-1]
                    print(f"{name} M={m} seed={seed}: " + ", ".join(
                        f"{k} {100 * r[k]['final_accuracy']:.2f} % {r[k]['total_seconds']:.1f} s"
                        for k in ("default", "gcv", "ranpac") if k in r
                    ) + f" ({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    if "refit" in args.only:
        key = args.refit_key
        for name in args.refit_datasets:
            measured = {e["M"] for e in results.get(key, []) if e["dataset"] == name}
            todo = [m for m in args.refit_sizes if m not in measured]
            if todo:
                results[key] = results.get(key, []) + refit_cost(todo, name)
                save()
    if "speed" in args.only:
        for spec in args.speed:
            name, m = spec.rsplit(":", 1)
            entries = results.setdefault(args.speed_key, [])
            if done(entries, (name, int(m)), ("dataset", "M")):
                continue
            entries.append(speed(name, int(m), seed=0))
            save()
            e = entries[-1]
            print(f"{name} M={m}: " + ", ".join(
                f"{k} {e[k]['total_seconds']:.1f} s {100 * e[k]['final_accuracy']:.2f} %"
                for k in ("default", "whole_gram", "krylov", "ranpac", "library_default") if k in e
            ) + f"; RanPAC / default {e['ranpac_over_default']:.2f}x", flush=True)  # fmt: skip
    if "selection-bias" in args.only:
        for m in args.sizes:
            for name in args.datasets:
                for seed in args.seeds:
                    entries = results.setdefault("selection_bias", [])
                    if done(entries, (name, m, seed)):
                        continue
                    entries.append(selection_bias(name, m, seed))
                    save()
                    e = entries[-1]
                    print(f"{name} M={m} seed={seed}: best fixed lambda on half the test rows, "
                          f"scored on the other half, minus the default "
                          f"{100 * e['held_out_choice_minus_default']:+.2f} points (oracle "
                          f"{100 * e['oracle_minus_default']:+.2f})", flush=True)  # fmt: skip
    if "choices" in args.only:
        entries = results.setdefault(args.choices_key, [])
        for m in args.sizes:
            for name in args.datasets:
                for seed in args.seeds:
                    if done(entries, (name, m, seed)):
                        continue
                    entries.append(search_choices(name, m, seed))
                    results[args.choices_key + "_summary"] = summarise_choices(entries)
                    save()
                    e = entries[-1]
                    print(f"{name} M={m} seed={seed}: {len(e['refits'])} refits searched, "
                          f"{e['factorisations']} factorisations, {e['same_as_exact']} choices "
                          f"as the exact spectrum's", flush=True)  # fmt: skip
    if "rules" in args.only:
        entries = results.setdefault("rules", [])
        for m in args.sizes:
            for name in args.datasets:
                for seed in args.seeds:
                    if done(entries, (name, m, seed)):
                        continue
                    entries.append(rules(name, m, seed))
                    results["rules_summary"] = summarise_rules(entries)
                    save()
                    e = entries[-1]
                    print(f"{name} M={m} seed={seed}: held-out accuracy " + ", ".join(
                        f"{k} {100 * v:.2f} %" for k, v in e["chosen_accuracy"].items()
                    ), flush=True)  # fmt: skip
    if "blas" in args.only:
        results["blas_contention"] = blas_contention()
        save()
        print(json.dumps(results["blas_contention"]), flush=True)
    if "profile" in args.only and ("profile" not in results or args.fresh):
        name, m = ("digits/raw", 600) if args.quick else ("wordnet/minilm", 4000)
        results["profile"] = {"dataset": name, "M": m, "cprofile": profile(name, m)}
        save()
    save()
    for row in results["summary"] + results.get("final_summary", []):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
