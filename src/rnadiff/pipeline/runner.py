"""`run_stage(DiffusionConfig)`: the seed's stage runner, a thin caller of the pipeline.

mode="inference": partial coordinates + trunk embeddings through `StagePipeline` with the settings
`rnadiff refine` would use for the same model.stageD and finish groups (`DiffusionConfig.finish`;
given atoms kept, polish, `energy_minimization.enabled/steps/method` honoured) when the features
carry the structure's layout, or through `ProtenixDiffusionManager.multi_step_inference` for bare feature
tensors. mode="train": one optimiser step on the denoiser with partial_coords as ground truth.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

from rnadiff.chem.features import Features, featurize, features_from_sequence
from rnadiff.errors import ConfigError, InputError
from rnadiff.pipeline.manager import ProtenixDiffusionManager, TrainingStepOutput
from rnadiff.pipeline.stage import StagePipeline, StageResult
from rnadiff.pipeline.stage_config import DiffusionConfig, finish_options, pipeline_settings

logger = logging.getLogger(__name__)


@dataclass
class StageOutput:
    coordinates: torch.Tensor  # [S, N_atom, 3] (one structure) or the manager's [B, (S,) N_atom, 3]
    result: StageResult | None = None  # the pipeline's full result when the features had a layout


def _features(config: DiffusionConfig) -> tuple[Any, torch.Tensor | None]:
    """(features, partial coordinates [N, 3] or None); built from partial_coords when missing."""
    coords = config.partial_coords
    if config.input_features is not None:
        return config.input_features, coords
    if isinstance(coords, (str, os.PathLike)) or hasattr(coords, "chains"):
        from rnadiff.io import read_structure

        structure = read_structure(coords) if isinstance(coords, (str, os.PathLike)) else coords
        logger.warning("DiffusionConfig has no input_features: features built from the partial coordinates")
        feats = featurize(structure)
        return feats, _given_coords(feats)
    sequence = config.trunk_embeddings.get("sequence")
    if not isinstance(sequence, str):
        raise InputError("DiffusionConfig has no input_features: pass them, a structure as partial_coords, or "
                         "the sequence as trunk_embeddings['sequence']")
    logger.warning("DiffusionConfig has no input_features: features built from the partial coordinates "
                   "and the sequence (%d nt)", len(sequence))
    feats = features_from_sequence(sequence)
    coords = _one_structure(coords, feats["coords"].shape[0], "the sequence's canonical atoms")
    return _with_coords(feats, coords), coords


def _one_structure(coords: Any, n_atom: int, what: str) -> torch.Tensor:
    """partial_coords as float [n_atom, 3]: the pipeline refines one structure per call, so only
    [n_atom, 3] or [1, n_atom, 3] is accepted (InputError otherwise, never a reshape)."""
    shape = tuple(coords.shape) if torch.is_tensor(coords) else None
    if shape not in ((n_atom, 3), (1, n_atom, 3)):
        got = shape if shape is not None else type(coords).__name__
        raise InputError(f"partial_coords must be [{n_atom}, 3] or [1, {n_atom}, 3] for {what} (one structure "
                         f"per call with structure features), got {got}")
    return coords.reshape(n_atom, 3).float()


def _given_coords(feats: Features) -> torch.Tensor:
    given = feats["atom_present_mask"] > 0
    return torch.where(given[:, None], feats["coords"], torch.full_like(feats["coords"], float("nan")))


def _with_coords(feats: Features, coords: torch.Tensor) -> Features:
    tensors = feats.as_dict()
    given = torch.isfinite(coords).all(-1)
    tensors["coords"] = torch.where(given[:, None], coords, torch.zeros_like(coords))
    tensors["atom_present_mask"] = given.float()
    return Features(tensors=tensors, layout=feats.layout, notes=list(feats.notes))


def run_stage(config: DiffusionConfig, *, manager: ProtenixDiffusionManager | None = None,
              optimizer: torch.optim.Optimizer | None = None) -> StageOutput | TrainingStepOutput:
    """Run one stage-D call as `config` describes it (see the module docstring)."""
    if config.debug_logging:
        logging.getLogger("rnadiff").setLevel(logging.DEBUG)
    own_manager = manager is None
    manager = manager or ProtenixDiffusionManager(config.diffusion_config, device=config.device)
    emb = config.trunk_embeddings
    try:
        trunk = (emb["s_inputs"], emb["s_trunk"], emb["z_trunk"] if "z_trunk" in emb else emb["pair"])
    except KeyError as exc:
        raise InputError(f"trunk_embeddings lacks {exc.args[0]!r} (needs s_inputs, s_trunk, z_trunk)") from None
    feats, coords = _features(config)
    if config.mode == "train":
        return _train_step(manager, feats, coords, trunk, optimizer)
    if own_manager and manager.autocast_dtype not in (None, torch.float32):
        manager.hold_weights_for_inference()  # an inference-only manager: cast the weights once
    if isinstance(feats, Features):
        if coords is not None and isinstance(config.input_features, Features):
            feats = _with_coords(feats, _one_structure(coords, feats["coords"].shape[0], "input_features' atoms"))
        settings = pipeline_settings(manager.config, finish_options(config.finish))
        pipeline = StagePipeline(manager.conditioning(), settings)
        result = pipeline.run(feats, trunk=tuple(t.to(manager.device) for t in trunk))
        return StageOutput(coordinates=torch.from_numpy(result.samples).float(), result=result)
    if manager.config["energy_minimization"]["enabled"]:
        raise ConfigError("energy_minimization.enabled needs the structure's layout: pass rnadiff.chem.featurize "
                          "output as input_features (bare feature tensors have none)")
    return StageOutput(coordinates=manager.multi_step_inference(coords, emb, {}, override_input_features=feats))


def _train_step(manager, feats, coords, trunk, optimizer) -> TrainingStepOutput:
    if coords is None or not torch.is_tensor(coords):
        coords = feats["coords"] if "coords" in feats else None
    if coords is None:
        raise InputError("mode='train' needs the ground-truth coordinates as partial_coords")
    coords = coords.float()
    mask = torch.isfinite(coords).all(-1)
    labels = {"coordinate": torch.where(mask[..., None], coords, torch.zeros_like(coords)),
              "coordinate_mask": mask.float()}
    optimizer = optimizer or manager.build_optimizer()
    manager.diffusion_module.train()
    out = manager.train_diffusion_step(labels, feats, *trunk)
    optimizer.zero_grad()
    out.loss.backward()
    manager.clip_gradients()
    optimizer.step()
    return out
