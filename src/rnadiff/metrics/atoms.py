"""A flat, numpy-backed atom table: the one structure representation the metrics work on.

Metrics only need per-atom labels (chain, residue number, insertion code, residue name, atom name,
element) and coordinates. Keeping them in parallel arrays makes matching two structures by label
and every distance computation vectorised. `AtomTable.from_any` accepts a file path, a gemmi
Structure, an `rnadiff.io` RNAStructure or an AtomTable. Files are read with gemmi directly so
that every atom (modified-base extras, ions, hydrogens) is kept for the metrics and the minimizer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from rnadiff.errors import InputError

# Old or alternative atom names found in PDB files -> the names the monomer library uses.
ATOM_NAME_ALIASES = {"O1P": "OP1", "O2P": "OP2", "O3P": "OP3"}


def normalise_atom_name(name: str) -> str:
    """Map old nucleic-acid atom names (O1P, C1*) to the current ones (OP1, C1')."""
    name = name.strip().replace("*", "'")
    return ATOM_NAME_ALIASES.get(name, name)


@dataclass
class AtomTable:
    """Parallel per-atom arrays; `coords` is float64 [N, 3] in Angstrom."""

    chain_ids: np.ndarray
    res_seqs: np.ndarray
    icodes: np.ndarray
    res_names: np.ndarray
    atom_names: np.ndarray
    elements: np.ndarray
    coords: np.ndarray
    # Per-atom B-factors as read (rnadiff writes the per-atom sample spread there); None when
    # the table was not read from a file.
    b_factors: np.ndarray | None = None
    n_water: int = 0  # water residues skipped when reading (reported, never scored)
    _res_index: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.coords)
        self.coords = np.asarray(self.coords, dtype=np.float64).reshape(n, 3)
        self.res_seqs = np.asarray(self.res_seqs, dtype=np.int64)
        for name in ("chain_ids", "icodes", "res_names", "atom_names", "elements"):
            arr = np.asarray(getattr(self, name), dtype=object)
            if arr.shape != (n,):
                raise ValueError(f"AtomTable.{name} has shape {arr.shape}, expected ({n},)")
            setattr(self, name, arr)
        if self.b_factors is not None:
            self.b_factors = np.asarray(self.b_factors, dtype=np.float64).reshape(n)

    def __len__(self) -> int:
        return len(self.coords)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_gemmi(cls, structure: Any, model_index: int = 0) -> "AtomTable":
        """First model (or `model_index`), first altloc; water is skipped."""
        import gemmi

        if len(structure) == 0:
            raise InputError("structure has no models")
        model = structure[model_index]
        rows: list[tuple] = []
        xyz: list[tuple[float, float, float]] = []
        b_factors: list[float] = []
        n_water = 0
        for chain in model:
            for res in chain:
                if res.is_water():
                    n_water += 1
                    continue
                seen: set[str] = set()
                for atom in res:
                    if atom.altloc not in ("\0", " ", "A") and atom.altloc != "":
                        continue
                    name = normalise_atom_name(atom.name)
                    if name in seen:  # a second altloc labelled differently
                        continue
                    seen.add(name)
                    element = atom.element.name.upper() if atom.element != gemmi.Element("X") else name[:1]
                    rows.append((chain.name, res.seqid.num, res.seqid.icode.strip(), res.name.strip(),
                                 name, element))
                    xyz.append((atom.pos.x, atom.pos.y, atom.pos.z))
                    b_factors.append(atom.b_iso)
        table = cls._from_rows(rows, xyz)
        table.b_factors = np.asarray(b_factors, dtype=np.float64)
        table.n_water = n_water
        return table

    @classmethod
    def from_file(cls, path: str | PathLike) -> "AtomTable":
        import gemmi

        path = Path(path)
        if not path.is_file():
            raise InputError("no such file", path)
        try:
            structure = gemmi.read_structure(str(path))
        except (RuntimeError, ValueError) as exc:
            raise InputError(f"cannot read structure: {exc}", path) from exc
        table = cls.from_gemmi(structure)
        if len(table) == 0:
            raise InputError("no atoms", path)
        return table

    @classmethod
    def from_any(cls, obj: Any) -> "AtomTable":
        """Accept an AtomTable, a path, a gemmi Structure, or an object exposing the same arrays."""
        if isinstance(obj, AtomTable):
            return obj
        if isinstance(obj, (str, PathLike)):
            return cls.from_file(obj)
        try:
            import gemmi

            if isinstance(obj, gemmi.Structure):
                return cls.from_gemmi(obj)
        except ImportError:  # pragma: no cover - gemmi is a hard dependency
            pass
        if hasattr(obj, "chains") and hasattr(obj, "residues"):
            return cls.from_rna_structure(obj)
        raise TypeError(f"cannot make an AtomTable from {type(obj).__name__}")

    @classmethod
    def from_rna_structure(cls, structure: Any, coords: np.ndarray | None = None) -> "AtomTable":
        """From an `rnadiff.io.RNAStructure` (atoms in its residue order); `coords` [N, 3]
        replaces the structure's own coordinates (e.g. a diffusion sample)."""
        rows, xyz = [], []
        for res in structure.residues:
            for name, element, x in zip(res.atom_names, res.elements, res.coords):
                rows.append((res.chain_id, res.seq_num, res.ins_code, res.name, normalise_atom_name(name),
                             str(element).upper()))
                xyz.append(x)
        table = cls._from_rows(rows, xyz)
        if coords is not None:
            table = table.with_coords(coords)
        return table

    @classmethod
    def _from_rows(cls, rows: list[tuple], xyz: list) -> "AtomTable":
        if not rows:
            empty = np.empty(0, dtype=object)
            return cls(empty, np.empty(0, np.int64), empty, empty, empty, empty, np.empty((0, 3)))
        cols = list(zip(*rows))
        return cls(np.array(cols[0], dtype=object), np.array(cols[1]), np.array(cols[2], dtype=object),
                   np.array(cols[3], dtype=object), np.array(cols[4], dtype=object),
                   np.array(cols[5], dtype=object), np.array(xyz, dtype=np.float64))

    # ---- views --------------------------------------------------------------------------
    def subset(self, mask_or_index: np.ndarray) -> "AtomTable":
        idx = np.asarray(mask_or_index)
        b = None if self.b_factors is None else self.b_factors[idx]
        return AtomTable(self.chain_ids[idx], self.res_seqs[idx], self.icodes[idx], self.res_names[idx],
                         self.atom_names[idx], self.elements[idx], self.coords[idx], b, self.n_water)

    def with_coords(self, coords: np.ndarray) -> "AtomTable":
        """The same atoms at coords [n_atoms, 3] (ValueError for another shape: a transposed or
        flat array is not reshaped into a scrambled structure)."""
        coords = np.asarray(coords, dtype=np.float64)
        if coords.shape != (len(self), 3):
            raise ValueError(f"coordinates must be [{len(self)}, 3] for this structure's atoms, got {list(coords.shape)}")
        return AtomTable(self.chain_ids, self.res_seqs, self.icodes, self.res_names, self.atom_names,
                         self.elements, coords, self.b_factors, self.n_water)

    @property
    def heavy_mask(self) -> np.ndarray:
        return ~np.isin(self.elements.astype(str), ["H", "D"])

    def heavy(self) -> "AtomTable":
        return self.subset(np.nonzero(self.heavy_mask)[0])

    @property
    def residue_index(self) -> np.ndarray:
        """Per-atom index of its residue (0..n_res-1); residues are runs of identical labels."""
        if self._res_index is None:
            n = len(self)
            if n == 0:
                self._res_index = np.empty(0, np.int64)
            else:
                change = np.ones(n, dtype=bool)
                change[1:] = ((self.chain_ids[1:] != self.chain_ids[:-1])
                              | (self.res_seqs[1:] != self.res_seqs[:-1])
                              | (self.icodes[1:] != self.icodes[:-1])
                              | (self.res_names[1:] != self.res_names[:-1]))
                self._res_index = np.cumsum(change) - 1
        return self._res_index

    @property
    def n_residues(self) -> int:
        return int(self.residue_index[-1] + 1) if len(self) else 0

    def residue_starts(self) -> np.ndarray:
        """Index of the first atom of each residue, plus len(self) at the end."""
        ri = self.residue_index
        return np.searchsorted(ri, np.arange(self.n_residues + 1))

    def residue_label(self, res: int) -> str:
        i = int(self.residue_starts()[res])
        return f"{self.chain_ids[i]}:{self.res_names[i]}{self.res_seqs[i]}{self.icodes[i]}"

    def atom_keys(self) -> list[tuple]:
        """Matching keys: (chain, residue number, insertion code, atom name)."""
        return list(zip(self.chain_ids.tolist(), self.res_seqs.tolist(), self.icodes.tolist(),
                        self.atom_names.tolist()))


def match_atoms(model: AtomTable, reference: AtomTable) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i_model, i_ref) of atoms present in both, matched by chain, residue number,
    insertion code and atom name (residue names may differ, e.g. a modified vs parent base)."""
    ref_lookup = {key: i for i, key in enumerate(reference.atom_keys())}
    im, ir = [], []
    for i, key in enumerate(model.atom_keys()):
        j = ref_lookup.get(key)
        if j is not None:
            im.append(i)
            ir.append(j)
    return np.asarray(im, dtype=np.int64), np.asarray(ir, dtype=np.int64)
