"""`RNAStructure`: chains → residues → the heavy atoms present in an input.

Atom names are canonical (O1P→OP1, `*`→`'`), restricted to the residue's template vocabulary
(`rnadiff.chem.vocab`); elements are the template's. Coordinates are float64 in Å.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class Residue:
    """One ribonucleotide. coords float64 [n_atoms, 3], in the order of atom_names."""

    chain_id: str
    seq_num: int
    ins_code: str  # "" when none
    name: str  # residue name as in the file (e.g. "PSU", "5BU")
    template_name: str  # template it is featurized with ("PSU"; "U" for 5BU, a fallback)
    parent: str  # "A" | "C" | "G" | "U" | "N"
    atom_names: tuple[str, ...]
    coords: np.ndarray
    elements: tuple[str, ...]
    chain_break_before: bool = False  # True: not covalently linked to the previous residue

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.chain_id, self.seq_num, self.ins_code)

    def has(self, atom_name: str) -> bool:
        return atom_name in self.atom_names

    def coord(self, atom_name: str) -> np.ndarray | None:
        try:
            return self.coords[self.atom_names.index(atom_name)]
        except ValueError:
            return None

    def label(self) -> str:
        return f"{self.name} {self.chain_id}{self.seq_num}{self.ins_code}"


@dataclass(eq=False)
class Chain:
    id: str
    residues: list[Residue] = field(default_factory=list)

    @property
    def sequence(self) -> str:
        """One letter per residue: the parent's (A/C/G/U/N)."""
        return "".join(r.parent for r in self.residues)


@dataclass(eq=False)
class RNAStructure:
    """RNA chains of the first model; `notes` says what the reader dropped or changed."""

    chains: list[Chain]
    notes: list[str] = field(default_factory=list)
    source: str | None = None

    @property
    def residues(self) -> list[Residue]:
        return [r for c in self.chains for r in c.residues]

    @property
    def n_residues(self) -> int:
        return sum(len(c.residues) for c in self.chains)

    @property
    def n_atoms(self) -> int:
        return sum(len(r.atom_names) for c in self.chains for r in c.residues)

    def sequences(self) -> dict[str, str]:
        return {c.id: c.sequence for c in self.chains}

    def atom_table(self) -> tuple[list[tuple[str, int, str, str, str]], np.ndarray]:
        """Present atoms in file order: keys (chain, seq_num, ins_code, resname, atom name) and
        coords float64 [n_atoms, 3]."""
        keys = [(r.chain_id, r.seq_num, r.ins_code, r.name, n) for r in self.residues for n in r.atom_names]
        coords = np.concatenate([r.coords for r in self.residues]) if self.n_atoms else np.zeros((0, 3))
        return keys, coords
