"""The relax (AF2's restrained minimization, rewritten for RNA and for speed; docs/design.md §8).

1. Covalent repair of the heavy atoms (`covalent.py`): library bonds, O3'–P links, angles and
   sugar volumes, restrained to the input. Inverted sugars are undone here, before hydrogens exist.
2. Hydrogens placed once; one AMBER System and one Context for every later pass, with
   distance-dependent-dielectric (or reaction-field) electrostatics (cheap), positional
   restraints 0.5·k·|x − x0|² on the input's heavy
   atoms (x0 = the repaired model) and a flat-bottomed guard that keeps every sugar centre's hand.
3. Outer loop: minimize; residues with violations (clashes, bond/angle outliers, inversions) lose
   their restraints in the live Context; stop when a pass finds no new residue to release or after
   `max_outer_iterations` passes. Release only ever grows, so the loop terminates.
4. With an implicit solvent configured, one last pass in that solvent from the fast passes'
   minimum (a System with GB terms, same topology and restraint state).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from rnadiff.minimize._openmm import pick_platform, require_openmm
from rnadiff.minimize.config import SOLVENT_FILES, MinimizationConfig
from rnadiff.minimize.covalent import repair_covalent
from rnadiff.minimize.forces import (amber_system, chiral_guard, load_forcefield, positional_restraints,
                                     set_restraint_k)
from rnadiff.minimize.model import HeavyModel, build_heavy_model, with_hydrogens
from rnadiff.minimize.prepare import Prepared
from rnadiff.minimize.violations import Violations, find_violations, heavy_table

log = logging.getLogger(__name__)


@dataclass
class EngineResult:
    heavy: HeavyModel
    heavy_xyz: np.ndarray                # final heavy-atom coordinates (Å)
    topology_h: object                   # final topology with hydrogens
    xyz_h: np.ndarray                    # its coordinates (Å)
    heavy_index_h: np.ndarray
    energy_start: float                  # kJ/mol, force field only, at the first all-atom pass's start
    energy_end: float
    violations_start: Violations
    violations_end: Violations
    released: list[int]
    stages: list[dict] = field(default_factory=list)
    platform: str = ""


class _AllAtom:
    """One System + Context, minimized repeatedly; restraints released in place."""

    def __init__(self, openmm, system, restraint, k, platform, props, xyz_h: np.ndarray):
        self.openmm, self.system, self.restraint, self.k = openmm, system, restraint, np.asarray(k, float)
        self.context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform, props)
        self.set_positions(xyz_h)

    def set_positions(self, xyz_h: np.ndarray) -> None:
        self.context.setPositions(self.openmm.unit.Quantity(xyz_h / 10.0, self.openmm.unit.nanometer))

    def energy(self) -> float:
        state = self.context.getState(getEnergy=True, groups={0})
        return float(state.getPotentialEnergy().value_in_unit(self.openmm.unit.kilojoule_per_mole))

    def positions(self) -> np.ndarray:
        state = self.context.getState(getPositions=True)
        return np.asarray(state.getPositions(asNumpy=True).value_in_unit(self.openmm.unit.angstrom))

    def release(self, mask: np.ndarray) -> None:
        self.k = np.where(mask, 0.0, self.k)
        set_restraint_k(self.restraint, self.context, self.k)

    def minimize(self, tolerance: float, steps: int) -> tuple[float, float, np.ndarray]:
        e0 = self.energy()
        self.openmm.LocalEnergyMinimizer.minimize(self.context, tolerance, steps)
        return e0, self.energy(), self.positions()


class _Runner:
    def __init__(self, prepared: Prepared, config: MinimizationConfig, input_xyz: np.ndarray):
        self.openmm, _, _, _ = require_openmm()
        self.prepared, self.config = prepared, config
        self.platform, self.props = pick_platform(config.platform, config.cpu_threads)
        self.heavy = h = build_heavy_model(prepared, input_xyz, self.platform, config.seed)
        modified = np.asarray([prepared.residues[k].modified for k in h.ff_res], bool)
        self.restrain = np.nonzero(h.src >= 0)[0]           # heavy atoms that came from the input
        self.k = np.where(modified[self.restrain], config.modified_restraint_k, config.restraint_k)
        self.modified_res = {k for k, r in enumerate(prepared.residues) if r.modified}
        self.ff = load_forcefield(config)

    def repair(self) -> tuple[np.ndarray, object]:
        table = heavy_table(self.prepared, self.heavy, self.heavy.positions)
        return repair_covalent(table, self.restrain, self.k, self.config, self.platform, self.props)

    def all_atom(self, xyz: np.ndarray, centres, forcefield, topology, xyz_h, hidx, k=None,
                 distance_dielectric: bool = False) -> _AllAtom:
        system = amber_system(forcefield, topology, self.config, distance_dielectric)
        restraint = positional_restraints(hidx[self.restrain], self.k if k is None else k, xyz[self.restrain])
        system.addForce(restraint)
        system.addForce(chiral_guard(hidx[centres.quads], centres.signs, self.config.chirality_k))
        return _AllAtom(self.openmm, system, restraint, self.k if k is None else k, self.platform, self.props, xyz_h)

    def release_mask(self, residues: set[int]) -> np.ndarray:
        return np.isin(self.heavy.ff_res[self.restrain], sorted(residues))


def run(prepared: Prepared, config: MinimizationConfig, input_xyz: np.ndarray) -> EngineResult:
    runner = _Runner(prepared, config, input_xyz)
    heavy, stages = runner.heavy, []
    v_start = find_violations(prepared, heavy, heavy.positions)
    t0 = time.perf_counter()
    xyz, centres = runner.repair()
    v_rep = find_violations(prepared, heavy, xyz)
    stages.append(_stage("covalent", 0, t0, v_rep))
    top, xyz_h, hidx = with_hydrogens(heavy, xyz, config.seed)
    xyz_h_start = xyz_h
    passes = runner.all_atom(xyz, centres, runner.ff, top, xyz_h, hidx,
                             distance_dielectric=config.electrostatics == "distance_dielectric")
    released: set[int] = set()
    energy_start, last = None, v_rep
    for outer in range(config.max_outer_iterations):
        t0 = time.perf_counter()
        e0, e1, xyz_h = passes.minimize(config.tolerance, int(config.steps))
        energy_start = e0 if energy_start is None else energy_start
        last = find_violations(prepared, heavy, xyz_h[hidx])
        stages.append(_stage("restrained", outer, t0, last, energy=e1, released_residues=len(released)))
        log.info("relax pass %d: E=%.1f kJ/mol, clashes=%d, chirality errors=%d",
                 outer, e1, last.clashes, last.chirality_errors)
        new = last.residues - released - runner.modified_res
        if not new:
            break
        released |= new
        passes.release(runner.release_mask(released))
    if SOLVENT_FILES[config.solvent]:
        t0 = time.perf_counter()
        ff = load_forcefield(config, with_solvent=True)
        passes = runner.all_atom(xyz, centres, ff, top, xyz_h_start, hidx, k=passes.k)
        energy_start = passes.energy()  # energies of different solvents do not compare: restart
        passes.set_positions(xyz_h)
        _, e1, xyz_h = passes.minimize(config.tolerance, int(config.steps))
        last = find_violations(prepared, heavy, xyz_h[hidx])
        stages.append(_stage(f"{config.solvent} polish", len(stages) - 1, t0, last, energy=e1))
    return EngineResult(heavy, xyz_h[hidx], top, xyz_h, hidx, float(energy_start), float(e1), v_start, last,
                        sorted(released), stages, runner.platform.getName())


def _stage(name: str, iteration: int, t0: float, v: Violations, **extra) -> dict:
    return {"stage": name, "iteration": iteration, **extra, "clashes": v.clashes,
            "link_outliers": v.link_outliers, "bond_outliers": v.bond_outliers,
            "angle_outliers": v.angle_outliers, "chirality_errors": v.chirality_errors,
            "seconds": round(time.perf_counter() - t0, 3)}
