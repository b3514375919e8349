"""The guidance's potentials as rows of the shared restraint kernel (`rnadiff.chem.restraint_energy`,
the same energy and analytic gradient the final polish minimises), in Å² so that one step size
suits all of them:

- bond / link:     Σ relu(|d − d0| − tol·esd)²
- angle:           Σ (L·relu(|θ − θ0| − tol·esd))² with L = 1.5 Å (a bond's lever arm: radians → Å)
- chirality:       Σ relu(tol − sign·V)², V the signed volume (Å³)
- planarity:       Σ relu(|h| − tol·esd)², h an atom's distance to its base's best plane
- clash:           Σ relu(r_i + r_j − tol − allowance_ij − d)² over neighbour-list pairs (> 3 bonds
                   apart), allowance 0.4 Å between two N/O atoms (a hydrogen bond, as the metric)
- base_pair:       Σ relu(|d − 2.95 Å| − tol·esd)² over the asserted pairs' H-bonds
- pair_template:   the same over their canonical cross distances, plus Σ relu(|h − h0| − tol·esd)²
                   over each central H-bond atom's offset h from its partner's ring plane
- given:           Σ relu(|x_i − y_i| − tol)², y the input's given atoms Kabsch-aligned onto x
                   (no gradient through the alignment): a tether in the sample's own frame.

`tol` is each term's `TermSchedule.tolerance`; each term's weight is its schedule's factor at the
step's noise level, and a term at weight 0 adds no rows.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rnadiff.chem.restraint_energy import TiledRestraints
from rnadiff.diffusion.guidance.config import TermSchedule
from rnadiff.diffusion.guidance.terms import HBOND_LENGTH, GuidanceTerms
from rnadiff.geometry import superpose

ANGLE_LEVER = 1.5  # Å


def _distance_rows(t: TiledRestraints, specs, schedules: Mapping[str, TermSchedule],
                   active: frozenset[str]) -> tuple[np.ndarray, ...]:
    """Tiled (pairs, targets, widths, kinds) of the distance-like terms in `specs` (name, pairs
    [m, 2], target, esd [m]) that are active; kinds: each row's index into `specs`."""
    idx, target, width, kind = [np.zeros((0, 2), np.int64)], [np.zeros(0)], [np.zeros(0)], [np.zeros(0, np.int64)]
    for k, (name, pairs, length, esd) in enumerate(specs):
        if name not in active or not len(pairs):
            continue
        idx.append(pairs)
        target.append(np.broadcast_to(np.asarray(length, np.float64), (len(pairs),)))
        width.append(schedules[name].tolerance * np.asarray(esd, np.float64))
        kind.append(np.full(len(pairs), k))
    return (t.tile(np.concatenate(idx), 2), t.repeat(np.concatenate(target)), t.repeat(np.concatenate(width)),
            np.tile(np.concatenate(kind), t.n_samples))


class GuidanceRows:
    """The rows of the potentials in `active` (all but `given`) for S samples, built once per
    structure, sample count and set of active terms; a sampler step only sets their weights (its
    factors) and its clash pairs (`weighted`), so the rows' scatter matrices are built once too."""

    def __init__(self, terms: GuidanceTerms, schedules: Mapping[str, TermSchedule], active: frozenset[str],
                 n_samples: int):
        t = TiledRestraints(n_atoms=terms.n_atoms, n_samples=n_samples)
        self.bond_kinds = ("bond", "link")
        self.distance_kinds = ("base_pair", "pair_template")
        t.bonds, t.bond_target, t.bond_width, self._bond_kind = _distance_rows(t, (
            ("bond", terms.bonds, terms.bond_length, terms.bond_esd),
            ("link", terms.links, terms.link_length, terms.link_esd)), schedules, active)
        template = terms.pair_template
        t.distances, t.distance_target, t.distance_width, self._distance_kind = _distance_rows(t, (
            ("base_pair", terms.pair_hbonds, HBOND_LENGTH, terms.pair_hbond_esd),
            ("pair_template", template.atoms, template.target, template.esd)), schedules, active)
        if "pair_template" in active and len(template.offsets):
            t.offsets, t.offset_target = t.tile(template.offsets, 4), t.repeat(template.offset_target)
            t.offset_width = t.repeat(schedules["pair_template"].tolerance * template.offset_esd)
        if "angle" in active and len(terms.angles):
            t.angles, t.angle_target = t.tile(terms.angles, 3), t.repeat(terms.angle_value)
            t.angle_width = t.repeat(schedules["angle"].tolerance * terms.angle_esd)
        self._plane_mask = np.zeros((0, 0))
        if "planarity" in active and terms.planes.size:
            t.planes, self._plane_mask = t.tile(terms.planes, terms.planes.shape[1]), t.repeat(terms.plane_mask)
            t.plane_width = t.repeat(schedules["planarity"].tolerance * terms.plane_esd)
        known = terms.chiral_sign != 0
        if "chirality" in active and known.any():
            t.chirals, t.chiral_sign = t.tile(terms.chirals[known], 4), t.repeat(terms.chiral_sign[known])
            t.chiral_min = schedules["chirality"].tolerance
        self.tiled = t

    def weighted(self, factors: Mapping[str, float], clash: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> TiledRestraints:
        """The tiled system weighted by the step's factors; `clash` holds the neighbour-list pairs
        (tiled) and their limits (`RNAGuidance.neighbor_pairs`)."""
        t = self.tiled
        per_kind = lambda kinds: np.array([factors.get(k, 0.0) for k in kinds])  # noqa: E731
        t.bond_weight = per_kind(self.bond_kinds)[self._bond_kind]
        t.distance_weight = per_kind(self.distance_kinds)[self._distance_kind]
        t.offset_weight = np.full(len(t.offsets), factors.get("pair_template", 0.0))
        t.angle_weight = np.full(len(t.angles), factors.get("angle", 0.0) * ANGLE_LEVER**2)
        t.plane_weight = factors.get("planarity", 0.0) * self._plane_mask
        t.chiral_weight = factors.get("chirality", 0.0)
        t.clash_pairs, t.clash_limit = clash if clash is not None else (np.zeros((0, 2), np.int64), np.zeros(0))
        t.clash_weight = factors.get("clash", 0.0)
        return t


def active_terms(factors: Mapping[str, float]) -> frozenset[str]:
    return frozenset(k for k, f in factors.items() if f > 0)


def guidance_restraints(terms: GuidanceTerms, schedules: Mapping[str, TermSchedule], factors: Mapping[str, float],
                        n_samples: int, clash: tuple[np.ndarray, np.ndarray] | None = None) -> TiledRestraints:
    """The weighted potentials (all but `given`) of S samples as one tiled system (rows built
    afresh; `RNAGuidance` keeps a `GuidanceRows` per active set instead)."""
    return GuidanceRows(terms, schedules, active_terms(factors), n_samples).weighted(factors, clash)


def given_energy(x: np.ndarray, terms: GuidanceTerms, n_samples: int, weight: float, tol: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The `given` tether of x [S·n, 3]: energy per sample [S] and gradient [S·n, 3]."""
    energy, grad = np.zeros(n_samples), np.zeros_like(x)
    if weight <= 0 or len(terms.given) < 3:  # an alignment needs three points
        return energy, grad
    for s in range(n_samples):
        rows = s * terms.n_atoms + terms.given
        cur = x[rows]
        dv = cur - superpose(terms.given_coords, cur)
        if tol == 0:  # harmonic
            energy[s], grad[rows] = weight * float((dv * dv).sum()), 2 * weight * dv
            continue
        d = np.sqrt((dv * dv).sum(1))
        r = np.maximum(d - tol, 0.0)
        energy[s] = weight * float((r * r).sum())
        grad[rows] = (2 * weight * r / np.maximum(d, 1e-9))[:, None] * dv
    return energy, grad


__all__ = ["ANGLE_LEVER", "GuidanceRows", "active_terms", "given_energy", "guidance_restraints"]
