"""refine_file: one input file → DIR/<stem>/sample_<k>.<fmt> + DIR/<stem>/summary.json.

The output directory of an input is built in a temporary sibling and moved into place at the
end, so a failure leaves nothing half-written; an existing one is replaced only with overwrite.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rnadiff.errors import InputError, OutputError
from rnadiff.io import build_gemmi_structure, read_structure, write_structure
from rnadiff.metrics import AtomTable, structure_quality
from rnadiff.refine.core import RefineResult, RefineSettings, refine_structure

FORMATS = ("cif", "pdb")


def output_dir_for(path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    name = Path(path).name
    for suffix in (".gz", ".cif", ".mmcif", ".pdb", ".ent"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return Path(out_dir) / name


def read_secondary_structure(text_or_path: str) -> str:
    """A dot-bracket string, or the one in a file (.dbn/FASTA-like: the last line that is not a
    '>' header; a sequence line before it is skipped)."""
    path = Path(text_or_path)
    if not path.is_file():
        return text_or_path.strip()
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the secondary structure ({exc})", path) from None
    lines = [ln for ln in lines if ln and not ln.startswith((">", "#"))]
    if not lines:
        raise InputError("no secondary structure (dot-bracket) line", path)
    return lines[-1].split()[0]


def _quality(layout, coords: np.ndarray) -> dict[str, Any]:
    q = structure_quality(AtomTable.from_gemmi(build_gemmi_structure(layout, coords)))
    keep = ("n_atoms", "clashes", "clashes_per_1000_atoms", "bond_outliers", "link_outliers", "angle_outliers",
            "chirality_errors", "n_bonds", "n_angles", "n_chiral_centres")
    return {k: q[k] for k in keep}


def refine_file(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    model: Any,
    settings: RefineSettings = RefineSettings(),
    *,
    fmt: str = "cif",
    overwrite: bool = False,
    minimize_config: Any = None,
    checkpoint: str = "",
    progress: Callable[[int], None] | None = None,
    secondary_structure: str | None = None,
) -> tuple[dict[str, Any], RefineResult]:
    """Refine `path` and write its samples and summary; returns (summary, result).

    minimize_config (a MinimizationConfig) replaces `settings.minimization` when given;
    secondary_structure (dot-bracket) gives the model the input's base pairs."""
    if fmt not in FORMATS:
        raise OutputError(f"unknown format {fmt!r}; choose cif or pdb")
    target = output_dir_for(path, out_dir)
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: already exists (use --overwrite to replace it)")
    if minimize_config is not None:
        settings = dataclasses.replace(settings, minimization=minimize_config)
    structure = read_structure(path, max_residues=settings.max_sequence_length)
    result = refine_structure(structure, model, settings, progress=progress, secondary_structure=secondary_structure)
    summary = _summary(path, checkpoint, settings, result, fmt)
    summary["secondary_structure"] = secondary_structure
    layout = result.features.layout
    try:  # created only now, so a failed input leaves nothing behind
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target.parent}: cannot create the output folder ({exc.strerror or exc})") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for k, x in enumerate(result.samples):
            # B-factor = per-atom spread of the samples as written (after any minimization)
            write_structure(tmp / f"sample_{k}.{fmt}", layout, x, b_factors=result.b_factors, fmt=fmt)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary, result


def _records(result: RefineResult) -> list[dict[str, Any]]:
    layout = result.features.layout
    per_sample_seconds = result.seconds / len(result.samples)
    records = []
    for k, x in enumerate(result.samples):
        rec: dict[str, Any] = {"sample": k, "given_atom_rmsd": round(float(result.given_rmsd[k]), 4),
                               "given_atom_max_deviation": round(float(result.given_max_deviation[k]), 4),
                               "sampled_given_atom_rmsd": round(float(result.sampled_given_rmsd[k]), 4)}
        seconds = per_sample_seconds
        if result.minimization is not None:
            rec["minimization"] = result.minimization[k]
            seconds += result.minimization_seconds[k]
        rec.update(_quality(layout, x))
        rec["runtime_s"] = round(seconds, 3)
        records.append(rec)
    return records


def _summary(path, checkpoint: str, settings: RefineSettings, result: RefineResult, fmt: str) -> dict[str, Any]:
    layout = result.features.layout
    given = result.features["atom_present_mask"].numpy() > 0
    return {
        "input": str(path),
        "checkpoint": checkpoint,
        "n_residues": layout.n_tokens,
        "n_atoms": layout.n_atoms,
        "n_given_atoms": int(given.sum()),
        "input_notes": list(result.features.notes),
        "settings": {"samples": settings.n_samples, "steps": settings.num_steps, "seed": settings.seed,
                     "start_sigma": round(result.start_sigma, 4), "steps_run": result.steps_run,
                     "anchor_strength": settings.anchor_strength, "regularize": settings.regularize,
                     "minimize": settings.minimization is not None, "format": fmt,
                     "guidance": settings.guidance is not None,
                     # null: noisy input, the given atoms were free to move
                     "given_atom_tolerance_A": settings.given_tolerance},
        "sampling_seconds": round(result.seconds, 3),
        "samples": _records(result),
    }
