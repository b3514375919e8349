"""Covalent repair of the heavy atoms before any hydrogen exists (the relax's first pass).

A noisy or generated model can have inverted sugar centres, stretched O3'–P links and bent
angles. With hydrogens present an inversion cannot be undone by minimization (the centre's
hydrogen blocks the way), so this pass fixes the covalent geometry first, on heavy atoms only:
the monomer library's bonds (O3'–P links included), angles and sugar signed volumes, weighted by
1/esd², plus the positional restraints of the all-atom passes. No force field, no hydrogens: a
70-nt RNA takes well under a second. Hydrogens are then placed on a chirally correct model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnadiff.chem.library import get_template
from rnadiff.geometry import signed_volumes
from rnadiff.metrics.atoms import AtomTable
from rnadiff.metrics.restraints import Restraints, build_restraints
from rnadiff.minimize._openmm import require_openmm
from rnadiff.minimize.forces import chiral_volume_restraints, positional_restraints


@dataclass
class ChiralCentres:
    quads: np.ndarray    # [k, 4] heavy-atom indices, centre first
    signs: np.ndarray    # [k] +1 / -1
    targets: np.ndarray  # [k] ideal signed volume (Å³) from the library


def chiral_centres(table: AtomTable, restraints: Restraints) -> ChiralCentres:
    """The sugar centres of `table` with their library signed volumes."""
    targets = []
    for row, sign in zip(restraints.chirals.tolist(), restraints.chiral_signs.tolist()):
        tmpl = get_template(str(table.res_names[row[0]]))
        idx = tmpl.indices(str(table.atom_names[i]) for i in row)[None]
        ideal = float(signed_volumes(np.asarray(tmpl.ideal_coords, float), idx)[0])
        targets.append(sign * abs(ideal))
    return ChiralCentres(restraints.chirals, restraints.chiral_signs, np.asarray(targets, float))


def repair_covalent(table: AtomTable, restrained: np.ndarray, restraint_k: np.ndarray,
                    config, platform, props) -> tuple[np.ndarray, ChiralCentres]:
    """Heavy-atom coordinates [n, 3] (Å) with library covalent geometry, restrained to `table`'s.

    `restrained` / `restraint_k` (kcal/mol/Å²): which atoms are held to their input position.
    Returns the coordinates and the sugar centres (reused by the all-atom passes' guard).
    """
    openmm, _, unit, _ = require_openmm()
    restraints = build_restraints(table)
    centres = chiral_centres(table, restraints)
    system = openmm.System()
    for _ in range(len(table)):
        system.addParticle(1.0)
    # Energies in units of z² (kJ/mol): k = 1/esd² with lengths in nm and angles in radians.
    bonds = openmm.HarmonicBondForce()
    for (a, b), d, e in zip(restraints.bonds.tolist(), restraints.bond_targets, restraints.bond_esds):
        bonds.addBond(a, b, float(d) / 10.0, 1.0 / (float(e) / 10.0) ** 2)
    angles = openmm.HarmonicAngleForce()
    for (a, b, c), t, e in zip(restraints.angles.tolist(), restraints.angle_targets, restraints.angle_esds):
        angles.addAngle(a, b, c, float(np.radians(t)), 1.0 / float(np.radians(e)) ** 2)
    system.addForce(bonds)
    system.addForce(angles)
    system.addForce(chiral_volume_restraints(centres.quads, centres.targets, config.chirality_k))
    system.addForce(positional_restraints(restrained, restraint_k, table.coords[restrained]))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform, props)
    context.setPositions(unit.Quantity(table.coords / 10.0, unit.nanometer))
    openmm.LocalEnergyMinimizer.minimize(context, config.tolerance, int(config.steps))
    xyz = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    return np.asarray(xyz, float), centres
