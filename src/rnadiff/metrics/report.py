"""One call for every quality measure, returning a plain JSON-able dict.

`structure_quality(x)` gives the model-only measures (clashes, geometry outliers, chirality);
`compare_structures(model, reference)` adds RMSD, lDDT and TM-score against a reference.
"""
from __future__ import annotations

from typing import Any

from rnadiff.metrics.atoms import AtomTable
from rnadiff.metrics.clashes import find_clashes
from rnadiff.metrics.geometry import check_geometry
from rnadiff.metrics.lddt import lddt
from rnadiff.metrics.restraints import build_restraints
from rnadiff.metrics.superpose import rmsd
from rnadiff.metrics.tmscore import tm_score


def structure_quality(structure: Any) -> dict:
    """Clashes per 1000 atoms, bond/angle outliers, chirality errors of one structure."""
    table = AtomTable.from_any(structure).heavy()
    restraints = build_restraints(table)
    clashes = find_clashes(table, restraints)
    geo = check_geometry(table, restraints)
    return {
        "n_atoms": len(table),
        "n_residues": table.n_residues,
        "clashes": clashes.count,
        "clashes_per_1000_atoms": round(clashes.per_1000_atoms, 4),
        "bond_outliers": int(len(geo.bond_outliers)),
        "n_bonds": geo.n_bonds,
        "link_outliers": int(len(geo.link_outliers)),
        "angle_outliers": int(len(geo.angle_outliers)),
        "n_angles": geo.n_angles,
        "chirality_errors": int(len(geo.chirality_errors)),
        "n_chiral_centres": geo.n_chirals,
        "residues_without_template": restraints.residues_without_template,
    }


def compare_structures(model: Any, reference: Any, include_per_residue: bool = False) -> dict:
    """Model-vs-reference measures plus the model's own quality measures."""
    m = AtomTable.from_any(model)
    r = AtomTable.from_any(reference)
    sup = rmsd(m, r, superposition=True)
    fid = rmsd(m, r, superposition=False)
    ld = lddt(m, r)
    tm = tm_score(m, r)
    out = {
        "rmsd": sup["rmsd"],
        "rmsd_no_superposition": fid["rmsd"],
        "n_matched_atoms": sup["n_matched"],
        "n_reference_atoms": len(r.heavy()),
        "lddt": ld["lddt"],
        "lddt_pairs": ld["n_pairs"],
        "lddt_missing_atoms": ld["n_missing_atoms"],
        "tm_score": tm["tm_score"],
        "tm_d0": tm["d0"],
        "tm_length": tm["length"],
        "model": structure_quality(m),
    }
    if include_per_residue:
        out["lddt_per_residue"] = ld["per_residue"]
    return out
