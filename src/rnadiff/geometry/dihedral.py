"""Dihedral (torsion) angles, the one implementation in rnadiff: backbone torsions in the
metrics, the glycosidic cis/trans test of the pair annotation, the NeRF placement check of the
minimizer and the pseudo-dihedrals of the handedness test all read it."""
from __future__ import annotations

import numpy as np


def dihedral4(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> np.ndarray:
    """IUPAC dihedrals (degrees, right-handed helix > 0) of point quadruples, each [k, 3] -> [k]."""
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1 = b1 / np.maximum(np.linalg.norm(b1, axis=-1, keepdims=True), 1e-12)
    v = b0 - np.einsum("ij,ij->i", b0, b1)[:, None] * b1
    w = b2 - np.einsum("ij,ij->i", b2, b1)[:, None] * b1
    x = np.einsum("ij,ij->i", v, w)
    y = np.einsum("ij,ij->i", np.cross(b1, v), w)
    return np.degrees(np.arctan2(y, x))


def dihedral(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> float:
    """The dihedral (degrees, IUPAC sign) of one quadruple of points [3]."""
    quad = (np.asarray(p, dtype=np.float64).reshape(1, 3) for p in (p0, p1, p2, p3))
    return float(dihedral4(*quad)[0])
