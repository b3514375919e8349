"""rnadiff: AlphaFold3-style diffusion refinement of partial RNA coordinates into all-atom models."""
from __future__ import annotations

__version__ = "0.1.0"
