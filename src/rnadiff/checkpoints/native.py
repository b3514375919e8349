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

import datetime
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
from safetensors import safe_open

from rnadiff import __version__
from rnadiff.checkpoints.build import merge_config, module_from_state_dict, normalize_config
from rnadiff.checkpoints.files import DIRECTORY, SAFETENSORS, TORCH, atomic_write_dir, atomic_write_file, reading, sniff
from rnadiff.errors import CheckpointError, ConfigError
from rnadiff.model.diffusion_module import DiffusionModule

FORMAT = "rnadiff-diffusion-module"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
METADATA_KEY = "rnadiff_config"


def checkpoint_document(module: DiffusionModule, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document describing `module` (see the module docstring)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": json.loads(json.dumps(module.config)),
        "provenance": dict(provenance or {}),
        "rnadiff_version": __version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


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
            "module carries LoRA adapters: merge them first (rnadiff.lora.merge_lora) "
            "or save the adapters alone (rnadiff.lora.save_lora_adapters)"
        )
    try:
        text = json.dumps(checkpoint_document(module, provenance), indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"checkpoint provenance must be JSON-serialisable: {exc}") from None
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    metadata = {METADATA_KEY: text}
    target = Path(path)
    if target.suffix == ".safetensors":
        return atomic_write_file(target, lambda tmp: safetensors.torch.save_file(tensors, str(tmp), metadata), overwrite)

    def write_dir(tmp_dir: Path) -> None:
        safetensors.torch.save_file(tensors, str(tmp_dir / WEIGHTS_NAME), metadata)
        (tmp_dir / CONFIG_NAME).write_text(text + "\n", encoding="utf-8")

    return atomic_write_dir(target, write_dir, overwrite)


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
    with reading(weights_path, "weights"):
        state_dict = safetensors.torch.load_file(str(weights_path))
    return module_from_state_dict(kwargs, state_dict, source)


def _locate(path: Path) -> tuple[Path, dict[str, Any]]:
    """(weights file, validated document) for a checkpoint directory or single file."""
    kind = sniff(path)
    if kind == TORCH:
        raise CheckpointError(f"{path}: a torch file, not an rnadiff checkpoint (use load_protenix_checkpoint)")
    if kind == SAFETENSORS:
        embedded = _metadata_document(path)
        if embedded is None:
            raise CheckpointError(f"{path}: safetensors file without an '{METADATA_KEY}' entry in its metadata")
        return path, _validate(embedded, path)
    assert kind == DIRECTORY
    config_path, weights_path = path / CONFIG_NAME, path / WEIGHTS_NAME
    for required in (config_path, weights_path):
        if not required.is_file():
            raise CheckpointError(f"{path}: checkpoint directory lacks {required.name}")
    with reading(config_path, "config"):
        document = _validate(config_path.read_text(encoding="utf-8"), config_path)
    if sniff(weights_path) != SAFETENSORS:
        raise CheckpointError(f"{weights_path}: not a safetensors file")
    embedded = _metadata_document(weights_path)
    if embedded is not None and _validate(embedded, weights_path)["model"] != document["model"]:
        raise CheckpointError(f"{path}: {CONFIG_NAME} and the metadata of {WEIGHTS_NAME} describe different models")
    return weights_path, document


def _metadata_document(path: Path) -> str | None:
    with reading(path, "safetensors header"):
        with safe_open(str(path), framework="pt") as fh:
            return (fh.metadata() or {}).get(METADATA_KEY)


def _validate(text: str, where: Path) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"{where}: invalid JSON config: {exc}") from None
    if not isinstance(document, dict):
        raise CheckpointError(f"{where}: config must be a JSON object")
    if document.get("format") != FORMAT:
        raise CheckpointError(f"{where}: format is {document.get('format')!r}, expected {FORMAT!r}")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        hint = " (written by a newer rnadiff)" if newer else ""
        raise CheckpointError(f"{where}: unsupported format_version {version!r}{hint}; this rnadiff reads {FORMAT_VERSION}")
    if not isinstance(document.get("model"), dict):
        raise CheckpointError(f"{where}: config lacks the 'model' object")
    if not isinstance(document.setdefault("provenance", {}), dict):
        raise CheckpointError(f"{where}: 'provenance' must be a JSON object")
    return document
