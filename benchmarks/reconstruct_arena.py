"""Arena (pylelab/Arena, C++) on the held-out reconstruction benchmark of benchmarks/reconstruct.py.

Arena as run here: pylelab/Arena commit 5d57cded5aa6c30410019b28ff8d6a7551fecd79 (2023-07-20),
built with `g++ -O3 -o Arena Arena.cpp` (g++ 12.2.0, Debian 12; the repository's Makefile uses
clang++ -O3, same flags), run as `Arena input.pdb output.pdb 5` (option 5, its default full
reconstruction: fills every residue that has at least one atom, then refines bond lengths, base
conformation and clashes; its README says input atoms are not moved, yet on 3-bead inputs it moved
16 given P atoms of the 40 chains (11 of them a chain's first P), by up to 1.1 Å: the given-atom
deviation column shows it; no other given atom of any kind moved. On all 64 held-out chains
(`--n-chains 64`, session 7) it moved given atoms of 21 3-bead inputs, by up to 1.9 Å, and of one
backbone input, 0.29 Å). Arena is not part
of rnadiff; build it yourself and pass the binary with --arena.

    python benchmarks/reconstruct_arena.py --arena /path/to/Arena [--data ...] [--n-chains 40]
        [--kinds c1 p three_bead backbone] [--shard 1/2] --json arena.json [--markdown arena.md]
    python benchmarks/reconstruct.py --merge results.json arena.json --markdown table.md

Same chains (`select_chains`), same reduced inputs (`reduce_to`) and same scores (`score`) as
benchmarks/reconstruct.py; rows carry an "arena" entry and merge with that script's results by
(chain, input). Each reduced input is written as a PDB with the native's residue names, chain id and
numbering and only the given atoms (`rnadiff.io.write_structure`); Arena's output is read with
`rnadiff.io.read_structure` and mapped onto the native's atom layout by (residue number and
insertion code -> residue index, atom name). Seconds: wall time of the Arena process, start included.

Atoms Arena does not output. Arena knows only A/C/G/U and reads only ATOM records: modified
residues (written as HETATM, as in the native) are dropped by it, and so are residues without any
given atom (the 5' residue of a P-only input) and atoms outside its ideal nucleotides (OP3, C5M).
`score` needs every atom of the layout, so these atoms take the coordinates of the ideal-nucleotide
baseline of reconstruct.py (placed on the same input) — the baseline, not the native, so no
information is leaked. Each row counts them: "n_fallback_atoms" / "n_fallback_residues" (native
atoms / residues Arena left out) next to "n_atoms" (native atoms scored).
An input kind Arena cannot take would be recorded as {"unsupported": "..."} (not scored), and a
chain on which Arena fails as {"failed": "..."} (not scored, but listed); both count in the note
under the table, never dropped silently.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rnadiff.io import read_structure, write_structure
from rnadiff.train.split import is_validation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reconstruct import DEFAULT_DATA, KINDS, held_out_chains, reduce_to, report, score, table  # noqa: E402
from reconstruct_baseline import baseline  # noqa: E402

ARENA_COMMIT = "5d57cded5aa6c30410019b28ff8d6a7551fecd79"
HEADING = f"pylelab/Arena {ARENA_COMMIT[:7]}, g++ -O3, option 5"
# Input kinds Arena takes: option 5 fills any residue with at least one heavy atom, so all four.
UNSUPPORTED: dict[str, str] = {}


def run_arena(arena: Path, record, feats, tmp: Path, timeout: float) -> tuple[dict[tuple[int, str], np.ndarray], float]:
    """Arena's output atoms {(residue index, atom name): xyz} and the process's wall seconds."""
    layout = record.layout
    given = feats["atom_present_mask"].numpy() > 0
    inp, out = tmp / "input.pdb", tmp / "arena.pdb"
    out.unlink(missing_ok=True)
    write_structure(inp, layout, feats["coords"].numpy(), atom_mask=given)
    t0 = time.perf_counter()
    proc = subprocess.run([str(arena), str(inp), str(out), "5"], capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
        raise RuntimeError(f"Arena exit {proc.returncode}, output {'missing' if not out.exists() else 'empty'}: "
                           + " | ".join(tail))
    index = {}
    for t in range(layout.n_tokens):
        key = (layout.chain_ids[t], int(layout.res_nums[t]), layout.ins_codes[t] or "")
        if key in index:
            raise RuntimeError(f"native numbering not unique at {key}")
        index[key] = t
    atoms = {}
    for res in read_structure(out).residues:
        t = index.get((res.chain_id, res.seq_num, res.ins_code or ""))
        if t is None:
            raise RuntimeError(f"Arena output residue {res.label()} is not in the native")
        for name, xyz in zip(res.atom_names, res.coords):
            atoms[(t, name)] = xyz
    return atoms, seconds


def arena_coords(record, atoms: dict, fallback: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Layout coordinates: Arena's where it output the atom, the baseline's elsewhere; and the counts
    of native atoms / residues that took the fallback."""
    layout = record.layout
    present = record.features["atom_present_mask"].numpy() > 0
    a2t = np.asarray(layout.atom_to_token)
    coords = fallback.copy()
    took = np.zeros(len(coords), bool)
    for i, name in enumerate(layout.atom_names):
        xyz = atoms.get((int(a2t[i]), name))
        if xyz is None:
            took[i] = True
        else:
            coords[i] = xyz
    missing = took & present
    seen = {t for t, _ in atoms}
    res_missing = [t for t in range(layout.n_tokens) if t not in seen and present[a2t == t].any()]
    return coords, int(missing.sum()), len(res_missing)


def run(a) -> dict:
    chains, from_first, orient = held_out_chains(a.data, a.n_chains, a.shard)
    arena = Path(a.arena).resolve()
    print(f"{len(chains)} held-out chains, Arena {arena}", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for r in chains:
            present = r.features["atom_present_mask"].numpy() > 0
            for kind in a.kinds:
                row = {"chain": r.name, "n": r.n_token, "input": kind,
                       "seen_by_v1": id(r) in from_first and not is_validation(r.seq_md5, 0.15)}
                rows.append(row)
                if kind in UNSUPPORTED:
                    row["arena"] = {"unsupported": UNSUPPORTED[kind]}
                    continue
                feats = reduce_to(r, kind, a.noise)
                try:
                    atoms, seconds = run_arena(arena, r, feats, tmp, a.timeout)
                except Exception as e:  # noqa: BLE001 - any failure is a result to record
                    row["arena"] = {"failed": f"{type(e).__name__}: {e}"}
                    print(f"  {r.name} {kind}: Arena failed: {e}", file=sys.stderr, flush=True)
                    continue
                fallback = baseline(feats, kind, orient.get(kind))
                coords, n_fb, n_fb_res = arena_coords(r, atoms, fallback)
                row["arena"] = {**score(r, feats, coords, seconds), "n_atoms": int(present.sum()),
                                "n_fallback_atoms": n_fb, "n_fallback_residues": n_fb_res}
            print(f"  {r.name} ({r.n_token} nt) done", file=sys.stderr, flush=True)
    return {"checkpoints": {"arena": HEADING}, "overrides": [], "noise": a.noise, "rows": rows}


def notes(rows: list[dict]) -> str:
    out = [f"Arena: {HEADING}; the ideal-nucleotide baseline stands in for atoms Arena did not output.", ""]
    for kind, label in KINDS.items():
        sel = [r["arena"] for r in rows if r["input"] == kind and "arena" in r]
        if not sel:
            continue
        scored = [s for s in sel if "rmsd" in s]
        failed = [s for s in sel if "failed" in s]
        unsup = [s for s in sel if "unsupported" in s]
        fb = sum(s["n_fallback_atoms"] for s in scored)
        tot = sum(s["n_atoms"] for s in scored)
        out.append(f"- {label}: {len(scored)} scored, {len(failed)} failed, {len(unsup)} unsupported; "
                   f"{fb} of {tot} native atoms ({100 * fb / max(tot, 1):.2f}%) not output by Arena, "
                   f"baseline coordinates used ({sum(s['n_fallback_residues'] for s in scored)} whole residues)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arena", required=True, help="the Arena binary")
    p.add_argument("--data", nargs="+", default=DEFAULT_DATA)
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--n-chains", type=int, default=40)
    p.add_argument("--shard", default="1/1", help="K/N: every N-th chain from the K-th")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per Arena run")
    p.add_argument("--noise", type=float, default=0.0, metavar="ANGSTROM",
                   help="Gaussian noise (per axis) on the given atoms, as in reconstruct.py")
    p.add_argument("--json", help="write the per-chain results here")
    p.add_argument("--markdown", help="write the table here")
    a = p.parse_args(argv)
    result = run(a)
    report(result, table(result["rows"], ["arena"]) + "\n\n" + notes(result["rows"]), a.json, a.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
