"""rnadiff's own checkpoint format: safetensors weights + a JSON config.

Layout (chosen by the path given to `save_checkpoint`):
- a directory `DIR/` holding `model.safetensors` (the weights, Protenix key names) and
  `config.json` (the document below). This is the canonical layout;
- a single file `NAME.safetensors`: the same document stored in the safetensors metadata under
  `rnadiff_config`. The directory's `model.safetensors` carries that metadata too, so the weights
  file alone is a complete checkpoint.

The JSON document:
    {"format": "rnadiff-diffusion-module", "format_version": 1,
     "model": {DiffusionModule constructor arguments: sigma_data, c_*, atom_encoder, transformer,
               atom_decoder},
     "provenance": {free-form: git commit, data, steps, source checkpoint ...},
     "rnadiff_version": "...", "created_utc": "..."}

Writes are atomic (temporary + os.replace) and refuse an existing target unless overwrite=True.
Loading checks everything and raises CheckpointError naming the file and the problem.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rnadiff.checkpoints.build import merge_config, module_from_state_dict, normalize_config
from rnadiff.checkpoints.container import (
    CONFIG_NAME,
    METADATA_KEY,
    WEIGHTS_NAME,
    load_weights,
    locate_container,
    make_document,
    write_container,
)
from rnadiff.errors import CheckpointError, ConfigError
from rnadiff.model.diffusion_module import DiffusionModule

FORMAT = "rnadiff-diffusion-module"
FORMAT_VERSION = 1

__all__ = [
    "CONFIG_NAME", "FORMAT", "FORMAT_VERSION", "METADATA_KEY", "WEIGHTS_NAME",
    "checkpoint_document", "load_checkpoint", "read_checkpoint_document", "save_checkpoint",
]


def checkpoint_document(module: DiffusionModule, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document describing `module` (see the module docstring)."""
    return make_document(FORMAT, FORMAT_VERSION, module.config, provenance)


def save_checkpoint(
    path: str | os.PathLike,
    module: DiffusionModule,
    provenance: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write `module` as a checkpoint directory, or a single file if `path` ends in `.safetensors`.

    provenance: a JSON-serialisable dict (e.g. {"git_commit": ..., "data": ..., "steps": ...}).
    Raises OutputError if the target exists and overwrite is False; returns the written path.
    """
    state = module.state_dict()
    if any(".base_layer." in k or ".lora_" in k for k in state):
        raise CheckpointError(
            "module carries LoRA adapters: merge them first (rnadiff.model.lora.merge_lora) "
            "or save the adapters alone (rnadiff.model.lora.save_lora_adapters)"
        )
    return write_container(path, state, checkpoint_document(module, provenance), overwrite=overwrite)


def read_checkpoint_document(path: str | os.PathLike) -> dict[str, Any]:
    """The validated JSON document of a checkpoint directory or `.safetensors` file."""
    return _locate(Path(path))[1]


def load_checkpoint(path: str | os.PathLike, config: Mapping[str, Any] | None = None) -> DiffusionModule:
    """The DiffusionModule of an rnadiff checkpoint (directory or `.safetensors`), eval mode, CPU.

    config: optional overrides (sigma_data, n_queries/n_keys, checkpointing); a dimension that
    contradicts the stored one is a CheckpointError.
    """
    weights_path, document = _locate(Path(path))
    source = str(path)
    try:
        kwargs = normalize_config(document["model"], f"{source}: model")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    kwargs = merge_config(kwargs, config, source)
    return module_from_state_dict(kwargs, load_weights(weights_path), source)


def _locate(path: Path) -> tuple[Path, dict[str, Any]]:
    hints = {"rnadiff-refinement-model": " (a standalone refinement checkpoint: load it with "
                                         "rnadiff.checkpoints.refinement.load_refinement_checkpoint)"}
    return locate_container(path, FORMAT, FORMAT_VERSION, hints)
