"""Per-nucleotide view of an RNA AtomTable for the interaction and backbone annotators.

`Nucleotides` indexes residues by their file label (chain, number, insertion code), knows each
residue's parent base (modified residues count as their parent) and finds atoms by name. It also
quacks like the `rnadiff.chem.AtomLayout` that `metrics.basepairs.canonical_pairs` expects
(`n_tokens`, `n_atoms`, `parents`, `atom_index`), so the canonical annotator used for training
runs unchanged on any file the metrics read.
"""
from __future__ import annotations

import numpy as np

from rnadiff.chem.vocab import parent_of, template_name_for
from rnadiff.metrics.atoms import AtomTable

ResidueKey = tuple[str, int, str]  # chain, residue number, insertion code

# Base ring atoms (both rings of a purine): their centroid and plane define the base.
RING_ATOMS = {
    "A": ("N1", "C2", "N3", "C4", "C5", "C6", "N7", "C8", "N9"),
    "G": ("N1", "C2", "N3", "C4", "C5", "C6", "N7", "C8", "N9"),
    "C": ("N1", "C2", "N3", "C4", "C5", "C6"),
    "U": ("N1", "C2", "N3", "C4", "C5", "C6"),
}


class Nucleotides:
    """Residues of an RNA AtomTable with their parents and named atoms."""

    def __init__(self, table: AtomTable):
        self.table = table
        starts = table.residue_starts()
        self.keys: list[ResidueKey] = []
        self.labels: list[str] = []
        parents: list[str] = []
        templates: list[str] = []
        self._atoms: list[dict[str, int]] = []
        for r in range(table.n_residues):
            lo, hi = int(starts[r]), int(starts[r + 1])
            self.keys.append((str(table.chain_ids[lo]), int(table.res_seqs[lo]), str(table.icodes[lo])))
            self.labels.append(table.residue_label(r))
            parents.append(parent_of(str(table.res_names[lo])) or "N")
            templates.append(template_name_for(str(table.res_names[lo])) or parents[-1])
            self._atoms.append({str(n): k for n, k in zip(table.atom_names[lo:hi], range(lo, hi))})
        self.parents = tuple(parents)
        self.template_names = tuple(templates)
        self._frames: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}

    # ---- the AtomLayout interface canonical_pairs uses ---------------------------------
    @property
    def n_tokens(self) -> int:
        return len(self.keys)

    @property
    def n_atoms(self) -> int:
        return len(self.table)

    def atom_index(self, token: int, atom_name: str) -> int | None:
        return self._atoms[token].get(atom_name)

    # ---- geometry ------------------------------------------------------------------------
    def xyz(self, token: int, atom_name: str) -> np.ndarray | None:
        k = self._atoms[token].get(atom_name)
        return None if k is None else self.table.coords[k]

    def base_frame(self, token: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(ring centroid, unit normal of the least-squares ring plane); None when the base has
        fewer than 5 ring atoms or an unknown parent. The normal's sign follows
        (N3 − N1) × (C5 − N1), as in `basepairs.oriented_normal`, so it tells the base's faces."""
        if token in self._frames:
            return self._frames[token]
        frame = None
        names = RING_ATOMS.get(self.parents[token], ())
        pts = [p for n in names if (p := self.xyz(token, n)) is not None]
        if len(pts) >= 5:
            x = np.asarray(pts)
            centre = x.mean(0)
            normal = np.linalg.svd(x - centre)[2][2]
            n1, n3, c5 = (self.xyz(token, n) for n in ("N1", "N3", "C5"))
            if n1 is not None and n3 is not None and c5 is not None:
                if float(np.dot(np.cross(n3 - n1, c5 - n1), normal)) < 0:
                    normal = -normal
            frame = (centre, normal)
        self._frames[token] = frame
        return frame
