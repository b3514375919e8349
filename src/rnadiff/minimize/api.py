"""`minimize_structure` (what refine calls) and `minimize_file` (what the CLI calls).

The output keeps the input's chain ids, residue numbers and names (AMBER aliases cleaned to
A/C/G/U); it holds every input heavy atom at its minimized position, the heavy atoms pdbfixer
added, input atoms that stayed out of the force field at their input position, and hydrogens only
when asked for.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from rnadiff.errors import InputError, OutputError
from rnadiff.geometry import kabsch
from rnadiff.metrics.atoms import AtomTable
from rnadiff.metrics.report import structure_quality
from rnadiff.minimize.config import MinimizationConfig
from rnadiff.minimize.engine import EngineResult, run
from rnadiff.minimize.phosphate import rebuild_5p_group
from rnadiff.minimize.prepare import Prepared, prepare
from rnadiff.minimize.writer import write_table


@dataclass
class MinimizationResult:
    table: AtomTable     # the output structure
    coords: np.ndarray   # [N_input, 3]: new coordinates of the input's atoms, input order
    report: dict         # JSON-able


def minimize_structure(structure: Any, coords: np.ndarray | None = None,
                       config: MinimizationConfig | None = None) -> MinimizationResult:
    """Minimize one structure.

    `structure`: an RNAStructure, AtomTable, gemmi Structure or path; `coords` [N, 3] replaces its
    coordinates (same atom order as `AtomTable.from_any(structure)`). Input hydrogens are
    re-placed, so their rows of `coords` in the result keep the input values.
    """
    config = config or MinimizationConfig()
    t_start = time.perf_counter()
    if hasattr(structure, "chains") and hasattr(structure, "residues"):
        table = AtomTable.from_rna_structure(structure, coords)
    else:
        table = AtomTable.from_any(structure)
        if coords is not None:
            table = table.with_coords(coords)
    if len(table) == 0:
        raise InputError("structure has no atoms")
    if not np.isfinite(table.coords).all():
        raise InputError("structure has non-finite coordinates")
    heavy_idx = np.nonzero(table.heavy_mask)[0]
    prepared = prepare(table)
    result = run(prepared, config, prepared.table.coords)
    out_table, heavy_new = _assemble(prepared, result, config.hydrogens)

    new_coords = table.coords.copy()
    new_coords[heavy_idx] = heavy_new
    before = structure_quality(prepared.table)
    after = structure_quality(out_table.heavy())
    moved = np.linalg.norm(heavy_new - prepared.table.coords, axis=1)
    report = {
        "method": "OpenMM",
        "forcefield": config.forcefield,
        "electrostatics": config.electrostatics,
        "solvent": config.solvent,
        "platform": result.platform,
        "cpu_threads": config.cpu_threads,
        "restraint_k_kcal_per_mol_A2": config.restraint_k,
        "tolerance_kJ_per_mol_nm": config.tolerance,
        "energy_before_kJ_per_mol": result.energy_start,
        "energy_after_kJ_per_mol": result.energy_end,
        "rmsd_to_start": float(np.sqrt((moved ** 2).mean())),
        "max_displacement": float(moved.max()),
        "before": _quality_summary(before),
        "after": _quality_summary(after),
        "n_segments": prepared.n_segments,
        "n_atoms_added": result.heavy.n_added,
        "released_residues": [prepared.table.residue_label(prepared.residues[k].src_res) for k in result.released],
        "stages": result.stages,
        "seconds": round(time.perf_counter() - t_start, 3),
        "notes": list(prepared.notes),
    }
    if result.heavy.n_added:
        report["notes"].append(f"{result.heavy.n_added} missing heavy atom(s) added by pdbfixer")
    return MinimizationResult(out_table, new_coords, report)


def minimize_file(input_path: str | PathLike, output_path: str | PathLike,
                  config: MinimizationConfig | None = None, overwrite: bool = False) -> dict:
    """Read, minimize, write atomically; returns the report."""
    output_path = Path(output_path)
    if output_path.exists() and not overwrite:
        raise OutputError(f"{output_path} exists (use --overwrite to replace it)")
    result = minimize_structure(AtomTable.from_file(input_path), config=config)
    write_table(result.table, output_path, overwrite=overwrite)
    result.report["input"] = str(input_path)
    result.report["output"] = str(output_path)
    return result.report


def _quality_summary(q: dict) -> dict:
    keys = ("clashes", "clashes_per_1000_atoms", "bond_outliers", "link_outliers", "angle_outliers",
            "chirality_errors")
    return {k: q[k] for k in keys}


def _assemble(prepared: Prepared, result: EngineResult, hydrogens: bool) -> tuple[AtomTable, np.ndarray]:
    """Output table in input residue order, and the new coordinates of the input heavy atoms."""
    t = prepared.table
    heavy = result.heavy
    new = t.coords.copy()  # passthrough atoms keep their input coordinates
    src_ok = heavy.src >= 0
    new[heavy.src[src_ok]] = result.heavy_xyz[src_ok]
    # Atoms held out of the force field (5'-phosphates, modified-base extras) follow their
    # residue's motion: Kabsch from its input to its minimized kept atoms.
    # A standard residue's 5'-phosphate is rebuilt with library geometry instead (phosphate.py).
    for res in prepared.residues:
        if not res.held:
            continue
        kept = np.asarray(list(res.kept.values()))
        rot, tr = kabsch(t.coords[kept], new[kept])
        new[res.held] = t.coords[res.held] @ rot.T + tr
        if res.modified:
            continue
        held = {str(t.atom_names[i]): i for i in res.held}
        old = {n: t.coords[i] for n, i in {**res.kept, **held}.items()}
        rebuilt = rebuild_5p_group(res.name, {n: new[i] for n, i in res.kept.items()}, old)
        for name, x in (rebuilt or {}).items():
            if name in held:
                new[held[name]] = x

    # Extra atoms per force-field residue: pdbfixer's heavy atoms and (optionally) hydrogens.
    extra: dict[int, list[tuple[str, str, np.ndarray]]] = {}
    for i in np.nonzero(~src_ok)[0]:
        k = int(heavy.ff_res[i])
        if not prepared.residues[k].modified:  # a modified residue gets exactly its own atoms back
            name = heavy.keys[i][2]
            extra.setdefault(k, []).append((name, "P" if name == "P" else name[0], result.heavy_xyz[i]))
    if hydrogens:
        extra_h = _hydrogens(prepared, result)
        for k, atoms in extra_h.items():
            extra.setdefault(k, []).extend(atoms)

    by_src = {res.src_res: (k, res) for k, res in enumerate(prepared.residues)}
    starts = t.residue_starts()
    rows, xyz = [], []
    for r in range(t.n_residues):
        lo, hi = starts[r], starts[r + 1]
        k_res = by_src.get(r)
        name = k_res[1].out_name if k_res else str(t.res_names[lo])
        for i in range(lo, hi):
            rows.append((t.chain_ids[i], int(t.res_seqs[i]), t.icodes[i], name, t.atom_names[i], t.elements[i]))
            xyz.append(new[i])
        if k_res:
            for atom_name, element, x in extra.get(k_res[0], []):
                rows.append((t.chain_ids[lo], int(t.res_seqs[lo]), t.icodes[lo], name, atom_name, element))
                xyz.append(x)
    return AtomTable._from_rows(rows, xyz), new


def _hydrogens(prepared: Prepared, result: EngineResult) -> dict[int, list[tuple[str, str, np.ndarray]]]:
    """Hydrogens of the final model per force-field residue (not for modified residues, whose
    force-field hydrogens belong to the parent; not HO5' where a 5'-phosphate was re-attached)."""
    heavy = result.heavy
    seg_pos_to_res = {(key[0], key[1]): int(k) for key, k in zip(heavy.keys, heavy.ff_res)}
    out: dict[int, list] = {}
    for seg_i, chain in enumerate(result.topology_h.chains()):
        for pos, res in enumerate(chain.residues()):
            k = seg_pos_to_res.get((seg_i, pos))
            if k is None or prepared.residues[k].modified:
                continue
            has_5p = any(str(prepared.table.atom_names[i]) == "P" for i in prepared.residues[k].held)
            for atom in res.atoms():
                if atom.element is None or atom.element.symbol != "H":
                    continue
                if has_5p and atom.name == "HO5'":
                    continue
                out.setdefault(k, []).append((atom.name, "H", result.xyz_h[atom.index]))
    return out
