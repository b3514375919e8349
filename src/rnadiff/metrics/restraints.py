"""Global geometry restraints of an AtomTable: bonds, angles, chiral centres with library targets.

Built per residue from the monomer-library templates (matched by atom name, so residues with
missing atoms keep the terms whose atoms are present) plus the O3'(i)–P(i+1) link between
consecutive residues of a chain. A link is a chain break, not a bond, when O3'–P is longer than
`LINK_MAX` (real breaks in the dev set are all > 5 Å; stretched but bonded links of a model must
still be scored — and repaired — as bonds). Residues with no template get covalent-radius bonds so
the clash check still knows their connectivity.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rnadiff.chem.library import LINK_ANGLES, LINK_BOND_ESD, LINK_BOND_LENGTH, POLYMER_ANGLE_OVERRIDES, get_template
from rnadiff.chem.vocab import template_name_for
from rnadiff.errors import UnknownResidueError
from rnadiff.io.breaks import MAX_LINK_DISTANCE
from rnadiff.metrics.atoms import AtomTable

# The monomer files describe a free 5'-phosphate (PO3 with OP3), whose OP1-P-OP2 angle (112.9°)
# is wrong inside a chain, where the two non-bridging oxygens open to ~119.6° (Parkinson et al.
# 1996, Acta Cryst D52:57): every crystal phosphodiester would be an outlier. Applied to residues
# linked to their predecessor.
LINK_MAX = MAX_LINK_DISTANCE  # Å; longer O3'–P is a chain break (rnadiff.io.breaks owns the rule)
SUGAR_CENTRES = ("C1'", "C2'", "C3'", "C4'")
COVALENT_RADII = {"H": 0.31, "C": 0.76, "N": 0.71, "O": 0.66, "P": 1.07, "S": 1.05, "SE": 1.20,
                  "F": 0.57, "CL": 1.02, "BR": 1.20, "I": 1.39}


@dataclass
class Restraints:
    """Index arrays into the AtomTable with targets; `link_mask` flags inter-residue terms."""

    bonds: np.ndarray          # [nb, 2]
    bond_targets: np.ndarray   # Å
    bond_esds: np.ndarray
    bond_is_link: np.ndarray   # bool
    angles: np.ndarray         # [na, 3]
    angle_targets: np.ndarray  # degrees
    angle_esds: np.ndarray
    chirals: np.ndarray        # [nc, 4] centre, a, b, c
    chiral_signs: np.ndarray   # +1 / -1
    graph_bonds: np.ndarray    # [ng, 2] every covalent bond (templates, links, inferred)
    residues_without_template: list[str]


@lru_cache(maxsize=None)
def residue_template(resname: str):
    """The library template for a residue name (a modification without one uses its parent's,
    matched by atom name), or None when the name is not a known ribonucleotide."""
    name = template_name_for(resname)
    if name is None or name == "N":
        return None
    try:
        return get_template(name)
    except UnknownResidueError:
        return None


def _residue_atoms(table: AtomTable, starts: np.ndarray, r: int) -> dict[str, int]:
    lo, hi = starts[r], starts[r + 1]
    return {str(n): i for n, i in zip(table.atom_names[lo:hi], range(lo, hi))}


def _is_linked(table: AtomTable, prev: dict[str, int], cur: dict[str, int]) -> bool:
    o3, p = prev.get("O3'"), cur.get("P")
    if o3 is None or p is None:
        return False
    return float(np.linalg.norm(table.coords[o3] - table.coords[p])) <= LINK_MAX


def build_restraints(table: AtomTable) -> Restraints:
    """Restraints for the heavy atoms of `table` (hydrogens are ignored)."""
    starts = table.residue_starts()
    heavy = table.heavy_mask
    bonds, bt, be, bl = [], [], [], []
    angles, at, ae = [], [], []
    chirals, cs = [], []
    graph = []
    no_template: list[str] = []
    prev_atoms: dict[str, int] | None = None
    for r in range(table.n_residues):
        atoms = {n: i for n, i in _residue_atoms(table, starts, r).items() if heavy[i]}
        resname = str(table.res_names[starts[r]])
        tmpl = residue_template(resname)
        if tmpl is None:
            no_template.append(table.residue_label(r))
            graph.extend(_inferred_bonds(table, list(atoms.values())))
        else:
            names = list(tmpl.atom_names)
            for (a, b), v, s in zip(np.asarray(tmpl.bonds).tolist(), tmpl.bond_lengths, tmpl.bond_esds):
                ia, ib = atoms.get(names[a]), atoms.get(names[b])
                if ia is not None and ib is not None:
                    bonds.append((ia, ib)), bt.append(v), be.append(s), bl.append(False)
                    graph.append((ia, ib))
            # Atoms the template does not know (a fallback modification's extra groups, e.g.
            # the Br of 5BU on U's template) still need their bonds for the clash exclusions.
            known = {names[k] for k in range(len(names))}
            extra = [i for n, i in atoms.items() if n not in known]
            if extra:
                graph.extend(b for b in _inferred_bonds(table, list(atoms.values())) if set(b) & set(extra))
            for (a, b, c), v, s in zip(np.asarray(tmpl.angles).tolist(), tmpl.angle_values, tmpl.angle_esds):
                idx = (atoms.get(names[a]), atoms.get(names[b]), atoms.get(names[c]))
                if None not in idx:
                    angles.append(idx), at.append(v), ae.append(s)
            for row, sign in zip(np.asarray(tmpl.chirals).tolist(), np.asarray(tmpl.chiral_signs).tolist()):
                if names[row[0]] not in SUGAR_CENTRES or sign == 0:
                    continue
                idx = tuple(atoms.get(names[k]) for k in row)
                if None not in idx:
                    chirals.append(idx), cs.append(1 if sign > 0 else -1)
        same_chain = r > 0 and table.chain_ids[starts[r]] == table.chain_ids[starts[r - 1]]
        if prev_atoms is not None and same_chain and _is_linked(table, prev_atoms, atoms):
            o3, p = prev_atoms["O3'"], atoms["P"]
            bonds.append((o3, p)), bt.append(LINK_BOND_LENGTH), be.append(LINK_BOND_ESD), bl.append(True)
            graph.append((o3, p))
            _apply_polymer_overrides(table, atoms, angles, at, ae)
            pair = (prev_atoms, atoms)
            for *spec, v, s in LINK_ANGLES:
                idx = tuple(pair[off].get(name) for name, off in spec)
                if None not in idx:
                    angles.append(idx), at.append(v), ae.append(s)
        prev_atoms = atoms
    return Restraints(
        bonds=np.asarray(bonds, np.int64).reshape(-1, 2), bond_targets=np.asarray(bt, float),
        bond_esds=np.asarray(be, float), bond_is_link=np.asarray(bl, bool),
        angles=np.asarray(angles, np.int64).reshape(-1, 3), angle_targets=np.asarray(at, float),
        angle_esds=np.asarray(ae, float), chirals=np.asarray(chirals, np.int64).reshape(-1, 4),
        chiral_signs=np.asarray(cs, np.int64), graph_bonds=np.asarray(graph, np.int64).reshape(-1, 2),
        residues_without_template=no_template,
    )


def _apply_polymer_overrides(table: AtomTable, atoms: dict[str, int], angles: list, at: list,
                             ae: list) -> None:
    """Replace the free-phosphate angle targets of a linked residue (see POLYMER_ANGLE_OVERRIDES)."""
    own = set(atoms.values())
    for k in range(len(angles) - 1, -1, -1):
        idx = angles[k]
        if idx[1] not in own:
            break  # angles of earlier residues
        key = tuple(str(table.atom_names[i]) for i in idx)
        if key in POLYMER_ANGLE_OVERRIDES:
            at[k], ae[k] = POLYMER_ANGLE_OVERRIDES[key]


def _inferred_bonds(table: AtomTable, idx: list[int]) -> list[tuple[int, int]]:
    """Bonds inside one residue from covalent radii (+0.45 Å), for residues with no template."""
    out = []
    for k, i in enumerate(idx):
        ri = COVALENT_RADII.get(str(table.elements[i]).upper(), 0.8)
        for j in idx[k + 1:]:
            rj = COVALENT_RADII.get(str(table.elements[j]).upper(), 0.8)
            if np.linalg.norm(table.coords[i] - table.coords[j]) < ri + rj + 0.45:
                out.append((i, j))
    return out
