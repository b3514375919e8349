"""What the polish of `rnadiff.chem.regularize` works with: its settings and the restraints of one
structure (bonds, angles, planes, chirality, clash radii, extra distance restraints)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rnadiff.chem.contacts import CLASH_OVERLAP

if TYPE_CHECKING:  # annotation only: pair_geometry imports the library, which imports the polish
    from rnadiff.chem.pair_geometry import PairTemplate


@dataclass(frozen=True)
class PolishSettings:
    """Weights and tolerances of the polish (see the module docstring)."""

    max_iter: int = 200          # L-BFGS-B iterations in all (split over the clash rounds)
    tether: float = 0.6          # Å
    chirality_tolerance: float = 2.0  # Å³: minimum |V| on the right side (crystal C1'/C3'/C4' ~2.5)
    chirality_esd: float = 0.05  # Å³
    clash_tolerance: float = 0.15  # Å of vdW overlap allowed (the metric counts >= 0.4 Å)
    clash_esd: float = 0.05      # Å
    clash_rounds: int = 3        # neighbour lists rebuilt between rounds
    neighbor_skin: float = 0.6   # Å beyond a pair's contact distance kept in a round's list
    # Up to this many more rounds (max_iter / clash_rounds iterations each, the tether re-anchored
    # each time) while a pair still overlaps by >= clash_overlap_counted (what the metric counts):
    # strained long chains need them, clean ones stop after the first rounds at no cost.
    extra_rounds: int = 6
    clash_overlap_counted: float = CLASH_OVERLAP  # Å: what the clash metric counts
    # Each extra round scales by this the weights of the distance-restraint groups (an asserted
    # base pair) with an atom in a residue that still has a counted clash: where a pair and a
    # clash cannot both be met, the clash wins; the other groups keep their full weight.
    distance_decay: float = 0.25

    def __post_init__(self):
        if self.max_iter < 0 or self.tether <= 0 or self.clash_rounds < 1 or self.extra_rounds < 0 \
                or not 0 <= self.distance_decay <= 1:
            raise ValueError(f"polish needs max_iter >= 0, tether > 0, clash_rounds >= 1, extra_rounds >= 0, "
                             f"0 <= distance_decay <= 1: {self}")
        if min(self.chirality_esd, self.clash_esd) <= 0 or min(self.clash_tolerance, self.neighbor_skin) < 0:
            raise ValueError(f"polish needs positive esds and non-negative tolerances: {self}")


@dataclass(frozen=True)
class PolishRestraints:
    """Restraints of one structure of n atoms; angles/esds in degrees as in the monomer library.

    chirals [nc, 4] rows (centre, a, b, c) with chiral_signs [nc] (±1, 0 = unknown);
    radius [n] vdW radii (Å) and polar [n] (N/O) enable the clash term, exclude [m, 2] holds the
    pairs never counted as clashes (at most 3 bonds apart); distances [md, 2] with
    distance_targets/distance_esds [md] (Å) are extra harmonic distance restraints (the canonical
    geometry of asserted base pairs, `rnadiff.chem.pair_geometry`), distance_groups [md] the
    group (pair) of each and atom_residue [n] each atom's residue (which groups yield to a clash
    left in a residue; without them every group does); offsets [mo, 4] with offset_targets /
    offset_esds / offset_groups likewise hold an atom at a signed distance from the plane of
    three others (the stagger of an asserted pair). Empty arrays switch a term off."""

    n_atoms: int
    bonds: np.ndarray
    bond_lengths: np.ndarray
    bond_esds: np.ndarray
    angles: np.ndarray
    angle_values: np.ndarray
    angle_esds: np.ndarray
    planes: tuple[np.ndarray, ...]
    plane_esds: tuple[np.ndarray, ...]
    chirals: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))
    chiral_signs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    radius: np.ndarray | None = None
    polar: np.ndarray | None = None
    exclude: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    distances: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    distance_targets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distance_esds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distance_groups: np.ndarray | None = None
    offsets: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))
    offset_targets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    offset_esds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    offset_groups: np.ndarray | None = None
    atom_residue: np.ndarray | None = None

    @classmethod
    def from_topology(cls, topology, radius: np.ndarray | None = None, polar: np.ndarray | None = None,
                      pairs: PairTemplate | None = None,
                      atom_residue: np.ndarray | None = None) -> "PolishRestraints":
        """From `rnadiff.chem.topology.Topology`; clashes only when radius (and polar) are given;
        `pairs` adds a pair template's distance and offset restraints, grouped by pair, and
        atom_residue [n] lets a group yield to a clash left in its residue."""
        t = topology
        exclude = t.bonded_pairs(3) if radius is not None else np.zeros((0, 2), np.int64)
        extra = {}
        if atom_residue is not None:
            extra["atom_residue"] = np.asarray(atom_residue, np.int64)
        if pairs is not None:
            extra.update(distances=pairs.atoms, distance_targets=pairs.target, distance_esds=pairs.esd,
                         distance_groups=pairs.pair, offsets=pairs.offsets, offset_targets=pairs.offset_target,
                         offset_esds=pairs.offset_esd, offset_groups=pairs.offset_pair)
        return cls(n_atoms=t.n_atoms, bonds=t.bonds, bond_lengths=t.bond_lengths, bond_esds=t.bond_esds,
                   angles=t.angles, angle_values=t.angle_values, angle_esds=t.angle_esds, planes=t.planes,
                   plane_esds=t.plane_esds, chirals=t.chirals, chiral_signs=t.chiral_signs, radius=radius,
                   polar=polar, exclude=exclude, **extra)
