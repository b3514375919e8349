"""Stage-D public entry points (docs/design.md §2): the diffusion manager, its config container,
the stage runner and the schedule."""
from __future__ import annotations

from rnadiff.diffusion.schedule import DiffusionSchedule
from rnadiff.pipeline.manager import ProtenixDiffusionManager, TrainingStepOutput
from rnadiff.pipeline.runner import StageOutput, run_stage
from rnadiff.pipeline.stage_config import DiffusionConfig

__all__ = ["DiffusionConfig", "DiffusionSchedule", "ProtenixDiffusionManager", "StageOutput", "TrainingStepOutput",
           "run_stage"]
