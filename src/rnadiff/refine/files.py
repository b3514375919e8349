"""refine_file: one input file → DIR/<stem>/sample_<k>.<fmt> + DIR/<stem>/summary.json
(refine_to_dir: the same for a structure already read, e.g. conformation T_k of a submission).

summary.json holds the input's handedness verdict ("handedness"), how far its given bonds are from
the library's lengths ("given_bonds", `rnadiff.refine.strain`) and, for a sample that failed
the output gate (`rnadiff.refine.gate`), `"failed": reason` in its record; that sample's file is
not written (the other samples keep their numbers, so the gap shows).

The output directory of an input is built in a temporary sibling and moved into place at the
end, so a failure leaves nothing half-written; an existing one is replaced only with overwrite.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rnadiff.errors import InputError, OutputError
from rnadiff.io import build_gemmi_structure, read_structure, write_structure
from rnadiff.io.atomic import atomic_write_dir
from rnadiff.metrics import AtomTable, structure_quality
from rnadiff.pipeline.finish import spread
from rnadiff.refine.core import RefineResult, RefineSettings, refine_structure
from rnadiff.refine.gate import GateError, GateInput, gate_failures
from rnadiff.refine.mirror import check_mirror
from rnadiff.refine.strain import given_bond_strain, strain_hint

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
        text = text_or_path.strip()
        # a dot-bracket never holds a path separator or a file suffix: say "no such file" rather
        # than "unexpected character" for a mistyped --ss path
        if "/" in text or "\\" in text or Path(text).suffix.lower() in (".dbn", ".txt", ".ss", ".fasta", ".fa", ".ct"):
            raise InputError("no such secondary-structure file", text)
        return text
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
    mirror: str = "note",
) -> tuple[dict[str, Any], RefineResult]:
    """Refine `path` and write its samples and summary into DIR/<stem>/; returns (summary, result).

    minimize_config (a MinimizationConfig) replaces `settings.minimization` when given;
    secondary_structure (dot-bracket) gives the model the input's base pairs; mirror: what a
    left-handed input gets (`rnadiff.refine.mirror`)."""
    target = output_dir_for(path, out_dir)
    _check_output(target, fmt, overwrite)
    structure = read_structure(path, max_residues=settings.max_sequence_length)
    return refine_to_dir(structure, str(path), target, model, settings, fmt=fmt, overwrite=overwrite,
                         minimize_config=minimize_config, checkpoint=checkpoint, progress=progress,
                         secondary_structure=secondary_structure, mirror=mirror)


def _check_output(target: Path, fmt: str, overwrite: bool) -> None:
    if fmt not in FORMATS:
        raise OutputError(f"unknown format {fmt!r}; choose cif or pdb")
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: already exists (use --overwrite to replace it)")


def refine_to_dir(structure: Any, source: str, target: Path, model: Any, settings: RefineSettings, *,
                  fmt: str = "cif", overwrite: bool = False, minimize_config: Any = None, checkpoint: str = "",
                  progress: Callable[[int], None] | None = None, secondary_structure: str | None = None,
                  mirror: str = "note") -> tuple[dict[str, Any], RefineResult]:
    """Refine an `RNAStructure` read from `source` (a file, or `FILE:T_k` of a submission) into
    `target`: the samples that pass the output gate (`rnadiff.refine.gate`) and summary.json, whose
    record of a failed sample holds `"failed": reason` instead of a file; when no sample passes,
    GateError and nothing written."""
    _check_output(target, fmt, overwrite)
    if minimize_config is not None:
        settings = dataclasses.replace(settings, minimization=minimize_config)
    structure, mirror_check = check_mirror(structure, source, mirror)
    result = refine_structure(structure, model, settings, progress=progress, secondary_structure=secondary_structure)
    failures = gate_failures(GateInput.from_result(result, settings.given_tolerance))
    summary = _summary(source, checkpoint, settings, result, fmt)
    summary["secondary_structure"] = secondary_structure
    summary["handedness"] = mirror_check.summary()
    summary["given_bonds"] = given_bond_strain(result.features)
    for rec, reason in zip(summary["samples"], failures):
        if reason is not None:
            rec["failed"] = reason
    passed = [k for k, reason in enumerate(failures) if reason is None]
    if not passed:  # nothing worth a directory: the input fails like any other, nothing written
        first = failures[0]
        hint = strain_hint(summary["given_bonds"], settings.given_tolerance is not None)
        raise GateError(f"{'the sample' if len(failures) == 1 else f'all {len(failures)} samples'} failed the "
                        f"output gate (sample 0: {first}); nothing written" + (f"; {hint}" if hint else ""))
    _write_dir(target, result, passed, summary, fmt)
    return summary, result


def _write_dir(target: Path, result: RefineResult, passed: list[int], summary: dict[str, Any], fmt: str) -> None:
    """The passing samples and summary.json, built in a temporary sibling and moved into place."""
    layout = result.features.layout
    # B-factor = per-atom spread of the samples as written (after any minimization); a failed
    # sample (possibly non-finite) takes no part in it
    b_factors = spread(result.samples[passed]) if passed else None
    try:  # created only now, so a failed input leaves nothing behind
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target.parent}: cannot create the output folder ({exc.strerror or exc})") from None

    def write(tmp: Path) -> None:
        for k in passed:
            write_structure(tmp / f"sample_{k}.{fmt}", layout, result.samples[k], b_factors=b_factors, fmt=fmt)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    atomic_write_dir(target, write)


def _number(v) -> float | None:
    """JSON has no NaN: a non-finite value (a broken sample) is null."""
    return round(float(v), 4) if np.isfinite(v) else None


def _records(result: RefineResult) -> list[dict[str, Any]]:
    layout = result.features.layout
    per_sample_seconds = result.seconds / len(result.samples)
    records = []
    for k, x in enumerate(result.samples):
        rec: dict[str, Any] = {"sample": k, "drawn_as": int(result.drawn_index[k]),
                               "consensus_rmsd": _number(result.consensus_rmsd[k]),
                               "given_atom_rmsd": _number(result.given_rmsd[k]),
                               "given_atom_max_deviation": _number(result.given_max_deviation[k]),
                               "sampled_given_atom_rmsd": _number(result.sampled_given_rmsd[k])}
        if result.pairs_missed is not None:  # of the base-pair prior's asserted pairs (ranking)
            rec["asserted_pairs_missed"] = int(result.pairs_missed[k])
        seconds = per_sample_seconds
        if result.minimization is not None:
            rec["minimization"] = result.minimization[k]
            seconds += result.minimization_seconds[k]
        if np.isfinite(x).all():  # a non-finite sample has no geometry to score (the gate fails it)
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
                     "ranked_by_consensus": settings.rank_samples,
                     "minimize": settings.minimization is not None, "format": fmt,
                     "guidance": settings.guidance is not None,
                     # null: noisy input, the given atoms were free to move
                     "given_atom_tolerance_A": settings.given_tolerance},
        "sampling_seconds": round(result.seconds, 3),
        "samples": _records(result),
    }
