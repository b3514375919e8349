"""Diffusion: noise schedules, the Algorithm-18 sampler, starts from given coordinates, training
losses and guidance. Submodules import only torch and rnadiff.chem; the stage that drives them
(manager, pipeline) is `rnadiff.pipeline`."""
from __future__ import annotations

from rnadiff.diffusion.alignment import aligned_rmsd, weighted_kabsch, weighted_rigid_align
from rnadiff.diffusion.sampler import (
    EarlyStopping,
    NonFiniteCoordinatesError,
    SamplerOutput,
    SamplerSettings,
    sample_diffusion,
    sampler_step,
)
from rnadiff.diffusion.schedule import DiffusionSchedule

__all__ = [
    "DiffusionSchedule", "EarlyStopping", "NonFiniteCoordinatesError", "SamplerOutput", "SamplerSettings",
    "aligned_rmsd", "sample_diffusion", "sampler_step", "weighted_kabsch", "weighted_rigid_align",
]
