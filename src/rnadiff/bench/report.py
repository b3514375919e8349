"""Benchmark table (markdown) and the time/memory-vs-length plot with fitted scaling exponents."""
from __future__ import annotations

import math
from pathlib import Path

from rnadiff.bench.denoiser import Row


def scaling_exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x (y ~ x^k)."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    var = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / var if var else float("nan")


def markdown_table(rows: list[Row], peaks: dict[str, float], threads: int | None = None) -> str:
    head = (
        f"threads: {threads or 'torch default'}; "
        f"matmul peak (best of 10, measured in the same run; the transformer's fraction uses the larger of this and a re-measurement in its own process): fp32 {peaks['matmul_fp32_tflops'] * 1e3:.0f} GFLOP/s, "
        f"bf16 {peaks['matmul_bf16_tflops'] * 1e3:.0f} GFLOP/s\n\n"
        "| N_token | N_atom | samples | cache s | step fp32 s | step bf16 s | bf16/fp32 | uncached/cached | "
        "bf16 max err Å | compiled s | eager/compiled | compiled max err Å | GFLOP/step | fp32 GFLOP/s | "
        "transformer % fp32 peak | train step s | 200-step sampler s | sampler peak GB | row peak GB |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        bf = f"{r.step_bf16_s:.3f}" if r.step_bf16_s else "–"
        ratio = f"{r.step_fp32_s / r.step_bf16_s:.2f}x" if r.step_bf16_s else "–"
        unc = f"{r.step_uncached_s / r.step_fp32_s:.2f}x" if r.step_uncached_s else "–"
        err = f"{r.bf16_max_coord_err:.3f}" if r.bf16_max_coord_err is not None else "–"
        tr = f"{r.train_step_s:.2f}" if r.train_step_s else "–"
        comp = f"{r.step_compiled_s:.3f}" if r.step_compiled_s else "–"
        comp_ratio = f"{r.step_fp32_s / r.step_compiled_s:.2f}x" if r.step_compiled_s else "–"
        comp_err = f"{r.compiled_max_coord_err:.1e}" if r.compiled_max_coord_err is not None else "–"
        lines.append(
            f"| {r.n_token} | {r.n_atom} | {r.n_sample} | {r.cache_s:.3f} | {r.step_fp32_s:.3f} | {bf} | {ratio} | {unc} | "
            f"{err} | {comp} | {comp_ratio} | {comp_err} | {r.flops_per_step / 1e9:.1f} | {r.achieved_fp32_tflops * 1e3:.0f} | "
            f"{100 * r.transformer_peak_fraction_fp32:.0f}% | {tr} | {r.sampler_200_steps_s:.0f} | {r.sampler_peak_mem_gb:.2f} | {r.peak_mem_gb:.2f} |"
        )
    return head + "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r.n_token for r in rows]
    t = [r.step_fp32_s for r in rows]
    m = [r.sampler_peak_mem_gb for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.loglog(n, t, "o-", label=f"fp32 step (k={scaling_exponent(n, t):.2f})")
    bf = [r.step_bf16_s for r in rows]
    if all(bf):
        ax1.loglog(n, bf, "s-", label=f"bf16 step (k={scaling_exponent(n, bf):.2f})")
    comp = [r.step_compiled_s for r in rows]
    if all(comp):
        ax1.loglog(n, comp, "^-", label=f"compiled step (k={scaling_exponent(n, comp):.2f})")
    ax1.set_xlabel("N_token (nt)")
    ax1.set_ylabel("seconds per denoiser step")
    ax1.legend()
    ax2.loglog(n, m, "o-", label=f"sampler peak memory (k={scaling_exponent(n, m):.2f})")
    ax2.set_xlabel("N_token (nt)")
    ax2.set_ylabel("GiB")
    ax2.legend()
    fig.suptitle(f"rnadiff denoiser, {rows[0].n_sample} samples, {rows[0].device}")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)
