"""`rnadiff refine --from-c1-csv FILE --out DIR`: every target x conformation of a Stanford RNA 3D
Folding submission (`io.submission`) refined as an input named `T_k`, into DIR/T_k/ exactly as a
file of that stem would be (samples, summary.json, mirror check, output gate).

The C1' table of the result (`--c1-csv OUT.csv`) has the layout it was read in: one target T per
input target, the same resname and resid on every row, and S = --samples conformations.
Conformation j (1..S) is sample (j-1) div K of input conformation ((j-1) mod K) + 1, K being the
number of input conformations: with K = S = 5, conformation j is sample_0 of T_j (each input
conformation refined once, their diversity kept); with K = 1 it is sample j-1, as for a file.
A target is left out of the table when a conformation it needs failed (input error or output
gate), so every row it has is complete; the error lines say which.

Memory is bounded by one target: targets are read, refined and written one at a time, and the
table is streamed to a temporary file beside OUT.csv that is moved into place at the end.
`--shard K/N` keeps the targets of one fixed partition of the names (`io.submission.in_shard`), so
N processes, one per shard, split a file with nothing shared but DIR.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rnadiff.errors import InputError, OutputError
from rnadiff.io.submission import iter_submission_targets
from rnadiff.refine.files import refine_to_dir
from rnadiff.refine.shard import InputOutcome, run_input


def output_conformations(n_inputs: int, n_samples: int) -> list[tuple[int, int]]:
    """(input conformation k, 1-based; sample index) of each output conformation j = 1..n_samples."""
    return [((j % n_inputs) + 1, j // n_inputs) for j in range(n_samples)]


class C1Table:
    """The output C1' table, streamed: rows go to a temporary sibling of `path`, which replaces
    `path` on `commit` (only when it holds a target) and is removed on `discard`."""

    def __init__(self, path: str | os.PathLike, n_conformations: int):
        self.path = Path(path)
        self.n_conformations = n_conformations
        self.n_targets = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write the C1' table ({exc.strerror or exc})") from None
        self.tmp = Path(tmp)
        self.fh = os.fdopen(fd, "w", encoding="utf-8", newline="")
        header = ["ID", "resname", "resid"] + [f"{c}_{k}" for k in range(1, n_conformations + 1) for c in "xyz"]
        self.fh.write(",".join(header) + "\n")

    def add(self, target: str, resnames: list[str], resids: np.ndarray, coords: np.ndarray) -> None:
        """coords [n_conformations, N, 3]: C1' of each output conformation."""
        per_row = coords.transpose(1, 0, 2).reshape(len(resids), -1)
        for name, resid, values in zip(resnames, resids, per_row):
            self.fh.write(",".join([f"{target}_{resid}", name, str(resid), *(f"{v:.3f}" for v in values)]) + "\n")
        self.n_targets += 1

    def commit(self) -> bool:
        self.fh.close()
        if not self.n_targets:
            self.tmp.unlink(missing_ok=True)
            return False
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)
        return True

    def discard(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def c1_coordinates(layout: Any, samples: np.ndarray) -> np.ndarray:
    """C1' of every residue of every sample [S, N, 3]."""
    index = [layout.atom_index(tok, "C1'") for tok in range(layout.n_tokens)]
    if any(i is None for i in index):
        raise OutputError(f"residue {index.index(None) + 1} has no C1' atom")
    return np.asarray(samples)[:, index, :]


def target_dir_name(name: str, path: Path) -> str:
    """`T_k` as a directory name: a target name that would leave DIR is refused."""
    if "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise InputError(f"target name {name!r} cannot name an output directory", path)
    return name


def refine_submission(csv_path: str | os.PathLike, out: str | os.PathLike, model: Any, settings: Any, *,
                      report: Callable[[InputOutcome], None], shard: tuple[int, int] | None = None,
                      c1_table: C1Table | None = None, **refine_options: Any) -> tuple[int, int]:
    """Refine every conformation of every target (of `shard`); `report` gets each outcome as it
    comes (a malformed row ends the file with one failed outcome). refine_options go to
    `refine_to_dir` (fmt, overwrite, checkpoint, progress, mirror). Returns (inputs, failed)."""
    path = Path(csv_path)
    targets = iter_submission_targets(path, shard)
    n_inputs = n_failed = 0
    while True:
        try:
            target = next(targets, None)
        except InputError as exc:
            report(InputOutcome(index=n_inputs, path=str(path), error=str(exc)))
            return n_inputs + 1, n_failed + 1
        if target is None:
            return n_inputs, n_failed
        coords: dict[int, np.ndarray] = {}
        for k in range(1, target.n_conformations + 1):
            outcome, c1 = _refine_conformation(target, k, n_inputs, Path(out), model, settings, refine_options)
            report(outcome)
            n_inputs += 1
            n_failed += outcome.error is not None
            if c1 is not None:
                coords[k] = c1
        if c1_table is not None:
            _add_to_table(c1_table, target, coords, settings.n_samples)


def _refine_conformation(target, k: int, index: int, out: Path, model, settings, options):
    """(outcome, C1' of its samples [S, N, 3] or None when it failed) of conformation k."""
    name = target.name(k)
    source = f"{target.path}:{name}"

    def work():
        structure = target.structure(k)  # the physical checks; an InputError names file, line and T_k
        return refine_to_dir(structure, source, out / target_dir_name(name, target.path), model, settings, **options)

    outcome, summary, result = run_input(index, source, out / name, False, work, named_by=(str(target.path), name))
    if outcome.error is not None or result is None:
        return outcome, None
    return outcome, c1_coordinates(result.features.layout, result.samples)


def _add_to_table(table: C1Table, target, coords: dict[int, np.ndarray], n_samples: int) -> None:
    picks = output_conformations(target.n_conformations, n_samples)
    if any(k not in coords for k, _ in picks):
        return  # a needed conformation failed: its error line has been reported
    rows = np.stack([coords[k][s] for k, s in picks])
    if rows.shape[1] != len(target.resids):
        raise OutputError(f"{target.target}: {rows.shape[1]} residues refined for {len(target.resids)} read")
    table.add(target.target, target.resnames, target.resids, rows)


__all__ = ["C1Table", "c1_coordinates", "output_conformations", "refine_submission"]
