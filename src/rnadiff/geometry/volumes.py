"""Signed volumes of chiral centres: V = (a − c)·((b − c) × (d − c)) for rows (c, a, b, d).

The sign says the hand of the centre (a mirror image flips it); the monomer library, the
chirality metric, the polish, the minimizer's guard and the sampler's guidance all use this one
definition, any leading batch dimensions.
"""
from __future__ import annotations

import numpy as np


def signed_volumes(coords: np.ndarray, chirals: np.ndarray) -> np.ndarray:
    """coords [..., n, 3], chirals [m, 4] int rows (c, a, b, d) -> [..., m] (Å³)."""
    coords = np.asarray(coords)
    c = coords[..., chirals[:, 0], :]
    a = coords[..., chirals[:, 1], :] - c
    b = coords[..., chirals[:, 2], :] - c
    d = coords[..., chirals[:, 3], :] - c
    return np.einsum("...i,...i->...", a, np.cross(b, d))
