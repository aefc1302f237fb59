"""The ``forgetless`` command.

Each sub-command registers itself in one small ``_add_*`` function so the file stays readable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _add_demo_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="class-incremental run on the embedded digits data (no download)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from forgetless.demo import run_demo

    run_demo(seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forgetless",
        description="Exemplar-free continual learning on frozen encoders, in closed form.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_demo_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
