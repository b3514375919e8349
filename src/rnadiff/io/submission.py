"""Read Stanford RNA 3D Folding submissions: C1' coordinates of up to 5 conformations per target.

    ID,resname,resid,x_1,y_1,z_1,...,x_5,y_5,z_5
    R1107_1,G,1,12.345,...

target = ID up to its last underscore; its rows must be contiguous (as every submission is), which
lets the reader stream target by target in memory bounded by one target. Conformation k of target
T is the C1'-only structure `T_k` (one chain "A"; sequence from resname; a chain break wherever
resid jumps by more than one, or C1'-C1' exceeds 12 Å, as for any input, `io.breaks`).
Sharding (`shard=(K, N)`, K in 1..N) keeps a target when crc32(target) mod N == K - 1: a fixed
partition computed from the name alone, so N processes need no shared state and agree on it.

Malformed rows raise InputError naming the file and line; a conformation whose coordinates fail
the physical checks (`io.sanity`) raises from `SubmissionTarget.structure` naming file, line and
T_k, so a caller can report it and go on with the next conformation.
"""
from __future__ import annotations

import csv
import math
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnadiff.chem.library import get_template
from rnadiff.chem.vocab import parent_of, template_name_for
from rnadiff.errors import InputError
from rnadiff.io.breaks import mark_chain_breaks
from rnadiff.io.sanity import check_structure
from rnadiff.io.structure import Chain, Residue, RNAStructure

FIXED_COLUMNS = ("ID", "resname", "resid")
CHAIN_ID = "A"


@dataclass
class SubmissionTarget:
    """All rows of one target: resnames [N], resids int [N], coords float64 [K, N, 3]."""

    path: Path
    target: str
    line: int  # line of the target's first row
    resnames: list[str]
    resids: np.ndarray
    coords: np.ndarray

    @property
    def n_conformations(self) -> int:
        return self.coords.shape[0]

    def name(self, k: int) -> str:
        return f"{self.target}_{k}"

    def structure(self, k: int) -> RNAStructure:
        """Conformation k (1-based) as a C1'-only RNAStructure, sanity-checked."""
        if not 1 <= k <= self.n_conformations:
            raise ValueError(f"conformation {k} outside 1..{self.n_conformations}")
        residues = []
        for name, resid, xyz in zip(self.resnames, self.resids, self.coords[k - 1]):
            template = template_name_for(name)
            residues.append(Residue(
                chain_id=CHAIN_ID, seq_num=int(resid), ins_code="", name=name, template_name=template,
                parent=parent_of(name) or get_template(template).parent, atom_names=("C1'",),
                coords=xyz.reshape(1, 3).copy(), elements=("C",)))
        n_breaks = mark_chain_breaks(residues)
        notes = [f"C1' conformation {k} of target {self.target} read from {self.path}"]
        if n_breaks:
            notes.append(f"{n_breaks} chain breaks (resid gaps or C1'-C1' > 12 Å); not linked")
        structure = RNAStructure(chains=[Chain(CHAIN_ID, residues)], notes=notes, source=f"{self.path}:{self.name(k)}")
        try:
            check_structure(structure)
        except InputError as exc:
            raise InputError(f"line {self.line}: {self.name(k)}: {exc.problem}", self.path) from None
        return structure


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 1 <= K <= N; InputError otherwise."""
    try:
        k, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise InputError(f"--shard must look like K/N (e.g. 2/8), got {text!r}") from None
    if not 1 <= k <= n:
        raise InputError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def in_shard(target: str, shard: tuple[int, int] | None) -> bool:
    if shard is None:
        return True
    k, n = shard
    return zlib.crc32(target.encode("utf-8")) % n == k - 1


def _conformation_count(header: list[str], path: Path) -> int:
    """K from the header ID,resname,resid,x_1,y_1,z_1,...,x_K,y_K,z_K (checked column by column)."""
    cols = [h.strip() for h in header]
    n_coord = len(cols) - len(FIXED_COLUMNS)
    if tuple(cols[:3]) != FIXED_COLUMNS or n_coord < 3 or n_coord % 3:
        raise InputError(f"line 1: header must be ID,resname,resid,x_1,y_1,z_1,... (got {','.join(cols)[:80]})", path)
    expected = [f"{c}_{k}" for k in range(1, n_coord // 3 + 1) for c in "xyz"]
    if cols[3:] != expected:
        bad = next(c for c, e in zip(cols[3:], expected) if c != e)
        raise InputError(f"line 1: header column {bad!r} out of order (expected x_k,y_k,z_k for k = 1..{n_coord // 3})", path)
    return n_coord // 3


def _parse_row(row: list[str], width: int, line: int, path: Path) -> tuple[str, str, int, list[float]]:
    """(target, resname, resid, coordinates) of one data row; InputError naming the line."""
    if len(row) != width:
        raise InputError(f"line {line}: {len(row)} fields, the header has {width}", path)
    ident, resname, resid_text = (v.strip() for v in row[:3])
    target, sep, suffix = ident.rpartition("_")
    if not sep or not target:
        raise InputError(f"line {line}: ID {ident!r} is not <target>_<resid>", path)
    try:
        resid = int(resid_text)
    except ValueError:
        raise InputError(f"line {line}: resid {resid_text!r} is not an integer", path) from None
    if template_name_for(resname.upper()) is None:
        raise InputError(f"line {line}: unknown residue name {resname!r}", path)
    values = []
    for column, text in enumerate(row[3:]):
        try:
            v = float(text)
        except ValueError:
            raise InputError(f"line {line}: coordinate {text.strip()!r} (column {column + 4}) is not a number", path) from None
        if not math.isfinite(v):
            raise InputError(f"line {line}: non-finite (NaN/inf) coordinate {text.strip()!r} (column {column + 4})", path)
        values.append(v)
    return target, resname.upper(), resid, values


def _open_rows(path: Path):
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a directory, not a submission CSV", path)
    return path.open(newline="", encoding="utf-8", errors="strict")


def iter_submission_targets(path: str | os.PathLike, shard: tuple[int, int] | None = None) -> Iterator[SubmissionTarget]:
    """Each target of the CSV (in file order, those of `shard` only), one at a time."""
    path = Path(path)
    seen: set[str] = set()
    current: dict | None = None
    try:
        with _open_rows(path) as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise InputError("empty file", path)
            n_conf = _conformation_count(header, path)
            for row in reader:
                if not row or not any(v.strip() for v in row):
                    continue
                target, resname, resid, values = _parse_row(row, len(header), reader.line_num, path)
                if current is not None and target == current["target"]:
                    if resid <= current["resids"][-1]:
                        raise InputError(f"line {reader.line_num}: resid {resid} of target {target} does not increase", path)
                else:
                    if current is not None and in_shard(current["target"], shard):
                        yield _finish(current, n_conf, path)
                    if target in seen:
                        raise InputError(f"line {reader.line_num}: rows of target {target} are not contiguous", path)
                    seen.add(target)
                    current = dict(target=target, line=reader.line_num, resnames=[], resids=[], values=[])
                current["resnames"].append(resname)
                current["resids"].append(resid)
                current["values"].append(values)
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text CSV file", path) from None
    except csv.Error as exc:
        raise InputError(f"malformed CSV ({exc})", path) from None
    if current is None:
        raise InputError("no data rows after the header", path)
    if in_shard(current["target"], shard):
        yield _finish(current, n_conf, path)


def _finish(current: dict, n_conf: int, path: Path) -> SubmissionTarget:
    values = np.asarray(current["values"], dtype=np.float64).reshape(len(current["resids"]), n_conf, 3)
    return SubmissionTarget(path=path, target=current["target"], line=current["line"], resnames=current["resnames"],
                            resids=np.asarray(current["resids"], dtype=np.int64), coords=values.transpose(1, 0, 2).copy())


def iter_submission(path: str | os.PathLike, shard: tuple[int, int] | None = None) -> Iterator[tuple[str, RNAStructure]]:
    """(name `T_k`, C1'-only structure) for every target x conformation; raises at the first bad one."""
    for target in iter_submission_targets(path, shard):
        for k in range(1, target.n_conformations + 1):
            yield target.name(k), target.structure(k)


__all__ = ["SubmissionTarget", "iter_submission", "iter_submission_targets", "parse_shard", "in_shard"]
