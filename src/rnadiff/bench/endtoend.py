"""End-to-end rows of `rnadiff bench`: what a user waits for.

- start-up: `rnadiff --help` in a fresh process (the floor of every command);
- refine: `rnadiff refine INPUT --samples S` in a fresh process, process start included (imports,
  checkpoint, featurization, sampling, polish, writing), per input and sample count; with the
  model's cleanliness from the run's own summary.json;
- minimize: `rnadiff.minimize.minimize_structure` (its public API) on an all-atom structure
  whose coordinates got Gaussian noise (seeded), in this process: seconds, movement, and
  quality before/after plus the RMSD to the clean input before/after.

Times are the median of `repeats` runs (a busy machine makes single runs noisy).
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEFAULT_REFINE_INPUTS = (EXAMPLES / "4phy_A_c1.pdb",)
DEFAULT_MINIMIZE_INPUTS = (EXAMPLES / "4phy_A.pdb",)
DEFAULT_REFINE_SAMPLES = (1, 5)
CLI = (sys.executable, "-m", "rnadiff.cli.main")


def _median_wall(cmd: list[str], repeats: int, before_each=None) -> float:
    times = []
    for _ in range(repeats):
        if before_each is not None:
            before_each()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-1000:]}")
    return statistics.median(times)


def startup_row(repeats: int = 3) -> dict[str, Any]:
    """Wall seconds of `rnadiff --help` (process start, argument parsing, no command imported)."""
    return {"command": "rnadiff --help", "seconds": _median_wall([*CLI, "--help"], repeats)}


def refine_row(path: Path, samples: int, repeats: int = 1, threads: int | None = None,
               extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """One `rnadiff refine` per repeat in a fresh process; the median wall time and the quality
    of the samples (means over samples, from the run's summary.json)."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="rnadiff-bench-") as tmp:
        out = Path(tmp) / "out"
        cmd = [*CLI, "refine", str(path), "--out", str(out), "--samples", str(samples), "--no-progress", *extra]
        if threads:
            cmd += ["--threads", str(threads)]
        wall = _median_wall(cmd, repeats, before_each=lambda: shutil.rmtree(out, ignore_errors=True))
        summary = json.loads(next(out.glob("*/summary.json")).read_text())
    per = summary["samples"]

    def mean(key: str) -> float:
        return float(np.mean([s[key] for s in per if key in s])) if per else float("nan")

    return {"input": path.name, "n_residues": summary["n_residues"], "n_atoms": summary["n_atoms"],
            "samples": samples, "wall_s": wall, "wall_per_sample_s": wall / samples,
            "in_process_s": float(summary.get("sampling_seconds", float("nan"))),
            "clashes_per_1000_atoms": mean("clashes_per_1000_atoms"), "chirality_errors": mean("chirality_errors"),
            "link_outliers": mean("link_outliers"), "threads": threads or "default"}


def minimize_row(path: Path, noise: float = 0.5, seed: int = 0, config: Any = None) -> dict[str, Any]:
    """`minimize_structure` on `path` with `noise` Å of Gaussian noise on every atom (seeded)."""
    from rnadiff.metrics.atoms import AtomTable
    from rnadiff.metrics.report import structure_quality
    from rnadiff.metrics.superpose import rmsd_coords
    from rnadiff.minimize import minimize_structure

    clean = AtomTable.from_file(str(path)).heavy()
    rng = np.random.default_rng(seed)
    noisy = clean.with_coords(clean.coords + rng.normal(0.0, noise, clean.coords.shape))
    t0 = time.perf_counter()
    result = minimize_structure(noisy, config=config)
    seconds = time.perf_counter() - t0
    out = result.coords[noisy.heavy_mask] if len(result.coords) == len(noisy) else result.coords

    def rmsd(x: np.ndarray) -> float:
        return rmsd_coords(x, clean.coords)

    before, after = structure_quality(noisy), structure_quality(noisy.with_coords(out))
    keys = ("clashes_per_1000_atoms", "chirality_errors", "link_outliers", "bond_outliers", "angle_outliers")
    return {"input": Path(path).name, "n_atoms": len(clean), "noise_A": noise, "seconds": seconds,
            "rmsd_to_clean_before": rmsd(noisy.coords), "rmsd_to_clean_after": rmsd(out),
            "before": {k: before[k] for k in keys}, "after": {k: after[k] for k in keys}}


def markdown(startup: dict | None, refine: list[dict], minimize: list[dict]) -> str:
    """The end-to-end tables (empty string when nothing was measured)."""
    parts = []
    if startup is not None:
        parts.append(f"start-up: `{startup['command']}` {startup['seconds']:.2f} s (fresh process, median)\n")
    if refine:
        lines = ["| refine input | nt | atoms | samples | wall s (process start incl.) | wall s / sample | "
                 "in-process s | clashes/1000 | chirality err. | link outl. | threads |", "|" + "---|" * 11]
        for r in refine:
            lines.append(f"| {r['input']} | {r['n_residues']} | {r['n_atoms']} | {r['samples']} | {r['wall_s']:.2f} | "
                         f"{r['wall_per_sample_s']:.2f} | {r['in_process_s']:.2f} | "
                         f"{r['clashes_per_1000_atoms']:.1f} | "
                         f"{r['chirality_errors']:g} | {r['link_outliers']:g} | {r['threads']} |")
        parts.append("\n".join(lines) + "\n")
    if minimize:
        lines = ["| minimize input | atoms | noise Å | seconds | RMSD to clean before → after Å | "
                 "clashes/1000 before → after | chirality err. | link outl. |", "|" + "---|" * 8]
        for m in minimize:
            b, a = m["before"], m["after"]
            lines.append(f"| {m['input']} | {m['n_atoms']} | {m['noise_A']:g} | {m['seconds']:.1f} | "
                         f"{m['rmsd_to_clean_before']:.2f} → {m['rmsd_to_clean_after']:.2f} | "
                         f"{b['clashes_per_1000_atoms']:.1f} → {a['clashes_per_1000_atoms']:.1f} | "
                         f"{b['chirality_errors']} → {a['chirality_errors']} | "
                         f"{b['link_outliers']} → {a['link_outliers']} |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


__all__ = ["DEFAULT_MINIMIZE_INPUTS", "DEFAULT_REFINE_INPUTS", "DEFAULT_REFINE_SAMPLES", "markdown", "minimize_row",
           "refine_row", "startup_row"]
