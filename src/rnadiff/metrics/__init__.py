"""Quality measures of RNA structures (docs/design.md §7): RMSD, lDDT, TM-score, clashes, geometry, and
the validation report (base pairs, stacking, INF, pucker, backbone outliers); RNA only, with what
was left out (protein, ions, ligands, water) counted.

Every function accepts an `AtomTable` (or, through `AtomTable.from_any`, a file path, a gemmi
Structure or an RNAStructure-like object); `compare_structures` / `structure_quality` return plain
JSON-able dicts.
"""
from __future__ import annotations

from rnadiff.metrics.atoms import AtomTable, match_atoms
from rnadiff.metrics.clashes import Clashes, find_clashes
from rnadiff.metrics.composition import LeftOut, split_rna
from rnadiff.metrics.geometry import GeometryIssues, check_geometry, signed_volumes
from rnadiff.metrics.lddt import lddt
from rnadiff.geometry.neighbors import neighbor_pairs
from rnadiff.metrics.report import compare_structures, structure_quality
from rnadiff.metrics.restraints import Restraints, build_restraints
from rnadiff.metrics.superpose import fidelity_rmsd, kabsch, rmsd, rmsd_coords, superpose
from rnadiff.metrics.tmscore import d0_rna, tm_score, tm_score_coords
from rnadiff.metrics.validation import annotate, validation_report

__all__ = [
    "AtomTable", "match_atoms", "Clashes", "find_clashes", "GeometryIssues", "check_geometry",
    "signed_volumes", "lddt", "neighbor_pairs", "compare_structures", "structure_quality",
    "Restraints", "build_restraints", "fidelity_rmsd", "kabsch", "rmsd", "rmsd_coords", "superpose",
    "d0_rna", "tm_score", "tm_score_coords", "LeftOut", "split_rna", "annotate", "validation_report",
]
