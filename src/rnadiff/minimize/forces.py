"""The OpenMM system: force field + implicit solvent, positional and signed-volume restraints.

Force-field terms live in force group 0 and restraints in group 1, so reported energies are the
physical energy alone.
"""
from __future__ import annotations

import numpy as np

from rnadiff.minimize._openmm import require_openmm
from rnadiff.minimize.config import SOLVENT_FILES, MinimizationConfig

KCAL_A2_TO_KJ_NM2 = 4.184 * 100.0  # kcal/mol/Å² -> kJ/mol/nm²
RESTRAINT_GROUP = 1

# Signed volume (p2−p1)·((p3−p1)×(p4−p1)) written out for CustomCompoundBondForce; p1 = centre.
_VOLUME = ("(x2-x1)*((y3-y1)*(z4-z1)-(z3-z1)*(y4-y1))"
           "+(y2-y1)*((z3-z1)*(x4-x1)-(x3-x1)*(z4-z1))"
           "+(z2-z1)*((x3-x1)*(y4-y1)-(y3-y1)*(x4-x1))")


def load_forcefield(config: MinimizationConfig):
    _, app, _, _ = require_openmm()
    files = [config.forcefield] + ([SOLVENT_FILES[config.solvent]] if SOLVENT_FILES[config.solvent] else [])
    return app.ForceField(*files)


def create_system(forcefield, topology, config: MinimizationConfig, restraint_atoms: np.ndarray,
                  restraint_k: np.ndarray, restraint_xyz: np.ndarray,
                  chirals: np.ndarray | None = None, chiral_targets: np.ndarray | None = None):
    """System with harmonic restraints 0.5·k·|x − x0|² (k in kcal/mol/Å², x0 in Å) on
    `restraint_atoms` and, optionally, 0.5·kc·(V − V0)² on chiral quadruples (V0 in Å³)."""
    openmm, app, unit, _ = require_openmm()
    system = forcefield.createSystem(
        topology, nonbondedMethod=app.CutoffNonPeriodic, nonbondedCutoff=config.cutoff * unit.nanometer,
        constraints=app.HBonds)
    for force in system.getForces():
        force.setForceGroup(0)
    if len(restraint_atoms):
        pos = openmm.CustomExternalForce("0.5*k*((x-x0)^2+(y-y0)^2+(z-z0)^2)")
        for name in ("k", "x0", "y0", "z0"):
            pos.addPerParticleParameter(name)
        for i, k, x in zip(restraint_atoms.tolist(), restraint_k.tolist(), restraint_xyz / 10.0):
            pos.addParticle(int(i), [k * KCAL_A2_TO_KJ_NM2, *map(float, x)])
        pos.setForceGroup(RESTRAINT_GROUP)
        system.addForce(pos)
    if chirals is not None and len(chirals):
        chir = openmm.CustomCompoundBondForce(4, f"0.5*kc*(v-v0)^2; v={_VOLUME}")
        chir.addGlobalParameter("kc", config.chirality_k)
        chir.addPerBondParameter("v0")
        for quad, v0 in zip(chirals.tolist(), chiral_targets.tolist()):
            chir.addBond([int(q) for q in quad], [float(v0) / 1000.0])  # Å³ -> nm³
        chir.setForceGroup(RESTRAINT_GROUP)
        system.addForce(chir)
    return system
