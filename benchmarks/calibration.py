"""Calibration of the teachable model's probabilities: ECE before and after its temperature.

    python benchmarks/calibration.py            # -> benchmarks/results/calibration.json
    python benchmarks/calibration.py --learner default   # -> calibration_default.json

For each built-in dataset (stratified 3,000 / 1,000 subsets, seed 0, as the other
benchmarks, so the feature cache is shared), a learner with the teachable model's settings
(gaussian ReLU layer, M = 1024, ridge with GCV lambda) learns the training subset; the
temperature is fitted exactly as ``forgetless learn`` fits it (a copy of the learner forgets a
stratified fifth of the data in hand and scores it); expected calibration error (15 equal-width
bins), negative log-likelihood and mean top probability are measured on the test subset with
T = 1 (plain softmax of the scores) and with the fitted T.

``--learner default`` uses the learner a model made without a width builds on those 3,000
samples instead (:func:`forgetless.teachable.layer_for`: no layer on the encoders' 1,904 and
2,304 features; the guided kernel layer at the width rule's M on raw 8 x 8 digits), with the
teachable model's regression decision.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from forgetless.cache import dataset_features
from forgetless.calibration import (
    expected_calibration_error,
    fit_temperature_held_out,
    full_scores,
    softmax,
)
from forgetless.data import load_dataset
from forgetless.data.base import stratified_sample
from forgetless.encoders import load_encoder
from forgetless.learner import ContinualClassifier
from forgetless.teachable import DEFAULT_WIDTH, TEACHABLE_DECISION, layer_for, width_for

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "digits / raw": ("digits", "raw", {}),
    "fashion-mnist / efficientnet-lite0 (112 px)": (
        "fashion-mnist",
        "efficientnet-lite0",
        {"image_size": 112},
    ),
    "openclipart / efficientnet-lite0 (112 px)": (
        "openclipart",
        "efficientnet-lite0",
        {"image_size": 112},
    ),
    "wordnet / minilm": ("wordnet", "minilm", {}),
}


def subset(dataset, train: int = 3000, test: int = 1000):
    """The benchmarks' subsets: stratified, seed 0 for both splits."""
    for split, size in (("train", train), ("test", test)):
        whole = getattr(dataset, split)
        if size < len(whole):
            rows = stratified_sample(whole.labels, size, seed=0)
            dataset = dataclasses.replace(dataset, **{split: whole.subset(rows)})
    return dataset


def make_learner(
    kind: str, n_features: int, n: int, classes: int, decision: str = TEACHABLE_DECISION
) -> ContinualClassifier:
    """``"gaussian-1024"``: models made with ``--width 1024`` (and before the width rule);
    ``"default"``: what a model made without a width builds for these samples."""
    if kind == "gaussian-1024":
        return ContinualClassifier(
            projection="gaussian", n_components=DEFAULT_WIDTH, random_state=0
        )
    layer = layer_for(n_features)
    return ContinualClassifier(
        projection=layer,
        n_components=width_for(n, classes) if layer == "guided" else n_features,
        decision=decision,
        random_state=0,
    )


def measure(
    name: str,
    data: str,
    encoder_name: str,
    options: dict,
    learner: str = "gaussian-1024",
    decision: str = TEACHABLE_DECISION,
) -> dict:
    dataset = subset(load_dataset(data))
    encoder = load_encoder(encoder_name, **options)
    X_train, X_test = dataset_features(encoder, dataset, progress=False)
    names = np.array(dataset.classes, dtype=object).astype(str)
    y_train, y_test = names[dataset.train.labels], names[dataset.test.labels]
    start = time.perf_counter()
    clf = make_learner(learner, X_train.shape[1], len(y_train), np.unique(y_train).size, decision)
    clf.partial_fit(X_train, y_train)
    clf.alpha_  # noqa: B018  (the refit)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fitted = fit_temperature_held_out(clf, X_train, y_train)
    if not isinstance(fitted, tuple):  # too few rows, or a fit at an end of T's range
        raise SystemExit(f"no temperature for this case: {fitted or 'too few samples'}")
    temperature, held_out, _ = fitted
    calibration_seconds = time.perf_counter() - start
    scores = full_scores(clf, X_test)
    truth = np.searchsorted(clf.classes_, y_test)
    result = {
        "learner": {
            "projection": clf.projection,
            "M": int(clf.projection_.n_outputs),
            "decision": clf.head_.decision_,
        },
        "train": len(y_train),
        "test": len(y_test),
        "classes": int(clf.classes_.size),
        "accuracy": float(np.mean(scores.argmax(1) == truth)),
        "alpha": float(clf.alpha_),
        "temperature": temperature,
        "held_out": held_out,
        "fit_seconds": round(fit_seconds, 2),
        "calibration_seconds": round(calibration_seconds, 2),
    }
    for label, t in (("before", 1.0), ("after", temperature)):
        proba = softmax(scores / t)
        result[label] = {
            "ece": expected_calibration_error(proba, truth),
            "nll": float(-np.mean(np.log(proba[np.arange(len(truth)), truth] + 1e-300))),
            "mean_top_probability": float(proba.max(1).mean()),
        }
    print(
        f"{name}: accuracy {100 * result['accuracy']:.1f} %, T = {temperature:.3g}, ECE "
        f"{100 * result['before']['ece']:.1f} -> {100 * result['after']['ece']:.1f} %",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=list(CASES))
    parser.add_argument("--learner", choices=["gaussian-1024", "default"], default="gaussian-1024")
    parser.add_argument(
        "--decision",
        choices=["regression", "auto"],
        default=TEACHABLE_DECISION,
        help="the ridge head's decision rule (--learner default only; the teachable model's: "
        "regression)",
    )
    parser.add_argument("--out", help="default: calibration.json, or calibration_default.json")
    args = parser.parse_args()
    name = "calibration.json" if args.learner == "gaussian-1024" else "calibration_default.json"
    args.out = args.out or str(ROOT / "benchmarks/results" / name)
    results = {
        name: measure(name, *CASES[name], learner=args.learner, decision=args.decision)
        for name in args.cases
    }
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
