"""RMSD after superposition (docs/design.md §7: all-heavy-atom RMSD, fidelity RMSD); the Kabsch
kernel is rnadiff.geometry.superpose."""
from __future__ import annotations

import numpy as np

from rnadiff.geometry.superpose import kabsch, superpose
from rnadiff.metrics.atoms import AtomTable, match_atoms

__all__ = ["fidelity_rmsd", "kabsch", "rmsd", "rmsd_coords", "superpose"]


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
