"""Energy minimization of RNA models with OpenMM: an AF2-style restrained relax (heavy-atom
covalent repair, then AMBER RNA.OL3 with reaction-field electrostatics; GBn2/OBC2 optional).

Entry points: `minimize_structure(structure, coords=None, config=None) -> MinimizationResult`
(what refine and bench call) and `minimize_file(input, output, config, overwrite)` (the CLI).

OpenMM and pdbfixer are an optional extra (`pip install rnadiff[minimize]`); they are imported
only when a minimization runs, and a missing one is a ConfigError.
"""
from __future__ import annotations

from rnadiff.minimize.api import MinimizationResult, minimize_file, minimize_structure
from rnadiff.minimize.config import MinimizationConfig

__all__ = ["MinimizationConfig", "MinimizationResult", "minimize_file", "minimize_structure"]
