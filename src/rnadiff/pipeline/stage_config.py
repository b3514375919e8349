"""The stage's configuration: `model.stageD` resolved against the packaged defaults, and the
seed's `DiffusionConfig` container that `rnadiff.pipeline.runner.run_stage` consumes."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rnadiff.config import CONFIG_DIR, validate
from rnadiff.config.schema import DENOISER_KEYS, StageD, typed
from rnadiff.errors import ConfigError

MODULE_KEYS = DENOISER_KEYS  # DiffusionModule constructor arguments at the top of model.stageD
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class DiffusionConfig:
    """Everything one stage-D run needs (the seed's container; `run_stage` runs it).

    partial_coords: [N_atom, 3] / [B, N_atom, 3] tensor (NaN rows = missing atoms), or a structure
    (`rnadiff.io.RNAStructure` or a PDB/mmCIF path) whose features are then built from it.
    trunk_embeddings: s_inputs, s_trunk and z_trunk (or "pair"). diffusion_config: the
    model.stageD mapping (missing keys take the packaged defaults). input_features: featurized
    input (rnadiff.chem.featurize output) or bare feature tensors; None builds them from
    partial_coords with a warning. mode: "inference" samples; "train" runs one training step with
    partial_coords as the ground truth.
    """

    partial_coords: Any
    trunk_embeddings: dict[str, torch.Tensor]
    diffusion_config: dict[str, Any]
    mode: str = "inference"
    device: str = "cpu"
    input_features: Any = None
    debug_logging: bool = False

    def __post_init__(self):
        if self.mode not in ("inference", "train"):
            raise ValueError(f"mode must be 'inference' or 'train', got {self.mode!r}")


def resolve_stage_d(diffusion_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Packaged model.stageD defaults merged with `diffusion_config` (unknown keys: ConfigError)."""
    base = OmegaConf.load(CONFIG_DIR / "model" / "stageD.yaml")
    OmegaConf.set_struct(base, True)
    user = diffusion_config or {}
    if "model" in user and "stageD" in (user.get("model") or {}):
        user = user["model"]["stageD"]
    if OmegaConf.is_config(user):
        user = OmegaConf.to_container(user, resolve=True)
    try:
        merged = OmegaConf.merge(base, user)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"diffusion_config: {str(exc).splitlines()[0]}") from None
    merged = typed(merged, StageD, "model.stageD")
    validate(OmegaConf.create({"model": {"stageD": merged}}))
    return OmegaConf.to_container(merged, resolve=True)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = deep_merge(out[key], value) if both else value
    return out
