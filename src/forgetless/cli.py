"""The ``forgetless`` command.

Each sub-command registers itself in one small ``_add_*`` function so the file stays readable.
A user mistake (a bad config, a missing run directory) is one line on stderr and exit code 2,
found before any work; a traceback means a bug. A method of ``forgetless run`` that raises is
recorded in its results, the others run on and are written, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from forgetless.cli_teach import add_teach_commands, reader_gone


def _add_demo_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="class-incremental comparison on the embedded digits data (no download)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", action="extend", help="seeds (default: 0 1 2)"
    )
    parser.add_argument("--output", default="runs/demo")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from forgetless.experiment import RunConfig

    config = RunConfig(  # configs/demo-digits.toml: 1,000 units keep it quick
        seeds=args.seeds or [0, 1, 2],
        output=args.output,
        learner={"n_components": 1000},
        progress=False if args.quiet else None,
    )
    return _execute(config, "demo", {"seeds": "--seeds", "output": "--output"}, None)


TEACH_EXAMPLES = """teach your own classes:
  forgetless learn pets.model photos/train        # photos/train/<class>/*.jpg; makes pets.model
  forgetless predict pets.model photos/new --top-k 3
  forgetless forget pets.model --class hamster
  forgetless info pets.model

"""

RUN_EXAMPLES = """examples:
  forgetless run --config configs/demo-digits.toml
  forgetless run --config configs/demo-digits.toml --seeds 0 --output runs/quick
  forgetless run --dataset digits --encoder raw --increment 2 --methods forgetless ncm \\
      --seeds 0 1 2 --output runs/digits
  forgetless run --config configs/latin-glyphs-efficientnet-B0-Inc10.toml --adapt \\
      --methods forgetless ncm lda     # each method with and without first-session adaptation
  forgetless run --dataset arrays --dataset-option path=my.npz --encoder raw --increment 2
      # your own data: an .npz of x_train, y_train, x_test, y_test (image-folder: root=DIR)

A config file is TOML or YAML with the same keys (see configs/); flags override it. Every
problem with the config is reported in one line, exit code 2, before anything runs. A method
that fails is recorded in results.json; the others' results are written, exit code 1."""

# flag -> the config key it sets, so an error in a value names the flag that gave it.
_RUN_FLAGS = {
    "dataset": "dataset",
    "encoder": "encoder",
    "methods": "methods",
    "seeds": "seeds",
    "output": "output",
    "scenario": "scenario",
    "increment": "scenario.increment",
    "initial": "scenario.initial",
    "n_components": "learner.n_components",
    "projection": "learner.projection",
    "subset_train": "subset.train",
    "subset_test": "subset.test",
    "adapt": "first_session_adaptation",
}


def _add_run_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a continual-learning comparison from a config file and/or flags",
        description="Run a continual-learning comparison from a config file and/or flags.",
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="TOML or YAML file (see configs/); flags override it")
    parser.add_argument("--dataset", help="dataset name (forgetless.data.list_datasets())")
    parser.add_argument(
        "--dataset-option",
        action="append",
        metavar="KEY=VALUE",
        help="an option of the dataset's loader, e.g. path=my.npz for --dataset arrays, "
        "root=photos for image-folder, path=texts.csv for text-table (a config's "
        "dataset_options table; repeat the flag for several)",
    )
    parser.add_argument("--encoder", help="encoder name (forgetless.encoders.list_encoders())")
    parser.add_argument(
        "--scenario",
        help="class-incremental, domain-incremental, few-shot (its base, ways and shots come "
        "from a config's [scenario] table), online-blurry",
    )
    parser.add_argument("--increment", type=int, help="classes per step (class-incremental)")
    parser.add_argument("--initial", type=int, help="classes in the first step (0: increment)")
    parser.add_argument("--methods", nargs="+", action="extend", help="methods to compare")
    parser.add_argument("--seeds", type=int, nargs="+", action="extend")
    parser.add_argument(
        "--n-components",
        type=int,
        help="width M of the random layer (default 2000, the learner's; with projection auto, "
        "no layer where M is less than twice the features' width)",
    )
    parser.add_argument("--projection", help="random layer of the forgetless methods")
    parser.add_argument("--subset-train", type=int, help="stratified training subset size")
    parser.add_argument("--subset-test", type=int, help="stratified test subset size")
    parser.add_argument(
        "--adapt",
        nargs="?",
        const="",
        metavar="METHOD",
        help="also run every method on the encoder adapted on each seed's first task "
        "(first-session adaptation; METHOD defaults to the encoder's best: last-stages for "
        "efficientnet-lite0; lora-all for minilm reading every layer, lora for its last layer "
        "only)",
    )
    parser.add_argument("--output", help="run directory (default runs/latest)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_run)


def _run_run(args: argparse.Namespace) -> int:
    from forgetless.experiment import ConfigError, RunConfig

    try:
        config = RunConfig.from_file(args.config) if args.config else RunConfig()
    except ConfigError as err:
        return _error("run", str(err))
    given = {}  # config key -> the flag that set it
    for dest, key in _RUN_FLAGS.items():
        value = getattr(args, dest)
        if value is None:
            continue
        given[key] = "--" + dest.replace("_", "-")
        table, _, name = key.rpartition(".")
        if key == "scenario":  # the file's table stays when it is of that kind or names none
            if not isinstance(config.scenario, dict):
                del given[key]  # the file's bad value: validate names it
                continue
            kind = config.scenario.get("kind")
            # another kind's keys would not fit; a table naming no kind is the flag's
            config.scenario = (
                {**config.scenario, "kind": value} if kind in (None, value) else {"kind": value}
            )
        elif key == "first_session_adaptation":  # --adapt [METHOD]: keep the file's table
            if not isinstance(config.first_session_adaptation, dict | None):
                del given[key]  # the file's bad value: validate names it
                continue
            table = dict(config.first_session_adaptation or {})
            if value:
                table["method"] = value
            config.first_session_adaptation = table
        elif not table:
            setattr(config, key, value)
        elif isinstance(getattr(config, table), dict):  # else validate names the bad table
            getattr(config, table)[name] = value
    for item in args.dataset_option or []:
        key, equals, text = item.partition("=")
        if not equals or not key.strip():
            return _error("run", f"--dataset-option {item!r}: write KEY=VALUE, e.g. path=my.npz")
        if isinstance(config.dataset_options, dict):  # else validate names the bad table
            key = key.strip()
            if given.get(f"dataset_options.{key}") == "--dataset-option":
                return _error("run", f"--dataset-option gives {key} twice; give it once")
            config.dataset_options[key] = _option_value(text, _loader_default(config, key))
            given[f"dataset_options.{key}"] = "--dataset-option"
    if args.quiet:
        config.progress = False
    return _execute(config, "run", given, args.config)


def _loader_default(config: Any, key: str) -> Any:
    """The default of the dataset loader's parameter ``key`` (None where it has none, or the
    dataset is unknown: the config's check names that)."""
    import inspect

    from forgetless.data import _LOADERS

    loader = _LOADERS.get(config.dataset) if isinstance(config.dataset, str) else None
    if loader is None:
        return None
    parameter = inspect.signature(loader).parameters.get(key)
    return None if parameter is None else parameter.default


def _option_value(text: str, default: Any) -> Any:
    """A flag's value as the loader's parameter takes it: true/false, a number where its
    default is one, else the text (a path named 2024 stays a path).

    >>> _option_value("3", 1), _option_value("0.5", 0.2), _option_value("2024", None)
    (3, 0.5, '2024')
    """
    text = text.strip()
    if isinstance(default, bool) and text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        if isinstance(default, kind) and not isinstance(default, bool):
            try:
                return kind(text)
            except ValueError:
                return text  # the config's check says what the value should be
    return text


def _execute(config, command: str, given: dict[str, str], source: str | None) -> int:
    """Validate everything (config, output directory, scenario against the data), then run.

    ``given`` maps the config keys set by flags to their flag, ``source`` is the config file:
    together they say where a bad value came from.
    """
    from forgetless.data import DatasetFileError, DatasetNotFoundError
    from forgetless.encoders import EncoderNotAvailableError
    from forgetless.evaluation.report import (
        adaptation_lines,
        domain_order_lines,
        failure_lines,
        format_table,
        summary_table,
        write_report,
    )
    from forgetless.experiment import ConfigError, MethodsFailed, run, save_results

    failed: list[str] = []  # methods that raised: the others' results are still written
    try:
        config.validate()
        replacing = (Path(config.output) / "results.json").is_file()
        try:
            results = run(config)  # checks the scenario on the labels before encoding anything
        except MethodsFailed as err:
            results, failed = err.results, err.failed
    except ConfigError as err:
        where = source
        for key, flag in given.items():
            if err.key is not None and (err.key == key or err.key.startswith(key + ".")):
                where = flag
        return _error(command, f"{where}: {err}" if where and not err.source else str(err))
    except (DatasetNotFoundError, DatasetFileError, EncoderNotAvailableError) as err:
        return _error(command, str(err))
    except OSError as err:  # a file where a folder should be (or the reverse), a full disk
        from forgetless.cache import FeatureCache

        root = FeatureCache(config.cache_dir).root.resolve()
        where = getattr(err, "filename", None)
        in_cache = Path(where).resolve().is_relative_to(root) if where else str(root) in str(err)
        hint = (
            f"; the feature cache {root} holds a damaged entry: `forgetless cache clear --dir "
            f"{root}` empties the cache (entries are encoded again when needed)"
            if in_cache
            else ""
        )
        return _error(command, f"{err}{hint}")
    try:
        path = save_results(results, config.output)
        (path.parent / "config.json").write_text(json.dumps(results["config"], indent=1))
        files = write_report(path.parent)
    except OSError as err:  # checked before the run; changed meanwhile, or a full disk
        return _error(command, f"cannot write the run's files in {config.output}: {err}")
    scenario = next(iter(results["scenarios"].values()))["name"]
    print(
        f"\n{results['dataset']['name']} / {results['encoder']['name']} / {scenario}, "
        f"seeds {config.seeds} (mean ± population std; accuracies in %)"
    )
    print(format_table(*summary_table(results)))
    for line in domain_order_lines(results):
        print(f"domains in the order taught, {line}")
    for line in adaptation_lines(results):
        print(f"first-session adaptation, {line}")
    failures = failure_lines(results)
    for line in failures:
        print(line)
    replaced = " (replacing the run that was there)" if replacing else ""
    print(
        f"\nwrote {path} and {', '.join(files)} in {path.parent}{replaced}{_without_plots(files)}"
    )
    if failed:  # after the files: the methods that ran are not lost
        more = f"; {len(failures) - 1} more failures above" if len(failures) > 1 else ""
        print(
            f"forgetless {command}: error: {', '.join(failed)} failed ({failures[0]}{more}); "
            f"the other methods' results are written, the tracebacks are in {path}",
            file=sys.stderr,
        )
        return 1
    return 0


def _without_plots(files: list[str]) -> str:
    """What to install where the report has no plots (matplotlib is missing), else ''."""
    from forgetless._install import install_line

    if any(name.endswith(".png") for name in files):
        return ""
    return f" (no plots: they need matplotlib, {install_line('report', 'matplotlib')})"


def _error(command: str, message: str) -> int:
    """A user mistake: one line on stderr (``forgetless run: error: ...``), exit code 2."""
    print(f"forgetless {command}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _add_report_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="rebuild the tables, plots and HTML of a run")
    parser.add_argument("run_dir")
    parser.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from forgetless.evaluation.report import ResultsFileError, write_report

    try:
        files = write_report(args.run_dir)
    except (FileNotFoundError, ResultsFileError) as err:
        return _error("report", str(err))
    except json.JSONDecodeError as err:
        return _error("report", f"{args.run_dir}/results.json is not valid JSON: {err}")
    except KeyError as err:
        return _error(
            "report", f"{args.run_dir}/results.json is not a forgetless results file (no {err})"
        )
    except OSError as err:
        return _error("report", f"cannot write the report in {args.run_dir}: {err}")
    print(f"wrote {', '.join(files)} in {args.run_dir}{_without_plots(files)}")
    return 0


def _add_cache_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cache", help="list or clear the on-disk feature cache")
    parser.add_argument(
        "--dir",
        help="cache folder (default: $FORGETLESS_CACHE_DIR, else $XDG_CACHE_HOME/forgetless, "
        "else ~/.cache/forgetless)",
    )
    actions = parser.add_subparsers(dest="cache_action", required=True)
    listing = actions.add_parser("list", help="show cached feature matrices")
    clear = actions.add_parser("clear", help="delete every cached feature matrix")
    clear.add_argument(
        "--yes",
        action="store_true",
        help="delete without asking (without it: asks on a terminal, elsewhere only says what "
        "would be deleted)",
    )
    for action, handler in ((listing, _run_cache_list), (clear, _run_cache_clear)):
        # --dir after the action too (cache clear --dir X); unset there, the one before stays
        action.add_argument("--dir", default=argparse.SUPPRESS, help="cache folder")
        action.set_defaults(handler=handler)


def _bad_cache_dir(folder: str | None) -> bool:
    """A cache folder that is a file, or (``--dir``) names nothing, would silently show an
    empty cache: say so instead."""
    from forgetless.cache import cache_dir_problem

    problem = cache_dir_problem(folder)
    if problem is None and folder is not None and not Path(folder).is_dir():
        problem = f"{folder} does not exist"
    if problem is None:
        return False
    if folder:
        hint = "give the cache folder (or leave --dir out)"
    elif os.environ.get("FORGETLESS_CACHE_DIR"):
        hint = "point $FORGETLESS_CACHE_DIR at a folder, or unset it"
    else:
        hint = "move that file, or set $FORGETLESS_CACHE_DIR to a folder"
    _error("cache", f"{'--dir ' if folder else ''}{problem}; {hint}")
    return True


def _run_cache_list(args: argparse.Namespace) -> int:
    import time

    from forgetless.cache import FeatureCache

    if _bad_cache_dir(args.dir):
        return 2
    cache = FeatureCache(args.dir)
    entries = cache.entries()
    print(f"feature cache: {cache.root} ({len(entries)} entries)")
    for e in entries:
        shape = "x".join(str(d) for d in e.shape)
        state = "complete" if e.complete else "partial"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.updated))
        print(
            f"{e.key[:12]}  {e.encoder:<24} {e.tag:<28} {shape:>12} "
            f"{e.bytes / 2**20:8.1f} MiB  {state:<8} {when}"
        )
    return 0


def _run_cache_clear(args: argparse.Namespace) -> int:
    from forgetless.cache import FeatureCache

    if _bad_cache_dir(args.dir):
        return 2
    cache = FeatureCache(args.dir)
    entries = cache.entries()
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"would delete {len(entries)} entries in {cache.root}; pass --yes to confirm")
            return 1
        answer = input(f"delete {len(entries)} cached feature matrices in {cache.root}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    deleted, freed, busy = cache.clear()
    print(
        f"deleted {deleted} entries ({freed / 2**20:.1f} MiB) from {cache.root}"
        + (f"; kept {busy} that another process is using" if busy else "")
    )
    return 0


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line naming the command, as every other
    mistake of the command line is (argparse prints its whole usage block first). Its
    subcommands' parsers are of this class too (argparse makes them like their parent)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="forgetless",
        description="Exemplar-free continual learning on frozen encoders, in closed form.",
        epilog=TEACH_EXAMPLES + RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_teach_commands(subparsers)
    _add_demo_command(subparsers)
    _add_run_command(subparsers)
    _add_report_command(subparsers)
    _add_cache_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _printable_streams()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command that was given them, with the flag meant if one is near
        command = _command_parser(parser, args)
        hint = _did_you_mean(command, unknown)
        command.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    try:
        return int(args.handler(args))
    except BrokenPipeError:  # the reader went away (| head): stop quietly, files are written
        return reader_gone()


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Any:
    """The parser of the (sub)command ``args`` ran: ``forgetless cache clear``'s, not the
    top level's."""
    while True:
        chosen = [
            action.choices[getattr(args, action.dest)]
            for action in parser._actions
            # a subcommands action: its choices map names to parsers
            if isinstance(action.choices, dict) and getattr(args, action.dest, None)
        ]
        if not chosen:
            return parser
        parser = chosen[0]


def _did_you_mean(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """'; did you mean --image-size?' for the first unknown flag near one of ``parser``'s."""
    flags = [flag for action in parser._actions for flag in action.option_strings]
    for item in unknown:
        if item.startswith("-"):
            near = difflib.get_close_matches(item.split("=", 1)[0], flags, n=1, cutoff=0.7)
            if near:
                return f"; did you mean {near[0]}?"
    listed = [a for a in parser._actions if not a.option_strings and a.nargs in ("*", "+")]
    if listed and not any(item.startswith("-") for item in unknown):
        # the list of inputs ends at the first option: what follows an option is no input
        return f"; give the {listed[0].metavar or listed[0].dest} before the options"
    return ""


def _printable_streams() -> None:
    """Let stdout and stderr write any class name or path: a terminal or pipe whose encoding
    cannot show a character (ASCII, a Windows code page) gets an escape such as \\xe9 instead
    of an error after the command's work is done and saved."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) == "strict":
            reconfigure(errors="backslashreplace")


if __name__ == "__main__":
    sys.exit(main())
