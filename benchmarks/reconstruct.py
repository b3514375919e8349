"""All-atom reconstruction from C1'-only, P-only and backbone-only inputs: trained model vs baseline.

    python benchmarks/reconstruct.py --data ../shared/data/rna_dev.tar.gz [--checkpoint PATH]
        [--n-chains 16] [--max-length 40] [--samples 1] [--steps 50] [--json OUT]

Chains: the validation split of the dev set (held out from training by sequence, the same
`rnadiff.train.split` rule and fraction as `rnadiff train`), the shortest `--n-chains` up to
`--max-length` nt. Each native is reduced to the given atoms and rebuilt by
- model: `rnadiff.refine.refine_structure` with the checkpoint (sample 0 of `--samples`);
- baseline: ideal nucleotides of the monomer library placed on the given atoms. With >= 3 given
  atoms in a residue (backbone) the ideal residue is Kabsch-superposed onto them. With one given
  atom (C1' or P) the orientation comes from a local frame of the neighbours' given atoms
  (chain direction a[i+1] - a[i-1], and the bend towards a[i]); the ideal residue's mean
  orientation in that frame is fitted once on training chains (never on the evaluated ones).
Scores (against the native, `rnadiff.metrics.compare_structures`): all-heavy-atom RMSD after
superposition, all-atom lDDT, clashes per 1000 atoms, bond and angle outliers (> 4 esd), and
seconds per nucleotide. Prints a markdown table of means over chains.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rnadiff.chem.features import Features
from rnadiff.io import build_gemmi_structure
from rnadiff.metrics import compare_structures
from rnadiff.model.standalone_embedder import _code_of, atom_name_codes
from rnadiff.train.data import load_records, split_records
from rnadiff.train.partial import mode_mask

KINDS = {"C1' only": "c1", "P only": "p", "backbone only": "backbone"}
ANCHOR = {"c1": "C1'", "p": "P"}


# --- inputs -------------------------------------------------------------------------------------
def reduce_to(record, kind: str) -> Features:
    """The native's features with only the atoms of `kind` given (same layout as the native)."""
    f = dict(record.features)
    given = mode_mask(kind, f, torch.Generator().manual_seed(0)) & (f["atom_present_mask"] > 0)
    f["atom_present_mask"] = given.float()
    f["coords"] = torch.where(given[:, None], f["coords"], torch.zeros_like(f["coords"]))
    return Features(tensors=f, layout=record.layout, notes=[])


# --- baseline -----------------------------------------------------------------------------------
def _kabsch(mobile: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cm, ct = mobile.mean(0), target.mean(0)
    u, _, vt = np.linalg.svd((mobile - cm).T @ (target - ct))
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, ct - cm @ rot.T


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
    sel = np.nonzero((codes == _code_of(ANCHOR[kind])) & present)[0]
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
            rot, _ = _kabsch(ref[m], x[m])
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
        sel = np.nonzero((codes == _code_of(ANCHOR[kind])) & given)[0]
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
            rot, tr = _kabsch(ref[g], x[g])
            out[m] = ref[m] @ rot.T + tr
        else:
            out[m] = ref[m] + (x[g].mean(0) if g.any() else 0.0)
        out[g] = x[g]
    return out


# --- evaluation -----------------------------------------------------------------------------------
def score(record, coords: np.ndarray, seconds: float) -> dict:
    model = build_gemmi_structure(record.layout, coords)
    native = build_gemmi_structure(record.layout, record.features["coords"].numpy(),
                                   atom_mask=record.features["atom_present_mask"].numpy() > 0)
    c = compare_structures(model, native)
    return {"rmsd": c["rmsd"], "lddt": c["lddt"], "clashes_per_1000": c["model"]["clashes_per_1000_atoms"],
            "bond_outliers": c["model"]["bond_outliers"], "angle_outliers": c["model"]["angle_outliers"],
            "s_per_nt": seconds / record.n_token}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/rna_dev.tar.gz"))
    p.add_argument("--checkpoint", default=None, help="refinement checkpoint (default: the packaged one)")
    p.add_argument("--n-chains", type=int, default=16)
    p.add_argument("--max-length", type=int, default=40)
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--samples", type=int, default=1)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="refine config overrides, exactly as for `rnadiff refine` (e.g. anchoring.strength=0)")
    p.add_argument("--json", help="write per-chain results here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from rnadiff.cli.refine import settings_from
    from rnadiff.refine import load_refinement_model, refine_structure

    records, _ = load_records(a.data)
    train, val = split_records(records, a.val_fraction)
    chains = sorted((r for r in val if r.n_token <= a.max_length and r.features["atom_present_mask"].mean() > 0.95),
                    key=lambda r: (r.n_token, r.name))[: a.n_chains]
    model, source = load_refinement_model(a.checkpoint)
    settings = settings_from(a, list(a.overrides))  # the settings `rnadiff refine` would use
    orient = {k: fit_orientation(train[:80], k) for k in ("c1", "p")}
    print(f"{len(chains)} held-out chains ({min(r.n_token for r in chains)}-{max(r.n_token for r in chains)} nt), "
          f"checkpoint {source}", file=sys.stderr)
    results: dict[tuple[str, str], list[dict]] = {}
    per_chain = []
    for r in chains:
        for label, kind in KINDS.items():
            feats = reduce_to(r, kind)
            t0 = time.perf_counter()
            base = baseline(feats, kind, orient.get(kind))
            results.setdefault((label, "baseline"), []).append(score(r, base, time.perf_counter() - t0))
            t0 = time.perf_counter()
            res = refine_structure(feats, model, settings)
            results.setdefault((label, "model"), []).append(score(r, res.samples[0], time.perf_counter() - t0))
            per_chain.append({"chain": r.name, "n": r.n_token, "input": label,
                              "baseline": results[(label, "baseline")][-1], "model": results[(label, "model")][-1]})
        print(f"  {r.name} ({r.n_token} nt) done", file=sys.stderr)
    cols = ("rmsd", "lddt", "clashes_per_1000", "bond_outliers", "angle_outliers", "s_per_nt")
    print("| input | method | heavy-atom RMSD (Å) | lDDT | clashes/1000 atoms | bond outliers | angle outliers | s/nt |")
    print("|---|---|---|---|---|---|---|---|")
    for (label, method), rows in results.items():
        means = [np.mean([row[c] for row in rows]) for c in cols]
        print(f"| {label} | {method} | {means[0]:.2f} | {means[1]:.3f} | {means[2]:.1f} | {means[3]:.1f} | "
              f"{means[4]:.1f} | {means[5]:.4f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"checkpoint": source, "chains": per_chain}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
