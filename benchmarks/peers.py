"""The peers side by side: every method x every dataset through ``forgetless run``.

    nice -n 5 python benchmarks/peers.py                  # seeds 0-2, resumable
    python benchmarks/peers.py --seeds 0 --cases digits/raw
    python benchmarks/peers.py --table   # the tables of docs/peers.md, from the JSON

Writes ``benchmarks/results/peers.json``: for each dataset (the subsets and scenarios of
``configs/*.toml``; image encoders at ``image_size = 112``, the features the cache holds),
each method and each seed, the final and average incremental accuracy (on all classes seen),
the whole run's training time (``partial_fit`` plus the refit of the first prediction, as
``forgetless run`` counts it, with tracemalloc off) and peak traced memory (from ``forgetless
run``'s separate, untimed pass under tracemalloc). Entries already there are kept (resumable;
``--fresh`` starts over); the file is rewritten after every entry.

Every method runs at the config's width ``n_components`` (2,000; 1,000 for digits): the peers'
own defaults (RanPAC 10,000, RanDumb 10,000-25,000, KLDA 5,000 per draw, Fly-CL 10,000, ACIL
8,192) cost minutes per run on two shared cores (RanPAC solves 17 systems of that size per
task; KLDA-E five pseudo-inverses). BLAS runs on one thread unless ``OPENBLAS_NUM_THREADS`` is
set, so that timings of methods run back to back are not skewed by other processes' load.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from forgetless import __version__  # noqa: E402
from forgetless.experiment import METHODS as PEER_METHODS  # noqa: E402
from forgetless.experiment import RunConfig, load_features, run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "peers.json"
IMG = {"encoder_options": {"image_size": 112}}
CASES = {
    "digits/raw": ("configs/demo-digits.toml", {}),
    "fashion-mnist/efficientnet-lite0": ("configs/fashion-mnist-efficientnet-B0-Inc2.toml", IMG),
    "latin-glyphs/efficientnet-lite0": ("configs/latin-glyphs-efficientnet-B0-Inc10.toml", IMG),
    "openclipart/efficientnet-lite0": ("configs/openclipart-efficientnet-B0-Inc5.toml", IMG),
    "wordnet/minilm": ("configs/wordnet-minilm-B0-Inc5.toml", {}),
    "fortunes/minilm": ("configs/fortunes-minilm-B0-Inc4.toml", {}),
}
METHODS = [
    "forgetless", "ncm", "lda", "ranpac", "randumb", "klda", "klda-e", "fly-cl", "acil", "slda"
]  # fmt: skip
KEEP = ("final_accuracy", "average_incremental_accuracy", "total_seconds", "peak_memory_MiB")


def case_config(case: str, seeds: list[int], methods: list[str]) -> RunConfig:
    """The case's config file with the benchmark's methods, seeds and encoder options."""
    path, overrides = CASES[case]
    config = RunConfig.from_file(ROOT / path)
    learner = config.learner
    if all(PEER_METHODS.get(m, (None,))[0] == "peer" for m in methods):
        # the peers take only the width: the config's other learner settings would be refused
        learner = {k: v for k, v in learner.items() if k == "n_components"}
    return dataclasses.replace(
        config,
        methods=methods,
        seeds=seeds,
        progress=False,
        output="/tmp/unused",
        learner=learner,
        **overrides,
    )


def load(case: str) -> tuple[RunConfig, dict]:
    config = case_config(case, [0], ["forgetless"])
    return config, load_features(config)


def _save(results: dict, out: Path = OUT) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--table", action="store_true", help="print the markdown table only")
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON file to extend")
    args = parser.parse_args()
    out_path = args.out
    if args.table:
        print(table(json.loads(out_path.read_text())))
        return
    results = {} if args.fresh or not out_path.exists() else json.loads(out_path.read_text())
    results["meta"] = {
        "library_version": __version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "widths": "the config's learner.n_components for every method (slda has none)",
        "image_size": 112,
        "measurement": "seconds timed with tracemalloc off; peak memory from a separate, "
        "untimed pass under tracemalloc (forgetless run's measure_memory)",
    }
    runs = results.setdefault("runs", {})
    for seed in args.seeds:  # seed 0 everywhere first
        for case in args.cases:
            todo = [m for m in args.methods if str(seed) not in runs.get(case, {}).get(m, {})]
            if not todo:
                continue
            config, data = load(case)
            runs.setdefault(case, {})
            for method in todo:
                start = time.perf_counter()
                out = run(case_config(case, [seed], [method]), data)
                entry = out["methods"][method]["seeds"][str(seed)]
                kept = {k: entry[k] for k in KEEP}
                kept["accuracy_seen"] = entry["accuracy_seen"]
                kept["width"] = config.learner.get("n_components")
                runs[case].setdefault(method, {})[str(seed)] = kept
                results.setdefault("scenarios", {})[case] = {
                    "config": CASES[case][0],
                    "steps": len(entry["accuracy_seen"]),
                    "n_train": out["dataset"]["n_train"],
                    "n_test": out["dataset"]["n_test"],
                    "encoder_dim": out["encoder"]["dim"],
                }
                _save(results, out_path)
                print(
                    f"{case:34s} {method:11s} seed {seed}: final "
                    f"{100 * kept['final_accuracy']:.2f} %, {kept['total_seconds']:.1f} s "
                    f"({time.perf_counter() - start:.0f} s wall)",
                    flush=True,
                )
    print(table(results))


def _mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, (sum((v - m) ** 2 for v in values) / len(values)) ** 0.5


def table(results: dict) -> str:
    """Markdown: one row per method, per dataset final / average incremental accuracy (%),
    then time (s) and peak memory (MiB), mean ± std over the seeds run (their count shown)."""
    runs = results["runs"]
    cases = [c for c in CASES if c in runs]
    head = "| method | " + " | ".join(f"{c} final / avg inc %" for c in cases) + " |"
    lines = [head, "|---|" + "---|" * len(cases)]
    cost = ["| method | " + " | ".join(f"{c} s / MiB" for c in cases) + " |"]
    cost.append("|---|" + "---|" * len(cases))
    for method in METHODS:
        cells, costs = [], []
        for case in cases:
            seeds = runs[case].get(method, {})
            if not seeds:
                cells.append("")
                costs.append("")
                continue
            final = _mean_std([100 * s["final_accuracy"] for s in seeds.values()])
            avg = _mean_std([100 * s["average_incremental_accuracy"] for s in seeds.values()])
            secs = _mean_std([s["total_seconds"] for s in seeds.values()])
            mem = max(s["peak_memory_MiB"] for s in seeds.values())
            n = f" ({len(seeds)})" if len(seeds) != 3 else ""
            std = f" ± {final[1]:.1f}" if len(seeds) > 1 else ""
            cells.append(f"{final[0]:.1f}{std} / {avg[0]:.1f}{n}")
            costs.append(f"{secs[0]:.1f} / {mem:.0f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
        cost.append(f"| {method} | " + " | ".join(costs) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(cost)


if __name__ == "__main__":
    main()
