"""Given atoms no experimental structure would hold: the lengths of the bonds between them.

By default `rnadiff refine` treats its input as exact and keeps every given atom where it is. That
is right for atoms taken from an experimental structure and wrong for predicted ones: their error
stays in the output, strain included (64 held-out chains, backbone atoms with 0.5 Å of noise per
axis, kept exactly: 91 clashes per 1000 atoms, 36 chirality errors per chain, canonical INF 0.29;
benchmarks/results/reconstruct_64_chains_noisy.md). Where the input gives bonded atoms
(a backbone, an all-atom model) their bond lengths tell the two apart: the median deviation from the
monomer library's lengths is at most 0.031 Å on all 555 experimental chains of ../shared/data, and
at least 0.039 Å with 0.05 Å of Gaussian noise per axis (0.37 Å at least with 0.5 Å). An exact
input above `NOISY_BOND_MEDIAN` gets a note naming `--noisy-input`, also in the error when its
samples fail the output gate (as such inputs' often do: their own bonds are stretched). A C1′ or P trace has no bonds
to read, and nothing decides it there (README, "Predicted (noisy) inputs").
"""
from __future__ import annotations

from typing import Any

import numpy as np

from rnadiff.chem.topology import build_topology

NOISY_BOND_MEDIAN = 0.1  # Å: over 3x the worst experimental chain (0.031 Å)
MIN_BONDS = 20  # fewer given bonds say too little to judge a whole input by


def given_bond_strain(layout: Any, coords: np.ndarray, given: np.ndarray) -> dict[str, Any]:
    """{"n_bonds", "median_deviation_A"} of the covalent bonds (links included) whose two atoms
    are given: |length − library length|, median (None without such bonds)."""
    topo = build_topology(layout)
    bonds = np.asarray(topo.bonds).reshape(-1, 2)
    both = given[bonds[:, 0]] & given[bonds[:, 1]]
    b = bonds[both]
    if not len(b):
        return {"n_bonds": 0, "median_deviation_A": None}
    x = np.asarray(coords, np.float64)
    dev = np.abs(np.linalg.norm(x[b[:, 0]] - x[b[:, 1]], axis=-1) - np.asarray(topo.bond_lengths)[both])
    return {"n_bonds": int(len(b)), "median_deviation_A": round(float(np.median(dev)), 4)}


def strain_hint(strain: dict[str, Any], kept_exactly: bool) -> str | None:
    """Why an exact input's output is strained and what to do, when its given bonds look predicted
    or noisy; None otherwise (or for an input whose atoms were free to move)."""
    median = strain.get("median_deviation_A")
    if not kept_exactly or median is None or strain["n_bonds"] < MIN_BONDS or median <= NOISY_BOND_MEDIAN:
        return None
    return (f"the given atoms' bond lengths are {median:.2f} Å off the library's (median over {strain['n_bonds']} "
            "bonds; experimental structures: 0.03 Å at most), so they look predicted or noisy; they are kept "
            "exactly, strain included: --noisy-input lets them move")


def strain_note(source: str, strain: dict[str, Any], kept_exactly: bool) -> str | None:
    """The stderr note for an exact input whose given bonds look predicted or noisy, or None."""
    hint = strain_hint(strain, kept_exactly)
    return None if hint is None else f"rnadiff: note: {source}: {hint}"
