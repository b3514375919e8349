"""One benchmark row per RNA length: denoiser step (fp32 / bf16, cached / uncached), the full
sampler per structure, one training step, FLOPs, and the token transformer's share of the peak.

Each length runs in a fresh subprocess so that its peak memory is its own.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass

import torch

from rnadiff.bench.measure import count_flops, matmul_peak, peak_memory_bytes, time_call
from rnadiff.bench.systems import benchmark_system
from rnadiff.model.diffusion_module import DiffusionModule

DEFAULT_LENGTHS = (32, 64, 128, 256, 512)


@dataclass
class Row:
    n_token: int
    n_atom: int
    n_sample: int
    device: str
    cache_s: float  # prepare_cache, once per structure
    step_fp32_s: float  # one denoiser call with the cache
    step_bf16_s: float | None  # same under bf16 autocast
    step_uncached_s: float | None  # one call recomputing the conditioning (before the cache)
    bf16_max_coord_err: float | None  # |x̂_bf16 - x̂_fp32| max, Å
    flops_per_step: int
    achieved_fp32_tflops: float
    transformer_flops: int
    transformer_fp32_s: float
    transformer_peak_fraction_fp32: float  # best-of-repeats FLOP/s over the best-of matmul peak
    train_step_s: float | None
    sampler_200_steps_s: float  # cache + 200 steps (fp32; measured per step x 200)
    peak_mem_gb: float  # whole row: includes the uncached call and the training step where run
    sampler_peak_mem_gb: float  # cache + cached denoiser steps: what sampling needs
    step_compiled_s: float | None = None  # DiffusionModule.compile_blocks (torch.compile), after compiling
    compile_s: float | None = None  # first compiled call (compilation included)
    compiled_max_coord_err: float | None = None  # |x̂_compiled - x̂_eager| max, Å


def _module(small: bool, device: str) -> DiffusionModule:
    if small:  # for smoke tests of the harness itself
        kw = dict(c_atom=32, c_atompair=8, c_token=64, c_s=48, c_z=16, c_s_inputs=40, c_noise_embedding=32,
                  atom_encoder={"n_blocks": 1, "n_heads": 2}, transformer={"n_blocks": 2, "n_heads": 4},
                  atom_decoder={"n_blocks": 1, "n_heads": 2})
    else:
        kw = {}
    module = DiffusionModule(**kw, initialization={"zero_init_dit_output": False}).to(device).eval()
    return module


def _time_bf16(step, ref: torch.Tensor, device: str, repeats: int) -> tuple[float, float]:
    """(seconds of the step under bf16 autocast, its largest coordinate difference from float32)."""
    def step_bf16():
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16):
            return step()
    return time_call(step_bf16, device, repeats=repeats), (step_bf16().float() - ref).abs().max().item()


def _time_training_step(module, xt: torch.Tensor, t: torch.Tensor, inputs: tuple, device: str) -> float:
    """Seconds of one forward + backward of one sample (full autograd, no checkpointing)."""
    module.train()

    def train_step():
        out = module(xt, t, *inputs)
        (out**2).mean().backward()
        module.zero_grad(set_to_none=True)

    return time_call(train_step, device, repeats=1)


def run_one(n_token: int, n_sample: int, device: str, small: bool, train: bool, uncached: bool,
            bf16: bool, repeats: int, fp32_peak: float, threads: int | None = None, compile: bool = False) -> Row:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    module = _module(small, device)
    c = module.config
    f, s_in, s_tr, z_tr = benchmark_system(n_token, c["c_s_inputs"], c["c_s"], c["c_z"], device=device)
    n_atom = f["ref_pos"].shape[0]
    x = torch.randn(n_sample, n_atom, 3, device=device) * 16
    t = torch.full((n_sample,), 10.0, device=device)
    with torch.no_grad():
        cache_s = time_call(lambda: module.prepare_cache(f, s_in, s_tr, z_tr), device, repeats=1, warmup=0)
        cache = module.prepare_cache(f, s_in, s_tr, z_tr)
        step = lambda: module(x, t, f, s_in, s_tr, z_tr, cache=cache, inplace_safe=True)  # noqa: E731
        step_fp32 = time_call(step, device, repeats=repeats)
        flops = count_flops(step)
        ref = step()
        # The sampler's high-water mark (cache + cached steps), before the uncached, compiled and
        # training measurements below raise it (training keeps every activation for backward).
        sampler_peak = peak_memory_bytes(device) / 2**30
        step_bf16, err = _time_bf16(step, ref, device, repeats) if bf16 else (None, None)
        uncached_s = None
        if uncached:
            uncached_s = time_call(lambda: module(x, t, f, s_in, s_tr, z_tr), device, repeats=1)
        # the token transformer alone, at the shapes of the sampler's step: every sample at one σ,
        # so s (and each block's AdaLN/gate projections of it) is computed once, as in f_forward
        s_single = module.diffusion_conditioning.single(t[:1], cache.single_base)
        a = torch.randn(n_sample, n_token, c["c_token"], device=device)
        trf = lambda: module.diffusion_transformer(a, s_single, biases=cache.token_biases, inplace_safe=True)  # noqa: E731
        trf_s = time_call(trf, device, repeats=repeats, best=True)
        trf_flops = count_flops(trf)
        # The peak again, in this process and right now: a core's clock moves with the load on its
        # neighbours, and a fraction must compare numbers taken under the same conditions.
        peak = max(fp32_peak, matmul_peak(device, torch.float32))
        step_compiled = compile_s = compiled_err = None
        if compile:
            module.compile_blocks(dynamic=False)
            compile_s = time_call(step, device, repeats=1, warmup=0)
            step_compiled = time_call(step, device, repeats=repeats)
            compiled_err = (step() - ref).abs().max().item()
    train_s = _time_training_step(module, x[:1].clone(), t[:1], (f, s_in, s_tr, z_tr), device) if train else None
    return Row(
        n_token=n_token, n_atom=n_atom, n_sample=n_sample, device=device, cache_s=cache_s,
        step_fp32_s=step_fp32, step_bf16_s=step_bf16, step_uncached_s=uncached_s, bf16_max_coord_err=err,
        flops_per_step=flops, achieved_fp32_tflops=flops / step_fp32 / 1e12,
        transformer_flops=trf_flops, transformer_fp32_s=trf_s,
        transformer_peak_fraction_fp32=trf_flops / trf_s / peak,
        train_step_s=train_s, sampler_200_steps_s=cache_s + 200 * step_fp32,
        peak_mem_gb=peak_memory_bytes(device) / 2**30, sampler_peak_mem_gb=sampler_peak,
        step_compiled_s=step_compiled, compile_s=compile_s, compiled_max_coord_err=compiled_err,
    )


def run_in_subprocess(args: dict) -> Row:
    """Run one row in a fresh interpreter (clean peak-memory reading)."""
    code = (
        "import json,sys; from dataclasses import asdict; from rnadiff.bench.denoiser import run_one; "
        "print(json.dumps(asdict(run_one(**json.loads(sys.argv[1])))))"
    )
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark row {args['n_token']} failed:\n{proc.stderr[-2000:]}")
    return Row(**json.loads(proc.stdout.strip().splitlines()[-1]))


def machine_peaks(device: str) -> dict[str, float]:
    return {
        "matmul_fp32_tflops": matmul_peak(device, torch.float32) / 1e12,
        "matmul_bf16_tflops": matmul_peak(device, torch.bfloat16) / 1e12,
    }


def rows_as_json(rows: list[Row]) -> list[dict]:
    return [asdict(r) for r in rows]
