"""The product as it was before issue 15, on the held-out chains of benchmarks/reconstruct.py.

    git worktree add --detach /tmp/old363 363bd52
    python benchmarks/reconstruct_old_product.py --old-src /tmp/old363/src --work /tmp/old_product \
        --data ../shared/data/rna_dev.tar.gz ../shared/data/rna_extra.tar.gz --n-chains 1000 --json product_v1.json
    python benchmarks/reconstruct.py --merge reconstruct_64_chains.json product_v1.json --markdown table.md

`benchmarks/reconstruct.py` runs every checkpoint through today's pipeline (base-pair prior, kept
given atoms, polish), so its "old" row is the first checkpoint with today's chemistry around it.
What users had is the first checkpoint with *its* pipeline: commit 363bd52, the shipped product
when issue 15 measured it on an independent benchmark. This script hands that commit's own
`rnadiff refine` (default settings, `--samples 1 --seed 0`, one thread) the same reduced inputs as
files, as a user would: each native reduced to the atoms of one input kind, written as PDB. A
residue with no given atom is not in such a file (the 5′ residue of most P-only inputs), so the
old tool cannot rebuild it: those atoms are NaN, left out of its RMSD and clashes, counted as lost
in its lDDT and INF (`reconstruct.score`).
Rows carry the method `product_v1` and merge with reconstruct.py's results by (chain, input).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import gemmi
import numpy as np

from rnadiff.io import build_gemmi_structure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reconstruct import DEFAULT_DATA, KINDS, held_out_chains, reduce_to, score  # noqa: E402

METHOD = "product_v1"
OLD_COMMIT = "363bd52"


def write_inputs(chains, kinds, folder: Path) -> list[Path]:
    """One PDB per chain and input kind holding only the given atoms."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in chains:
        for kind in kinds:
            f = reduce_to(r, kind)
            given = f["atom_present_mask"].numpy() > 0
            st = build_gemmi_structure(r.layout, f["coords"].numpy(), atom_mask=given)
            path = folder / f"{r.name}__{kind}.pdb"
            st.write_pdb(str(path))
            paths.append(path)
    return paths


def run_old_refine(old_src: Path, inputs: list[Path], out: Path) -> None:
    """The old commit's `rnadiff refine` on every input, in one process (its model loads once)."""
    env = dict(os.environ, PYTHONPATH=str(old_src), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", "import sys; from rnadiff.cli.main import main; sys.exit(main())", "refine",
           *map(str, inputs), "--out", str(out), "--samples", "1", "--seed", "0", "--threads", "1", "--no-progress"]
    subprocess.run(cmd, env=env, check=False)  # an input it refuses is a result (no output), not a stop


def read_model(path: Path, layout) -> np.ndarray:
    """[N_atom, 3] coordinates of `path` in the native's layout (NaN: an atom the file lacks),
    matched by chain, residue number, insertion code and atom name."""
    st = gemmi.read_structure(str(path))
    by_id = {(ch.name, res.seqid.num, res.seqid.icode.strip()): res for ch in st[0] for res in ch}
    coords = np.full((layout.n_atoms, 3), np.nan)
    for a in range(layout.n_atoms):
        t = layout.atom_to_token[a]
        res = by_id.get((layout.chain_ids[t], int(layout.res_nums[t]), layout.ins_codes[t].strip()))
        atom = res.find_atom(layout.atom_names[a], "*") if res is not None else None
        if atom is not None:
            coords[a] = atom.pos.tolist()
    return coords


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old-src", required=True, type=Path, help=f"src/ of a checkout of {OLD_COMMIT}")
    p.add_argument("--work", required=True, type=Path, help="folder for the input files and the old tool's outputs")
    p.add_argument("--data", nargs="+", default=DEFAULT_DATA)
    p.add_argument("--n-chains", type=int, default=40)
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--json", required=True)
    a = p.parse_args(argv)
    chains, _, _ = held_out_chains(a.data, a.n_chains, "1/1")
    inputs = write_inputs(chains, a.kinds, a.work / "inputs")
    out = a.work / "outputs"
    if out.exists():
        raise SystemExit(f"{out} exists: remove it (the old tool writes every output afresh)")
    run_old_refine(a.old_src, inputs, out)
    rows = []
    for r in chains:
        for kind in a.kinds:
            done = out / f"{r.name}__{kind}"
            row = {"chain": r.name, "n": r.n_token, "input": kind}
            if not (done / "summary.json").exists():  # the old tool refused or failed this input
                row[METHOD] = {"failed": "no output"}
            else:
                seconds = json.loads((done / "summary.json").read_text())["sampling_seconds"]
                coords = read_model(done / "sample_0.cif", r.layout)
                row[METHOD] = score(r, reduce_to(r, kind), coords, seconds)
            rows.append(row)
    description = (f"the product before issue 15: git {OLD_COMMIT} (stage-1 weights) and its own default "
                   "`rnadiff refine --samples 1 --seed 0`, given the reduced inputs as PDB files")
    Path(a.json).write_text(json.dumps({"checkpoints": {METHOD: description}, "overrides": [], "rows": rows}, indent=1))
    print(f"{len(rows)} rows -> {a.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
