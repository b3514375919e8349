"""Longest RNA whose inference fits in host memory at the default (Protenix) dims.

For each length, in a fresh process: features for a random sequence, trunk tensors, the
per-structure cache with the memory options (row-chunked pair conditioning written over the trunk
pair tensor's own memory, no cached per-block biases), then one denoiser call for `--samples`
samples (`--sample-chunk` at a time; all together by default, so each block's pair bias is computed
once per step) with chunked attention. Reports peak resident memory and seconds. Usage:

    python benchmarks/long_rna_memory.py --lengths 1024 2048 4096 [--budget-gb 24] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time, torch
from rnadiff.bench.systems import benchmark_system
from rnadiff.model.diffusion_module import DiffusionModule
n, samples, chunk = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sample_chunk = int(sys.argv[4]) or None
torch.set_num_threads(int(sys.argv[5]))
torch.manual_seed(0)
module = DiffusionModule(initialization={"zero_init_dit_output": False}).eval()
c = module.config
f, s_in, s_tr, z_tr = benchmark_system(n, c["c_s_inputs"], c["c_s"], c["c_z"])
n_atom = f["ref_pos"].shape[0]
t0 = time.perf_counter()
with torch.no_grad():
    cache = module.prepare_cache(f, s_in, s_tr, z_tr, pair_chunk_size=chunk, cache_pair_biases=False,
                                 overwrite_trunk_pair=True)
    del z_tr  # its memory now holds the pair conditioning (cache.pair_z)
    t1 = time.perf_counter()
    x = torch.randn(samples, n_atom, 3) * 16
    out = module(x, torch.full((samples,), 10.0), f, None, None, None, cache=cache,
                 chunk_size=chunk, sample_chunk_size=sample_chunk, inplace_safe=True)
    t2 = time.perf_counter()
assert torch.isfinite(out).all()
print(json.dumps({"n_token": n, "n_atom": n_atom, "samples": samples, "cache_s": t1 - t0, "step_s": t2 - t1,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--sample-chunk", type=int, default=0, help="samples per pass; 0 = all at once")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--budget-gb", type=float, default=24.0)
    args = p.parse_args()
    print("| N_token | N_atom | samples | cache s | step s | peak RSS GB | fits budget |")
    print("|---|---|---|---|---|---|---|")
    for n in args.lengths:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(n), str(args.samples), str(args.chunk),
                               str(args.sample_chunk), str(args.threads)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
            print(f"| {n} | – | {args.samples} | – | – | – | no: exit {proc.returncode} ({tail[0][:80]}) after {time.perf_counter() - t0:.0f} s |", flush=True)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        fits = "yes" if r["peak_rss_gb"] <= args.budget_gb else "no"
        print(f"| {n} | {r['n_atom']} | {r['samples']} | {r['cache_s']:.0f} | {r['step_s']:.0f} | {r['peak_rss_gb']:.1f} | {fits} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
