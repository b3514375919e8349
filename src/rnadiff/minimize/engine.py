"""The relax loop (AF2 style, rewritten for RNA; DESIGN §8).

1. If sugars are inverted: a first stage with signed-volume restraints on those residues (their
   positional restraints off), because plain minimization does not undo an inversion.
2. Restrained minimization (0.5·k·|x − x0|² on input heavy atoms, x0 = input), hydrogens
   re-placed from the heavy atoms before every stage.
3. Violations (clashes, links, bond/angle outliers, inverted sugars) release the restraints of the
   residues involved (inversions get another signed-volume stage); repeat up to
   `max_outer_iterations` times.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from rnadiff.minimize._openmm import pick_platform, require_openmm
from rnadiff.minimize.config import MinimizationConfig
from rnadiff.minimize.forces import create_system, load_forcefield
from rnadiff.minimize.model import HeavyModel, build_heavy_model, with_hydrogens
from rnadiff.minimize.prepare import Prepared
from rnadiff.minimize.violations import Violations, find_violations, sugar_chirals

log = logging.getLogger(__name__)


@dataclass
class EngineResult:
    heavy: HeavyModel
    heavy_xyz: np.ndarray                # final heavy-atom coordinates (Å)
    topology_h: object                   # final topology with hydrogens
    xyz_h: np.ndarray                    # its coordinates (Å)
    heavy_index_h: np.ndarray
    energy_start: float                  # kJ/mol, force field only (hydrogens placed, input heavy atoms)
    energy_end: float
    violations_start: Violations
    violations_end: Violations
    released: list[int]
    stages: list[dict] = field(default_factory=list)
    platform: str = ""


class _Runner:
    def __init__(self, prepared: Prepared, config: MinimizationConfig, input_xyz: np.ndarray):
        openmm, _, _, _ = require_openmm()
        self.openmm = openmm
        self.prepared = prepared
        self.config = config
        self.platform, self.props = pick_platform(config.platform, config.cpu_threads)
        self.ff = load_forcefield(config)
        self.heavy = build_heavy_model(prepared, input_xyz, self.platform, config.seed)
        h = self.heavy
        modified = np.asarray([prepared.residues[k].modified for k in h.ff_res], bool)
        self.restrain = np.nonzero(h.src >= 0)[0]           # heavy atoms that came from the input
        self.k = np.where(modified[self.restrain], config.modified_restraint_k, config.restraint_k)
        self.x0 = h.positions[self.restrain]
        self.modified_res = {k for k, r in enumerate(prepared.residues) if r.modified}

    def energy(self, context) -> float:
        state = context.getState(getEnergy=True, groups={0})
        return float(state.getPotentialEnergy().value_in_unit(self.openmm.unit.kilojoule_per_mole))

    def stage(self, xyz: np.ndarray, released: set[int], chiral_res: set[int] | None = None):
        """One minimization from heavy coordinates `xyz`; returns (new heavy xyz, e0, e1, H model)."""
        unit = self.openmm.unit
        top, xyz_h, hidx = with_hydrogens(self.heavy, xyz, self.ff)
        free = set(released) | set(chiral_res or ())
        keep = np.asarray([self.heavy.ff_res[i] not in free for i in self.restrain], bool)
        chir, v0 = (None, None)
        if chiral_res:
            quads, v0 = sugar_chirals(self.prepared, self.heavy, chiral_res)
            chir = hidx[quads] if len(quads) else None
        system = create_system(self.ff, top, self.config, hidx[self.restrain[keep]], self.k[keep],
                               self.x0[keep], chir, v0)
        integrator = self.openmm.VerletIntegrator(0.001)
        context = self.openmm.Context(system, integrator, self.platform, self.props)
        context.setPositions(unit.Quantity([self.openmm.Vec3(*p) for p in (xyz_h / 10.0).tolist()], unit.nanometer))
        e0 = self.energy(context)
        self.openmm.LocalEnergyMinimizer.minimize(context, self.config.tolerance, int(self.config.steps))
        e1 = self.energy(context)
        out = np.asarray(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom))
        del context, integrator
        return out[hidx], e0, e1, (top, out, hidx)


def run(prepared: Prepared, config: MinimizationConfig, input_xyz: np.ndarray) -> EngineResult:
    runner = _Runner(prepared, config, input_xyz)
    heavy = runner.heavy
    xyz = heavy.positions.copy()
    v_start = find_violations(prepared, heavy, xyz)
    stages: list[dict] = []
    released: set[int] = set()
    energy_start = None
    chiral = set(v_start.chiral_residues)
    last = v_start
    h_model = None
    e1 = float("nan")
    for outer in range(config.max_outer_iterations):
        if chiral:
            t0 = time.perf_counter()
            xyz, e0, e1, h_model = runner.stage(xyz, released, chiral)
            energy_start = e0 if energy_start is None else energy_start
            stages.append({"stage": "chirality", "iteration": outer, "residues": len(chiral),
                           "energy": e1, "seconds": round(time.perf_counter() - t0, 3)})
        t0 = time.perf_counter()
        xyz, e0, e1, h_model = runner.stage(xyz, released)
        energy_start = e0 if energy_start is None else energy_start
        last = find_violations(prepared, heavy, xyz)
        stages.append({"stage": "restrained", "iteration": outer, "released_residues": len(released),
                       "energy": e1, "clashes": last.clashes, "bond_outliers": last.bond_outliers,
                       "angle_outliers": last.angle_outliers, "chirality_errors": last.chirality_errors,
                       "seconds": round(time.perf_counter() - t0, 3)})
        log.info("minimize iteration %d: E=%.1f kJ/mol, clashes=%d, chirality errors=%d",
                 outer, e1, last.clashes, last.chirality_errors)
        if not last.any:
            break
        new = last.residues - released - runner.modified_res
        chiral = set(last.chiral_residues)
        if not new and not chiral:
            break
        released |= new
    top, xyz_h, hidx = h_model
    return EngineResult(heavy, xyz, top, xyz_h, hidx, float(energy_start), float(e1), v_start, last,
                        sorted(released), stages, runner.platform.getName())
