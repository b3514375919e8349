"""Physical sanity of coordinates that did parse: refuse what no RNA can look like.

Refused (InputError naming the file and the residue):
- non-finite coordinates, or |x| above `MAX_ABS_COORDINATE`;
- two atoms of one residue farther apart than the residue's covalent graph allows: the sum of the
  ideal bond lengths along the shortest bonded path between them (an upper bound over every
  conformation), stretched by `SPAN_STRETCH` plus `SPAN_SLACK` Å so noisy models still pass;
- a residue more than `FAR_STEP` Å from both of its neighbours in the chain (a corrupt coordinate,
  e.g. a C1' trace with every other atom at 9999 Å);
- a chain whose consecutive residues are more than `FAR_STEP` Å apart for at least half of its
  steps (wrong units or scrambled coordinates), or less than `COLLAPSED_STEP` Å apart for at
  least half of them (every atom at the origin: a submission's placeholder for a failed model);
A numbering gap widens the allowance by `MAX_SPAN_PER_RESIDUE` per unmodelled residue, so two
fragments of one chain far apart in a large assembly stay readable.
Survivable per-residue problems (a stretched link, a missing atom) are not refused here: the
reader notes chain breaks and missing atoms are completed downstream.

Measured on all 966 dev/extra files (`/tmp/data/rna_{dev,extra}`): the widest residue spans 12.8 Å;
the worst excess over the plain bonded-path bound is a deposited cytidine (5L4O A67) whose ring
atoms N1 and C6 are 5.8 Å apart (bound 1.37 Å x 1.5 + 6 = 8.1 Å); the largest consecutive step is
34 Å, the largest distance of a residue to its nearer neighbour 10.9 Å. None is refused.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import shortest_path

from rnadiff.chem.library import get_template
from rnadiff.errors import InputError

# Larger than any real assembly (PDB's own format stops at 9999.999 Å); beyond it a file is broken,
# and numerical steps downstream (SVD, L-BFGS) fail rather than report.
MAX_ABS_COORDINATE = 1.0e4
SPAN_STRETCH = 1.5
SPAN_SLACK = 6.0
# A nucleotide step is 5-7 Å (C1'-C1', P-P); real breaks in the dev set stay below 35 Å.
FAR_STEP = 100.0
# Consecutive nucleotides closer than this are not a structure (real chains: 7% of steps at most
# below 2 Å, in two deposited chains of 3ZC0).
COLLAPSED_STEP = 1.0
# The longest step one nucleotide can add (C1'-C1' or P-P of a stretched strand: <= 7.5 Å).
MAX_SPAN_PER_RESIDUE = 7.5


@lru_cache(maxsize=None)
def span_bounds(template_name: str) -> np.ndarray:
    """float64 [n, n]: the largest distance any two atoms of this template may be apart."""
    t = get_template(template_name)
    n = t.n_atoms
    graph = coo_matrix((t.bond_lengths.astype(np.float64), (t.bonds[:, 0], t.bonds[:, 1])), shape=(n, n))
    paths = shortest_path(graph, directed=False)
    # Atoms the template does not connect (none in the library today) are not bounded.
    return np.where(np.isfinite(paths), paths * SPAN_STRETCH + SPAN_SLACK, np.inf)


def check_residue_coordinates(residue, path: str | Path | None) -> None:
    """Finite, not absurd, and no two atoms farther apart than the residue's bonds allow."""
    coords = residue.coords
    if not np.isfinite(coords).all():
        raise InputError(f"non-finite (NaN/inf) coordinates in residue {residue.label()}", path)
    if coords.size and np.abs(coords).max() > MAX_ABS_COORDINATE:
        raise InputError(f"absurd coordinates (|x| > {MAX_ABS_COORDINATE:g} Å) in residue {residue.label()}", path)
    if len(coords) < 2:
        return
    diff = coords[:, None, :] - coords[None, :, :]
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    excess = dist - _bounds_for(residue.template_name, residue.atom_names)
    if excess.max() > 0:
        i, j = np.unravel_index(np.argmax(excess), excess.shape)
        raise InputError(
            f"atoms {residue.atom_names[i]} and {residue.atom_names[j]} of residue {residue.label()} are "
            f"{dist[i, j]:.1f} Å apart, more than its bonds allow; corrupt coordinates", path)


@lru_cache(maxsize=4096)
def _bounds_for(template_name: str, atom_names: tuple[str, ...]) -> np.ndarray:
    """span_bounds restricted to the atoms present (cached: most residues of a file share a set)."""
    idx = get_template(template_name).indices(atom_names)
    return span_bounds(template_name)[np.ix_(idx, idx)]


def _anchor(residue) -> np.ndarray:
    """One point per residue: C1' if given, else P, else the centre of what is given."""
    for name in ("C1'", "P"):
        xyz = residue.coord(name)
        if xyz is not None:
            return xyz
    return residue.coords.mean(axis=0)


def check_chain_steps(chain, path: str | Path | None) -> None:
    """Refuse a residue far from both neighbours, or a chain that is far apart everywhere."""
    residues = chain.residues
    if len(residues) < 2:
        return
    anchors = np.array([_anchor(r) for r in residues])
    steps = np.linalg.norm(np.diff(anchors, axis=0), axis=1)
    # Unmodelled residues between two given ones (a numbering gap) may span MAX_SPAN_PER_RESIDUE each.
    missing = np.maximum(np.diff([r.seq_num for r in residues]) - 1, 0)
    far = steps > FAR_STEP + MAX_SPAN_PER_RESIDUE * missing
    if far.sum() * 2 >= len(steps):
        k = int(np.argmax(steps))
        raise InputError(
            f"chain {chain.id}: {int(far.sum())} of {len(steps)} consecutive residues are more than "
            f"{FAR_STEP:g} Å apart (e.g. {residues[k].label()} to {residues[k + 1].label()}: {steps[k]:.0f} Å); "
            "corrupt coordinates or wrong units", path)
    close = steps < COLLAPSED_STEP
    if close.sum() * 2 >= len(steps):
        raise InputError(
            f"chain {chain.id}: {int(close.sum())} of {len(steps)} consecutive residues are less than "
            f"{COLLAPSED_STEP:g} Å apart; collapsed coordinates (placeholder zeros?)", path)
    isolated = np.flatnonzero(far[:-1] & far[1:])
    if isolated.size:
        k = int(isolated[0]) + 1
        raise InputError(
            f"residue {residues[k].label()} is {min(steps[k - 1], steps[k]):.0f} Å from both of its neighbours; "
            "corrupt coordinates", path)


def check_structure(structure, path: str | Path | None = None) -> None:
    """Every residue and chain of an `RNAStructure` (see the module docstring)."""
    for chain in structure.chains:
        for residue in chain.residues:
            check_residue_coordinates(residue, path)
        check_chain_steps(chain, path)
