"""Before/after benchmark of `rnadiff minimize` (issue 16): the relax of a noisy 70-nt chain.

    python benchmarks/minimize_bench.py [--file NATIVE.pdb] [--noise 0.5] [--seed 0]
                                        [--baseline REV] [--skip-baseline] [--extra solvent=gbn2 ...]

The native (default: 1y26_X, 71 nt, from the dev tarball) gets Gaussian noise of `--noise` Å on
every heavy-atom coordinate; the noisy copy is relaxed by the code at git revision `--baseline`
(default: the last commit before the fast relax) and by this checkout, each in its own
interpreter, one after the other in this run. Time is the `minimize_file` call (process start
and imports excluded); quality is scored by this checkout's metrics for every row. Rows: the
baseline with its defaults, this checkout with its defaults (1 thread), with every core
(cpu_threads=0), and one row per `--extra` override set.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TARBALL = REPO.parent / "shared" / "data" / "rna_dev.tar.gz"
MEMBER = "rna_dev/clean/rsrnasp1_train/1y26_X.pdb"
BASELINE = "bb725d2"  # the relax before issue 16 (GBn2, a new System per pass)
LINK_WINDOW = (1.5, 1.7)
LINK_MAX = 4.0  # Å, as rnadiff.metrics.restraints: longer O3'-P in the native is a break


def worker(args: list[str]) -> None:
    """Run in a fresh interpreter with the rnadiff under test first on sys.path."""
    src, dst, report, overrides = args[0], args[1], args[2], args[3:]
    from rnadiff.minimize import MinimizationConfig, minimize_file

    config = MinimizationConfig(platform="CPU").with_overrides(overrides)
    t0 = time.perf_counter()
    rep = minimize_file(src, dst, config)
    rep["wall_s"] = time.perf_counter() - t0
    Path(report).write_text(json.dumps(rep, default=str))


def _run(label: str, src_dir: Path, noisy: Path, tmp: Path, overrides: list[str]) -> dict:
    out, rep = tmp / f"{label}.pdb", tmp / f"{label}.json"
    env = {**os.environ, "PYTHONPATH": str(src_dir), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", str(noisy), str(out), str(rep), *overrides]
    subprocess.run(cmd, env=env, check=True)
    return {"label": label, "out": out, **json.loads(rep.read_text())}


def _links(table) -> np.ndarray:
    """O3'(i)–P(i+1) distances of consecutive residues of a chain (Å)."""
    starts = table.residue_starts()
    names = table.atom_names.astype(str)
    out = []
    for r in range(table.n_residues - 1):
        a, b = slice(starts[r], starts[r + 1]), slice(starts[r + 1], starts[r + 2])
        if table.chain_ids[starts[r]] != table.chain_ids[starts[r + 1]]:
            continue
        o3, p = np.nonzero(names[a] == "O3'")[0], np.nonzero(names[b] == "P")[0]
        if len(o3) and len(p):
            out.append(np.linalg.norm(table.coords[a][o3[0]] - table.coords[b][p[0]]))
    return np.asarray(out)


def _score(table, native) -> dict:
    from rnadiff.metrics import rmsd, structure_quality
    from rnadiff.metrics.lddt import lddt

    q = structure_quality(table)
    links, native_links = _links(table), _links(native)
    if len(links) == len(native_links):
        links = links[native_links <= LINK_MAX]  # a real chain break in the native is no link
    outside = int(((links < LINK_WINDOW[0]) | (links > LINK_WINDOW[1])).sum())
    return {"rmsd": rmsd(table, native)["rmsd"], "lddt": lddt(table, native)["lddt"],
            "clashes": q["clashes"], "chirality": q["chirality_errors"],
            "links_outside": outside, "link_range": (float(links.min()), float(links.max())),
            "bond_outliers": q["bond_outliers"], "angle_outliers": q["angle_outliers"]}


def _baseline_tree(rev: str, tmp: Path) -> Path:
    dest = tmp / "baseline"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", help="native structure (default: 1y26_X from the dev tarball)")
    ap.add_argument("--noise", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--extra", nargs="+", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    from rnadiff.metrics import AtomTable

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = args.file
        if path is None:
            with tarfile.open(TARBALL) as tar:
                tar.extract(MEMBER, tmp, filter="data")
            path = str(tmp / MEMBER)
        native = AtomTable.from_file(path).heavy()
        rng = np.random.default_rng(args.seed)
        noisy_table = native.with_coords(native.coords + rng.normal(0.0, args.noise, native.coords.shape))
        noisy = tmp / "noisy.pdb"
        from rnadiff.minimize.writer import write_table

        write_table(noisy_table, noisy)
        runs = []
        if not args.skip_baseline:
            runs.append((f"baseline {args.baseline}", _baseline_tree(args.baseline, tmp), []))
        here = REPO / "src"
        runs += [("this checkout", here, []), ("this checkout, cpu_threads=0", here, ["cpu_threads=0"])]
        runs += [("this checkout, " + " ".join(e), here, list(e)) for e in args.extra]
        print(f"{Path(path).stem}: {native.n_residues} nt, {len(native)} heavy atoms, noise {args.noise} Å "
              f"(seed {args.seed}), {os.cpu_count()} cores, host {platform.node()}")
        print("| run | wall s | threads | physics | RMSD to native Å | lDDT | clashes | chirality errors "
              "| O3'-P outside 1.5-1.7 Å (range) | bond / angle outliers |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        rows = [("native", None, _score(native, native)), ("noisy input", None, _score(noisy_table, native))]
        for label, src, over in runs:
            rep = _run(label.replace(" ", "_").replace(",", "").replace("=", "-"), src, noisy, tmp, over)
            rows.append((label, rep, _score(AtomTable.from_file(rep["out"]).heavy(), native)))
        for label, rep, s in rows:
            wall = f"{rep['wall_s']:.1f}" if rep else "-"
            threads = rep.get("cpu_threads", "default") if rep else "-"
            parts = (rep.get("electrostatics"), rep.get("solvent")) if rep else ()
            physics = "+".join(x for x in parts if x and x != "none") or "-"
            print(f"| {label} | {wall} | {threads} | {physics} | {s['rmsd']:.3f} | {s['lddt']:.4f} | {s['clashes']} "
                  f"| {s['chirality']} "
                  f"| {s['links_outside']} ({s['link_range'][0]:.2f}-{s['link_range'][1]:.2f}) "
                  f"| {s['bond_outliers']} / {s['angle_outliers']} |", flush=True)


if __name__ == "__main__":
    main()
