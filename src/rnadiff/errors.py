"""The exception types users see.

Everything a user can cause (a bad file, a bad option, a bad checkpoint) raises a subclass of
`RnadiffError`; the command line prints its message as one line and exits with code 2. Any other
exception is a bug in rnadiff.
"""
from __future__ import annotations

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
