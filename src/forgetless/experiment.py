"""One continual-learning run: dataset -> cached encoder features -> scenario -> methods -> results.

A run is described by a :class:`RunConfig` (from flags, a TOML or YAML file, or Python; checked
before any work, see :mod:`forgetless.run_config`) and produces a results dictionary (the schema
of ``results.json``, see :func:`run`). Every method sees the same features, the same scenario and
the same seeds.

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
import time
import traceback
import tracemalloc
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.encoders.base import progress_bar
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
from forgetless.evaluation.peers import make_peer
from forgetless.learner import ContinualClassifier
from forgetless.run_config import (
    LEARNER_FAMILIES,
    METHODS,
    RUN_FILES,
    SCENARIOS,
    ConfigError,
    RunConfig,
    check_output_dir,
    shown,
)
from forgetless.scenarios import (
    OrderError,
    Scenario,
    class_incremental,
    domain_incremental,
    few_shot,
    online_blurry,
)

__all__ = [  # the run's names, and the config's public ones, which still import from here
    "ADAPTED_SUFFIX",
    "METHODS",
    "RUN_FILES",
    "SCENARIOS",
    "SUMMARY_METRICS",
    "WARM_UP_ROWS",
    "WARM_UP_WIDTH",
    "ConfigError",
    "MethodsFailed",
    "RunConfig",
    "adapt_first_session",
    "check_output_dir",
    "encode_dataset",
    "load_features",
    "make_scenarios",
    "method_features",
    "method_settings",
    "prepare_dataset",
    "run",
    "save_results",
]

_LR_GRID = (0.3, 0.1, 0.03, 0.01)
ADAPTED_SUFFIX = "+adapted"  # results name of a method run on the adapted encoder's features


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


def prepare_dataset(config: RunConfig) -> Any:
    """The dataset a run sees, not yet encoded: optional stratified subsets, then domains."""
    from forgetless.data import load_dataset, stratified_sample

    dataset = load_dataset(config.dataset, **config.dataset_options)
    domains = config.scenario.get("domains", "transforms")
    incremental = config.scenario.get("kind") == "domain-incremental"
    if incremental and domains == "glyph-style":  # read from the whole split's layout
        dataset = _checked_domains(dataset, config)
    for split in ("train", "test"):  # optional stratified subsets, fixed by seed 0
        if config.subset.get(split):
            whole = getattr(dataset, split)
            size, classes = config.subset[split], np.unique(whole.labels).size
            if not classes <= size <= len(whole.labels):
                raise ConfigError(
                    f"subset.{split} = {size}: dataset {config.dataset!r} has "
                    f"{len(whole.labels)} {split} rows of {classes} classes; a stratified subset "
                    f"takes {classes} to {len(whole.labels)} (at least one per class)",
                    f"subset.{split}",
                )
            rows = stratified_sample(whole.labels, config.subset[split], seed=0)
            info = dict(dataset.info or {})
            if f"domain_{split}" in info:  # each kept row keeps its domain
                info[f"domain_{split}"] = np.asarray(info[f"domain_{split}"])[rows].tolist()
            dataset = dataclasses.replace(dataset, **{split: whole.subset(rows)}, info=info)
    if incremental and domains != "glyph-style":  # transforms of the rows kept
        dataset = _checked_domains(dataset, config)
    return dataset


def _checked_domains(dataset: Any, config: RunConfig) -> Any:
    """The dataset with its domains (:func:`_with_domains`), or a ConfigError saying why not."""
    try:
        return _with_domains(dataset, config.scenario)
    except ValueError as err:
        source = config.scenario.get("domains", "transforms")
        raise ConfigError(
            f"scenario.domains = {shown(source)} does not fit dataset {config.dataset!r}: {err}",
            "scenario.domains",
        ) from err


def encode_dataset(config: RunConfig, dataset: Any, encoder: Any = None) -> dict[str, Any]:
    """Encoder features of both splits, through the cache (``encoder`` defaults to the
    config's)."""
    from forgetless.cache import FeatureCache, dataset_features

    if encoder is None:
        encoder = _built_encoder(config)
    _check_modality(config, dataset, encoder)
    cache = FeatureCache(config.cache_dir)
    try:
        X_train, X_test = dataset_features(encoder, dataset, cache, progress=config.progress)
    except (ValueError, TypeError) as err:  # inputs the encoder cannot read, in one line
        raise ConfigError(
            f"encoder {shown(config.encoder)} cannot encode dataset {shown(config.dataset)}: "
            f"{str(err)[:300]}",
            "encoder",
        ) from None
    return {
        "dataset": dataset,
        "encoder": encoder,
        "X_train": np.asarray(X_train, dtype=np.float64),
        "X_test": np.asarray(X_test, dtype=np.float64),
        "y_train": np.asarray(dataset.train.labels),
        "y_test": np.asarray(dataset.test.labels),
    }


def _built_encoder(config: RunConfig) -> Any:
    """The config's encoder; an option it refuses (a device this machine lacks, a value no
    table check knows) is a :class:`ConfigError` naming ``encoder_options``."""
    from forgetless.encoders import EncoderNotAvailableError, load_encoder

    try:
        return load_encoder(config.encoder, **config.encoder_options)
    except EncoderNotAvailableError:
        raise
    except (ValueError, TypeError, RuntimeError) as err:
        if not config.encoder_options:  # its files, not options: name the encoder
            raise ConfigError(
                f"encoder {shown(config.encoder)} cannot be loaded: {str(err)[:300]}",
                "encoder",
            ) from None
        raise ConfigError(
            f"encoder {shown(config.encoder)} cannot be built with encoder_options = "
            f"{shown(config.encoder_options)[:200]}: {str(err)[:300]}",
            "encoder_options",
        ) from None


_ENCODERS_FOR = {  # what to suggest for a dataset's kind of input
    "image": "an image encoder (raw, efficientnet-lite0, ...)",
    "text": "a text encoder (minilm, sentence-transformers:...)",
    "array": "encoder features, which passes feature rows on as they are (or, for images, "
    "the dataset option modality=image)",
}


def _check_modality(config: RunConfig, dataset: Any, encoder: Any) -> None:
    """Refuse an encoder that reads another kind of input than the dataset holds: a text
    encoder given image paths encodes the paths (whose folder names are the classes), and the
    raw pixel encoder given feature rows reads them as pixels."""
    holds, reads = dataset.modality, encoder.modality
    if holds == reads:
        return
    kinds = {"image": "images", "text": "texts", "array": "feature rows (numbers, not images)"}
    raise ConfigError(
        f"dataset {shown(config.dataset)} holds {kinds.get(holds, holds)}, but encoder "
        f"{shown(config.encoder)} reads {kinds.get(reads, reads)}: use "
        f"{_ENCODERS_FOR.get(holds, 'an encoder of that kind')}",
        "encoder",
    )


def _unencoded(config: RunConfig, dataset: Any) -> dict[str, Any]:
    """What :func:`encode_dataset` returns, without the features (adapted runs only)."""
    encoder = _built_encoder(config)
    _check_modality(config, dataset, encoder)
    return {
        "dataset": dataset,
        "encoder": encoder,
        "y_train": np.asarray(dataset.train.labels),
        "y_test": np.asarray(dataset.test.labels),
    }


def _check_first_tasks(scenarios: dict[int, Scenario], y_train: np.ndarray) -> None:
    """Adaptation trains a classifier on the first task: it needs two classes there."""
    for seed, scenario in scenarios.items():
        classes = np.unique(y_train[scenario.steps[0].train])
        if len(classes) < 2:
            raise ConfigError(
                f"[first_session_adaptation] needs at least 2 classes in the first task, but "
                f"seed {seed}'s first task has {len(classes)}; give the scenario a larger first "
                "step (scenario.initial) or remove the table",
                "first_session_adaptation",
            )


def adapt_first_session(
    config: RunConfig, data: dict[str, Any], scenario: Scenario, seed: int
) -> dict[str, Any]:
    """Adapt the encoder on ``scenario``'s first task only (its training rows), then encode
    both splits with the adapted, frozen encoder through the cache (keyed by its fingerprint).

    Returns :func:`encode_dataset`'s dictionary plus ``adaptation``: what was trained, for how
    long, and the adapted encoder's fingerprint. Later tasks only ever see frozen features.
    """
    from forgetless.adaptation import adapt_encoder

    table = config.first_session_adaptation or {}
    first = data["dataset"].train.subset(scenario.steps[0].train)
    began = time.perf_counter()
    encoder = adapt_encoder(
        data["encoder"],
        first.inputs,
        first.labels,
        method=table.get("method"),
        epochs=table.get("epochs"),
        learning_rate=table.get("learning_rate"),
        seed=seed,
        validation_fraction=table.get("validation_fraction", 0.2),
        progress=config.progress,
        keep_plain=table.get("keep_plain"),
        refresh_norms=table.get("refresh_norms"),
        views=table.get("views"),
        contrastive=table.get("contrastive"),
        **{
            key: table[key] for key in ("min_classes", "significance") if table.get(key) is not None
        },
    )
    adapt_seconds = time.perf_counter() - began
    # Nothing changed (too few classes, or no gain beyond chance): the plain features are the
    # adapted ones bit for bit, so they come from the plain encoder's cache entry.
    unchanged = not encoder.tensors and not encoder.keep_plain
    out = encode_dataset(config, data["dataset"], data["encoder"] if unchanged else encoder)
    info = {k: v for k, v in encoder.info.items() if k != "history"}
    out["adaptation"] = {
        **info,
        "encoder": encoder.name,
        "fingerprint": encoder.fingerprint(),
        "tensors_sha256": encoder.tensors_sha256,
        "unchanged": unchanged,
        "adapt_seconds": adapt_seconds,
        "encode_seconds": time.perf_counter() - began - adapt_seconds,
        "history": encoder.info.get("history", []),
    }
    return out


def load_features(config: RunConfig) -> dict[str, Any]:
    """Dataset, encoder features through the cache, optional stratified subsets."""
    return encode_dataset(config, prepare_dataset(config))


def _domains(dataset: Any) -> tuple[np.ndarray, np.ndarray] | None:
    info = getattr(dataset, "info", {}) or {}
    if "domain_train" not in info:
        return None
    return np.asarray(info["domain_train"]), np.asarray(info["domain_test"])


def make_scenarios(
    config: RunConfig,
    y_train: np.ndarray,
    y_test: np.ndarray,
    domains: Any = None,
    classes: Any = None,
) -> dict[int, Scenario]:
    """Every seed's scenario, built from the labels alone (cheap): a scenario the dataset cannot
    make (``initial`` above its class count, ...) is a :class:`ConfigError` before any encoding
    or training. ``classes``: the dataset's class names, for messages."""
    n = int(np.unique(y_train).size)
    about = f"dataset {config.dataset!r} has {n} classes"
    untrained = np.setdiff1d(np.unique(y_test), np.unique(y_train))
    if untrained.size:  # no step would teach them: their test rows would count nowhere
        named = [
            repr(classes[i]) if classes is not None and 0 <= i < len(classes) else str(i)
            for i in untrained[:5].tolist()
        ]
        raise ConfigError(
            f"dataset {config.dataset!r}: class {', '.join(named)} has test rows but no "
            "training rows, so no step teaches it; remove its test rows or add training rows "
            "(a misspelt class folder or label?)",
            "dataset",
        )
    if domains is not None:
        untaught = np.setdiff1d(np.unique(domains[1]), np.unique(domains[0]))
        if untaught.size:  # domains come from the training rows: these would count nowhere
            raise ConfigError(
                f"dataset {config.dataset!r}: domain {', '.join(map(str, untaught[:5]))} has "
                "test rows but no training rows, so no step teaches it; give the training "
                "split rows of that domain (a larger subset.train), or leave the domain out",
                "scenario",
            )
    limits = {"initial": (0, n), "base": (1, n - 1), "n_tasks": (1, n), "increment": (1, n)}
    for key, (low, high) in limits.items():
        value = config.scenario.get(key)
        if isinstance(value, int) and value > high:
            raise ConfigError(
                f"scenario.{key} = {value} is too large: {about}; use {low} to {high}",
                f"scenario.{key}",
            )
    base, ways = config.scenario.get("base"), config.scenario.get("ways")
    if isinstance(base, int) and isinstance(ways, int) and 0 < base < n and ways > n - base:
        raise ConfigError(  # as an increment larger than the classes is: no such session
            f"scenario.ways = {ways} is too large: {about}, {n - base} after the {base} base "
            f"classes; use 1 to {n - base}",
            "scenario.ways",
        )
    scenarios = {}
    for seed in config.seeds:
        try:
            scenarios[seed] = _make_scenario(config, y_train, y_test, seed, domains)
        except OrderError as err:
            raise ConfigError(f"scenario.order: {err}", "scenario.order") from err
        except (ValueError, TypeError) as err:  # e.g. an order of values that do not sort
            raise ConfigError(f"scenario: {err} ({about})", "scenario") from err
        steps = scenarios[seed].steps
        for number, step in enumerate(steps, 1):
            if not len(step.train):  # a stream too short for its tasks
                raise ConfigError(
                    f"scenario: step {number} of {len(steps)} has no training rows; use fewer "
                    "tasks, a lower scenario.blurry (which moves rows to other tasks), or a "
                    "larger subset.train",
                    "scenario",
                )
            if not len(step.test):  # nothing to score it on
                names = ", ".join(str(c) for c in step.classes[:5])
                raise ConfigError(
                    f"scenario: step {number} of {len(steps)} (classes {names}) "
                    "has training rows but no test rows to score it on; give the test split "
                    "rows of those classes, or a larger subset.test",
                    "scenario",
                )
        tuned = [m for m in config.methods if METHODS[m][0] == "sgd" and not config.sgd.get("lr")]
        if tuned and len(steps[0].train) < 2:
            raise ConfigError(
                f"sgd: {tuned[0]} tunes its learning rate on a held-out fifth of the first "
                f"step's training rows, and that step has {len(steps[0].train)}; set sgd.lr, "
                "or give the first step more rows",
                "sgd.lr",
            )
        guided = [
            m
            for m in config.methods
            if METHODS[m][0] in LEARNER_FAMILIES
            and {**config.learner, **METHODS[m][1]}.get("projection") == "guided"
        ]
        first = steps[0].batches[0] if steps[0].batches else steps[0].train
        if guided and len(first) < 2:
            raise ConfigError(
                f"{guided[0]} builds its guided layer on the first batch it learns, and that "
                f"batch has {len(first)} row; the layer needs at least 2: a larger "
                "scenario.batch_size, or more rows in the first step (scenario.initial, "
                "scenario.order, subset.train)",
                "scenario.batch_size" if steps[0].batches else "scenario",
            )
    return scenarios


def _tune_lr(settings: dict[str, Any], X: np.ndarray, y: np.ndarray, seed: int) -> float:
    """Pick SGD's learning rate on a held-out fifth of the first step's data (never the test)."""
    rng = np.random.default_rng(seed)
    holdout = rng.random(len(y)) < 0.2
    if holdout.all() or not holdout.any():  # a few rows can draw none (or all): take a fifth
        holdout = np.zeros(len(y), dtype=bool)
        holdout[rng.permutation(len(y))[: max(1, len(y) // 5)]] = True
    best, best_acc = _LR_GRID[0], -1.0
    for lr in _LR_GRID:
        head = SGDHead(**{**settings, "lr": lr, "seed": seed})
        head.partial_fit(X[~holdout], y[~holdout])
        acc = head.score(X[holdout], y[holdout])
        if acc > best_acc + 1e-12:
            best, best_acc = lr, acc
    return best


def method_features(
    name: str, X: np.ndarray, X_test: np.ndarray, first: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The features method ``name`` reads in a run, given the rows of the first step.

    forgetless's own methods read them centred on the first step's mean and divided by one
    scalar scale, both from the first step's training rows only (no look-ahead; a per-feature
    scale from few classes would blow up features that are near constant there). The peers
    read the encoder's features as they come, as their own code does: their fixed settings
    (ACIL's gamma, RanDumb's and KLDA's "scale" kernel width, Fly-CL's and RanPAC's ridge
    grids) assume that.

    >>> X = np.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]])
    >>> method_features("ncm", X, X[:1], np.array([0, 1]))[0].tolist()
    [[-1.0, -1.0], [1.0, 1.0], [2.0, 2.0]]
    >>> method_features("ranpac", X, X[:1], np.array([0, 1]))[0] is X
    True
    """
    if METHODS[name][0] == "peer":
        return X, X_test
    mean = X[first].mean(axis=0)
    scale = float(np.sqrt(((X[first] - mean) ** 2).mean(axis=1).mean())) or 1.0
    return (X - mean) / scale, (X_test - mean) / scale


def method_settings(name: str, config: RunConfig) -> dict[str, Any]:
    """The settings method ``name`` runs with in ``config``: the learner's (``learner``, for
    the methods built as a ContinualClassifier; the width, for a peer) or SGD's (``sgd``; one
    epoch in an online-blurry stream), then the method's own, which win (``forgetless-rls``
    fixes ``alpha``, ``forgetless-guided`` its ``projection``).

    >>> method_settings("forgetless-rls", RunConfig(dataset="digits", learner={"alpha": 10.0}))
    {'alpha': 1.0, 'head': 'rls'}
    """
    family, own = METHODS[name]
    if family in LEARNER_FAMILIES:
        return {**config.learner, **own}
    if family == "sgd":
        one_pass = config.scenario.get("kind") == "online-blurry"  # a stream is seen once
        return {**config.sgd, **own, **({"epochs": 1} if one_pass else {})}
    return {**own, "n_components": config.learner.get("n_components")}  # None: the peer's own


def _overridden(config: RunConfig) -> list[str]:
    """One line per learner setting that some listed methods replace by their own (all of
    them replacing it is a ConfigError): the run records each method's settings."""
    lines = []
    for key, value in config.learner.items():
        own = [
            f"{m} ({key} = {shown(METHODS[m][1][key])})"
            for m in config.methods
            if METHODS[m][0] in LEARNER_FAMILIES
            and key in METHODS[m][1]
            and METHODS[m][1][key] != value
        ]
        if own:
            lines.append(
                f"learner.{key} = {shown(value)} does not apply to {', '.join(own)}: "
                f"{'the method sets' if len(own) == 1 else 'those methods set'} it"
            )
    return lines


WARM_UP_ROWS = 64  # rows of the first step an untimed, thrown-away instance learns first
WARM_UP_WIDTH = 256  # at most this width M there: a layer's build (M x M) is the method's work


def _new_model(
    name: str, config: RunConfig, seed: int, lr: float | None = None, on_iteration: Any = None
) -> Any:
    """A fresh model of method ``name`` for ``seed`` (the SGD methods at learning rate ``lr``,
    calling ``on_iteration`` every ``eval_every`` iterations)."""
    family, settings = METHODS[name]
    if family == "sgd":
        sgd_settings = {k: v for k, v in method_settings(name, config).items() if k != "lr"}
        return SGDHead(
            **sgd_settings,
            lr=lr,
            seed=seed,
            eval_every=config.eval_every if on_iteration is not None else 0,
            on_iteration=on_iteration,
        )
    if family == "peer":  # a peer's own procedure, at the learner's width (its own if unset)
        return make_peer(settings["method"], config.learner.get("n_components"), seed)
    return ContinualClassifier(**{**method_settings(name, config), "random_state": seed})


def _warm_up(
    name: str, config: RunConfig, X: np.ndarray, y: np.ndarray, scenario: Scenario, seed: int
) -> None:
    """Let a fresh instance of method ``name`` learn a handful of the first step's rows (up to
    :data:`WARM_UP_ROWS`, a few per class) and predict, untimed, then throw it away: the
    one-time costs of a process (lazy imports, the first BLAS and LAPACK calls) are then not
    counted in the first timed step of whichever method and seed a run happens to start with.
    Its width is at most :data:`WARM_UP_WIDTH`, which keeps it cheap: what grows with the width
    (a guided layer's M x M eigendecomposition took 13 s at M = 2,000) is each instance's own
    work, not the process's. Best effort: the instance shares no state with the timed one,
    and a method that cannot learn from so few rows skips it (the timed pass meets any real
    problem itself)."""
    first = scenario.steps[0].train
    classes = np.unique(y[first])
    per_class = max(2, WARM_UP_ROWS // classes.size)
    rows = np.concatenate([first[y[first] == c][:per_class] for c in classes])
    lr = config.sgd.get("lr") or _LR_GRID[0]
    width = min(config.learner.get("n_components") or WARM_UP_WIDTH, WARM_UP_WIDTH)
    narrow = dataclasses.replace(config, learner={**config.learner, "n_components": width})
    with warnings.catch_warnings():  # what so few rows make a method say is not the run's
        warnings.simplefilter("ignore")
        try:
            model = _new_model(name, narrow, seed, lr)
            if METHODS[name][0] == "joint":
                model.fit(X[rows], y[rows])
            else:
                model.partial_fit(X[rows], y[rows])
            model.predict(X[rows[:2]])
        except Exception:  # best effort, see above
            pass


def _run_method(
    name: str,
    config: RunConfig,
    data: dict[str, Any],
    scenario: Scenario,
    seed: int,
    warm_up: bool = True,
    where: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Method ``name`` on ``scenario``: its accuracies and step times from one pass with
    tracemalloc off, then (``config.measure_memory``) its peak memory from a second, untimed
    pass of the same steps under tracemalloc, on a fresh instance with the same seed, whose
    accuracies are not used. ``warm_up``: first :func:`_warm_up`. ``where["step"]`` follows
    the step being learned (1-based; 0 before the first), for a failure to name it."""
    family = METHODS[name][0]
    where = {} if where is None else where
    where["step"], where["pass"] = 0, "timed"
    y = data["y_train"]
    first = scenario.steps[0].train
    X, Xt = method_features(name, data["X_train"], data["X_test"], first)
    if warm_up:
        _warm_up(name, config, X, y, scenario, seed)
    tuning, lr = 0.0, None  # a learning-rate search on the first task is the method's own work
    if family == "sgd":
        where["step"] = 1
        began = time.perf_counter()
        lr = config.sgd.get("lr") or _tune_lr(
            {k: v for k, v in method_settings(name, config).items() if k != "lr"},
            X[first],
            y[first],
            seed,
        )
        tuning = time.perf_counter() - began
    if tracemalloc.is_tracing():  # started by the caller: it slows the steps timed here
        warnings.warn(
            "tracemalloc is tracing while the run times its steps: its bookkeeping slows "
            "methods that allocate often, so their step times are too long",
            RuntimeWarning,
            stacklevel=2,
        )
    out = _learn_steps(name, config, X, Xt, data, scenario, seed, lr, where)
    out["step_seconds"][0] += tuning
    out["total_seconds"] = float(sum(out["step_seconds"]))
    peak = None
    if config.measure_memory:
        where["pass"] = "memory"
        again = (name, config, X, Xt, data, scenario, seed, lr, where)  # a fresh instance
        peak = _peak_bytes(lambda: _learn_steps(*again))
    out["peak_memory_MiB"] = None if peak is None else peak / 2**20
    if family == "sgd":
        out["learning_rate"] = lr
    return out


def _peak_bytes(work: Any) -> int:
    """The peak of Python's allocations (tracemalloc) while ``work()`` runs, above what was
    allocated before it; a tracing started outside is left running."""
    outside = tracemalloc.is_tracing()
    if outside:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
    else:
        before = 0
        tracemalloc.start()
    try:
        work()
        return max(0, tracemalloc.get_traced_memory()[1] - before)
    finally:
        if not outside:
            tracemalloc.stop()


def _learn_steps(
    name: str,
    config: RunConfig,
    X: np.ndarray,
    Xt: np.ndarray,
    data: dict[str, Any],
    scenario: Scenario,
    seed: int,
    lr: float | None,
    where: dict[str, Any],
) -> dict[str, Any]:
    """One pass of method ``name`` through the steps on a fresh instance: learn each step
    (timed), evaluate it (untimed), and return the results of :func:`_run_method` but its
    memory."""
    family = METHODS[name][0]
    y, yt = data["y_train"], data["y_test"]
    T = len(scenario.steps)
    online = scenario.kind == "online-blurry"
    A = np.full((T, T), np.nan)
    seen_acc: list[float] = []
    step_seconds: list[float] = []
    trace: list[list[float]] = []
    trace_iterations: list[int] = []
    task_end: list[int] = []
    current = {"step": 0, "evaluating": 0.0}  # seconds spent evaluating within the step

    def evaluate_trace(iteration: int) -> None:
        began = time.perf_counter()
        row = [float("nan")] * T
        for j in range(current["step"] + 1):
            test = scenario.steps[j].test
            row[j] = float((model.predict(Xt[test]) == yt[test]).mean())
        trace.append(row)
        trace_iterations.append(iteration)
        current["evaluating"] += time.perf_counter() - began

    model = _new_model(name, config, seed, lr, evaluate_trace if family == "sgd" else None)
    batches_done = 0
    for i, step in enumerate(scenario.steps):
        current["step"], current["evaluating"] = i, 0.0
        where["step"] = i + 1
        start = time.perf_counter()
        if family == "joint":  # the upper bound: a fresh fit on everything seen so far
            seen_train = np.concatenate([s.train for s in scenario.steps[: i + 1]])
            model = _new_model(name, config, seed).fit(X[seen_train], y[seen_train])
            if online:  # the stream's batches, seen at once: the trace counts them alike
                batches_done += len(step.batches)
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
        # learning only: the anytime evaluations inside the step are not the method's work
        step_seconds.append(time.perf_counter() - start - current["evaluating"])
        iteration = model.iteration if family == "sgd" else (batches_done if online else i + 1)
        task_end.append(iteration)
        for j in range(i + 1):
            test = scenario.steps[j].test
            A[i, j] = float((model.predict(Xt[test]) == yt[test]).mean())
        seen = scenario.seen_test(i)
        seen_acc.append(float((model.predict(Xt[seen]) == yt[seen]).mean()))
        if not trace_iterations or trace_iterations[-1] != iteration:
            # every task's end is an evaluation point (between them only SGD and streams have
            # some): min-ACC and the stability gap must see where a task left each accuracy
            trace.append(A[i].tolist())
            trace_iterations.append(iteration)

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
        "forgetting": _finite(forgetting(A)),
        "backward_transfer": _finite(backward_transfer(A)),
        "per_class_accuracy": per_class,
        "step_seconds": step_seconds,
        "total_seconds": float(sum(step_seconds)),
        "peak_memory_MiB": None,
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
        out["stability_gap"] = _finite(stability_gap(trace_array, iterations, task_end))
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
    ``encoder``, ``measurement`` (how times and memory were measured, see below),
    ``scenarios`` (per seed: steps, classes, and in a domain-incremental run each step's domain
    and the ``domain_order``), and ``methods[name]`` with ``seeds[seed]`` (accuracy matrix
    A[i][j], accuracy on all seen classes after each step, final / average incremental
    accuracy, forgetting, backward transfer, per-class accuracy, step times, peak memory, the
    continual-evaluation trace with min-ACC, WC-ACC and the stability gap; a metric the run
    cannot define is null) and ``summary[metric] = {mean, std, seeds}`` over the seeds that
    define it (std: population).

    Times and memory come from separate passes: each (method, seed) learns the steps once with
    tracemalloc off, which gives the accuracies and the step times (seconds of learning,
    evaluations left out), then, with ``measure_memory`` (the default), once more on a fresh
    instance with the same seed under tracemalloc, untimed, which gives only the peak memory.
    Before its first job each method learns a handful of rows on an instance thrown away, so
    no job's time holds the process's one-time start-up costs.

    A method that raises on a seed does not stop the run: ``methods[name]["failed"][seed]``
    records the step (1-based; 0: before the first) and the error, the other methods and
    seeds run on, and at the end :class:`MethodsFailed` is raised carrying the results (the
    command line writes them and exits with status 1).

    With ``first_session_adaptation`` set, each seed's encoder is adapted on that seed's first
    task and every method also runs on its features as ``"<method>+adapted"`` (the same class
    order); ``adaptation[seed]`` records the training (see :func:`adapt_first_session`).
    ``compare = false`` in that table runs only the adapted methods.
    """
    from forgetless import __version__

    config.validate(output=False)
    for line in _overridden(config):  # e.g. learner.alpha beside forgetless-rls's own
        warnings.warn(line, UserWarning, stacklevel=2)
    adaptation = config.first_session_adaptation
    compare = adaptation is None or adaptation.get("compare", True)
    if data is None:  # scenarios first: a config the data cannot run fails before encoding
        dataset = prepare_dataset(config)
        labels = (np.asarray(dataset.train.labels), np.asarray(dataset.test.labels))
        scenarios = make_scenarios(config, *labels, _domains(dataset), dataset.classes)
        if adaptation is not None:
            _check_first_tasks(scenarios, labels[0])
        data = encode_dataset(config, dataset) if compare else _unencoded(config, dataset)
    else:
        labels = (data["y_train"], data["y_test"])
        scenarios = make_scenarios(
            config, *labels, _domains(data["dataset"]), data["dataset"].classes
        )
        if adaptation is not None:
            _check_first_tasks(scenarios, labels[0])
    dataset = data["dataset"]
    names = [m for m in config.methods if compare]
    if adaptation is not None:
        names += [m + ADAPTED_SUFFIX for m in config.methods]
    dim = data["X_train"].shape[1] if "X_train" in data else data["encoder"].dim
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
        "encoder": {"name": config.encoder, "dim": int(dim)},
        "scenarios": {},
        "methods": {
            m: {"settings": method_settings(m.removesuffix(ADAPTED_SUFFIX), config), "seeds": {}}
            for m in names
        },
    }

    results["measurement"] = {
        "step_seconds": "each step's learning (with the refit a prediction triggers; the "
        "evaluations left out), timed with tracemalloc off",
        "peak_memory": "the peak of Python's allocations (tracemalloc) in a separate, untimed "
        "pass of the same steps on a fresh instance with the same seed; its accuracies are not "
        "used"
        if config.measure_memory
        else None,
        "separate_memory_pass": bool(config.measure_memory),
        "warm_up_rows": WARM_UP_ROWS,
        "warm_up_width": WARM_UP_WIDTH,
    }
    if adaptation is not None:
        results["adaptation"] = {}
    jobs = [(seed, m) for seed in config.seeds for m in names]
    adapted: dict[int, dict[str, Any]] = {}
    warmed: set[str] = set()
    errors: list[BaseException] = []
    # a bar on a terminal, plain lines in a log (a long comparison is not silent there)
    with progress_bar(len(jobs), "runs", config.progress, unit="run") as bar:
        for seed, name in jobs:
            error = _run_job(config, data, scenarios[seed], seed, name, adapted, results, warmed)
            if error is not None:
                errors.append(error)
            bar.update(1)
    for entry in results["methods"].values():
        entry["summary"] = {}
        for metric in SUMMARY_METRICS:  # in seed order: the same sums whatever order was given
            seeds = sorted(entry["seeds"], key=int)
            values = [entry["seeds"][seed].get(metric) for seed in seeds]
            values = [v for v in values if v is not None]
            if values:  # "std": the population standard deviation over the seeds (ddof = 0)
                entry["summary"][metric] = {
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values)),
                    "seeds": len(values),
                }
    if errors:
        raise MethodsFailed(results) from errors[0]
    return results


class MethodsFailed(RuntimeError):
    """Some methods raised on some seeds; the run went on without them. ``results`` holds
    every result the run made, and each failed method's ``failed[seed]`` (the step, the error,
    its traceback); the message names the failures."""

    def __init__(self, results: dict[str, Any]) -> None:
        from forgetless.evaluation.report import failure_lines

        self.results = results
        self.failed = [name for name, e in results["methods"].items() if e.get("failed")]
        super().__init__("; ".join(failure_lines(results)))


def _run_job(
    config: RunConfig,
    data: dict[str, Any],
    scenario: Any,
    seed: int,
    name: str,
    adapted: dict[int, dict[str, Any]],
    results: dict[str, Any],
    warmed: set[str] | None = None,
) -> Exception | None:
    """One method on one seed's scenario, into ``results``; a ``+adapted`` method first adapts
    the encoder on that seed's first task (kept in ``adapted`` for the seed's other methods).
    A method's first job (not in ``warmed``) warms it up first.

    An error of the method is returned, and recorded in ``results`` as the method's
    ``failed[seed]``: the step (1-based, 0 before the first), the pass, the error, its
    traceback."""
    results["scenarios"][str(seed)] = scenario.describe()
    source = data
    if name.endswith(ADAPTED_SUFFIX):
        if seed not in adapted:
            adapted.clear()  # one seed's adapted features at a time
            adapted[seed] = adapt_first_session(config, data, scenario, seed)
            results["adaptation"][str(seed)] = adapted[seed]["adaptation"]
        source = adapted[seed]
    method = name.removesuffix(ADAPTED_SUFFIX)
    warm_up = warmed is None or method not in warmed
    if warmed is not None:
        warmed.add(method)
    where: dict[str, Any] = {}
    try:
        results["methods"][name]["seeds"][str(seed)] = _run_method(
            method, config, source, scenario, seed, warm_up, where
        )
    except Exception as err:  # the method's failure; the other methods and seeds run on
        results["methods"][name].setdefault("failed", {})[str(seed)] = {
            "step": where.get("step", 0),
            "steps": len(scenario.steps),
            "pass": where.get("pass", "timed"),
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(),
        }
        return err
    return None


def save_results(results: dict[str, Any], output: str | Path) -> Path:
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    path = output / "results.json"
    path.write_text(json.dumps(results, indent=1))
    return path
