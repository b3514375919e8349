"""`rnadiff refine INPUT... --out DIR`: all-atom samples from partial/coarse RNA coordinates.

For every input: DIR/<stem>/sample_<k>.<fmt> (B-factor = per-atom spread across samples) and
DIR/<stem>/summary.json. A bad input is reported on stderr and skipped; the others are still
written; the exit code is 2 if any input failed. Settings beyond the options are Hydra overrides
of the refine config, e.g. `model.stageD.inference.refinement.start_sigma=5`.
"""
from __future__ import annotations

import argparse
import sys

from rnadiff.cli.overrides import accept_trailing_overrides, split_overrides
from rnadiff.errors import InputError, RnadiffError

EXIT_FAILED = 2
REFINE_GROUP = "+standalone_refine=default"  # config/standalone_refine/default.yaml (anchoring, start σ)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "refine", help="refine partial/coarse RNA models into all-atom structures",
        description="Refine PDB/mmCIF inputs with any subset of heavy atoms (C1' only, P only, backbone, "
                    "all atoms) into all-atom samples with the diffusion model. Extra key=value words "
                    "override the refine config: model.stageD.inference.* (e.g. refinement.start_sigma, "
                    "sampling.gamma0) and anchoring.strength / anchoring.until_sigma.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="PDB or mmCIF files")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--samples", type=int, default=5, help="samples per input (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0): same seed, same files")
    p.add_argument("--steps", type=int, default=50, help="steps of the full noise schedule (default 50)")
    p.add_argument("--checkpoint", help="refinement checkpoint (directory/.safetensors or a `rnadiff train` "
                                        ".ckpt); default: the one shipped with rnadiff")
    p.add_argument("--format", choices=("cif", "pdb"), default="cif", help="output format (default cif)")
    p.add_argument("--minimize", action="store_true", help="OpenMM energy minimization of every sample")
    p.add_argument("--c1-csv", metavar="FILE", help="also write C1' coordinates of all samples (Stanford layout)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a shared or busy machine more threads spin and "
                        "can be several times slower; results are identical for a given thread count)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    accept_trailing_overrides(p)


def settings_from(args: argparse.Namespace, overrides: list[str]):
    from omegaconf import OmegaConf

    from rnadiff.config import load_config
    from rnadiff.refine import RefineSettings

    cfg = load_config([REFINE_GROUP, *overrides], config_name="refine")
    inf = OmegaConf.to_container(cfg.model.stageD.inference, resolve=True)
    sched = OmegaConf.to_container(cfg.model.stageD.schedule, resolve=True)
    smp = dict(inf["sampling"])
    chunk = smp.pop("diffusion_chunk_size")
    smp.pop("inplace_safe", None)
    smp["temperature"] = inf["temperature"]
    ref = inf["refinement"]
    explicit = any(o.lstrip("+").startswith("model.stageD.inference.refinement.") for o in overrides)
    dense = None if explicit or cfg.start.dense_sigma is None else float(cfg.start.dense_sigma)
    return RefineSettings(n_samples=args.samples, num_steps=args.steps, seed=args.seed,
                          start_sigma=ref["start_sigma"], start_fraction=ref["start_fraction"], sampling=smp,
                          dense_start_sigma=dense, dense_fraction=float(cfg.start.dense_fraction),
                          schedule={k: sched[k] for k in ("s_max", "s_min", "p")}, diffusion_chunk_size=chunk,
                          anchor_strength=float(cfg.anchoring.strength),
                          anchor_until_sigma=float(cfg.anchoring.until_sigma),
                          regularize=bool(cfg.postprocess.regularize),
                          regularize_tether=float(cfg.postprocess.tether),
                          regularize_iterations=int(cfg.postprocess.max_iter))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rnadiff.refine import load_refinement_model, refine_file, write_c1_csv
    from rnadiff.refine.c1csv import c1_rows
    from rnadiff.refine.core import denoiser_calls
    from rnadiff.refine.files import output_dir_for

    import torch

    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    inputs, extra = split_overrides(list(args.inputs))
    overrides = extra + list(getattr(args, "overrides", []) or [])
    if not inputs:
        raise InputError("no INPUT files given")
    settings = settings_from(args, overrides)
    minimize_config = None
    if args.minimize:
        from rnadiff.minimize import MinimizationConfig

        minimize_config = MinimizationConfig()
    if args.c1_csv and Path(args.c1_csv).exists() and not args.overwrite:
        raise RnadiffError(f"{args.c1_csv}: already exists (use --overwrite to replace it)")
    model, source = load_refinement_model(args.checkpoint)
    calls = denoiser_calls(settings, model.sigma_data)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=calls * len(inputs), unit="step", desc="refine", file=sys.stderr, leave=False)
    failed, rows = [], []
    for path in inputs:
        if bar is not None:
            bar.set_postfix_str(Path(path).name)
        try:
            summary, result = refine_file(path, args.out, model, settings, fmt=args.format, overwrite=args.overwrite,
                                          minimize_config=minimize_config, checkpoint=source,
                                          progress=bar.update if bar is not None else None)
            if args.c1_csv:
                rows += c1_rows(output_dir_for(path, args.out).name, result.features.layout, result.samples)
            worst = max(r["clashes_per_1000_atoms"] for r in summary["samples"])
            print(f"{path}: {summary['n_residues']} nt, {len(summary['samples'])} samples -> "
                  f"{output_dir_for(path, args.out)} ({summary['sampling_seconds']:.1f} s, given-atom RMSD "
                  f"{min(r['given_atom_rmsd'] for r in summary['samples']):.2f} Å, clashes/1000 <= {worst:.1f})")
        except RnadiffError as exc:
            failed.append(path)
            text = str(exc)
            print(f"rnadiff: error: {text if str(path) in text else f'{path}: {text}'}", file=sys.stderr)
        if bar is not None and bar.n < calls * (inputs.index(path) + 1):
            bar.update(calls * (inputs.index(path) + 1) - bar.n)  # a failed input's share
    if bar is not None:
        bar.close()
    if args.c1_csv and rows:
        write_c1_csv(args.c1_csv, rows, settings.n_samples, overwrite=True)
    if failed:
        print(f"rnadiff: {len(failed)} of {len(inputs)} inputs failed", file=sys.stderr)
        return EXIT_FAILED
    return 0
