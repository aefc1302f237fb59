"""What a run config holds, checked before any work: :class:`RunConfig` and its checks.

A run is described by a :class:`RunConfig` (from flags, a TOML or YAML file, or Python): the
dataset and encoder, the scenario (one of ``SCENARIOS``), the methods (from ``METHODS``), seeds,
the learner's and SGD's settings, adaptation and the output folder. :meth:`RunConfig.validate`
checks every value (keys, types, ranges, names against their registries, the output and cache
folders) before any data is loaded, and raises :class:`ConfigError` naming the bad key and what
is valid; :meth:`RunConfig.from_file` does the same for the file itself. The run itself is
:mod:`forgetless.experiment`.

>>> config = RunConfig(scenario={"kind": "class-incremental", "increment": 0})
>>> try:
...     config.validate(output=False)
... except ConfigError as err:
...     print(err.key, "|", err)
scenario.increment | scenario.increment = 0 must be an integer >= 1
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgetless.engine import make_engine
from forgetless.evaluation.baselines import SGDHead
from forgetless.layers import fit_bytes
from forgetless.learner import DEFAULT_N_COMPONENTS, ContinualClassifier, check_memory
from forgetless.scenarios import class_incremental, domain_incremental, few_shot, online_blurry

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
LEARNER_FAMILIES = ("analytic", "joint")  # methods built as ContinualClassifier
_SCENARIO_BUILDERS = {
    "class-incremental": class_incremental,
    "domain-incremental": domain_incremental,
    "few-shot": few_shot,
    "online-blurry": online_blurry,
}
SCENARIOS = tuple(_SCENARIO_BUILDERS)


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


def shown(value: Any) -> str:
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
        return " or ".join([text, *map(shown, self.words)] + ["left out"] * self.optional)


@dataclass(frozen=True)
class _OneOf:
    """Allowed values: names from a registry (or None)."""

    values: tuple[Any, ...]
    optional: bool = False

    def ok(self, v: Any) -> bool:
        return (v is None and self.optional) or (isinstance(v, str) and v in self.values)

    def __str__(self) -> str:
        return "one of " + ", ".join(map(shown, self.values)) + " (or left out)" * self.optional


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
# Set by the runner for each method and seed, so not settable in [learner] / [sgd].
_RUNNER_ARGS = ("y_train", "y_test", "domain_train", "domain_test", "seed", "random_state")
_SGD_RUNNER_ARGS = ("method", "seed", "eval_every", "on_iteration")


def _check(key: str, value: Any, allowed: Any) -> None:
    if not allowed.ok(value):
        raise ConfigError(f"{key} = {shown(value)} must be {allowed}", key)


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
            f"{key} = {shown(str(output))} is {what}, not a directory; "
            "choose another directory or remove it",
            key,
        )
    for name in RUN_FILES:  # a folder in the place of a file the run writes: lost at the end
        if (path / name).is_dir():
            raise ConfigError(
                f"{key} = {shown(str(output))} holds a folder {name}, where the run writes "
                "that file; choose another directory or remove the folder",
                key,
            )
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(
            f"{key} = {shown(str(output))} cannot be made: {existing} is a file; "
            "choose another directory",
            key,
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{key} = {shown(str(output))}: {existing} is not writable; choose another directory",
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
                else f"[scenario] needs kind = one of {', '.join(map(shown, SCENARIOS))}",
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
            f" for kind {shown(kind)}",
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
                f"methods = {shown(methods)} must be a list of names, e.g. "
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
                f"seeds = {shown(seeds)} must be a list of integers from 0 to 2**32 - 1, e.g. "
                "seeds = [0, 1, 2]",
                "seeds",
            )
        if not seeds:
            raise ConfigError("seeds = [] must give at least one seed, e.g. seeds = [0]", "seeds")
        for key, values in (("methods", methods), ("seeds", seeds)):
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ConfigError(f"{key} = {shown(values)} lists {shown(twice[0])} twice", key)

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
            f" for dataset {shown(self.dataset)}",
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
            context=f" for encoder {shown(self.encoder)}",
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
                f"first_session_adaptation.method = {shown(method)} cannot adapt encoder "
                f"{self.encoder!r}; choose one of {', '.join(map(shown, methods))} "
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
        analytic = [m for m in self.methods if METHODS[m][0] in LEARNER_FAMILIES]
        for key, value in self.learner.items():
            if analytic and all(key in METHODS[m][1] for m in analytic):
                chosen = ", ".join(f"{m}: {shown(METHODS[m][1][key])}" for m in analytic)
                raise ConfigError(
                    f"learner.{key} = {shown(value)} would be ignored: the methods set it "
                    f"themselves ({chosen}); remove it or choose other methods",
                    f"learner.{key}",
                )
        if not analytic and self.learner:  # peers (and SGD) read n_components at most
            ignored = sorted(set(self.learner) - {"n_components"})
            if ignored:
                raise ConfigError(
                    f"learner.{ignored[0]} = {shown(self.learner[ignored[0]])} would be ignored: "
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
                f"config must be .toml, .yaml or .yml, got {shown(path.suffix or path.name)}; "
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
