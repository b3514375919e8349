"""All-atom lDDT (docs/design.md §7): 15 Å inclusion radius in the reference, thresholds 0.5/1/2/4 Å,
pairs within one residue excluded, reference atoms missing from the model count as failures.

Pairs come from the cell-list neighbour search on the reference, so memory grows with the number
of contacts, not with N_atom².
"""
from __future__ import annotations

import numpy as np

from rnadiff.metrics.atoms import AtomTable
from rnadiff.geometry.neighbors import neighbor_pairs

THRESHOLDS = (0.5, 1.0, 2.0, 4.0)


def lddt(model: AtomTable, reference: AtomTable, radius: float = 15.0,
         thresholds: tuple[float, ...] = THRESHOLDS, heavy_only: bool = True) -> dict:
    """Global lDDT over all reference contacts, and the per-residue mean (reference residues).

    Returns {"lddt", "n_pairs", "n_missing_atoms", "per_residue"}.
    """
    if heavy_only:
        model, reference = model.heavy(), reference.heavy()
    n_ref = len(reference)
    # Model coordinates laid out in reference order; atoms the model lacks stay NaN.
    model_xyz = np.full((n_ref, 3), np.nan)
    lookup = {key: i for i, key in enumerate(model.atom_keys())}
    for j, key in enumerate(reference.atom_keys()):
        i = lookup.get(key)
        if i is not None:
            model_xyz[j] = model.coords[i]
    present = np.isfinite(model_xyz).all(1)

    i, j, d_ref = neighbor_pairs(reference.coords, radius, return_distances=True)
    res = reference.residue_index
    keep = res[i] != res[j]
    i, j, d_ref = i[keep], j[keep], d_ref[keep]
    if len(i) == 0:
        return {"lddt": float("nan"), "n_pairs": 0, "n_missing_atoms": int((~present).sum()),
                "per_residue": []}
    d_model = np.linalg.norm(model_xyz[i] - model_xyz[j], axis=1)
    delta = np.abs(d_model - d_ref)
    # NaN (missing atom) compares False with every threshold: a failure, as required.
    score = np.mean([delta < t for t in thresholds], axis=0)

    # Per residue: each pair counts for the residues of both of its atoms.
    n_res = reference.n_residues
    num = np.bincount(res[i], score, n_res) + np.bincount(res[j], score, n_res)
    den = np.bincount(res[i], None, n_res) + np.bincount(res[j], None, n_res)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_res = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    return {
        "lddt": float(score.mean()),
        "n_pairs": int(len(i)),
        "n_missing_atoms": int((~present).sum()),
        "per_residue": [None if np.isnan(v) else float(v) for v in per_res],
    }
