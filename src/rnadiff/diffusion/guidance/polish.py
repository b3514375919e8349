"""The clean finish of every sample: `rnadiff.chem.regularize.polish_samples` with the
structure's vdW radii, so that bonds, angles, base planes, chirality and steric clashes are
repaired together after sampling (issue 16: default outputs near native cleanliness).

    restraints = polish_restraints(features)                  # once per structure
    coords = polish_samples(coords, restraints, PolishSettings(tether=0.3), fixed=given)

Radii and polar flags come from the features' element one-hots, exactly as the guidance's clash
term and the MolProbity-style metric use them (Bondi radii, H-bond allowance for N/O pairs).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from rnadiff.chem.regularize import PolishRestraints, PolishSettings, polish_samples
from rnadiff.diffusion.guidance.terms import radii_from_elements


def polish_restraints(features: Any, topology: Any = None) -> PolishRestraints:
    """Polish restraints with the clash term on, from `rnadiff.chem.featurize` output (a Features
    with `.topology()`, or a mapping with `ref_element` plus its `topology`)."""
    if topology is None:
        topology = features.topology()
    n = topology.n_atoms
    radius, polar = radii_from_elements(features["ref_element"].reshape(n, -1))
    return PolishRestraints.from_topology(topology, radius.numpy().astype(np.float64), polar.numpy())


def polish_features_samples(coords: np.ndarray, features: Any, settings: PolishSettings = PolishSettings(),
                            fixed: np.ndarray | None = None) -> np.ndarray:
    """coords [S, N, 3] of one structure polished with clashes on (see the module docstring)."""
    return polish_samples(coords, polish_restraints(features), settings, fixed=fixed)


__all__ = ["polish_features_samples", "polish_restraints"]
