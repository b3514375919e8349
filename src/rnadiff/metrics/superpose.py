"""Kabsch superposition and RMSD (DESIGN §7: all-heavy-atom RMSD, fidelity RMSD)."""
from __future__ import annotations

import numpy as np

from rnadiff.metrics.atoms import AtomTable, match_atoms


def kabsch(mobile: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t minimising sum w |R x + t - y|^2 (x = mobile, y = target).

    Apply as `mobile @ R.T + t`. A proper rotation (det +1) is enforced: a mirror image does not
    superpose onto its original.
    """
    x = np.asarray(mobile, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    wsum = w.sum()
    if len(x) == 0 or wsum <= 0:
        return np.eye(3), np.zeros(3)
    cx = (w[:, None] * x).sum(0) / wsum
    cy = (w[:, None] * y).sum(0) / wsum
    h = ((x - cx) * w[:, None]).T @ (y - cy)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, cy - cx @ rot.T


def superpose(mobile: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """`mobile` moved onto `target` (same shape)."""
    rot, t = kabsch(mobile, target, weights)
    return np.asarray(mobile, dtype=np.float64) @ rot.T + t


def rmsd_coords(a: np.ndarray, b: np.ndarray, superposition: bool = True) -> float:
    """RMSD of two equally ordered coordinate sets, after Kabsch superposition unless disabled."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if len(a) == 0:
        return float("nan")
    if superposition:
        a = superpose(a, b)
    return float(np.sqrt(((a - b) ** 2).sum(1).mean()))


def rmsd(model: AtomTable, reference: AtomTable, superposition: bool = True,
         heavy_only: bool = True) -> dict:
    """RMSD over atoms matched by chain, residue number and name.

    `superposition=False` gives the fidelity RMSD: coordinates compared in place, as when the
    output was already superposed onto the given atoms. Returns {"rmsd", "n_matched"}.
    """
    if heavy_only:
        model, reference = model.heavy(), reference.heavy()
    im, ir = match_atoms(model, reference)
    value = rmsd_coords(model.coords[im], reference.coords[ir], superposition) if len(im) else float("nan")
    return {"rmsd": value, "n_matched": int(len(im))}


def fidelity_rmsd(output: AtomTable, given: AtomTable) -> dict:
    """RMSD of the given (input) atoms between input and output, without re-superposition."""
    return rmsd(output, given, superposition=False)
