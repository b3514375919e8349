"""`rnadiff refine --devices N`: the inputs sharded over N worker processes.

Input i goes to worker i mod N. Each worker loads the model once and runs `refine_file` on its
inputs, which writes each output directory atomically (a temporary sibling moved into place).
A sample depends only on (input, settings, seed) -- the seed is `--seed`, never the worker -- so
the files are byte-identical to a single-process run; only the timings in summary.json differ.
The parent reports the inputs in their given order and returns the same exit code.

Workers are started with the "spawn" method (no fork of a process that already runs torch
threads); each sets its own torch thread count (`--threads`, per worker).
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnadiff.errors import InputError, RnadiffError


@dataclass
class InputOutcome:
    """What one input produced: a report line (stdout) or an error (stderr), and its C1' rows."""

    index: int
    path: str
    line: str | None = None
    error: str | None = None
    c1_rows: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # full stderr lines (a mirror image, strained given atoms)


@dataclass
class ShardJob:
    inputs: list[tuple[int, str]]  # (input index, path)
    out: str
    checkpoint: str | None
    settings: Any  # RefineSettings (minimization included)
    fmt: str
    overwrite: bool
    threads: int
    c1: bool
    secondary_structure: str | None = None
    mirror: str = "note"


def shard_indices(n_inputs: int, n_workers: int) -> list[list[int]]:
    """Input i goes to worker i mod n_workers (workers without inputs are dropped)."""
    if n_workers < 1:
        raise InputError(f"--devices must be >= 1, got {n_workers}")
    shards = [list(range(k, n_inputs, n_workers)) for k in range(n_workers)]
    return [s for s in shards if s]


def refine_one(index: int, path: str, out: str | os.PathLike, model, settings, *, fmt: str, overwrite: bool,
               checkpoint: str, c1: bool, minimize_config: Any = None,
               progress: Callable[[int], None] | None = None, secondary_structure: str | None = None,
               mirror: str = "note") -> InputOutcome:
    """Refine one input file (files via `refine_file`); errors of the input become the outcome's error."""
    from rnadiff.refine import refine_file
    from rnadiff.refine.files import output_dir_for

    target = output_dir_for(path, out)
    outcome, _, _ = run_input(index, str(path), target, c1, lambda: refine_file(
        path, out, model, settings, fmt=fmt, overwrite=overwrite, minimize_config=minimize_config,
        checkpoint=checkpoint, progress=progress, secondary_structure=secondary_structure, mirror=mirror))
    return outcome


def run_input(index: int, source: str, target: Path, c1: bool, work: Callable[[], tuple[dict, Any]],
              named_by: tuple[str, ...] = ()):
    """(outcome, summary, result) of `work()` (a refine_file/refine_to_dir call writing `target`):
    its report line, its mirror and strained-input notes, and its error -- an input error, or samples that failed the
    output gate (they were not written; the others were, and the line says so too). summary and
    result are None when the input failed before anything was written. An error message that
    holds all of `named_by` (default: `source`) already names the input and is not prefixed."""
    from rnadiff.refine.c1csv import c1_rows
    from rnadiff.refine.mirror import mirror_note
    from rnadiff.refine.strain import strain_note

    outcome = InputOutcome(index=index, path=source)
    try:
        summary, result = work()
    except RnadiffError as exc:
        text = str(exc)
        named = all(part in text for part in (named_by or (source,)))
        outcome.error = text if named else f"{source}: {text}"
        return outcome, None, None
    kept = summary["settings"]["given_atom_tolerance_A"] is not None  # null: --noisy-input
    for note in (mirror_note(source, summary["handedness"]), strain_note(source, summary["given_bonds"], kept)):
        if note is not None:
            outcome.notes.append(note)
    records = summary["samples"]
    failed = [r for r in records if "failed" in r]
    passed = [r for r in records if "failed" not in r]
    if failed:
        outcome.error = (f"{source}: {len(failed)} of {len(records)} samples failed the output gate and were not "
                         f"written (sample {failed[0]['sample']}: {failed[0]['failed']}); see {target}/summary.json")
    if passed:
        worst = max(r["clashes_per_1000_atoms"] for r in passed)
        outcome.line = (f"{source}: {summary['n_residues']} nt, {len(passed)} samples -> {target} "
                        f"({summary['sampling_seconds']:.1f} s, given-atom RMSD "
                        f"{min(r['given_atom_rmsd'] for r in passed):.2f} Å, clashes/1000 <= {worst:.1f})")
    if c1 and not failed:  # the C1' table needs every sample
        outcome.c1_rows = c1_rows(target.name, result.features.layout, result.samples)
    return outcome, summary, result


def run_shard(job: ShardJob) -> list[InputOutcome]:
    """One worker: load the model once, refine its inputs in order."""
    import torch

    from rnadiff.refine import load_refinement_model

    torch.set_num_threads(job.threads)
    model, source = load_refinement_model(job.checkpoint)
    return [refine_one(i, p, job.out, model, job.settings, fmt=job.fmt, overwrite=job.overwrite,
                       checkpoint=source, c1=job.c1, secondary_structure=job.secondary_structure,
                       mirror=job.mirror)
            for i, p in job.inputs]


def refine_sharded(inputs: list[str], n_workers: int, *, out: str, checkpoint: str | None, settings, fmt: str,
                   overwrite: bool, threads: int, c1: bool,
                   secondary_structure: str | None = None, mirror: str = "note") -> list[InputOutcome]:
    """Refine `inputs` over `n_workers` processes; outcomes in input order."""
    from rnadiff.refine.files import output_dir_for

    outcomes: dict[int, InputOutcome] = {}
    # Two inputs with one output directory (same stem): a single process refines the first and
    # reports "already exists" for the later ones (or, with --overwrite, the last one wins). Workers
    # would race on it, so the later ones are settled here exactly as a single process would.
    first_of: dict[Path, int] = {}
    runnable: list[int] = []
    for i, p in enumerate(inputs):
        target = output_dir_for(p, out)
        if target in first_of:
            if overwrite:
                raise InputError(f"{inputs[first_of[target]]} and {p} write the same output directory {target}; "
                                 "with --devices and --overwrite the inputs need distinct names")
            outcomes[i] = InputOutcome(index=i, path=str(p),
                                       error=f"{p}: {target}: already exists (use --overwrite to replace it)")
            continue
        first_of[target] = i
        runnable.append(i)
    keep = set(runnable)
    jobs = [ShardJob(inputs=[(i, str(inputs[i])) for i in shard if i in keep], out=str(out),
                     checkpoint=checkpoint, settings=settings, fmt=fmt, overwrite=overwrite,
                     threads=threads, c1=c1, secondary_structure=secondary_structure, mirror=mirror)
            for shard in shard_indices(len(inputs), n_workers)]
    jobs = [j for j in jobs if j.inputs]
    if jobs:
        Path(out).mkdir(parents=True, exist_ok=True)  # before the workers: none of them races to create it
        with ProcessPoolExecutor(max_workers=len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
            for result in pool.map(run_shard, jobs):
                for o in result:
                    outcomes[o.index] = o
    return [outcomes[i] for i in range(len(inputs))]
