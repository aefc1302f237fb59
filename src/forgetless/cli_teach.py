"""``forgetless learn | predict | forget | info | evaluate``: a teachable model from the shell.

Each command opens (or, for ``learn``, creates) a model folder (:mod:`forgetless.teachable`),
checks everything the user gave before any work, and commits at most one new generation. A user
mistake is one line on stderr naming it and what to do, exit code 2, and the model unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import os
import sys
import time
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

READ_ATTEMPTS = 5  # predict/evaluate open again while writers commit in between

LEARN_EXAMPLES = """examples:
  forgetless learn pets.model photos/day1                 # photos/day1/<class>/*.jpg
  forgetless learn pets.model photos/day2 --test photos/test
  forgetless learn pets.model new/*.jpg --label hamster   # files of one class
  forgetless learn topics.model messages.csv --text-column body --label-column topic
  forgetless learn topics.model --text "refund my order" --text "card declined" --label billing

MODEL is created on first use (its encoder from --encoder, else efficientnet-lite0 for images
and minilm for texts) and must keep that encoder. On features wider than {layer_free} values
(the built-in encoders' 1,904 and 2,304) it learns on the features themselves, with no
layer, as forgetless run does.
On narrower ones its layer width follows the samples in hand
(n samples of C classes: {rule},
from {floor} to {top}): the guided kernel layer, rebuilt from every sample's features at each
learn and forget until {until} samples, then frozen.
--width N fixes the width at N (gaussian ReLU layer) for the model's life. Samples already
learned with the same label (same file bytes or text) are skipped."""

PREDICT_EXAMPLES = """examples:
  forgetless predict pets.model photos/new                # every image under the folder
  forgetless predict pets.model a.jpg b.jpg --top-k 3 --format json
  forgetless predict topics.model inbox.csv --text-column body --reject-below 0.5 --format csv
  forgetless predict pets.model photos/new --reject-unknown   # 'unknown': far from every class
  forgetless predict topics.model --text "where is my parcel?"

--reject-unknown answers 'unknown' for an input whose encoder features are farther from every
class mean (cosine) than 99 % of the learned samples were, each measured without itself
(--unknown-quantile changes the 99 %)."""

FORGET_EXAMPLES = """examples:
  forgetless forget pets.model --class hamster            # a whole class, exactly, no data needed
  forgetless forget pets.model photos/day1/cat/3.jpg      # samples, checked against the journal
  forgetless forget topics.model --text "win a prize now" --label spam  # only where learned as spam

Forgetting a sample checks that its fingerprint (sha256 of the file or text) was learned and not
already forgotten; otherwise nothing changes. It is forgotten under every label it was learned
with (a table's label column and folder names are not read), or only under --label NAME. A
class is removed from its deletion record (kept since it was learned), unless the model was
made with --no-deletion-record."""

INFO_EXAMPLES = """examples:
  forgetless info pets.model
  forgetless info pets.model --format json"""

EVALUATE_EXAMPLES = """examples:
  forgetless evaluate pets.model photos/test              # photos/test/<class>/*.jpg
  forgetless evaluate topics.model test.csv --confusion topics-confusion.png"""


def _parser(subparsers: Any, name: str, help: str, epilog: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _text_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--text",
        dest="texts",
        action="append",
        default=[],
        metavar="TEXT",
        help="a text typed here rather than in a file (repeatable; text models)",
    )


class _Once(argparse.Action):
    """Store an option's value, refusing it a second time: ``--text a --label x --text b
    --label y`` reads as one label per text, but one command has one label for all."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        if getattr(namespace, self.dest, None) is not None:
            parser.error(
                f"{option} given twice; one command takes one {option} for all its inputs "
                "(teach each class with its own command, or label them in a table or folders)"
            )
        setattr(namespace, self.dest, values)


def _input_flags(
    parser: argparse.ArgumentParser, label_help: str, label_column: bool = True
) -> None:
    """--text, --label, --text-column and, where labels are read from tables, --label-column."""
    _text_flag(parser)
    parser.add_argument("--label", action=_Once, help=label_help)
    parser.add_argument(
        "--text-column", default="text", help="column of a table holding the text (default text)"
    )
    if label_column:
        parser.add_argument(
            "--label-column",
            default="label",
            help="column of a table holding the label (default label)",
        )


def _moved_encoder_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--encoder",
        metavar="NAME",
        help="the model's own encoder at a new place, when its folder or file moved (e.g. "
        "sentence-transformers:/new/folder; checked to be the same weights)",
    )


def add_teach_commands(subparsers: Any) -> None:
    """Register learn, predict, forget, info and evaluate."""
    from forgetless.teachable import (
        DEFAULT_WIDTH,
        GROWING_UNTIL,
        LAYER_FREE_ABOVE,
        WIDTH_FLOOR,
        WIDTH_RULE_SHORT,
    )

    examples = LEARN_EXAMPLES.format(
        rule=WIDTH_RULE_SHORT,
        floor=WIDTH_FLOOR,
        top=DEFAULT_WIDTH,
        until=GROWING_UNTIL,
        layer_free=LAYER_FREE_ABOVE,
    )
    p = _parser(subparsers, "learn", "teach a model labelled images or texts", examples)
    p.add_argument("model", metavar="MODEL", help="model folder (created on first use)")
    p.add_argument("inputs", metavar="INPUT", nargs="*", help="folder, table or files")
    p.add_argument(
        "--encoder",
        help="encoder of a new model (forgetless.encoders); for a model taught before, its own "
        "encoder at a new place, when its folder or file moved (checked to be the same weights)",
    )
    p.add_argument("--image-size", type=int, help="image side in pixels (efficientnet, raw)")
    p.add_argument(
        "--width",
        type=int,
        help="fixed width M of a new model's layer (default: chosen from the samples in hand, "
        "see below)",
    )
    _input_flags(p, "the class of every INPUT (needed for single files)")
    p.add_argument(
        "--no-deletion-record",
        action="store_true",
        help="keep no per-class record (forgetting a class then needs its data)",
    )
    p.add_argument(
        "--test",
        action="append",
        metavar="INPUT",
        help="labelled held-out data: report the accuracy after learning (repeatable)",
    )
    p.set_defaults(handler=_run_learn)

    p = _parser(subparsers, "predict", "predict the class of images or texts", PREDICT_EXAMPLES)
    p.add_argument("model", metavar="MODEL")
    p.add_argument("inputs", metavar="INPUT", nargs="*", help="folder, table or files")
    _text_flag(p)
    p.add_argument(
        "--top-k",
        type=int,
        default=1,
        help="classes shown per input, at most all of them (default 1)",
    )
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument(
        "--reject-below",
        type=float,
        metavar="P",
        help="answer 'unknown' when the top probability is below P",
    )
    p.add_argument(
        "--reject-unknown",
        action="store_true",
        help="answer 'unknown' for inputs far from every class learned (see below)",
    )
    p.add_argument(
        "--unknown-quantile",
        type=float,
        metavar="Q",
        help="with --reject-unknown: the share of learned samples accepted (default 0.99)",
    )
    p.add_argument("--text-column", default="text", help="column of a table holding the text")
    _moved_encoder_flag(p)
    p.set_defaults(handler=_run_predict)

    p = _parser(subparsers, "forget", "remove classes or samples from a model", FORGET_EXAMPLES)
    p.add_argument("model", metavar="MODEL")
    p.add_argument("inputs", metavar="INPUT", nargs="*", help="samples to forget")
    p.add_argument(
        "--class",
        dest="classes",
        nargs="+",
        action="extend",
        metavar="NAME",
        help="classes to forget (repeat the flag or list several)",
    )
    # A sample is forgotten under every label it was learned with (a table's label column and
    # class folders' names are not read), or under --label only: forget takes no --label-column.
    _input_flags(
        p,
        "forget every INPUT only where it was learned under this label (without it, under every "
        "label it was learned with; a table's label column and folder names are not read): for "
        "samples learned under two labels",
        label_column=False,
    )
    _moved_encoder_flag(p)
    p.set_defaults(handler=_run_forget)

    p = _parser(subparsers, "info", "describe a model and its journal", INFO_EXAMPLES)
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=_run_info)

    p = _parser(subparsers, "evaluate", "measure a model on labelled data", EVALUATE_EXAMPLES)
    p.add_argument("model", metavar="MODEL")
    p.add_argument("inputs", metavar="INPUT", nargs="*", help="labelled folder, table or files")
    _input_flags(p, "the class of every INPUT (needed for single files)")
    p.add_argument(
        "--confusion",
        default="confusion-matrix.png",
        metavar="PNG",
        help="where to write the confusion matrix (default confusion-matrix.png)",
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    _moved_encoder_flag(p)
    p.set_defaults(handler=_run_evaluate)


# ------------------------------------------------------------------------------ helpers
def _error(command: str, message: str) -> int:
    print(f"forgetless {command}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


@dataclass
class _Outcome:
    """The model a command changes, and what it had already saved when a later step (its
    report, a --test) failed."""

    model: Path | None = None
    saved: str | None = None


def _guarded(command: str, work: Callable[[], int], outcome: _Outcome | None = None) -> int:
    """Run ``work``; a user mistake or a damaged model is one line and exit code 2. Where
    ``outcome`` says the change was saved before the failure, the line says so."""
    from forgetless.encoders import EncoderNotAvailableError
    from forgetless.persistence import ModelFileError
    from forgetless.teachable import InputError, ProvenanceError

    def error(message: str, unchanged: bool = False) -> int:
        if outcome is not None and outcome.saved:
            message += f" (after {outcome.saved}: that change is kept)"
        elif unchanged:
            message += "; nothing was changed"
        return _error(command, message)

    try:
        return work()
    except (InputError, ProvenanceError, EncoderNotAvailableError) as err:
        return error(str(err))
    except ModelFileError as err:
        return error(f"cannot use the model: {err}")
    except PermissionError as err:
        where = Path(str(err.filename))
        if where.name.startswith(".") and ".tmp-" in where.name:  # a file we were writing
            return error(f"permission denied: cannot write in {where.parent}")
        return error(f"permission denied: {err.filename}")
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        return reader_gone()
    except OSError as err:  # a full disk, a vanished folder: the model is as it was
        where = f" ({err.filename})" if err.filename else ""
        if not where and outcome is not None and outcome.model and not outcome.saved:
            where = f" (while saving {outcome.model})"  # a write names no file
        return error(f"{err.strerror or err}{where}", unchanged=True)


@contextlib.contextmanager
def _stage_lines() -> Iterator[None]:
    """While a command runs, show the ``forgetless`` logger's INFO lines (one per stage of a
    learn) on stderr when it is not a terminal (a log file, a pipe, CI), unless the program
    set up logging itself. On a terminal (or in a notebook) the output stays as it is."""
    from forgetless.encoders.base import progress_mode

    log = logging.getLogger("forgetless")
    if progress_mode(None) != "log" or log.hasHandlers():
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s forgetless %(message)s", "%H:%M:%S"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _open(path: str, reading: bool = False, encoder: str | None = None) -> Any:
    """The model at ``path``. ``reading`` (predict, evaluate): its learner read at once,
    opening again when a writer committed in between (and removed the files read).
    ``encoder``: the ``--encoder`` given, the model's own encoder at a new place."""
    from forgetless.teachable import StaleModelError, TeachableModel

    for attempt in range(READ_ATTEMPTS):
        model = TeachableModel.open(path)
        model.check_encoder_request(encoder, None)
        if not reading:
            return model
        try:
            model.learner()
            return model
        except StaleModelError:
            if attempt == READ_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _collect(model: Any, args: argparse.Namespace, labels: str, inputs: list[str]) -> Any:
    from forgetless.teach_inputs import collect

    return collect(
        inputs,
        model.spec.modality,
        labels=labels,  # type: ignore[arg-type]
        label=getattr(args, "label", None),
        text_column=args.text_column,
        label_column=getattr(args, "label_column", "label"),
        texts=getattr(args, "texts", ()),
    )


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def _percent(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f} %"


def _counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, in the plural unless it is one thing.

    >>> _counted(1, "sample"), _counted(0, "class"), _counted(3, "text")
    ('1 sample', '0 classes', '3 texts')
    """
    plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{count} {noun if count == 1 else plural}"


def reader_gone() -> int:
    """Exit status 1 once stdout's reader has gone (``| head``): later writes, and Python's
    flush at exit, go to /dev/null instead of raising BrokenPipeError again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


def _kind(model: Any, count: int | None = None) -> str:
    """What the model reads: "images" or "texts", singular where ``count`` is 1."""
    noun = "image" if model.spec.modality == "image" else "text"
    return noun if count == 1 else noun + "s"


def _summary(model: Any) -> str:
    info = model.info()
    alpha = info["learner"]["alpha"]
    t = model.temperature
    calibrated = (
        f"temperature {t:.3g}"
        + (" (fitted before forgetting)" if (model.calibration or {}).get("stale_since") else "")
        if t is not None
        else "not calibrated: one class (a temperature needs two)"
        if len(info.get("classes") or {}) == 1
        else "not calibrated yet (needs about 20 samples in hand at a learn)"
    )
    lam = f"λ = {alpha:.3g}" if alpha is not None else "no classes"
    learner = info["learner"]
    layer = "no layer" if learner["projection"] == "none" else f"width {learner['width']}"
    return (
        f"model: {_counted(len(info['classes']), 'class')}, "
        f"{_counted(info['samples'], 'sample')}, {layer}, {lam}, "
        f"{calibrated}; {_mib(info['bytes_on_disk'])} on disk"
    )


# ------------------------------------------------------------------------------ learn
def _run_learn(args: argparse.Namespace) -> int:
    outcome = _Outcome(model=Path(args.model))
    with _stage_lines():
        return _guarded("learn", lambda: _learn(args, outcome), outcome)


def _learn(args: argparse.Namespace, outcome: _Outcome) -> int:
    from forgetless.teach_inputs import InputError, collect, guess_modality
    from forgetless.teachable import TeachableModel, encoder_modality, encoder_options

    path = Path(args.model)
    # (a CURRENT that is no plain file is a damaged model, which opening it reports)
    exists = os.path.lexists(path / "CURRENT")
    if exists:
        model = TeachableModel.open(path)
        options = (
            None if args.image_size is None else encoder_options(model.spec.name, args.image_size)
        )
        model.check_encoder_request(args.encoder, options)
        if args.width is not None and model.settings.get("width_rule") == "features":
            raise InputError(
                f"{path} learns on its encoder's {model.spec.dim} features directly (no layer); "
                "leave --width out (or teach a new model with --width)"
            )
        if args.width is not None and model.settings.get("width_rule") == "samples":
            raise InputError(
                f"{path} chooses its width from the samples it has (now "
                f"{model.settings['width']}); leave --width out (or teach a new model with "
                "--width)"
            )
        if args.width is not None and args.width != model.settings["width"]:
            raise InputError(
                f"{path} has width {model.settings['width']}; the width is fixed when a model is "
                "made (leave --width out, or teach a new model)"
            )
        batch = _collect(model, args, "required", args.inputs)
    else:
        if path.exists() and not path.is_dir():
            raise InputError(f"{path} is a file; MODEL is a folder: choose another name")
        guessed = "text" if args.texts and not args.inputs else None
        by_class = args.label is None  # a folder's samples are in its class subfolders
        name = args.encoder or (
            "efficientnet-lite0"
            if (guessed or guess_modality(args.inputs, by_class)) == "image"
            else "minilm"
        )
        modality = encoder_modality(name)  # refuses a misspelt name
        options = encoder_options(name, args.image_size)
        if args.width is not None and not 16 <= args.width <= 8192:
            raise InputError(f"--width must be in [16, 8192], not {args.width}")
        # The inputs are checked before the encoder loads (seconds) and before anything is made.
        batch = collect(
            args.inputs,
            modality or guessed or guess_modality(args.inputs, by_class),
            labels="required",
            label=args.label,
            text_column=args.text_column,
            label_column=args.label_column,
            texts=args.texts,
        )
        model = TeachableModel.create(
            path,
            name,
            encoder_options=options,
            width=args.width,
            deletion_records=not args.no_deletion_record,
        )
        if batch.modality != model.spec.modality:
            raise InputError(
                f"{name} reads {model.spec.modality}s but {' '.join(args.inputs)[:100]} holds "
                f"{batch.modality}s"
            )
    tests = [
        collect(
            [t],
            model.spec.modality,
            labels="required",
            text_column=args.text_column,
            label_column=args.label_column,
        )
        for t in (args.test or [])
    ]
    # The --test inputs are encoded before the learn commits: one that cannot be encoded is
    # refused with the model unchanged, not after the learn was saved.
    tested = []
    for t, test in zip(args.test or [], tests, strict=True):
        try:
            tested.append(model.encode(test))
        except InputError as err:
            raise InputError(f"--test {t}: {err}") from None
    dropped = exists and args.no_deletion_record and model.settings["deletion_records"]
    described = [*args.inputs] + ([f"--text ({len(args.texts)})"] if args.texts else [])
    # One commit: a learn that fails keeps the records too.
    report = model.learn(batch, describe=described, drop_deletion_records=dropped)
    outcome.saved = f"the learn was saved as generation {model.generation} of {path}"
    if not exists:
        rule = model.settings.get("width_rule")
        layer = (
            f"no layer ({model.spec.dim} features)"
            if rule == "features"
            else f"width {model.settings['width']}"
            + (" (from the samples in hand)" if rule == "samples" else "")
        )
        print(f"created {path}: {model.spec.describe()}, {layer}")
    if dropped:
        print("deletion records dropped: forgetting a class now needs its data")
    if not report.learned:
        already = (
            f"the {_kind(model, 1)} was"
            if report.skipped == 1
            else f"all {report.skipped} {_kind(model)} were"
        )
        print(f"nothing new: {already} already learned")
    else:
        print(
            f"learned {report.learned} {_kind(model, report.learned)} in {report.seconds:.1f} s "
            f"(encoding {report.encode_seconds:.1f} s)"
            + (f"; skipped {report.skipped} already learned" if report.skipped else "")
        )
        from forgetless.evaluation.report import format_table

        totals = model.class_counts()
        rows = [[c, str(n), str(totals.get(c, 0))] for c, n in report.counts.items()]
        print(format_table(["class", "new", "total"], rows))
        if report.layer is not None and exists:
            print(_layer_line(report.layer))
        if report.two_labels:
            print(_two_labels_line(report.two_labels, model))
    print(_summary(model))
    for t, test in zip(args.test or [], tested, strict=True):
        try:
            result = model.evaluate(test)
        except InputError as err:
            raise InputError(f"--test {t} failed: {err}") from None  # (the learn is kept)
        print(
            f"accuracy on {t}: {_percent(result['accuracy'])} "
            f"({result['correct']} of {result['samples']})"
        )
    return 0


def _two_labels_line(found: list[tuple[str, list[str]]], model: Any) -> str:
    """The learn's samples now held under two labels or more, the first few named, and how
    to forget one under the wrong label."""
    shown = "; ".join(f"{source} ({', '.join(labels)})" for source, labels in found[:3])
    more = f"; and {len(found) - 3} more" if len(found) > 3 else ""
    one = len(found) == 1
    image = model.spec.modality == "image"
    same = "the same image file" if image else "the same text"
    how = (
        f"forgetless forget {model.path} FILE --label NAME"
        if image
        else f'forgetless forget {model.path} --text "TEXT" --label NAME'
    )
    return (
        f"warning: {len(found)} {_kind(model, len(found))} {'is' if one else 'are'} now learned "
        f"under more than one label ({same} under each): {shown}{more}; the model learns "
        f"{'it' if one else 'each'} once per label. If a label is a mistake, forget "
        f"{'it' if one else 'the sample'} under that label: {how}"
    )


# ------------------------------------------------------------------------------ predict
def _run_predict(args: argparse.Namespace) -> int:
    return _guarded("predict", lambda: _predict(args))


def _predict(args: argparse.Namespace) -> int:
    from forgetless.teach_inputs import InputError

    if args.top_k < 1:
        raise InputError(f"--top-k must be at least 1, not {args.top_k}")
    if args.reject_below is not None and not 0 <= args.reject_below <= 1:
        raise InputError(f"--reject-below is a probability in [0, 1], not {args.reject_below}")
    quantile = args.unknown_quantile
    if quantile is not None and not (args.reject_unknown and 0 < quantile <= 1):
        raise InputError(
            f"--unknown-quantile is a share in (0, 1], not {quantile}"
            if args.reject_unknown
            else "--unknown-quantile goes with --reject-unknown"
        )
    model = _open(args.model, reading=True, encoder=args.encoder)
    if not model.classes:
        raise InputError(f"{args.model} knows no classes; teach it with forgetless learn")
    unknown: bool | float = False
    if args.reject_unknown:
        unknown = True if quantile is None else quantile
        model.novelty_threshold(*([] if quantile is None else [quantile]))  # refused if unready
    batch = _collect(model, args, "ignored", args.inputs)
    rows = model.predict(
        batch, top_k=args.top_k, reject_below=args.reject_below, reject_unknown=unknown
    )
    k = min(args.top_k, len(model.classes))
    rejecting = args.reject_below is not None or bool(args.reject_unknown)
    names = [r["input"] for r in rows]
    if args.format in ("json", "csv") and args.texts:
        # machine-readable: a typed text is named by itself in full, not quoted and shortened
        # as the table shows it (the typed texts come last)
        first = len(batch) - len(args.texts)
        names[first:] = [str(item) for item in batch.items[first:]]
    if args.format == "json":
        doc = []
        for name, r in zip(names, rows, strict=True):
            row = {
                "input": name,
                "label": r["label"],
                "probability": round(r["probability"], 6),
                "top": [{"label": c, "probability": round(p, 6)} for c, p in r["top"]],
            }
            if "distance" in r:
                row["distance"] = round(r["distance"], 6)
                row["threshold"] = round(r["threshold"], 6)
            if rejecting:
                row["rejected"] = r["rejected"]
            doc.append(row)
        print(json.dumps(doc, indent=1, ensure_ascii=False))
    elif args.format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        extra = [f"{what}_{i}" for i in range(2, k + 1) for what in ("label", "probability")]
        far = ["distance"] if args.reject_unknown else []
        # a rejected row's label is "unknown": the class the model chose goes beside it
        marked = ["predicted", "rejected"] if rejecting else []
        writer.writerow(["input", "label", "probability", *extra, *far, *marked])
        for name, r in zip(names, rows, strict=True):
            more = [x for c, p in r["top"][1:] for x in (c, f"{p:.4f}")]
            more += [f"{r['distance']:.4f}"] if far else []
            more += [r["top"][0][0], str(r["rejected"]).lower()] if marked else []
            writer.writerow([name, r["label"], f"{r['probability']:.4f}", *more])
        sys.stdout.write(out.getvalue())
    else:
        from forgetless.evaluation.report import format_table

        header = ["input", "label", "probability"] + ([f"top {k}"] if k > 1 else [])
        if args.reject_unknown:
            header.append(f"distance (> {rows[0]['threshold']:.3f}: unknown)")
        chosen = rejecting and k == 1  # the class behind "unknown" (else the top-k column)
        if chosen:
            header.append("predicted")
        if rejecting:  # a rejected row's label can be a class's name too: say which it is
            header.append("rejected")
        table = []
        for r in rows:
            row = [_one_line(r["input"]), r["label"], f"{r['probability']:.2f}"]
            if k > 1:
                row.append(", ".join(f"{c} {p:.2f}" for c, p in r["top"]))
            if args.reject_unknown:
                row.append(f"{r['distance']:.3f}")
            if chosen:
                row.append(r["top"][0][0])
            if rejecting:
                row.append("yes" if r["rejected"] else "no")
            table.append(row)
        print(format_table(header, table))
    return 0


def _one_line(text: str) -> str:
    r"""``text`` with control characters and line breaks written as escapes (a file name may
    hold a newline or ESC, which would break the table's rows or drive the terminal).

    >>> print(_one_line("a\nb\x1b[2J.png"))
    a\nb\x1b[2J.png
    """
    return "".join(
        repr(ch)[1:-1] if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text
    )


# ------------------------------------------------------------------------------ forget
def _run_forget(args: argparse.Namespace) -> int:
    outcome = _Outcome(model=Path(args.model))
    with _stage_lines():
        return _guarded("forget", lambda: _forget(args, outcome), outcome)


def _refuse_paths_read_as_classes(model: Any, names: list[str]) -> None:
    """`--class cat photo.png` reads photo.png as a class name (the flag takes every word
    after it): say so, instead of only that the model has no class 'photo.png'."""
    from forgetless.teach_inputs import InputError

    known = set(model.classes)
    for name in names:
        if name not in known and name not in model.labels and Path(name).exists():
            raise InputError(
                f"--class read {name!r} as a class name (it takes every word after it), but it "
                f"is a file or folder, not a class of {model.path}: to forget the "
                f"samples in it, give it as INPUT before --class, or without --class and with "
                f"--label NAME to forget them only where learned as NAME"
            )


def _forget(args: argparse.Namespace, outcome: _Outcome) -> int:
    from forgetless.teach_inputs import InputError

    if bool(args.classes) == bool(args.inputs or args.texts):
        raise InputError(
            "name classes with --class NAME... or give the samples to forget as INPUT..., not both"
            if args.classes
            else "nothing to forget: give --class NAME... or INPUT..."
        )
    model = _open(args.model, encoder=args.encoder)
    if args.classes:
        _refuse_paths_read_as_classes(model, args.classes)
        report = model.forget_classes(args.classes)
    else:
        batch = _collect(model, args, "optional", args.inputs)
        described = [*args.inputs] + ([f"--text ({len(args.texts)})"] if args.texts else [])
        report = model.forget(batch, label=args.label, describe=described)
    outcome.saved = f"the forget was saved as generation {model.generation} of {model.path}"
    if args.classes:
        detail = ", ".join(f"{c} ({_counted(n, 'sample')})" for c, n in report.counts.items())
        print(f"forgot {detail} exactly in {report.seconds:.1f} s")
    else:
        detail = ", ".join(f"{c} {n}" for c, n in report.counts.items())
        forgot = _counted(report.forgotten, "sample")
        print(f"forgot {forgot} ({detail}) exactly in {report.seconds:.1f} s")
        if report.classes_removed:
            print(f"classes with no samples left, removed: {', '.join(report.classes_removed)}")
    left = model.classes
    print(f"{len(left)} classes left: {', '.join(left) if left else 'none'}")
    if report.layer is not None:
        print(_layer_line(report.layer))
    note = _temperature_note(report.calibration)
    if note:
        print(note)
    print(_summary(model))
    return 0


def _layer_line(layer: dict[str, Any]) -> str:
    """What a learn or forget did with a layer whose width follows the samples."""
    from forgetless.teachable import GROWING_UNTIL

    if layer["width"] is None:
        return "layer: no sample left; the next learn builds it afresh"
    line = f"layer rebuilt at width {layer['width']} from all {layer['samples']} samples"
    if layer.get("projection"):
        line += f" ({layer['projection']}: too few samples to guide it)"
    if layer["state"] == "growing":
        return f"{line}; it grows with the samples until {GROWING_UNTIL}"
    return f"{line}; frozen from now on"


def _temperature_note(note: dict[str, Any] | None) -> str:
    """What a forget did with the temperature, in a sentence ('' when there is none)."""
    if not note:
        return ""
    if note["refitted"]:
        before = note.get("before")
        was = f" (was {before:.3g})" if before is not None else ""
        return (
            f"temperature refitted: {note['temperature']:.3g}{was}, on {note['held_out']} "
            "held-out samples of the features the deletion records keep"
        )
    return (
        f"temperature {note['temperature']:.3g} kept from journal event #{note['fitted_at']}: "
        f"fitted before this forget and not refitted ({note['reason']}); the next learn "
        "refits it"
    )


# ------------------------------------------------------------------------------ info
def _run_info(args: argparse.Namespace) -> int:
    return _guarded("info", lambda: _info(args))


def _info(args: argparse.Namespace) -> int:
    from forgetless.evaluation.report import format_table
    from forgetless.teachable import DEFAULT_WIDTH, WIDTH_FLOOR, WIDTH_RULE_SHORT

    model = _open(args.model)  # info reads no learner: it also describes a damaged model
    info = model.info()
    status = 2 if info["damaged"] else 0  # a check of the model: damage is a failure
    if args.format == "json":
        print(json.dumps(info, indent=1, ensure_ascii=False))
        return status
    enc, learner, records = info["encoder"], info["learner"], info["deletion_records"]
    print(
        f"model       {info['path']} (generation {info['generation']}, created {info['created']})"
    )
    print(
        f"encoder     {enc['name']}"
        + (f" (now at {enc['place']})" if enc.get("place") else "")  # its folder or file moved
        + f": {enc['modality']}s -> {enc['dim']} features"
        + (f", {enc['preprocessing']['size']} px" if "size" in enc["preprocessing"] else "")
        + (f"; weights sha256 {enc['weights'][:16]}" if enc["weights"] else "")
        + f"; fingerprint {enc['fingerprint'][:16]}"
    )
    alpha = learner["alpha"]
    layer = learner["layer"]
    kind = "guided kernel" if learner["projection"] == "guided" else learner["projection"]
    if layer["state"] == "none":
        what = (
            f"no layer (the encoder's {learner['width']} features are wide enough, as in "
            "forgetless run), ridge "
        )
    else:
        if layer["state"] == "fixed":
            how = "given" if learner["width_rule"].startswith("given") else "default"
        else:
            how = f"from {layer['built_on_samples']} samples: {WIDTH_RULE_SHORT}"
        what = f"{kind} ReLU layer, width M = {learner['width']} ({how}), ridge "
    print(
        f"learner     {what}"
        + (f"λ = {alpha:.4g} (chosen from the sums)" if alpha is not None else "(no classes)")
    )
    if layer["state"] == "growing":
        print(
            f"layer       growing: rebuilt from every sample's features at each learn and "
            f"forget (last at journal event #{layer['built_at_event']}), width {WIDTH_FLOOR} "
            f"to {DEFAULT_WIDTH} with the samples; frozen from {layer['grows_until_samples']} "
            "samples "
            f"({layer['bytes_per_sample_while_growing']} B of features per sample until then: "
            f"{_mib(layer['features_bytes_now'])} now)"
        )
    elif layer["state"] == "frozen":
        print(
            f"layer       frozen at journal event #{layer['built_at_event']} (built on "
            f"{layer['built_on_samples']} samples): {layer['reason']}"
        )
    print("calibration " + _calibration_line(info))
    novelty = info["novelty"]
    if novelty is None:
        print("unknown     not available (the model was made before forgetless kept it)")
    elif novelty["threshold"] is None:
        print(
            f"unknown     not calibrated yet ({novelty['calibration_samples']} samples in hand; "
            "needs 10)"
        )
    else:
        print(
            f"unknown     beyond distance {novelty['threshold']:.4g} (the "
            f"{100 * novelty['quantile']:g}th percentile of {novelty['calibration_samples']} "
            f"learned samples' leave-one-out distances; {novelty['bytes_per_class']} B per class)"
        )
    print(f"size        {_mib(info['bytes_on_disk'])} on disk in {len(info['files'])} files")
    for problem in info["damaged"]:
        print(f"DAMAGED     {problem}")
    d, m = enc["dim"], learner["width"]
    if records["kept"] and records["max_feature_rows"] is None:
        print(
            f"deletion    per class: its features ({records['bytes_per_sample_features']} B per "
            "sample), all of them while the layer grows; once frozen, features while "
            f"n_c x {d} < M x (M + 1), then its statistics; stored features are derived from "
            "the data and can be partly inverted"
        )
    elif records["kept"]:
        print(
            f"deletion    per class: its features ({records['bytes_per_sample_features']} B per "
            f"sample) up to {records['max_feature_rows']} samples (n_c x {d} < {m} x {m + 1}), "
            f"then its statistics ({_mib(records['bytes_per_class_statistics'])}); stored "
            "features are derived from the data and can be partly inverted"
        )
    else:
        print("deletion    no records kept (forgetting a class needs its data)")
    print(f"journal     {info['journal_bytes_per_sample']} B per sample (sha256, label, events)")
    rows = []
    for name, n in info["classes"].items():
        rec = records["classes"].get(name)
        what = f"{rec['kind']} ({_mib(rec['bytes'])})" if rec else "none"
        rows.append([name, str(n), what])
    print(f"\nclasses ({len(rows)}, {_counted(info['samples'], 'sample')})")
    if rows:
        print(format_table(["class", "samples", "deletion record"], rows))
    print("\njournal")
    events = []
    for e in info["journal"]:
        if e.get("action") == "learn":
            what = ", ".join(f"{c} +{n}" for c, n in e.get("counts", {}).items())
            if e.get("skipped"):
                what += f" (skipped {e['skipped']})"
        else:
            what = ", ".join(f"{c} -{n}" for c, n in e.get("counts", {}).items())
            if e.get("classes"):
                what = "class " + what
        events.append([f"#{e.get('id')}", str(e.get("time")), str(e.get("action")), what])
    if events:
        print(format_table(["event", "time (UTC)", "action", "counts"], events))
    if info["damaged"]:
        print(
            f"forgetless info: error: {info['path']} is damaged ("
            + "; ".join(info["damaged"])
            + "): restore its folder from a backup",
            file=sys.stderr,
        )
    return status


def _calibration_line(info: dict[str, Any]) -> str:
    t, calibration = info["temperature"], info["calibration"]
    if t is None:
        return "none yet (a learn fits a temperature once about 20 samples are in hand)"
    event = calibration["event"]
    actions = {e.get("id"): e.get("action") for e in info["journal"]}
    line = (
        f"temperature {t:.4g} (fitted on {calibration['held_out']} held-out samples at journal "
        f"event #{event}"
        + (
            ", a forget: on the features the deletion records keep"
            if actions.get(event) == "forget"
            else ""
        )
        + ")"
    )
    stale = calibration.get("stale_since")
    if stale:
        forgets = [e for e in info["journal"] if e.get("action") == "forget" and e["id"] >= stale]
        reasons = [e["calibration"].get("reason") for e in forgets if e.get("calibration")]
        ids = ", ".join(f"#{e['id']}" for e in forgets)
        line += (
            f"; fitted before forgetting at {ids} and not "
            f"refitted since ({reasons[-1] if reasons else 'no features kept to refit it'}): "
            "the next learn refits it"
        )
    return line


# ------------------------------------------------------------------------------ evaluate
def _run_evaluate(args: argparse.Namespace) -> int:
    return _guarded("evaluate", lambda: _evaluate(args))


def _evaluate(args: argparse.Namespace) -> int:
    from forgetless.evaluation.report import format_table
    from forgetless.teach_inputs import InputError

    model = _open(args.model, reading=True, encoder=args.encoder)
    if not model.classes:
        raise InputError(f"{args.model} knows no classes; teach it with forgetless learn")
    target = Path(args.confusion)
    if target.is_dir() or not target.parent.is_dir() or target.suffix.lower() != ".png":
        raise InputError(f"--confusion {target}: give a PNG file path in an existing folder")
    batch = _collect(model, args, "required", args.inputs)
    result = model.evaluate(batch)
    start = time.perf_counter()
    written = _confusion_png(result, target)
    if args.format == "json":
        result = dict(result)
        result["confusion_png"] = str(target) if written else None
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return 0
    print(
        f"accuracy {_percent(result['accuracy'])} ({result['correct']} of {result['samples']} "
        f"{_kind(model, result['samples'])})"
    )
    rows = [
        [
            c["class"] + ("" if c["learned"] else " (not learned)"),
            str(c["samples"]),
            str(c["correct"]),
            _percent(c["recall"]),
            _percent(c["precision"]),
        ]
        for c in result["per_class"]
    ]
    print(format_table(["class", "samples", "correct", "recall", "precision"], rows))
    learned = result["learned_inputs"]
    if learned:
        kind, one = _kind(model, result["samples"]), learned == 1
        print(
            f"note: {learned} of the {result['samples']} {kind} "
            f"{'is one' if one else 'are ones'} this model learned: on {'it' if one else 'them'} "
            f"the accuracy measures memory, not how it does on new {_kind(model)}"
        )
    if written:
        print(f"wrote the confusion matrix to {target} ({time.perf_counter() - start:.1f} s)")
    else:
        from forgetless._install import install_line

        print(f"no confusion-matrix PNG: {install_line('report', 'matplotlib')}")
    return 0


def _confusion_png(result: dict[str, Any], target: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    # Class names are drawn as given: "$1 to $2" is no mathematical formula (parsed as one, it
    # failed the command), and a name in a script the font lacks is drawn as boxes, not warned
    # about on the terminal.
    with matplotlib.rc_context({"text.parse_math": False}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        warnings.filterwarnings("ignore", message="Matplotlib currently does not support")
        _draw_confusion(result, target)
    return True


def _draw_confusion(result: dict[str, Any], target: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    matrix = np.array(result["confusion"])
    names = result["classes"]
    size = max(4.0, 0.45 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {100 * result['accuracy']:.1f} % ({result['samples']} samples)")
    if len(names) <= 30:
        top = matrix.max() or 1
        for i in range(len(names)):
            for j in range(len(names)):
                if matrix[i, j]:
                    color = "white" if matrix[i, j] > top / 2 else "black"
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    try:
        fig.savefig(target, dpi=100)
    finally:
        plt.close(fig)
