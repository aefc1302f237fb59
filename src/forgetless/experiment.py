"""One continual-learning run: dataset -> cached encoder features -> scenario -> methods -> results.

A run is described by a :class:`RunConfig` (from flags, a TOML or YAML file, or Python) and
produces a results dictionary (the schema of ``results.json``, see :func:`run`). Every method
sees the same features, the same scenario and the same seeds.

>>> config = RunConfig(dataset="digits", methods=["forgetless", "sgd-finetune"],
...                    scenario={"kind": "class-incremental", "increment": 5}, seeds=[0],
...                    learner={"n_components": 300}, progress=False)
>>> results = run(config)
>>> sorted(results["methods"])
['forgetless', 'sgd-finetune']
>>> results["methods"]["forgetless"]["summary"]["final_accuracy"]["mean"] > 0.9
True
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from forgetless.evaluation.baselines import SGDHead
from forgetless.evaluation.metrics import (
    average_incremental_accuracy,
    backward_transfer,
    final_accuracy,
    forgetting,
    min_accuracy,
    stability_gap,
    worst_case_accuracy,
)
from forgetless.learner import ContinualClassifier
from forgetless.scenarios import (
    Scenario,
    class_incremental,
    domain_incremental,
    few_shot,
    online_blurry,
)

# name -> (family, settings). "forgetless" methods read ContinualClassifier settings from
# ``RunConfig.learner``; the gradient baselines from ``RunConfig.sgd``.
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "forgetless": ("analytic", {"head": "ridge"}),
    "forgetless-rls": ("analytic", {"head": "rls", "alpha": 1.0}),
    "ncm": ("analytic", {"head": "ncm"}),
    "lda": ("analytic", {"head": "lda"}),
    "forgetless-guided": ("analytic", {"head": "ridge", "projection": "guided"}),
    "owm": ("analytic", {"head": "owm", "alpha": 1.0}),
    "joint": ("joint", {"head": "ridge"}),
    "sgd-finetune": ("sgd", {"method": "finetune"}),
    "sgd-replay": ("sgd", {"method": "replay"}),
    "sgd-lwf": ("sgd", {"method": "lwf"}),
}
SCENARIOS = ("class-incremental", "domain-incremental", "few-shot", "online-blurry")
_LR_GRID = (0.3, 0.1, 0.03, 0.01)


@dataclass
class RunConfig:
    """Everything that defines a run; saved verbatim with its results."""

    dataset: str = "digits"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    encoder: str = "raw"
    encoder_options: dict[str, Any] = field(default_factory=dict)
    scenario: dict[str, Any] = field(
        default_factory=lambda: {"kind": "class-incremental", "initial": 0, "increment": 2}
    )
    methods: list[str] = field(
        default_factory=lambda: [
            "forgetless",
            "ncm",
            "lda",
            "joint",
            "sgd-finetune",
            "sgd-replay",
            "sgd-lwf",
        ]
    )
    seeds: list[int] = field(default_factory=lambda: [0])
    learner: dict[str, Any] = field(default_factory=lambda: {"n_components": 1000})
    sgd: dict[str, Any] = field(default_factory=lambda: {"epochs": 5, "batch_size": 32})
    subset: dict[str, int] = field(default_factory=dict)  # {"train": 3000, "test": 1000}
    eval_every: int = 10  # SGD iterations (or stream batches) between continual evaluations
    output: str = "runs/latest"
    cache_dir: str | None = None
    progress: bool | None = None

    def validate(self) -> None:
        from forgetless.data import list_datasets
        from forgetless.encoders import list_encoders

        if self.dataset not in list_datasets():
            raise ValueError(
                f"unknown dataset {self.dataset!r}; known: {', '.join(list_datasets())}"
            )
        family = self.encoder.partition(":")[0]
        known = list_encoders()
        if self.encoder not in known and not any(k.startswith(family + ":") for k in known):
            raise ValueError(f"unknown encoder {self.encoder!r}; known: {', '.join(known)}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(
                f"unknown methods {unknown}; known: {', '.join(METHODS)}"
                if unknown
                else "no methods given"
            )
        kind = self.scenario.get("kind")
        if kind not in SCENARIOS:
            raise ValueError(f"unknown scenario kind {kind!r}; known: {', '.join(SCENARIOS)}")
        if not self.seeds:
            raise ValueError("give at least one seed")

    @classmethod
    def from_file(cls, path: str | Path) -> RunConfig:
        """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) config; unknown keys are errors."""
        path = Path(path)
        text = path.read_text()
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as err:
                raise ImportError("YAML configs need PyYAML: pip install pyyaml") from err
            data = yaml.safe_load(text) or {}
        else:
            raise ValueError(f"config must be .toml, .yaml or .yml, got {path.name}")
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(f"unknown config keys {extra}; known: {', '.join(sorted(known))}")
        return cls(**data)


def _make_scenario(
    config: RunConfig,
    y_train: np.ndarray,
    y_test: np.ndarray,
    seed: int,
    domains: tuple[np.ndarray, np.ndarray] | None,
) -> Scenario:
    options = {
        k: v for k, v in config.scenario.items() if k not in ("kind", "domains", "transforms")
    }
    kind = config.scenario["kind"]
    if kind == "class-incremental":
        return class_incremental(y_train, y_test, seed=seed, **options)
    if kind == "few-shot":
        return few_shot(y_train, y_test, seed=seed, **options)
    if kind == "online-blurry":
        return online_blurry(y_train, y_test, seed=seed, **options)
    if domains is None:
        raise ValueError(f"dataset {config.dataset!r} has no domains for a domain-incremental run")
    return domain_incremental(y_train, y_test, domains[0], domains[1], seed=seed, **options)


def _with_domains(dataset: Any, scenario: dict[str, Any]) -> Any:
    """Attach per-sample domains: ``domains = "transforms"`` (default; ``transforms = [...]``)
    or ``"glyph-style"`` (latin-glyphs)."""
    from forgetless.data.domains import glyph_style_domains, transformed_domains

    source = scenario.get("domains", "transforms")
    if source == "glyph-style":
        return glyph_style_domains(dataset)
    if source == "transforms":
        names = scenario.get("transforms", ["original", "rotate90", "invert", "noise"])
        return transformed_domains(dataset, list(names), seed=0)
    raise ValueError(f"unknown domains {source!r}; use 'transforms' or 'glyph-style'")


def load_features(config: RunConfig) -> dict[str, Any]:
    """Dataset, encoder features through the cache, optional stratified subsets."""
    from forgetless.cache import FeatureCache, dataset_features
    from forgetless.data import load_dataset, stratified_sample
    from forgetless.encoders import load_encoder

    dataset = load_dataset(config.dataset, **config.dataset_options)
    for split in ("train", "test"):  # optional stratified subsets, fixed by seed 0
        if config.subset.get(split):
            whole = getattr(dataset, split)
            rows = stratified_sample(whole.labels, config.subset[split], seed=0)
            dataset = dataclasses.replace(dataset, **{split: whole.subset(rows)})
    if config.scenario.get("kind") == "domain-incremental":
        dataset = _with_domains(dataset, config.scenario)
    encoder = load_encoder(config.encoder, **config.encoder_options)
    cache = FeatureCache(config.cache_dir)
    X_train, X_test = dataset_features(encoder, dataset, cache, progress=config.progress)
    return {
        "dataset": dataset,
        "encoder": encoder,
        "X_train": np.asarray(X_train, dtype=np.float64),
        "X_test": np.asarray(X_test, dtype=np.float64),
        "y_train": np.asarray(dataset.train.labels),
        "y_test": np.asarray(dataset.test.labels),
    }


def _tune_lr(settings: dict[str, Any], X: np.ndarray, y: np.ndarray, seed: int) -> float:
    """Pick SGD's learning rate on a held-out fifth of the first step's data (never the test)."""
    rng = np.random.default_rng(seed)
    holdout = rng.random(len(y)) < 0.2
    best, best_acc = _LR_GRID[0], -1.0
    for lr in _LR_GRID:
        head = SGDHead(**{**settings, "lr": lr, "seed": seed})
        head.partial_fit(X[~holdout], y[~holdout])
        acc = head.score(X[holdout], y[holdout])
        if acc > best_acc + 1e-12:
            best, best_acc = lr, acc
    return best


def _run_method(
    name: str, config: RunConfig, data: dict[str, Any], scenario: Scenario, seed: int
) -> dict[str, Any]:
    family, settings = METHODS[name]
    X, y, Xt, yt = data["X_train"], data["y_train"], data["X_test"], data["y_test"]
    # A fixed feature scaling from the first step's training data only (no look-ahead).
    first = scenario.steps[0].train
    # Centre per feature, then one scalar scale: a per-feature scale from few classes would blow
    # up features that are (near) constant in the first step.
    mean = X[first].mean(axis=0)
    scale = float(np.sqrt(((X[first] - mean) ** 2).mean(axis=1).mean())) or 1.0
    X, Xt = (X - mean) / scale, (Xt - mean) / scale
    T = len(scenario.steps)
    online = scenario.kind == "online-blurry"
    A = np.full((T, T), np.nan)
    seen_acc: list[float] = []
    step_seconds: list[float] = []
    trace: list[list[float]] = []
    trace_iterations: list[int] = []
    task_end: list[int] = []
    current = {"step": 0}

    def evaluate_trace(iteration: int) -> None:
        row = [float("nan")] * T
        for j in range(current["step"] + 1):
            test = scenario.steps[j].test
            row[j] = float((model.predict(Xt[test]) == yt[test]).mean())
        trace.append(row)
        trace_iterations.append(iteration)

    if family == "sgd":
        sgd_settings = {**config.sgd, **settings}
        if online:
            sgd_settings["epochs"] = 1
        lr = sgd_settings.pop("lr", None) or _tune_lr(sgd_settings, X[first], y[first], seed)
        model: Any = SGDHead(
            **sgd_settings,
            lr=lr,
            seed=seed,
            eval_every=config.eval_every,
            on_iteration=evaluate_trace,
        )
    else:
        params = {**config.learner, **settings, "random_state": seed}
        model = ContinualClassifier(**params)
    tracemalloc.start()
    batches_done = 0
    for i, step in enumerate(scenario.steps):
        current["step"] = i
        start = time.perf_counter()
        if family == "joint":  # the upper bound: a fresh fit on everything seen so far
            seen_train = np.concatenate([s.train for s in scenario.steps[: i + 1]])
            model = ContinualClassifier(**params).fit(X[seen_train], y[seen_train])
        elif online:
            for batch in step.batches:
                model.partial_fit(X[batch], y[batch])
                batches_done += 1
                if family != "sgd" and config.eval_every and batches_done % config.eval_every == 0:
                    evaluate_trace(batches_done)
        else:
            model.partial_fit(X[step.train], y[step.train])
        if family != "sgd":
            model.predict(Xt[:1])  # count the lazy head refit in the step time
        step_seconds.append(time.perf_counter() - start)
        iteration = model.iteration if family == "sgd" else (batches_done if online else i + 1)
        task_end.append(iteration)
        for j in range(i + 1):
            test = scenario.steps[j].test
            A[i, j] = float((model.predict(Xt[test]) == yt[test]).mean())
        seen = scenario.seen_test(i)
        seen_acc.append(float((model.predict(Xt[seen]) == yt[seen]).mean()))
        if family != "sgd" and not online:
            trace.append(A[i].tolist())
            trace_iterations.append(iteration)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    seen = scenario.seen_test(T - 1)
    predicted = model.predict(Xt[seen])
    per_class = {str(c): float((predicted[yt[seen] == c] == c).mean()) for c in np.unique(yt[seen])}
    trace_array = np.array(trace) if trace else np.full((0, T), np.nan)
    iterations = np.array(trace_iterations)
    out = {
        "accuracy_matrix": [[None if np.isnan(v) else v for v in row] for row in A],
        "accuracy_seen": seen_acc,
        "final_accuracy": final_accuracy(seen_acc),
        "average_incremental_accuracy": average_incremental_accuracy(seen_acc),
        "forgetting": forgetting(A),
        "backward_transfer": backward_transfer(A),
        "per_class_accuracy": per_class,
        "step_seconds": step_seconds,
        "total_seconds": float(sum(step_seconds)),
        "peak_memory_MiB": peak / 2**20,
        "trace": {
            "iterations": trace_iterations,
            "accuracy": [[None if np.isnan(v) else v for v in row] for row in trace],
            "task_end": task_end,
        },
    }
    if trace_array.size:
        out["min_accuracy"] = _finite(min_accuracy(trace_array, iterations, task_end, T - 1))
        out["worst_case_accuracy"] = _finite(
            worst_case_accuracy(A, trace_array, iterations, task_end, T - 1)
        )
        out["stability_gap"] = stability_gap(trace_array, iterations, task_end)
    if family == "sgd":
        out["learning_rate"] = lr
    return out


def _finite(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


SUMMARY_METRICS = (
    "final_accuracy",
    "average_incremental_accuracy",
    "forgetting",
    "backward_transfer",
    "min_accuracy",
    "worst_case_accuracy",
    "stability_gap",
    "total_seconds",
    "peak_memory_MiB",
)


def run(config: RunConfig, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every method on every seed; return the results (the ``results.json`` schema):

    ``config``, ``library_version``, ``dataset`` (name, classes, sizes, source, license),
    ``encoder``, ``scenarios`` (per seed: steps, classes), and ``methods[name]`` with
    ``seeds[seed]`` (accuracy matrix A[i][j], accuracy on all seen classes after each step,
    final / average incremental accuracy, forgetting, backward transfer, per-class accuracy,
    step times, peak memory, the continual-evaluation trace with min-ACC, WC-ACC and the
    stability gap) and ``summary[metric] = {mean, std}`` over seeds.
    """
    from forgetless import __version__

    config.validate()
    data = data or load_features(config)
    dataset = data["dataset"]
    results: dict[str, Any] = {
        "config": asdict(config),
        "library_version": __version__,
        "dataset": {
            "name": dataset.name,
            "classes": list(dataset.classes),
            "n_train": int(len(data["y_train"])),
            "n_test": int(len(data["y_test"])),
            "source": getattr(dataset, "source", ""),
            "license": getattr(dataset, "license", ""),
        },
        "encoder": {"name": config.encoder, "dim": int(data["X_train"].shape[1])},
        "scenarios": {},
        "methods": {m: {"seeds": {}} for m in config.methods},
    }
    info = getattr(dataset, "info", {}) or {}
    domains = (
        (np.asarray(info["domain_train"]), np.asarray(info["domain_test"]))
        if "domain_train" in info
        else None
    )
    jobs = [(seed, m) for seed in config.seeds for m in config.methods]
    show = config.progress if config.progress is not None else sys.stderr.isatty()
    for seed, name in tqdm(jobs, desc="runs", disable=not show):
        scenario = _make_scenario(config, data["y_train"], data["y_test"], seed, domains)
        results["scenarios"][str(seed)] = scenario.describe()
        results["methods"][name]["seeds"][str(seed)] = _run_method(
            name, config, data, scenario, seed
        )
    for entry in results["methods"].values():
        entry["summary"] = {}
        for metric in SUMMARY_METRICS:
            values = [s.get(metric) for s in entry["seeds"].values()]
            values = [v for v in values if v is not None]
            if values:
                entry["summary"][metric] = {
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values)),
                }
    return results


def save_results(results: dict[str, Any], output: str | Path) -> Path:
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    path = output / "results.json"
    path.write_text(json.dumps(results, indent=1))
    return path
