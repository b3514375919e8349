"""Canonical base-pair annotation (rnadiff.metrics.basepairs) and the base-pair prior (rnadiff.chem.pairing)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnadiff.chem import featurize
from rnadiff.chem.pairing import pair_prior, parse_dot_bracket
from rnadiff.errors import InputError
from rnadiff.io import read_structure
from rnadiff.metrics.basepairs import canonical_pairs, interaction_network_fidelity, pair_set

REFERENCE = json.loads((Path(__file__).parent / "data" / "rnapolis_canonical_pairs.json").read_text())


@pytest.fixture(scope="module")
def chains(rna_dev_dir):
    out = {}
    for rel in REFERENCE["pairs"]:
        feats = featurize(read_structure(rna_dev_dir.parent / rel))
        out[rel] = feats
    return out


def _residue_pairs(feats, pairs) -> set[tuple[int, int]]:
    nums = feats.layout.res_nums
    return {(int(nums[p.i]), int(nums[p.j])) for p in pairs}


def test_canonical_pairs_agree_with_rnapolis(chains):
    tp = fp = fn = 0
    for rel, feats in chains.items():
        ours = _residue_pairs(feats, canonical_pairs(feats.layout, feats["coords"].numpy(),
                                                      feats["atom_present_mask"].numpy() > 0))
        ref = {tuple(p) for p in REFERENCE["pairs"][rel]}
        tp, fp, fn = tp + len(ours & ref), fp + len(ours - ref), fn + len(ref - ours)
    assert tp / (tp + fp) >= 0.98
    assert tp / (tp + fn) >= 0.93


def test_pairs_are_one_partner_and_invariant_to_rigid_motion(chains):
    feats = next(iter(chains.values()))
    x = feats["coords"].numpy().astype(np.float64)
    present = feats["atom_present_mask"].numpy() > 0
    pairs = canonical_pairs(feats.layout, x, present)
    tokens = [t for p in pairs for t in (p.i, p.j)]
    assert len(tokens) == len(set(tokens)) and len(pairs) > 10
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))  # a proper rotation
    moved = canonical_pairs(feats.layout, x @ q.T + 5.0, present)
    assert pair_set(moved) == pair_set(pairs)


def test_broken_pair_is_not_annotated(chains):
    feats = next(iter(chains.values()))
    x = feats["coords"].numpy().astype(np.float64).copy()
    present = feats["atom_present_mask"].numpy() > 0
    pairs = canonical_pairs(feats.layout, x, present)
    victim = pairs[0]
    sl = feats.layout.token_atoms(victim.j)
    x[sl] += np.array([0.0, 0.0, 3.0])  # lift one base out of its partner's plane by a stacking rise
    assert (victim.i, victim.j) not in pair_set(canonical_pairs(feats.layout, x, present))


def test_inf():
    assert interaction_network_fidelity({(1, 9)}, {(1, 9)}) == 1.0
    assert interaction_network_fidelity(set(), {(1, 9)}) == 0.0
    assert interaction_network_fidelity({(1, 9), (2, 8)}, {(1, 9)}) == pytest.approx(np.sqrt(0.5))


def test_parse_dot_bracket():
    assert parse_dot_bracket("((..))", 6) == [(0, 5), (1, 4)]
    assert parse_dot_bracket("((.[[))..]]", 11) == [(0, 6), (1, 5), (3, 10), (4, 9)]
    assert parse_dot_bracket("((&))", 4) == [(0, 3), (1, 2)]
    for bad, n in (("(((..))", 7), ("(..))", 5), ("((..))", 7), ("((x.))", 6)):
        with pytest.raises(InputError):
            parse_dot_bracket(bad, n)


def test_user_pairs_fill_their_channels(chains):
    feats = next(iter(chains.values()))
    n = len(feats.layout.parents)
    prior = pair_prior(feats.as_dict(), [(0, n - 1)])
    assert prior[0, n - 1, 2] == 1 and prior[n - 1, 0, 2] == 1 and prior[..., 2].sum() == 2
    assert torch.all(prior[..., 3] == 1)
    assert torch.all(pair_prior(feats.as_dict())[..., 2:] == 0)
    with pytest.raises(InputError):
        pair_prior(feats.as_dict(), [(0, n)])
