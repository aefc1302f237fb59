"""What the encoder reads out: its last map only, or earlier stages too. Not a test.

    python benchmarks/readout.py                               # 3 image datasets, seeds 0-2
    python benchmarks/readout.py --datasets wordnet --seeds 0
    python benchmarks/readout.py --validation                  # a fifth of the training subset
    python benchmarks/readout.py --layers --datasets latin-glyphs wordnet   # layer or none

Each dataset runs as in ``benchmarks/adaptation.py`` (the configs' subsets and class-incremental
steps, class order from the seed, orthogonal layer of width 2000, images at 112 px) for
``forgetless`` (ridge), ``ncm`` and ``lda``, once with the encoder's default readout and once
with the other one (``EfficientNetLite0(readout="stages")``: the head's average and three
earlier stages' averages, each divided by its own norm; ``MiniLM(readout="layers")``: the mean
of the last layer and of earlier layers, each divided by its own norm). Both runs see the same
class order. Results go to ``benchmarks/results/readout.json`` after every entry (key
``<protocol>/<dataset>/<seed>``, ``validation/...`` for ``--validation``), so an interrupted
run keeps what it did and a rerun skips it.

``--layers`` keeps the default readout and compares the ridge (``forgetless``) with the
configs' layer (orthogonal, M = 2000) against no layer (``projection = "none"``), same class
order (key ``layers/<protocol>/<dataset>/<seed>``; summary ``layers/<protocol>``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from adaptation import DATASETS, METHODS, _accuracies, _config, _scenario, validation_data

from forgetless import __version__
from forgetless.experiment import run

RESULTS = Path(__file__).parent / "results" / "readout.json"
# encoder: (its default readout, the one compared with it)
READOUTS = {"efficientnet-lite0": ("head", "stages"), "minilm": ("last", "layers")}


def run_entry(name: str, seed: int, protocol: str, validation: bool) -> dict[str, Any]:
    """One dataset and seed: the default readout, then the other one (same class order)."""
    readouts = READOUTS[DATASETS[name][0]]
    results, seconds = {}, {}
    for readout in readouts:
        config = _config(name, seed, None, protocol=protocol, readout=readout)
        began = time.perf_counter()
        results[readout] = run(config, validation_data(config, True) if validation else None)
        seconds[readout] = time.perf_counter() - began
    base, other = (results[r] for r in readouts)
    assert base["scenarios"] == other["scenarios"], "both runs must see one class order"
    accuracies = {r: _accuracies(results[r], seed) for r in readouts}
    return {
        "dataset": name,
        "split": "validation (a fifth of the training subset)" if validation else "test",
        "protocol": protocol,
        "scenario": _scenario(name, protocol),
        "n_train": base["dataset"]["n_train"],
        "n_test": base["dataset"]["n_test"],
        "encoder": DATASETS[name][0],
        "encoder_options": DATASETS[name][1],
        "seed": seed,
        "readouts": list(readouts),
        "accuracy": accuracies,
        "delta_final_points": {
            m: round(
                100
                * (
                    accuracies[readouts[1]][m]["final_accuracy"]
                    - accuracies[readouts[0]][m]["final_accuracy"]
                ),
                2,
            )
            for m in METHODS
        },
        "seconds_with_encoding_if_not_cached": seconds,
    }


LAYERS = {"orthogonal-2000": {"projection": "orthogonal", "n_components": 2000},
          "none": {"projection": "none"}}  # fmt: skip


def layers_entry(name: str, seed: int, protocol: str, validation: bool) -> dict[str, Any]:
    """One dataset and seed, default readout: the ridge with the configs' layer, then none."""
    results, seconds = {}, {}
    for label, learner in LAYERS.items():
        config = _config(name, seed, None, protocol=protocol, learner=learner,
                         methods=["forgetless"])  # fmt: skip
        began = time.perf_counter()
        results[label] = run(config, validation_data(config, True) if validation else None)
        seconds[label] = time.perf_counter() - began
    first, second = results.values()
    assert first["scenarios"] == second["scenarios"], "both runs must see one class order"
    accuracy = {}
    for label, result in results.items():
        entry = result["methods"]["forgetless"]["seeds"][str(seed)]
        accuracy[label] = {k: entry[k] for k in ("final_accuracy", "average_incremental_accuracy")}
    return {
        "dataset": name,
        "split": "validation (a fifth of the training subset)" if validation else "test",
        "protocol": protocol,
        "encoder": DATASETS[name][0],
        "readout": "the encoder's default",
        "seed": seed,
        "accuracy": accuracy,
        "seconds_with_encoding_if_not_cached": seconds,
    }


def runs_by_dataset(entries: dict[str, Any], prefix: str):
    """(dataset, its entries keyed ``<prefix><dataset>/...``) for each dataset that has some."""
    for name in DATASETS:
        runs = [e for k, e in entries.items() if k.startswith(f"{prefix}{name}/")]
        if runs:
            yield name, runs


def summarise_layers(entries: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Per dataset: mean final and average incremental accuracy (%) per layer, and the change."""
    out: dict[str, Any] = {}
    for name, runs in runs_by_dataset(entries, prefix):
        row: dict[str, Any] = {"seeds": sorted(e["seed"] for e in runs)}
        for label in LAYERS:
            for metric in ("final_accuracy", "average_incremental_accuracy"):
                values = [100 * e["accuracy"][label][metric] for e in runs]
                row[f"{metric}_{label}"] = round(float(np.mean(values)), 2)
        row["none_minus_layer_final_per_seed"] = [
            round(100 * (e["accuracy"]["none"]["final_accuracy"]
                         - e["accuracy"]["orthogonal-2000"]["final_accuracy"]), 2)
            for e in sorted(runs, key=lambda e: e["seed"])
        ]  # fmt: skip
        out[name] = row
    return out


def summarise(entries: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Per dataset: mean final and average incremental accuracy of both readouts, and the change."""
    out: dict[str, Any] = {}
    for name, runs in runs_by_dataset(entries, prefix):
        base, other = runs[0]["readouts"]
        row: dict[str, Any] = {"seeds": sorted(e["seed"] for e in runs), "methods": {}}
        for m in METHODS:
            row["methods"][m] = {
                f"{metric}_{r}": round(
                    float(np.mean([100 * e["accuracy"][r][m][metric] for e in runs])), 2
                )
                for metric in ("final_accuracy", "average_incremental_accuracy")
                for r in (base, other)
            }
            row["methods"][m]["delta_final_points"] = round(
                float(np.mean([e["delta_final_points"][m] for e in runs])), 2
            )
            row["methods"][m]["delta_final_points_per_seed"] = [
                e["delta_final_points"][m] for e in sorted(runs, key=lambda e: e["seed"])
            ]
        out[name] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = [n for n in DATASETS if DATASETS[n][0] == "efficientnet-lite0"]
    parser.add_argument("--datasets", nargs="+", default=default, choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--protocol", choices=["configs", "half-first"], default="configs")
    parser.add_argument("--validation", action="store_true", help="score on a training fifth")
    parser.add_argument("--layers", action="store_true", help="the configs' layer against none")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    path = Path(args.output)
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc.setdefault("entries", {})
    prefixes = ("configs/", "half-first/", "validation/configs/", "validation/half-first/")

    def save() -> None:
        doc["summary"] = {p.rstrip("/"): summarise(doc["entries"], p) for p in prefixes}
        doc["summary"].update(
            {f"layers/{p}".rstrip("/"): summarise_layers(doc["entries"], f"layers/{p}")
             for p in prefixes}
        )  # fmt: skip
        doc["machine"] = {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "library_version": __version__,
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, path)

    for seed in args.seeds:
        for name in args.datasets:
            key = ("validation/" if args.validation else "") + f"{args.protocol}/{name}/{seed}"
            key = ("layers/" if args.layers else "") + key
            if key in doc["entries"]:
                print(f"{key}: done already")
                continue
            entry = (layers_entry if args.layers else run_entry)(
                name, seed, args.protocol, args.validation
            )
            doc["entries"][key] = entry
            save()
            print(
                key, json.dumps(entry.get("accuracy", entry.get("delta_final_points"))), flush=True
            )


if __name__ == "__main__":
    main()
