"""Geometry restraints of a whole structure over its global atom indices.

`build_topology(layout)` expands every residue template onto the layout's atoms and adds the
O3'(i)-P(i+1) links (bond + 4 angles) between consecutive residues of a chain, except across a
chain break (`layout.chain_break_before`). Terms that would need an atom the layout lacks (OP3 of
an internal residue, P of a 5' residue without phosphate) are left out. `Topology.restrict(mask)`
keeps the terms whose atoms are all present (e.g. the atoms given in an input).

Shapes: bonds int64 [nb, 2], bond_lengths/bond_esds float32 [nb] (Å), bond_is_link bool [nb];
angles int64 [na, 3] (vertex in the middle), angle_values/angle_esds float32 [na] (degrees);
chirals int64 [nc, 4] (centre, a, b, c), chiral_signs int8 [nc] (sign of (a-c)·((b-c)×(d-c)));
planes: tuple of int64 [k] arrays with plane_esds float32 [k] (Å).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from rnadiff.chem.layout import AtomLayout
from rnadiff.chem.library import LINK_ANGLES, LINK_BOND_ESD, LINK_BOND_LENGTH, POLYMER_ANGLE_OVERRIDES, get_template


@dataclass(frozen=True, eq=False)
class Topology:
    n_atoms: int
    bonds: np.ndarray
    bond_lengths: np.ndarray
    bond_esds: np.ndarray
    bond_is_link: np.ndarray
    angles: np.ndarray
    angle_values: np.ndarray
    angle_esds: np.ndarray
    chirals: np.ndarray
    chiral_signs: np.ndarray
    planes: tuple[np.ndarray, ...]
    plane_esds: tuple[np.ndarray, ...]

    def restrict(self, atom_mask: np.ndarray, reindex: bool = False) -> "Topology":
        """Keep the terms whose atoms all have `atom_mask` set ([n_atoms] bool).

        reindex=False keeps global indices (n_atoms unchanged); reindex=True renumbers onto the
        kept atoms in order (n_atoms = atom_mask.sum()), for arrays holding only those atoms.
        """
        m = np.asarray(atom_mask, bool)
        if m.shape != (self.n_atoms,):
            raise ValueError(f"atom_mask has shape {m.shape}, expected ({self.n_atoms},)")
        new_index = np.cumsum(m) - 1
        remap = (lambda a: new_index[a]) if reindex else (lambda a: a)

        def ok(rows: np.ndarray) -> np.ndarray:
            return m[rows].all(axis=1) if len(rows) else np.zeros(0, bool)

        kb, ka, kc = ok(self.bonds), ok(self.angles), ok(self.chirals)
        planes, plane_esds = [], []
        for p, e in zip(self.planes, self.plane_esds):
            keep = m[p]
            if keep.sum() >= 4:  # a plane restraint needs at least 4 atoms
                planes.append(remap(p[keep]))
                plane_esds.append(e[keep])
        return Topology(
            n_atoms=int(m.sum()) if reindex else self.n_atoms,
            bonds=remap(self.bonds[kb]), bond_lengths=self.bond_lengths[kb], bond_esds=self.bond_esds[kb],
            bond_is_link=self.bond_is_link[kb],
            angles=remap(self.angles[ka]), angle_values=self.angle_values[ka], angle_esds=self.angle_esds[ka],
            chirals=remap(self.chirals[kc]), chiral_signs=self.chiral_signs[kc],
            planes=tuple(planes), plane_esds=tuple(plane_esds),
        )

    def padded_planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Planes as padded arrays for vectorised losses: index int64 [np, kmax] (padding 0),
        mask bool [np, kmax], esd float32 [np, kmax] (padding 1)."""
        k = max((len(p) for p in self.planes), default=0)
        idx = np.zeros((len(self.planes), k), np.int64)
        mask = np.zeros((len(self.planes), k), bool)
        esd = np.ones((len(self.planes), k), np.float32)
        for i, (p, e) in enumerate(zip(self.planes, self.plane_esds)):
            idx[i, : len(p)], mask[i, : len(p)], esd[i, : len(p)] = p, True, e
        return idx, mask, esd

    def bonded_pairs(self, max_separation: int = 3) -> np.ndarray:
        """int64 [n, 2] pairs (i < j) at most `max_separation` bonds apart (for clash exclusion),
        sorted. Paths of the bond graph as sparse matrix powers: the guidance and the polish both
        need this per structure, and a Python breadth-first search cost 0.06 s at 159 nt."""
        n = self.n_atoms
        a, b = self.bonds[:, 0], self.bonds[:, 1]
        ones = np.ones(2 * len(a), np.int64)
        adjacency = sparse.csr_matrix((ones, (np.r_[a, b], np.r_[b, a])), shape=(n, n))
        reach, step = adjacency.copy(), adjacency
        for _ in range(max_separation - 1):
            step = step @ adjacency
            step.data[:] = 1  # only whether a path exists matters; keep the counts from growing
            reach = reach + step
        upper = sparse.triu(reach, k=1).tocsr()
        upper.sort_indices()
        rows = np.repeat(np.arange(n), np.diff(upper.indptr))
        return np.stack([rows, upper.indices], axis=1).astype(np.int64).reshape(-1, 2)


def _template_index_table(layout: AtomLayout) -> np.ndarray:
    """int64 [N_tok, max_template_atoms]: global atom index of template atom k of token t, -1 if
    the token's layout lacks it."""
    width = max((get_template(n).n_atoms for n in set(layout.template_names)), default=0)
    table = -np.ones((layout.n_tokens, width), np.int64)
    table[layout.atom_to_token, layout.template_atom_idx] = np.arange(layout.n_atoms)
    return table


def _named_atom(layout: AtomLayout, table: np.ndarray, name: str) -> np.ndarray:
    """int64 [N_tok]: global index of atom `name` in each token, -1 when absent."""
    col = np.array([get_template(t).index.get(name, -1) for t in layout.template_names], np.int64)
    out = np.where(col >= 0, table[np.arange(layout.n_tokens), np.maximum(col, 0)], -1)
    return out


def _template_terms(layout: AtomLayout, table: np.ndarray) -> tuple[dict[str, list], list, list]:
    """Per-residue bonds ("b", lengths "bl", esds "be"), angles ("a", "av", "ae"), chirals ("c",
    signs "cs") and planes of every template kind, in global atom indices."""
    names = np.array(layout.template_names, dtype=object)
    parts: dict[str, list] = {k: [] for k in ("b", "bl", "be", "a", "av", "ae", "c", "cs")}
    planes: list[np.ndarray] = []
    plane_esds: list[np.ndarray] = []
    for tname in sorted(set(layout.template_names)):
        t = get_template(tname)
        g = table[names == tname][:, : t.n_atoms]  # [nT, n_template]
        for rows, vals, keys in (
            (t.bonds, (t.bond_lengths, t.bond_esds), ("b", "bl", "be")),
            (t.angles, (t.angle_values, t.angle_esds), ("a", "av", "ae")),
            (t.chirals, (t.chiral_signs,), ("c", "cs")),
        ):
            if not len(rows):
                continue
            glob = g[:, rows]  # [nT, n_terms, k]
            keep = (glob >= 0).all(-1)
            parts[keys[0]].append(glob[keep])
            for key, v in zip(keys[1:], vals):
                parts[key].append(np.broadcast_to(v, keep.shape)[keep])
        for p, e in zip(t.planes, t.plane_esds):
            for row in g[:, p]:
                ok = row >= 0
                if ok.sum() >= 4:
                    planes.append(row[ok])
                    plane_esds.append(e[ok])
    return parts, planes, plane_esds


def _link_terms(layout: AtomLayout, table: np.ndarray) -> tuple[np.ndarray, list, list, list, np.ndarray]:
    """O3'(i)–P(i+1) bonds within chains (none across a break), the angles around them, and the
    linked P atoms: (bonds [n, 2], angle triples, values, esds, linked P indices)."""
    linked = np.zeros(layout.n_tokens, bool)
    if layout.n_tokens > 1:
        linked[1:] = (layout.asym_id[1:] == layout.asym_id[:-1]) & ~layout.chain_break_before[1:]
    o3 = _named_atom(layout, table, "O3'")
    p = _named_atom(layout, table, "P")
    nxt = np.nonzero(linked)[0]  # token i+1 linked to i
    prev = nxt - 1
    ok = (o3[prev] >= 0) & (p[nxt] >= 0)
    link_bonds = np.stack([o3[prev][ok], p[nxt][ok]], -1)
    angles, values, esds = [], [], []
    for (n1, o1), (n2, o2), (n3, o3_), value, esd in LINK_ANGLES:
        cols = [_named_atom(layout, table, n)[np.where(o == 0, prev, nxt)] for n, o in ((n1, o1), (n2, o2), (n3, o3_))]
        tri = np.stack(cols, -1)
        good = (tri >= 0).all(-1)
        angles.append(tri[good])
        values.append(np.full(good.sum(), value, np.float32))
        esds.append(np.full(good.sum(), esd, np.float32))
    return link_bonds, angles, values, esds, p[nxt][ok]


def build_topology(layout: AtomLayout) -> Topology:
    """All restraints of a layout: per-residue template terms plus O3'-P links within chains."""
    table = _template_index_table(layout)
    parts, planes, plane_esds = _template_terms(layout, table)
    link_bonds, link_angles, link_vals, link_esds, linked_p = _link_terms(layout, table)
    _linked_phosphate_angles(parts, layout, table, linked_p)

    def cat(key: str, width: int | None, dtype, extra: list | None = None) -> np.ndarray:
        arrs = parts[key] + (extra or [])
        if not arrs:
            return np.zeros((0, width) if width else (0,), dtype)
        return np.concatenate(arrs).astype(dtype)

    n_intra = sum(len(x) for x in parts["b"])
    return Topology(
        n_atoms=layout.n_atoms,
        bonds=cat("b", 2, np.int64, [link_bonds]),
        bond_lengths=cat("bl", None, np.float32, [np.full(len(link_bonds), LINK_BOND_LENGTH, np.float32)]),
        bond_esds=cat("be", None, np.float32, [np.full(len(link_bonds), LINK_BOND_ESD, np.float32)]),
        bond_is_link=np.concatenate([np.zeros(n_intra, bool), np.ones(len(link_bonds), bool)]),
        angles=cat("a", 3, np.int64, link_angles),
        angle_values=cat("av", None, np.float32, link_vals),
        angle_esds=cat("ae", None, np.float32, link_esds),
        chirals=cat("c", 4, np.int64),
        chiral_signs=cat("cs", None, np.int8),
        planes=tuple(planes),
        plane_esds=tuple(plane_esds),
    )


def _linked_phosphate_angles(parts: dict[str, list], layout: AtomLayout, table: np.ndarray,
                             linked_p: np.ndarray) -> None:
    """In-chain targets for the free-phosphate angles of residues whose P is linked (in place)."""
    if not len(linked_p) or not parts["a"]:
        return
    inside = np.zeros(layout.n_atoms, bool)
    inside[linked_p] = True
    for (n1, n2, n3), (value, esd) in POLYMER_ANGLE_OVERRIDES.items():
        a1, a2, a3 = (_named_atom(layout, table, n) for n in (n1, n2, n3))
        for rows, vals, esds in zip(parts["a"], parts["av"], parts["ae"]):
            hit = inside[rows[:, 1]] & np.isin(rows[:, 0], a1) & np.isin(rows[:, 1], a2) & np.isin(rows[:, 2], a3)
            vals[hit], esds[hit] = value, esd


__all__ = ["Topology", "build_topology"]
