"""TM-score on C1' atoms with US-align's RNA d0 and a fixed residue correspondence (docs/design.md §7).

The superposition that maximises TM is searched like TM-score/US-align do: Kabsch on seed
fragments of several lengths at every position, then iterate "superpose on the atoms within
d0_search" until the selection stops changing. Normalised by the reference length.
"""
from __future__ import annotations

import math

import numpy as np

from rnadiff.metrics.atoms import AtomTable
from rnadiff.metrics.superpose import kabsch


def d0_rna(length: int) -> float:
    """US-align's d0 for RNA: 0.6·sqrt(L − 0.5) − 2.5 for L ≥ 30, a step table below."""
    if length >= 30:
        return 0.6 * math.sqrt(length - 0.5) - 2.5
    if length <= 11:
        return 0.3
    if length <= 15:
        return 0.4
    if length <= 19:
        return 0.5
    if length <= 23:
        return 0.6
    return 0.7


def _tm_sum(d2: np.ndarray, d0: float) -> float:
    return float((1.0 / (1.0 + d2 / (d0 * d0))).sum())


def tm_score_coords(model: np.ndarray, reference: np.ndarray, length: int | None = None,
                    max_iter: int = 20) -> float:
    """TM-score of equally ordered C1' coordinates (`length` = reference length, default len)."""
    x = np.asarray(model, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    n = len(x)
    length = n if length is None else int(length)
    if n == 0 or length == 0:
        return 0.0
    d0 = d0_rna(length)
    d0_search = min(max(d0, 4.5), 8.0)
    best = 0.0
    # Seed fragment lengths L, L/2, L/4, ... down to 4 (all atoms for tiny sets).
    frag_lengths = []
    f = n
    while f >= 4:
        frag_lengths.append(f)
        f //= 2
    if not frag_lengths:
        frag_lengths = [n]
    for frag in frag_lengths:
        step = max(1, frag // 2)
        for start in range(0, n - frag + 1, step):
            sel = np.arange(start, start + frag)
            for _ in range(max_iter):
                if len(sel) < 3:
                    break
                rot, t = kabsch(x[sel], y[sel])
                d2 = (((x @ rot.T + t) - y) ** 2).sum(1)
                best = max(best, _tm_sum(d2, d0) / length)
                cut = d0_search
                new_sel = np.nonzero(d2 < cut * cut)[0]
                while len(new_sel) < 3 and cut < 50.0:  # widen like TM-score when too few
                    cut += 0.5
                    new_sel = np.nonzero(d2 < cut * cut)[0]
                if np.array_equal(new_sel, sel):
                    break
                sel = new_sel
    return best


def tm_score(model: AtomTable, reference: AtomTable, atom_name: str = "C1'") -> dict:
    """TM-score over C1' atoms matched by chain and residue number; missing residues score 0."""
    ref_mask = reference.atom_names == atom_name
    mod_mask = model.atom_names == atom_name
    ref = reference.subset(np.nonzero(ref_mask)[0])
    mod = model.subset(np.nonzero(mod_mask)[0])
    lookup = {key: i for i, key in enumerate(mod.atom_keys())}
    pairs = [(lookup[k], j) for j, k in enumerate(ref.atom_keys()) if k in lookup]
    length = len(ref)
    if not pairs:
        return {"tm_score": 0.0, "n_matched": 0, "length": length, "d0": d0_rna(max(length, 1))}
    im, ir = map(np.asarray, zip(*pairs))
    value = tm_score_coords(mod.coords[im], ref.coords[ir], length=length)
    return {"tm_score": value, "n_matched": int(len(im)), "length": length, "d0": d0_rna(length)}
