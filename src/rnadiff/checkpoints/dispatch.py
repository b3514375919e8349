"""`load_any_checkpoint`: one entry point for every checkpoint kind, chosen by content.

- a directory or a safetensors file -> rnadiff's own format (`native.load_checkpoint`);
- a torch file (zip or legacy pickle) -> a Protenix training checkpoint or a bare DiffusionModule
  state dict (`protenix.load_protenix_checkpoint`, read with weights_only=True).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rnadiff.checkpoints.files import TORCH, sniff
from rnadiff.checkpoints.native import load_checkpoint
from rnadiff.checkpoints.protenix import load_protenix_checkpoint
from rnadiff.model.diffusion_module import DiffusionModule


def load_any_checkpoint(path: str | os.PathLike, config: Mapping[str, Any] | None = None) -> DiffusionModule:
    """The DiffusionModule stored at `path`, whatever its format; CheckpointError if none fits."""
    if sniff(path) == TORCH:
        return load_protenix_checkpoint(path, config)
    return load_checkpoint(path, config)
