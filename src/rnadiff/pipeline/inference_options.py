"""`multi_step_inference`'s inference_params over `model.stageD.inference`, parsed once into the
sampler run, the seed, the start level and the guidance of one call."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from rnadiff.diffusion.sampler import EarlyStopping, SamplerSettings
from rnadiff.errors import ConfigError
from rnadiff.pipeline.sampling import SamplerRun, StartLevel, seeded_generator
from rnadiff.pipeline.stage_config import deep_merge

logger = logging.getLogger(__name__)

CALL_KEYS = {"num_steps", "N_sample", "seed", "generator", "temperature", "return_trajectory", "early_stopping",
             "start_sigma", "start_fraction", "coords_mask", "sequence", "guidance", "anchor_strength",
             "anchor_until_sigma"}


@dataclass
class InferenceOptions:
    num_steps: int
    n_sample: int
    generator: torch.Generator
    settings: SamplerSettings
    chunk: int | None
    inplace_safe: bool
    early_stopping: EarlyStopping | None
    return_trajectory: bool
    start: StartLevel
    anchor_strength: float  # inpainting of the given atoms (0 = off, the manager's default)
    anchor_until_sigma: float

    def sampler_run(self, sigmas: torch.Tensor, start_index: int, autocast_dtype) -> SamplerRun:
        return SamplerRun(sigmas=sigmas, start=start_index, n_sample=self.n_sample, settings=self.settings,
                          diffusion_chunk_size=self.chunk, early_stopping=self.early_stopping,
                          return_trajectory=self.return_trajectory, autocast_dtype=autocast_dtype)


def _early_stopping(params: Mapping[str, Any], section: Mapping[str, Any]) -> EarlyStopping | None:
    es = params.get("early_stopping", section if section["enabled"] else None)
    if isinstance(es, Mapping):
        if not es.get("enabled", True):
            return None
        return EarlyStopping(patience=int(es.get("patience", section["patience"])),
                             min_delta=float(es.get("min_delta", section["min_delta"])))
    return es


def _start_level(params: Mapping[str, Any], ref: Mapping[str, Any]) -> StartLevel:
    if "start_sigma" in params or "start_fraction" in params:
        return StartLevel(sigma=params.get("start_sigma"), fraction=params.get("start_fraction"))
    if ref["start_fraction"] is not None:
        return StartLevel(sigma=None, fraction=ref["start_fraction"])
    return StartLevel(sigma=ref["start_sigma"], fraction=None)


def parse_inference(inference: Mapping[str, Any], params: Mapping[str, Any]) -> InferenceOptions:
    """`inference` is model.stageD.inference; `params` the per-call overrides."""
    smp = inference["sampling"]
    unknown = set(params) - CALL_KEYS - set(smp)
    if unknown:
        raise ConfigError(f"unknown inference_params: {', '.join(sorted(unknown))}")
    generator = params.get("generator") or seeded_generator(params.get("seed", inference["seed"]))
    return InferenceOptions(
        num_steps=int(params.get("num_steps", inference["num_steps"])),
        n_sample=int(params.get("N_sample", inference["N_sample"])),
        generator=generator,
        settings=SamplerSettings(
            gamma0=params.get("gamma0", smp["gamma0"]), gamma_min=params.get("gamma_min", smp["gamma_min"]),
            noise_scale_lambda=params.get("noise_scale_lambda", smp["noise_scale_lambda"]),
            step_scale_eta=params.get("step_scale_eta", smp["step_scale_eta"]),
            temperature=params.get("temperature", inference["temperature"]),
            align_to_prediction=bool(params.get("align_to_prediction", smp["align_to_prediction"]))),
        chunk=params.get("diffusion_chunk_size", smp["diffusion_chunk_size"]),
        inplace_safe=bool(params.get("inplace_safe", smp["inplace_safe"])),
        early_stopping=_early_stopping(params, inference["early_stopping"]),
        return_trajectory=bool(params.get("return_trajectory", inference["return_trajectory"])),
        start=_start_level(params, inference["refinement"]),
        anchor_strength=float(params.get("anchor_strength", 0.0)),
        anchor_until_sigma=float(params.get("anchor_until_sigma", 1.0)),
    )


def guidance_for(section: Mapping[str, Any], over: Any, features: Any, batched: bool):
    """The sampler's chemistry guidance, or None when off.

    `over` (inference_params["guidance"]) may be a ready guidance object (RNAGuidance), a mapping of
    model.stageD.guidance overrides, or False. The topology comes from `features` (the `Features`
    that rnadiff.chem.featurize returns)."""
    if over is not None and hasattr(over, "guide"):
        return over
    if over is False:
        return None
    from rnadiff.diffusion.guidance import GuidanceConfig, RNAGuidance

    merged = deep_merge(section, over or {})
    if not merged.get("enabled"):
        return None
    cfg = GuidanceConfig.from_mapping(merged)
    if batched:
        raise ConfigError("guidance needs one structure per call (unbatched features)")
    if not hasattr(features, "topology"):
        if over is None:
            # On by default, but bare feature tensors carry no chemistry to guide by: sample
            # unguided and say so, rather than refuse to run.
            logger.warning("guidance is on by default but the input features carry no topology "
                           "(pass rnadiff.chem.featurize output as override_input_features to use it): "
                           "sampling without guidance")
            return None
        raise ConfigError("model.stageD.guidance.enabled needs the structure's topology: pass the Features "
                          "from rnadiff.chem.featurize as override_input_features, or an RNAGuidance "
                          "as inference_params['guidance']")
    return RNAGuidance.from_features(features, cfg)
