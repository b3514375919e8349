"""The stage's configuration: `model.stageD` resolved against the packaged defaults, the seed's
`DiffusionConfig` container that `rnadiff.pipeline.runner.run_stage` consumes, and
`pipeline_settings`, the one place where a configuration becomes `PipelineSettings` (for
`rnadiff refine` and `run_stage` alike)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rnadiff.config import CONFIG_DIR, validate
from rnadiff.config.schema import DENOISER_KEYS, RefineGroup, StageD, typed
from rnadiff.errors import ConfigError
from rnadiff.pipeline.stage import PipelineSettings

MODULE_KEYS = DENOISER_KEYS  # DiffusionModule constructor arguments at the top of model.stageD
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# The groups of config/standalone_refine/default.yaml that say how a sample is started, anchored
# and finished (schema: rnadiff.config.schema.RefineGroup).
FINISH_GROUPS = ("start", "anchoring", "postprocess")


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
    # Overrides of the start / anchoring / postprocess groups (`finish_options`), e.g.
    # {"postprocess": {"rank": False}}; the packaged `rnadiff refine` defaults otherwise.
    finish: dict[str, Any] | None = None

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


def finish_options(overrides: Mapping[str, Any] | None = None) -> Any:
    """The start / anchoring / postprocess groups: the packaged defaults that `rnadiff refine`
    composes (config/standalone_refine/default.yaml) merged with `overrides`, typed (ConfigError on
    an unknown key or a wrong type)."""
    groups = OmegaConf.merge(_packaged_finish_groups(), dict(overrides or {}))
    return typed(groups, RefineGroup)


@lru_cache(maxsize=1)
def _packaged_finish_groups() -> dict[str, Any]:
    """The finish groups of config/standalone_refine/default.yaml as plain containers, read once
    per process (run_stage asks for them per structure)."""
    packaged = OmegaConf.load(CONFIG_DIR / "standalone_refine" / "default.yaml")
    return {k: OmegaConf.to_container(packaged[k], resolve=True) for k in FINISH_GROUPS}


def pipeline_settings(stage_d: Mapping[str, Any], options: Any = None, *, n_samples: int | None = None,
                      num_steps: int | None = None, seed: int | None = None, noisy_input: bool = False,
                      given_tolerance: float = 0.0, guidance: bool = True, minimize: bool = False,
                      explicit_start: bool = False) -> PipelineSettings:
    """PipelineSettings from a resolved model.stageD mapping and the finish groups (`options`,
    default `finish_options()`).

    n_samples / num_steps / seed default to model.stageD.inference's. noisy_input lets the given
    atoms move (else they stay within given_tolerance Å) and switches off the guidance's pull
    towards them (noisy positions are not a target); guidance=False switches the guidance off;
    minimize turns the energy minimization on; explicit_start (a
    model.stageD.inference.refinement.* override) applies that start level to every input instead
    of starting dense inputs at start.dense_sigma."""
    from rnadiff.diffusion.guidance import GuidanceConfig

    options = finish_options() if options is None else options
    inf, minim = stage_d["inference"], dict(stage_d["energy_minimization"])
    smp = {k: v for k, v in inf["sampling"].items() if k not in ("diffusion_chunk_size", "inplace_safe")}
    section = deep_merge(stage_d["guidance"], {"potentials": {"given": {"weight": 0.0}}} if noisy_input else {})
    guide = GuidanceConfig.from_mapping(section)
    minimization = None
    if minimize or minim["enabled"]:
        from rnadiff.minimize import MinimizationConfig

        minimization = MinimizationConfig.from_dict({**minim, "enabled": True})
    return PipelineSettings(
        n_samples=int(inf["N_sample"] if n_samples is None else n_samples),
        num_steps=int(inf["num_steps"] if num_steps is None else num_steps),
        seed=int(inf["seed"]) if seed is None else seed,
        max_sequence_length=int(stage_d["memory"]["max_sequence_length"]),
        start_sigma=inf["refinement"]["start_sigma"], start_fraction=inf["refinement"]["start_fraction"],
        sampling={**smp, "temperature": inf["temperature"]},
        dense_start_sigma=None if explicit_start else options.start.dense_sigma,
        dense_fraction=options.start.dense_fraction,
        schedule={k: stage_d["schedule"][k] for k in ("s_max", "s_min", "p")},
        diffusion_chunk_size=inf["sampling"]["diffusion_chunk_size"],
        anchor_strength=options.anchoring.strength, anchor_until_sigma=options.anchoring.until_sigma,
        regularize=options.postprocess.regularize, regularize_tether=options.postprocess.tether,
        regularize_iterations=options.postprocess.max_iter, regularize_pairs=options.postprocess.base_pairs,
        rank_samples=options.postprocess.rank, given_tolerance=None if noisy_input else float(given_tolerance),
        guidance=guide if guidance and guide.enabled else None, minimization=minimization)
