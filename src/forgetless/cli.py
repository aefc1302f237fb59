"""The ``forgetless`` command.

Each sub-command registers itself in one small ``_add_*`` function so the file stays readable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _add_demo_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="class-incremental comparison on the embedded digits data (no download)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default="runs/demo")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from forgetless.experiment import RunConfig

    config = RunConfig(seeds=args.seeds, output=args.output, progress=False if args.quiet else None)
    return _execute(config)


def _add_run_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run a continual-learning comparison from a config file and/or flags"
    )
    parser.add_argument("--config", help="TOML or YAML file (see configs/); flags override it")
    parser.add_argument("--dataset", help="dataset name (forgetless.data.list_datasets())")
    parser.add_argument("--encoder", help="encoder name (forgetless.encoders.list_encoders())")
    parser.add_argument(
        "--scenario", help="class-incremental, domain-incremental, few-shot, online-blurry"
    )
    parser.add_argument("--increment", type=int, help="classes per step (class-incremental)")
    parser.add_argument("--initial", type=int, help="classes in the first step (0: increment)")
    parser.add_argument("--methods", nargs="+", help="methods to compare")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--n-components", type=int, help="width M of the random layer")
    parser.add_argument("--projection", help="random layer of the forgetless methods")
    parser.add_argument("--subset-train", type=int, help="stratified training subset size")
    parser.add_argument("--subset-test", type=int, help="stratified test subset size")
    parser.add_argument("--output", help="run directory (default runs/latest)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_run)


def _run_run(args: argparse.Namespace) -> int:
    from forgetless.experiment import RunConfig

    config = RunConfig.from_file(args.config) if args.config else RunConfig()
    for key in ("dataset", "encoder", "methods", "seeds", "output"):
        if getattr(args, key) is not None:
            setattr(config, key, getattr(args, key))
    if args.scenario is not None:
        config.scenario = {"kind": args.scenario}
    for key in ("increment", "initial"):
        if getattr(args, key) is not None:
            config.scenario[key] = getattr(args, key)
    if args.n_components is not None:
        config.learner["n_components"] = args.n_components
    if args.projection is not None:
        config.learner["projection"] = args.projection
    if args.subset_train is not None:
        config.subset["train"] = args.subset_train
    if args.subset_test is not None:
        config.subset["test"] = args.subset_test
    if args.quiet:
        config.progress = False
    return _execute(config)


def _execute(config) -> int:
    from forgetless.evaluation.report import format_table, summary_table, write_report
    from forgetless.experiment import run, save_results

    try:
        config.validate()
    except ValueError as err:
        print(f"forgetless: {err}", file=sys.stderr)
        return 2
    results = run(config)
    path = save_results(results, config.output)
    (path.parent / "config.json").write_text(json.dumps(results["config"], indent=1))
    files = write_report(path.parent)
    scenario = next(iter(results["scenarios"].values()))["name"]
    print(
        f"\n{results['dataset']['name']} / {results['encoder']['name']} / {scenario}, "
        f"seeds {config.seeds}"
    )
    print(format_table(*summary_table(results)))
    print(f"\nwrote {path} and {', '.join(files)} in {path.parent}")
    return 0


def _add_report_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="rebuild the tables, plots and HTML of a run")
    parser.add_argument("run_dir")
    parser.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from forgetless.evaluation.report import write_report

    try:
        files = write_report(args.run_dir)
    except FileNotFoundError as err:
        print(f"forgetless: {err}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(files)} in {args.run_dir}")
    return 0


def _add_cache_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cache", help="list or clear the on-disk feature cache")
    parser.add_argument("--dir", help="cache folder (default: $FORGETLESS_CACHE_DIR or ~/.cache)")
    actions = parser.add_subparsers(dest="cache_action", required=True)
    actions.add_parser("list", help="show cached feature matrices").set_defaults(
        handler=_run_cache_list
    )
    clear = actions.add_parser("clear", help="delete every cached feature matrix")
    clear.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    clear.set_defaults(handler=_run_cache_clear)


def _run_cache_list(args: argparse.Namespace) -> int:
    import time

    from forgetless.cache import FeatureCache

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
    freed = cache.clear()
    print(f"deleted {len(entries)} entries ({freed / 2**20:.1f} MiB) from {cache.root}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forgetless",
        description="Exemplar-free continual learning on frozen encoders, in closed form.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_demo_command(subparsers)
    _add_run_command(subparsers)
    _add_report_command(subparsers)
    _add_cache_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
