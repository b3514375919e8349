"""Reduced-precision denoiser against float32: coordinate error, and time where the hardware has bf16.

Three ways to run the denoiser are compared: float32; `hold_weights_in(bf16)` (weights cast once,
float32 islands for LayerNorm statistics, softmax, the EDM pre/post-conditioning and the Fourier
noise embedding); and plain bf16 autocast over float32 weights (re-cast in every call).

1. Golden inputs (Protenix's reference system and weights, ../shared/protenix/golden_small.pt):
   |x̂_low − x̂_fp32| per sample as RMS and max over atoms, in % of σ, at the six golden σ.
2. Default (Protenix) dims on a random RNA of `--length` nt, every weight random at LeCun scale
   (so no zero-initialised layer hides an error): the same errors at `--sigmas`, and the time of
   one denoiser call at the first σ (best of `--repeats`, the three variants taking turns), with
   the ratios to float32 measured in this run.

The time ratio means something only where bf16 matmuls are native: AMX or AVX-512-BF16 CPUs,
or CUDA. The script reports what it finds (/proc/cpuinfo flags, torch's CPU capability, the
device) and says so when the hardware emulates bf16.

    python benchmarks/precision_error.py [--length 64] [--samples 2] [--threads 1] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from rnadiff.bench.systems import benchmark_system
from rnadiff.model.diffusion_module import DiffusionModule

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "protenix" / "golden_small.pt"
BF16_CPU_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16")


def hardware(device: str) -> tuple[str, bool]:
    """(description, whether bf16 matmuls are native on `device`)."""
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(device)
        return f"CUDA {name}", bool(torch.cuda.is_bf16_supported())
    try:
        flags = set(next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")).split())
    except (OSError, StopIteration):
        flags = set()
    found = [f for f in BF16_CPU_FLAGS if f in flags]
    cap = torch.backends.cpu.get_cpu_capability()
    return f"CPU, torch capability {cap}, bf16 flags: {', '.join(found) or 'none'}", bool(found)


def _random_lecun_(module: torch.nn.Module, seed: int) -> None:
    """Every parameter random: matrices at LeCun scale, vectors (LayerNorm, biases) near their init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "fourier" in name:
                continue
            noise = torch.randn(p.shape, generator=g)
            if p.dim() == 2:
                p.copy_(noise / math.sqrt(p.shape[1]))
            else:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * noise)


def _errors(low: torch.Tensor, ref: torch.Tensor, sigma: torch.Tensor) -> tuple[float, float]:
    """Worst sample's RMS and max |Δx| over atoms, in % of that sample's σ."""
    err = (low.float() - ref).norm(dim=-1)  # [S, N]
    rms = err.pow(2).mean(-1).sqrt() / sigma
    mx = err.amax(-1) / sigma
    return 100 * float(rms.max()), 100 * float(mx.max())


def golden_table(dtype: torch.dtype) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.model_helpers import golden_module

    g = torch.load(GOLDEN, weights_only=True)
    inp = g["inputs"]
    ref_m, held = golden_module(g), golden_module(g).hold_weights_in(dtype)
    print("\n| golden σ (Å) | held: RMS % of σ | held: max % of σ | autocast: RMS % of σ "
          "| autocast: max % of σ |")
    print("|---|---|---|---|---|")
    with torch.no_grad():
        for case in g["denoiser"]["cases"]:
            args = (case["x_noisy"], case["t_hat"], inp["features"], inp["s_inputs"], inp["s_trunk"], inp["z_trunk"])
            ref, low = ref_m(*args), held(*args)
            with torch.autocast("cpu", dtype=dtype):
                auto = ref_m(*args)
            for s in range(ref.shape[0]):
                sl = slice(s, s + 1)
                h, a = _errors(low[sl], ref[sl], case["t_hat"][sl]), _errors(auto[sl], ref[sl], case["t_hat"][sl])
                print(f"| {float(case['t_hat'][s]):g} | {h[0]:.2f} | {h[1]:.2f} | {a[0]:.2f} | {a[1]:.2f} |")


def _interleaved_best(fns: dict, repeats: int, sync) -> dict[str, float]:
    """Best wall time of each function, the variants taking turns (a shared, busy machine then
    slows them alike instead of whichever ran during a burst)."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def default_table(a, dtype: torch.dtype, native: bool) -> None:
    dev = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    ref_m = DiffusionModule().eval()
    _random_lecun_(ref_m, seed=0)
    held = DiffusionModule().eval()
    held.load_state_dict(ref_m.state_dict())
    ref_m, held = ref_m.to(dev), held.to(dev).hold_weights_in(dtype)
    c = ref_m.config
    f, s_in, s_tr, z_tr = benchmark_system(a.length, c["c_s_inputs"], c["c_s"], c["c_z"], device=a.device)
    n_atom = f["ref_pos"].shape[0]
    print(f"\ndefault dims, {a.length} nt, {n_atom} atoms, {a.samples} samples, {a.threads} thread(s), {a.device}")
    with torch.no_grad():
        cache32, cache_held = ref_m.prepare_cache(f, s_in, s_tr, z_tr), held.prepare_cache(f, s_in, s_tr, z_tr)
        with torch.autocast(dev.type, dtype=dtype):
            cache_auto = ref_m.prepare_cache(f, s_in, s_tr, z_tr)
        calls = {}
        for sigma in a.sigmas:
            x = (torch.randn(a.samples, n_atom, 3, generator=torch.Generator().manual_seed(1)) * sigma).to(dev)
            t = torch.full((a.samples,), sigma, device=dev)

            def autocast_call(x=x, t=t):
                with torch.autocast(dev.type, dtype=dtype):
                    return ref_m(x, t, f, None, None, None, cache=cache_auto)
            calls[sigma] = {"fp32": lambda x=x, t=t: ref_m(x, t, f, None, None, None, cache=cache32),
                            "held": lambda x=x, t=t: held(x, t, f, None, None, None, cache=cache_held),
                            "autocast": autocast_call}
        print("| σ (Å) | held: RMS % of σ | held: max % of σ | autocast: RMS % of σ | autocast: max % of σ |")
        print("|---|---|---|---|---|")
        for sigma, fns in calls.items():
            t = torch.full((a.samples,), sigma, device=dev)
            ref = fns["fp32"]()
            eh, ea = _errors(fns["held"](), ref, t), _errors(fns["autocast"](), ref, t)
            print(f"| {sigma:g} | {eh[0]:.2f} | {eh[1]:.2f} | {ea[0]:.2f} | {ea[1]:.2f} |", flush=True)
        sigma = a.sigmas[0]
        best = _interleaved_best(calls[sigma], a.repeats, sync)
    print(f"\n| one denoiser call at σ={sigma:g} (best of {a.repeats}, interleaved) | fp32 s | held bf16 s "
          "| autocast s | held / fp32 | autocast / fp32 |")
    print("|---|---|---|---|---|---|")
    print(f"| {a.device} | {best['fp32']:.3f} | {best['held']:.3f} | {best['autocast']:.3f} "
          f"| {best['held'] / best['fp32']:.2f} | {best['autocast'] / best['fp32']:.2f} |")
    if not native:
        print("\nThis device has no native bf16 matmul (emulated): the time ratios above say nothing about "
              "bf16-capable hardware; the errors hold everywhere.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--sigmas", type=float, nargs="+", default=[160.0, 16.0, 1.0, 0.1])
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-golden", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
    desc, native = hardware(a.device)
    print(f"{a.dtype}: {desc}; native bf16 matmul: {'yes' if native else 'no'}")
    if not a.skip_golden and GOLDEN.exists():
        golden_table(dtype)
    default_table(a, dtype, native)
    return 0


if __name__ == "__main__":
    sys.exit(main())
