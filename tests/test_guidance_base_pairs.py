"""The base-pair guidance term: H-bonds of the pairs the base-pair prior asserts."""
from __future__ import annotations

import numpy as np
import torch

from rnadiff.chem import featurize
from rnadiff.chem.pairing import pair_prior
from rnadiff.diffusion.guidance import GuidanceConfig, RNAGuidance
from rnadiff.io import read_structure
from rnadiff.metrics.basepairs import canonical_pairs


def _hairpin(rna_dev_dir):
    feats = featurize(read_structure(rna_dev_dir / "clean" / "rsrnasp1_train" / "2qus_A.pdb"))
    pairs = canonical_pairs(feats.layout, feats["coords"].numpy(), feats["atom_present_mask"].numpy() > 0)
    return feats, [(p.i, p.j) for p in pairs]


def _guidance(feats, pairs, weight=1.0):
    f = dict(feats.as_dict(), pair_prior=pair_prior(feats.as_dict(), pairs))
    cfg = GuidanceConfig.from_mapping({"enabled": True, "potentials": {"base_pair": {"weight": weight}}})
    return RNAGuidance.from_features(f, cfg, topology=feats.topology())


def test_native_pairs_cost_nothing_and_an_opened_pair_does(rna_dev_dir):
    feats, pairs = _hairpin(rna_dev_dir)
    g = _guidance(feats, pairs)
    assert g.terms.pair_hbonds.shape[0] >= 2 * len(pairs)
    x = feats["coords"].float()[None]
    native = g.energies(x)["base_pair"].item()  # a crystal H-bond or two sits just past 3.4 Å
    opened = x.clone()
    opened[0, feats["atom_to_token_idx"] == pairs[0][1]] += torch.tensor([0.0, 0.0, 3.0])
    assert g.energies(opened)["base_pair"].item() > 1.0 > 20 * native


def test_guidance_closes_an_opened_pair_and_weight_zero_leaves_it(rna_dev_dir):
    feats, pairs = _hairpin(rna_dev_dir)
    x = feats["coords"].float()[None]
    opened = x.clone()
    opened[0, feats["atom_to_token_idx"] == pairs[0][1]] += torch.tensor([0.0, 0.0, 2.0])
    sigma = torch.tensor([0.5])
    guided = _guidance(feats, pairs)
    closed = guided.guide(opened.clone(), sigma)
    before = guided.energies(opened)["base_pair"].item()  # energies are unweighted
    assert guided.energies(closed)["base_pair"].item() < 0.5 * before
    untouched = _guidance(feats, pairs, weight=0.0)
    assert len(untouched.terms.pair_hbonds) == 0  # weight 0: the pair restraints are not even built
    free = untouched.guide(opened.clone(), sigma)
    assert guided.energies(free)["base_pair"].item() > 0.8 * before


def test_without_a_prior_the_pairs_come_from_the_input_geometry(rna_dev_dir):
    feats, pairs = _hairpin(rna_dev_dir)
    cfg = GuidanceConfig.from_mapping({"enabled": True, "potentials": {"base_pair": {"weight": 1.0}}})
    g = RNAGuidance.from_features(feats, cfg)
    atoms = g.terms.pair_hbonds
    tokens = {tuple(sorted(t)) for t in feats["atom_to_token_idx"].numpy()[atoms].tolist()}
    assert len(tokens & set(pairs)) >= 0.7 * len(pairs)
    assert np.all(g.terms.pair_hbond_esd >= 0.2)
