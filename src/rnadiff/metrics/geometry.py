"""Covalent-geometry checks against the monomer library (docs/design.md §7).

Bond-length and bond-angle outliers: |value − ideal| > 4 esd. Chirality errors: the signed volume
(a − c)·((b − c) × (d − c)) at C1', C2', C3', C4' with the opposite sign to the library's
(c = centre, a/b/d its three listed neighbours). Each check returns the offending terms, so that
the minimizer can find the residues to release or repair.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnadiff.geometry.volumes import signed_volumes

from rnadiff.metrics.atoms import AtomTable
from rnadiff.metrics.restraints import Restraints

OUTLIER_SIGMA = 4.0


@dataclass
class GeometryIssues:
    bond_outliers: np.ndarray       # [k, 2] atom indices
    bond_z: np.ndarray
    angle_outliers: np.ndarray      # [k, 3]
    angle_z: np.ndarray
    chirality_errors: np.ndarray    # [k, 4]
    link_outliers: np.ndarray       # [k, 2] O3'–P links among the bond outliers
    n_bonds: int
    n_angles: int
    n_chirals: int

    def residues(self, table: AtomTable) -> set[int]:
        """Residue indices touched by any outlier (for the minimizer's violation list)."""
        res = table.residue_index
        parts = [self.bond_outliers.ravel(), self.angle_outliers.ravel(), self.chirality_errors[:, :1].ravel()]
        return set(res[np.concatenate(parts)].tolist()) if any(len(p) for p in parts) else set()


def bond_lengths(coords: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    return np.linalg.norm(coords[bonds[:, 0]] - coords[bonds[:, 1]], axis=1)


def bond_angles(coords: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Angles in degrees at the middle atom."""
    u = coords[angles[:, 0]] - coords[angles[:, 1]]
    v = coords[angles[:, 2]] - coords[angles[:, 1]]
    cos = np.einsum("ij,ij->i", u, v) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1) + 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def check_geometry(table: AtomTable, restraints: Restraints, sigma: float = OUTLIER_SIGMA) -> GeometryIssues:
    x = table.coords
    bz = (bond_lengths(x, restraints.bonds) - restraints.bond_targets) / restraints.bond_esds
    az = (bond_angles(x, restraints.angles) - restraints.angle_targets) / restraints.angle_esds
    bad_b = np.abs(bz) > sigma
    bad_a = np.abs(az) > sigma
    vol = signed_volumes(x, restraints.chirals)
    bad_c = np.sign(vol) != restraints.chiral_signs
    return GeometryIssues(
        bond_outliers=restraints.bonds[bad_b], bond_z=bz[bad_b],
        angle_outliers=restraints.angles[bad_a], angle_z=az[bad_a],
        chirality_errors=restraints.chirals[bad_c],
        link_outliers=restraints.bonds[bad_b & restraints.bond_is_link],
        n_bonds=len(bz), n_angles=len(az), n_chirals=len(vol),
    )
