"""Which refinement model to use: the packaged default, a refinement checkpoint, or our Lightning .ckpt."""
from __future__ import annotations

import os
from pathlib import Path

from rnadiff.checkpoints.files import TORCH, sniff
from rnadiff.errors import CheckpointError
from rnadiff.checkpoints.refinement import load_refinement_checkpoint
from rnadiff.model.refinement_model import RefinementModel

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "default"


def load_refinement_model(path: str | os.PathLike | None = None) -> tuple[RefinementModel, str]:
    """(model in eval mode, description of its source). None: the checkpoint shipped in the package."""
    if path is None:
        if not (DEFAULT_CHECKPOINT / "config.json").is_file():
            raise CheckpointError(f"no default checkpoint in {DEFAULT_CHECKPOINT}; pass --checkpoint PATH")
        return load_refinement_checkpoint(DEFAULT_CHECKPOINT), "default"
    p = Path(path)
    if p.is_file() and sniff(p) == TORCH:  # a training checkpoint of `rnadiff train`: its EMA weights
        from rnadiff.train.export import model_from_lightning_checkpoint

        model, _ = model_from_lightning_checkpoint(p)
        return model, str(p)
    return load_refinement_checkpoint(p), str(p)
