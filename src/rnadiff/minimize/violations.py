"""Find the residues the outer loop must release or repair (AF2 relax, rewritten for RNA).

Uses the quality measures of `rnadiff.metrics` on the force-field model's heavy atoms: clashes,
O3'–P links and other bond/angle outliers, inverted sugar centres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnadiff.metrics.atoms import AtomTable
from rnadiff.metrics.clashes import find_clashes
from rnadiff.metrics.geometry import check_geometry
from rnadiff.metrics.restraints import build_restraints
from rnadiff.minimize.model import HeavyModel
from rnadiff.minimize.prepare import Prepared


@dataclass
class Violations:
    residues: set[int]            # indices into Prepared.residues
    chiral_residues: set[int]     # residues with an inverted sugar centre
    chirals: np.ndarray           # [k, 4] heavy-atom indices of the inverted centres' quadruples
    clashes: int
    link_outliers: int
    bond_outliers: int
    angle_outliers: int
    chirality_errors: int

    @property
    def any(self) -> bool:
        return bool(self.residues)


def heavy_table(prepared: Prepared, heavy: HeavyModel, xyz: np.ndarray) -> AtomTable:
    """The force-field model's heavy atoms labelled like the input (force-field residue names)."""
    t = prepared.table
    first = np.asarray([prepared.table.residue_starts()[prepared.residues[k].src_res] for k in heavy.ff_res])
    names = [key[2] for key in heavy.keys]
    elements = [_element(n) for n in names]
    return AtomTable(t.chain_ids[first], t.res_seqs[first], t.icodes[first],
                     np.asarray([prepared.residues[k].name for k in heavy.ff_res], dtype=object),
                     names, elements, xyz)


def _element(name: str) -> str:
    return "P" if name == "P" else name[0]


def find_violations(prepared: Prepared, heavy: HeavyModel, xyz: np.ndarray) -> Violations:
    table = heavy_table(prepared, heavy, xyz)
    restraints = build_restraints(table)
    clashes = find_clashes(table, restraints)
    geo = check_geometry(table, restraints)
    res = heavy.ff_res
    bad: set[int] = set()
    for rows in (clashes.pairs, geo.bond_outliers, geo.angle_outliers):
        if len(rows):
            bad.update(res[np.asarray(rows).ravel()].tolist())
    chiral_res = set(res[geo.chirality_errors[:, 0]].tolist()) if len(geo.chirality_errors) else set()
    bad |= chiral_res
    return Violations(bad, chiral_res, geo.chirality_errors, clashes.count, len(geo.link_outliers),
                      len(geo.bond_outliers), len(geo.angle_outliers), len(geo.chirality_errors))
