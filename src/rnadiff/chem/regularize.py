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
are independent terms of one sum, so one optimiser run serves them all). Gradients are analytic
numpy, scattered with np.bincount: no autograd, no torch, milliseconds per evaluation.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from scipy.optimize import OptimizeResult, minimize
from scipy.spatial import cKDTree

from rnadiff.chem.contacts import HBOND_ALLOWANCE
from rnadiff.chem.polish_restraints import PolishRestraints, PolishSettings

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


class _Tiled:
    """The restraints of S samples as one system of S·n atoms (indices offset by s·n), weights
    precomputed: every energy term is then one vectorised numpy expression."""

    def __init__(self, r: PolishRestraints, n_samples: int, s: PolishSettings):
        n = r.n_atoms
        off = (np.arange(n_samples) * n)[:, None, None]

        def tile(rows: np.ndarray, width: int) -> np.ndarray:
            rows = np.asarray(rows, np.int64).reshape(-1, width)
            return (rows[None] + off).reshape(-1, width)

        def rep(v) -> np.ndarray:
            return np.tile(np.asarray(v, np.float64), n_samples)

        self.size = n * n_samples
        self.bonds, self.b0, self.bw = tile(r.bonds, 2), rep(r.bond_lengths), rep(1.0 / np.asarray(r.bond_esds) ** 2)
        self.dist, self.d0 = tile(r.distances, 2), rep(r.distance_targets)
        self.dw = rep(1.0 / np.asarray(r.distance_esds, np.float64) ** 2)
        # group key per tiled restraint (sample · n_groups + group) and residue key per tiled atom
        groups = np.zeros(len(r.distances), np.int64) if r.distance_groups is None else r.distance_groups
        n_groups = int(groups.max()) + 1 if len(groups) else 1
        self.dgroup = (groups[None] + (np.arange(n_samples) * n_groups)[:, None]).reshape(-1)
        residue = np.zeros(n, np.int64) if r.atom_residue is None else np.asarray(r.atom_residue, np.int64)
        n_res = int(residue.max()) + 1 if n else 1
        self.residue = (residue[None] + (np.arange(n_samples) * n_res)[:, None]).reshape(-1)
        self.angles, self.a0 = tile(r.angles, 3), rep(np.deg2rad(r.angle_values))
        self.aw = rep(1.0 / np.deg2rad(np.asarray(r.angle_esds, np.float64)) ** 2)
        k = max((len(p) for p in r.planes), default=0)
        idx, w = np.zeros((len(r.planes), k), np.int64), np.zeros((len(r.planes), k))
        for i, (p, e) in enumerate(zip(r.planes, r.plane_esds)):
            idx[i, : len(p)], w[i, : len(p)] = p, 1.0 / np.asarray(e, np.float64) ** 2
        self.planes, self.plane_w = tile(idx, k) if k else np.zeros((0, 0), np.int64), np.tile(w, (n_samples, 1))
        self.plane_m = (self.plane_w > 0).astype(np.float64)
        known = np.asarray(r.chiral_signs) != 0
        self.chirals, self.chiral_sign = tile(np.asarray(r.chirals)[known], 4), rep(np.asarray(r.chiral_signs)[known])
        self.chi_tol, self.chi_w = s.chirality_tolerance, 1.0 / s.chirality_esd**2
        self.clash_w, self.tether_w = 1.0 / s.clash_esd**2, 1.0 / s.tether**2
        self.pairs, self.limit = np.zeros((0, 2), np.int64), np.zeros(0)


class _Grad:
    """Per-row gradient contributions (atom index, vector) of every term, summed in one go at the
    end: three np.bincount calls per evaluation instead of three per term and atom role."""

    def __init__(self, size: int):
        self.size, self.idx, self.vec = size, [], []

    def add(self, idx: np.ndarray, vec: np.ndarray) -> None:
        self.idx.append(idx)
        self.vec.append(vec)

    def total(self) -> np.ndarray:
        g = np.zeros((self.size, 3))
        if self.idx:
            idx, vec = np.concatenate(self.idx), np.concatenate(self.vec)
            for k in range(3):
                g[:, k] = np.bincount(idx, vec[:, k], minlength=self.size)
        return g


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of [m, 3] arrays (np.cross's axis handling costs more than the maths)."""
    return np.stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1], a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                     a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]], axis=1)


def _harmonic_distances(x, pairs: np.ndarray, target: np.ndarray, weight: np.ndarray, g) -> float:
    """Σ w·(d − d0)² over atom pairs [m, 2] (bonds, and the distance restraints of asserted pairs)."""
    if not len(pairs):
        return 0.0
    dv = x[pairs[:, 0]] - x[pairs[:, 1]]
    d = np.sqrt((dv * dv).sum(1))
    r = d - target
    gd = (2 * weight * r / np.maximum(d, 1e-9))[:, None] * dv
    g.add(pairs[:, 0], gd)
    g.add(pairs[:, 1], -gd)
    return float((weight * r * r).sum())


def _bond_terms(x, t: _Tiled, g) -> float:
    return _harmonic_distances(x, t.bonds, t.b0, t.bw, g)


def _distance_terms(x, t: _Tiled, g) -> float:
    return _harmonic_distances(x, t.dist, t.d0, t.dw, g)


def _angle_terms(x, t: _Tiled, g) -> float:
    if not len(t.angles):
        return 0.0
    centre = x[t.angles[:, 1]]
    u, v = x[t.angles[:, 0]] - centre, x[t.angles[:, 2]] - centre
    inv_u = 1.0 / np.sqrt(np.einsum("ij,ij->i", u, u))
    inv_v = 1.0 / np.sqrt(np.einsum("ij,ij->i", v, v))
    uh, vh = u * inv_u[:, None], v * inv_v[:, None]
    cos = np.clip(np.einsum("ij,ij->i", uh, vh), -1 + 1e-12, 1 - 1e-12)
    ra = np.arccos(cos) - t.a0
    # dθ/du = -(v̂ - cos·û) / (|u| sin θ), likewise for v; k = dE/dθ / sin θ
    k = (-2 * t.aw * ra / np.sqrt(1 - cos * cos))[:, None]
    du = (vh - cos[:, None] * uh) * (k * inv_u[:, None])
    dv = (uh - cos[:, None] * vh) * (k * inv_v[:, None])
    g.add(t.angles[:, 0], du)
    g.add(t.angles[:, 2], dv)
    g.add(t.angles[:, 1], -(du + dv))
    return float(np.dot(t.aw * ra, ra))


def _plane_terms(x, t: _Tiled, g) -> float:
    if not t.planes.size:
        return 0.0
    m = t.plane_m
    pts = x[t.planes]  # [P, k, 3]
    centre = (pts * m[..., None]).sum(1) / m.sum(1)[:, None]
    rel = (pts - centre[:, None]) * m[..., None]
    normal = np.linalg.eigh(np.einsum("pki,pkj->pij", rel, rel))[1][..., 0]  # smallest axis
    h = np.einsum("pki,pi->pk", rel, normal)
    # d/dx of Σ w h² at fixed normal (the normal is optimal, so its variation drops out)
    grad = (2 * t.plane_w * h)[..., None] * normal[:, None, :]
    g.add(t.planes.ravel(), grad.reshape(-1, 3) * m.reshape(-1, 1))
    return float((t.plane_w * h * h).sum())


def _chirality_terms(x, t: _Tiled, g) -> float:
    if not len(t.chirals):
        return 0.0
    c, a, b, d = (x[t.chirals[:, k]] for k in range(4))
    a, b, d = a - c, b - c, d - c
    vol = (a * _cross(b, d)).sum(1)
    short = np.maximum(t.chi_tol - t.chiral_sign * vol, 0.0)
    coef = (-2 * t.chi_w * short * t.chiral_sign)[:, None]  # dE/dV
    ga, gb, gd = coef * _cross(b, d), coef * _cross(d, a), coef * _cross(a, b)
    for k, grad in ((1, ga), (2, gb), (3, gd), (0, -(ga + gb + gd))):
        g.add(t.chirals[:, k], grad)
    return float(t.chi_w * (short * short).sum())


def _clash_terms(x, t: _Tiled, g) -> float:
    if not len(t.pairs):
        return 0.0
    dv = x[t.pairs[:, 0]] - x[t.pairs[:, 1]]
    d = np.sqrt((dv * dv).sum(1))
    short = np.maximum(t.limit - d, 0.0)
    gp = (-2 * t.clash_w * short / np.maximum(d, 1e-9))[:, None] * dv
    g.add(t.pairs[:, 0], gp)
    g.add(t.pairs[:, 1], -gp)
    return float(t.clash_w * (short * short).sum())


def _clash_pairs(x: np.ndarray, r: PolishRestraints, n_samples: int, s: PolishSettings
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (tiled indices) within their contact limit + skin, bonded neighbours excluded, and
    each pair's limit r_i + r_j - allowance - tolerance (Å)."""
    n = r.n_atoms
    radius = np.asarray(r.radius, np.float64)
    polar = np.zeros(n, bool) if r.polar is None else np.asarray(r.polar, bool)
    ex = np.sort(np.asarray(r.exclude, np.int64).reshape(-1, 2), axis=1)
    ex_keys = np.unique(ex[:, 0] * n + ex[:, 1])
    out_p, out_l = [], []
    for k in range(n_samples):
        pts = x[k * n:(k + 1) * n]
        p = cKDTree(pts).query_pairs(2 * radius.max() + s.neighbor_skin, output_type="ndarray")
        if not len(p):
            continue
        p = np.sort(p, axis=1)
        if len(ex_keys):
            keys = p[:, 0] * n + p[:, 1]
            pos = np.minimum(np.searchsorted(ex_keys, keys), len(ex_keys) - 1)
            p = p[ex_keys[pos] != keys]
        limit = (radius[p[:, 0]] + radius[p[:, 1]] - s.clash_tolerance
                 - HBOND_ALLOWANCE * (polar[p[:, 0]] & polar[p[:, 1]]))
        d = np.sqrt(((pts[p[:, 0]] - pts[p[:, 1]]) ** 2).sum(1))
        near = d < limit + s.neighbor_skin
        out_p.append(p[near] + k * n)
        out_l.append(limit[near])
    if not out_p:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    return np.concatenate(out_p), np.concatenate(out_l)


def polish_energy(x: np.ndarray, t: _Tiled, x_start: np.ndarray) -> tuple[float, np.ndarray]:
    """Energy and gradient [S·n, 3] of the tiled system at x [S·n, 3]."""
    g = _Grad(len(x))
    e = sum(term(x, t, g) for term in (_bond_terms, _angle_terms, _plane_terms, _chirality_terms, _clash_terms,
                                       _distance_terms))
    dz = x - x_start
    return e + t.tether_w * float((dz * dz).sum()), g.total() + 2 * t.tether_w * dz


def polish_samples(coords: np.ndarray, restraints: PolishRestraints,
                   settings: PolishSettings = PolishSettings(), fixed: np.ndarray | None = None,
                   ftol: float = 1e-12) -> np.ndarray:
    """Coordinates [S, n, 3] (float64) minimising the polish energy, starting from `coords`.

    fixed [n] bool: atoms that do not move (e.g. the given atoms); the others relax against them.
    ftol: L-BFGS-B's relative energy-change stop (the default never stops a sample's polish early).
    With radii the iterations are split over `clash_rounds` rounds, the clash neighbour list
    rebuilt before each (atoms move a fraction of an Å per round, the skin covers that); extra
    rounds follow while any sample still has a clash the metric would count (all samples take
    part in them, so a sample's result can depend slightly on its batch)."""
    coords = np.asarray(coords, np.float64)
    if coords.ndim != 3 or coords.shape[1:] != (restraints.n_atoms, 3):
        raise ValueError(f"polish_samples needs coords [S, {restraints.n_atoms}, 3], got {coords.shape}")
    n_samples = coords.shape[0]
    free = np.ones(restraints.n_atoms, bool) if fixed is None else ~np.asarray(fixed, bool).reshape(-1)
    if free.shape != (restraints.n_atoms,):
        raise ValueError(f"polish_samples needs fixed [{restraints.n_atoms}], got {np.shape(fixed)}")
    free = np.tile(free, n_samples)
    t = _Tiled(restraints, n_samples, settings)
    x_start = coords.reshape(-1, 3).copy()
    x = x_start.copy()
    if not free.any():
        return x.reshape(coords.shape)
    clash = restraints.radius is not None and len(restraints.radius) > 0
    rounds = settings.clash_rounds if clash else 1

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        x[free] = z.reshape(-1, 3)  # only the free atoms are variables: the fixed ones stay put
        e, g = polish_energy(x, t, x_start)
        return e, g[free].ravel()

    for k in range(rounds + (settings.extra_rounds if clash else 0)):
        iters = settings.max_iter // rounds + (k < settings.max_iter % rounds)
        if iters == 0:
            continue
        if clash:
            t.pairs, t.limit = _clash_pairs(x, restraints, n_samples, settings)
            if k >= rounds:
                if not _counted_clashes(x, t, settings):
                    break
                # the tether moves to the current coordinates: a clash that needs more than
                # ~tether Å of movement is resolved over several rounds instead of never
                x_start[:] = x
                _yield_to_clashes(x, t, settings)
        res = lbfgs_b(fun, x[free].ravel(), iters, ftol=ftol)
        x[free] = res.x.reshape(-1, 3)
    return x.reshape(coords.shape)


def _counted_mask(x: np.ndarray, t: _Tiled, s: PolishSettings) -> np.ndarray:
    """[pairs] bool: pairs of the current list the metric would count (overlap >= clash_overlap_counted)."""
    if not len(t.pairs):
        return np.zeros(0, bool)
    d = np.sqrt(((x[t.pairs[:, 0]] - x[t.pairs[:, 1]]) ** 2).sum(1))
    return t.limit + s.clash_tolerance - d >= s.clash_overlap_counted - 1e-9


def _counted_clashes(x: np.ndarray, t: _Tiled, s: PolishSettings) -> int:
    return int(_counted_mask(x, t, s).sum())


def _yield_to_clashes(x: np.ndarray, t: _Tiled, s: PolishSettings) -> None:
    """Scale by distance_decay the weights of the restraint groups touching a residue that holds
    a counted clash."""
    if not len(t.dist) or s.distance_decay == 1:
        return
    clashing = np.unique(t.residue[t.pairs[_counted_mask(x, t, s)].ravel()])
    touched = np.isin(t.residue[t.dist], clashing).any(1)
    weak = np.isin(t.dgroup, np.unique(t.dgroup[touched]))
    t.dw = np.where(weak, t.dw * s.distance_decay, t.dw)


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


__all__ = ["HBOND_ALLOWANCE", "PolishRestraints", "PolishSettings", "lbfgs_b", "polish_energy", "polish_samples",
           "regularize_coords"]
