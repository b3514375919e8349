"""Non-bonded contact chemistry: van der Waals radii and how much two atoms may overlap.

One owner for the numbers that the clash metric (`rnadiff.metrics.clashes`, MolProbity's
definition), the sampler's clash guidance and the polish's repulsion all use, so that what the
finish removes is exactly what the metric counts. Without explicit hydrogens a hydrogen bond
between two polar atoms (N/O … N/O) looks like an overlap (O…O at 2.6 Å overlaps Bondi radii by
0.44 Å); probe counts those as H-bonds, so polar pairs get probe's H-bond overlap tolerance.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# Bondi radii (Å); ions and unknown elements get DEFAULT_RADIUS.
VDW_RADII = {"C": 1.70, "N": 1.55, "O": 1.52, "P": 1.80, "S": 1.80, "SE": 1.90, "F": 1.47,
             "CL": 1.75, "BR": 1.85, "I": 1.98, "MG": 1.18, "NA": 1.02, "K": 1.38, "ZN": 0.74,
             "MN": 0.83, "CA": 1.00}
DEFAULT_RADIUS = 1.5
CLASH_OVERLAP = 0.4  # Å: a heavy-atom pair more than 3 bonds apart overlapping this much is a clash
HBOND_ALLOWANCE = 0.4  # Å: extra overlap tolerated between two polar (N/O) atoms
POLAR_ELEMENTS = frozenset({"N", "O"})


def contact_radii(elements: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """vdW radius [n] (Å) and polar flag [n] of element symbols (any case): the one lookup behind
    the clash metric, the guidance's clash term and the polish's repulsion."""
    symbols = [str(e).strip().upper() for e in elements]
    return (np.array([VDW_RADII.get(s, DEFAULT_RADIUS) for s in symbols], np.float64),
            np.array([s in POLAR_ELEMENTS for s in symbols], bool))
