"""Mirror images among inputs: `RNAStructure` in, `geometry.handedness` verdict out.

Methods that build coordinates from predicted distances can return the mirror image of an RNA
(distances do not fix handedness). Refining it gives a left-handed model with broken chemistry,
so the pipeline reports it ("mirror") and may reflect the input first (`reflect_structure`).
"""
from __future__ import annotations

import copy

import numpy as np

from rnadiff.geometry.handedness import Handedness, detect_handedness, reflect
from rnadiff.io.structure import RNAStructure


def structure_handedness(structure: RNAStructure) -> Handedness:
    """Handedness from whatever the structure gives: ribose atoms, else its C1'/C4'/P trace."""
    chains = [[dict(zip(r.atom_names, r.coords)) for r in c.residues] for c in structure.chains]
    breaks = [[i > 0 and r.chain_break_before for i, r in enumerate(c.residues)] for c in structure.chains]
    return detect_handedness(chains, breaks)


def reflect_structure(structure: RNAStructure, axis: int = 0) -> RNAStructure:
    """A copy with every coordinate reflected through the plane normal to `axis` through the
    centroid of all atoms (the copy stays where the input was); a note says so."""
    _, coords = structure.atom_table()
    center = coords.mean(axis=0) if len(coords) else np.zeros(3)
    out = copy.deepcopy(structure)
    for residue in out.residues:
        residue.coords = reflect(residue.coords, axis=axis, center=center)
    out.notes.append(f"input reflected through the plane {'xyz'[axis]} = {center[axis]:.3f} (mirror image)")
    return out


__all__ = ["structure_handedness", "reflect_structure"]
