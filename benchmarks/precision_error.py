"""Coordinate error of reduced-precision autocast (bf16, fp16) against float32, at the default dims.

The denoiser runs under torch.autocast with its float32 islands (attention softmax, the EDM
combination, the sampler's Euler step); this measures max and RMS |x̂_low - x̂_fp32| (Å) for one
denoiser call at several noise levels, on a random RNA of `--length` nt with `--samples` samples.
On a CPU without native bf16/fp16 matmuls this is slow (emulated), so keep the length small.

    python benchmarks/precision_error.py [--length 32] [--samples 2] [--sigmas 160 16 1 0.1]
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from rnadiff.bench.systems import benchmark_system
from rnadiff.model.diffusion_module import DiffusionModule


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--sigmas", type=float, nargs="+", default=[160.0, 16.0, 1.0, 0.1])
    p.add_argument("--dtypes", nargs="+", default=["bf16", "fp16"], choices=["bf16", "fp16"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    module = DiffusionModule(initialization={"zero_init_dit_output": False}).to(a.device).eval()
    c = module.config
    f, s_in, s_tr, z_tr = benchmark_system(a.length, c["c_s_inputs"], c["c_s"], c["c_z"], device=a.device)
    n_atom = f["ref_pos"].shape[0]
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    print(f"{a.length} nt, {n_atom} atoms, {a.samples} samples, default dims, device {a.device}")
    print("| autocast | σ (Å) | max error (Å) | RMS error (Å) | seconds |")
    print("|---|---|---|---|---|")
    autocast = lambda name: torch.autocast(device_type=a.device.split(":")[0], dtype=dtypes[name])  # noqa: E731
    with torch.no_grad():
        cache = module.prepare_cache(f, s_in, s_tr, z_tr)
        # as ProtenixDiffusionManager does: the per-structure cache is built under the same autocast
        low_caches = {}
        for name in a.dtypes:
            with autocast(name):
                low_caches[name] = module.prepare_cache(f, s_in, s_tr, z_tr)
        for sigma in a.sigmas:
            g = torch.Generator().manual_seed(1)
            x = (torch.randn(a.samples, n_atom, 3, generator=g) * sigma).to(a.device)
            t = torch.full((a.samples,), sigma, device=a.device)
            t0 = time.perf_counter()
            ref = module(x, t, f, None, None, None, cache=cache)
            print(f"| fp32 | {sigma:g} | 0 | 0 | {time.perf_counter() - t0:.1f} |", flush=True)
            for name in a.dtypes:
                t0 = time.perf_counter()
                with autocast(name):
                    low = module(x, t, f, None, None, None, cache=low_caches[name])
                seconds = time.perf_counter() - t0
                err = (low.float() - ref).norm(dim=-1)
                print(f"| {name} | {sigma:g} | {err.max().item():.4f} | {err.pow(2).mean().sqrt().item():.4f} "
                      f"| {seconds:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
