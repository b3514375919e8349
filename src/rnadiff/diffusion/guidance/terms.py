"""The restraint data of one structure as torch tensors (what the potentials index).

Built once per structure from the monomer-library topology (`rnadiff.chem.topology`) and the
input features; every array indexes the full atom layout [N_atom].
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
import torch

from rnadiff.chem.contacts import DEFAULT_RADIUS, HBOND_ALLOWANCE, VDW_RADII
from rnadiff.chem.pair_geometry import pair_template_restraints
from rnadiff.chem.pairing import hbond_atom_pairs, pair_prior, prior_pairs
from rnadiff.chem.topology import Topology
from rnadiff.metrics.restraints import POLYMER_ANGLE_OVERRIDES

_SYMBOL = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F", 15: "P", 16: "S", 17: "CL", 34: "SE", 35: "BR", 53: "I"}


@dataclass
class GuidanceTerms:
    """Restraints over N atoms. Index tensors are int64, values float32.

    bonds [nb, 2], bond_length/bond_esd [nb] (Å) — intra-residue bonds;
    links [nl, 2], link_length/link_esd [nl] — O3'(i)-P(i+1) (none across chain breaks);
    angles [na, 3] (vertex in the middle), angle_value/angle_esd [na] (radians);
    chirals [nc, 4] (centre, a, b, c), chiral_sign [nc] (±1);
    planes [np, k] with plane_mask bool [np, k] and plane_esd [np, k] (Å), padding index 0;
    radius [N] vdW radius (Å), polar [N] bool (N/O: hydrogen-bond allowance), atom_mask [N] bool;
    exclude [m, 2] pairs at most 3 bonds apart (never a clash);
    given [G] atom indices with given_coords [G, 3] (input frame);
    pair_hbonds [nh, 2] donor–acceptor atoms of the pairs the base-pair prior asserts, with
    pair_hbond_esd [nh] (Å, wider for less confident pairs);
    pair_template [nt, 2] cross-distance atom pairs of the same pairs' canonical geometry
    (`rnadiff.chem.pair_geometry`), with pair_template_length / pair_template_esd [nt] (Å).
    """

    n_atoms: int
    bonds: torch.Tensor
    bond_length: torch.Tensor
    bond_esd: torch.Tensor
    links: torch.Tensor
    link_length: torch.Tensor
    link_esd: torch.Tensor
    angles: torch.Tensor
    angle_value: torch.Tensor
    angle_esd: torch.Tensor
    chirals: torch.Tensor
    chiral_sign: torch.Tensor
    planes: torch.Tensor
    plane_mask: torch.Tensor
    plane_esd: torch.Tensor
    radius: torch.Tensor
    polar: torch.Tensor
    atom_mask: torch.Tensor
    exclude: torch.Tensor
    given: torch.Tensor
    given_coords: torch.Tensor
    pair_hbonds: torch.Tensor
    pair_hbond_esd: torch.Tensor
    pair_template: torch.Tensor
    pair_template_length: torch.Tensor
    pair_template_esd: torch.Tensor

    def to(self, device: torch.device | str) -> "GuidanceTerms":
        return GuidanceTerms(**{f.name: (v.to(device) if torch.is_tensor(v) else v)
                                for f in fields(self) for v in [getattr(self, f.name)]})

    @property
    def max_contact(self) -> float:
        """Largest distance at which two atoms can still clash (2 · max radius)."""
        r = self.radius[self.atom_mask]
        return 2.0 * float(r.max()) if r.numel() else 2.0 * DEFAULT_RADIUS


def radii_from_elements(ref_element: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """vdW radius [N] and polar flag [N] from the one-hot `ref_element` [N, 128] (atomic number - 1)."""
    z = (ref_element.argmax(-1) + 1).tolist()
    sym = [_SYMBOL.get(int(k), "?") for k in z]
    radius = torch.tensor([VDW_RADII.get(s, DEFAULT_RADIUS) for s in sym], dtype=torch.float32)
    polar = torch.tensor([s in ("N", "O") for s in sym], dtype=torch.bool)
    return radius, polar


def _t(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a)).to(dtype)


def _polymer_phosphate_angles(topology: Topology) -> np.ndarray:
    """bool [na]: OP1-P-OP2 angles of a linked phosphate (vertex = a link's P, both ends terminal
    oxygens). The monomer files give the free-phosphate value; the metric (and crystals) use the
    polymer one, so guidance must too, or it would push every phosphate towards an outlier."""
    if not len(topology.angles):
        return np.zeros(0, bool)
    degree = np.bincount(topology.bonds.ravel(), minlength=topology.n_atoms)
    link_p = np.zeros(topology.n_atoms, bool)
    link_p[topology.bonds[topology.bond_is_link.astype(bool), 1]] = True
    a = topology.angles
    return link_p[a[:, 1]] & (degree[a[:, 0]] == 1) & (degree[a[:, 2]] == 1)


def build_terms(topology: Topology, features: Mapping[str, torch.Tensor]) -> GuidanceTerms:
    """Restraints of a structure: `topology` from `build_topology(features.layout)`, `features`
    from `rnadiff.chem.featurize` (unbatched: ref_element, atom_present_mask, coords; ref_mask
    optional). Given atoms are those with atom_present_mask > 0."""
    n = topology.n_atoms
    link = topology.bond_is_link.astype(bool)
    pidx, pmask, pesd = topology.padded_planes()
    radius, polar = radii_from_elements(features["ref_element"].reshape(n, -1))
    mask = features.get("ref_mask")
    atom_mask = torch.ones(n, dtype=torch.bool) if mask is None else mask.reshape(n) > 0
    present = features["atom_present_mask"].reshape(n) > 0
    given = torch.nonzero(present).squeeze(-1)
    angle_value = topology.angle_values.astype(np.float32).copy()
    angle_esd = topology.angle_esds.astype(np.float32).copy()
    value, esd = POLYMER_ANGLE_OVERRIDES[("OP1", "P", "OP2")]
    poly = _polymer_phosphate_angles(topology)
    angle_value[poly], angle_esd[poly] = value, esd
    return GuidanceTerms(
        n_atoms=n,
        bonds=_t(topology.bonds[~link], torch.long).reshape(-1, 2),
        bond_length=_t(topology.bond_lengths[~link], torch.float32),
        bond_esd=_t(topology.bond_esds[~link], torch.float32),
        links=_t(topology.bonds[link], torch.long).reshape(-1, 2),
        link_length=_t(topology.bond_lengths[link], torch.float32),
        link_esd=_t(topology.bond_esds[link], torch.float32),
        angles=_t(topology.angles, torch.long).reshape(-1, 3),
        angle_value=_t(angle_value, torch.float32) * (math.pi / 180),
        angle_esd=_t(angle_esd, torch.float32) * (math.pi / 180),
        chirals=_t(topology.chirals, torch.long).reshape(-1, 4),
        chiral_sign=_t(topology.chiral_signs, torch.float32),
        planes=_t(pidx, torch.long), plane_mask=_t(pmask, torch.bool), plane_esd=_t(pesd, torch.float32),
        radius=radius, polar=polar, atom_mask=atom_mask,
        exclude=_t(topology.bonded_pairs(3), torch.long).reshape(-1, 2),
        given=given,
        given_coords=features["coords"].reshape(n, 3)[given].to(torch.float32),
        **_pair_hbonds(features),
    )


HBOND_LENGTH = 2.95  # Å, donor–acceptor of a canonical pair's H-bond (crystal pairs: 2.6-3.4)
HBOND_ESD = 0.2  # Å, at full confidence


def _pair_hbonds(features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """H-bond restraints of the pairs the features' base-pair prior asserts (computed from the
    input geometry when the features carry none)."""
    prior = features.get("pair_prior")
    if prior is None:
        prior = pair_prior(features)
    pairs, confidence = prior_pairs(prior)
    atoms, owner = hbond_atom_pairs(features, pairs)
    esd = HBOND_ESD / np.sqrt(np.maximum(confidence[owner], 1e-3)) if len(owner) else np.zeros(0)
    t_atoms, t_length, t_esd = pair_template_restraints(features, pairs, confidence)
    return {"pair_hbonds": _t(atoms, torch.long).reshape(-1, 2), "pair_hbond_esd": _t(esd, torch.float32),
            "pair_template": _t(t_atoms, torch.long).reshape(-1, 2),
            "pair_template_length": _t(t_length, torch.float32), "pair_template_esd": _t(t_esd, torch.float32)}


__all__ = ["GuidanceTerms", "HBOND_ALLOWANCE", "build_terms", "radii_from_elements"]
