"""Export a Lightning training checkpoint (ours) as an rnadiff refinement checkpoint.

    python -m rnadiff.train.export RUN/checkpoints/best.ckpt OUT_DIR [--raw] [--overwrite]

The EMA weights are exported unless --raw. The Lightning file is read with weights_only=True.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from rnadiff.checkpoints.refinement import model_from_lightning_checkpoint, save_refinement_checkpoint
from rnadiff.errors import exit_code_of


def export_lightning_checkpoint(path, out, *, use_ema: bool = True, overwrite: bool = False,
                                extra: dict[str, Any] | None = None) -> Path:
    model, info = model_from_lightning_checkpoint(path, use_ema)
    provenance = dict(info.pop("provenance"))
    provenance.update(info)
    provenance.update(extra or {})
    return save_refinement_checkpoint(out, model, provenance, overwrite=overwrite)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rnadiff.train.export", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--raw", action="store_true", help="export the raw (not EMA) weights")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    out = export_lightning_checkpoint(a.checkpoint, a.out, use_ema=not a.raw, overwrite=a.overwrite)
    print(out)
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(exit_code_of(main, "python -m rnadiff.train.export"))
