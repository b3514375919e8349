"""The OpenMM systems of the relax.

Force-field terms live in force group 0 and restraints in group 1, so reported energies are the
physical energy alone. Restraint strengths are per-particle / per-bond parameters, so that the
outer loop releases residues with `updateParametersInContext` instead of rebuilding the System
and its Context (building one costs as much as a few hundred minimizer iterations).
"""
from __future__ import annotations

import numpy as np

from rnadiff.minimize._openmm import require_openmm
from rnadiff.minimize.config import SOLVENT_FILES, MinimizationConfig

KCAL_A2_TO_KJ_NM2 = 4.184 * 100.0  # kcal/mol/Å² -> kJ/mol/nm²
RESTRAINT_GROUP = 1
# A sugar centre keeps its hand while its signed volume has the right sign with this margin (Å³);
# ideal ribose volumes are 2.3–2.7 Å³, so the guard never acts on a sound centre.
CHIRAL_GUARD_MARGIN = 1.0

# Signed volume (p2−p1)·((p3−p1)×(p4−p1)) written out for CustomCompoundBondForce; p1 = centre.
_VOLUME = ("(x2-x1)*((y3-y1)*(z4-z1)-(z3-z1)*(y4-y1))"
           "+(y2-y1)*((z3-z1)*(x4-x1)-(x3-x1)*(z4-z1))"
           "+(z2-z1)*((x3-x1)*(y4-y1)-(y3-y1)*(x4-x1))")


def load_forcefield(config: MinimizationConfig, with_solvent: bool = False):
    """AMBER (RNA.OL3 in amber14-all), plus the implicit solvent when asked and configured."""
    _, app, _, _ = require_openmm()
    solvent = SOLVENT_FILES[config.solvent] if with_solvent else None
    return app.ForceField(config.forcefield, *([solvent] if solvent else []))


def positional_restraints(atoms: np.ndarray, k: np.ndarray, xyz: np.ndarray):
    """0.5·k·|x − x0|² on `atoms` (k in kcal/mol/Å², x0 in Å); parameter 0 of particle j is k_j."""
    openmm, _, _, _ = require_openmm()
    force = openmm.CustomExternalForce("0.5*k*((x-x0)^2+(y-y0)^2+(z-z0)^2)")
    for name in ("k", "x0", "y0", "z0"):
        force.addPerParticleParameter(name)
    for i, kj, x in zip(np.asarray(atoms).tolist(), np.asarray(k).tolist(), np.asarray(xyz) / 10.0):
        force.addParticle(int(i), [kj * KCAL_A2_TO_KJ_NM2, *map(float, x)])
    force.setForceGroup(RESTRAINT_GROUP)
    return force


def set_restraint_k(force, context, k: np.ndarray) -> None:
    """New k (kcal/mol/Å², one per restrained particle, in the force's order) in a live Context."""
    for j, kj in enumerate(np.asarray(k).tolist()):
        i, params = force.getParticleParameters(j)
        force.setParticleParameters(j, i, [kj * KCAL_A2_TO_KJ_NM2, *list(params)[1:]])
    force.updateParametersInContext(context)


def chiral_volume_restraints(quads: np.ndarray, targets: np.ndarray, k: float):
    """0.5·k·(V − V0)² on chiral quadruples (centre first; V0 in Å³, k in kJ/mol/nm⁶)."""
    openmm, _, _, _ = require_openmm()
    force = openmm.CustomCompoundBondForce(4, f"0.5*kc*(v-v0)^2; v={_VOLUME}")
    force.addGlobalParameter("kc", k)
    force.addPerBondParameter("v0")
    for quad, v0 in zip(np.asarray(quads).tolist(), np.asarray(targets).tolist()):
        force.addBond([int(q) for q in quad], [float(v0) / 1000.0])  # Å³ -> nm³
    force.setForceGroup(RESTRAINT_GROUP)
    return force


def chiral_guard(quads: np.ndarray, signs: np.ndarray, k: float):
    """Flat-bottomed: zero while sign·V ≥ CHIRAL_GUARD_MARGIN, harmonic below. Keeps every sugar
    centre's hand through the all-atom passes (a released, clashing residue can otherwise be
    pushed through a planar centre) without biasing sound geometry."""
    openmm, _, _, _ = require_openmm()
    force = openmm.CustomCompoundBondForce(4, f"0.5*kc*min(0, s*v-vmin)^2; v={_VOLUME}")
    force.addGlobalParameter("kc", k)
    force.addGlobalParameter("vmin", CHIRAL_GUARD_MARGIN / 1000.0)
    force.addPerBondParameter("s")
    for quad, s in zip(np.asarray(quads).tolist(), np.asarray(signs).tolist()):
        force.addBond([int(q) for q in quad], [float(s)])
    force.setForceGroup(RESTRAINT_GROUP)
    return force


def amber_system(forcefield, topology, config: MinimizationConfig):
    """The force field's System with cutoff non-periodic (reaction-field) electrostatics and no
    constraints: the minimizer converges faster without constraint penalties."""
    _, app, unit, _ = require_openmm()
    system = forcefield.createSystem(topology, nonbondedMethod=app.CutoffNonPeriodic,
                                     nonbondedCutoff=config.cutoff * unit.nanometer, constraints=None)
    for force in system.getForces():
        force.setForceGroup(0)
    return system
