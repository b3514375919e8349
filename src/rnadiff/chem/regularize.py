"""Polish coordinates against the monomer-library restraints, with non-bonded repulsion.

Two users:
- the monomer library polishes each template's ideal coordinates against its own bonds, angles
  and planes (the upstream conformers miss some bond targets by up to ~0.036 Å);
- refinement polishes every sample: bonds (O3'-P links included), angles, base planes,
  chirality and steric clashes, tethered to the sample so that the conformation stays.

E = Σ((d-d0)/esd)² + Σ((θ-θ0)/esd)² + Σ(dist to best plane/esd)²
    + Σ(relu(tol_v - sign·V)/esd_v)²            chirality (V the signed volume, Å³)
    + Σ(relu(r_i + r_j - allowance_ij - tol_c - d)/esd_c)²   clash (pairs > 3 bonds apart)
    + Σ((d-d0)/esd)²                              distance restraints (e.g. asserted base pairs)
    + Σ|x - x_start|²/tether²
minimised by scipy's L-BFGS-B on the flattened coordinates of all samples at once (the samples
are independent terms of one sum, so one optimiser run serves them all). The energy and its
analytic gradient are `rnadiff.chem.restraint_energy`'s, the kernel the sampler's guidance uses too.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeResult, minimize

from rnadiff.chem.polish_restraints import PolishRestraints, PolishSettings
from rnadiff.chem.restraint_energy import TiledRestraints, clash_pairs, restraint_energy


@functools.cache
def _threadpools():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def lbfgs_b(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, max_iter: int,
            max_fun: int | None = None, ftol: float = 1e-12, gtol: float = 1e-6) -> OptimizeResult:
    """scipy's L-BFGS-B on fun(z) -> (f, grad) from the flat float64 x0, with BLAS single-threaded.

    Why the thread limit: once torch (libgomp) is loaded, scipy's OpenBLAS thread pool makes each
    of L-BFGS-B's many tiny BLAS calls about 100x slower on a 2-core machine (measured: 15
    iterations on 60 variables, 1.3 ms without torch, 114 ms with it, 3 ms limited)."""
    options = {"maxiter": int(max_iter), "maxcor": 10, "ftol": ftol, "gtol": gtol}
    if max_fun is not None:
        options["maxfun"] = int(max_fun)
    with _threadpools().limit(limits=1, user_api="blas"):
        return minimize(fun, x0, jac=True, method="L-BFGS-B", options=options)


def tile_polish(r: PolishRestraints, n_samples: int, s: PolishSettings) -> TiledRestraints:
    """The polish's restraints of S samples as one tiled system, weighted by 1/esd² (harmonic);
    the clash pairs are filled in per round (`clash_pairs`)."""
    t = TiledRestraints(n_atoms=r.n_atoms, n_samples=n_samples)
    t.bonds, t.bond_target = t.tile(r.bonds, 2), t.repeat(r.bond_lengths)
    t.bond_weight = t.repeat(1.0 / np.asarray(r.bond_esds, np.float64) ** 2)
    t.distances, t.distance_target = t.tile(r.distances, 2), t.repeat(r.distance_targets)
    t.distance_weight = t.repeat(1.0 / np.asarray(r.distance_esds, np.float64) ** 2)
    t.offsets, t.offset_target = t.tile(r.offsets, 4), t.repeat(r.offset_targets)
    t.offset_weight = t.repeat(1.0 / np.asarray(r.offset_esds, np.float64) ** 2)
    t.angles, t.angle_target = t.tile(r.angles, 3), t.repeat(np.deg2rad(r.angle_values))
    t.angle_weight = t.repeat(1.0 / np.deg2rad(np.asarray(r.angle_esds, np.float64)) ** 2)
    k = max((len(p) for p in r.planes), default=0)
    if k:
        idx, w = np.zeros((len(r.planes), k), np.int64), np.zeros((len(r.planes), k))
        for i, (p, e) in enumerate(zip(r.planes, r.plane_esds)):
            idx[i, : len(p)], w[i, : len(p)] = p, 1.0 / np.asarray(e, np.float64) ** 2
        t.planes, t.plane_weight = t.tile(idx, k), t.repeat(w)
    known = np.asarray(r.chiral_signs) != 0
    t.chirals, t.chiral_sign = t.tile(np.asarray(r.chirals)[known], 4), t.repeat(np.asarray(r.chiral_signs)[known])
    t.chiral_min, t.chiral_weight = s.chirality_tolerance, 1.0 / s.chirality_esd**2
    t.clash_weight = 1.0 / s.clash_esd**2
    return t


@dataclass
class _PolishSystem:
    """The tiled restraints plus what only the polish needs: the tether and, for the pairs that
    yield to clashes, each distance and offset row's group and each atom's residue (tiled keys)."""

    tiled: TiledRestraints
    tether_weight: float
    group: np.ndarray
    offset_group: np.ndarray
    residue: np.ndarray

    @classmethod
    def build(cls, r: PolishRestraints, n_samples: int, s: PolishSettings) -> "_PolishSystem":
        t = tile_polish(r, n_samples, s)
        groups = np.zeros(len(r.distances), np.int64) if r.distance_groups is None else r.distance_groups
        offset_groups = np.zeros(len(r.offsets), np.int64) if r.offset_groups is None else r.offset_groups
        n_groups = int(max(groups.max(initial=0), offset_groups.max(initial=0))) + 1
        per_sample = (np.arange(n_samples) * n_groups)[:, None]  # each sample's groups numbered apart
        group = (groups[None] + per_sample).reshape(-1)
        offset_group = (offset_groups[None] + per_sample).reshape(-1)
        residue = np.zeros(r.n_atoms, np.int64) if r.atom_residue is None else np.asarray(r.atom_residue, np.int64)
        n_res = int(residue.max()) + 1 if r.n_atoms else 1
        residue = (residue[None] + (np.arange(n_samples) * n_res)[:, None]).reshape(-1)
        return cls(t, 1.0 / s.tether**2, group, offset_group, residue)

    def subset(self, samples: np.ndarray, r: PolishRestraints, s: PolishSettings) -> "_PolishSystem":
        """The system of the chosen samples (bool [S]) alone, their distance and offset weights as
        they stand (some may have yielded to clashes); clash pairs are left for the caller to fill in."""
        sub = _PolishSystem.build(r, int(samples.sum()), s)
        n = self.tiled.n_samples
        sub.tiled.distance_weight = self.tiled.distance_weight.reshape(n, -1)[samples].reshape(-1)
        sub.tiled.offset_weight = self.tiled.offset_weight.reshape(n, -1)[samples].reshape(-1)
        return sub


def _clash_pairs(x: np.ndarray, r: PolishRestraints, n_samples: int, s: PolishSettings
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The polish's clash candidates of x [S·n, 3] (bonded neighbours excluded) and their limits."""
    polar = np.zeros(r.n_atoms, bool) if r.polar is None else r.polar
    return clash_pairs(x, n_samples, r.radius, polar, r.exclude, s.clash_tolerance, s.neighbor_skin)


def polish_energy(x: np.ndarray, system: _PolishSystem, x_start: np.ndarray) -> tuple[float, np.ndarray]:
    """Energy and gradient [S·n, 3] of the polish at x [S·n, 3]: the restraints plus the tether."""
    e, g = restraint_energy(x, system.tiled)
    dz = x - x_start
    return e + system.tether_weight * float((dz * dz).sum()), g + 2 * system.tether_weight * dz


def polish_samples(coords: np.ndarray, restraints: PolishRestraints,
                   settings: PolishSettings = PolishSettings(), fixed: np.ndarray | None = None,
                   ftol: float = 1e-12) -> np.ndarray:
    """Coordinates [S, n, 3] (float64) minimising the polish energy, starting from `coords`.

    fixed [n] bool: atoms that do not move (e.g. the given atoms); the others relax against them.
    ftol: L-BFGS-B's relative energy-change stop (the default never stops a sample's polish early).
    With radii the iterations are split over `clash_rounds` rounds, the clash neighbour list
    rebuilt before each (atoms move a fraction of an Å per round, the skin covers that); extra
    rounds follow for the samples that still have a clash the metric would count (only those take
    part: a clean sample is not polished further because a batch mate is not)."""
    coords = np.asarray(coords, np.float64)
    if coords.ndim != 3 or coords.shape[1:] != (restraints.n_atoms, 3):
        raise ValueError(f"polish_samples needs coords [S, {restraints.n_atoms}, 3], got {coords.shape}")
    n_samples, n = coords.shape[0], restraints.n_atoms
    free = np.ones(n, bool) if fixed is None else ~np.asarray(fixed, bool).reshape(-1)
    if free.shape != (n,):
        raise ValueError(f"polish_samples needs fixed [{n}], got {np.shape(fixed)}")
    free = np.tile(free, n_samples)
    system = _PolishSystem.build(restraints, n_samples, settings)
    t = system.tiled
    x_start = coords.reshape(-1, 3).copy()
    x = x_start.copy()
    if not free.any():
        return x.reshape(coords.shape)
    clash = restraints.radius is not None and len(restraints.radius) > 0
    rounds = settings.clash_rounds if clash else 1
    for k in range(rounds + (settings.extra_rounds if clash else 0)):
        iters = settings.max_iter // rounds + (k < settings.max_iter % rounds)
        if iters == 0:
            continue
        if clash:
            t.clash_pairs, t.clash_limit = _clash_pairs(x, restraints, n_samples, settings)
        if k < rounds:
            _minimise_round(system, x, x_start, free, iters, ftol)
            continue
        stuck = _samples_with_counted_clashes(x, t, settings)
        if not stuck.any():
            break
        # the tether moves to the current coordinates: a clash that needs more than ~tether Å
        # of movement is resolved over several rounds instead of never
        x_start[:] = x
        _yield_to_clashes(x, system, settings)
        rows = (np.flatnonzero(stuck)[:, None] * n + np.arange(n)).reshape(-1)
        sub = system.subset(stuck, restraints, settings)
        xs, xs_start = x[rows], x_start[rows]
        sub.tiled.clash_pairs, sub.tiled.clash_limit = _clash_pairs(xs, restraints, int(stuck.sum()), settings)
        _minimise_round(sub, xs, xs_start, free[rows], iters, ftol)
        x[rows] = xs
    return x.reshape(coords.shape)


def _minimise_round(system: _PolishSystem, x: np.ndarray, x_start: np.ndarray, free: np.ndarray, iters: int,
                    ftol: float) -> None:
    """At most `iters` L-BFGS-B iterations of the polish energy on x [S·n, 3] (in place); only
    the free atoms are variables, the fixed ones stay put."""

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        x[free] = z.reshape(-1, 3)
        e, g = polish_energy(x, system, x_start)
        return e, g[free].ravel()

    res = lbfgs_b(fun, x[free].ravel(), iters, ftol=ftol)
    x[free] = res.x.reshape(-1, 3)


def _counted_mask(x: np.ndarray, t: TiledRestraints, s: PolishSettings) -> np.ndarray:
    """[pairs] bool: pairs of the current list the metric would count (overlap >= clash_overlap_counted)."""
    p = t.clash_pairs
    if not len(p):
        return np.zeros(0, bool)
    d = np.sqrt(((x[p[:, 0]] - x[p[:, 1]]) ** 2).sum(1))
    return t.clash_limit + s.clash_tolerance - d >= s.clash_overlap_counted - 1e-9


def _samples_with_counted_clashes(x: np.ndarray, t: TiledRestraints, s: PolishSettings) -> np.ndarray:
    """[S] bool: the samples holding a pair the metric would count."""
    counted = t.clash_pairs[_counted_mask(x, t, s), 0] // t.n_atoms
    return np.bincount(counted, minlength=t.n_samples) > 0


def _yield_to_clashes(x: np.ndarray, system: _PolishSystem, s: PolishSettings) -> None:
    """Scale by distance_decay the weights of the restraint groups (distance and offset rows)
    touching a residue that holds a counted clash."""
    t = system.tiled
    if not (len(t.distances) or len(t.offsets)) or s.distance_decay == 1:
        return
    clashing = np.unique(system.residue[t.clash_pairs[_counted_mask(x, t, s)].ravel()])
    touched = np.concatenate([system.group[np.isin(system.residue[t.distances], clashing).any(1)],
                              system.offset_group[np.isin(system.residue[t.offsets], clashing).any(1)]])
    weak = np.unique(touched)
    t.distance_weight = np.where(np.isin(system.group, weak), t.distance_weight * s.distance_decay,
                                 t.distance_weight)
    t.offset_weight = np.where(np.isin(system.offset_group, weak), t.offset_weight * s.distance_decay,
                               t.offset_weight)


def regularize_coords(
    coords: np.ndarray,
    bonds: np.ndarray, bond_lengths: np.ndarray, bond_esds: np.ndarray,
    angles: np.ndarray, angle_values: np.ndarray, angle_esds: np.ndarray,
    planes: tuple[np.ndarray, ...], plane_esds: tuple[np.ndarray, ...],
    max_iter: int = 200,
    tether: float = 0.2,
) -> np.ndarray:
    """Coordinates [n, 3] (float64) minimising the bond/angle/plane energy, starting from `coords`.

    A weak harmonic tether (σ = `tether` Å) to the start keeps the torsions (the conformation)
    that the restraints leave free, so only the strained internal geometry moves. No chirality
    or clash terms (see `polish_samples` for those)."""
    coords = np.asarray(coords, np.float64)
    r = PolishRestraints(n_atoms=len(coords), bonds=bonds, bond_lengths=bond_lengths, bond_esds=bond_esds,
                         angles=angles, angle_values=angle_values, angle_esds=angle_esds, planes=tuple(planes),
                         plane_esds=tuple(plane_esds))
    # ftol 1e-9: the templates' energies then match a full run to 4 decimals in ~30% less time
    return polish_samples(coords[None], r, PolishSettings(max_iter=max_iter, tether=tether), ftol=1e-9)[0]


__all__ = ["PolishRestraints", "PolishSettings", "lbfgs_b", "polish_energy", "polish_samples", "regularize_coords",
           "tile_polish"]
