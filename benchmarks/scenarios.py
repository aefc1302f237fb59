"""Run the standard protocols in configs/ and collect one results table (JSON + markdown).

    python benchmarks/scenarios.py                        # the four datasets of docs/results.md
    python benchmarks/scenarios.py configs/demo-digits.toml --seeds 0

Each config runs through ``forgetless run`` (features come from the on-disk cache after the
first time); the table lists final and average incremental accuracy, forgetting and total
training time per method, mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from forgetless.evaluation.report import write_report
from forgetless.experiment import RunConfig, run, save_results

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = [
    "configs/fashion-mnist-efficientnet-B0-Inc2.toml",
    "configs/latin-glyphs-efficientnet-B0-Inc10.toml",
    "configs/openclipart-efficientnet-B0-Inc5.toml",
    "configs/wordnet-minilm-B0-Inc5.toml",
]
_ORDER = {f"runs/{Path(c).stem}": i for i, c in enumerate(DEFAULT)}


def _upgrade(entry: dict) -> dict:
    """Entries written before methods were nested keep working."""
    if "methods" not in entry and "summary" in entry:
        entry = dict(entry)
        entry["methods"] = {m: {"summary": s} for m, s in entry.pop("summary").items()}
    return entry


COLUMNS = [
    ("final_accuracy", "final %", 100),
    ("average_incremental_accuracy", "avg inc %", 100),
    ("forgetting", "forgetting %", 100),
    ("total_seconds", "train s", 1),
]


def _cell(summary: dict, key: str, scale: float) -> str:
    stats = summary.get(key)
    if not stats:
        return ""
    digits = 1 if scale == 100 else 2
    return f"{scale * stats['mean']:.{digits}f} ± {scale * stats['std']:.{digits}f}"


def markdown(all_results: list[dict]) -> str:
    lines = [
        "| data / encoder / scenario | method | " + " | ".join(c[1] for c in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for results in all_results:
        scenario = next(iter(results["scenarios"].values()))["name"]
        where = f"{results['dataset']['name']} / {results['encoder']['name']} / {scenario}"
        for name, entry in results["methods"].items():
            cells = [_cell(entry["summary"], k, s) for k, _, s in COLUMNS]
            lines.append(f"| {where} | {name} | " + " | ".join(cells) + " |")
            where = ""
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", default=DEFAULT)
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/scenarios.json"))
    args = parser.parse_args()
    collected = []
    for path in args.configs:
        config = RunConfig.from_file(ROOT / path if not Path(path).is_absolute() else path)
        if args.seeds:
            config.seeds = args.seeds
        results = run(config)
        write_report(save_results(results, config.output).parent)
        collected.append(results)
        print(markdown([results]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    slim = [
        {k: r[k] for k in ("config", "dataset", "encoder", "scenarios", "library_version")}
        | {"methods": {m: {"summary": e["summary"]} for m, e in r["methods"].items()}}
        for r in collected
    ]
    # Entries of configs not run this time are kept (a rerun of one config replaces its own).
    outputs = {r["config"]["output"] for r in slim}
    previous = json.loads(out.read_text()) if out.exists() else []
    kept = [_upgrade(r) for r in previous if r["config"]["output"] not in outputs]
    rows = sorted(kept + slim, key=lambda r: _ORDER.get(r["config"]["output"], 99))
    out.write_text(json.dumps(rows, separators=(",", ":")) + "\n")  # compact: one line per file
    (out.with_suffix(".md")).write_text(markdown(rows) + "\n")
    print(f"\nwrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
