"""`rnadiff convert-protenix CKPT --out PATH`: a Protenix checkpoint to rnadiff's own format.

PATH ending in `.safetensors` gives a single file; any other PATH a directory with
`model.safetensors` + `config.json` (see rnadiff.checkpoints.native). The source is read with
weights_only=True: a file that needs arbitrary unpickling is refused (exit code 2).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rnadiff.checkpoints.files import check_can_write
from rnadiff.checkpoints.native import save_checkpoint
from rnadiff.checkpoints.protenix import describe_source, load_protenix_checkpoint


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert-protenix", help="convert a Protenix training checkpoint to rnadiff's format",
        description="Extract the diffusion module of a Protenix checkpoint (dimensions and head counts "
                    "read off the weights) and write it as safetensors + JSON config.")
    p.add_argument("checkpoint", help="Protenix checkpoint (.pt, torch file)")
    p.add_argument("--out", required=True, help="output directory, or a file ending in .safetensors")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--sigma-data", type=float, default=None, help="sigma_data (default 16.0, Protenix's)")
    p.add_argument("--n-queries", type=int, default=None, help="atom window queries (default 32)")
    p.add_argument("--n-keys", type=int, default=None, help="atom window keys (default 128)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_can_write(out, args.overwrite)  # fail before the (possibly long) read
    overrides = {k: v for k, v in (("sigma_data", args.sigma_data), ("n_queries", args.n_queries),
                                   ("n_keys", args.n_keys)) if v is not None}
    module = load_protenix_checkpoint(args.checkpoint, overrides or None)
    written = save_checkpoint(out, module, provenance=describe_source(args.checkpoint), overwrite=args.overwrite)
    c = module.config
    n_params = sum(p.numel() for p in module.parameters())
    print(f"wrote {written}: {n_params} parameters, c_token={c['c_token']}, "
          f"transformer {c['transformer']['n_blocks']} blocks x {c['transformer']['n_heads']} heads")
    return 0
