"""Find the residues the outer loop must release or repair (AF2 relax, rewritten for RNA).

Uses the quality measures of `rnadiff.metrics` on the force-field model's heavy atoms: clashes,
O3'–P links and other bond/angle outliers, inverted sugar centres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnadiff.chem.library import get_template, signed_volumes
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


def sugar_chirals(prepared: Prepared, heavy: HeavyModel, residues: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """All sugar chiral quadruples (heavy-atom indices) of `residues` and their ideal signed
    volumes (Å³) from the library's ideal coordinates."""
    where = {key: i for i, key in enumerate(heavy.keys)}
    quads, targets = [], []
    for i, k in enumerate(heavy.ff_res):
        if k not in residues or heavy.keys[i][2] != "C1'":
            continue
        seg, pos, _ = heavy.keys[i]
        tmpl = get_template(prepared.residues[k].name)
        ideal = signed_volumes(np.asarray(tmpl.ideal_coords, float), np.asarray(tmpl.chirals))
        for row, v in zip(np.asarray(tmpl.chirals).tolist(), ideal.tolist()):
            idx = [where.get((seg, pos, tmpl.atom_names[a])) for a in row]
            if None not in idx:
                quads.append(idx)
                targets.append(v)
    return np.asarray(quads, np.int64).reshape(-1, 4), np.asarray(targets, float)
