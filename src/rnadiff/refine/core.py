"""refine_structure: one structure through the Stage-D pipeline (`rnadiff.pipeline.StagePipeline`).

`RefineSettings` / `RefineResult` are the pipeline's settings and result under the names the
`rnadiff refine` command and the benchmarks use.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rnadiff.pipeline.stage import PipelineSettings, StagePipeline, StageResult, denoiser_calls

RefineSettings = PipelineSettings
RefineResult = StageResult
__all__ = ["RefineResult", "RefineSettings", "denoiser_calls", "refine_structure"]


def refine_structure(structure_or_features: Any, model: Any, settings: PipelineSettings = PipelineSettings(), *,
                     trunk: Any = None, progress: Callable[[int], None] | None = None,
                     guidance: Any = None, secondary_structure: str | None = None) -> StageResult:
    """Refine one structure (an `io.RNAStructure` or its `Features`); see `StagePipeline.run`."""
    return StagePipeline(model, settings).run(structure_or_features, trunk=trunk, progress=progress,
                                              guidance=guidance, secondary_structure=secondary_structure)
