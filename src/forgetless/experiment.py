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
import inspect
import json
import math
import numbers
import os
import re
import time
import traceback
import tracemalloc
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.encoders.base import progress_bar
from forgetless.engine import make_engine
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
from forgetless.layers import fit_bytes
from forgetless.learner import DEFAULT_N_COMPONENTS, ContinualClassifier, check_memory
from forgetless.scenarios import (
    OrderError,
    Scenario,
    class_incremental,
    domain_incremental,
    few_shot,
    online_blurry,
)

# name -> (family, settings). "forgetless" methods read ContinualClassifier settings from
# ``RunConfig.learner``; the gradient baselines from ``RunConfig.sgd``; the peers run their own
# procedure (forgetless.evaluation.peers) with the learner's width ``n_components``.
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
    "ranpac": ("peer", {"method": "ranpac"}),
    "randumb": ("peer", {"method": "randumb"}),
    "klda": ("peer", {"method": "klda"}),
    "klda-e": ("peer", {"method": "klda-e"}),
    "fly-cl": ("peer", {"method": "fly-cl"}),
    "acil": ("peer", {"method": "acil"}),
    "slda": ("peer", {"method": "slda"}),
}
_LEARNER_FAMILIES = ("analytic", "joint")  # methods built as ContinualClassifier
_SCENARIO_BUILDERS = {
    "class-incremental": class_incremental,
    "domain-incremental": domain_incremental,
    "few-shot": few_shot,
    "online-blurry": online_blurry,
}
SCENARIOS = tuple(_SCENARIO_BUILDERS)
_LR_GRID = (0.3, 0.1, 0.03, 0.01)


class ConfigError(ValueError):
    """A mistake in a run's config, found before any work, so the CLI can say it in one line.

    ``key`` is where it is (``"scenario.increment"``; None for the file as a whole) and
    ``source`` the config file, when known.
    """

    def __init__(self, message: str, key: str | None = None, source: str | None = None) -> None:
        super().__init__(message)
        self.message, self.key, self.source = message, key, source

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


def _show(value: Any) -> str:
    """A value as the config file would spell it (TOML-like), for messages."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True)
class _Number:
    """Allowed numbers: a range, integers only or not, plus some words (``"auto"``) or None."""

    low: float | None = None
    high: float | None = None
    integer: bool = False
    open_low: bool = False
    open_high: bool = False
    words: tuple[str, ...] = ()
    optional: bool = False

    def ok(self, v: Any) -> bool:
        if v is None or isinstance(v, str):
            return (v is None and self.optional) or v in self.words
        kind = numbers.Integral if self.integer else numbers.Real
        if isinstance(v, bool) or not isinstance(v, kind) or not math.isfinite(v):
            return False
        above = self.low is None or (v > self.low if self.open_low else v >= self.low)
        below = self.high is None or (v < self.high if self.open_high else v <= self.high)
        return above and below

    def __str__(self) -> str:
        text = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            text += f" in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}"
            text += ")" if self.open_high else "]"
        elif self.low is not None:
            text += f" {'>' if self.open_low else '>='} {self.low:g}"
        elif self.high is not None:
            text += f" {'<' if self.open_high else '<='} {self.high:g}"
        return " or ".join([text, *map(_show, self.words)] + ["left out"] * self.optional)


@dataclass(frozen=True)
class _OneOf:
    """Allowed values: names from a registry (or None)."""

    values: tuple[Any, ...]
    optional: bool = False

    def ok(self, v: Any) -> bool:
        return (v is None and self.optional) or (isinstance(v, str) and v in self.values)

    def __str__(self) -> str:
        return "one of " + ", ".join(map(_show, self.values)) + " (or left out)" * self.optional


@dataclass(frozen=True)
class _Type:
    """Allowed values: one Python type (a table, a list, true/false, text)."""

    type: type | tuple[type, ...]
    words: str
    optional: bool = False

    def ok(self, v: Any) -> bool:
        return (v is None and self.optional) or isinstance(v, self.type)

    def __str__(self) -> str:
        return self.words + " (or left out)" * self.optional


_INT0 = _Number(0, integer=True)
_INT1 = _Number(1, integer=True)
_SEED = _Number(0, 2**32 - 1, integer=True)  # what numpy's and scikit-learn's seeds accept
_BOOL = _Type(bool, "true or false")
_LIST = _Type(list, "a list")
_TABLE = _Type(dict, "a table")
# Ranges of the keys in each table (keys without an entry take any value their code accepts).
_SCENARIO_RANGES: dict[str, Any] = {
    "kind": _OneOf(SCENARIOS),
    "initial": _INT0,
    "increment": _INT1,
    "base": _INT1,
    "ways": _INT1,
    "shots": _INT1,
    "n_tasks": _INT1,
    "blurry": _Number(0, 1, open_high=True),
    "batch_size": _INT1,
    "order": _LIST,
    "domains": _OneOf(("transforms", "glyph-style")),
    "transforms": _LIST,
}
_DOMAIN_KEYS = ("domains", "transforms")  # domain-incremental keys read by the runner itself
# Only the obvious numeric ranges and names: the estimator's own _validate_params does the rest.
_SGD_RANGES: dict[str, Any] = {
    "lr": _Number(0, open_low=True, optional=True),
    "epochs": _INT1,
    "batch_size": _INT1,
    "weight_decay": _Number(0),
    "momentum": _Number(0, 1, open_high=True),
    "buffer_size": _INT0,
    "temperature": _Number(0, open_low=True),
    "distill_weight": _Number(0),
}
_SUBSET_RANGES: dict[str, Any] = {"train": _INT1, "test": _INT1}
_DATASET_RANGES: dict[str, Any] = {
    "test_fraction": _Number(0, 1, open_low=True, open_high=True),
    "seed": _SEED,
    "depth": _Number(1, integer=True),
    **{
        key: _Type((str, os.PathLike), "a path")
        for key in ("path", "root", "test_path", "x_train", "y_train", "x_test", "y_test")
    },
    **{
        key: _Type(str, "text")
        for key in ("train_dir", "test_dir", "text_column", "label_column", "name", "license")
    },
}
_ENCODER_RANGES: dict[str, Any] = {
    "batch_size": _INT1,
    "image_size": _INT1,
    "size": _Number(1, integer=True, optional=True),
    "threads": _Number(1, integer=True, optional=True),
    "color": _BOOL,
    "normalize": _BOOL,
    "resize": _OneOf(("squash", "crop", "pad")),
    "device": _Type(str, "a torch device name (cpu, cuda, cuda:1)"),
    "max_length": _INT1,
}
# [first_session_adaptation]: adapt the encoder on each seed's first task (forgetless.adaptation).
_ADAPTATION_RANGES: dict[str, Any] = {
    "method": _Type(str, "a method name", optional=True),
    "epochs": _Number(1, integer=True, optional=True),
    "learning_rate": _Number(0, open_low=True, optional=True),
    "validation_fraction": _Number(0, 1, open_high=True),
    "keep_plain": _BOOL,
    "refresh_norms": _BOOL,
    "views": _Number(1, integer=True, optional=True),
    "contrastive": _Number(0, optional=True),
    "min_classes": _Number(2, integer=True, optional=True),
    "significance": _Number(0, 1, open_low=True, optional=True),
    "compare": _BOOL,
}
ADAPTED_SUFFIX = "+adapted"  # results name of a method run on the adapted encoder's features
# Set by the runner for each method and seed, so not settable in [learner] / [sgd].
_RUNNER_ARGS = ("y_train", "y_test", "domain_train", "domain_test", "seed", "random_state")
_SGD_RUNNER_ARGS = ("method", "seed", "eval_every", "on_iteration")


def _check(key: str, value: Any, allowed: Any) -> None:
    if not allowed.ok(value):
        raise ConfigError(f"{key} = {_show(value)} must be {allowed}", key)


def _keywords(function: Any, skip: tuple[str, ...] = ()) -> tuple[list[str], list[str]] | None:
    """A callable's (keyword names, required names), or None when it takes ``**kwargs``."""
    params = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    names = [p.name for p in params if p.name not in skip and p.kind is not p.VAR_POSITIONAL]
    required = [p.name for p in params if p.name in names and p.default is p.empty]
    return names, required


def _check_table(
    name: str,
    table: dict[str, Any],
    valid: list[str] | None,
    ranges: dict[str, Any],
    required: tuple[str, ...] | list[str] = (),
    context: str = "",
) -> None:
    """Known keys (listing the valid ones), required keys present, values in their ranges."""
    if valid is not None:
        unknown = [str(k) for k in table if k not in valid]
        if unknown:
            listed = ", ".join(valid) or "none"
            raise ConfigError(
                f"unknown key {name}.{unknown[0]}; valid keys in [{name}]{context}: {listed}",
                f"{name}.{unknown[0]}",
            )
    missing = [k for k in required if k not in table]
    if missing:
        raise ConfigError(
            f"[{name}]{context} needs {', '.join(missing)}; add "
            + ", ".join(f"{name}.{k} = ..." for k in missing),
            f"{name}.{missing[0]}",
        )
    for key, value in table.items():
        if key in ranges:
            _check(f"{name}.{key}", value, ranges[key])


# The files a run writes in its output folder (the report adds its plots).
RUN_FILES = ("results.json", "config.json", "summary.csv", "accuracy_by_step.csv", "report.html")


def check_output_dir(output: str | os.PathLike[str], key: str = "output") -> None:
    """Raise :class:`ConfigError` unless ``output`` is, or can be made, a writable directory:
    found before the run, not after it when the results would be lost. An empty name (an unset
    shell variable) is refused: it would mean the current directory, whose files the run's
    outputs would overwrite."""
    if not str(output).strip():
        raise ConfigError(
            f"{key} is empty; name a directory for the run's outputs (e.g. runs/my-run)", key
        )
    path = Path(output)
    if os.path.lexists(path) and not path.is_dir():
        what = (
            "a link to nothing" if path.is_symlink() and not path.exists() else "an existing file"
        )
        raise ConfigError(
            f"{key} = {_show(str(output))} is {what}, not a directory; "
            "choose another directory or remove it",
            key,
        )
    for name in RUN_FILES:  # a folder in the place of a file the run writes: lost at the end
        if (path / name).is_dir():
            raise ConfigError(
                f"{key} = {_show(str(output))} holds a folder {name}, where the run writes "
                "that file; choose another directory or remove the folder",
                key,
            )
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(
            f"{key} = {_show(str(output))} cannot be made: {existing} is a file; "
            "choose another directory",
            key,
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{key} = {_show(str(output))}: {existing} is not writable; choose another directory",
            key,
        )


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
    # The learner's own default width (also the peers' width in a run).
    learner: dict[str, Any] = field(default_factory=lambda: {"n_components": DEFAULT_N_COMPONENTS})
    sgd: dict[str, Any] = field(default_factory=lambda: {"epochs": 5, "batch_size": 32})
    subset: dict[str, int] = field(default_factory=dict)  # {"train": 3000, "test": 1000}
    eval_every: int = 10  # SGD iterations (or stream batches) between continual evaluations
    # Peak memory from a second, untimed pass of each method under tracemalloc (step times come
    # from the first pass, with tracemalloc off: its bookkeeping slows some methods many times).
    # False: no second pass, no peak memory in the results.
    measure_memory: bool = True
    # None: no adaptation. A table (possibly empty): adapt the encoder on each seed's first task
    # and run every method on its features too, as "<method>+adapted" (see forgetless.adaptation).
    first_session_adaptation: dict[str, Any] | None = None
    output: str = "runs/latest"
    cache_dir: str | None = None
    progress: bool | None = None

    def validate(self, output: bool = True) -> None:
        """Check the whole config (keys, types, ranges, names against their registries and,
        unless ``output=False``, the output directory) so that a mistake stops the run before any
        work; raise :class:`ConfigError` naming the key and what is valid."""
        from forgetless.data import list_datasets
        from forgetless.encoders import list_encoders

        for key, allowed in (("dataset", _Type(str, "a name")), ("encoder", _Type(str, "a name"))):
            _check(key, getattr(self, key), allowed)
        for key in ("dataset_options", "encoder_options", "scenario", "learner", "sgd", "subset"):
            _check(key, getattr(self, key), _TABLE)
        if self.dataset not in list_datasets():
            raise ConfigError(
                f"unknown dataset {self.dataset!r}; known: {', '.join(list_datasets())}", "dataset"
            )
        family, _, spec = self.encoder.partition(":")
        known = list_encoders()
        builtin = self.encoder in known and not self.encoder.endswith(":")
        if not builtin and not (spec and family + ":" in known):
            raise ConfigError(
                f"unknown encoder {self.encoder!r}; known: {', '.join(known)} "
                '(adapters take a model after the colon, e.g. "timm:resnet18")',
                "encoder",
            )
        self._validate_methods_and_seeds()
        kind = self.scenario.get("kind")
        if kind not in SCENARIOS:
            raise ConfigError(
                f"unknown scenario kind {kind!r}; known: {', '.join(SCENARIOS)}"
                if "kind" in self.scenario
                else f"[scenario] needs kind = one of {', '.join(map(_show, SCENARIOS))}",
                "scenario.kind",
            )
        valid, required = _keywords(_SCENARIO_BUILDERS[kind], _RUNNER_ARGS)
        extra = _DOMAIN_KEYS if kind == "domain-incremental" else ()
        _check_table(
            "scenario",
            self.scenario,
            ["kind", *valid, *extra],
            _SCENARIO_RANGES,
            required,
            f" for kind {_show(kind)}",
        )
        self._validate_options()
        self._validate_learner()
        self._validate_adaptation()
        sgd_keys, _ = _keywords(SGDHead, _SGD_RUNNER_ARGS)
        _check_table("sgd", self.sgd, sgd_keys, _SGD_RANGES)
        _check_table("subset", self.subset, list(_SUBSET_RANGES), _SUBSET_RANGES)
        _check("eval_every", self.eval_every, _INT0)
        _check("measure_memory", self.measure_memory, _BOOL)
        _check("progress", self.progress, _Type(bool, "true or false", optional=True))
        _check("output", self.output, _Type((str, os.PathLike), "a directory"))
        _check("cache_dir", self.cache_dir, _Type((str, os.PathLike), "a directory", True))
        from forgetless.cache import cache_dir_problem

        if self.cache_dir is None:  # the environment's folder, not the file's: say which
            from forgetless.cache import ENV_VAR, default_cache_dir

            problem = cache_dir_problem(default_cache_dir())
            origin = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "the default feature cache"
            if problem is not None:
                raise ConfigError(problem, None, origin)
        elif (problem := cache_dir_problem(self.cache_dir)) is not None:
            raise ConfigError(f"cache_dir: {problem}", "cache_dir")
        if output:
            check_output_dir(self.output)

    def _validate_methods_and_seeds(self) -> None:
        methods, seeds = self.methods, self.seeds
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise ConfigError(
                f"methods = {_show(methods)} must be a list of names, e.g. "
                'methods = ["forgetless", "ncm"]; known: ' + ", ".join(METHODS),
                "methods",
            )
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise ConfigError(
                f"unknown methods {unknown}; known: {', '.join(METHODS)}"
                if unknown
                else f"no methods given; known: {', '.join(METHODS)}",
                "methods",
            )
        if not isinstance(seeds, list) or not all(_SEED.ok(s) for s in seeds):
            raise ConfigError(
                f"seeds = {_show(seeds)} must be a list of integers from 0 to 2**32 - 1, e.g. "
                "seeds = [0, 1, 2]",
                "seeds",
            )
        if not seeds:
            raise ConfigError("seeds = [] must give at least one seed, e.g. seeds = [0]", "seeds")
        for key, values in (("methods", methods), ("seeds", seeds)):
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ConfigError(f"{key} = {_show(values)} lists {_show(twice[0])} twice", key)

    def _validate_options(self) -> None:
        """``dataset_options`` / ``encoder_options`` against the loader's or built-in encoder's
        keyword arguments (adapters take free-form options, checked when they are built)."""
        from forgetless.data import _LOADERS
        from forgetless.encoders import (
            _BUILTIN,
            IMAGE_SIZE_OPTION,
            IMAGE_SIZES,
            READOUTS,
            _builtin,
        )

        loader = _keywords(_LOADERS[self.dataset])
        _check_table(
            "dataset_options",
            self.dataset_options,
            None if loader is None else loader[0],
            _DATASET_RANGES,
            () if loader is None else loader[1],
            f" for dataset {_show(self.dataset)}",
        )
        arrays = ("x_train", "y_train", "x_test", "y_test")
        if self.dataset == "arrays" and not (
            "path" in self.dataset_options or all(k in self.dataset_options for k in arrays)
        ):
            raise ConfigError(
                'dataset "arrays" needs its data: add dataset_options.path = "data.npz" (an '
                ".npz holding x_train, y_train, x_test, y_test; on the command line "
                "--dataset-option path=data.npz), or all four as .npy files",
                "dataset_options",
            )
        encoder = _keywords(_builtin(self.encoder)) if self.encoder in _BUILTIN else None
        _check_table(
            "encoder_options",
            self.encoder_options,
            None if encoder is None else encoder[0],
            _ENCODER_RANGES,
            context=f" for encoder {_show(self.encoder)}",
        )
        size_option = IMAGE_SIZE_OPTION.get(self.encoder)
        size = (self.encoder_options or {}).get(size_option)
        if size is not None:  # the sides the encoder can read (too small, or gigabytes per batch)
            low, high = IMAGE_SIZES[self.encoder]
            _check(f"encoder_options.{size_option}", size, _Number(low, high, integer=True))
        readout = (self.encoder_options or {}).get("readout")
        if readout is not None and self.encoder in READOUTS:  # each encoder names its own
            _check("encoder_options.readout", readout, _OneOf(READOUTS[self.encoder]))

    def _validate_adaptation(self) -> None:
        """``[first_session_adaptation]``: known keys in range, an encoder that can be adapted,
        and a method that can adapt it; checked by name, before any model is loaded."""
        from forgetless.adaptation import AdaptationNotSupportedError, adaptable_methods

        table = self.first_session_adaptation
        _check("first_session_adaptation", table, _Type(dict, "a table", optional=True))
        if table is None:
            return
        _check_table(
            "first_session_adaptation", table, list(_ADAPTATION_RANGES), _ADAPTATION_RANGES
        )
        try:
            methods = adaptable_methods(self.encoder, (self.encoder_options or {}).get("readout"))
        except AdaptationNotSupportedError as err:
            raise ConfigError(
                f"[first_session_adaptation]: {err}; leave adaptation out (drop --adapt or the "
                "[first_session_adaptation] table) or choose such an encoder",
                "first_session_adaptation",
            ) from None
        except ValueError as err:  # a readout the encoder does not have
            raise ConfigError(f"encoder_options.{err}", "encoder_options.readout") from None
        method = table.get("method")
        if method is not None and method not in methods:
            raise ConfigError(
                f"first_session_adaptation.method = {_show(method)} cannot adapt encoder "
                f"{self.encoder!r}; choose one of {', '.join(map(_show, methods))} "
                "(or leave it out for the default)",
                "first_session_adaptation.method",
            )
        if table.get("refresh_norms") and "norms" not in methods:  # batch-norm networks only
            raise ConfigError(
                f"first_session_adaptation.refresh_norms = true needs an encoder with batch "
                f"norms, and {self.encoder!r} has none; remove the key",
                "first_session_adaptation.refresh_norms",
            )
        if (table.get("views") or 1) > 1 and "norms" not in methods:  # images only
            raise ConfigError(
                f"first_session_adaptation.views > 1 makes moved copies of images, and "
                f"{self.encoder!r} does not encode images; remove the key",
                "first_session_adaptation.views",
            )
        if (method or next(iter(methods))) == "norms" and table.get("refresh_norms") is False:
            raise ConfigError(
                "first_session_adaptation.refresh_norms = false with method 'norms', which only "
                "refreshes batch-norm statistics, would leave the encoder unchanged; remove "
                "refresh_norms or choose another method",
                "first_session_adaptation.refresh_norms",
            )
        if (method or next(iter(methods))) == "norms" and (
            table.get("epochs") is not None
            or table.get("learning_rate") is not None
            or (table.get("views") or 1) > 1
            or bool(table.get("contrastive"))
        ):
            raise ConfigError(
                "first_session_adaptation.method = 'norms' trains no weight; remove epochs, "
                "learning_rate, views and contrastive",
                "first_session_adaptation.method",
            )

    def _validate_learner(self) -> None:
        """Known ContinualClassifier keys, then each analytic method's settings through the
        estimator's own ``_validate_params`` (scikit-learn parameter constraints)."""
        valid = [k for k in ContinualClassifier().get_params() if k not in _RUNNER_ARGS]
        if "random_state" in self.learner:
            raise ConfigError(
                "learner.random_state is set from seeds; remove it and list the seeds in "
                "seeds = [...]",
                "learner.random_state",
            )
        _check_table("learner", self.learner, valid, {})
        analytic = [m for m in self.methods if METHODS[m][0] in _LEARNER_FAMILIES]
        for key, value in self.learner.items():
            if analytic and all(key in METHODS[m][1] for m in analytic):
                chosen = ", ".join(f"{m}: {_show(METHODS[m][1][key])}" for m in analytic)
                raise ConfigError(
                    f"learner.{key} = {_show(value)} would be ignored: the methods set it "
                    f"themselves ({chosen}); remove it or choose other methods",
                    f"learner.{key}",
                )
        if not analytic and self.learner:  # peers (and SGD) read n_components at most
            ignored = sorted(set(self.learner) - {"n_components"})
            if ignored:
                raise ConfigError(
                    f"learner.{ignored[0]} = {_show(self.learner[ignored[0]])} would be ignored: "
                    f"none of the methods ({', '.join(self.methods)}) reads it; the peers take "
                    "only learner.n_components",
                    f"learner.{ignored[0]}",
                )
            model = ContinualClassifier(n_components=self.learner["n_components"])
            try:
                check_memory("gaussian", 1, model._checked_params()["n_components"])
            except (ValueError, TypeError) as err:
                raise ConfigError(f"learner.n_components: {err}", "learner.n_components") from err
        for name in analytic:
            settings = METHODS[name][1]
            model = ContinualClassifier(**{**self.learner, **settings, "random_state": 0})
            try:
                params = model._checked_params()
            except (ValueError, TypeError) as err:
                found = re.search(r"'(\w+)' parameter", str(err))
                key = f"learner.{found.group(1)}" if found else "learner"
                raise ConfigError(f"{key} (method {name!r}): {err}", key) from err
            # what the first batch would find out after the data is loaded: the device, and
            # whether G (M x M, any layer) fits in memory
            key = "learner.device"
            try:
                make_engine(params["device"], params["compute_dtype"])
                key = "learner.n_components"
                if params["projection"] != "none":  # a guided layer's build needs no data to size
                    build = (
                        fit_bytes("guided", 1, params["n_components"], params["projection_params"])
                        if params["projection"] == "guided"
                        else 0
                    )
                    kind = "guided" if build else "gaussian"
                    check_memory(kind, 1, params["n_components"], build)
            except (ValueError, ImportError) as err:
                raise ConfigError(f"{key} (method {name!r}): {err}", key) from err

    @classmethod
    def from_file(cls, path: str | Path) -> RunConfig:
        """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) config; unknown keys are errors.

        Every problem with the file itself is a :class:`ConfigError` naming the file; the
        values are checked by :meth:`validate` (after command-line flags override them).
        """
        path = Path(path)

        def fail(message: str, key: str | None = None) -> ConfigError:
            return ConfigError(message, key, source=str(path))

        suffix = path.suffix.lower()
        if path.is_dir():
            raise fail("is a directory; give a .toml or .yaml config file (see configs/)")
        if suffix not in (".toml", ".yaml", ".yml"):
            raise fail(
                f"config must be .toml, .yaml or .yml, got {_show(path.suffix or path.name)}; "
                "write it as TOML (see configs/)"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise fail("no such config file; see configs/ for examples") from None
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise fail(f"cannot read the config: {reason}") from None
        if suffix == ".toml":
            import tomllib

            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as err:
                raise fail(f"not valid TOML: {err}") from None
            except RecursionError:
                raise fail(_TOO_DEEP) from None
        else:
            try:
                import yaml
            except ImportError:
                raise fail("YAML configs need PyYAML: pip install pyyaml") from None
            try:
                data = yaml.load(text, Loader=_unique_keys_loader(yaml))  # noqa: S506 (safe)
            except yaml.YAMLError as err:
                raise fail(f"not valid YAML: {_yaml_problem(err)}") from None
            except RecursionError:
                raise fail(_TOO_DEEP) from None
            data = {} if data is None else data
        if _too_large(data):  # aliases of aliases: a few lines that expand to billions
            raise fail(
                f"the config expands to more than {_MAX_CONFIG_VALUES:,} values or nests deeper "
                f"than {_MAX_CONFIG_DEPTH} levels (YAML aliases repeated within each other?); "
                "write the values out"
            )
        if not isinstance(data, dict):
            raise fail(
                f"the config must be a mapping of keys (dataset: ..., scenario: ...), "
                f"got a {type(data).__name__} at top level"
            )
        known = set(cls.__dataclass_fields__)
        extra = sorted(str(k) for k in data if k not in known)
        if extra:
            raise fail(f"unknown config keys {extra}; known: {', '.join(sorted(known))}", extra[0])
        return cls(**data)


_MAX_CONFIG_VALUES = 100_000  # no config needs more; an alias bomb has billions
_MAX_CONFIG_DEPTH = 64
_TOO_DEEP = f"the config nests deeper than can be read; keep it under {_MAX_CONFIG_DEPTH} levels"


def _too_large(data: Any) -> bool:
    """Whether ``data`` holds more than _MAX_CONFIG_VALUES values or nests deeper than
    _MAX_CONFIG_DEPTH, counting a value shared by aliases at every place it appears (as the
    checks and messages would walk it). Stops counting at the limit: never slow."""
    stack, count = [(data, 0)], 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > _MAX_CONFIG_VALUES or depth > _MAX_CONFIG_DEPTH:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)
    return False


def _unique_keys_loader(yaml: Any) -> type:
    """PyYAML's safe loader, refusing a key given twice in one mapping (it keeps the last
    silently, where TOML refuses: ``seeds`` twice ran the second list)."""

    class UniqueKeys(yaml.SafeLoader):
        pass

    def mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *anchor": its keys may be given again (they override)
            key = loader.construct_object(key_node, deep=True)
            try:
                twice = key in seen
            except TypeError:  # an unhashable key: the safe loader's own error names it
                break
            if twice:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return loader.construct_mapping(node, deep=deep)

    UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return UniqueKeys


def _yaml_problem(err: Exception) -> str:
    """PyYAML's several-line message as one line: what, and at which line and column."""
    mark = getattr(err, "problem_mark", None)
    parts = [getattr(err, "context", None), getattr(err, "problem", None)]
    text = "; ".join(p for p in parts if p) or str(err)
    if mark is not None:
        text += f" (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(text.split())


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
            f"scenario.domains = {_show(source)} does not fit dataset {config.dataset!r}: {err}",
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
            f"encoder {_show(config.encoder)} cannot encode dataset {_show(config.dataset)}: "
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
                f"encoder {_show(config.encoder)} cannot be loaded: {str(err)[:300]}", "encoder"
            ) from None
        raise ConfigError(
            f"encoder {_show(config.encoder)} cannot be built with encoder_options = "
            f"{_show(config.encoder_options)[:200]}: {str(err)[:300]}",
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
    shown = {"image": "images", "text": "texts", "array": "feature rows (numbers, not images)"}
    raise ConfigError(
        f"dataset {_show(config.dataset)} holds {shown.get(holds, holds)}, but encoder "
        f"{_show(config.encoder)} reads {shown.get(reads, reads)}: use "
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
    config: RunConfig, y_train: np.ndarray, y_test: np.ndarray, domains: Any = None
) -> dict[int, Scenario]:
    """Every seed's scenario, built from the labels alone (cheap): a scenario the dataset cannot
    make (``initial`` above its class count, ...) is a :class:`ConfigError` before any encoding
    or training."""
    n = int(np.unique(y_train).size)
    about = f"dataset {config.dataset!r} has {n} classes"
    untrained = np.setdiff1d(np.unique(y_test), np.unique(y_train))
    if untrained.size:  # no step would teach them: their test rows would count nowhere
        raise ConfigError(
            f"dataset {config.dataset!r}: class {', '.join(map(str, untrained[:5]))} has test "
            "rows but no training rows, so no step teaches it; remove its test rows or add "
            "training rows",
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
            if METHODS[m][0] in _LEARNER_FAMILIES
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
    if family in _LEARNER_FAMILIES:
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
            f"{m} ({key} = {_show(METHODS[m][1][key])})"
            for m in config.methods
            if METHODS[m][0] in _LEARNER_FAMILIES
            and key in METHODS[m][1]
            and METHODS[m][1][key] != value
        ]
        if own:
            lines.append(
                f"learner.{key} = {_show(value)} does not apply to {', '.join(own)}: "
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
        scenarios = make_scenarios(config, *labels, _domains(dataset))
        if adaptation is not None:
            _check_first_tasks(scenarios, labels[0])
        data = encode_dataset(config, dataset) if compare else _unencoded(config, dataset)
    else:
        labels = (data["y_train"], data["y_test"])
        scenarios = make_scenarios(config, *labels, _domains(data["dataset"]))
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
