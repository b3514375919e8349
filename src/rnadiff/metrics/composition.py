"""Which part of a structure the metrics score: the RNA, and a count of what was left out.

Deposited structures carry proteins, DNA, ions, ligands and water next to the RNA. The metrics
know RNA chemistry only (monomer-library templates): a protein residue has no template, so its
peptide bonds to the neighbouring residues are unknown and every bonded C…N pair would count as a
clash. Rather than guess a topology, the metrics score the RNA and report what they left out, by
kind, so a user sees at once that the complex was not scored as a whole.

A residue is RNA when the monomer library knows it (standard or modified nucleotide, via its
parent) or, for a name the library does not know, when it carries a ribose with a 2′-OH (C1′,
C4′, O2′): a modified nucleotide without a template is still scored, with bonds inferred from
covalent radii, as before.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnadiff.metrics.atoms import AtomTable
from rnadiff.metrics.restraints import residue_template

# Kinds of what is left out, in the order they are reported.
LEFT_OUT_KINDS = ("protein", "dna", "ions", "ligands", "water")
_RIBOSE_MARKERS = {"C1'", "C4'", "O2'"}


@dataclass
class LeftOut:
    """Residues (and heavy atoms) not scored, by kind; `labels` lists the non-water residues."""

    residues: dict[str, int] = field(default_factory=lambda: {k: 0 for k in LEFT_OUT_KINDS})
    atoms: int = 0
    labels: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"residues": dict(self.residues), "atoms": self.atoms,
                "total_residues": int(sum(self.residues.values()))}


def residue_kind(resname: str, atom_names: set[str], elements: list[str]) -> str:
    """'rna' or one of LEFT_OUT_KINDS for one residue (water never reaches here: the reader
    counts it)."""
    import gemmi

    if residue_template(resname) is not None:
        return "rna"
    info = gemmi.find_tabulated_residue(resname)
    if info is not None and info.is_amino_acid():
        return "protein"
    if info is not None and info.kind == gemmi.ResidueKind.DNA:
        return "dna"
    if info is not None and info.is_water():
        return "water"
    if _RIBOSE_MARKERS <= atom_names:
        return "rna"
    if _RIBOSE_MARKERS - {"O2'"} <= atom_names and "P" in atom_names:
        return "dna"  # a deoxynucleotide the tables do not know
    heavy = [e for e in elements if e not in ("H", "D")]
    if len(heavy) == 1 and heavy[0] not in ("C", "N", "O", "S", "P"):
        return "ions"
    return "ligands"


def split_rna(table: AtomTable) -> tuple[AtomTable, LeftOut]:
    """(the RNA residues of `table`, what was left out). Water skipped by the reader is counted."""
    starts = table.residue_starts()
    keep = np.zeros(len(table), dtype=bool)
    left = LeftOut()
    left.residues["water"] = int(table.n_water)
    for r in range(table.n_residues):
        lo, hi = int(starts[r]), int(starts[r + 1])
        names = {str(n) for n in table.atom_names[lo:hi]}
        elements = [str(e).upper() for e in table.elements[lo:hi]]
        kind = residue_kind(str(table.res_names[lo]), names, elements)
        if kind == "rna":
            keep[lo:hi] = True
            continue
        left.residues[kind] += 1
        left.atoms += sum(e not in ("H", "D") for e in elements)
        if kind != "water":
            left.labels.append(table.residue_label(r))
    return table.subset(np.nonzero(keep)[0]), left
