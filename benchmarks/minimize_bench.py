"""Time `minimize_structure` on a ~70-nt RNA from the dev set on CPU; prints one table row.

    python benchmarks/minimize_bench.py [--file PATH] [--threads N] [--solvent gbn2]

Without --file the dev tarball (../shared/data/rna_dev.tar.gz) is unpacked to a temporary folder
and 1y26_X (71 nt, the DESIGN §8 reference structure) is used.
"""
from __future__ import annotations

import argparse
import platform
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARBALL = REPO.parent / "shared" / "data" / "rna_dev.tar.gz"
MEMBER = "rna_dev/clean/rsrnasp1_train/1y26_X.pdb"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file")
    ap.add_argument("--threads", type=int, default=0, help="OpenMM CPU threads (0 = default)")
    ap.add_argument("--solvent", default="gbn2")
    args = ap.parse_args()

    from rnadiff.metrics import AtomTable
    from rnadiff.minimize import MinimizationConfig, minimize_structure

    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            with tarfile.open(TARBALL) as tar:
                tar.extract(MEMBER, tmp, filter="data")
            path = str(Path(tmp) / MEMBER)
        table = AtomTable.from_file(path)
        cfg = MinimizationConfig(platform="CPU", cpu_threads=args.threads, solvent=args.solvent)
        t0 = time.perf_counter()
        result = minimize_structure(table, config=cfg)
        wall = time.perf_counter() - t0
    r = result.report
    print("| structure | nt | heavy atoms | solvent | threads | wall s | E before | E after (kJ/mol) "
          "| RMSD to start Å | clashes | chirality errors | outer iterations | host |")
    print(f"| {Path(path).stem} | {table.n_residues} | {len(table.heavy())} | {args.solvent} | "
          f"{args.threads or 'default'} | {wall:.1f} | {r['energy_before_kJ_per_mol']:.0f} | "
          f"{r['energy_after_kJ_per_mol']:.0f} | {r['rmsd_to_start']:.3f} | "
          f"{r['before']['clashes']}→{r['after']['clashes']} | "
          f"{r['before']['chirality_errors']}→{r['after']['chirality_errors']} | "
          f"{sum(s['stage'] == 'restrained' for s in r['stages'])} | {platform.node()} |")


if __name__ == "__main__":
    main()
