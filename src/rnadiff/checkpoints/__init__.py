"""Checkpoints: Protenix training checkpoints in, rnadiff's own safetensors format in and out.

    load_protenix_checkpoint(path, config=None) -> DiffusionModule   (Protenix torch file, safe)
    save_checkpoint(path, module, provenance=None, *, overwrite=False) -> Path
    load_checkpoint(path, config=None) -> DiffusionModule           (rnadiff format)
    load_any_checkpoint(path, config=None) -> DiffusionModule       (dispatch by content)
    read_checkpoint_document(path) -> dict                          (config + provenance only)
"""
from __future__ import annotations

from rnadiff.checkpoints.build import infer_config
from rnadiff.checkpoints.dispatch import load_any_checkpoint
from rnadiff.checkpoints.native import load_checkpoint, read_checkpoint_document, save_checkpoint
from rnadiff.checkpoints.protenix import load_protenix_checkpoint

__all__ = [
    "infer_config", "load_any_checkpoint", "load_checkpoint", "load_protenix_checkpoint",
    "read_checkpoint_document", "save_checkpoint",
]
