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


def amber_system(forcefield, topology, config: MinimizationConfig, distance_dielectric: bool):
    """The force field's System with cutoff non-periodic electrostatics and no constraints (the
    minimizer converges faster without constraint penalties).

    distance_dielectric: replace the Coulomb terms by ε = 4r (r in Å), the cheap implicit solvent
    of vacuum nucleic-acid work: it screens the phosphate repulsion and over-strong salt bridges
    that a uniform ε = 1 exaggerates. Measured on a refined 26-nt model: the relax moves it
    0.13 Å (reaction field: 0.5–0.6 Å) and keeps its lDDT (reaction field: −0.015), at the
    reaction field's cost (GBn2: 60x slower per force evaluation).
    """
    openmm, app, unit, _ = require_openmm()
    system = forcefield.createSystem(topology, nonbondedMethod=app.CutoffNonPeriodic,
                                     nonbondedCutoff=config.cutoff * unit.nanometer, constraints=None)
    if distance_dielectric:
        nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
        for force in _distance_dielectric_coulomb(openmm, nonbonded, config.cutoff):
            system.addForce(force)
    for force in system.getForces():
        force.setForceGroup(0)
    return system


# Coulomb's constant (kJ/mol·nm/e²) over ε(r)·r with ε = 4 r[Å] = 40 r[nm].
_DDD_ENERGY = "138.935456*q/(40*r*r)"


def _distance_dielectric_coulomb(openmm, nonbonded, cutoff_nm: float) -> list:
    """Move the charges out of `nonbonded` (Lennard-Jones stays) into ε = 4r Coulomb terms: pairs
    within the cutoff, smoothly switched off over its last 0.1 nm (the minimizer needs continuous
    forces), and the force field's scaled 1-4 pairs as bonds; excluded pairs stay excluded."""
    pairs = openmm.CustomNonbondedForce(_DDD_ENERGY.replace("q/", "q1*q2/"))
    pairs.addPerParticleParameter("q")
    pairs.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffNonPeriodic)
    pairs.setCutoffDistance(cutoff_nm)
    pairs.setUseSwitchingFunction(True)
    pairs.setSwitchingDistance(cutoff_nm - 0.1)
    for i in range(nonbonded.getNumParticles()):
        charge, sigma, epsilon = nonbonded.getParticleParameters(i)
        pairs.addParticle([charge])
        nonbonded.setParticleParameters(i, 0.0, sigma, epsilon)
    one_four = openmm.CustomBondForce(_DDD_ENERGY)
    one_four.addPerBondParameter("q")
    for k in range(nonbonded.getNumExceptions()):
        i, j, charge_prod, sigma, epsilon = nonbonded.getExceptionParameters(k)
        pairs.addExclusion(i, j)
        if charge_prod.value_in_unit(charge_prod.unit) != 0.0:
            one_four.addBond(i, j, [charge_prod])
        nonbonded.setExceptionParameters(k, i, j, 0.0, sigma, epsilon)
    return [pairs, one_four]
