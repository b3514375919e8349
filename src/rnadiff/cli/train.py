"""`rnadiff train key=value ...`: train the standalone refinement model (Hydra-composed, Lightning).

The config is `train.yaml` + `standalone/default.yaml` (data, crops, partial inputs, trainer,
conditioner, a CPU-sized denoiser); every key can be overridden, e.g.

    rnadiff train data.path=../shared/data/rna_dev.tar.gz trainer.max_steps=2000 \\
        trainer.run_dir=runs/default model.stageD.c_token=96 export.path=runs/default/export

Re-running the same command continues from RUN_DIR/checkpoints/last.ckpt (trainer.resume=auto).
"""
from __future__ import annotations

import argparse
import shlex
import sys

from rnadiff.cli.overrides import accept_trailing_overrides

STANDALONE_GROUP = "+standalone=default"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the standalone refinement model",
        description="Train CoordinateConditioner + DiffusionModule on PDB/mmCIF chains. Settings are "
                    "Hydra overrides (key=value), e.g. data.path=DIR trainer.max_steps=500 "
                    "model.stageD.c_token=64; --show-config prints the composed config.")
    p.add_argument("--show-config", action="store_true", help="print the composed config and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(func=run)
    accept_trailing_overrides(p)


def compose(overrides: list[str]):
    from rnadiff.config import load_config

    return load_config([STANDALONE_GROUP, *overrides], config_name="train")


def run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    cfg = compose(list(args.overrides))
    if args.show_config:
        print(OmegaConf.to_yaml(cfg))
        return 0
    from rnadiff.train.run import train_from_config

    command = "rnadiff train " + " ".join(shlex.quote(o) for o in args.overrides)
    result = train_from_config(cfg, command=command)
    if not result.is_global_zero:
        return 0  # one summary line per run, from rank 0
    m = result.metrics
    parts = [f"{k}={m[k]:.4f}" for k in ("train_loss", "val_loss") if k in m]
    print(f"trained to step {result.global_step} ({', '.join(parts) or 'no metrics'}); "
          f"last checkpoint {result.last_checkpoint}"
          + (f"; best {result.best_checkpoint}" if result.best_checkpoint else "")
          + (f"; exported {result.exported}" if result.exported else ""), file=sys.stdout)
    return 0
