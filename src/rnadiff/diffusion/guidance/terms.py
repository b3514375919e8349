"""The restraint data of one structure as numpy arrays (what the guidance's energy indexes).

Built once per structure from the monomer-library topology (`rnadiff.chem.topology`, whose angle
targets already carry the in-chain phosphate values) and the input features; every array indexes
the full atom layout [N_atom].
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import gemmi
import numpy as np

from rnadiff.chem.contacts import contact_radii
from rnadiff.chem.pair_geometry import PairTemplate, pair_template_restraints
from rnadiff.chem.pairing import hbond_atom_pairs, pair_prior, prior_pairs
from rnadiff.chem.topology import Topology



@dataclass
class GuidanceTerms:
    """Restraints over N atoms. Index arrays are int64, values float64.

    bonds [nb, 2], bond_length/bond_esd [nb] (Å) — intra-residue bonds;
    links [nl, 2], link_length/link_esd [nl] — O3'(i)-P(i+1) (none across chain breaks);
    angles [na, 3] (vertex in the middle), angle_value/angle_esd [na] (radians);
    chirals [nc, 4] (centre, a, b, c), chiral_sign [nc] (±1, 0 unknown);
    planes [np, k] with plane_mask bool [np, k] and plane_esd [np, k] (Å), padding index 0;
    radius [N] vdW radius (Å), polar [N] bool (N/O: hydrogen-bond allowance), atom_mask [N] bool;
    exclude [m, 2] pairs at most 3 bonds apart (never a clash);
    given [G] atom indices with given_coords [G, 3] (input frame);
    pair_hbonds [nh, 2] donor–acceptor atoms of the pairs the base-pair prior asserts, with
    pair_hbond_esd [nh] (Å, wider for less confident pairs);
    pair_template: the same pairs' canonical geometry (`rnadiff.chem.pair_geometry.PairTemplate`:
    cross distances, and plane offsets holding each central H-bond atom on its partner's plane).
    """

    n_atoms: int
    bonds: np.ndarray
    bond_length: np.ndarray
    bond_esd: np.ndarray
    links: np.ndarray
    link_length: np.ndarray
    link_esd: np.ndarray
    angles: np.ndarray
    angle_value: np.ndarray
    angle_esd: np.ndarray
    chirals: np.ndarray
    chiral_sign: np.ndarray
    planes: np.ndarray
    plane_mask: np.ndarray
    plane_esd: np.ndarray
    radius: np.ndarray
    polar: np.ndarray
    atom_mask: np.ndarray
    exclude: np.ndarray
    given: np.ndarray
    given_coords: np.ndarray
    pair_hbonds: np.ndarray
    pair_hbond_esd: np.ndarray
    pair_template: PairTemplate


def _numpy(v) -> np.ndarray:
    return v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)


def radii_from_elements(ref_element) -> tuple[np.ndarray, np.ndarray]:
    """vdW radius [N] (Å) and polar flag [N] from the one-hot `ref_element` [N, 128] (atomic number - 1)."""
    z = _numpy(ref_element).argmax(-1) + 1
    return contact_radii(gemmi.Element(int(k)).name for k in z)


def _i(a, width: int) -> np.ndarray:
    return np.asarray(a, np.int64).reshape(-1, width)


def _f(a) -> np.ndarray:
    return np.asarray(a, np.float64).reshape(-1)


def build_terms(topology: Topology, features: Mapping, base_pairs: bool = True) -> GuidanceTerms:
    """Restraints of a structure: `topology` from `build_topology(features.layout)`, `features`
    from `rnadiff.chem.featurize` (unbatched: ref_element, atom_present_mask, coords; ref_mask
    optional). Given atoms are those with atom_present_mask > 0. `base_pairs` False leaves the
    pair restraints empty (a guidance whose pair terms have weight 0 never reads them)."""
    n = topology.n_atoms
    link = topology.bond_is_link.astype(bool)
    pidx, pmask, pesd = topology.padded_planes()
    radius, polar = radii_from_elements(_numpy(features["ref_element"]).reshape(n, -1))
    mask = features.get("ref_mask")
    atom_mask = np.ones(n, bool) if mask is None else _numpy(mask).reshape(n) > 0
    given = np.flatnonzero(_numpy(features["atom_present_mask"]).reshape(n) > 0)
    return GuidanceTerms(
        n_atoms=n,
        bonds=_i(topology.bonds[~link], 2), bond_length=_f(topology.bond_lengths[~link]),
        bond_esd=_f(topology.bond_esds[~link]),
        links=_i(topology.bonds[link], 2), link_length=_f(topology.bond_lengths[link]),
        link_esd=_f(topology.bond_esds[link]),
        angles=_i(topology.angles, 3), angle_value=_f(topology.angle_values) * (math.pi / 180),
        angle_esd=_f(topology.angle_esds) * (math.pi / 180),
        chirals=_i(topology.chirals, 4), chiral_sign=_f(topology.chiral_signs),
        planes=np.asarray(pidx, np.int64), plane_mask=np.asarray(pmask, bool), plane_esd=np.asarray(pesd, np.float64),
        radius=radius, polar=polar, atom_mask=atom_mask,
        exclude=_i(topology.bonded_pairs(3), 2),
        given=given,
        given_coords=_numpy(features["coords"]).reshape(n, 3)[given].astype(np.float64),
        **_pair_restraints(features if base_pairs else None),
    )


HBOND_LENGTH = 2.95  # Å, donor–acceptor of a canonical pair's H-bond (crystal pairs: 2.6-3.4)
HBOND_ESD = 0.2  # Å, at full confidence


def _pair_restraints(features: Mapping | None) -> dict:
    """H-bond and template restraints of the pairs the features' base-pair prior asserts
    (computed from the input geometry when the features carry none); none without features."""
    if features is None:
        return {"pair_hbonds": np.zeros((0, 2), np.int64), "pair_hbond_esd": np.zeros(0),
                "pair_template": PairTemplate.empty()}
    prior = features.get("pair_prior")
    pairs, confidence = prior_pairs(pair_prior(features) if prior is None else prior)
    atoms, owner = hbond_atom_pairs(features, pairs)
    esd = HBOND_ESD / np.sqrt(np.maximum(confidence[owner], 1e-3)) if len(owner) else np.zeros(0)
    return {"pair_hbonds": _i(atoms, 2), "pair_hbond_esd": _f(esd),
            "pair_template": pair_template_restraints(features, pairs, confidence)}


__all__ = ["GuidanceTerms", "build_terms", "radii_from_elements"]
