"""The ideal-nucleotide baseline of benchmarks/reconstruct.py: library nucleotides placed on the given atoms.

With >= 3 given atoms in a residue (backbone, 3-bead) the ideal residue is Kabsch-superposed onto
them. With one given atom (C1' or P) the orientation comes from a local frame of the neighbours'
given atoms (chain direction a[i+1] - a[i-1], and the bend towards a[i]); the ideal residue's mean
orientation in that frame is fitted once on training chains (never on the evaluated ones).
"""
from __future__ import annotations

import numpy as np

from rnadiff.chem.features import Features, atom_name_code, atom_name_codes
from rnadiff.geometry import kabsch

ANCHOR = {"c1": "C1'", "p": "P"}


def local_frames(anchor: np.ndarray, has: np.ndarray) -> np.ndarray:
    """[T, 3, 3] orthonormal frames (columns e1, e2, e3) from neighbouring anchors [T, 3]."""
    t = len(anchor)
    frames = np.full((t, 3, 3), np.nan)
    idx = np.nonzero(has)[0]
    for k, i in enumerate(idx):
        prev = anchor[idx[k - 1]] if k > 0 else None
        nxt = anchor[idx[k + 1]] if k + 1 < len(idx) else None
        if prev is None or nxt is None:
            continue
        e1 = nxt - prev
        e1 /= np.linalg.norm(e1) + 1e-9
        bend = anchor[i] - 0.5 * (prev + nxt)
        e2 = bend - e1 * (bend @ e1)
        if np.linalg.norm(e2) < 1e-3:
            continue
        e2 /= np.linalg.norm(e2)
        frames[i] = np.stack([e1, e2, np.cross(e1, e2)], axis=1)
    # chain ends and straight stretches: the frame of the nearest residue that has one
    ok = np.nonzero(~np.isnan(frames[:, 0, 0]))[0]
    if len(ok) == 0:
        frames[:] = np.eye(3)
        return frames
    for i in range(t):
        if np.isnan(frames[i, 0, 0]):
            frames[i] = frames[ok[np.argmin(np.abs(ok - i))]]
    return frames


def _anchor_table(record, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per token: anchor atom index (-1 if absent), position, has-flag."""
    f = record.features
    codes = atom_name_codes(f["ref_atom_name_chars"]).numpy()
    a2t = f["atom_to_token_idx"].numpy()
    present = f["atom_present_mask"].numpy() > 0
    t = int(f["restype"].shape[0])
    index = np.full(t, -1)
    sel = np.nonzero((codes == atom_name_code(ANCHOR[kind])) & present)[0]
    index[a2t[sel]] = sel
    pos = np.zeros((t, 3))
    has = index >= 0
    pos[has] = f["coords"].numpy()[index[has]]
    return index, pos, has


def fit_orientation(records, kind: str) -> np.ndarray:
    """Mean rotation Q (frame -> ideal residue orientation) over training residues: R_i ≈ F_i Q."""
    acc = np.zeros((3, 3))
    for rec in records:
        f = rec.features
        x, ref = f["coords"].numpy().astype(np.float64), f["ref_pos"].numpy().astype(np.float64)
        present = f["atom_present_mask"].numpy() > 0
        a2t = f["atom_to_token_idx"].numpy()
        _, pos, has = _anchor_table(rec, kind)
        frames = local_frames(pos, has)
        for i in np.nonzero(has)[0]:
            m = (a2t == i) & present
            if m.sum() < 5:
                continue
            rot, _ = kabsch(ref[m], x[m])
            acc += frames[i].T @ rot
    u, _, vt = np.linalg.svd(acc)
    return u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt


def baseline(features: Features, kind: str, orientation: np.ndarray | None) -> np.ndarray:
    """All-atom coordinates [N, 3] from ideal residues placed on the given atoms."""
    f = features
    x = f["coords"].numpy().astype(np.float64)
    ref = f["ref_pos"].numpy().astype(np.float64)
    given = f["atom_present_mask"].numpy() > 0
    a2t = f["atom_to_token_idx"].numpy()
    t = int(f["restype"].shape[0])
    out = np.zeros_like(x)
    if kind in ANCHOR:
        codes = atom_name_codes(f["ref_atom_name_chars"]).numpy()
        anchor_atom = np.full(t, -1)
        sel = np.nonzero((codes == atom_name_code(ANCHOR[kind])) & given)[0]
        anchor_atom[a2t[sel]] = sel
        has = anchor_atom >= 0
        pos = np.zeros((t, 3))
        pos[has] = x[anchor_atom[has]]
        frames = local_frames(pos, has)
        # residues without the anchor (the 5' residue has no P): interpolate a position
        for i in np.nonzero(~has)[0]:
            nb = np.nonzero(has)[0]
            j = nb[np.argmin(np.abs(nb - i))]
            pos[i] = pos[j] + (i - j) * 5.9 * frames[j][:, 0]
        for i in range(t):
            m = a2t == i
            rot = frames[i] @ orientation
            placed = ref[m] @ rot.T
            if has[i]:
                placed += pos[i] - placed[np.nonzero(m)[0] == anchor_atom[i]][0]
            else:
                placed += pos[i] - placed.mean(0)
            out[m] = placed
        return out
    for i in range(t):
        m = a2t == i
        g = m & given
        if g.sum() >= 3:
            rot, tr = kabsch(ref[g], x[g])
            out[m] = ref[m] @ rot.T + tr
        else:
            out[m] = ref[m] + (x[g].mean(0) if g.any() else 0.0)
        out[g] = x[g]
    return out
