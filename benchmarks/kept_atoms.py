"""Given atoms kept (issue 15 item 2) against given atoms free (--noisy-input) on held-out chains.

    python benchmarks/kept_atoms.py [--data /tmp/data/rna_dev] [--n-chains 8] [--min-length 0] [--max-length 60]
        [--threads 1] [--json OUT]

Chains: rna_dev chains held out from training by sequence (`rnadiff.train.split.is_validation`,
fraction 0.15), one per sequence, >= 95% of their atoms present, the shortest first up to
`--max-length`. Each native is reduced to its C1', P or backbone atoms (`rnadiff.train.partial`),
refined with `rnadiff refine`'s settings and the shipped checkpoint (1 sample, seed 0) twice: the
default (given atoms kept) and --noisy-input. Sample 0 is scored against the native: largest
given-atom deviation, all-heavy-atom RMSD, lDDT, clashes per 1000 atoms, angle outliers, seconds.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

KINDS = ("c1", "p", "backbone")
COLUMNS = ("given_max_dev", "rmsd", "lddt", "clashes_per_1000_atoms", "angle_outliers", "seconds")


def chains(data: Path, n: int, max_length: int, min_length: int = 0) -> list[dict]:
    from rnadiff.train.split import is_validation

    rows, seen = [], set()
    for r in csv.DictReader(open(data / "manifest.csv")):
        if (is_validation(r["seq_md5"], 0.15) and r["seq_md5"] not in seen and float(r["frac_complete"]) >= 0.95
                and min_length <= int(r["length"]) <= max_length):
            seen.add(r["seq_md5"])
            rows.append(r)
    return sorted(rows, key=lambda r: (int(r["length"]), r["clean_file"]))[:n]


def reduced(feats, kind: str):
    from rnadiff.chem.features import Features
    from rnadiff.train.partial import mode_mask

    f = feats.as_dict()
    given = mode_mask(kind, f, torch.Generator().manual_seed(0)) & (f["atom_present_mask"] > 0)
    f["atom_present_mask"] = given.float()
    f["coords"] = torch.where(given[:, None], f["coords"], torch.zeros_like(f["coords"]))
    return Features(tensors=f, layout=feats.layout)


def score(native, feats, result, seconds: float) -> dict:
    from rnadiff.io import build_gemmi_structure
    from rnadiff.metrics import compare_structures

    c = compare_structures(build_gemmi_structure(feats.layout, result.samples[0]), native)
    return {"given_max_dev": float(result.given_max_deviation[0]), "rmsd": c["rmsd"], "lddt": c["lddt"],
            "clashes_per_1000_atoms": c["model"]["clashes_per_1000_atoms"],
            "angle_outliers": c["model"]["angle_outliers"], "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("/tmp/data/rna_dev"))
    p.add_argument("--n-chains", type=int, default=8)
    p.add_argument("--min-length", type=int, default=0)
    p.add_argument("--max-length", type=int, default=60)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--modes", nargs="+", choices=("kept", "free"), default=["kept", "free"])
    p.add_argument("--json")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="refine config overrides (both modes)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    import gemmi

    from rnadiff.chem import featurize
    from rnadiff.cli.refine import settings_from
    from rnadiff.io import read_structure
    from rnadiff.refine import load_refinement_model, refine_structure

    model, _ = load_refinement_model()
    base = dict(samples=1, steps=50, seed=0, given_tolerance=0.0, no_guidance=False, minimize=False)
    modes = {m: settings_from(argparse.Namespace(**base, noisy_input=m == "free"), list(a.overrides))
             for m in a.modes}
    results: dict[tuple[str, str], list[dict]] = {}
    picked = chains(a.data, a.n_chains, a.max_length, a.min_length)
    for row in picked:
        path = a.data / row["clean_file"]
        feats, native = featurize(read_structure(path)), gemmi.read_structure(str(path))
        for kind in a.kinds:
            partial = reduced(feats, kind)
            for mode, settings in modes.items():
                t0 = time.perf_counter()
                res = refine_structure(partial, model, settings)
                results.setdefault((kind, mode), []).append(score(native, partial, res, time.perf_counter() - t0))
        print(f"  {Path(row['clean_file']).stem} ({row['length']} nt) done", file=sys.stderr)
    lengths = [int(r["length"]) for r in picked]
    print(f"{len(picked)} held-out chains of {min(lengths)}-{max(lengths)} nt, 1 sample, medians\n")
    print("| input | given atoms | max given-atom deviation (Å) | RMSD (Å) | lDDT | clashes/1000 | angle outliers | s |")
    print("|---|---|---|---|---|---|---|---|")
    for (kind, mode), rs in results.items():
        med = [float(np.median([r[c] for r in rs])) for c in COLUMNS]
        print(f"| {kind} | {mode} | {med[0]:.3f} | {med[1]:.2f} | {med[2]:.3f} | {med[3]:.1f} | {med[4]:.1f} | {med[5]:.1f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({f"{k}/{m}": v for (k, m), v in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
