"""Structure files: read PDB/mmCIF into `RNAStructure`, write samples as mmCIF/PDB (gemmi);
Stanford submission CSVs in and out; input sanity and mirror-image checks."""
from __future__ import annotations

from rnadiff.io.breaks import mark_chain_breaks
from rnadiff.io.c1csv import c1_rows, write_c1_csv
from rnadiff.io.mirror import reflect_structure, structure_handedness
from rnadiff.io.readers import DEFAULT_MAX_RESIDUES, read_structure
from rnadiff.io.sanity import check_structure
from rnadiff.io.structure import Chain, Residue, RNAStructure
from rnadiff.io.submission import SubmissionTarget, iter_submission, iter_submission_targets, parse_shard
from rnadiff.io.writers import build_gemmi_structure, write_structure

__all__ = [
    "Chain", "Residue", "RNAStructure", "read_structure", "write_structure", "build_gemmi_structure",
    "mark_chain_breaks", "DEFAULT_MAX_RESIDUES", "c1_rows", "write_c1_csv", "check_structure",
    "structure_handedness", "reflect_structure", "SubmissionTarget", "iter_submission",
    "iter_submission_targets", "parse_shard",
]
