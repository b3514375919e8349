"""`rnadiff bench`: the denoiser performance table and plot, plus end-to-end rows (start-up,
`rnadiff refine` per input and sample count, `rnadiff.minimize`); see rnadiff.bench."""
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
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                   help="what to measure (default all): denoiser rows, end-to-end refine rows (fresh "
                        "process each, start included), minimize rows")
    p.add_argument("--refine-inputs", type=Path, nargs="+", default=None,
                   help="structures for the refine rows (default: the bundled 26-nt C1'-only example)")
    p.add_argument("--refine-samples", type=int, nargs="+", default=None, help="sample counts (default 1 5)")
    p.add_argument("--minimize-inputs", type=Path, nargs="+", default=None,
                   help="all-atom structures for the minimize rows (default: the bundled 26-nt chain)")
    p.add_argument("--minimize-noise", type=float, default=0.5, help="Å of Gaussian noise before minimizing")
    p.add_argument("--e2e-repeats", type=int, default=1, help="runs per refine row (median)")
    p.set_defaults(func=run)


PARTS = ("denoiser", "refine", "minimize")


def run(args) -> int:
    from rnadiff.io.atomic import atomic_write_text

    _check(args)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {}
    tables = []
    if "denoiser" in args.parts:
        table, report["peaks"], report["rows"] = _denoiser(args)
        tables.append(table)
    e2e = _end_to_end(args)
    report.update({k: v for k, v in e2e.items() if v})
    if any(e2e.values()):
        from rnadiff.bench.endtoend import markdown

        tables.append(markdown(e2e["startup"], e2e["refine"], e2e["minimize"]))
    text = "\n".join(tables)
    atomic_write_text(args.out / "bench.md", text)
    atomic_write_text(args.out / "bench.json", json.dumps(report, indent=2))
    print(text)
    return 0


def _check(args) -> None:
    """Bad options fail before anything is measured."""
    if args.device.startswith("cuda") and "denoiser" in args.parts:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda requested but no CUDA device is available")
    if any(n < 1 for n in (args.lengths or [1])) or args.samples < 1:
        raise ConfigError("lengths and --samples must be positive")
    if any(n < 1 for n in (args.refine_samples or [1])) or args.e2e_repeats < 1 or args.minimize_noise < 0:
        raise ConfigError("--refine-samples and --e2e-repeats must be positive, --minimize-noise >= 0")
    if args.repeats < 1 or (args.threads is not None and args.threads < 1):
        raise ConfigError("--repeats and --threads must be positive")
    for path in (args.refine_inputs or []) + (args.minimize_inputs or []):
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no such file")


def _end_to_end(args) -> dict:
    from rnadiff.bench import endtoend as e2e

    out = {"startup": None, "refine": [], "minimize": []}
    if "refine" in args.parts:
        out["startup"] = e2e.startup_row(repeats=3)
        for path in args.refine_inputs or e2e.DEFAULT_REFINE_INPUTS:
            for n in args.refine_samples or e2e.DEFAULT_REFINE_SAMPLES:
                out["refine"].append(e2e.refine_row(path, n, repeats=args.e2e_repeats, threads=args.threads))
                print(f"refine {Path(path).name} x{n}: {out['refine'][-1]['wall_s']:.2f} s", flush=True)
    if "minimize" in args.parts:
        for path in args.minimize_inputs or e2e.DEFAULT_MINIMIZE_INPUTS:
            out["minimize"].append(e2e.minimize_row(path, noise=args.minimize_noise))
            print(f"minimize {Path(path).name}: {out['minimize'][-1]['seconds']:.1f} s", flush=True)
    return out


def _denoiser(args) -> tuple[str, dict, list]:
    import torch

    from rnadiff.bench.denoiser import DEFAULT_LENGTHS, machine_peaks, rows_as_json, run_in_subprocess
    from rnadiff.bench.report import markdown_table, plot

    lengths = args.lengths or list(DEFAULT_LENGTHS)
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
    if len(rows) >= 2:
        plot(rows, args.out / "bench.png")
    return markdown_table(rows, peaks, args.threads), peaks, rows_as_json(rows)
