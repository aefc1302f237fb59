"""Guided against random projection layers (and the OWM head); writes JSON. Not a test.

    python benchmarks/guided.py                   # 3 encoder datasets, both protocols, seeds 0 1 2
    python benchmarks/guided.py --encode-only     # fill the feature cache and stop
    python benchmarks/guided.py --datasets wordnet-minilm --protocols 5-equal --seeds 0

Protocols, on features from a frozen encoder (cached) of a stratified subset of each dataset,
with the class order drawn from the seed: ``5-equal`` splits the classes into 5 equal
class-incremental tasks; ``half-first`` gives task 1 half of the classes (as B50 protocols do)
and splits the rest into 5 tasks. Each learner sees the tasks in turn through ``partial_fit``
(alpha by GCV) and is scored on the test split of all classes at the end. The guided layer is
selected on task 1 only (so its width is capped by that task's sample count) and then frozen; the
seed also draws every layer. For every run: final accuracy, accuracy on the task-1 classes and on
the later classes, seconds to build the layer and to fit (all tasks plus the head solve), and the
condition number of G + lambda I at the chosen lambda (LAPACK estimate from its Cholesky factor).
Summaries average over seeds. Results are written after every run, so an interrupted run keeps
what it did (and a rerun skips what is there).
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
from forgetless.layers import RandomProjection
from forgetless.linalg import HOST, IllConditionedWarning

RESULTS = Path(__file__).parent / "results"
DATASETS = {
    # name: (dataset, encoder, train size, test size)
    "wordnet-minilm": ("wordnet", "minilm", 6000, 2000),
    "fashion-mnist-effnet": ("fashion-mnist", "efficientnet-lite0", 3000, 1000),
    "openclipart-effnet": ("openclipart", "efficientnet-lite0", 3000, 1000),
    "fashion-mnist-raw": ("fashion-mnist", "raw", 10000, 2000),
}
M_GRID = (250, 500, 1000, 2000, 4000, 8000)
GUIDED_GRID = (125, 250, 500, 1000, 2000)
PROTOCOLS = ("5-equal", "half-first")


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


def tasks_of(y: np.ndarray, protocol: str, seed: int) -> list[np.ndarray]:
    """Row masks of the tasks, in order."""
    classes = np.random.default_rng(seed).permutation(np.unique(y))
    if protocol == "half-first":
        half = classes.size // 2
        parts = [classes[:half], *np.array_split(classes[half:], 5)]
    else:
        parts = np.array_split(classes, 5)
    return [np.isin(y, part) for part in parts]


def run(
    data: tuple[np.ndarray, ...],
    projection: str,
    m: int,
    head: str = "ridge",
    seed: int = 0,
    protocol: str = "5-equal",
) -> dict[str, Any]:
    Xtr, ytr, Xte, yte = data
    masks = tasks_of(ytr, protocol, seed)
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
    per_class = {
        str(c): [int((pred[yte == c] == c).sum()), int((yte == c).sum())] for c in np.unique(yte)
    }
    old = np.isin(yte, first)
    out = {
        "projection": projection,
        "head": head,
        "seed": seed,
        "M_requested": m,
        "M": int(layer.n_outputs),
        "accuracy": float((pred == yte).mean()),
        "accuracy_task1_classes": float((pred[old] == yte[old]).mean()),
        "accuracy_later_classes": float((pred[~old] == yte[~old]).mean()),
        "alpha": clf.alpha_,
        "build_seconds": build,
        "fit_seconds": total - build,
        "coef_norm": float(np.linalg.norm(coef)),
        "per_class_correct": per_class,
    }
    if head == "ridge":
        factored = HOST.shifted_cholesky(clf.statistics_.gram, clf.alpha_)
        out["condition"] = math.inf if factored is None else HOST.condition(*factored)
    if projection == "guided":
        out["guided_stop_reason"] = layer.report["stop_reason"]
        out["guided_samples"] = layer.report["n_guiding_samples"]
    return out


def _split_accuracy(
    data: tuple[np.ndarray, ...], r: dict[str, Any], protocol: str, seed: int
) -> dict[str, float]:
    """Accuracy on task-1 classes and on later ones from a run's per-class counts."""
    first = {str(c) for c in np.unique(data[1][tasks_of(data[1], protocol, seed)[0]])}
    counts = r["per_class_correct"]
    old = np.array([v for c, v in counts.items() if c in first]).reshape(-1, 2).sum(0)
    new = np.array([v for c, v in counts.items() if c not in first]).reshape(-1, 2).sum(0)
    return {
        "accuracy_task1_classes": float(old[0] / max(old[1], 1)),
        "accuracy_later_classes": float(new[0] / max(new[1], 1)),
    }


def mean_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (layer, head, requested M): numeric fields averaged over seeds (with the
    accuracy's standard deviation)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["projection"], r["head"], r["M_requested"]), []).append(r)
    rows = []
    for (projection, head, m), group in sorted(groups.items()):
        row: dict[str, Any] = {"projection": projection, "head": head, "M_requested": m}
        for key in ("M", "accuracy", "accuracy_task1_classes", "accuracy_later_classes"):
            row[key] = float(np.mean([r[key] for r in group]))
        for key in ("build_seconds", "fit_seconds", "condition"):
            if all(key in r for r in group):
                row[key] = float(np.exp(np.mean(np.log([max(r[key], 1e-12) for r in group]))))
        row["accuracy_std"] = float(np.std([r["accuracy"] for r in group]))
        row["seeds"] = sorted(r["seed"] for r in group)
        rows.append(row)
    return rows


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The M guided needs to match gaussian at its largest M, and both conditions there
    (seed means; times and conditions as geometric means)."""
    rows = mean_runs(runs)
    gauss = [r for r in rows if r["projection"] == "gaussian" and r["head"] == "ridge"]
    guided = sorted((r for r in rows if r["projection"] == "guided"), key=lambda r: r["M"])
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
    # equal width: guided against gaussian at the same requested M
    same = {r["M_requested"]: r for r in gauss}
    out["at_equal_M"] = [
        {
            "M": g["M"],
            "guided": g["accuracy"],
            "gaussian": same[g["M_requested"]]["accuracy"],
            "guided_condition": g.get("condition"),
            "gaussian_condition": same[g["M_requested"]].get("condition"),
            "guided_later_classes": g["accuracy_later_classes"],
            "gaussian_later_classes": same[g["M_requested"]]["accuracy_later_classes"],
        }
        for g in guided
        if g["M_requested"] in same and abs(g["M"] - g["M_requested"]) < 1
    ]
    return out


def markdown(result: dict[str, Any]) -> str:
    """Mean accuracy against M per dataset, protocol and layer, then the summary, as Markdown."""
    lines = []
    for name, entry in result["datasets"].items():
        for protocol, block in entry.get("protocols", {}).items():
            rows = mean_runs(block.get("runs", []))
            ms = sorted({r["M_requested"] for r in rows if r["head"] == "ridge"})
            lines += [
                f"**{name}, {protocol}** (n_train={entry['n_train']}, task 1 = "
                f"{block['n_task1']} samples, {entry['n_classes']} classes): final accuracy, "
                "mean over seeds (guided: requested M; its actual width is capped by task 1)",
                "",
                "| layer | " + " | ".join(str(m) for m in ms) + " |",
                "|---" * (len(ms) + 1) + "|",
            ]
            for kind in ("guided", "gaussian", "orthogonal", "hadamard"):
                acc = {
                    r["M_requested"]: r["accuracy"]
                    for r in rows
                    if r["projection"] == kind and r["head"] == "ridge"
                }
                if acc:
                    cells = [f"{acc[m]:.3f}" if m in acc else "" for m in ms]
                    lines.append(f"| {kind} | " + " | ".join(cells) + " |")
            lines += ["", "```", json.dumps(block.get("summary", {}), indent=1), "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS)[:3], choices=list(DATASETS))
    parser.add_argument("--encode-only", action="store_true")
    parser.add_argument(
        "--max-m-others",
        type=int,
        default=8000,
        help="largest M for orthogonal and hadamard (gaussian always to 8000)",
    )
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(RESULTS / "guided.json"))
    parser.add_argument("--tables", action="store_true", help="print the tables of --out and stop")
    args = parser.parse_args()
    path = Path(args.out)
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
    if args.tables:
        print(markdown(result))
        return
    result.update(
        library_version=__version__,
        numpy=np.__version__,
        machine=platform.platform(),
        protocols={
            "5-equal": "5 equal class-incremental tasks",
            "half-first": "task 1 = half of the classes, then 5 equal tasks",
        },
        method="alpha by GCV; guided selected on task 1 and frozen; seed = class order + layer",
    )
    for name in args.datasets:
        data = features(name)
        print(name, "features", data[0].shape, data[2].shape, flush=True)
        if args.encode_only:
            continue
        entry = result["datasets"].setdefault(name, {})
        entry.update(
            n_train=int(data[0].shape[0]),
            n_test=int(data[2].shape[0]),
            n_features=int(data[0].shape[1]),
            n_classes=int(np.unique(data[1]).size),
        )
        for protocol in args.protocols:
            block = entry.setdefault("protocols", {}).setdefault(protocol, {})
            runs = block.setdefault("runs", [])
            for seed in args.seeds:
                n_first = int(tasks_of(data[1], protocol, seed)[0].sum())
                block.setdefault("n_task1", n_first)
                # the guided width is capped by task 1's sample count: that cap is the last point
                # (asked for more, it stops at the cap: one run asks for the largest width)
                plan = [("guided", m) for m in GUIDED_GRID if m < n_first]
                plan += [("guided", max(GUIDED_GRID))] if n_first < max(GUIDED_GRID) else []
                for kind in ("gaussian", "orthogonal", "hadamard"):
                    limit = 8000 if kind == "gaussian" else args.max_m_others
                    plan += [(kind, m) for m in M_GRID if m <= limit]
                plan += [("owm", 1000)]
                done = {(r["projection"], r["head"], r["M_requested"], r["seed"]) for r in runs}
                # A random layer with the ridge head ends at the joint model whatever the task
                # split (exactness), so its run under another protocol is reused, not redone.
                same_end = {
                    (r["projection"], r["M_requested"], r["seed"]): r
                    for other, b in entry["protocols"].items()
                    if other != protocol
                    for r in b.get("runs", [])
                    if r["projection"] != "guided"
                    and r["head"] == "ridge"
                    and "per_class_correct" in r
                }
                for kind, m in plan:
                    projection, head = ("gaussian", "owm") if kind == "owm" else (kind, "ridge")
                    if (projection, head, m, seed) in done:
                        continue
                    if head == "ridge" and (projection, m, seed) in same_end:
                        r = dict(same_end[projection, m, seed], reused_from_other_protocol=True)
                        r.pop("accuracy_task1_classes"), r.pop("accuracy_later_classes")
                        r.update(_split_accuracy(data, r, protocol, seed))
                        runs.append(r)
                        continue
                    r = run(data, projection, m, head, seed, protocol)
                    runs.append(r)
                    print(name, protocol, json.dumps(r), flush=True)
                    block["summary"] = summarize(runs)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(
                        json.dumps(result, sort_keys=True, separators=(",", ":")) + "\n"
                    )  # compact


if __name__ == "__main__":
    main()
