"""RefinementModel checkpoints: safetensors weights + JSON config (the rnadiff checkpoint style).

Layout of a checkpoint directory DIR/:
    model.safetensors   every RefinementModel weight (keys `conditioner.*`, `diffusion_module.*`;
                        the latter are Protenix DiffusionModule names), the JSON document below
                        embedded in the metadata under `rnadiff_config`
    config.json         {"format": "rnadiff-refinement-model", "format_version": 1,
                         "model": {"conditioner": {...}, "diffusion": {DiffusionModule kwargs}},
                         "provenance": {command, config, steps, losses, data ...},
                         "rnadiff_version", "created_utc"}
A single `NAME.safetensors` file with the embedded document is accepted as well. Writes are
atomic and refuse an existing target without overwrite (reusing `rnadiff.checkpoints.files`).
Loading validates everything and raises CheckpointError naming the file and the problem.
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
from rnadiff.checkpoints.files import DIRECTORY, SAFETENSORS, atomic_write_dir, atomic_write_file, reading, sniff
from rnadiff.errors import CheckpointError, ConfigError
from rnadiff.model.refinement_model import RefinementModel

FORMAT = "rnadiff-refinement-model"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
METADATA_KEY = "rnadiff_config"


def refinement_document(model: RefinementModel, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": json.loads(json.dumps(model.config)),
        "provenance": dict(provenance or {}),
        "rnadiff_version": __version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def save_refinement_checkpoint(path: str | os.PathLike, model: RefinementModel,
                               provenance: Mapping[str, Any] | None = None, *, overwrite: bool = False) -> Path:
    """Write `model` as DIR/ (model.safetensors + config.json) or as one `.safetensors` file."""
    try:
        text = json.dumps(refinement_document(model, provenance), indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"checkpoint provenance must be JSON-serialisable: {exc}") from None
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {METADATA_KEY: text}
    target = Path(path)
    if target.suffix == ".safetensors":
        return atomic_write_file(target, lambda tmp: safetensors.torch.save_file(tensors, str(tmp), metadata), overwrite)

    def write_dir(tmp_dir: Path) -> None:
        safetensors.torch.save_file(tensors, str(tmp_dir / WEIGHTS_NAME), metadata)
        (tmp_dir / CONFIG_NAME).write_text(text + "\n", encoding="utf-8")

    out = atomic_write_dir(target, write_dir, overwrite)
    _readable(out)
    return out


def _readable(directory: Path) -> None:
    """mkdtemp/mkstemp create owner-only entries: a checkpoint shipped in a package (or shared on a
    cluster) must be world-readable like any other file, so apply the usual umask modes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for child in directory.iterdir():
        os.chmod(child, 0o666 & ~umask)


def read_refinement_document(path: str | os.PathLike) -> dict[str, Any]:
    """The validated JSON document (model config + provenance) of a refinement checkpoint."""
    return _locate(Path(path))[1]


def is_refinement_checkpoint(path: str | os.PathLike) -> bool:
    try:
        _locate(Path(path))
    except CheckpointError:
        return False
    return True


def load_refinement_checkpoint(path: str | os.PathLike) -> RefinementModel:
    """The RefinementModel stored at `path` (directory or .safetensors), eval mode, CPU."""
    weights_path, document = _locate(Path(path))
    cfg = document["model"]
    try:
        model = RefinementModel(conditioner=cfg.get("conditioner"), diffusion=cfg.get("diffusion"))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config: {exc}") from None
    with reading(weights_path, "weights"):
        state = safetensors.torch.load_file(str(weights_path))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{weights_path}: weights do not match the config "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise CheckpointError(f"{weights_path}: {k} has shape {tuple(v.shape)}, config implies {tuple(expected[k].shape)}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def _locate(path: Path) -> tuple[Path, dict[str, Any]]:
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        kind = sniff(path)
    except CheckpointError:
        raise
    if kind == SAFETENSORS:
        text = _metadata(path)
        if text is None:
            raise CheckpointError(f"{path}: safetensors file without an '{METADATA_KEY}' entry")
        return path, _validate(text, path)
    if kind != DIRECTORY:
        raise CheckpointError(f"{path}: not a refinement checkpoint (directory or .safetensors expected)")
    config_path, weights_path = path / CONFIG_NAME, path / WEIGHTS_NAME
    for required in (config_path, weights_path):
        if not required.is_file():
            raise CheckpointError(f"{path}: checkpoint directory lacks {required.name}")
    with reading(config_path, "config"):
        document = _validate(config_path.read_text(encoding="utf-8"), config_path)
    return weights_path, document


def _metadata(path: Path) -> str | None:
    with reading(path, "safetensors header"):
        with safe_open(str(path), framework="pt") as fh:
            return (fh.metadata() or {}).get(METADATA_KEY)


def _validate(text: str, where: Path) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"{where}: invalid JSON config: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        fmt = document.get("format") if isinstance(document, dict) else None
        hint = " (a denoiser-only checkpoint: it needs upstream trunk embeddings)" if fmt == "rnadiff-diffusion-module" else ""
        raise CheckpointError(f"{where}: format is {fmt!r}, expected {FORMAT!r}{hint}")
    if document.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{where}: unsupported format_version {document.get('format_version')!r}; "
                              f"this rnadiff reads {FORMAT_VERSION}")
    if not isinstance(document.get("model"), dict) or "diffusion" not in document["model"]:
        raise CheckpointError(f"{where}: config lacks the model section")
    return document
