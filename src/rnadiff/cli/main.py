"""`rnadiff <command>`: one dispatcher, one module per command under `rnadiff.cli`.

Each command module defines `register(subparsers)` (adds its sub-parser and sets
`func=run`) and `run(args) -> int`. User-caused failures (`RnadiffError`) print a single line
on stderr and exit with code 2; tracebacks are only shown with `--debug`.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rnadiff import __version__
from rnadiff.errors import RnadiffError

# The command modules, in the order `rnadiff --help` lists them.
COMMAND_MODULES = (
    "refine",
    "minimize",
    "evaluate",
    "train",
    "bench",
    "convert_protenix",
    "demo",
)

EXIT_OK = 0
EXIT_USAGE = 2


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints its usage block before an error; users and pipelines get one line instead
    (`--help` still shows the usage). Sub-parsers inherit this class."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="rnadiff",
        description="Refine coarse or partial RNA 3D models into all-atom structures with diffusion.",
    )
    parser.add_argument("--version", action="version", version=f"rnadiff {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(f"rnadiff.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="rnadiff: %(levelname)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or EXIT_OK)
    except RnadiffError as exc:
        if args.debug:
            raise
        print(f"rnadiff: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rnadiff: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
