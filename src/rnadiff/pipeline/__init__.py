"""The Stage-D pipeline (top layer, above `model`, `diffusion`, `metrics` and `minimize`):
featurize → condition → cache → sample (given atoms and guidance through one protocol) → keep the
given atoms and polish → optional minimization → result.

    StagePipeline(model, settings).run(structure)   one structure, in memory (stage.py)
    ProtenixDiffusionManager                        the seed's stage-D interface (manager.py)
    run_stage(DiffusionConfig(...))                 the seed's stage runner (runner.py)

"Refinement" in this package means only what `rnadiff refine` does with files (rnadiff.refine);
the sampler's start from given coordinates is "sampling from given coordinates" (sampling.py).
"""
from __future__ import annotations

from rnadiff.pipeline.stage import PipelineSettings, StagePipeline, StageResult

__all__ = ["PipelineSettings", "StagePipeline", "StageResult"]
