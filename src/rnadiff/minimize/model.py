"""The OpenMM side of a prepared structure: heavy-atom topology (+ missing atoms from pdbfixer),
hydrogens placed by `Modeller`, and the bookkeeping from OpenMM atoms back to input atoms.

Atoms are identified by (segment, residue position in the segment, atom name) so that the
mapping survives pdbfixer and every re-placement of hydrogens, whatever order they use.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass

import numpy as np

from rnadiff.errors import InputError
from rnadiff.minimize._openmm import require_openmm
from rnadiff.minimize.prepare import Prepared

AtomKey = tuple[int, int, str]


@dataclass
class HeavyModel:
    """Heavy atoms of the force-field model (fixed for the whole run)."""

    topology: object              # openmm.app.Topology, heavy atoms only
    keys: list[AtomKey]
    src: np.ndarray               # input atom index, -1 for atoms pdbfixer added
    ff_res: np.ndarray            # index into Prepared.residues
    positions: np.ndarray         # Å [n, 3]
    n_added: int


def _segment_positions(prepared: Prepared) -> dict[int, list[int]]:
    """segment -> the indices into prepared.residues, in order."""
    out: dict[int, list[int]] = {}
    for k, res in enumerate(prepared.residues):
        out.setdefault(res.segment, []).append(k)
    return out


def build_heavy_model(prepared: Prepared, coords: np.ndarray, platform=None, seed: int = 0) -> HeavyModel:
    """OpenMM heavy-atom model of `prepared` at input coordinates `coords` (Å, input order)."""
    openmm, app, unit, pdbfixer = require_openmm()
    if not prepared.residues:
        raise InputError("no ribonucleotides to minimize")
    top = app.Topology()
    pos = []
    segs = _segment_positions(prepared)
    for seg in sorted(segs):
        chain = top.addChain(id=f"S{seg}")
        for pos_in_seg, k in enumerate(segs[seg]):
            res = prepared.residues[k]
            omm_res = top.addResidue(res.name, chain, id=str(pos_in_seg + 1))
            for name, i in res.kept.items():
                el = app.Element.getBySymbol(str(prepared.table.elements[i]).capitalize())
                top.addAtom(name, el, omm_res)
                pos.append(coords[i])
    top.createStandardBonds()
    positions = unit.Quantity([openmm.Vec3(*map(float, p)) for p in np.asarray(pos) / 10.0], unit.nanometer)
    # pdbfixer reads files only: hand it the model as PDBx text (multi-letter chain ids survive).
    buf = io.StringIO()
    app.PDBxFile.writeFile(top, positions, buf, keepIds=True)
    buf.seek(0)
    fixer = pdbfixer.PDBFixer(pdbxfile=buf, platform=platform)
    fixer.missingResidues = {}
    fixer.findMissingAtoms()
    n_added = sum(len(v) for v in fixer.missingAtoms.values()) + sum(len(v) for v in fixer.missingTerminals.values())
    fixer.addMissingAtoms(seed=seed)
    keys, src, ff_res, xyz = [], [], [], []
    fixer_pos = np.asarray(fixer.positions.value_in_unit(unit.angstrom))
    for seg_i, chain in enumerate(fixer.topology.chains()):
        seg = sorted(segs)[seg_i]
        for pos_in_seg, omm_res in enumerate(chain.residues()):
            k = segs[seg][pos_in_seg]
            kept = prepared.residues[k].kept
            for atom in omm_res.atoms():
                keys.append((seg, pos_in_seg, atom.name))
                src.append(kept.get(atom.name, -1))
                ff_res.append(k)
                xyz.append(fixer_pos[atom.index])
    return HeavyModel(fixer.topology, keys, np.asarray(src), np.asarray(ff_res), np.asarray(xyz), n_added)


def atom_keys(topology) -> list[AtomKey]:
    """(segment, residue position, name) of every atom of a topology built from a HeavyModel."""
    out = []
    for seg_i, chain in enumerate(topology.chains()):
        seg = int(chain.id[1:]) if chain.id.startswith("S") and chain.id[1:].isdigit() else seg_i
        for pos_in_seg, res in enumerate(chain.residues()):
            for atom in res.atoms():
                out.append((seg, pos_in_seg, atom.name))
    return out


def with_hydrogens(heavy: HeavyModel, heavy_xyz: np.ndarray, seed: int = 0):
    """(topology, positions Å, index of each heavy atom in it) with hydrogens placed by Modeller.

    Placed once per relax, on covalently repaired heavy atoms, without a force field (its
    hydrogen-only minimization costs 1–25 s, and the all-atom passes minimize them anyway).
    Modeller draws from Python's global `random` and minimizes on the CPU platform's default
    threads, whose summation order varies; both are pinned here (and restored) so the placement
    is reproducible.
    """
    openmm, app, unit, _ = require_openmm()
    positions = unit.Quantity([openmm.Vec3(*map(float, p)) for p in heavy_xyz / 10.0], unit.nanometer)
    modeller = app.Modeller(heavy.topology, positions)
    cpu = openmm.Platform.getPlatformByName("CPU")
    threads = cpu.getPropertyDefaultValue("Threads")
    state = random.getstate()
    try:
        random.seed(seed)
        cpu.setPropertyDefaultValue("Threads", "1")
        modeller.addHydrogens(None, pH=7.0, platform=cpu)
    finally:
        random.setstate(state)
        cpu.setPropertyDefaultValue("Threads", threads)
    keys = atom_keys(modeller.topology)
    where = {k: i for i, k in enumerate(keys)}
    heavy_index = np.asarray([where[k] for k in heavy.keys])
    xyz = np.asarray(modeller.positions.value_in_unit(unit.angstrom))
    return modeller.topology, xyz, heavy_index
