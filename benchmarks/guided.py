"""Guided against random projection layers (and the OWM head); writes JSON. Not a test.

    python benchmarks/guided.py                   # all datasets (encodes once into the cache)
    python benchmarks/guided.py --encode-only     # fill the feature cache and stop
    python benchmarks/guided.py --datasets wordnet-minilm --max-m-others 2000

Protocol: features from a frozen encoder (cached), a stratified subset of each dataset, classes
split into 5 equal class-incremental tasks in a fixed random order (seed 0); each learner sees
the tasks in turn through ``partial_fit`` (alpha by GCV), and is scored on the test split of all
classes at the end. The guided layer is selected on task 1 only (so its width is capped by that
task's sample count) and then frozen. For every run: final accuracy, accuracy on the task-1
classes and on the later classes, seconds to build the layer and to fit (all tasks plus the head
solve), and the condition number of G + lambda I at the chosen lambda (LAPACK estimate from its
Cholesky factor). Results are written after every run, so an interrupted run keeps what it did.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from forgetless import ContinualClassifier, __version__
from forgetless.heads import HOST, IllConditionedWarning
from forgetless.projection import RandomProjection

RESULTS = Path(__file__).parent / "results"
DATASETS = {
    # name: (dataset, encoder, train size, test size)
    "wordnet-minilm": ("wordnet", "minilm", 6000, 2000),
    "fashion-mnist-effnet": ("fashion-mnist", "efficientnet-lite0", 1000, 500),
    "openclipart-effnet": ("openclipart", "efficientnet-lite0", 1000, 500),
    "fashion-mnist-raw": ("fashion-mnist", "raw", 10000, 2000),
}
M_GRID = (250, 500, 1000, 2000, 4000, 8000)
GUIDED_GRID = (125, 250, 500, 1000, 2000)


def features(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cached encoder features of a stratified subset: (X_train, y_train, X_test, y_test)."""
    from forgetless.cache import FeatureCache
    from forgetless.data import load_dataset, stratified_sample
    from forgetless.encoders import load_encoder

    dataset, encoder_name, n_train, n_test = DATASETS[name]
    ds = load_dataset(dataset)
    encoder = load_encoder(encoder_name)
    cache = FeatureCache()
    out = []
    for split, size in ((ds.train, n_train), (ds.test, n_test)):
        labels = np.asarray(split.labels)
        rows = np.sort(stratified_sample(labels, min(size, labels.size), seed=0))
        inputs = split.inputs
        subset = inputs[rows] if isinstance(inputs, np.ndarray) else [inputs[i] for i in rows]
        X = cache.features(encoder, subset, tag=f"{dataset}/{len(rows)}", progress=False)
        out += [np.asarray(X, dtype=np.float64), labels[rows]]
    return out[0], out[1], out[2], out[3]


def tasks_of(y: np.ndarray, n_tasks: int = 5) -> list[np.ndarray]:
    classes = np.random.default_rng(0).permutation(np.unique(y))
    return [np.isin(y, part) for part in np.array_split(classes, n_tasks)]


def run(
    data: tuple[np.ndarray, ...], projection: str, m: int, head: str = "ridge", seed: int = 0
) -> dict[str, Any]:
    Xtr, ytr, Xte, yte = data
    masks = tasks_of(ytr)
    first = np.unique(ytr[masks[0]])
    kw: dict[str, Any] = {"alpha": 1.0} if head == "owm" else {}
    clf = ContinualClassifier(
        projection=projection, n_components=m, head=head, random_state=seed, **kw
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        tic = time.perf_counter()
        for mask in masks:
            clf.partial_fit(Xtr[mask], ytr[mask])
        coef = clf.coef_  # solves the head (GCV for ridge)
        total = time.perf_counter() - tic
    layer = clf.projection_
    if projection == "guided":
        build = float(layer.fit_seconds)
    else:  # the learner builds it inside the first partial_fit: time the same construction
        tic = time.perf_counter()
        RandomProjection(projection, Xtr.shape[1], m, seed)
        build = time.perf_counter() - tic
    pred = clf.predict(Xte)
    old = np.isin(yte, first)
    out = {
        "projection": projection,
        "head": head,
        "M_requested": m,
        "M": int(layer.n_outputs),
        "accuracy": float((pred == yte).mean()),
        "accuracy_task1_classes": float((pred[old] == yte[old]).mean()),
        "accuracy_later_classes": float((pred[~old] == yte[~old]).mean()),
        "alpha": clf.alpha_,
        "build_seconds": build,
        "fit_seconds": total - build,
        "coef_norm": float(np.linalg.norm(coef)),
    }
    if head == "ridge":
        factored = HOST.shifted_cholesky(clf.statistics_.gram, clf.alpha_)
        out["condition"] = math.inf if factored is None else HOST.condition(*factored)
    if projection == "guided":
        out["guided_stop_reason"] = layer.report["stop_reason"]
        out["guided_samples"] = layer.report["n_guiding_samples"]
    return out


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The M guided needs to match gaussian at its largest M, and both conditions there."""
    gauss = [r for r in runs if r["projection"] == "gaussian" and r["head"] == "ridge"]
    guided = sorted((r for r in runs if r["projection"] == "guided"), key=lambda r: r["M"])
    if not gauss or not guided:
        return {}
    ref = max(gauss, key=lambda r: r["M"])
    match = next((r for r in guided if r["accuracy"] >= ref["accuracy"]), None)
    best = max(guided, key=lambda r: r["accuracy"])
    out = {
        "gaussian_reference_M": ref["M"],
        "gaussian_reference_accuracy": ref["accuracy"],
        "gaussian_reference_condition": ref.get("condition"),
        "guided_best_M": best["M"],
        "guided_best_accuracy": best["accuracy"],
        "guided_M_matching_reference": match["M"] if match else None,
    }
    # equal accuracy: the smallest gaussian that reaches the best guided accuracy
    eq = sorted((r for r in gauss if r["accuracy"] >= best["accuracy"]), key=lambda r: r["M"])
    if eq:
        out["gaussian_M_matching_guided_best"] = eq[0]["M"]
        out["condition_at_equal_accuracy"] = {
            "guided": best.get("condition"),
            "gaussian": eq[0].get("condition"),
        }
        out["seconds_at_equal_accuracy"] = {
            "guided_build_plus_fit": best["build_seconds"] + best["fit_seconds"],
            "gaussian_build_plus_fit": eq[0]["build_seconds"] + eq[0]["fit_seconds"],
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    """Accuracy against M per dataset and layer, then the summary, as Markdown tables."""
    lines = []
    for name, entry in result["datasets"].items():
        runs = entry.get("runs", [])
        ms = sorted({r["M"] for r in runs if r["head"] == "ridge"})
        lines += [
            f"**{name}** (n_train={entry['n_train']}, task 1 = {entry['n_task1']} samples, "
            f"{entry['n_classes']} classes): final accuracy",
            "",
            "| layer | " + " | ".join(str(m) for m in ms) + " |",
            "|---" * (len(ms) + 1) + "|",
        ]
        for kind in ("guided", "gaussian", "orthogonal", "hadamard"):
            acc = {
                r["M"]: r["accuracy"]
                for r in runs
                if r["projection"] == kind and r["head"] == "ridge"
            }
            if acc:
                cells = [f"{acc[m]:.3f}" if m in acc else "" for m in ms]
                lines.append(f"| {kind} | " + " | ".join(cells) + " |")
        lines += ["", "```", json.dumps(entry.get("summary", {}), indent=1), "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--encode-only", action="store_true")
    parser.add_argument(
        "--max-m-others",
        type=int,
        default=8000,
        help="largest M for orthogonal and hadamard (gaussian always to 8000)",
    )
    parser.add_argument("--out", default=str(RESULTS / "guided.json"))
    parser.add_argument(
        "--merge",
        nargs="+",
        default=[],
        help="JSON files of other runs to merge into --out, then print tables",
    )
    args = parser.parse_args()
    path = Path(args.out)
    if args.merge:
        result = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
        for other in args.merge:
            result["datasets"].update(json.loads(Path(other).read_text())["datasets"])
        path.write_text(json.dumps(result, indent=1, sort_keys=True))
        print(markdown(result))
        return
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
    result.update(
        library_version=__version__,
        numpy=np.__version__,
        machine=platform.platform(),
        protocol="5 equal class-incremental tasks, seed 0, alpha by GCV, guided on task 1",
    )
    for name in args.datasets:
        data = features(name)
        print(name, "features", data[0].shape, data[2].shape, flush=True)
        if args.encode_only:
            continue
        n_first = int(tasks_of(data[1])[0].sum())
        # the guided width is capped by task 1's sample count: that cap is the last point
        plan = [("guided", m) for m in sorted({min(m, n_first) for m in GUIDED_GRID})]
        plan += [("gaussian", m) for m in M_GRID]
        for kind in ("orthogonal", "hadamard"):
            plan += [(kind, m) for m in M_GRID if m <= args.max_m_others]
        plan += [("owm", 1000)]
        entry = result["datasets"].setdefault(name, {})
        entry.update(
            n_train=int(data[0].shape[0]),
            n_test=int(data[2].shape[0]),
            n_features=int(data[0].shape[1]),
            n_classes=int(np.unique(data[1]).size),
            n_task1=n_first,
        )
        done = {(r["projection"], r["head"], r["M_requested"]) for r in entry.get("runs", [])}
        runs = entry.setdefault("runs", [])
        for kind, m in plan:
            projection, head = ("gaussian", "owm") if kind == "owm" else (kind, "ridge")
            if (projection, head, m) in done:
                continue
            r = run(data, projection, m, head)
            runs.append(r)
            print(name, json.dumps(r), flush=True)
            entry["summary"] = summarize(runs)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
