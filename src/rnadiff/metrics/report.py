"""One call for every quality measure, returning a plain JSON-able dict.

`structure_quality(x)` gives the model-only measures (clashes, geometry outliers, chirality);
`compare_structures(model, reference)` adds RMSD, lDDT and TM-score against a reference and the
validation report (base pairs, stacking, INF, pucker, backbone; `metrics.validation`). Both score
the RNA only and say what they left out (`left_out`: protein, DNA, ion, ligand and water residues,
`metrics.composition`): the RNA templates cannot describe the rest, whose bonded atoms would
otherwise count as clashes.
"""
from __future__ import annotations

from os import PathLike
from typing import Any

from rnadiff.errors import InputError
from rnadiff.metrics.atoms import AtomTable
from rnadiff.metrics.clashes import find_clashes
from rnadiff.metrics.composition import LeftOut, split_rna
from rnadiff.metrics.geometry import check_geometry
from rnadiff.metrics.lddt import lddt
from rnadiff.metrics.per_residue import per_residue_profile
from rnadiff.metrics.restraints import build_restraints
from rnadiff.metrics.superpose import rmsd
from rnadiff.metrics.tmscore import tm_score
from rnadiff.metrics.validation import validation_report


def _rna(structure: Any) -> tuple[AtomTable, LeftOut]:
    return split_rna(AtomTable.from_any(structure).heavy())


def structure_quality(structure: Any, left_out: LeftOut | None = None) -> dict:
    """Clashes per 1000 atoms, bond/angle outliers, chirality errors of the RNA of one structure.

    `left_out` (when the caller already split the structure) is reported as is."""
    table, left = _rna(structure)
    left = left_out if left_out is not None else left
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
        "left_out": left.as_dict(),
    }


def compare_structures(model: Any, reference: Any, include_per_residue: bool = False,
                       validation: bool = True) -> dict:
    """Model-vs-reference measures plus the model's own quality measures (RNA only)."""
    m, m_left = _rna(model)
    r, r_left = _rna(reference)
    for table, what in ((m, model), (r, reference)):
        if len(table) == 0:
            raise InputError("no RNA residues to score", what if isinstance(what, (str, PathLike)) else None)
    sup = rmsd(m, r, superposition=True)
    fid = rmsd(m, r, superposition=False)
    ld = lddt(m, r)
    tm = tm_score(m, r)
    out = {
        "rmsd": sup["rmsd"],
        "rmsd_no_superposition": fid["rmsd"],
        "n_matched_atoms": sup["n_matched"],
        "n_reference_atoms": len(r),
        "lddt": ld["lddt"],
        "lddt_pairs": ld["n_pairs"],
        "lddt_missing_atoms": ld["n_missing_atoms"],
        "tm_score": tm["tm_score"],
        "tm_d0": tm["d0"],
        "tm_length": tm["length"],
        "model": structure_quality(m, m_left),
        "reference_left_out": r_left.as_dict(),
    }
    if validation:
        out["validation"] = validation_report(m, r)
    if include_per_residue:
        out["lddt_per_residue"] = ld["per_residue"]
        out["per_residue"] = per_residue_profile(m, r, ld["per_residue"])
    return out
