"""Guided against random projection layers (and the OWM head); writes JSON. Not a test.

    python benchmarks/guided.py                   # 5 datasets, both protocols, seeds 0 1 2
    python benchmarks/guided.py --encode-only     # fill the feature cache and stop
    python benchmarks/guided.py --datasets wordnet-minilm --protocols 5-equal --seeds 0

Protocols, on features from a frozen encoder (cached) of a stratified subset of each dataset, with
the class order drawn from the seed: ``5-equal`` splits the classes into 5 equal class-incremental
tasks; ``half-first`` gives task 1 half of the classes (as B50 protocols do) and splits the rest
into 5 tasks. Each learner sees the tasks in turn through ``partial_fit`` (``alpha="auto"``, the
library default) and is scored on the test split of all classes at the end. The guided layer is
built on task 1 only and then frozen (variants: ``guided``, the default kernel method with 2 M
landmarks up to 4000; ``guided-nm``, N = M landmarks; ``guided-units``, the earlier data-shaped
random units; ``guided-select``, pure SCN selection, whose width is capped by task 1's sample
count); the seed also draws every layer. For every run: final accuracy, accuracy on the task-1
classes and on the later classes, seconds to build the layer and to fit (all tasks plus the head
solve), and the condition number of G + lambda I at the chosen lambda (LAPACK estimate from its
Cholesky factor). Summaries average over seeds. Results are written after every run, so an
interrupted run keeps what it did (and a rerun skips what is there).

``--validation`` never reads the test split: each seed holds out a stratified fifth of the
training subset (seed = seed), runs the protocol on the other four fifths and scores the fifth
(how the guided layer's settings, ``flatten``, ``linear`` and ``shrinkage``, were chosen):

    python benchmarks/guided.py --validation --layers guided-shrink0 guided-flatten \
        guided-whitened --m 1000 2000 --protocols 5-equal \
        --out benchmarks/results/guided_flatten_validation.json
    python benchmarks/guided.py --validation --layers guided-shrink0 guided-linear1 \
        guided-linear3 guided-linear10 --m 1000 2000 --protocols 5-equal \
        --out benchmarks/results/guided_linear_validation.json
    python benchmarks/guided.py --validation --layers guided-shrink0 guided-shrink0.1 \
        guided-shrink0.3 guided-oas gaussian none --m 1000 2000 --protocols 5-equal \
        --out benchmarks/results/guided_shrinkage_validation.json

``guided`` is always the library's default layer. Since ``shrinkage="oas"`` became the default,
the unshrunk layer that result files written before call ``guided`` is ``guided-shrink0``; the
variants of those studies (nm, flatten, whitened, linear) keep ``shrinkage=0``.
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
    # name: (dataset, encoder, encoder options, train size, test size, train rows used); the
    # subsets are those other benchmarks cache (stratified, seed 0), so features are shared
    "fashion-mnist-effnet": (
        "fashion-mnist",
        "efficientnet-lite0",
        {"image_size": 112},
        3000,
        1000,
        None,
    ),
    "openclipart-effnet": (
        "openclipart",
        "efficientnet-lite0",
        {"image_size": 112},
        3000,
        1000,
        None,
    ),
    "wordnet-minilm": ("wordnet", "minilm", {}, 12000, 3000, 6000),
    "latin-glyphs-effnet": (
        "latin-glyphs",
        "efficientnet-lite0",
        {"image_size": 112},
        3100,
        1240,
        None,
    ),
    "fashion-mnist-raw": ("fashion-mnist", "raw", {}, 10000, 2000, None),
}
M_GRID = (125, 250, 500, 1000, 2000, 4000, 8000)
GUIDED_GRID = (125, 250, 500, 1000, 2000)
SELECT_GRID = (125, 500, 2000)  # the pure SCN selection of earlier versions, for comparison
PROTOCOLS = ("5-equal", "half-first")
RANDOM = ("gaussian", "orthogonal", "hadamard")
# guided variants: name -> projection_params (the default first)
VARIANTS: dict[str, dict[str, Any]] = {
    "guided": {},  # the default: method "kernel", n_landmarks = 2 M (up to 4000), shrinkage "oas"
    # studies made before shrinkage existed keep it at 0, so their commands repeat their files
    "guided-nm": {"n_landmarks": "M", "shrinkage": 0.0},  # N = M landmarks (one Cholesky)
    "guided-flatten": {"flatten": 0.5, "shrinkage": 0.0},  # the spectrum to the power 1/2
    "guided-whitened": {"flatten": 1.0, "shrinkage": 0.0},  # whitened on the landmarks
    # the linear kernel x . x' added to the ReLU kernel (pi |x|^2 at x = x') with this weight
    "guided-linear1": {"linear": 1.0, "shrinkage": 0.0},
    "guided-linear3": {"linear": 3.0, "shrinkage": 0.0},
    "guided-linear10": {"linear": 10.0, "shrinkage": 0.0},
    # the class population's covariances shrunk toward isotropic ones (landmarks beyond the
    # first batch's span)
    "guided-shrink0": {"shrinkage": 0.0},  # the default before "oas" (the older JSONs' "guided")
    "guided-shrink0.1": {"shrinkage": 0.1},
    "guided-shrink0.3": {"shrinkage": 0.3},
    "guided-oas": {"shrinkage": "oas"},
    "guided-oas-flatten": {"shrinkage": "oas", "flatten": 0.5},
    "guided-oas-whitened": {"shrinkage": "oas", "flatten": 1.0},
    "guided-units": {"method": "units"},  # the previous default: data-shaped random units
    "guided-select": {
        "method": "units",
        "base": 0.0,
        "input_norm": "none",
        "weights": "isotropic",
    },
}
OWN_CACHE = "/tmp/fl-cache-guided"


def features(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cached encoder features of a stratified subset: (X_train, y_train, X_test, y_test).

    Read from the shared cache when it holds the entry complete; anything new is encoded into
    ``$FORGETLESS_GUIDED_CACHE`` (default /tmp/fl-cache-guided), never into a shared entry."""
    import dataclasses
    import os

    from forgetless.cache import FeatureCache, dataset_features
    from forgetless.data import load_dataset, stratified_sample
    from forgetless.encoders import load_encoder

    dataset, encoder_name, options, n_train, n_test, used = DATASETS[name]
    ds = load_dataset(dataset)
    for split, size in (("train", n_train), ("test", n_test)):
        whole = getattr(ds, split)
        rows = stratified_sample(whole.labels, min(size, len(whole.labels)), seed=0)
        ds = dataclasses.replace(ds, **{split: whole.subset(rows)})
    encoder = load_encoder(encoder_name, **options)
    shared = FeatureCache()

    def complete(split: Any) -> bool:
        path = shared.root / shared.key(encoder, split.inputs)[:32] / "manifest.json"
        try:
            return bool(json.loads(path.read_text()).get("complete"))
        except (OSError, ValueError):
            return False

    own = FeatureCache(os.environ.get("FORGETLESS_GUIDED_CACHE", OWN_CACHE))
    cache = shared if complete(ds.train) and complete(ds.test) else own
    if cache is own and encoder_name != "raw" and not os.environ.get("FORGETLESS_GUIDED_ENCODE"):
        own_ok = all(
            (own.root / own.key(encoder, sp.inputs)[:32] / "manifest.json").exists()
            for sp in (ds.train, ds.test)
        )
        if not own_ok:
            raise LookupError(
                f"{name}: features not cached yet (set FORGETLESS_GUIDED_ENCODE=1 to encode)"
            )
    Xtr, Xte = dataset_features(encoder, ds, cache, progress=False)
    ytr, yte = np.asarray(ds.train.labels), np.asarray(ds.test.labels)
    Xtr, Xte = np.asarray(Xtr, dtype=np.float64), np.asarray(Xte, dtype=np.float64)
    if used is not None and used < ytr.size:  # a stratified part of the cached rows
        keep = np.sort(stratified_sample(ytr, used, seed=0))
        Xtr, ytr = Xtr[keep], ytr[keep]
    return Xtr, ytr, Xte, yte


def tasks_of(y: np.ndarray, protocol: str, seed: int) -> list[np.ndarray]:
    """Row masks of the tasks, in order."""
    classes = np.random.default_rng(seed).permutation(np.unique(y))
    if protocol == "half-first":
        half = classes.size // 2
        parts = [classes[:half], *np.array_split(classes[half:], 5)]
    else:
        parts = np.array_split(classes, 5)
    return [np.isin(y, part) for part in parts]


def validation_data(data: tuple[np.ndarray, ...], seed: int) -> tuple[np.ndarray, ...]:
    """(four fifths of the training subset, its labels, the other fifth, its labels): the
    fifth stratified by class and drawn with ``seed``; the test split is not used."""
    from forgetless.data import stratified_sample

    X, y = data[0], data[1]
    held = np.zeros(y.size, dtype=bool)
    held[stratified_sample(y, y.size // 5, seed=seed)] = True
    return X[~held], y[~held], X[held], y[held]


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
    if projection in VARIANTS:
        settings = {k: (m if v == "M" else v) for k, v in VARIANTS[projection].items()}
        kw["projection_params"] = settings or None
    clf = ContinualClassifier(
        projection="guided" if projection in VARIANTS else projection,
        n_components=m,
        head=head,
        random_state=seed,
        **kw,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        tic = time.perf_counter()
        for mask in masks:
            clf.partial_fit(Xtr[mask], ytr[mask])
        coef = clf.coef_  # solves the head (GCV for ridge)
        total = time.perf_counter() - tic
    layer = clf.projection_
    if projection in VARIANTS:
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
        "decision": getattr(clf.head_, "decision_", None),  # the ridge head's rule in use
        "per_class_correct": per_class,
    }
    if head == "ridge":
        # the matrix the head factorises: G centred (fit_intercept) + lambda I; and raw G + lambda I
        stats = clf.statistics_
        mean = stats.feature_sum / stats.n_samples
        for key, gram in (
            ("condition", stats.gram - stats.n_samples * np.outer(mean, mean)),
            ("condition_raw", stats.gram),
        ):
            upper = HOST.shifted_cholesky(gram, clf.alpha_)
            norm1 = HOST.norm1(gram) + clf.alpha_
            out[key] = math.inf if upper is None else HOST.condition(upper, norm1)
    if projection in VARIANTS:
        out["guided_stop_reason"] = layer.report.get("stop_reason")
        out["guided_selected_units"] = layer.report.get("n_selected_units")
        out["guided_weights"] = layer.report.get("weights_chosen")
        out["guided_samples"] = layer.report["n_guiding_samples"]
        out["guided_shrinkage"] = layer.report.get("shrinkage")  # (B, W) intensities
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
            if not rows:
                continue
            ms = sorted({r["M_requested"] for r in rows if r["head"] == "ridge"})
            lines += [
                f"**{name}, {protocol}** (n_train={entry['n_train']}, task 1 = "
                f"{block.get('n_task1')} samples, {entry['n_classes']} classes): final accuracy, "
                "mean over seeds (guided: requested M; its actual width is capped by task 1)",
                "",
                "| layer | " + " | ".join(str(m) for m in ms) + " |",
                "|---" * (len(ms) + 1) + "|",
            ]
            for kind in (*VARIANTS, *RANDOM):
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


def merge(result: dict[str, Any], others: list[dict[str, Any]]) -> None:
    """Add the runs of ``others`` to ``result`` (one run per layer, head, M and seed), reuse
    random-layer ridge runs across protocols (they end at the same joint model) and recompute
    the summaries."""
    for other in others:
        for key in ("library_version", "numpy", "machine", "protocols", "method"):
            result.setdefault(key, other.get(key))
        for name, entry in other.get("datasets", {}).items():
            mine = result["datasets"].setdefault(name, {})
            for key, value in entry.items():
                if key != "protocols":
                    mine[key] = value
            for protocol, block in entry.get("protocols", {}).items():
                target = mine.setdefault("protocols", {}).setdefault(protocol, {})
                target.setdefault("n_task1", block.get("n_task1"))
                runs = target.setdefault("runs", [])
                have = {(r["projection"], r["head"], r["M_requested"], r["seed"]) for r in runs}
                for r in block.get("runs", []):
                    if (r["projection"], r["head"], r["M_requested"], r["seed"]) not in have:
                        runs.append(r)
    for name, entry in result["datasets"].items():
        y = None
        for protocol in PROTOCOLS:
            block = entry.setdefault("protocols", {}).setdefault(protocol, {"runs": []})
            runs = block.setdefault("runs", [])
            have = {(r["projection"], r["head"], r["M_requested"], r["seed"]) for r in runs}
            for other, b in entry["protocols"].items():
                for r in list(b.get("runs", [])) if other != protocol else []:
                    key = (r["projection"], r["head"], r["M_requested"], r["seed"])
                    if r["projection"] not in RANDOM or r["head"] != "ridge" or key in have:
                        continue
                    if y is None:
                        y = features(name)[1]
                    reused = dict(r, reused_from_other_protocol=True)
                    reused.update(_split_accuracy((None, y), reused, protocol, r["seed"]))
                    runs.append(reused)
                    have.add(key)
            if runs:
                block.setdefault("n_task1", int(tasks_of(features(name)[1], protocol, 0)[0].sum()))
                block["summary"] = summarize(runs)


def accuracy_table(result: dict[str, Any], protocol: str = "5-equal") -> str:
    """One Markdown table: final accuracy (%) against M per dataset and layer, mean over seeds;
    a cell from fewer than 3 seeds shows how many in brackets."""
    ms = sorted({*M_GRID, *GUIDED_GRID})
    lines = [
        "| features | layer | " + " | ".join(str(m) for m in ms) + " |",
        "|---|---|" + "---|" * len(ms),
    ]
    for name, entry in result["datasets"].items():
        runs = entry.get("protocols", {}).get(protocol, {}).get("runs", [])
        first = True
        for kind in (*VARIANTS, *RANDOM):
            cells = []
            for m in ms:
                acc = [
                    r["accuracy"]
                    for r in runs
                    if r["projection"] == kind and r["head"] == "ridge" and r["M_requested"] == m
                ]
                note = "" if len(acc) >= 3 or not acc else f" ({len(acc)})"
                cells.append(f"{100 * np.mean(acc):.1f}{note}" if acc else "")
            if any(cells):
                lines.append(f"| {name if first else ''} | {kind} | " + " | ".join(cells) + " |")
                first = False
    return "\n".join(lines)


def split_table(result: dict[str, Any], protocol: str = "5-equal", ms=(500, 2000)) -> str:
    """Guided against gaussian at equal M: first-task / later-task accuracy (%), cond of the
    matrix the head factorises, build and fit seconds (means over the seeds both have)."""
    lines = [
        "| features | M | layer | seeds | first-task | later | final | cond(G+λI) | build s "
        "| fit s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in result["datasets"].items():
        runs = entry.get("protocols", {}).get(protocol, {}).get("runs", [])
        for m in ms:
            by = {
                k: {r["seed"]: r for r in runs if r["projection"] == k and r["M_requested"] == m}
                for k in ("guided", "gaussian")
            }
            seeds = sorted(set(by["guided"]) & set(by["gaussian"]))
            for k in ("guided", "gaussian"):
                rs = [by[k][s] for s in seeds]
                if not rs:
                    continue

                def mean(key: str, rs: list = rs) -> float:
                    return float(np.mean([r[key] for r in rs]))

                geo = float(np.exp(np.mean(np.log([r["condition"] for r in rs]))))
                lines.append(
                    f"| {name} | {m} | {k} | {len(rs)} | "
                    f"{100 * mean('accuracy_task1_classes'):.1f} | "
                    f"{100 * mean('accuracy_later_classes'):.1f} | {100 * mean('accuracy'):.1f} | "
                    f"{geo:.1e} | {mean('build_seconds'):.1f} | {mean('fit_seconds'):.1f} |"
                )
    return "\n".join(lines)


def timing(data: tuple[np.ndarray, ...], repeats: int = 2) -> dict[str, Any]:
    """Seconds, in one process, for the 5-equal run of seed 0: guided at M = 1000 and 2000 (build
    and fit) against gaussian at M = 2000, 4000 and 8000 (fit), each the fastest of ``repeats``
    runs. Meant for a quiet machine (the accuracy runs share theirs with whatever else runs)."""
    out: dict[str, Any] = {}
    for projection, m in (
        ("guided", 1000),
        ("guided", 2000),
        ("gaussian", 2000),
        ("gaussian", 4000),
        ("gaussian", 8000),
    ):
        best = min(
            (run(data, projection, m, seed=0) for _ in range(repeats)),
            key=lambda r: r["build_seconds"] + r["fit_seconds"],
        )
        out[f"{projection}-{m}"] = {
            key: best[key] for key in ("build_seconds", "fit_seconds", "accuracy", "M")
        }
        print(projection, m, out[f"{projection}-{m}"], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--encode-only", action="store_true")
    parser.add_argument(
        "--max-m-others",
        type=int,
        default=2000,
        help="largest M for orthogonal and hadamard (gaussian always to 8000)",
    )
    parser.add_argument(
        "--layers",
        nargs="+",
        default=[*VARIANTS, *RANDOM, "owm"],
        choices=[*VARIANTS, *RANDOM, "owm", "none"],
        help="none: the ridge on the features themselves (no layer; M = their width)",
    )
    parser.add_argument("--max-m", type=int, default=8000, help="largest M for random layers")
    parser.add_argument(
        "--m", type=int, nargs="+", help="only these widths, for every layer (a cheaper run)"
    )
    parser.add_argument("--min-m", type=int, default=0, help="smallest M for random layers")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(RESULTS / "guided.json"))
    parser.add_argument(
        "--validation",
        action="store_true",
        help="score a held-out fifth of the training subset, not the test split",
    )
    parser.add_argument("--tables", action="store_true", help="print the tables of --out and stop")
    parser.add_argument(
        "--timing",
        action="store_true",
        help="time guided (1000, 2000) against gaussian (2000, 4000, 8000), seed 0, quietly",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        help="add the runs of these result files to --out (random-layer "
        "runs of one protocol are reused for the other) and stop",
    )
    args = parser.parse_args()
    path = Path(args.out)
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
    if args.tables:
        print(markdown(result))
        for protocol in PROTOCOLS:
            print(f"\n{protocol}\n\n{accuracy_table(result, protocol)}\n")
            print(split_table(result, protocol))
        return
    if args.merge:
        merge(result, [json.loads(Path(p).read_text()) for p in args.merge])
        path.write_text(json.dumps(result, sort_keys=True, separators=(",", ":")) + "\n")
        print(markdown(result))
        return
    result.update(
        scored_on=(
            "validation: a stratified fifth of the training subset held out per seed"
            if args.validation
            else "the test split"
        ),
        library_version=__version__,
        numpy=np.__version__,
        machine=platform.platform(),
        protocols={
            "5-equal": "5 equal class-incremental tasks",
            "half-first": "task 1 = half of the classes, then 5 equal tasks",
        },
        method="alpha='auto' (the library default); guided built on task 1 and frozen; "
        "seed = class order + layer; condition = cond(centred G + lambda I)",
    )
    for name in args.datasets:
        try:
            data = features(name)
        except LookupError as exc:
            print(exc, flush=True)
            continue
        print(name, "features", data[0].shape, data[2].shape, flush=True)
        if args.encode_only:
            continue
        entry = result["datasets"].setdefault(name, {})
        if args.timing:
            entry["timing"] = timing(data)
            path.write_text(json.dumps(result, sort_keys=True, separators=(",", ":")) + "\n")
            continue
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
                seed_data = validation_data(data, seed) if args.validation else data
                n_first = int(tasks_of(seed_data[1], protocol, seed)[0].sum())
                block.setdefault("n_task1", n_first)
                plan = [
                    (v, m)
                    for v in VARIANTS
                    if v in args.layers
                    for m in (
                        SELECT_GRID if v in ("guided-units", "guided-select") else GUIDED_GRID
                    )
                ]
                for kind in RANDOM:
                    limit = 8000 if kind == "gaussian" else args.max_m_others
                    limit = min(limit, args.max_m)
                    plan += [
                        (kind, m)
                        for m in M_GRID
                        if args.min_m <= m <= limit and kind in args.layers
                    ]
                plan += [("owm", 1000)] if "owm" in args.layers else []
                if args.m:
                    plan = [(kind, m) for kind, m in plan if m in args.m]
                plan += [("none", int(data[0].shape[1]))] if "none" in args.layers else []
                done = {(r["projection"], r["head"], r["M_requested"], r["seed"]) for r in runs}
                # A random layer with the ridge head ends at the joint model whatever the task
                # split (exactness), so its run under another protocol is reused, not redone.
                same_end = {
                    (r["projection"], r["M_requested"], r["seed"]): r
                    for other, b in entry["protocols"].items()
                    if other != protocol
                    for r in b.get("runs", [])
                    if r["projection"] in RANDOM
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
                        r.update(_split_accuracy(seed_data, r, protocol, seed))
                    else:
                        r = run(seed_data, projection, m, head, seed, protocol)
                        print(name, protocol, json.dumps(r), flush=True)
                    runs.append(r)
                    block["summary"] = summarize(runs)  # reused runs are written too
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(
                        json.dumps(result, sort_keys=True, separators=(",", ":")) + "\n"
                    )  # compact


if __name__ == "__main__":
    main()
