"""Turn an arbitrary RNA atom table into something RNA.OL3 accepts (docs/design.md §8 "what breaks raw OpenMM").

- names: AMBER/alias residue names (RA5, RG3, ADE …) become A/C/G/U; old atom names are already
  mapped by `AtomTable`; input hydrogens are dropped (they are re-placed);
- chains are split into segments at real breaks (O3'–P longer than `LINK_MAX`, or a residue that
  stays out of the force field), never by numbering, because OpenMM bonds consecutive residues of
  a chain whatever their distance;
- the 5' residue of every segment loses P/OP1/OP2/OP3 for the force field (RNA.OL3 has no
  5'-phosphate template); they are put back afterwards moving rigidly with their residue;
- a modified nucleotide enters the force field as its parent (atoms named like the parent's; the
  base too only when its glycosidic atom is where the parent's is, so not for C-glycosides such
  as PSU), is held by stiff restraints, and gets its own atoms back afterwards;
- ions, ligands and anything that is not a ribonucleotide stay out and are written back as they
  were, with a note.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnadiff.chem.vocab import BACKBONE_ATOMS, BASE_ATOMS, GLYCOSIDIC_N, RESIDUE_ALIASES, STANDARD_RESIDUES, parent_of
from rnadiff.metrics.atoms import AtomTable
from rnadiff.metrics.restraints import LINK_MAX

FIVE_PRIME_PHOSPHATE = ("P", "OP1", "OP2", "OP3")
# Atom pairs that tell a chain break, the first pair present decides: (atom of i, atom of i+1,
# max Å). C1'-C1' 12 Å as in rnadiff.io.breaks (linked neighbours reach 10.8 Å in the dev set).
BREAK_CHECKS = (("O3'", "P", LINK_MAX), ("O3'", "O5'", 4.5), ("C3'", "P", 4.5), ("C1'", "C1'", 12.0))


@dataclass
class FFResidue:
    """One residue as the force field sees it."""

    src_res: int                 # residue index in the input table
    name: str                    # force-field name (A/C/G/U)
    out_name: str                # residue name written to the output
    segment: int                 # OpenMM chain index
    kept: dict[str, int]         # atom name -> input atom index, heavy atoms entering the FF
    held: list[int]              # input atoms restored rigidly afterwards (5'-P, modified extras)
    modified: bool = False


@dataclass
class Prepared:
    table: AtomTable             # the input, hydrogens removed
    residues: list[FFResidue]
    passthrough: list[int]       # input atoms written back unchanged (ions, ligands, unknown)
    n_segments: int
    notes: list[str] = field(default_factory=list)


def _atoms_of(table: AtomTable, starts: np.ndarray, r: int) -> dict[str, int]:
    return {str(table.atom_names[i]): i for i in range(starts[r], starts[r + 1])}


def _is_break(table: AtomTable, prev: dict[str, int], cur: dict[str, int]) -> bool:
    for a, b, limit in BREAK_CHECKS:
        if a in prev and b in cur:
            return float(np.linalg.norm(table.coords[prev[a]] - table.coords[cur[b]])) > limit
    return False


def prepare(structure: AtomTable) -> Prepared:
    table = structure.heavy()
    starts = table.residue_starts()
    notes: list[str] = []
    residues: list[FFResidue] = []
    passthrough: list[int] = []
    segment = -1
    prev_atoms: dict[str, int] | None = None
    prev_res = -2
    n_split = 0
    for r in range(table.n_residues):
        atoms = _atoms_of(table, starts, r)
        raw = str(table.res_names[starts[r]]).upper()
        label = table.residue_label(r)
        parent = parent_of(raw)
        if parent not in STANDARD_RESIDUES:
            passthrough.extend(atoms.values())
            notes.append(f"{label}: not a ribonucleotide the force field knows; left out of the "
                         "minimization and written back unchanged")
            continue
        alias = RESIDUE_ALIASES.get(raw)
        modified = raw not in STANDARD_RESIDUES and alias is None
        allowed = set(BACKBONE_ATOMS) | set(BASE_ATOMS[parent]) | {"OP3"}
        if modified:
            gly = GLYCOSIDIC_N[parent]
            base_ok = ("C1'" in atoms and gly in atoms and
                       np.linalg.norm(table.coords[atoms["C1'"]] - table.coords[atoms[gly]]) < 1.8)
            if not base_ok:
                allowed = set(BACKBONE_ATOMS)
            notes.append(f"{label}: modified nucleotide {raw} minimized as {parent} "
                         f"({'with' if base_ok else 'without'} its base), held by stiff restraints; "
                         "its own atoms are restored")
        kept = {n: i for n, i in atoms.items() if n in allowed}
        held = [i for n, i in atoms.items() if n not in allowed]
        same_chain = bool(residues) and table.chain_ids[starts[r]] == table.chain_ids[starts[residues[-1].src_res]]
        new_segment = (not same_chain or prev_res != r - 1 or prev_atoms is None
                       or _is_break(table, prev_atoms, kept))
        if new_segment:
            if same_chain:
                n_split += 1
            segment += 1
            for name in FIVE_PRIME_PHOSPHATE:
                if name in kept:
                    held.append(kept.pop(name))
        elif "OP3" in kept:  # an OP3 inside a chain has no place in a phosphodiester
            held.append(kept.pop("OP3"))
        out_name = alias or raw
        residues.append(FFResidue(r, parent, out_name, segment, kept, sorted(held), modified))
        prev_atoms, prev_res = kept, r
    if n_split:
        notes.append(f"{n_split} chain break(s) (O3'-P > {LINK_MAX} Å): chains split there for the force field")
    n_5p = sum(1 for res in residues if any(str(table.atom_names[i]) == "P" for i in res.held)
               and not res.modified)
    if n_5p:
        notes.append(f"{n_5p} 5'-phosphate(s) taken out for the force field and rebuilt afterwards with library geometry")
    return Prepared(table, residues, sorted(passthrough), segment + 1, notes)
