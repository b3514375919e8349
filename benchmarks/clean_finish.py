"""Cleanliness and accuracy of default `rnadiff refine` outputs on held-out dev chains (issue 16 item 2).

    python benchmarks/clean_finish.py [--data /tmp/data/rna_dev] [--chains NAME ...] [--samples 1]
        [--threads 1] [--json OUT] [key=value ...]

Chains: rna_dev chains held out from training by sequence (`rnadiff.train.split.is_validation`,
fraction 0.15), one per sequence, ten spread over 11-165 nt by default. Each native is reduced to
its C1' atoms and written as a PDB file, refined in-process exactly as `rnadiff refine` would
(its settings, the shipped checkpoint), and sample 0 is scored against the native with
`rnadiff.metrics.compare_structures`: RMSD, lDDT, clashes per 1000 atoms (MolProbity-style),
chirality errors, O3'-P link outliers, bond/angle outliers, and the refine time.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import gemmi
import numpy as np
import torch

DEFAULT_CHAINS = ("4JRD_A", "4P97_A", "4e5c_A", "4phy_A", "3npq_A", "1kxk_A", "2GDI_X", "6mj0_A", "4qk9_A",
                  "6ufh_A")
COLUMNS = ("rmsd", "lddt", "clashes_per_1000_atoms", "chirality_errors", "link_outliers", "bond_outliers",
           "angle_outliers", "seconds")


def held_out(data: Path, names: tuple[str, ...]) -> list[dict]:
    """Manifest rows of the requested chains, refusing any that training could have seen."""
    from rnadiff.train.split import is_validation

    rows = {Path(r["clean_file"]).stem: r for r in csv.DictReader(open(data / "manifest.csv"))}
    out = []
    for name in names:
        row = rows.get(name)
        if row is None:
            raise SystemExit(f"{name}: not in {data / 'manifest.csv'}")
        if not is_validation(row["seq_md5"], 0.15):
            raise SystemExit(f"{name}: not a held-out (validation) chain")
        out.append(row)
    return out


def c1_only(native: Path, out: Path) -> None:
    st = gemmi.read_structure(str(native))
    st.remove_hydrogens()
    for residue in (r for m in st for c in m for r in c):
        for k in range(len(residue) - 1, -1, -1):
            if residue[k].name != "C1'":
                del residue[k]
    st.remove_empty_chains()
    st.write_pdb(str(out))


def score_chain(row: dict, data: Path, model, settings, tmp: Path) -> dict:
    from rnadiff.chem import featurize
    from rnadiff.io import build_gemmi_structure, read_structure
    from rnadiff.metrics import compare_structures
    from rnadiff.refine import refine_structure

    native = data / row["clean_file"]
    inp = tmp / f"{native.stem}_c1.pdb"
    c1_only(native, inp)
    t0 = time.perf_counter()
    feats = featurize(read_structure(str(inp)), max_sequence_length=settings.max_sequence_length)
    res = refine_structure(feats, model, settings)
    seconds = time.perf_counter() - t0
    c = compare_structures(build_gemmi_structure(feats.layout, res.samples[0]), str(native))
    out = {"chain": native.stem, "n": int(row["length"]), "rmsd": c["rmsd"], "lddt": c["lddt"], "seconds": seconds}
    out.update({k: c["model"][k] for k in COLUMNS if k in c["model"]})
    return out


def markdown(rows: list[dict]) -> str:
    head = "| chain | nt | RMSD (Å) | lDDT | clashes/1000 | chirality | link outl. | bond outl. | angle outl. | s |"
    lines = [head, "|" + "---|" * 10]
    for r in rows + [mean_row(rows)]:
        lines.append(f"| {r['chain']} | {r['n']} | {r['rmsd']:.2f} | {r['lddt']:.3f} | "
                     f"{r['clashes_per_1000_atoms']:.1f} | {r['chirality_errors']:g} | {r['link_outliers']:g} | "
                     f"{r['bond_outliers']:g} | {r['angle_outliers']:g} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def mean_row(rows: list[dict]) -> dict:
    out = {"chain": "**mean**", "n": round(float(np.mean([r["n"] for r in rows])))}
    out.update({k: float(np.mean([r[k] for r in rows])) for k in COLUMNS})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("/tmp/data/rna_dev"))
    p.add_argument("--chains", nargs="+", default=list(DEFAULT_CHAINS))
    p.add_argument("--samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="refine config overrides")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from rnadiff.cli.refine import settings_from
    from rnadiff.refine import load_refinement_model

    model, source = load_refinement_model(None)
    settings = settings_from(argparse.Namespace(samples=a.samples, seed=a.seed, steps=a.steps, no_guidance=False),
                             list(a.overrides))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in held_out(a.data, tuple(a.chains)):
            rows.append(score_chain(row, a.data, model, settings, Path(tmp)))
            print(f"  {rows[-1]['chain']}: {rows[-1]['clashes_per_1000_atoms']:.1f} clashes/1000, "
                  f"RMSD {rows[-1]['rmsd']:.2f}, {rows[-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
    print(markdown(rows))
    if a.json:
        a.json.write_text(json.dumps({"checkpoint": source, "overrides": a.overrides, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
