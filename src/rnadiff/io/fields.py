"""Coordinate fields checked as text, before gemmi turns them into numbers.

gemmi reads a PDB coordinate column with a lenient number parser: `12.x3-4..7` becomes 12.0,
`NaNa` 0.0, `++1.0` 0.0. A file like that would be refined as if it were a structure, so every
coordinate field of every ATOM/HETATM line (PDB columns 31-54) or `_atom_site.Cartn_*` value
(mmCIF) must be a plain decimal number; otherwise an `InputError` names the file and the line
(PDB) or the atom_site row (mmCIF).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import gemmi

from rnadiff.errors import InputError

# A PDB coordinate is a fixed-width decimal (%8.3f); no exponent. mmCIF numbers may carry an
# exponent and a standard uncertainty in brackets (`12.345(6)`), as the CIF grammar allows.
_PDB_NUMBER = re.compile(r" *[+-]?(?:\d+\.?\d*|\.\d+) *")
_CIF_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:\(\d+\))?")
_PDB_COORD_COLUMNS = ((30, 38, "x"), (38, 46, "y"), (46, 54, "z"))


def _describe_bad(value: str) -> str:
    """Why a field is not a coordinate: non-finite values are named as such."""
    try:
        number = float(value)
    except ValueError:
        return f"coordinate field {value.strip()!r} is not a number"
    if not math.isfinite(number):
        return f"non-finite (NaN/inf) coordinate {value.strip()!r}"
    return f"coordinate field {value.strip()!r} is not a plain decimal number"


def check_pdb_coordinate_fields(text: str, path: Path) -> None:
    """Every ATOM/HETATM line has three decimal numbers in columns 31-54."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith(("ATOM", "HETATM")):  # "ATOM" alone: serials past 99999 fill column 5
            continue
        if len(line.rstrip()) < 54:
            raise InputError(f"line {number}: truncated coordinate line (columns 31-54 hold x, y, z)", path)
        for start, stop, axis in _PDB_COORD_COLUMNS:
            field = line[start:stop]
            if not _PDB_NUMBER.fullmatch(field):
                raise InputError(f"line {number}: {_describe_bad(field)} ({axis}, columns {start + 1}-{stop})", path)


def _row_label(block: gemmi.cif.Block, row: int) -> str:
    """'atom_site row 7 (id 7, G A12)' from whichever identifying columns the file has."""
    parts = []
    for tags in (("id",), ("auth_comp_id", "label_comp_id"), ("auth_asym_id", "label_asym_id"),
                 ("auth_seq_id", "label_seq_id")):
        columns = [block.find_values(f"_atom_site.{tag}") for tag in tags]
        found = [c for c in columns if len(c) > row]
        parts.append(gemmi.cif.as_string(found[0][row]) if found else "")
    atom_id, resname, chain, seq = parts
    residue = " ".join(p for p in (resname, chain + seq) if p)
    inner = ", ".join(p for p in (f"id {atom_id}" if atom_id else "", residue) if p)
    return f"atom_site row {row + 1}" + (f" ({inner})" if inner else "")


def check_mmcif_coordinate_fields(block: gemmi.cif.Block, path: Path) -> None:
    """Every `_atom_site.Cartn_x/y/z` value is a number (missing `?`/`.` included as errors)."""
    table = block.find("_atom_site.", ["Cartn_x", "Cartn_y", "Cartn_z"])
    if len(table) == 0:
        return  # no coordinates at all: the reader reports "no atoms found"
    for axis in range(3):
        column = table.column(axis)
        for row, value in enumerate(column):
            if _CIF_NUMBER.fullmatch(value) or _CIF_NUMBER.fullmatch(gemmi.cif.as_string(value)):
                continue  # the second test only runs for quoted values ('12.3'), which CIF allows
            problem = "missing coordinate" if value in ("?", ".") else _describe_bad(value)
            raise InputError(f"{_row_label(block, row)}: {problem} (Cartn_{'xyz'[axis]})", path)
