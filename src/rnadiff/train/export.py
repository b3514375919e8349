"""Export a Lightning training checkpoint (ours) as an rnadiff refinement checkpoint.

    python -m rnadiff.train.export RUN/checkpoints/best.ckpt OUT_DIR [--raw] [--overwrite]

The EMA weights are exported unless --raw. The Lightning file is read with weights_only=True.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import torch

from rnadiff.checkpoints.files import safe_torch_load
from rnadiff.errors import CheckpointError
from rnadiff.checkpoints.refinement import save_refinement_checkpoint
from rnadiff.model.refinement_model import RefinementModel


def model_from_lightning_checkpoint(path: str | os.PathLike, use_ema: bool = True) -> tuple[RefinementModel, dict[str, Any]]:
    """(RefinementModel with the EMA or raw weights, info: step, hparams) from our Lightning .ckpt."""
    ckpt = safe_torch_load(path)
    try:
        hp = ckpt["hyper_parameters"]
        model = RefinementModel(**hp["model_config"])
        if use_ema:
            state = ckpt["ema"]
        else:
            state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not an rnadiff training checkpoint ({exc})") from None
    info = {"steps": int(ckpt.get("global_step", 0)), "provenance": hp.get("provenance") or {},
            "weights": "ema" if use_ema else "raw", "source_checkpoint": str(path)}
    for name, state in (ckpt.get("callbacks") or {}).items():
        score = state.get("best_model_score") if isinstance(state, dict) else None
        if name.startswith("ModelCheckpoint") and score is not None:
            info["best_val_loss"] = float(score)  # EMA weights on the held-out sequences
    return model.eval(), info


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
    sys.exit(main())
