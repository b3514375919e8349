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
atomic and refuse an existing target without overwrite (the container: `rnadiff.checkpoints.container`).
Loading validates everything and raises CheckpointError naming the file and the problem.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rnadiff.checkpoints.container import load_weights, locate_container, make_document, write_container
from rnadiff.checkpoints.files import TORCH, safe_torch_load, sniff
from rnadiff.errors import CheckpointError
from rnadiff.model.refinement_model import RefinementModel

# The checkpoint shipped in the package (`rnadiff refine` without --checkpoint).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "default"

FORMAT = "rnadiff-refinement-model"
FORMAT_VERSION = 1


def refinement_document(model: RefinementModel, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return make_document(FORMAT, FORMAT_VERSION, model.config, provenance)


def save_refinement_checkpoint(path: str | os.PathLike, model: RefinementModel,
                               provenance: Mapping[str, Any] | None = None, *, overwrite: bool = False) -> Path:
    """Write `model` as DIR/ (model.safetensors + config.json) or as one `.safetensors` file."""
    return write_container(path, model.state_dict(), refinement_document(model, provenance), overwrite=overwrite)


def read_refinement_document(path: str | os.PathLike) -> dict[str, Any]:
    """The validated JSON document (model config + provenance) of a refinement checkpoint."""
    return _locate(Path(path))[1]


def load_refinement_checkpoint(path: str | os.PathLike) -> RefinementModel:
    """The RefinementModel stored at `path` (directory or .safetensors), eval mode, CPU."""
    weights_path, document = _locate(Path(path))
    cfg = document["model"]
    try:
        model = RefinementModel(conditioner=cfg.get("conditioner"), diffusion=cfg.get("diffusion"))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config: {exc}") from None
    state = model.upgrade_state_dict(load_weights(weights_path))
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
    hints = {"rnadiff-diffusion-module": " (a denoiser-only checkpoint: it needs upstream trunk embeddings)"}
    weights_path, document = locate_container(path, FORMAT, FORMAT_VERSION, hints)
    if "diffusion" not in document["model"]:
        raise CheckpointError(f"{path}: config lacks the model section")
    return weights_path, document


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


def load_refinement_model(path: str | os.PathLike | None = None) -> tuple[RefinementModel, str]:
    """(model in eval mode, description of its source). None: the checkpoint shipped in the package."""
    if path is None:
        if not (DEFAULT_CHECKPOINT / "config.json").is_file():
            raise CheckpointError(f"no default checkpoint in {DEFAULT_CHECKPOINT}; pass --checkpoint PATH")
        return load_refinement_checkpoint(DEFAULT_CHECKPOINT), "default"
    p = Path(path)
    if p.is_file() and sniff(p) == TORCH:  # a training checkpoint of `rnadiff train`: its EMA weights
        model, _ = model_from_lightning_checkpoint(p)
        return model, str(p)
    return load_refinement_checkpoint(p), str(p)
