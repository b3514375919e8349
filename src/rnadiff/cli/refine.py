"""`rnadiff refine INPUT... --out DIR`: all-atom samples from partial/coarse RNA coordinates.

For every input: DIR/<stem>/sample_<k>.<fmt> (B-factor = per-atom spread across samples; sample_0
forms the most asserted base pairs, then is the most central sample, rnadiff.pipeline.ranking) and DIR/<stem>/summary.json. A bad input is
reported on stderr and skipped; the others are still written; the exit code is 2 if any input
failed. Settings beyond the options are Hydra overrides of the refine config, e.g.
`model.stageD.inference.refinement.start_sigma=5`.

`--devices N` shards the inputs over N worker processes (input i to worker i mod N; see
rnadiff.refine.shard): the same files, report lines (in input order) and exit code as one process.

`--from-c1-csv FILE` reads a Stanford RNA 3D Folding submission instead of INPUT files and refines
conformation k of target T as input `T_k` (rnadiff.refine.from_csv; `--shard K/N` for one process
per shard). `--mirror` says what a left-handed (mirror-image) input gets (rnadiff.refine.mirror);
every sample passes the output gate (rnadiff.refine.gate) or is not written.
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
                    "sampling.gamma0) and anchoring.strength / anchoring.until_sigma.",
        epilog="Output gate: a sample with non-finite coordinates, a given atom beyond --given-tolerance (noisy "
               "input: given-atom RMSD over 10 Å), covalent bonds over twice their length, O3'-P links over 12 Å "
               "or a radius of gyration far beyond the input's and the sequence length's is not written; its "
               "summary.json record says \"failed\": reason, one line on stderr names it, and the input counts "
               "as failed. Exit status: 0 when every input was refined; 2 when an option is invalid or any input "
               "failed (each failure is one line on stderr; the other inputs are still written).")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="PDB or mmCIF files (or --from-c1-csv)")
    p.add_argument("--from-c1-csv", metavar="FILE",
                   help="refine every target x conformation of a Stanford RNA 3D Folding submission CSV "
                        "(ID,resname,resid,x_1,y_1,z_1,...): conformation k of target T is the input T_k, "
                        "written to OUT/T_k/; with --c1-csv the result has the same targets and rows and "
                        "--samples conformations (j: sample (j-1) div K of T_((j-1) mod K + 1), K input "
                        "conformations); streamed target by target")
    p.add_argument("--shard", metavar="K/N",
                   help="with --from-c1-csv: only the targets of shard K of N (a fixed split by target name); "
                        "run one process per shard into the same --out")
    p.add_argument("--mirror", choices=("note", "reflect", "error"), default="note",
                   help="a left-handed (mirror image) input: note (default: a note on stderr, refined as given), "
                        "reflect (reflected through the plane x = its centroid's x before refining: the output "
                        "is the mirror-corrected model), error (an input error). The verdict of every input is "
                        "in summary.json (handedness)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--samples", type=int, default=5,
                   help="samples per input (default 5), written best first: sample_0 leaves the fewest asserted "
                        "base pairs unformed, then has the least mean RMSD to the others (summary.json: "
                        "asserted_pairs_missed, consensus_rmsd, drawn_as; postprocess.rank=false keeps the draw order)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0): same seed, same files")
    p.add_argument("--steps", type=int, default=50, help="steps of the full noise schedule (default 50)")
    p.add_argument("--checkpoint", help="refinement checkpoint (directory/.safetensors or a `rnadiff train` "
                                        ".ckpt); default: the one shipped with rnadiff")
    p.add_argument("--format", choices=("cif", "pdb"), default="cif", help="output format (default cif)")
    p.add_argument("--minimize", action="store_true",
                   help="OpenMM energy minimization of every sample (model.stageD.energy_minimization.enabled=true; "
                        "its steps and method apply)")
    kept = p.add_mutually_exclusive_group()
    kept.add_argument("--noisy-input", action="store_true",
                      help="the input coordinates are noisy, e.g. predicted rather than experimental: let the given "
                           "atoms move (default: every given atom stays within --given-tolerance of the input)")
    kept.add_argument("--given-tolerance", type=float, default=0.0, metavar="ANGSTROM",
                      help="largest distance of a given atom in the output from its input position (default 0: "
                           "exactly kept); stated in summary.json")
    p.add_argument("--no-guidance", action="store_true",
                   help="sample without the chemistry guidance (model.stageD.guidance.enabled=false)")
    p.add_argument("--ss", metavar="DOTBRACKET_OR_FILE",
                   help="secondary structure of the input(s) in dot-bracket ('&' between chains), or a file holding "
                        "it (.dbn: the last line): the model takes these base pairs as given")
    p.add_argument("--c1-csv", metavar="FILE", help="also write C1' coordinates of all samples (Stanford layout); when some inputs fail, the "
                        "table holds the others' rows, the failures are named on stderr and the exit code is 2")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per process (default: the machine's cores, divided among --devices "
                        "workers; idle threads sleep, so a busy machine is not slowed); results are identical "
                        "for a given thread count")
    p.add_argument("--devices", type=int, default=1,
                   help="worker processes (default 1); input i goes to worker i mod N, each with --threads "
                        "torch threads; outputs are identical to a single-process run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    accept_trailing_overrides(p)


def settings_from(args: argparse.Namespace, overrides: list[str]):
    """RefineSettings from the options and the refine config (`+standalone_refine=default` + overrides)."""
    from omegaconf import OmegaConf

    from rnadiff.config import load_config
    from rnadiff.pipeline.stage_config import FINISH_GROUPS, finish_options, pipeline_settings

    cfg = load_config([REFINE_GROUP, *overrides], config_name="refine")
    options = finish_options({k: OmegaConf.to_container(cfg[k], resolve=True) for k in FINISH_GROUPS})
    return pipeline_settings(
        OmegaConf.to_container(cfg.model.stageD, resolve=True), options,
        n_samples=args.samples, num_steps=args.steps, seed=args.seed,
        noisy_input=getattr(args, "noisy_input", False), given_tolerance=getattr(args, "given_tolerance", 0.0),
        guidance=not getattr(args, "no_guidance", False), minimize=getattr(args, "minimize", False),
        explicit_start=any(o.lstrip("+").startswith("model.stageD.inference.refinement.") for o in overrides))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rnadiff.refine import load_refinement_model

    import torch

    if args.devices < 1:
        raise InputError(f"--devices must be >= 1, got {args.devices}")
    if args.threads is None:
        args.threads = max(1, torch.get_num_threads() // args.devices)
    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    inputs, extra = split_overrides(list(args.inputs))
    overrides = extra + list(getattr(args, "overrides", []) or [])
    shard = _check_sources(args, inputs)
    settings = settings_from(args, overrides)
    if args.c1_csv and Path(args.c1_csv).exists() and not args.overwrite:
        raise RnadiffError(f"{args.c1_csv}: already exists (use --overwrite to replace it)")
    ss = None
    if args.ss is not None:
        from rnadiff.refine.files import read_secondary_structure

        ss = read_secondary_structure(args.ss)
    model, source = load_refinement_model(args.checkpoint)  # a bad checkpoint fails here, before any worker
    if args.from_c1_csv is not None:
        n_inputs, n_failed = _refine_submission(args, model, source, settings, shard)
    else:
        n_inputs, n_failed = len(inputs), _refine_files(inputs, args, model, source, settings, ss)
    if n_failed:
        if n_inputs > 1:  # one input: its own error line says it all
            print(f"rnadiff: {n_failed} of {n_inputs} inputs failed", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _check_sources(args: argparse.Namespace, inputs: list[str]) -> tuple[int, int] | None:
    """INPUT files or --from-c1-csv (with its --shard); returns the shard or None."""
    if args.from_c1_csv is None:
        if not inputs:
            raise InputError("no INPUT files given (or --from-c1-csv FILE)")
        if args.shard is not None:
            raise InputError("--shard K/N applies to --from-c1-csv (INPUT files: --devices N)")
        return None
    from rnadiff.io.submission import parse_shard

    if inputs:
        raise InputError(f"give INPUT files or --from-c1-csv, not both (got {inputs[0]} and {args.from_c1_csv})")
    if args.devices > 1:
        raise InputError("--devices applies to INPUT files; split a submission with one process per --shard K/N")
    if args.ss is not None:
        raise InputError("--ss applies to INPUT files: the targets of a submission differ in sequence")
    return parse_shard(args.shard) if args.shard is not None else None


def _refine_files(inputs, args, model, source, settings, ss) -> int:
    """The INPUT files (in workers with --devices); returns how many failed."""
    from rnadiff.refine import write_c1_csv
    from rnadiff.refine.shard import refine_sharded

    if args.devices > 1 and len(inputs) > 1:
        del model
        outcomes = refine_sharded(inputs, args.devices, out=args.out, checkpoint=args.checkpoint, settings=settings,
                                  fmt=args.format, overwrite=args.overwrite, threads=args.threads,
                                  c1=bool(args.c1_csv), secondary_structure=ss, mirror=args.mirror)
        for o in outcomes:
            _report(o)
    else:
        outcomes = _refine_here(inputs, args, model, source, settings, ss)
    rows = [r for o in outcomes for r in o.c1_rows]
    if args.c1_csv and rows:
        write_c1_csv(args.c1_csv, rows, settings.n_samples, overwrite=True)
    return sum(o.error is not None for o in outcomes)


def _refine_submission(args, model, source, settings, shard) -> tuple[int, int]:
    """Every target x conformation of --from-c1-csv, streamed; returns (inputs, failed)."""
    from rnadiff.refine.from_csv import C1Table, refine_submission

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(unit="step", desc="refine", file=sys.stderr, leave=False)
    table = C1Table(args.c1_csv, settings.n_samples) if args.c1_csv else None
    try:
        counts = refine_submission(args.from_c1_csv, args.out, model, settings, report=_report, shard=shard,
                                   c1_table=table, fmt=args.format, overwrite=args.overwrite, checkpoint=source,
                                   progress=bar.update if bar is not None else None, mirror=args.mirror)
    except BaseException:
        if table is not None:
            table.discard()
        raise
    finally:
        if bar is not None:
            bar.close()
    if table is not None:
        table.commit()
    return counts


def _report(outcome) -> None:
    """An input's mirror note and error (stderr) and its report line (stdout; also for an input
    whose samples were written in part, next to the error naming the failed ones)."""
    for note in outcome.notes:
        print(note, file=sys.stderr)
    if outcome.line is not None:
        print(outcome.line)
    if outcome.error is not None:
        print(f"rnadiff: error: {outcome.error}", file=sys.stderr)


def _refine_here(inputs, args, model, source, settings, ss) -> list:
    """The inputs one after the other in this process, with a progress bar over denoiser calls."""
    from pathlib import Path

    from rnadiff.refine.core import denoiser_calls
    from rnadiff.refine.shard import refine_one

    calls = denoiser_calls(settings, model.sigma_data)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=calls * len(inputs), unit="step", desc="refine", file=sys.stderr, leave=False)
    outcomes = []
    for i, path in enumerate(inputs):
        if bar is not None:
            bar.set_postfix_str(Path(path).name)
        o = refine_one(i, path, args.out, model, settings, fmt=args.format, overwrite=args.overwrite,
                       checkpoint=source, c1=bool(args.c1_csv), secondary_structure=ss,
                       progress=bar.update if bar is not None else None, mirror=args.mirror)
        _report(o)
        outcomes.append(o)
        if bar is not None and bar.n < calls * (i + 1):
            bar.update(calls * (i + 1) - bar.n)  # a failed input's share
    if bar is not None:
        bar.close()
    return outcomes
