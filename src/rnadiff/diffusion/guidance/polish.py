"""The clean finish of every sample: `rnadiff.chem.regularize.polish_samples` with the
structure's vdW radii, so that bonds, angles, base planes, chirality and steric clashes are
repaired together after sampling (issue 16: default outputs near native cleanliness).

    restraints = polish_restraints(features)                  # once per structure
    coords = polish_samples(coords, restraints, PolishSettings(tether=0.3), fixed=given)

Radii and polar flags come from the features' element one-hots, exactly as the guidance's clash
term and the MolProbity-style metric use them (Bondi radii, H-bond allowance for N/O pairs).

With `pair_weight` > 0 the pairs the base-pair prior asserts (`features["pair_prior"]`: a user's
secondary structure, else the pairs inferred from the input geometry) are restrained to the
canonical cis Watson–Crick / G·U geometry (`rnadiff.chem.pair_geometry`, issue 15): the sampler
often leaves an asserted pair's bases near each other but not paired, and the polish is where
all atoms but the given ones are free to move together. An inferred pair with a given base atom
(3-bead, all-atom inputs) keeps only its plane offsets, not its distances: there the model pairs
bases more precisely than the prior asserts them (3-bead, 40 held-out chains: model 0.97 precision,
prior 0.87; the full restraint cost 0.02 INF), but it leaves some of them staggered (20 training
chains: offsets alone raised 3-bead INF 0.955 -> 0.968). A user's pairs are always restrained fully.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from rnadiff.chem.pair_geometry import PairTemplate, bases_given, pair_template_restraints
from rnadiff.chem.pairing import prior_pairs, secondary_structure_given
from rnadiff.chem.regularize import PolishRestraints
from rnadiff.diffusion.guidance.terms import radii_from_elements


def pair_template(features: Any, weight: float) -> PairTemplate | None:
    """The asserted pairs' template restraints, esds / sqrt(weight), or None without a prior or
    with weight 0."""
    if weight <= 0 or "pair_prior" not in features:
        return None
    prior = features["pair_prior"]
    pairs, confidence = prior_pairs(prior)
    template = pair_template_restraints(features, pairs, confidence).scaled(1.0 / np.sqrt(weight))
    if secondary_structure_given(prior) or not len(pairs):
        return template
    # an inferred pair with a given base atom keeps only its plane offsets (see the module docstring)
    placed = bases_given(features)
    return template.distances_of(np.array([not (placed[i] or placed[j]) for i, j in pairs]))


def polish_restraints(features: Any, topology: Any = None, pair_weight: float = 0.0,
                      clashes: bool = True) -> PolishRestraints:
    """Polish restraints (clash term on unless `clashes` is False), from `rnadiff.chem.featurize`
    output (a Features with `.topology()`, or a mapping with `ref_element` plus its `topology`);
    `pair_weight` > 0 adds the base-pair template restraints (see the module docstring)."""
    if topology is None:
        topology = features.topology()
    template = pair_template(features, pair_weight)
    # residues let a pair whose partner is stuck in a clash yield to it (distance_decay)
    residue = None if template is None else features["atom_to_token_idx"].detach().cpu().numpy()
    if not clashes:
        return PolishRestraints.from_topology(topology, pairs=template, atom_residue=residue)
    n = topology.n_atoms
    radius, polar = radii_from_elements(features["ref_element"].reshape(n, -1))
    return PolishRestraints.from_topology(topology, radius, polar, pairs=template, atom_residue=residue)


__all__ = ["pair_template", "polish_restraints"]
