"""Standalone refinement: partial/coarse RNA coordinates in, all-atom samples out.

    refine_structure(structure, model, settings) -> RefineResult   (in memory)
    refine_file(path, out_dir, model, settings)  -> dict           (files + summary.json)
    load_refinement_model(path=None)                               (default: the packaged checkpoint)
"""
from __future__ import annotations

from rnadiff.checkpoints.refinement import DEFAULT_CHECKPOINT, load_refinement_model
from rnadiff.refine.c1csv import c1_rows, write_c1_csv
from rnadiff.refine.core import RefineResult, RefineSettings, refine_structure
from rnadiff.refine.files import refine_file

__all__ = ["DEFAULT_CHECKPOINT", "RefineResult", "RefineSettings", "c1_rows", "load_refinement_model",
           "refine_file", "refine_structure", "write_c1_csv"]
