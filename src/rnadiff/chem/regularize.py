"""Polish a template's ideal coordinates against its own bond/angle/plane restraints.

The upstream conformers miss some bond targets by up to ~0.036 Å (U 0.012, M2G 0.036), and the
parent-ribose graft of 5MU/7MG/H2U leaves the glycosidic geometry approximate. Minimising
E = Σ((d-d0)/esd)² + Σ((θ-θ0)/esd)² + Σ(dist to best plane/esd)² moves atoms by ~0.1 Å and makes
the reference conformer agree with the restraints every loss and metric uses.

Pure numpy with analytic gradients and a small L-BFGS: this runs on first use of each template,
so it must take milliseconds, not the ~0.5 s an autograd optimiser needs on a busy CPU.
"""
from __future__ import annotations

import numpy as np


def restraint_energy(
    x: np.ndarray,
    bonds: np.ndarray, b0: np.ndarray, bw: np.ndarray,
    angles: np.ndarray, a0: np.ndarray, aw: np.ndarray,
    planes: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[float, np.ndarray]:
    """Energy and gradient [n, 3] for coords x [n, 3]; a0 in radians; weights = 1/esd²."""
    g = np.zeros_like(x)
    d_vec = x[bonds[:, 0]] - x[bonds[:, 1]]
    d = np.linalg.norm(d_vec, axis=1)
    r = d - b0
    e = float((bw * r * r).sum())
    gb = (2 * bw * r / np.maximum(d, 1e-9))[:, None] * d_vec
    np.add.at(g, bonds[:, 0], gb)
    np.add.at(g, bonds[:, 1], -gb)
    if len(angles):
        u = x[angles[:, 0]] - x[angles[:, 1]]
        v = x[angles[:, 2]] - x[angles[:, 1]]
        nu = np.linalg.norm(u, axis=1)
        nv = np.linalg.norm(v, axis=1)
        uh, vh = u / nu[:, None], v / nv[:, None]
        cos = np.clip((uh * vh).sum(1), -1 + 1e-12, 1 - 1e-12)
        theta = np.arccos(cos)
        sin = np.sqrt(1 - cos * cos)
        ra = theta - a0
        e += float((aw * ra * ra).sum())
        coef = (2 * aw * ra)[:, None]
        du = -(vh - cos[:, None] * uh) / (nu * sin)[:, None] * coef
        dv = -(uh - cos[:, None] * vh) / (nv * sin)[:, None] * coef
        np.add.at(g, angles[:, 0], du)
        np.add.at(g, angles[:, 2], dv)
        np.add.at(g, angles[:, 1], -(du + dv))
    for idx, w in planes:
        p = x[idx] - x[idx].mean(0)
        normal = np.linalg.eigh(p.T @ p)[1][:, 0]
        h = p @ normal
        e += float((w * h * h).sum())
        # d/dx of Σ w h² at fixed normal (the normal is optimal, so its variation drops out);
        # the centroid term vanishes for equal weights and is negligible otherwise.
        np.add.at(g, idx, (2 * w * h)[:, None] * normal[None, :])
    return e, g


def lbfgs(fun, x0: np.ndarray, max_iter: int = 200, memory: int = 8, gtol: float = 1e-6) -> np.ndarray:
    """Minimise fun(x) -> (f, grad) from x0 (any shape) with L-BFGS and backtracking."""
    x = x0.astype(np.float64).ravel().copy()
    shape = x0.shape

    def f_g(z: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = fun(z.reshape(shape))
        return f, g.ravel()

    f, g = f_g(x)
    s_hist: list[np.ndarray] = []
    y_hist: list[np.ndarray] = []
    for _ in range(max_iter):
        if np.abs(g).max() < gtol:
            break
        q = g.copy()
        alphas = []
        for s, y in zip(reversed(s_hist), reversed(y_hist)):
            a = s @ q / (y @ s)
            alphas.append(a)
            q -= a * y
        if s_hist:
            q *= (s_hist[-1] @ y_hist[-1]) / (y_hist[-1] @ y_hist[-1])
        else:
            q *= 1e-3 / max(np.abs(g).max(), 1e-12)  # first step: at most 1e-3 Å per coordinate
        for (s, y), a in zip(zip(s_hist, y_hist), reversed(alphas)):
            b = y @ q / (y @ s)
            q += s * (a - b)
        direction = -q
        slope = g @ direction
        if slope >= 0:  # not a descent direction: restart from steepest descent
            s_hist.clear()
            y_hist.clear()
            direction = -g * (1e-3 / max(np.abs(g).max(), 1e-12))
            slope = g @ direction
        step = 1.0
        while True:
            x_new = x + step * direction
            f_new, g_new = f_g(x_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s, y = x_new - x, g_new - g
        if y @ s > 1e-12:
            s_hist.append(s)
            y_hist.append(y)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        x, f, g = x_new, f_new, g_new
    return x.reshape(shape)


def regularize_coords(
    coords: np.ndarray,
    bonds: np.ndarray, bond_lengths: np.ndarray, bond_esds: np.ndarray,
    angles: np.ndarray, angle_values: np.ndarray, angle_esds: np.ndarray,
    planes: tuple[np.ndarray, ...], plane_esds: tuple[np.ndarray, ...],
    max_iter: int = 200,
    tether: float = 0.2,
) -> np.ndarray:
    """Coordinates [n, 3] (float64) minimising the restraint energy, starting from `coords`.

    A weak harmonic tether (σ = `tether` Å) to the start keeps the torsions (the conformation)
    that the restraints leave free, so only the strained internal geometry moves.
    """
    b0 = bond_lengths.astype(np.float64)
    bw = 1.0 / bond_esds.astype(np.float64) ** 2
    a0 = np.deg2rad(angle_values.astype(np.float64))
    aw = 1.0 / np.deg2rad(angle_esds.astype(np.float64)) ** 2
    pl = [(p, 1.0 / e.astype(np.float64) ** 2) for p, e in zip(planes, plane_esds)]
    x0 = coords.astype(np.float64)
    tw = 1.0 / tether**2

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        e, g = restraint_energy(z, bonds, b0, bw, angles, a0, aw, pl)
        dz = z - x0
        return e + tw * float((dz * dz).sum()), g + 2 * tw * dz

    return lbfgs(fun, x0, max_iter)
