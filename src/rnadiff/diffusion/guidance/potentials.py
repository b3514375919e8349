"""Flat-bottom potentials from the monomer-library geometry, vectorised over samples.

Every function takes coordinates x [S, N, 3] and returns the energy per sample [S] (float32), in
Å² so that one step size suits all of them:
- bond / link:  Σ relu(|d - d0| - tol·esd)²
- angle:        Σ (L·relu(|θ - θ0| - tol·esd))² with L = 1.5 Å (a bond's lever arm: radians -> Å)
- chirality:    Σ relu(tol - sign·V)², V = (a-c)·((b-c)×(d-c)) the signed volume (Å³)
- planarity:    Σ relu(|(x - centroid)·n| - tol·esd)² over plane atoms; the normal n (smallest
                principal axis) is detached: the gradient moves atoms onto the current plane
- clash:        Σ relu(r_i + r_j - tol - allowance_ij - d)² over neighbour-list pairs (> 3 bonds
                apart), allowance = 0.4 Å between two N/O atoms (a hydrogen bond, as the metric)
- given:        Σ relu(|x_i - y_i| - tol)², y the input's given atoms Kabsch-aligned onto x
                (no gradient through the alignment): a harmonic tether in the sample's frame.
`tol` is each term's `TermSchedule.tolerance`.
"""
from __future__ import annotations

import torch

from rnadiff.diffusion.alignment import weighted_rigid_align
from rnadiff.diffusion.guidance.terms import HBOND_ALLOWANCE, GuidanceTerms
from rnadiff.geometry import signed_volumes_torch

ANGLE_LEVER = 1.5  # Å


def _distances(x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    # x [S, N, 3], pairs [m, 2] -> [S, m]; the epsilon keeps the gradient finite at d = 0
    diff = x[:, pairs[:, 0]] - x[:, pairs[:, 1]]
    return torch.sqrt(diff.pow(2).sum(-1) + 1e-8)


def bond_energy(x: torch.Tensor, pairs: torch.Tensor, length: torch.Tensor, esd: torch.Tensor,
                tol: float) -> torch.Tensor:
    """Flat-bottom bond-length energy [S]; pairs [m, 2], length/esd [m] (Å)."""
    if pairs.numel() == 0:
        return x.new_zeros(x.shape[0])
    dev = (_distances(x, pairs) - length).abs() - tol * esd
    return torch.relu(dev).pow(2).sum(-1)


def bond_angles(x: torch.Tensor, triples: torch.Tensor) -> torch.Tensor:
    """Angles (radians) at the middle atom [S, m]; atan2 keeps the gradient finite near 0 and π."""
    u = x[:, triples[:, 0]] - x[:, triples[:, 1]]
    v = x[:, triples[:, 2]] - x[:, triples[:, 1]]
    cross = torch.linalg.cross(u, v, dim=-1)
    return torch.atan2(torch.sqrt(cross.pow(2).sum(-1) + 1e-10), (u * v).sum(-1))


def angle_energy(x: torch.Tensor, terms: GuidanceTerms, tol: float) -> torch.Tensor:
    if terms.angles.numel() == 0:
        return x.new_zeros(x.shape[0])
    dev = (bond_angles(x, terms.angles) - terms.angle_value).abs() - tol * terms.angle_esd
    return (ANGLE_LEVER * torch.relu(dev)).pow(2).sum(-1)


def chirality_energy(x: torch.Tensor, terms: GuidanceTerms, tol: float) -> torch.Tensor:
    if terms.chirals.numel() == 0:
        return x.new_zeros(x.shape[0])
    sign = terms.chiral_sign
    shortfall = torch.relu(tol - sign * signed_volumes_torch(x, terms.chirals))
    return (shortfall.pow(2) * (sign != 0)).sum(-1)


def plane_deviations(x: torch.Tensor, terms: GuidanceTerms) -> torch.Tensor:
    """Signed distances of plane atoms to their least-squares plane [S, np, k] (0 on padding)."""
    m = terms.plane_mask.to(x.dtype)  # [np, k]
    pts = x[:, terms.planes]  # [S, np, k, 3]
    centroid = (pts * m[..., None]).sum(-2) / m.sum(-1)[..., None]  # [S, np, 3]
    rel = (pts - centroid[..., None, :]) * m[..., None]
    with torch.no_grad():
        cov = rel.transpose(-1, -2) @ rel  # [S, np, 3, 3]
        normal = torch.linalg.eigh(cov.double()).eigenvectors[..., 0].to(x.dtype)  # smallest axis
    return (rel * normal[..., None, :]).sum(-1) * m


def planarity_energy(x: torch.Tensor, terms: GuidanceTerms, tol: float) -> torch.Tensor:
    if terms.planes.numel() == 0:
        return x.new_zeros(x.shape[0])
    dev = plane_deviations(x, terms).abs() - tol * terms.plane_esd
    return (torch.relu(dev).pow(2) * terms.plane_mask).sum((-1, -2))


def clash_energy(x: torch.Tensor, terms: GuidanceTerms, pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                 tol: float) -> torch.Tensor:
    """pairs (sample, i, j) from `rnadiff.geometry.neighbor_pairs_torch` (bonded pairs already excluded)."""
    smp, i, j = pairs
    out = x.new_zeros(x.shape[0])
    if smp.numel() == 0:
        return out
    d = torch.sqrt((x[smp, i] - x[smp, j]).pow(2).sum(-1) + 1e-8)
    allowance = HBOND_ALLOWANCE * (terms.polar[i] & terms.polar[j]).to(x.dtype)
    limit = terms.radius[i] + terms.radius[j] - tol - allowance
    return out.index_add(0, smp, torch.relu(limit - d).pow(2))


def given_energy(x: torch.Tensor, terms: GuidanceTerms, tol: float) -> torch.Tensor:
    if terms.given.numel() < 3:  # an alignment needs three points
        return x.new_zeros(x.shape[0])
    cur = x[:, terms.given]  # [S, G, 3]
    with torch.no_grad():
        target = weighted_rigid_align(terms.given_coords.to(x).expand_as(cur), cur.detach(),
                                      torch.ones(cur.shape[:-1], dtype=x.dtype, device=x.device))
    d2 = (cur - target).pow(2).sum(-1)
    if tol == 0:  # harmonic: no square root, whose epsilon would leave a floor
        return d2.sum(-1)
    return torch.relu(torch.sqrt(d2 + 1e-8) - tol).pow(2).sum(-1)


__all__ = ["ANGLE_LEVER", "angle_energy", "bond_angles", "bond_energy", "chirality_energy", "clash_energy",
           "given_energy", "plane_deviations", "planarity_energy"]
