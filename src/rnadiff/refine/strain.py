"""Given atoms no experimental structure would hold: the lengths of the bonds between them.

By default `rnadiff refine` treats its input as exact and keeps every given atom where it is. That
is right for atoms taken from an experimental structure and wrong for predicted ones: their error
stays in the output, strain included (64 held-out chains, backbone atoms with 0.5 Å of noise per
axis, kept exactly: 91 clashes per 1000 atoms, 36 chirality errors per chain, canonical INF 0.29;
benchmarks/results/reconstruct_64_chains_noisy.md). Where the input gives bonded atoms
(a backbone, an all-atom model) their bond lengths tell the two apart: the median deviation from the
monomer library's lengths is at most 0.031 Å on all 555 experimental chains of ../shared/data
(backbone atoms given; all atoms: 0.021 Å), and 0.07 Å or more for any of them with 0.1 Å of
Gaussian noise per axis (benchmarks/input_noise_calibration.py). An exact
input above `NOISY_BOND_MEDIAN` gets a note naming `--noisy-input`, also in the error when its
samples fail the output gate (as such inputs often do: their own bonds are stretched). A C1′ or P trace has no bonds
to read, and nothing decides it there (README, "Predicted (noisy) inputs").
"""
from __future__ import annotations

from typing import Any

import numpy as np

from rnadiff.metrics.geometry import bond_lengths

NOISY_BOND_MEDIAN = 0.1  # Å: over 3x the worst experimental chain (0.031 Å)
MIN_BONDS = 20  # fewer given bonds say too little to judge a whole input by


def given_bond_strain(features: Any) -> dict[str, Any]:
    """{"n_bonds", "median_deviation_A"} of the covalent bonds (links included) whose two atoms
    are given in `features` (`rnadiff.chem.Features` of the input): |length − library length|,
    median (None without such bonds)."""
    given = features["atom_present_mask"].numpy() > 0
    topo = features.topology().restrict(given)
    if not len(topo.bonds):
        return {"n_bonds": 0, "median_deviation_A": None}
    x = features["coords"].numpy().astype(np.float64)
    dev = np.abs(bond_lengths(x, topo.bonds) - topo.bond_lengths)
    return {"n_bonds": int(len(topo.bonds)), "median_deviation_A": round(float(np.median(dev)), 4)}


def strain_hint(strain: dict[str, Any], kept: bool) -> str | None:
    """Why an input's output is strained and what to do, when its given atoms were kept (exactly or
    within --given-tolerance) and its given bonds look predicted or noisy; None otherwise."""
    median = strain.get("median_deviation_A")
    if not kept or median is None or strain["n_bonds"] < MIN_BONDS or median <= NOISY_BOND_MEDIAN:
        return None
    return (f"the given atoms' bond lengths are {median:.2f} Å off the library's (median over {strain['n_bonds']} "
            "bonds; at most 0.03 Å on 555 experimental chains), so they look predicted or noisy; they were kept "
            "in place, strain included: --noisy-input lets them move")


def strain_note(source: str, strain: dict[str, Any], kept: bool) -> str | None:
    """The stderr note for a kept input whose given bonds look predicted or noisy, or None."""
    hint = strain_hint(strain, kept)
    return None if hint is None else f"rnadiff: note: {source}: {hint}"
