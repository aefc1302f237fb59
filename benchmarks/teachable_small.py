"""The teachable model on small data: width against accuracy and size; writes JSON. Not a test.

    python benchmarks/teachable_small.py              # -> benchmarks/results/teachable_small.json
    python benchmarks/teachable_small.py --splits 1 --no-guided      # a quick look
    python benchmarks/teachable_small.py --layers   # -> benchmarks/results/teachable_layers.json

The small case of docs/teaching.md: openclipart's 6 top folders (animals, food, geography,
people, tools, transportation) as classes, 105 images drawn from each (seed 0; symlinks and
images over 4 MP skipped, as ``load_openclipart`` does), EfficientNet-Lite0 at its default 224
px, features through the feature cache (``forgetless.cache``; read from the shared cache when it
holds them, else encoded once into ``$FORGETLESS_SMALL_CACHE``, default
/tmp/fl-cache-teachable-small). Each split (seed = split) draws 30 test images per class and
orders the other 75; a learn takes the first 10, 33 or 75 of them per class (60, 198, 450
samples). Measured on the test split, with nothing tuned on it (lambda is chosen from the sums,
the temperature on held-out training rows):

* **validation** (what chose the width rule; no test image is used): 5-fold cross-validation
  inside each split's training images at each training size (inner training sets of 48, 158
  and 360 samples), for the guided layer at M = 32 ... 1024 and the 1024-wide gaussian layer;
* **larger counts** (``--no-larger`` skips it): the built-in datasets' 3,000-row *training*
  subsets (openclipart and Fashion-MNIST through EfficientNet-Lite0 at 112 px, WordNet through
  MiniLM; 38, 10 and 45 classes; their test subsets are not read): 1,000 rows held out
  (stratified, seed = split), the first 256 ... 2,000 of the others (random order) learned, for
  the gaussian layer at M = 1024 and the guided one at M = 256, 512, 1024, the rule's pick
  among them marked;
* **width**: a learner with the teachable model's settings (gaussian ReLU layer, ridge head,
  ``alpha="auto"``, layer seed = split) at M = 128 ... 2048, the learner file's size
  (``ContinualClassifier.save``) and the seconds to fit; ``projection="guided"`` (the ReLU
  layer's kernel on landmarks drawn from the class population of the samples learned) at
  M = 64 ... 512; scikit-learn's LogisticRegression on the same features (C = 1, and
  standardised with C = 0.1);
* **the teachable model**: a :class:`~forgetless.TeachableModel` made without a width (its
  width from the samples in hand, :func:`~forgetless.teachable.width_for`) and one made with
  ``width=1024`` (what models made before the rule have: the gaussian layer at M = 1024) learn
  the same rows: accuracy, the folder's bytes on disk (learner, records, journal), seconds;
* **predict right after learn**: each of those two models learns the 450 rows (as features of
  its encoder, from the cache), then predicts one test image given as a path (encoding
  included): the seconds of that first call, one per split (the median is reported), with
  the encoding of one image and a fresh ``open`` + predict timed apart;
* **temperature after forgetting a class**: the model made without a width forgets one class
  (class ``split mod 6``); expected calibration error (15 bins) on the test images of the
  classes left with the temperature the forget refits (on the features the deletion records
  keep), with the one fitted at learn time (what a model that cannot refit keeps), with T = 1,
  and for a model taught the same data without the class (while the layer grows the forget
  rebuilds it, so the two are the same model: ``identical_to_never_taught``).

``--layers`` asks which layer a model made without a width should have on today's features
(the encoders' default readouts: 1,904 values per image, 2,304 per text; raw 28 x 28 pixels,
784, for the other side of the rule), with the teachable model's learner (ridge, regression
decision, ``alpha="auto"``, layer seed = split): the guided kernel layer at the width rule's M
(:func:`~forgetless.teachable.width_for`), the gaussian layer at M = 1024 (models made with
``--width 1024``, and before the rule) and no layer (``projection="none"``), on held-out
*training* rows only: 5-fold cross-validation inside each split's training images of the small
case (10, 33 and 75 per class), and the larger counts above from 32 samples on (2 splits). Then,
for the record, the same three on the small case's test images (5 splits), with the learner
file's size. :func:`forgetless.teachable.layer_for` (no layer on features wider than 1,000
values) comes from it.

``--widths`` asks again whether the width rule suits the features it serves today, those
narrow enough for a layer (raw 28 x 28 Fashion-MNIST pixels, 784 values; raw 8 x 8 digits, 64;
MiniLM's last layer, 384), with today's λ search: the teachable model's learner with the guided
layer at every width of ``WIDTH_SWEEP`` on held-out *training* rows (1,000 of the 3,000-row
training subset, a third of digits' training split, stratified, seed = split; the first 32 ...
1,024 of the others learned), 3 splits; the rule's width against the best of the sweep, per
size; each fit is also scored on the test subset, for the record (``teachable_widths.json``).

Threads are limited to ``--threads`` (default 1) for BLAS and torch: this measures a shared
machine politely, and the timings say so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CLASSES = ("animals", "food", "geography", "people", "tools", "transportation")
PER_CLASS, TEST_PER_CLASS = 105, 30
SIZES = (10, 33, 75)  # training images per class in a learn
WIDTHS = (128, 256, 512, 1024, 2048)
GUIDED_WIDTHS = (64, 128, 256, 512)
VALIDATION_WIDTHS = (32, 64, 96, 128, 192, 256, 384, 512, 1024)  # guided, inner CV
LARGER_SETS = {  # name: (dataset, encoder, options)
    "openclipart": ("openclipart", "efficientnet-lite0", {"image_size": 112}),
    "fashion-mnist": ("fashion-mnist", "efficientnet-lite0", {"image_size": 112}),
    "wordnet": ("wordnet", "minilm", {}),
}
LARGER_SIZES = (256, 512, 1024, 2000)
WIDTH_SETS = {  # --widths: features narrow enough for the width rule's layer
    "fashion-mnist-raw": ("fashion-mnist", "raw", {}),
    "digits-raw": ("digits", "raw", {}),
    "wordnet-minilm-last": ("wordnet", "minilm", {"readout": "last"}),
}
WIDTH_SWEEP = (32, 64, 128, 256, 512, 1024)
WIDTH_SIZES = (32, 64, 128, 256, 512, 1024)
LARGER_WIDTHS = (256, 512, 1024)
OWN_CACHE = "/tmp/fl-cache-teachable-small"


# ------------------------------------------------------------------------------ data
def images() -> tuple[list[str], np.ndarray]:
    """The 105 image paths drawn from each class (seed 0) and their class indices."""
    from forgetless.data.openclipart import load_openclipart

    ds = load_openclipart(depth=1, min_images=PER_CLASS)
    paths = np.array(list(ds.train.inputs) + list(ds.test.inputs))
    labels = np.concatenate([ds.train.labels, ds.test.labels])
    rng = np.random.default_rng(0)
    chosen, y = [], []
    for k, name in enumerate(CLASSES):
        rows = np.sort(np.flatnonzero(labels == ds.classes.index(name)))
        pick = np.sort(rng.choice(rows, PER_CLASS, replace=False))
        chosen += sorted(paths[pick].tolist())
        y += [k] * PER_CLASS
    return chosen, np.array(y)


def features(encoder: Any, paths: list[str]) -> tuple[np.ndarray, str]:
    """Cached features of ``paths``: from the shared cache when it holds them complete, else
    from (or encoded into) this benchmark's own cache. Returns (features, the cache used)."""
    from forgetless.cache import FeatureCache

    shared = FeatureCache()
    manifest = shared.root / shared.key(encoder, paths)[:32] / "manifest.json"
    try:
        complete = bool(json.loads(manifest.read_text()).get("complete"))
    except (OSError, ValueError):
        complete = False
    cache = (
        shared if complete else FeatureCache(os.environ.get("FORGETLESS_SMALL_CACHE", OWN_CACHE))
    )
    X = cache.features(encoder, paths, tag="openclipart-top6/105")
    return np.asarray(X, dtype=np.float32), str(cache.root)


def split_rows(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows in learning order per class, shape (classes, 75)), test rows."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(len(CLASSES)):
        rows = rng.permutation(np.flatnonzero(y == c))
        test.append(rows[:TEST_PER_CLASS])
        train.append(rows[TEST_PER_CLASS:])
    return np.stack(train), np.sort(np.concatenate(test))


# ------------------------------------------------------------------------------ width
LAYER_PARAMS: dict[str, Any] = {}  # the guided layer's settings: the teachable model's (main)


def layer_params(projection: str) -> dict[str, Any] | None:
    """The guided layer's settings (the teachable model's, or ``--shrinkage``'s)."""
    return dict(LAYER_PARAMS) if projection == "guided" else None


def learner_row(projection: str, m: int, seed: int, data: tuple) -> dict[str, Any]:
    from forgetless import ContinualClassifier

    X_train, y_train, X_test, y_test = data
    clf = ContinualClassifier(
        projection=projection,
        n_components=m,
        alpha="auto",
        random_state=seed,
        projection_params=layer_params(projection),
    )
    start = time.perf_counter()
    clf.partial_fit(X_train, y_train)
    alpha = clf.alpha_  # the head's solve, lambda chosen from the sums
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(clf.predict(X_test) == y_test))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "learner.fl"
        clf.save(path)
        size = path.stat().st_size
    return {
        "method": projection,
        "M": int(clf.projection_.n_outputs),
        "accuracy": accuracy,
        "bytes": size,
        "alpha": float(alpha),
        "fit_seconds": round(seconds, 3),
    }


def logistic_rows(data: tuple) -> list[dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_train, y_train, X_test, y_test = data
    rows = []
    for name, model in (
        ("logistic-regression", LogisticRegression(max_iter=5000)),
        (
            "logistic-regression-standardised-C0.1",
            make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000)),
        ),
    ):
        start = time.perf_counter()
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - start
        accuracy = float(np.mean(model.predict(X_test) == y_test))
        rows.append({"method": name, "M": None, "accuracy": accuracy, "fit_seconds": seconds})
    return rows


def quiet_fit(clf: Any, X: np.ndarray, y: np.ndarray) -> Any:
    from forgetless.linalg import IllConditionedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        clf.partial_fit(X, y)
        clf.alpha_  # noqa: B018  (the head's solve, lambda chosen from the sums)
    return clf


# ------------------------------------------------------------------------------ validation
def inner_folds(y: np.ndarray, splits: int):
    """(split, images per class, fold, fitted rows, held-out rows): 5-fold cross-validation
    inside each split's training images at each training size (no test image used)."""
    from sklearn.model_selection import StratifiedKFold

    for split in range(splits):
        train_rows, _ = split_rows(y, split)
        for per_class in SIZES:
            train = np.sort(train_rows[:, :per_class].ravel())
            folds = StratifiedKFold(5, shuffle=True, random_state=split)
            for fold, (a, b) in enumerate(folds.split(train, y[train])):
                yield split, per_class, fold, train[a], train[b]


def validation_rows(X: np.ndarray, y: np.ndarray, splits: int) -> list[dict[str, Any]]:
    """5-fold cross-validation inside each split's training images (no test image used)."""
    from forgetless.teachable import width_for

    rows = []
    for split, per_class, fold, fit, held in inner_folds(y, splits):
        rule = width_for(fit.size, np.unique(y[fit]).size)
        grid = [("guided", m) for m in VALIDATION_WIDTHS] + [("gaussian", 1024)]
        for projection, m in grid:
            rows.append(
                {
                    "split": split,
                    "per_class": per_class,
                    "fold": fold,
                    "n": int(fit.size),
                    **held_out_score(projection, m, rule, split, X, y, fit, held),
                }
            )
        if fold == 4:
            print(f"validation: split {split}, {per_class}/class done", flush=True)
    return rows


def held_out_score(
    projection: str,
    m: int,
    rule: int,
    seed: int,
    X: np.ndarray,
    y: np.ndarray,
    fit: np.ndarray,
    held: np.ndarray,
) -> dict[str, Any]:
    """A learner with the teachable model's settings fitted on rows ``fit``, scored on ``held``
    (training rows only: this chooses the width rule)."""
    from forgetless import ContinualClassifier

    clf = ContinualClassifier(
        projection=projection,
        n_components=m,
        alpha="auto",
        random_state=seed,
        projection_params=layer_params(projection),
    )
    start = time.perf_counter()
    quiet_fit(clf, X[fit], y[fit])
    return {
        "method": projection,
        "M": m,
        "rule_pick": projection == "guided" and m == rule,
        "accuracy": float(np.mean(clf.predict(X[held]) == y[held])),
        "fit_seconds": round(time.perf_counter() - start, 3),
    }


def larger_rows(splits: int) -> list[dict[str, Any]]:
    """The rule at larger counts, inside the built-in datasets' training subsets only."""
    from forgetless.cache import FeatureCache
    from forgetless.data import load_dataset
    from forgetless.data.base import stratified_sample, stratified_split
    from forgetless.encoders import load_encoder
    from forgetless.teachable import width_for

    rows = []
    for name, (data, encoder_name, options) in LARGER_SETS.items():
        dataset = load_dataset(data)
        whole = dataset.train
        if len(whole) > 3000:  # the benchmarks' training subset (stratified, seed 0)
            whole = whole.subset(stratified_sample(whole.labels, 3000, seed=0))
        encoder = load_encoder(encoder_name, **options)
        X = FeatureCache().features(encoder, whole.inputs, tag=f"{data}/train", progress=False)
        X, y = np.asarray(X, dtype=np.float32), np.asarray(whole.labels)
        for split in range(splits):
            fit_rows, held = stratified_split(y, 1000 / len(y), seed=split)
            order = np.random.default_rng(split).permutation(fit_rows)
            for n in LARGER_SIZES:
                fit = order[:n]
                rule = width_for(n, np.unique(y[fit]).size)
                for projection, m in [("gaussian", 1024)] + [("guided", m) for m in LARGER_WIDTHS]:
                    rows.append(
                        {
                            "data": name,
                            "classes": int(np.unique(y).size),
                            "split": split,
                            "n": n,
                            **held_out_score(projection, m, rule, split, X, y, fit, held),
                        }
                    )
            print(f"larger counts: {name}, split {split} done", flush=True)
    return rows


# ------------------------------------------------------------------------------ layers
LAYER_SETS = {**LARGER_SETS, "fashion-mnist-raw": ("fashion-mnist", "raw", {})}
LAYER_SIZES = (32, 64, 128, 256, 512, 1024, 2000)


def layer_choices(n: int, classes: int) -> dict[str, tuple[str, int]]:
    """The candidate layers of a model made without a width, for n samples of C classes."""
    from forgetless.teachable import DEFAULT_WIDTH, width_for

    return {
        "guided (rule's M)": ("guided", width_for(n, classes)),
        f"gaussian {DEFAULT_WIDTH}": ("gaussian", DEFAULT_WIDTH),
        "none": ("none", 1),
    }


def teachable_learner_score(
    projection: str, m: int, seed: int, X: np.ndarray, y: np.ndarray, fit: np.ndarray, held
) -> dict[str, Any]:
    """The teachable model's learner (its decision rule) on rows ``fit``, scored on ``held``;
    the learner file's size."""
    from forgetless import ContinualClassifier
    from forgetless.teachable import TEACHABLE_DECISION

    clf = ContinualClassifier(
        projection=projection,
        n_components=m,
        alpha="auto",
        decision=TEACHABLE_DECISION,
        random_state=seed,
        projection_params=layer_params(projection),
    )
    start = time.perf_counter()
    quiet_fit(clf, X[fit], y[fit])
    seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "learner.fl"
        clf.save(path)
        size = path.stat().st_size
    return {
        "M": int(clf.projection_.n_outputs),
        "accuracy": float(np.mean(clf.predict(X[held]) == y[held])),
        "fit_seconds": round(seconds, 3),
        "learner_bytes": size,
    }


def layer_rows(X: np.ndarray, y: np.ndarray, splits: int) -> dict[str, list[dict[str, Any]]]:
    """The three layers on held-out training rows (small case by 5-fold CV, larger counts on
    1,000 held-out rows), then on the small case's test images."""
    from forgetless.cache import FeatureCache
    from forgetless.data import load_dataset
    from forgetless.data.base import stratified_sample, stratified_split
    from forgetless.encoders import load_encoder
    from forgetless.teachable import layer_for

    out: dict[str, list[dict[str, Any]]] = {"validation": [], "larger": [], "test": []}

    def run(rows, base, fit, held, seed, data_dim):
        rule_name = "none" if layer_for(data_dim) == "none" else "guided (rule's M)"
        for name, (projection, m) in layer_choices(fit.size, np.unique(y_[fit]).size).items():
            rows.append(
                {
                    **base,
                    "layer": name,
                    "rule_pick": name == rule_name,
                    **teachable_learner_score(projection, m, seed, X_, y_, fit, held),
                }
            )

    X_, y_ = X, y
    for split, per_class, fold, fit, held in inner_folds(y, splits):
        base = {"split": split, "per_class": per_class, "fold": fold, "n": int(fit.size)}
        run(out["validation"], base, fit, held, split, X.shape[1])
    for split in range(splits):
        train_rows, test_rows = split_rows(y, split)
        for per_class in SIZES:
            train = np.sort(train_rows[:, :per_class].ravel())
            base = {"split": split, "per_class": per_class, "n": int(train.size)}
            run(out["test"], base, train, test_rows, split, X.shape[1])
    print("layers: small case done", flush=True)
    for name, (data, encoder_name, options) in LAYER_SETS.items():
        whole = load_dataset(data).train
        if len(whole) > 3000:  # the benchmarks' training subset (stratified, seed 0)
            whole = whole.subset(stratified_sample(whole.labels, 3000, seed=0))
        encoder = load_encoder(encoder_name, **options)
        feats = FeatureCache().features(encoder, whole.inputs, tag=f"{data}/train", progress=False)
        X_, y_ = np.asarray(feats, dtype=np.float32), np.asarray(whole.labels)
        for split in range(min(splits, 2)):
            fit_rows, held = stratified_split(y_, 1000 / len(y_), seed=split)
            order = np.random.default_rng(split).permutation(fit_rows)
            for n in LAYER_SIZES:
                base = {"data": name, "d": int(X_.shape[1]), "split": split, "n": n}
                run(out["larger"], base, order[:n], held, split, X_.shape[1])
            print(f"layers: {name}, split {split} done", flush=True)
    return out


def summarise_layers(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Mean accuracy (%) of each layer per cell, and no layer minus the guided rule."""

    def percent(rows: list[dict]) -> float:
        return round(float(np.mean([100 * r["accuracy"] for r in rows])), 2)

    def cells(group: list[dict], keys: tuple[str, ...]) -> list[dict[str, Any]]:
        out = []
        for key in sorted({tuple(r[k] for k in keys) for r in group}, key=str):
            cell = [r for r in group if tuple(r[k] for k in keys) == key]
            layers = dict.fromkeys(r["layer"] for r in cell)
            acc = {layer: percent([r for r in cell if r["layer"] == layer]) for layer in layers}
            size = {
                layer: int(np.median([r["learner_bytes"] for r in cell if r["layer"] == layer]))
                for layer in acc
            }
            rule = next(r["layer"] for r in cell if r["rule_pick"])
            out.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "n": int(np.median([r["n"] for r in cell])),
                    "accuracy": acc,
                    "learner_bytes": size,
                    "none_minus_guided": round(acc["none"] - acc["guided (rule's M)"], 2),
                    "rule": rule,
                }
            )
        return out

    larger = cells(rows["larger"], ("data", "d", "n"))
    wide = [c for c in larger if c["d"] > 1000] + cells(rows["validation"], ("per_class",))
    return {
        "validation_small_case": cells(rows["validation"], ("per_class",)),
        "larger_counts": larger,
        "test_small_case": cells(rows["test"], ("per_class",)),
        "wide_features_cells": len(wide),
        "wide_none_ahead_by_0_1": sum(c["none_minus_guided"] > 0.1 for c in wide),
        "wide_none_within_0_1": sum(abs(c["none_minus_guided"]) <= 0.1 for c in wide),
        "wide_none_mean_gain": round(float(np.mean([c["none_minus_guided"] for c in wide])), 2),
    }


def width_rows(splits: int) -> list[dict[str, Any]]:
    """The guided layer at every width of the sweep on held-out training rows of narrow
    features (``--widths``), with the width rule's pick marked."""
    from forgetless.cache import FeatureCache
    from forgetless.data import load_dataset
    from forgetless.data.base import stratified_sample, stratified_split
    from forgetless.encoders import load_encoder
    from forgetless.teachable import width_for

    rows = []
    for name, (data, encoder_name, options) in WIDTH_SETS.items():
        whole = load_dataset(data).train
        if len(whole) > 3000:  # the benchmarks' training subset (stratified, seed 0)
            whole = whole.subset(stratified_sample(whole.labels, 3000, seed=0))
        test = load_dataset(data).test
        if len(test) > 2000:
            test = test.subset(stratified_sample(test.labels, 2000, seed=0))
        encoder = load_encoder(encoder_name, **options)
        cache = FeatureCache()
        feats = cache.features(encoder, whole.inputs, tag=f"{data}/train", progress=False)
        X, y = np.asarray(feats, dtype=np.float32), np.asarray(whole.labels)
        feats = cache.features(encoder, test.inputs, tag=f"{data}/test", progress=False)
        X_all = np.concatenate([X, np.asarray(feats, dtype=np.float32)])
        y_all = np.concatenate([y, np.asarray(test.labels)])
        tested = np.arange(len(y), len(y_all))
        held_out = min(1000, len(y) // 3)
        for split in range(splits):
            fit_rows, held = stratified_split(y, held_out / len(y), seed=split)
            order = np.random.default_rng(split).permutation(fit_rows)
            for n in (n for n in WIDTH_SIZES if n <= order.size):
                fit = order[:n]
                rule = width_for(n, np.unique(y[fit]).size)
                for m in WIDTH_SWEEP:
                    score = teachable_learner_score("guided", m, split, X, y, fit, held)
                    score["test_accuracy"] = teachable_learner_score(
                        "guided", m, split, X_all, y_all, fit, tested
                    )["accuracy"]
                    rows.append(
                        {
                            "data": name,
                            "d": int(X.shape[1]),
                            "classes": int(np.unique(y).size),
                            "split": split,
                            "n": n,
                            "M_requested": m,
                            "rule_pick": m == rule,
                            **score,
                        }
                    )
            print(f"widths: {name}, split {split} done", flush=True)
    return rows


def summarise_widths(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per data and size: mean held-out accuracy (%) at each width, the best width, the rule's,
    and the rule's accuracy minus the best's; the test subset's accuracy (for the record)."""

    def percent(group: list[dict], key: str = "accuracy") -> float:
        return round(float(np.mean([100 * r[key] for r in group])), 2)

    cells = []
    for data, n in sorted({(r["data"], r["n"]) for r in rows}, key=str):
        cell = [r for r in rows if r["data"] == data and r["n"] == n]
        widths = sorted({r["M_requested"] for r in cell})
        acc = {m: percent([r for r in cell if r["M_requested"] == m]) for m in widths}
        test = {
            m: percent([r for r in cell if r["M_requested"] == m], "test_accuracy") for m in widths
        }
        best = max(acc, key=lambda m: (acc[m], -m))
        rule = next(r["M_requested"] for r in cell if r["rule_pick"])
        cells.append(
            {
                "data": data,
                "n": n,
                "accuracy": {str(m): a for m, a in acc.items()},
                "test_accuracy": {str(m): a for m, a in test.items()},
                "best_M": best,
                "rule_M": rule,
                "rule_minus_best": round(acc[rule] - acc[best], 2),
                "double_rule_minus_rule": (
                    round(acc[2 * rule] - acc[rule], 2) if 2 * rule in acc else None
                ),
            }
        )
    gaps = [c["rule_minus_best"] for c in cells]
    doubled = [c["double_rule_minus_rule"] for c in cells]
    doubled = [d for d in doubled if d is not None]
    return {
        "cells": cells,
        "rule_minus_best_mean": round(float(np.mean(gaps)), 2),
        "rule_minus_best_worst": round(min(gaps), 2),
        "double_rule_minus_rule_mean": round(float(np.mean(doubled)), 2) if doubled else None,
        "double_rule_minus_rule_worst": round(min(doubled), 2) if doubled else None,
    }


# ------------------------------------------------------------------------------ teachable
def encoded(model: Any, paths: list[str], X: np.ndarray, names: list[str] | None) -> Any:
    """``X`` as features of ``model``'s encoder (they come from the cache, keyed by the same
    encoder fingerprint), with the paths' fingerprints, as ``model.encode(paths)`` would."""
    from forgetless.teach_inputs import Batch
    from forgetless.teachable import Encoded

    batch = Batch("image")
    for i, path in enumerate(paths):
        digest = hashlib.sha256(Path(path).read_bytes()).digest()
        batch.add(path, path, None if names is None else names[i], digest)
    return Encoded(np.ascontiguousarray(X, dtype=np.float32), model.spec, batch)


def ece_with(scores: np.ndarray, truth: np.ndarray, temperature: float) -> float:
    from forgetless.calibration import expected_calibration_error, softmax

    return expected_calibration_error(softmax(scores / temperature), truth)


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.name != ".lock")


def teachable_rows(
    split: int, folder: Path, paths: np.ndarray, X: np.ndarray, y: np.ndarray
) -> list[dict[str, Any]]:
    """The model made without a width and one made with width=1024 (the gaussian layer of
    models made before the rule) learn each training size: accuracy, bytes on disk, seconds."""
    from forgetless import TeachableModel

    train_rows, test_rows = split_rows(y, split)
    names = np.array(CLASSES)
    rows = []
    for per_class in SIZES:
        train = np.sort(train_rows[:, :per_class].ravel())
        for kind, width in (("rule", None), ("gaussian-1024", 1024)):
            path = folder / f"split{split}-{per_class}-{kind}"
            model = TeachableModel.create(path, "efficientnet-lite0", width=width)
            data = encoded(model, paths[train].tolist(), X[train], names[y[train]].tolist())
            start = time.perf_counter()
            model.learn(data)
            seconds = time.perf_counter() - start
            test = encoded(model, paths[test_rows].tolist(), X[test_rows], None)
            scores, _ = model.scores(test)
            truth = np.searchsorted(model.classes, names[y[test_rows]])
            info = model.info()
            rows.append(
                {
                    "split": split,
                    "per_class": per_class,
                    "samples": int(train.size),
                    "model": kind,
                    "projection": model.settings["projection"],
                    "M": model.settings["width"],
                    "accuracy": float(np.mean(scores.argmax(1) == truth)),
                    "bytes_on_disk": folder_bytes(path),
                    "learner_bytes": info["files"][model._learner_ref.file],
                    "learn_seconds": round(seconds, 3),
                }
            )
            shutil.rmtree(path)
    return rows


def teachable_split(
    split: int,
    folder: Path,
    paths: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    width: int | None = None,
    forget: bool = True,
) -> dict[str, Any]:
    """Learn 450 rows (``width`` None: the width from the samples), predict one image right
    after, then (``forget``) forget a class and measure the calibration error with each
    temperature."""
    from forgetless import TeachableModel

    train_rows, test_rows = split_rows(y, split)
    train = np.sort(train_rows.ravel())
    names = np.array(CLASSES)
    tag = "rule" if width is None else f"width{width}"
    model = TeachableModel.create(folder / f"split{split}-{tag}", "efficientnet-lite0", width=width)
    encoder = model.encoder()
    train_set = encoded(model, paths[train].tolist(), X[train], names[y[train]].tolist())
    start = time.perf_counter()
    model.learn(train_set)
    learn_seconds = time.perf_counter() - start
    one = str(paths[test_rows[split]])
    start = time.perf_counter()
    model.predict([one])  # the first predict after learn: encoding one image, one solve
    predict_first = time.perf_counter() - start
    start = time.perf_counter()
    model.predict([str(paths[test_rows[split + 1]])])
    predict_again = time.perf_counter() - start
    start = time.perf_counter()
    encoder.encode([str(paths[test_rows[split + 2]])], progress=False)
    encode_one = time.perf_counter() - start
    start = time.perf_counter()
    TeachableModel.open(model.path).predict([one])
    open_predict = time.perf_counter() - start

    timing = {
        "split": split,
        "model": tag,
        "projection": model.settings["projection"],
        "width": model.settings["width"],
        "samples": int(train.size),
        "learn_seconds": round(learn_seconds, 3),
        "predict_first_seconds": predict_first,
        "predict_again_seconds": predict_again,
        "encode_one_seconds": encode_one,
        "open_and_predict_seconds": open_predict,
        "bytes_after_learn": folder_bytes(model.path),
    }
    if not forget:
        return timing
    test_set = encoded(model, paths[test_rows].tolist(), X[test_rows], None)
    truth = np.searchsorted(model.classes, names[y[test_rows]])
    scores, _ = model.scores(test_set)
    learned_t = model.temperature
    before = {
        "accuracy": float(np.mean(scores.argmax(1) == truth)),
        "temperature": learned_t,
        "ece": ece_with(scores, truth, learned_t),
        "ece_t1": ece_with(scores, truth, 1.0),
    }
    gone = CLASSES[split % len(CLASSES)]
    start = time.perf_counter()
    report = model.forget_classes([gone])
    forget_seconds = time.perf_counter() - start
    left = y[test_rows] != CLASSES.index(gone)
    rest = encoded(model, paths[test_rows[left]].tolist(), X[test_rows[left]], None)
    truth = np.searchsorted(model.classes, names[y[test_rows[left]]])
    scores, _ = model.scores(rest)
    keep = train[y[train] != CLASSES.index(gone)]
    fresh = TeachableModel.create(
        folder / f"split{split}-{tag}-without", "efficientnet-lite0", width=width
    )
    fresh.learn(encoded(fresh, paths[keep].tolist(), X[keep], names[y[keep]].tolist()))
    fresh_scores, _ = fresh.scores(rest)
    after = {
        "forgotten": gone,
        "accuracy": float(np.mean(scores.argmax(1) == truth)),
        "temperature_refitted": report.calibration["refitted"],
        "temperature": model.temperature,
        "held_out": report.calibration.get("held_out"),
        "ece_refitted": ece_with(scores, truth, model.temperature),
        "ece_kept_from_learn": ece_with(scores, truth, learned_t),
        "ece_t1": ece_with(scores, truth, 1.0),
        "fresh_temperature": fresh.temperature,
        "fresh_ece": ece_with(fresh_scores, truth, fresh.temperature),
        "fresh_accuracy": float(np.mean(fresh_scores.argmax(1) == truth)),
        "forget_seconds": round(forget_seconds, 3),
        "width_after": model.settings["width"],
        "fresh_width": fresh.settings["width"],
        # while the layer grows, the forget rebuilds it: exactly the model never taught it
        "identical_to_never_taught": bool(
            np.array_equal(scores, fresh_scores) and model.temperature == fresh.temperature
        ),
    }
    return {
        **timing,
        "bytes_after_forget": folder_bytes(model.path),
        "before_forgetting": before,
        "after_forgetting": after,
    }


# ------------------------------------------------------------------------------ summary
def mean_std(values: list[float]) -> dict[str, float]:
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "n": len(values),
    }


def summarise_validation(rows: list[dict]) -> list[dict[str, Any]]:
    """Per training size: mean held-out accuracy (over splits and folds) of each width, the
    best guided width, and the rule's pick."""
    out = []
    for per_class in SIZES:
        cell = [r for r in rows if r["per_class"] == per_class]
        if not cell:
            continue
        entry: dict[str, Any] = {"per_class": per_class, "inner_n": cell[0]["n"]}
        scores = {}
        for method, m in sorted({(r["method"], r["M"]) for r in cell}):
            hits = [100 * r["accuracy"] for r in cell if (r["method"], r["M"]) == (method, m)]
            scores[f"{method} M={m}"] = round(float(np.mean(hits)), 2)
        entry["accuracy"] = scores
        guided = {k: v for k, v in scores.items() if k.startswith("guided")}
        entry["best_guided"] = max(guided, key=guided.get)
        picks = [r for r in cell if r["rule_pick"]]
        entry["rule_pick"] = f"guided M={picks[0]['M']}"
        entry["rule_accuracy"] = round(float(np.mean([100 * r["accuracy"] for r in picks])), 2)
        entry["rule_minus_best_guided"] = round(
            entry["rule_accuracy"] - guided[entry["best_guided"]], 2
        )
        entry["rule_minus_gaussian_M1024"] = round(
            entry["rule_accuracy"] - scores["gaussian M=1024"], 2
        )
        out.append(entry)
    return out


def summarise_larger(rows: list[dict]) -> list[dict[str, Any]]:
    out = []
    for name in LARGER_SETS:
        for n in LARGER_SIZES:
            cell = [r for r in rows if r["data"] == name and r["n"] == n]
            if not cell:
                continue
            scores = {}
            for method, m in sorted({(r["method"], r["M"]) for r in cell}):
                hits = [100 * r["accuracy"] for r in cell if (r["method"], r["M"]) == (method, m)]
                scores[f"{method} M={m}"] = round(float(np.mean(hits)), 2)
            picks = [r for r in cell if r["rule_pick"]]
            rule = round(float(np.mean([100 * r["accuracy"] for r in picks])), 2)
            out.append(
                {
                    "data": name,
                    "classes": cell[0]["classes"],
                    "n": n,
                    "accuracy": scores,
                    "rule_pick": f"guided M={picks[0]['M']}",
                    "rule_accuracy": rule,
                    "rule_minus_gaussian_M1024": round(rule - scores["gaussian M=1024"], 2),
                    "rule_fit_seconds": float(np.median([r["fit_seconds"] for r in picks])),
                    "gaussian_M1024_fit_seconds": float(
                        np.median([r["fit_seconds"] for r in cell if r["method"] == "gaussian"])
                    ),
                }
            )
    return out


def summarise_models(rows: list[dict]) -> list[dict[str, Any]]:
    out = []
    for per_class in SIZES:
        entry: dict[str, Any] = {"per_class": per_class}
        for kind in ("rule", "gaussian-1024"):
            hits = [r for r in rows if r["per_class"] == per_class and r["model"] == kind]
            if not hits:
                continue
            entry["samples"] = hits[0]["samples"]
            entry[kind] = {
                "M": sorted({r["M"] for r in hits}),
                "projection": sorted({r["projection"] for r in hits}),
                "accuracy": mean_std([r["accuracy"] for r in hits]),
                "bytes_on_disk_median": float(np.median([r["bytes_on_disk"] for r in hits])),
                "learner_bytes_median": float(np.median([r["learner_bytes"] for r in hits])),
                "learn_seconds_median": float(np.median([r["learn_seconds"] for r in hits])),
            }
        out.append(entry)
    return out


def summarise_timing(teach: list[dict]) -> dict[str, Any]:
    first = [t["predict_first_seconds"] for t in teach]
    return {
        "model": teach[0]["model"],
        "projection": teach[0]["projection"],
        "width": teach[0]["width"],
        "samples": teach[0]["samples"],
        "repeats": len(first),
        "first_predict_seconds_median": statistics.median(first),
        "first_predict_seconds_max": max(first),
        "again_seconds_median": statistics.median(t["predict_again_seconds"] for t in teach),
        "encode_one_seconds_median": statistics.median(t["encode_one_seconds"] for t in teach),
        "open_and_predict_seconds_median": statistics.median(
            t["open_and_predict_seconds"] for t in teach
        ),
        "learn_seconds_median": statistics.median(t["learn_seconds"] for t in teach),
        "bytes_after_learn_median": statistics.median(t["bytes_after_learn"] for t in teach),
    }


def summarise(
    runs: list[dict],
    teach: list[dict],
    old_default: list[dict] | None = None,
    models: list[dict] | None = None,
    validation: list[dict] | None = None,
    larger: list[dict] | None = None,
) -> dict[str, Any]:
    table = []
    for per_class in SIZES:
        cell: dict[str, Any] = {"per_class": per_class, "samples": per_class * len(CLASSES)}
        keys = sorted({(r["method"], r["M_requested"]) for r in runs}, key=str)
        for method, m in keys:
            hits = [
                r
                for r in runs
                if (r["method"], r["M_requested"], r["per_class"])
                == (
                    method,
                    m,
                    per_class,
                )
            ]
            if not hits:
                continue
            name = method if m is None else f"{method} M={m}"
            cell[name] = {
                "accuracy": mean_std([r["accuracy"] for r in hits]),
                "bytes": hits[0].get("bytes"),
                "fit_seconds": float(np.median([r["fit_seconds"] for r in hits])),
            }
        table.append(cell)
    guided = []
    for cell in table:
        reference = cell.get("gaussian M=1024", {}).get("accuracy", {}).get("mean")
        for m in GUIDED_WIDTHS:
            g, r = cell.get(f"guided M={m}"), cell.get(f"gaussian M={m}")
            if g is None or r is None:
                continue
            guided.append(
                {
                    "samples": cell["samples"],
                    "M": m,
                    "guided": g["accuracy"]["mean"],
                    "gaussian_same_M": r["accuracy"]["mean"],
                    "gaussian_M1024": reference,
                    "guided_minus_gaussian_same_M": g["accuracy"]["mean"] - r["accuracy"]["mean"],
                    "guided_minus_gaussian_M1024": None
                    if reference is None
                    else g["accuracy"]["mean"] - reference,
                    "guided_bytes": g["bytes"],
                }
            )
    out: dict[str, Any] = {"width_table": table, "guided_at_small_widths": guided}
    if validation:
        out["validation"] = summarise_validation(validation)
    if larger:
        out["larger_counts"] = summarise_larger(larger)
    if models:
        out["rule_vs_old_default"] = summarise_models(models)
    if teach:
        after = [t["after_forgetting"] for t in teach]
        before = [t["before_forgetting"] for t in teach]
        out["predict_after_learn"] = summarise_timing(teach)
        if old_default:
            out["predict_after_learn_old_default"] = summarise_timing(old_default)
        out["forget_one_class"] = {
            "model": teach[0]["model"],
            "width_before": teach[0]["width"],
            "width_after": sorted({a["width_after"] for a in after}),
            "identical_to_never_taught_in": sum(a["identical_to_never_taught"] for a in after),
            "splits": len(after),
            "ece_before": mean_std([b["ece"] for b in before]),
            "ece_before_t1": mean_std([b["ece_t1"] for b in before]),
            "accuracy_before": mean_std([b["accuracy"] for b in before]),
            "refitted_in": sum(a["temperature_refitted"] for a in after),
            "ece_after_refitted": mean_std([a["ece_refitted"] for a in after]),
            "ece_after_kept_from_learn": mean_std([a["ece_kept_from_learn"] for a in after]),
            "ece_after_t1": mean_std([a["ece_t1"] for a in after]),
            "ece_model_never_taught_it": mean_std([a["fresh_ece"] for a in after]),
            "accuracy_after": mean_std([a["accuracy"] for a in after]),
            "max_relative_gap_refitted_vs_never_taught_temperature": max(
                abs(a["temperature"] - a["fresh_temperature"]) / a["fresh_temperature"]
                for a in after
            ),
        }
    return out


# ------------------------------------------------------------------------------ main
def write_study(
    args: Any, started: float, flags: str, settings: dict, summary: Any, rows: Any
) -> None:
    """One study's JSON (``--layers``, ``--widths``): what ran, where, when, and its rows."""
    import forgetless

    if args.shrinkage is not None:
        flags += f" --shrinkage {args.shrinkage}"
    doc = {
        "benchmark": f"teachable_small {flags.split()[0]}",
        "command": f"python benchmarks/teachable_small.py {flags}",
        "guided_layer_params": dict(LAYER_PARAMS),
        "library_version": forgetless.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} thread(s) used",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "settings": settings,
        "summary": summary,
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")


def shrinkage_setting(text: str) -> str | float:
    """``--shrinkage``: "oas" or a number in [0, 1], checked as the layer checks it."""
    from forgetless.layers.kernel import check_kernel_settings

    value: str | float = text
    if text != "oas":
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'oas' or a number in [0, 1], not {text!r}") from None
    try:
        return check_kernel_settings({"shrinkage": value})["shrinkage"]
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=5, help="random splits (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads")
    parser.add_argument("--no-guided", action="store_true", help="skip the guided layer")
    parser.add_argument("--no-teachable", action="store_true", help="skip predict and forget")
    parser.add_argument(
        "--no-validation", action="store_true", help="skip the cross-validation in training"
    )
    parser.add_argument(
        "--no-larger", action="store_true", help="skip the built-in datasets' larger counts"
    )
    parser.add_argument(
        "--layers", action="store_true", help="which layer on today's features (its own JSON)"
    )
    parser.add_argument(
        "--widths", action="store_true", help="the width rule on narrow features (its own JSON)"
    )
    parser.add_argument("--out", default=None, help="the JSON file (default: by mode)")
    parser.add_argument(
        "--shrinkage",
        default=None,
        type=shrinkage_setting,
        help="the guided layer's shrinkage instead of the teachable model's: 'oas' or [0, 1]",
    )
    args = parser.parse_args()
    from forgetless.teachable import TEACHABLE_LAYER_PARAMS

    LAYER_PARAMS.update(TEACHABLE_LAYER_PARAMS)
    if args.shrinkage is not None:
        LAYER_PARAMS["shrinkage"] = args.shrinkage
    default = "teachable_layers.json" if args.layers else "teachable_small.json"
    default = "teachable_widths.json" if args.widths else default
    args.out = args.out or str(RESULTS / default)
    from threadpoolctl import threadpool_limits

    import forgetless
    from forgetless.linalg import IllConditionedWarning
    from forgetless.teachable import WIDTH_RULE, build_encoder

    started = time.time()
    with threadpool_limits(args.threads):
        import torch

        torch.set_num_threads(args.threads)
        if args.widths:
            splits = min(args.splits, 3)
            rows = width_rows(splits)
            write_study(
                args,
                started,
                "--widths",
                {
                    "sets": {k: list(v[:2]) + [v[2]] for k, v in WIDTH_SETS.items()},
                    "sizes": list(WIDTH_SIZES),
                    "widths": list(WIDTH_SWEEP),
                    "splits": splits,
                    "width_rule": WIDTH_RULE,
                    "held_out": "1,000 rows of the 3,000-row training subset (a third of digits' "
                    "training split), stratified, seed=split; the test subset (2,000 rows, "
                    "stratified, seed 0; digits' whole test split) scored for the record",
                    "learner": "ContinualClassifier('guided', n_components=M, alpha='auto', "
                    "decision=TEACHABLE_DECISION, random_state=split): the teachable model's",
                },
                summarise_widths(rows),
                rows,
            )
            return
        paths, y = images()
        encoder = build_encoder("efficientnet-lite0", {})  # the instance TeachableModel uses
        start = time.perf_counter()
        X, cache_root = features(encoder, paths)
        encode_seconds = time.perf_counter() - start
        print(f"{len(paths)} images, features {X.shape} in {encode_seconds:.0f} s", flush=True)
        if args.layers:
            rows = layer_rows(X, y, args.splits)
            write_study(
                args,
                started,
                "--layers" + (f" --splits {args.splits}" if args.splits != 5 else ""),
                {
                    "small_case": f"openclipart top folders {list(CLASSES)}, {encoder.describe()}, "
                    f"features {X.shape[1]}; 5-fold CV inside each split's training images "
                    f"({list(SIZES)} per class), then its {TEST_PER_CLASS} test images per class",
                    "larger_counts": {k: list(v[:2]) + [v[2]] for k, v in LAYER_SETS.items()},
                    "sizes": list(LAYER_SIZES),
                    "held_out": "1000 rows of the 3,000-row training subset, stratified, "
                    "seed=split (test subsets unread)",
                    "learner": "ContinualClassifier(projection, n_components=M, alpha='auto', "
                    "decision='regression', random_state=split): the teachable model's",
                },
                summarise_layers(rows),
                rows,
            )
            return
        paths_array = np.array(paths)
        runs, teach, old_default, models = [], [], [], []
        validation = [] if args.no_validation else validation_rows(X, y, args.splits)
        larger = [] if args.no_larger else larger_rows(min(args.splits, 2))
        for split in range(args.splits):
            train_rows, test_rows = split_rows(y, split)
            for per_class in SIZES:
                train = np.sort(train_rows[:, :per_class].ravel())
                data = (X[train], y[train], X[test_rows], y[test_rows])
                grid = [("gaussian", m) for m in WIDTHS]
                grid += [] if args.no_guided else [("guided", m) for m in GUIDED_WIDTHS]
                for projection, m in grid:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", IllConditionedWarning)
                        row = learner_row(projection, m, split, data)
                    runs.append({"split": split, "per_class": per_class, "M_requested": m, **row})
                for row in logistic_rows(data):
                    runs.append(
                        {"split": split, "per_class": per_class, "M_requested": None, **row}
                    )
                line = ", ".join(
                    f"{r['method'][:8]} {r['M_requested'] or ''} {100 * r['accuracy']:.1f}"
                    for r in runs
                    if r["split"] == split and r["per_class"] == per_class
                )
                print(f"split {split}, {per_class}/class: {line}", flush=True)
            if not args.no_teachable:
                with tempfile.TemporaryDirectory() as folder:
                    models += teachable_rows(split, Path(folder), paths_array, X, y)
                    result = teachable_split(split, Path(folder), paths_array, X, y)
                    old_default.append(
                        teachable_split(
                            split, Path(folder), paths_array, X, y, width=1024, forget=False
                        )
                    )
                teach.append(result)
                a = result["after_forgetting"]
                print(
                    f"split {split}: width {result['width']}, predict after learn "
                    f"{result['predict_first_seconds']:.3f} s (width 1024: "
                    f"{old_default[-1]['predict_first_seconds']:.3f} s);"
                    f" forgot {a['forgotten']}: ECE {100 * a['ece_refitted']:.1f} % (refitted)"
                    f" / {100 * a['ece_kept_from_learn']:.1f} % (learn's T) / "
                    f"{100 * a['fresh_ece']:.1f} % (never taught)",
                    flush=True,
                )
    doc = {
        "benchmark": "teachable_small",
        "command": "python benchmarks/teachable_small.py"
        + (f" --splits {args.splits}" if args.splits != 5 else "")
        + (" --no-guided" if args.no_guided else "")
        + (" --no-teachable" if args.no_teachable else "")
        + (" --no-validation" if args.no_validation else "")
        + (" --no-larger" if args.no_larger else ""),
        "library_version": forgetless.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), {args.threads} "
        "thread(s) used",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "settings": {
            "dataset": "openclipart, depth 1 (top folders)",
            "classes": list(CLASSES),
            "images_per_class": PER_CLASS,
            "test_per_class": TEST_PER_CLASS,
            "train_per_class": list(SIZES),
            "encoder": encoder.describe(),
            "feature_cache": cache_root,
            "encode_seconds": round(encode_seconds, 1),
            "widths": list(WIDTHS),
            "guided_widths": [] if args.no_guided else list(GUIDED_WIDTHS),
            "learner": "ContinualClassifier(projection, n_components=M, alpha='auto', "
            "random_state=split)",
            "logistic_regression": "LogisticRegression(max_iter=5000); StandardScaler + "
            "LogisticRegression(C=0.1, max_iter=5000)",
            "splits": args.splits,
            "width_rule": WIDTH_RULE,
            "validation_widths": list(VALIDATION_WIDTHS),
            "validation": "5-fold StratifiedKFold(shuffle, random_state=split) inside each "
            "split's training images",
            "larger_counts": {
                "sets": {k: list(v[:2]) + [v[2]] for k, v in LARGER_SETS.items()},
                "sizes": list(LARGER_SIZES),
                "guided_widths": list(LARGER_WIDTHS),
                "held_out": "1000 rows of the 3,000-row training subset, stratified, seed=split",
                "splits": min(args.splits, 2),
            },
        },
        "summary": summarise(runs, teach, old_default, models, validation, larger),
        "runs": runs,
        "teachable": teach,
        "teachable_old_default": old_default,
        "teachable_models": models,
        "validation": validation,
        "larger_counts": larger,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, separators=(",", ":")) + "\n")  # compact
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
