"""The on-disk container shared by rnadiff's checkpoint formats: safetensors weights + a JSON document.

    DIR/model.safetensors   the weights; the JSON document is also embedded in the safetensors
                            metadata under `rnadiff_config`, so the weights file alone loads
    DIR/config.json         the JSON document: {"format", "format_version", "model": {...},
                            "provenance": {...}, "rnadiff_version", "created_utc"}
or a single NAME.safetensors carrying the document in its metadata only.

Formats (a bare DiffusionModule, a RefinementModel) differ only in their `format` name and how
`model` becomes a module; everything about files lives here, once. Writes are atomic and refuse an
existing target unless overwrite=True; reads validate everything and raise CheckpointError naming
the file and the problem. Weights are never unpickled.
"""
from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import safe_open

from rnadiff import __version__
from rnadiff.checkpoints.files import DIRECTORY, SAFETENSORS, TORCH, atomic_write_dir, atomic_write_file, reading, sniff
from rnadiff.errors import CheckpointError, ConfigError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
METADATA_KEY = "rnadiff_config"


def make_document(fmt: str, version: int, model_config: Mapping[str, Any],
                  provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "format": fmt,
        "format_version": version,
        "model": json.loads(json.dumps(model_config)),
        "provenance": dict(provenance or {}),
        "rnadiff_version": __version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_container(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], document: Mapping[str, Any],
                    *, overwrite: bool = False) -> Path:
    """Write a directory (default) or a single file (path ending in .safetensors); returns the path."""
    try:
        text = json.dumps(document, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"checkpoint provenance must be JSON-serialisable: {exc}") from None
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    metadata = {METADATA_KEY: text}
    target = Path(path)
    if target.suffix == ".safetensors":
        return atomic_write_file(target, lambda tmp: safetensors.torch.save_file(tensors, str(tmp), metadata), overwrite)

    def write_dir(tmp_dir: Path) -> None:
        safetensors.torch.save_file(tensors, str(tmp_dir / WEIGHTS_NAME), metadata)
        (tmp_dir / CONFIG_NAME).write_text(text + "\n", encoding="utf-8")

    out = atomic_write_dir(target, write_dir, overwrite)
    _world_readable(out)
    return out


def _world_readable(directory: Path) -> None:
    """mkdtemp/mkstemp create owner-only entries: a checkpoint shipped in a package (or shared on a
    cluster) must be readable like any other file, so apply the usual umask modes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for child in directory.iterdir():
        os.chmod(child, 0o666 & ~umask)


def locate_container(path: str | os.PathLike, fmt: str, version: int,
                     format_hints: Mapping[str, str] | None = None) -> tuple[Path, dict[str, Any]]:
    """(weights file, validated document) of a checkpoint directory or single .safetensors file.

    format_hints: extra words for a document of another known format (say what to use instead).
    """
    path = Path(path)
    kind = sniff(path)
    if kind == TORCH:
        raise CheckpointError(f"{path}: a torch file, not an rnadiff checkpoint (use load_protenix_checkpoint)")
    if kind == SAFETENSORS:
        embedded = _metadata_document(path)
        if embedded is None:
            raise CheckpointError(f"{path}: safetensors file without an '{METADATA_KEY}' entry in its metadata")
        return path, _validate(embedded, path, fmt, version, format_hints)
    if kind != DIRECTORY:
        raise CheckpointError(f"{path}: not an rnadiff checkpoint (directory or .safetensors expected)")
    config_path, weights_path = path / CONFIG_NAME, path / WEIGHTS_NAME
    for required in (config_path, weights_path):
        if not required.is_file():
            raise CheckpointError(f"{path}: checkpoint directory lacks {required.name}")
    with reading(config_path, "config"):
        document = _validate(config_path.read_text(encoding="utf-8"), config_path, fmt, version, format_hints)
    if sniff(weights_path) != SAFETENSORS:
        raise CheckpointError(f"{weights_path}: not a safetensors file")
    embedded = _metadata_document(weights_path)
    if embedded is not None and _validate(embedded, weights_path, fmt, version, format_hints)["model"] != document["model"]:
        raise CheckpointError(f"{path}: {CONFIG_NAME} and the metadata of {WEIGHTS_NAME} describe different models")
    return weights_path, document


def load_weights(weights_path: Path) -> dict[str, torch.Tensor]:
    with reading(weights_path, "weights"):
        return safetensors.torch.load_file(str(weights_path))


def _metadata_document(path: Path) -> str | None:
    with reading(path, "safetensors header"):
        with safe_open(str(path), framework="pt") as fh:
            return (fh.metadata() or {}).get(METADATA_KEY)


def _validate(text: str, where: Path, fmt: str, version: int, hints: Mapping[str, str] | None) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"{where}: invalid JSON config: {exc}") from None
    if not isinstance(document, dict):
        raise CheckpointError(f"{where}: config must be a JSON object")
    if document.get("format") != fmt:
        found = document.get("format")
        hint = (hints or {}).get(found, "") if isinstance(found, str) else ""
        raise CheckpointError(f"{where}: format is {found!r}, expected {fmt!r}{hint}")
    found_version = document.get("format_version")
    if found_version != version:
        newer = isinstance(found_version, int) and found_version > version
        hint = " (written by a newer rnadiff)" if newer else ""
        raise CheckpointError(f"{where}: unsupported format_version {found_version!r}{hint}; this rnadiff reads {version}")
    if not isinstance(document.get("model"), dict):
        raise CheckpointError(f"{where}: config lacks the 'model' object")
    if not isinstance(document.setdefault("provenance", {}), dict):
        raise CheckpointError(f"{where}: 'provenance' must be a JSON object")
    return document
