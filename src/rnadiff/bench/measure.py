"""Timing, FLOP counting, peak memory and the machine's matmul peak, measured in the same run."""
from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], device: str, repeats: int = 3, warmup: int = 1, best: bool = False) -> float:
    """Median (or with `best`, minimum) seconds of `repeats` calls after `warmup` calls.

    `best` is the estimator of `matmul_peak` (best of n): a fraction of the peak compares like with like."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return min(times) if best else statistics.median(times)


def count_flops(fn: Callable[[], object]) -> int:
    """Model FLOPs of one call (matmuls, attention), as counted by torch's FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak(device: str, dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """Best-of-`repeats` FLOP/s of an n x n matmul: the ceiling the model is compared against.

    A CPU without native support for `dtype` (e.g. bf16 without AVX-512 BF16/AMX) emulates it
    at ~1 GFLOP/s; a small probe detects that and shrinks n so the measurement stays short.
    """
    probe = torch.randn(256, 256, device=device, dtype=dtype)
    synchronize(device)
    t0 = time.perf_counter()
    probe @ probe
    synchronize(device)
    if 2 * 256**3 / max(time.perf_counter() - t0, 1e-9) < 20e9:
        n = 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        synchronize(device)
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def peak_memory_bytes(device: str) -> int:
    """Peak memory of this process so far: CUDA allocator peak, or the resident-set high-water mark."""
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
