"""Steric clashes (docs/design.md §7, MolProbity's definition on heavy atoms).

A clash is a pair of heavy atoms more than three bonds apart whose van der Waals spheres overlap
by ≥ 0.4 Å. Without explicit hydrogens a hydrogen bond between two polar atoms (N/O … N/O) looks
like an overlap (O…O at 2.6 Å overlaps Bondi radii by 0.44 Å); probe counts those pairs as H-bonds,
not clashes, so polar pairs get an allowance equal to probe's H-bond overlap tolerance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnadiff.chem.contacts import CLASH_OVERLAP, DEFAULT_RADIUS, HBOND_ALLOWANCE, contact_radii
from rnadiff.metrics.atoms import AtomTable
from rnadiff.geometry.neighbors import neighbor_pairs
from rnadiff.metrics.restraints import Restraints


@dataclass
class Clashes:
    pairs: np.ndarray     # [k, 2] atom indices into the (heavy-atom) table
    overlaps: np.ndarray  # Å
    n_atoms: int

    @property
    def count(self) -> int:
        return int(len(self.pairs))

    @property
    def per_1000_atoms(self) -> float:
        return 1000.0 * self.count / self.n_atoms if self.n_atoms else 0.0


def bonded_within(n_atoms: int, bonds: np.ndarray, depth: int = 3,
                  sources: np.ndarray | None = None) -> set[tuple[int, int]]:
    """Pairs (i < j) separated by at most `depth` bonds, searched from `sources` (default all)."""
    adj: list[list[int]] = [[] for _ in range(n_atoms)]
    for a, b in bonds.tolist():
        adj[a].append(b)
        adj[b].append(a)
    close: set[tuple[int, int]] = set()
    for start in (range(n_atoms) if sources is None else np.unique(sources).tolist()):
        frontier, seen = [start], {start}
        for _ in range(depth):
            nxt = []
            for u in frontier:
                for v in adj[u]:
                    if v not in seen:
                        seen.add(v)
                        nxt.append(v)
            frontier = nxt
        close.update((min(start, v), max(start, v)) for v in seen if v != start)
    return close


def find_clashes(table: AtomTable, restraints: Restraints, overlap: float = CLASH_OVERLAP) -> Clashes:
    """Clashing heavy-atom pairs of `table` (`restraints` built from the same table)."""
    heavy = np.nonzero(table.heavy_mask)[0]
    radii, polar_atom = contact_radii(table.elements)
    cutoff = 2 * max(radii[heavy].max(initial=DEFAULT_RADIUS), DEFAULT_RADIUS)
    i, j, d = neighbor_pairs(table.coords[heavy], cutoff, return_distances=True)
    i, j = heavy[i], heavy[j]
    polar = polar_atom[i] & polar_atom[j]
    ov = radii[i] + radii[j] - d - np.where(polar, HBOND_ALLOWANCE, 0.0)
    keep = ov >= overlap
    i, j, ov = i[keep], j[keep], ov[keep]
    if len(i):
        excluded = bonded_within(len(table), restraints.graph_bonds, 3, sources=i)
        far = np.array([(min(a, b), max(a, b)) not in excluded for a, b in zip(i.tolist(), j.tolist())],
                       dtype=bool)
        i, j, ov = i[far], j[far], ov[far]
    return Clashes(pairs=np.stack([i, j], 1) if len(i) else np.empty((0, 2), np.int64),
                   overlaps=ov, n_atoms=int(len(heavy)))
