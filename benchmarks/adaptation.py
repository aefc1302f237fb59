"""First-session adaptation: accuracy with against without it, and what it costs. Not a test.

    python benchmarks/adaptation.py                         # 4 datasets, seed 0
    python benchmarks/adaptation.py --seeds 0 1 2           # more seeds (done entries are kept)
    python benchmarks/adaptation.py --datasets wordnet --method last-layers
    python benchmarks/adaptation.py --cost                  # time adapting on a 3,000-image task
    python benchmarks/adaptation.py --validation --datasets latin-glyphs --keep-plain true
    python benchmarks/adaptation.py --protocol half-first --datasets fashion-mnist

``--protocol half-first`` gives the first task half of the classes and splits the rest into 5
equal tasks (entries ``half-first/<dataset>/<seed>``, summary ``half_first_summary``): a first
task with more classes to adapt on than the configs' protocol gives (Fashion-MNIST's has 2).

``--validation`` chooses between recipes without the test split: each dataset's test split is
replaced by a stratified fifth held out of its training subset (fixed, drawn with seed 0), the
learners train on the other four fifths (class order from the seed as usual), and the entries
are stored under ``validation/<dataset>/<seed>/<recipe>``; the summary keeps them apart.

Each dataset runs as its config in configs/ does (same subsets, class-incremental steps, class
order from the seed, orthogonal layer of width 2000), for ``forgetless`` (ridge), ``ncm`` and
``lda``: once on the plain encoder's features and once through ``forgetless.experiment.run``
with ``[first_session_adaptation]``, which adapts the encoder on the seed's first task only
and encodes everything with the adapted encoder through the feature cache. Images are encoded
at 112 px. Results go to ``benchmarks/results/adaptation.json`` after every entry, so an
interrupted run keeps what it did and a rerun skips it. Set ``FORGETLESS_CACHE_DIR`` to keep the
adapted features apart (the plain features are read from the same cache).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from forgetless import __version__
from forgetless.experiment import RunConfig, encode_dataset, prepare_dataset, run

RESULTS = Path(__file__).parent / "results" / "adaptation.json"
METHODS = ["forgetless", "ncm", "lda"]
IMAGES = {"image_size": 112}
# name: (encoder, encoder options, train subset, test subset, classes per step) as in configs/
DATASETS: dict[str, tuple[str, dict[str, Any], int, int, int]] = {
    "latin-glyphs": ("efficientnet-lite0", IMAGES, 3100, 1240, 10),
    "fashion-mnist": ("efficientnet-lite0", IMAGES, 3000, 1000, 2),
    "openclipart": ("efficientnet-lite0", IMAGES, 3000, 1000, 5),
    "wordnet": ("minilm", {}, 3000, 1000, 5),
    "fortunes": ("minilm", {}, 3000, 1000, 4),  # data no setting was tuned on
}
CLASSES = {
    "latin-glyphs": 62, "fashion-mnist": 10, "openclipart": 38, "wordnet": 45, "fortunes": 32
}  # fmt: skip
# issue 13's goals: the points adaptation should add to the ridge's final accuracy (0: none lost)
GOALS = {
    "latin-glyphs": 3.0, "fashion-mnist": 3.0, "wordnet": 1.0, "openclipart": 0.0, "fortunes": 0.0
}  # fmt: skip


def _scenario(name: str, protocol: str) -> dict[str, Any]:
    """The configs' steps, or half of the classes first and the rest in 5 equal tasks."""
    if protocol == "half-first":
        initial = CLASSES[name] // 2
        rest = CLASSES[name] - initial
        return {"kind": "class-incremental", "initial": initial, "increment": -(-rest // 5)}
    return {"kind": "class-incremental", "initial": 0, "increment": DATASETS[name][4]}


def _config(
    name: str,
    seed: int,
    adaptation: dict[str, Any] | None,
    cache_dir: str | None = None,
    protocol: str = "configs",
    readout: str | None = None,
    learner: dict[str, Any] | None = None,
    methods: list[str] | None = None,
) -> RunConfig:
    encoder, options, train, test, _ = DATASETS[name]
    return RunConfig(
        dataset=name,
        encoder=encoder,
        encoder_options={**options, **({"readout": readout} if readout else {})},
        methods=list(methods or METHODS),
        seeds=[seed],
        subset={"train": train, "test": test},
        scenario=_scenario(name, protocol),
        learner=learner or {"projection": "orthogonal", "n_components": 2000},
        first_session_adaptation=adaptation,
        cache_dir=cache_dir,
        progress=None,
    )


def _accuracies(results: dict[str, Any], seed: int, suffix: str = "") -> dict[str, Any]:
    out = {}
    for m in METHODS:
        entry = results["methods"][m + suffix]["seeds"][str(seed)]
        out[m] = {
            "final_accuracy": entry["final_accuracy"],
            "average_incremental_accuracy": entry["average_incremental_accuracy"],
        }
    return out


def recipe_label(name: str, adaptation: dict[str, Any], readout: str | None = None) -> str:
    """The whole recipe ``adaptation`` resolves to for ``name``'s encoder (reading out
    ``readout``), as a key part (so a validation entry keeps its meaning when the defaults
    change)."""
    from forgetless.adaptation import adaptable_methods

    recipes = adaptable_methods(DATASETS[name][0], readout)
    recipe = recipes[adaptation.get("method") or next(iter(recipes))]
    fields = {
        k: v for k, v in adaptation.items() if k not in ("method", "significance", "min_classes")
    }
    recipe = dataclasses.replace(recipe, **fields)
    return (
        f"{recipe.method},epochs={recipe.epochs},lr={recipe.learning_rate:g},"
        f"refresh_norms={recipe.refresh_norms},keep_plain={recipe.keep_plain}"
        + (f",views={recipe.views}" if recipe.views > 1 else "")  # labels before views had 1
        + (f",label_smoothing={recipe.label_smoothing:g}" if recipe.label_smoothing != 0.1 else "")
        + (f",contrastive={recipe.contrastive:g}" if recipe.contrastive else "")
        + (f",significance={adaptation['significance']:g}" if "significance" in adaptation else "")
        + (f",min_classes={adaptation['min_classes']}" if "min_classes" in adaptation else "")
    )


# the options main() reads, in the order entry keys name them
ADAPTATION_OPTIONS = (
    "method",
    "epochs",
    "learning_rate",
    "keep_plain",
    "refresh_norms",
    "views",
    "contrastive",
    "significance",
    "min_classes",
)


def test_label(
    name: str, label: str, adaptation: dict[str, Any], readout: str | None = None
) -> str:
    """A test-split entry's key part: the options given (none: the default recipe), and the
    default recipe's ``keep_plain`` and contrastive weight where it has them and none was
    given, so the entries measured before that default keep their meaning."""
    from forgetless.adaptation import adaptable_methods

    recipes = adaptable_methods(DATASETS[name][0], readout)
    recipe = recipes[adaptation.get("method") or next(iter(recipes))]
    values = dict(part.split("=", 1) for part in ([] if label == "default" else label.split(",")))
    # options the default recipe turned on later, as if given (so old keys keep their meaning)
    if "keep_plain" not in values and recipe.keep_plain:
        values["keep_plain"] = "True"
    if "contrastive" not in values and recipe.contrastive:
        values["contrastive"] = f"{recipe.contrastive:g}"
    order = [*ADAPTATION_OPTIONS, *(k for k in values if k not in ADAPTATION_OPTIONS)]
    parts = [f"{k}={values[k]}" for k in order if k in values]
    return "/" + ",".join(parts) if parts else ""


def validation_data(config: RunConfig, encoded: bool) -> dict[str, Any]:
    """The run's data with its test split replaced by a stratified fifth of its training subset
    (held out with seed 0; the other four fifths train), encoded or not."""
    from forgetless.adaptation.training import _validation_split
    from forgetless.encoders import load_encoder

    dataset = prepare_dataset(config)
    train = dataset.train
    rows, held_out = _validation_split(np.asarray(train.labels), 0.2, seed=0)
    dataset = dataclasses.replace(dataset, train=train.subset(rows), test=train.subset(held_out))
    if encoded:
        return encode_dataset(config, dataset)
    return {
        "dataset": dataset,
        "encoder": load_encoder(config.encoder, **config.encoder_options),
        "y_train": np.asarray(dataset.train.labels),
        "y_test": np.asarray(dataset.test.labels),
    }


def run_entry(
    name: str,
    seed: int,
    adaptation: dict[str, Any],
    plain_cache: str | None,
    validation: bool = False,
    protocol: str = "configs",
    readout: str | None = None,
    learner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One dataset and seed: the plain run, then the adapted one (same class order).
    ``validation``: both on a held-out fifth of the training subset instead of the test split.
    ``readout``: the encoder's readout in both runs (default: the encoder's own).
    ``learner``: the learner settings of both runs (default: the orthogonal layer, M = 2000)."""
    began = time.perf_counter()
    config = _config(name, seed, None, plain_cache, protocol, readout, learner)
    plain = run(config, validation_data(config, True) if validation else None)
    plain_seconds = time.perf_counter() - began
    began = time.perf_counter()
    config = _config(
        name, seed, {**adaptation, "compare": False}, protocol=protocol, readout=readout,
        learner=learner,
    )  # fmt: skip
    adapted = run(config, validation_data(config, False) if validation else None)
    info = adapted["adaptation"][str(seed)]
    without = _accuracies(plain, seed)
    with_ = _accuracies(adapted, seed, "+adapted")
    assert plain["scenarios"] == adapted["scenarios"], "both runs must see one class order"
    return {
        "dataset": name,
        "split": "validation (a fifth of the training subset)" if validation else "test",
        "protocol": protocol,
        "scenario": config.scenario,
        "n_train": plain["dataset"]["n_train"],
        "n_test": plain["dataset"]["n_test"],
        "encoder": DATASETS[name][0],
        "encoder_options": config.encoder_options,
        "seed": seed,
        "class_order": plain["scenarios"][str(seed)].get("class_order"),
        "without": without,
        "with": with_,
        "delta_final_points": {
            m: 100 * (with_[m]["final_accuracy"] - without[m]["final_accuracy"]) for m in METHODS
        },
        "adaptation": {k: v for k, v in info.items()},
        "seconds": {
            "plain_run": plain_seconds,
            "adapted_run": time.perf_counter() - began,
            "adapt": info["adapt_seconds"],
            "encode_adapted": info["encode_seconds"],
        },
    }


def cost_entry(adaptation: dict[str, Any], n: int = 3000) -> dict[str, Any]:
    """Wall time of adapting EfficientNet-Lite0 (112 px) on a 3,000-image first task."""
    from forgetless.adaptation import adapt_encoder
    from forgetless.data import load_dataset
    from forgetless.encoders import load_encoder

    data = load_dataset("fashion-mnist").subset(train=n, test=10, seed=0)
    encoder = load_encoder("efficientnet-lite0", **IMAGES)
    began = time.perf_counter()
    adapted = adapt_encoder(encoder, data.train.inputs, data.train.labels, **adaptation)
    return {
        "dataset": "fashion-mnist (all 10 classes)",
        "images": n,
        "seconds": time.perf_counter() - began,
        "info": {k: v for k, v in adapted.info.items() if k != "history"},
    }


def summarise(entries: dict[str, Any], prefix: str = "", label: str = "") -> dict[str, Any]:
    """Per dataset: mean final / average incremental accuracy with and without, and the goal,
    over the entries keyed ``<prefix><dataset>/<seed><label>`` (default recipe: no label)."""
    out: dict[str, Any] = {}
    for name in DATASETS:
        runs = [
            e
            for k, e in entries.items()
            if k.startswith(prefix + name + "/")
            and k.removeprefix(prefix + name + "/").split("/", 1)[0].isdigit()
            and k.endswith(f"/{e['seed']}{label}")
        ]
        if not runs:
            continue
        row: dict[str, Any] = {"seeds": sorted(e["seed"] for e in runs), "methods": {}}
        for m in METHODS:

            def get(side: str, metric: str, m: str = m, runs: list = runs) -> float:
                return float(np.mean([100 * e[side][m][metric] for e in runs]))

            row["methods"][m] = {
                f"{metric}_{side}": round(get(side, metric), 2)
                for metric in ("final_accuracy", "average_incremental_accuracy")
                for side in ("without", "with")
            }
            row["methods"][m]["delta_final_points"] = round(
                get("with", "final_accuracy") - get("without", "final_accuracy"), 2
            )
        deltas = [row["methods"][m]["delta_final_points"] for m in METHODS]
        row["goal_points"] = GOALS[name]
        row["goal_met"] = bool(min(deltas) >= GOALS[name])
        row["adapt_seconds_mean"] = round(float(np.mean([e["seconds"]["adapt"] for e in runs])), 1)
        row["adaptation_methods"] = sorted({e["adaptation"]["method"] for e in runs})
        out[name] = row
    return out


def refresh_summaries(doc: dict[str, Any]) -> None:
    """Every summary of ``doc`` from its entries (default recipe, protocols, readouts, learners,
    and the validation entries per recipe)."""
    doc["summary"] = summarise(doc["entries"])
    labels = {k.split("/", 3)[3] for k in doc["entries"] if k.startswith("validation/")}
    doc["half_first_summary"] = summarise(doc["entries"], "half-first/")
    for readout in sorted(
        {k.split("/")[0] for k in doc["entries"] if k.startswith(("readout-", "projection-"))}
    ):
        doc[f"{readout}_summary"] = summarise(doc["entries"], readout + "/")
    doc["validation_summary"] = {
        lab: summarise(doc["entries"], "validation/", "/" + lab) for lab in sorted(labels)
    }
    # validation entries of other protocols, readouts or learners: per prefix, per recipe
    prefixed: dict[str, set[str]] = {}
    for k in doc["entries"]:
        if "/validation/" in k:
            prefix, rest = k.split("/validation/", 1)
            prefixed.setdefault(prefix + "/validation/", set()).add(rest.split("/", 2)[2])
    for prefix, labs in sorted(prefixed.items()):
        doc[prefix.replace("/", "_") + "summary"] = {
            lab: summarise(doc["entries"], prefix, "/" + lab) for lab in sorted(labs)
        }
    # test-split entries with a recipe label (<prefix><dataset>/<seed>/<label>): per recipe
    labelled: dict[str, set[str]] = {}
    for k in doc["entries"]:
        parts = k.split("/")
        at = next(
            (i for i in range(len(parts) - 1) if parts[i] in DATASETS and parts[i + 1].isdigit()),
            None,
        )
        if at is None or "validation" in parts[:at] or len(parts) <= at + 2:
            continue
        prefix = "".join(part + "/" for part in parts[:at])
        labelled.setdefault(prefix, set()).add("/".join(parts[at + 2 :]))
    for prefix, labs in sorted(labelled.items()):
        doc[prefix.replace("/", "_") + "labelled_summary"] = {
            lab: summarise(doc["entries"], prefix, "/" + lab) for lab in sorted(labs)
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--method", help="adaptation method (default: the encoder's default)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--keep-plain", choices=["true", "false"], help="plain features beside")
    parser.add_argument("--refresh-norms", choices=["true", "false"], help="AdaBN first")
    parser.add_argument("--views", type=int, help="training copies of each image (moved)")
    parser.add_argument("--contrastive", type=float, help="supervised contrastive weight")
    parser.add_argument(
        "--significance", type=float, help="keep an adaptation only at this evidence level"
    )
    parser.add_argument(
        "--min-classes", type=int, help="train on a first task of at least this many classes"
    )
    parser.add_argument(
        "--validation",
        action="store_true",
        help="held-out fifth of the training subset instead of the test split (to choose)",
    )
    parser.add_argument(
        "--protocol",
        choices=["configs", "half-first"],
        default="configs",
        help="the configs' class-incremental steps, or half of the classes first",
    )
    parser.add_argument(
        "--readout",
        help="the encoders' readout in both runs (stages / layers; entries readout-<r>/...)",
    )
    parser.add_argument(
        "--projection",
        choices=["orthogonal", "auto"],
        default="orthogonal",
        help="the learners' layer in both runs (auto: today's default; projection-auto/...)",
    )
    parser.add_argument("--cost", action="store_true", help="also time a 3,000-image first task")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument(
        "--plain-cache",
        help="feature cache to read the plain encoder's features from (default: the usual "
        "cache), so that FORGETLESS_CACHE_DIR can keep the adapted features apart",
    )
    args = parser.parse_args()
    path = Path(args.output)
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc.setdefault("entries", {})
    adaptation = {
        k: v
        for k, v in (
            ("method", args.method),
            ("epochs", args.epochs),
            ("learning_rate", args.learning_rate),
            ("keep_plain", None if args.keep_plain is None else args.keep_plain == "true"),
            ("refresh_norms", None if args.refresh_norms is None else args.refresh_norms == "true"),
            ("views", args.views),
            ("contrastive", args.contrastive),
            ("significance", args.significance),
            ("min_classes", args.min_classes),
        )
        if v is not None
    }
    label = (
        ",".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in adaptation.items()
        )
        or "default"
    )

    def save() -> None:
        refresh_summaries(doc)
        doc["machine"] = {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "library_version": __version__,
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, separators=(",", ":")) + "\n")  # compact
        os.replace(tmp, path)

    for seed in args.seeds:
        for name in args.datasets:
            key = f"{name}/{seed}" + test_label(name, label, adaptation, args.readout)
            if args.validation:
                key = f"validation/{name}/{seed}/{recipe_label(name, adaptation, args.readout)}"
            if args.protocol != "configs":
                key = f"{args.protocol}/{key}"
            if args.readout:
                key = f"readout-{args.readout}/{key}"
            if args.projection != "orthogonal":
                key = f"projection-{args.projection}/{key}"
            if key in doc["entries"]:
                print(f"{key}: done already")
                continue
            entry = run_entry(
                name,
                seed,
                adaptation,
                args.plain_cache,
                args.validation,
                args.protocol,
                args.readout,
                {"projection": args.projection, "n_components": 2000},
            )
            doc["entries"][key] = entry
            save()
            print(key, json.dumps(entry["delta_final_points"]), flush=True)
    cost_key = "cost/" + (test_label("fashion-mnist", label, adaptation).lstrip("/") or "default")
    if args.cost and cost_key not in doc:
        doc[cost_key] = cost_entry(adaptation)
        save()
        print(cost_key, doc[cost_key]["seconds"])


if __name__ == "__main__":
    main()
