"""`rnadiff bench`: the denoiser performance table and plot (see rnadiff.bench)."""
from __future__ import annotations

import json
from pathlib import Path

from rnadiff.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="benchmark the denoiser, an end-to-end refine and a minimization (time, memory, FLOP/s)")
    p.add_argument("--lengths", type=int, nargs="+", default=None, help="N_token values (default 32 64 128 256 512)")
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--small", action="store_true", help="tiny model dims (smoke test of the harness)")
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument("--compile", action="store_true",
                   help="also time the torch.compile'd blocks (DiffusionModule.compile_blocks): ratio and max error")
    p.add_argument("--train-max", type=int, default=128, help="largest N_token with a training-step row")
    p.add_argument("--uncached-max", type=int, default=128, help="largest N_token with an uncached-call row")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (peak and model alike)")
    p.add_argument("--out", type=Path, default=Path("bench_out"))
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from rnadiff.bench.denoiser import DEFAULT_LENGTHS, machine_peaks, rows_as_json, run_in_subprocess
    from rnadiff.bench.report import markdown_table, plot

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but no CUDA device is available")
    lengths = args.lengths or list(DEFAULT_LENGTHS)
    if any(n < 1 for n in lengths) or args.samples < 1:
        raise ConfigError("lengths and --samples must be positive")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    peaks = machine_peaks(args.device)
    use_bf16 = not args.no_bf16
    if use_bf16 and peaks["matmul_bf16_tflops"] < peaks["matmul_fp32_tflops"]:
        print(
            f"bf16 matmul peak {peaks['matmul_bf16_tflops'] * 1e3:.1f} GFLOP/s is below fp32's "
            f"{peaks['matmul_fp32_tflops'] * 1e3:.1f}: this device has no native bf16, skipping bf16 rows"
        )
        use_bf16 = False
    rows = []
    for n in lengths:
        rows.append(run_in_subprocess(dict(
            n_token=n, n_sample=args.samples, device=args.device, small=args.small,
            train=n <= args.train_max, uncached=n <= args.uncached_max, bf16=use_bf16,
            repeats=args.repeats, fp32_peak=peaks["matmul_fp32_tflops"] * 1e12, threads=args.threads,
            compile=args.compile,
        )))
        print(f"N_token={n}: step {rows[-1].step_fp32_s:.3f} s fp32", flush=True)
    table = markdown_table(rows, peaks, args.threads)
    (args.out / "bench.md").write_text(table)
    (args.out / "bench.json").write_text(json.dumps({"peaks": peaks, "rows": rows_as_json(rows)}, indent=2))
    if len(rows) >= 2:
        plot(rows, args.out / "bench.png")
    print(table)
    return 0
