"""Guidance optimiser: scipy L-BFGS-B (what RNAGuidance uses) against torch.optim.LBFGS (what it used).

    python benchmarks/guidance_optimizer.py [--structure PDB] [--samples 1 5] [--noise 0.4] [--repeats 3]

A native chain plus Gaussian noise (all atoms, `--noise` Å) stands in for a denoised prediction
at the lowest noise levels, where every potential has full weight. For each optimiser and sample
count: seconds per guided sampler step (n_steps iterations, best of `--repeats`), the guidance
energy before and after, and the process start-up cost of each optimiser's import (a fresh
interpreter importing torch + scipy.optimize, or torch + torch.optim.LBFGS's first construction,
which imports torch._dynamo). Ratios are measured in one run.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

from rnadiff.chem import featurize
from rnadiff.diffusion.guidance import GuidanceConfig, RNAGuidance
from rnadiff.io import read_structure

DEFAULT = Path(__file__).resolve().parents[1] / "src" / "rnadiff" / "examples" / "4phy_A.pdb"
IMPORTS = {
    "scipy L-BFGS-B": "import torch, scipy.optimize",
    "torch LBFGS": "import torch; torch.optim.LBFGS([torch.zeros(1, requires_grad=True)])",
}


class TorchLBFGSGuidance(RNAGuidance):
    """The previous optimiser (torch.optim.LBFGS, strong-Wolfe line search), for comparison only."""

    def _minimise(self, x0, factors, pairs, movable):
        cfg = self.config
        x = x0.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([x], lr=cfg.step_size, max_iter=cfg.n_steps, history_size=10,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

        def closure():
            opt.zero_grad()
            energy = self._weighted(x, factors, pairs).sum()
            energy.backward()
            x.grad.mul_(movable)
            return energy

        with torch.enable_grad():
            opt.step(closure)
        disp = x.detach() - x0
        disp = disp * torch.clamp(cfg.max_displacement / (disp.norm(dim=-1, keepdim=True) + 1e-12), max=1.0)
        return x0 + disp * movable


def import_seconds(code: str, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def time_guide(guidance: RNAGuidance, x: torch.Tensor, repeats: int) -> tuple[float, float, float]:
    """(best seconds per guide call, energy before, energy after) at full weight (σ = 0.5 Å)."""
    sigma = torch.full(x.shape[:1], 0.5)
    full = guidance.factors(0.5)
    before = float(guidance._weighted(x, full, guidance.neighbor_pairs(x)).sum())
    best, out = float("inf"), x
    for _ in range(repeats):
        guidance.start()
        t0 = time.perf_counter()
        out = guidance.guide(x, sigma)
        best = min(best, time.perf_counter() - t0)
    after = float(guidance._weighted(out, full, guidance.neighbor_pairs(out)).sum())
    return best, before, after


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--structure", default=str(DEFAULT))
    p.add_argument("--samples", type=int, nargs="+", default=[1, 5])
    p.add_argument("--noise", type=float, default=0.4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    feats = featurize(read_structure(a.structure))
    cfg = GuidanceConfig(enabled=True)
    native = feats["coords"].float()
    print(f"{Path(a.structure).name}: {native.shape[0]} atoms, n_steps {cfg.n_steps}, noise {a.noise} Å, "
          f"{a.threads} thread(s)")
    torch_only = import_seconds("import torch", a.repeats)
    starts = {name: import_seconds(code, a.repeats) - torch_only for name, code in IMPORTS.items()}
    print(f"process start importing torch alone: {torch_only:.2f} s (best of {a.repeats})")
    print("| optimiser | samples | s per guided step | energy before | energy after | import beyond torch (s) |")
    print("|---|---|---|---|---|---|")
    for s in a.samples:
        g = torch.Generator().manual_seed(0)
        x = native.expand(s, -1, -1) + a.noise * torch.randn(s, *native.shape, generator=g)
        for name, cls in (("scipy L-BFGS-B", RNAGuidance), ("torch LBFGS", TorchLBFGSGuidance)):
            sec, e0, e1 = time_guide(cls.from_features(feats, cfg), x, a.repeats)
            print(f"| {name} | {s} | {sec:.3f} | {e0:.1f} | {e1:.2f} | {starts[name]:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
