"""Structure files: read PDB/mmCIF into `RNAStructure`, write samples as mmCIF/PDB (gemmi)."""
from __future__ import annotations

from rnadiff.io.breaks import mark_chain_breaks
from rnadiff.io.readers import DEFAULT_MAX_RESIDUES, read_structure
from rnadiff.io.structure import Chain, Residue, RNAStructure
from rnadiff.io.writers import build_gemmi_structure, write_structure

__all__ = [
    "Chain", "Residue", "RNAStructure", "read_structure", "write_structure", "build_gemmi_structure",
    "mark_chain_breaks", "DEFAULT_MAX_RESIDUES",
]
