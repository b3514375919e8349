"""rnadiff: AlphaFold3-style diffusion refinement of partial RNA coordinates into all-atom models."""
from __future__ import annotations

__version__ = "0.1.0"

# Public names -> the module that defines them. Resolved on first access (PEP 562), so that
# `import rnadiff` stays cheap (no torch model build) for the CLI and for pipelines.
_EXPORTS = {
    "DiffusionModule": "rnadiff.model.diffusion_module",
    "DiffusionConditioning": "rnadiff.model.conditioning",
    "DiffusionSchedule": "rnadiff.diffusion.schedule",
    "ProtenixDiffusionManager": "rnadiff.pipeline.manager",
    "DiffusionConfig": "rnadiff.pipeline.stage_config",
    "load_protenix_checkpoint": "rnadiff.checkpoints",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rnadiff' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
