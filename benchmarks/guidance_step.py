"""Cost of one guided sampler step: RNAGuidance.guide at full weight on noisy copies of a chain.

    python benchmarks/guidance_step.py [--structure PDB] [--samples 1 5] [--noise 0.4] [--repeats 3]

A native chain plus Gaussian noise (all atoms, `--noise` Å) stands in for a denoised prediction
at the lowest noise levels, where every potential has full weight. Per sample count: seconds per
guided step (n_steps L-BFGS-B iterations, best of `--repeats`), milliseconds per energy-and-
gradient evaluation of the restraint kernel, the clash pairs in the neighbour list and the
guidance energy before and after. Ratios between rows are measured in one run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rnadiff.chem import featurize
from rnadiff.chem.restraint_energy import restraint_energy
from rnadiff.diffusion.guidance import GuidanceConfig, RNAGuidance
from rnadiff.diffusion.guidance.energy import guidance_restraints
from rnadiff.io import read_structure

DEFAULT = Path(__file__).resolve().parents[1] / "src" / "rnadiff" / "examples" / "4phy_A.pdb"


def full_energy(g: RNAGuidance, x: np.ndarray, n_samples: int) -> float:
    return float(sum(g.energies(x.reshape(n_samples, -1, 3)).values()).sum())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--structure", default=str(DEFAULT))
    p.add_argument("--samples", type=int, nargs="+", default=[1, 5])
    p.add_argument("--noise", type=float, default=0.4)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    feats = featurize(read_structure(a.structure))
    cfg = GuidanceConfig(enabled=True)
    native = feats["coords"].double()
    print(f"{Path(a.structure).name}: {native.shape[0]} atoms, n_steps {cfg.n_steps}, noise {a.noise} Å")
    print("| samples | s per guided step | ms per evaluation | clash pairs | energy before | energy after |")
    print("|---|---|---|---|---|---|")
    for s in a.samples:
        gen = torch.Generator().manual_seed(0)
        x = native.expand(s, -1, -1) + a.noise * torch.randn(s, *native.shape, generator=gen, dtype=torch.float64)
        g = RNAGuidance.from_features(feats, cfg)
        sigma = torch.full((s,), 0.5)
        best, out = float("inf"), x
        for _ in range(a.repeats):
            g.start()
            t0 = time.perf_counter()
            out = g.guide(x, sigma)
            best = min(best, time.perf_counter() - t0)
        flat = x.numpy().reshape(-1, 3)
        clash = g.neighbor_pairs(flat, s)
        system = guidance_restraints(g.terms, cfg.terms, g.factors(0.5), s, clash)
        t0 = time.perf_counter()
        for _ in range(20):
            restraint_energy(flat, system)
        per_eval = (time.perf_counter() - t0) / 20 * 1e3
        print(f"| {s} | {best:.3f} | {per_eval:.2f} | {len(clash[0])} | {full_energy(g, x.numpy(), s):.1f} | "
              f"{full_energy(g, out.numpy(), s):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
