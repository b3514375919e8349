"""Wall time of `rnadiff refine` against Arena (pylelab/Arena, C++) on the same C1'-only input, one run.

    python benchmarks/arena_speed.py --arena /path/to/Arena INPUT_C1.pdb [--native NATIVE.pdb]
        [--samples 1 5] [--repeats 3] [--threads N] [--json OUT] [key=value ...]

Arena is not part of rnadiff: build it yourself (e.g. `g++ -O3 -o Arena Arena.cpp`) and pass the
binary. Every command runs in a fresh process (process start included), the tools interleaved
round by round so that a change in machine load hits all of them alike; the table gives the
median and best wall time of each and its ratio to Arena's median, and the median CPU time
(user + sys of the process and its threads; robust to other load) and its ratio. With --native, each output is
scored against it (`rnadiff.metrics.compare_structures`: RMSD, lDDT, clashes per 1000 atoms,
chirality errors, O3'-P link outliers).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def commands(arena: Path, inp: Path, tmp: Path, samples: list[int], threads: int | None,
             extra: list[str]) -> dict[str, tuple]:
    """name -> (argv, output structure to score)."""
    out = {"Arena (option 5)": ([str(arena), str(inp), str(tmp / "arena.pdb"), "5"], tmp / "arena.pdb")}
    for s in samples:
        argv = [sys.executable, "-m", "rnadiff.cli.main", "refine", str(inp), "--out", str(tmp / f"r{s}"),
                "--samples", str(s), "--no-progress", "--overwrite"]
        if threads:
            argv += ["--threads", str(threads)]
        argv += extra
        out[f"rnadiff refine --samples {s}"] = (argv, tmp / f"r{s}" / inp.stem / "sample_0.cif")
    return out


def _children_cpu() -> float:
    """user + sys CPU seconds of finished child processes: on a shared machine this is the
    load-robust figure (wall time also counts waiting for a core)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def score(model: Path, native: Path) -> dict:
    from rnadiff.metrics import compare_structures

    c = compare_structures(str(model), str(native))
    return {"rmsd": c["rmsd"], "lddt": c["lddt"], **{k: c["model"][k] for k in
            ("clashes_per_1000_atoms", "chirality_errors", "link_outliers")}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("input", type=Path)
    p.add_argument("--arena", type=Path, required=True, help="an Arena binary built from pylelab/Arena")
    p.add_argument("--native", type=Path, help="the native structure, to score every output")
    p.add_argument("--samples", type=int, nargs="+", default=[1, 5])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="rnadiff refine --threads (default: its own)")
    p.add_argument("--json", type=Path)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="refine config overrides for rnadiff refine")
    a = p.parse_intermixed_args(argv)
    for path in (a.input, a.arena) + ((a.native,) if a.native else ()):
        if not path.is_file():
            p.error(f"{path}: no such file")
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(a.arena.resolve(), a.input.resolve(), Path(tmp), a.samples, a.threads, a.overrides)
        for _ in range(a.repeats):
            for name, (cmd, _) in cmds.items():
                c0, t0 = _children_cpu(), time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                times.setdefault(name, []).append(time.perf_counter() - t0)
                cpu.setdefault(name, []).append(_children_cpu() - c0)
                if proc.returncode != 0:
                    sys.exit(f"{name} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        scores = {name: score(out, a.native) for name, (_, out) in cmds.items()} if a.native else {}
    base = statistics.median(times["Arena (option 5)"])
    base_cpu = statistics.median(cpu["Arena (option 5)"])
    print(f"{a.input.name}, {a.repeats} interleaved rounds")
    print("| tool | median wall s | best wall s | / Arena | CPU s (user+sys) | CPU / Arena | RMSD Å | lDDT | "
          "clashes/1000 | chirality err. | link outl. |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, ts in times.items():
        s = scores.get(name)
        q = (f"{s['rmsd']:.2f} | {s['lddt']:.3f} | {s['clashes_per_1000_atoms']:.1f} | {s['chirality_errors']} | "
             f"{s['link_outliers']}" if s else "– | – | – | – | –")
        c = statistics.median(cpu[name])
        print(f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f} | {statistics.median(ts) / base:.2f}x | "
              f"{c:.2f} | {c / base_cpu:.2f}x | {q} |")
    if a.json:
        a.json.write_text(json.dumps({"input": str(a.input), "times": times, "cpu": cpu, "scores": scores}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
