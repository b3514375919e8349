"""The exception types users see.

Everything a user can cause (a bad file, a bad option, a bad checkpoint) raises a subclass of
`RnadiffError`; the command line prints its message as one line and exits with code 2. Any other
exception is a bug in rnadiff.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from os import PathLike


class RnadiffError(Exception):
    """Base class of every error caused by input, configuration or environment.

    Messages are one line (users read them on stderr, pipelines grep them): newlines coming from
    libraries (gemmi, OpenMM) are folded into spaces.
    """

    def __init__(self, *args):
        if args:
            args = (" ".join(str(args[0]).split()), *args[1:])
        super().__init__(*args)


class InputError(RnadiffError):
    """A structure file (or tensor input) that cannot be used; the message names file and problem."""

    def __init__(self, problem: str, path: str | PathLike | None = None):
        self.problem = " ".join(str(problem).split())
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {self.problem}" if self.path else self.problem)


class UnknownResidueError(InputError):
    """A residue name that is neither a standard nor a known modified ribonucleotide."""


class ConfigError(RnadiffError):
    """An option, override or configuration value that is invalid or unsupported."""


class CheckpointError(RnadiffError):
    """A checkpoint that is malformed, mismatched, or would need unsafe unpickling."""


class OutputError(RnadiffError):
    """An output location that cannot be written, or that exists and may not be overwritten."""


EXIT_ERROR = 2  # an RnadiffError
EXIT_OS_ERROR = 1  # an operating-system error no command turned into an RnadiffError


def exit_code_of(main: Callable[[], int | None], prog: str, debug: bool = False) -> int:
    """Run `main()` as a command (`rnadiff`, `python -m rnadiff.train.export`, ...): an
    RnadiffError is one line on stderr and EXIT_ERROR, an operating-system error (a file that
    cannot be read or written) one line with the file's name and EXIT_OS_ERROR; debug re-raises
    them for the traceback. A closed pipe (BrokenPipeError) and any other exception propagate:
    the first is the caller's to end quietly, the second is a bug."""
    try:
        return int(main() or 0)
    except RnadiffError as exc:
        if debug:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        raise
    except OSError as exc:
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{prog}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_OS_ERROR
