"""Energy minimization of RNA models with OpenMM (AMBER RNA.OL3 + GBn2, AF2-style relax).

OpenMM and pdbfixer are an optional extra (`pip install rnadiff[minimize]`); they are imported
only when a minimization runs, and a missing one is a ConfigError.
"""
from __future__ import annotations

from rnadiff.minimize.api import MinimizationResult, minimize_file, minimize_structure
from rnadiff.minimize.config import MinimizationConfig

__all__ = ["MinimizationConfig", "MinimizationResult", "minimize_file", "minimize_structure"]
