"""`rnadiff <command>`: one dispatcher, one module per command under `rnadiff.cli`.

Each command module defines `register(subparsers)` (adds its sub-parser and sets
`func=run`) and `run(args) -> int`. Only the module of the command being run is imported: the
others get a placeholder sub-parser carrying their one-line help, so `rnadiff --help` and the
start of every command never pay for torch, gemmi or Hydra imports they do not use.

User-caused failures (`RnadiffError`) print a single line on stderr and exit with code 2; an
operating-system error that no command turned into one (a file that cannot be read or written)
prints its one line with the file's name and exits with code 1; tracebacks are only shown with
`--debug`. A reader that closes the pipe early
(`rnadiff evaluate A B | head -1`) ends the command quietly with exit code 141 (128 + SIGPIPE,
what a shell reports for a tool stopped by a closed pipe).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from rnadiff import __version__
from rnadiff.errors import EXIT_ERROR, exit_code_of

# command -> (module under rnadiff.cli, one-line help), in the order `rnadiff --help` lists them.
# The help text is the module's own (tests/test_cli_lazy.py checks they stay equal).
COMMANDS = {
    "refine": ("refine", "refine partial/coarse RNA models into all-atom structures"),
    "minimize": ("minimize", "energy-minimize a structure with OpenMM"),
    "evaluate": ("evaluate", "compare a model with a reference (RMSD, lDDT, TM-score, clashes, geometry)"),
    "train": ("train", "train the standalone refinement model"),
    "bench": ("bench", "benchmark the denoiser, an end-to-end refine and a minimization (time, memory, FLOP/s)"),
    "convert-protenix": ("convert_protenix", "convert a Protenix training checkpoint to rnadiff's format"),
    "demo": ("demo", "train a small diffusion model on one RNA and regenerate it from pure noise"),
}
COMMAND_MODULES = tuple(module for module, _ in COMMANDS.values())

EXIT_OK = 0
EXIT_USAGE = EXIT_ERROR
EXIT_BROKEN_PIPE = 141


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints its usage block before an error; users and pipelines get one line instead
    (`--help` still shows the usage). Sub-parsers inherit this class."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def chosen_command(argv: list[str]) -> str | None:
    """The command word of argv: the first argument that is not a global option (the global
    options take no values), or None."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(command: str | None = None, *, register_all: bool = False) -> argparse.ArgumentParser:
    """The full parser for `command` (its module imported and registered); every other command is
    a placeholder with its help line. register_all imports every module (tests, docs)."""
    parser = _OneLineErrorParser(
        prog="rnadiff",
        description="Refine coarse or partial RNA 3D models into all-atom structures with diffusion.",
        epilog="Exit status: 0 success, 1 internal error, 2 bad input or options (one line on stderr), "
               "130 interrupted, 141 output pipe closed by the reader.",
    )
    parser.add_argument("--version", action="version", version=f"rnadiff {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (module, help_line) in COMMANDS.items():
        if register_all or name == command:
            importlib.import_module(f"rnadiff.cli.{module}").register(subparsers)
        else:
            subparsers.add_parser(name, help=help_line)
    return parser


def _dispatch(argv: list[str]) -> int:
    parser = build_parser(chosen_command(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="rnadiff: %(levelname)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return exit_code_of(lambda: args.func(args), "rnadiff", debug=args.debug)
    except KeyboardInterrupt:
        print("rnadiff: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush cannot raise again
    (the recipe of Python's `signal` documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def _sleeping_openmp_workers() -> None:
    """OpenMP workers that sleep when idle, unless the user chose otherwise. Must run before torch
    is imported (the OpenMP runtime reads it once, at load).

    Why: with the default policy idle workers spin; between torch's many small parallel regions
    (and during numpy/scipy work) they steal the cores the main thread needs. Measured on a shared
    2-core machine, `rnadiff refine` of a 70-nt input with 5 samples: 2 threads took 73 s with
    spinning workers and 12 s with sleeping ones (1 thread: 13 s)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _sleeping_openmp_workers()
    try:
        try:
            return _dispatch(argv)
        finally:
            # Flush inside the guard: output still buffered (a pipe is block-buffered) would
            # otherwise meet the closed pipe at interpreter exit, outside any handler.
            sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
