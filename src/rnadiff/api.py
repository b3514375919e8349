"""Stage-D public entry points (DESIGN §2): the diffusion manager, its config container and schedule."""
from __future__ import annotations

from rnadiff.diffusion.manager import DiffusionConfig, ProtenixDiffusionManager, TrainingStepOutput
from rnadiff.diffusion.schedule import DiffusionSchedule

__all__ = ["DiffusionConfig", "DiffusionSchedule", "ProtenixDiffusionManager", "TrainingStepOutput"]
