"""Per-residue profile of a model against its reference: deviation, lDDT and confidence.

Deviation is the RMSD of a residue's matched heavy atoms after one global superposition of all
matched atoms (so a misplaced domain shows as a stretch of high deviation, as in a per-residue
plot users read). Confidence is the mean B-factor of the residue's model atoms: rnadiff writes the
per-atom spread of the samples there (Å), so low means the samples agree.
"""
from __future__ import annotations

import numpy as np

from rnadiff.metrics.atoms import AtomTable, match_atoms
from rnadiff.metrics.superpose import superpose


def _round(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 3) for v in values]


def per_residue_profile(model: AtomTable, reference: AtomTable,
                        lddt_per_residue: list[float | None] | None = None) -> dict:
    """{"residues": reference labels, "deviation": Å, "spread": Å (model B-factor), "lddt"}.

    Lists follow the reference's residues; None where a residue has no matched atom (deviation,
    spread) or no lDDT contact."""
    model, reference = model.heavy(), reference.heavy()
    im, ir = match_atoms(model, reference)
    n_res = reference.n_residues
    deviation = np.full(n_res, np.nan)
    spread = np.full(n_res, np.nan)
    if len(im):
        moved = superpose(model.coords[im], reference.coords[ir])
        sq = ((moved - reference.coords[ir]) ** 2).sum(1)
        res = reference.residue_index[ir]
        count = np.bincount(res, minlength=n_res)
        with np.errstate(invalid="ignore", divide="ignore"):
            deviation = np.sqrt(np.bincount(res, sq, n_res) / count)
            if model.b_factors is not None:
                spread = np.bincount(res, model.b_factors[im], n_res) / count
    out = {"residues": [reference.residue_label(r) for r in range(n_res)],
           "deviation": _round(deviation), "spread": _round(spread)}
    if lddt_per_residue is not None:
        out["lddt"] = [None if v is None else round(float(v), 4) for v in lddt_per_residue]
    return out
