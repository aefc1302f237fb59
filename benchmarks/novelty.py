"""The teachable model's 'unknown' answer: inputs of classes it never learned, rejected or not.

    python benchmarks/novelty.py            # -> benchmarks/results/novelty.json

For each built-in dataset (the benchmarks' stratified 3,000 / 1,000 subsets, seed 0, so the
feature cache is shared with benchmarks/calibration.py) the first half of the classes (sorted)
is learned and the second half is never seen. The model keeps, per class, the sum of its
samples' unit-length encoder features; an input's distance is 1 - its cosine to the nearest
class mean, and ``predict --reject-unknown`` answers 'unknown' beyond the 99th percentile of the
learned samples' leave-one-out distances (each sample measured against the class means without
it), exactly as ``forgetless learn`` calibrates it. Measured on the test subset:

* known inputs wrongly rejected (test samples of the learned classes; about 1 % by design), and
  every rate again at ``--unknown-quantile 0.95`` (``_q95``);
* unknown inputs rejected: *near* (the held-out classes of the same dataset) and *far* (another
  dataset through the same encoder: Fashion-MNIST for openclipart and back, noise for digits);
* AUROC of the distance, and of the calibrated top probability (``--reject-below``) for
  comparison, over known vs unknown test inputs;
* the accuracy of the learner on the known classes (the gaussian layer at M = 1024 of a model
  made with ``--width 1024``, as a new model).

``--learner default`` (-> ``novelty_default.json``) gives the top probability and the accuracy
the learner a model made without a width builds for these samples (as
``benchmarks/calibration.py --learner default``: no layer on the encoders' default readouts,
the guided layer at the width rule's M on raw 8 x 8 digits). The distances do not depend on it.

    python benchmarks/novelty.py --learner default
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from forgetless.cache import dataset_features
from forgetless.calibration import fit_temperature_held_out, full_scores, softmax
from forgetless.data import load_dataset
from forgetless.encoders import load_encoder
from forgetless.novelty import (
    NOVELTY_QUANTILE,
    leave_one_out_distances,
    novelty_distances,
    unit_rows,
)

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "digits / raw": ("digits", "raw", {}, "noise"),
    "fashion-mnist / efficientnet-lite0 (112 px)": (
        "fashion-mnist",
        "efficientnet-lite0",
        {"image_size": 112},
        "openclipart",
    ),
    "openclipart / efficientnet-lite0 (112 px)": (
        "openclipart",
        "efficientnet-lite0",
        {"image_size": 112},
        "fashion-mnist",
    ),
    "wordnet / minilm": ("wordnet", "minilm", {}, None),
}


def _calibration():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import calibration

    return calibration


def features(data: str, encoder_name: str, options: dict):
    subset = _calibration().subset

    dataset = subset(load_dataset(data))
    encoder = load_encoder(encoder_name, **options)
    X_train, X_test = dataset_features(encoder, dataset, progress=False)
    return dataset, X_train, X_test


def measure(
    name: str,
    data: str,
    encoder_name: str,
    options: dict,
    far: str | None,
    learner: str = "gaussian-1024",
) -> dict:
    dataset, X_train, X_test = features(data, encoder_name, options)
    c = len(dataset.classes)
    known_train = dataset.train.labels < c // 2
    known_test = dataset.test.labels < c // 2
    X, y = X_train[known_train], dataset.train.labels[known_train]
    names = np.array(dataset.classes, dtype=object).astype(str)

    # What the model keeps and how it calibrates (teachable.TeachableModel.learn).
    U = unit_rows(X)
    counts = np.bincount(y, minlength=c // 2)
    sums = np.stack([U[y == k].sum(0) for k in range(c // 2)])
    loo, _ = leave_one_out_distances(sums, counts, U, y)
    threshold = float(np.quantile(loo, NOVELTY_QUANTILE))
    threshold_95 = float(np.quantile(loo, 0.95))  # --unknown-quantile 0.95
    distance = novelty_distances(sums, counts, unit_rows(X_test))

    clf = _calibration().make_learner(learner, X.shape[1], len(y), c // 2)
    clf.partial_fit(X, names[y])
    width = int(clf.projection_.n_outputs)
    fitted = fit_temperature_held_out(clf, X, names[y])
    if not isinstance(fitted, tuple):  # too few rows, or a fit at an end of T's range
        raise SystemExit(f"no temperature for this case: {fitted or 'too few samples'}")
    temperature = fitted[0]
    scores = full_scores(clf, X_test)
    top = softmax(scores / temperature).max(axis=1)
    accuracy = float(
        np.mean(
            clf.classes_[scores.argmax(1)][known_test] == names[dataset.test.labels][known_test]
        )
    )

    unknown = ~known_test
    result = {
        "classes_learned": c // 2,
        "classes_unknown": c - c // 2,
        "train": int(len(y)),
        "test_known": int(known_test.sum()),
        "test_unknown_near": int(unknown.sum()),
        "learner": learner,
        "projection": clf.projection,
        "width": width,
        "accuracy_known": accuracy,
        "threshold": threshold,
        "known_rejected": float(np.mean(distance[known_test] > threshold)),
        "near_unknown_rejected": float(np.mean(distance[unknown] > threshold)),
        "known_rejected_q95": float(np.mean(distance[known_test] > threshold_95)),
        "near_unknown_rejected_q95": float(np.mean(distance[unknown] > threshold_95)),
        "auroc_near_distance": float(roc_auc_score(unknown, distance)),
        "auroc_near_top_probability": float(roc_auc_score(unknown, -top)),
    }
    if far is not None:
        if far == "noise":
            rng = np.random.default_rng(0)
            images = rng.integers(0, 256, size=(500, 8, 8)).astype(np.uint8)
            X_far = load_encoder(encoder_name, **options).encode(images, progress=False)
        else:
            _, _, X_far = features(far, encoder_name, options)
            X_far = X_far[:500]
        d_far = novelty_distances(sums, counts, unit_rows(X_far))
        top_far = softmax(full_scores(clf, X_far) / temperature).max(axis=1)
        truth = np.r_[np.zeros(known_test.sum()), np.ones(len(X_far))]
        result.update(
            {
                "far": far,
                "test_unknown_far": len(X_far),
                "far_unknown_rejected": float(np.mean(d_far > threshold)),
                "far_unknown_rejected_q95": float(np.mean(d_far > threshold_95)),
                "auroc_far_distance": float(
                    roc_auc_score(truth, np.r_[distance[known_test], d_far])
                ),
                "auroc_far_top_probability": float(
                    roc_auc_score(truth, -np.r_[top[known_test], top_far])
                ),
            }
        )
    print(
        f"{name}: known rejected {100 * result['known_rejected']:.1f} %, near unknown rejected "
        f"{100 * result['near_unknown_rejected']:.1f} %"
        + (f", far ({far}) rejected {100 * result['far_unknown_rejected']:.1f} %" if far else ""),
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=list(CASES))
    parser.add_argument("--learner", choices=["gaussian-1024", "default"], default="gaussian-1024")
    parser.add_argument("--out", help="default: novelty.json, or novelty_default.json")
    args = parser.parse_args()
    name = "novelty.json" if args.learner == "gaussian-1024" else "novelty_default.json"
    out = Path(args.out or ROOT / "benchmarks/results" / name)
    results = {case: measure(case, *CASES[case], learner=args.learner) for case in args.cases}
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
