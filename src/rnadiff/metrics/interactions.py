"""Base–base interactions of all families: base pairs with their Leontis–Westhof class, and stacking.

Geometric rules (the scheme of MC-Annotate/RNApolis, with stricter H-bond distances):

* **H-bond**: a donor and an acceptor of two different residues' bases (the 2′-OH counts, for the
  sugar edge) within `HBOND_POLAR_MAX` Å (N/O donors) or `HBOND_CH_MAX` Å (C–H donors: C2 of A,
  C8 of purines, C5/C6 of pyrimidines), with the donor–acceptor vector within 40° of both base
  planes (so stacked neighbours do not count).
* **Base pair**: each H-bond votes for the edges its two atoms belong to (Watson–Crick, Hoogsteen,
  Sugar; an atom on two edges votes for both). A residue pair is paired on the edge combination
  with at least two votes, at least one of them from an N/O donor; each edge of a residue serves
  one pair, more votes first. Cis/trans from the torsion C1′–N9/N1–N9/N1–C1′ (|τ| < 90° is cis).
* **Stacking**: base centroids within `STACK_MAX_DISTANCE` Å, base planes within
  `STACK_MAX_NORMAL_ANGLE`°, and the centroid–centroid vector within `STACK_MAX_OFFSET_ANGLE`° of
  a base normal (the rings overlap rather than sit side by side).

Agreement with RNApolis 0.11.5 on dev chains is measured by `benchmarks/annotation_agreement.py`
and guarded by `tests/test_metrics_interactions.py` (a committed RNApolis annotation).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from rnadiff.chem.vocab import GLYCOSIDIC_N
from rnadiff.geometry.dihedral import dihedral
from rnadiff.metrics.nucleotides import Nucleotides

HBOND_POLAR_MAX = 3.5  # Å, N/O donor to acceptor
HBOND_CH_MAX = 3.8     # Å, C–H donor to acceptor
HBOND_MAX_TILT = 40.0  # degrees of the donor–acceptor vector out of each base plane
STACK_MAX_DISTANCE = 5.5
STACK_MAX_NORMAL_ANGLE = 35.0
STACK_MAX_OFFSET_ANGLE = 45.0

# Per parent: atom -> (donor?, acceptor?, edges). Edges: W(atson–Crick), H(oogsteen), S(ugar).
_SITES: dict[str, dict[str, tuple[bool, bool, str]]] = {
    "A": {"N1": (False, True, "W"), "C2": (True, False, "WS"), "N3": (False, True, "S"),
          "N6": (True, False, "WH"), "N7": (False, True, "H"), "C8": (True, False, "H"),
          "O2'": (True, True, "S")},
    "G": {"N1": (True, False, "W"), "N2": (True, False, "WS"), "N3": (False, True, "S"),
          "O6": (False, True, "WH"), "N7": (False, True, "H"), "C8": (True, False, "H"),
          "O2'": (True, True, "S")},
    "C": {"O2": (False, True, "WS"), "N3": (False, True, "W"), "N4": (True, False, "WH"),
          "C5": (True, False, "H"), "C6": (True, False, "H"), "O2'": (True, True, "S")},
    "U": {"O2": (False, True, "WS"), "N3": (True, False, "W"), "O4": (False, True, "WH"),
          "C5": (True, False, "H"), "C6": (True, False, "H"), "O2'": (True, True, "S")},
}


@dataclass(frozen=True)
class Pair:
    i: int  # residue index, i < j
    j: int
    lw: str  # Leontis–Westhof class, e.g. "cWW", "tHS" (edge of i first)
    n_hbonds: int


@dataclass(frozen=True)
class HBond:
    i: int
    j: int
    atom_i: str
    atom_j: str
    distance: float
    polar_donor: bool


def _sites(nts: Nucleotides):
    """Arrays of every H-bond site: coordinates, residue, atom name."""
    xyz, res, names = [], [], []
    for t, parent in enumerate(nts.parents):
        if nts.base_frame(t) is None:
            continue
        for name in _SITES.get(parent, {}):
            if (p := nts.xyz(t, name)) is not None:
                xyz.append(p), res.append(t), names.append(name)
    return np.asarray(xyz).reshape(-1, 3), np.asarray(res, np.int64), names


def find_hbonds(nts: Nucleotides) -> list[HBond]:
    """Base H-bonds between residues (see the module docstring)."""
    xyz, res, names = _sites(nts)
    if len(xyz) < 2:
        return []
    max_tilt_cos = np.sin(np.radians(HBOND_MAX_TILT))  # |cos(angle to normal)| bound
    out = []
    for a, b in sorted(cKDTree(xyz).query_pairs(HBOND_CH_MAX)):
        ti, tj = int(res[a]), int(res[b])
        if ti == tj or names[a] == names[b] == "O2'":
            continue
        if ti > tj:
            a, b, ti, tj = b, a, tj, ti
        sa, sb = _SITES[nts.parents[ti]][names[a]], _SITES[nts.parents[tj]][names[b]]
        donors = ([names[a]] if sa[0] and sb[1] else []) + ([names[b]] if sb[0] and sa[1] else [])
        if not donors:
            continue
        polar = any(not name.startswith("C") for name in donors)
        v = xyz[b] - xyz[a]
        d = float(np.linalg.norm(v))
        if d > (HBOND_POLAR_MAX if polar else HBOND_CH_MAX):
            continue
        u = v / d
        if any(abs(float(np.dot(u, nts.base_frame(t)[1]))) > max_tilt_cos for t in (ti, tj)):
            continue
        out.append(HBond(ti, tj, names[a], names[b], d, polar))
    return out


def cis_or_trans(nts: Nucleotides, i: int, j: int) -> str | None:
    """'c' or 't' from the torsion C1′(i)–N(i)–N(j)–C1′(j) of the glycosidic nitrogens."""
    pts = [nts.xyz(i, "C1'"), nts.xyz(i, GLYCOSIDIC_N.get(nts.parents[i], "")),
           nts.xyz(j, GLYCOSIDIC_N.get(nts.parents[j], "")), nts.xyz(j, "C1'")]
    if any(p is None for p in pts):
        return None
    return "c" if abs(dihedral(*pts)) < 90.0 else "t"


def find_base_pairs(nts: Nucleotides) -> list[Pair]:
    """All base pairs with their Leontis–Westhof class, sorted by (i, j); one per residue pair."""
    votes: dict[tuple[int, int, str, str], list[HBond]] = defaultdict(list)
    for hb in find_hbonds(nts):
        for ei in _SITES[nts.parents[hb.i]][hb.atom_i][2]:
            for ej in _SITES[nts.parents[hb.j]][hb.atom_j][2]:
                votes[(hb.i, hb.j, ei, ej)].append(hb)
    ranked = sorted(votes.items(), key=lambda kv: (-len(kv[1]), np.mean([h.distance for h in kv[1]])))
    used_edges: set[tuple[int, str]] = set()
    paired: set[tuple[int, int]] = set()
    pairs = []
    for (i, j, ei, ej), hbs in ranked:
        if len(hbs) < 2 or not any(h.polar_donor for h in hbs):
            continue
        if (i, ei) in used_edges or (j, ej) in used_edges or (i, j) in paired:
            continue
        ct = cis_or_trans(nts, i, j)
        if ct is None:
            continue
        used_edges.update({(i, ei), (j, ej)})
        paired.add((i, j))
        pairs.append(Pair(i, j, f"{ct}{ei}{ej}", len(hbs)))
    return sorted(pairs, key=lambda p: (p.i, p.j))


def find_stacking(nts: Nucleotides) -> list[tuple[int, int]]:
    """Stacked residue pairs (i < j), sorted."""
    tokens = [t for t in range(nts.n_tokens) if nts.base_frame(t) is not None]
    if len(tokens) < 2:
        return []
    centres = np.asarray([nts.base_frame(t)[0] for t in tokens])
    normals = np.asarray([nts.base_frame(t)[1] for t in tokens])
    cos_planes = np.cos(np.radians(STACK_MAX_NORMAL_ANGLE))
    cos_offset = np.cos(np.radians(STACK_MAX_OFFSET_ANGLE))
    out = []
    for a, b in cKDTree(centres).query_pairs(STACK_MAX_DISTANCE):
        if abs(float(np.dot(normals[a], normals[b]))) < cos_planes:
            continue
        v = centres[b] - centres[a]
        v = v / max(float(np.linalg.norm(v)), 1e-12)
        if max(abs(float(np.dot(v, normals[a]))), abs(float(np.dot(v, normals[b])))) < cos_offset:
            continue
        out.append((min(tokens[a], tokens[b]), max(tokens[a], tokens[b])))
    return sorted(out)
