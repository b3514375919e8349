"""rnadiff: AlphaFold3-style diffusion refinement of partial RNA coordinates into all-atom models."""
from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: importing rnadiff must stay cheap (no torch model build) for the CLI and for pipelines.
    if name == "load_protenix_checkpoint":
        from rnadiff.checkpoints import load_protenix_checkpoint

        return load_protenix_checkpoint
    if name in ("DiffusionModule",):
        from rnadiff.model.diffusion_module import DiffusionModule

        return DiffusionModule
    raise AttributeError(f"module 'rnadiff' has no attribute {name!r}")
