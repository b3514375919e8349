"""The learned base-pair classifier: features, the shipped weights on held-out chains, training."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from rnadiff.chem import featurize
from rnadiff.chem.pair_classifier import N_FEATURES, PAIR_TYPES, PairClassifier, walk
from rnadiff.chem.pairing import COMPLEMENTARY, N_PRIOR_CHANNELS, candidate_features, pair_prior, prior_pairs
from rnadiff.io import read_structure
from rnadiff.metrics.basepairs import canonical_pairs, pair_set
from rnadiff.train import pair_classifier as train_clf
from rnadiff.train.partial import mode_mask
from rnadiff.train.split import is_heldout

KINDS = ("c1", "p", "three_bead", "backbone")


def _manifest(rna_dev_dir):
    with (rna_dev_dir / "manifest.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def heldout(rna_dev_dir):
    """16 held-out dev chains of 20-120 nt (never seen by the classifier), featurized."""
    rows = [r for r in _manifest(rna_dev_dir) if 20 <= int(r["length"]) <= 120 and float(r["frac_complete"]) > 0.95
            and is_heldout(r["seq_md5"], int(r["length"]), 0.15, 0.3)]
    rows = sorted({r["seq_md5"]: r for r in rows}.values(), key=lambda r: r["clean_file"])[:16]
    return [featurize(read_structure(rna_dev_dir / r["clean_file"])) for r in rows]


def _reduced(feats, kind: str) -> dict[str, torch.Tensor]:
    f = dict(feats.as_dict())
    given = mode_mask(kind, f, torch.Generator().manual_seed(0)) & (f["atom_present_mask"] > 0)
    f["atom_present_mask"] = given.float()
    f["coords"] = torch.where(given[:, None], f["coords"], torch.zeros_like(f["coords"]))
    return f


def test_one_hot_layout_covers_exactly_the_complementary_pairs():
    assert set(PAIR_TYPES) == COMPLEMENTARY and len(PAIR_TYPES) == len(COMPLEMENTARY)


def test_walk_stops_at_chain_ends_and_breaks():
    nxt = np.array([1, 2, -1, 4, -1])  # chains 0-1-2 and 3-4
    assert walk(nxt, 2).tolist() == [2, -1, -1, -1, -1]
    assert walk(nxt, -1).tolist() == [-1, 0, 1, -1, 3]
    assert walk(nxt, 0).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_classifier_recovers_the_pairs_of_heldout_chains(heldout, kind):
    tp = n_found = n_true = 0
    for feats in heldout:
        truth = pair_set(canonical_pairs(feats.layout, feats["coords"].numpy(), feats["atom_present_mask"].numpy() > 0))
        prior = pair_prior(_reduced(feats, kind))
        assert prior.shape == (feats.layout.n_tokens, feats.layout.n_tokens, N_PRIOR_CHANNELS) and torch.equal(prior, prior.transpose(0, 1))
        found = set(prior_pairs(prior)[0])
        tp, n_found, n_true = tp + len(found & truth), n_found + len(found), n_true + len(truth)
    # The hand-set stack prior it replaced reached precision 0.84 / recall 0.76 from C1' on the
    # benchmark's held-out chains; the classifier 0.84 / 0.97.
    assert tp / n_found >= 0.75 and tp / n_true >= 0.85, (kind, tp, n_found, n_true)


def test_features_ignore_rigid_motion_and_mask_what_is_not_given(heldout):
    f = _reduced(heldout[0], "c1")
    pairs, x = candidate_features(f)
    assert x.shape == (len(pairs), N_FEATURES) and len(pairs) > 0
    rot = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))[0]
    moved = dict(f)
    moved["coords"] = torch.where(f["atom_present_mask"][:, None] > 0, f["coords"] @ rot.T + 7.0, f["coords"])
    pairs2, x2 = candidate_features(moved)
    assert np.array_equal(pairs, pairs2) and np.allclose(x, x2, atol=1e-4)
    n_geom = (N_FEATURES - 2 * 4 - 2 - len(PAIR_TYPES)) // 2  # distances, then their masks
    masks = x[:, n_geom:2 * n_geom]
    per_anchor = n_geom // 4
    assert masks[:, :per_anchor].any() and not masks[:, per_anchor:].any()  # C1' given, P/C4'/N not


def test_a_pair_whose_residue_has_no_given_anchor_is_a_candidate_beside_its_stacked_neighbour(heldout):
    """P only, the 5′ residue without its P (as most deposited chains start): the pair it closes
    is still scored (from its neighbours)."""
    closed = [f for f in heldout
              if (0, f.layout.n_tokens - 1) in pair_set(canonical_pairs(f.layout, f["coords"].numpy(), f["atom_present_mask"].numpy() > 0))]
    assert closed, "no held-out chain here closes its helix with its end residues"
    for feats in closed:
        f = _reduced(feats, "p")
        n = feats.layout.n_tokens
        f["atom_present_mask"] = torch.where(f["atom_to_token_idx"] == 0, 0.0, f["atom_present_mask"])
        pairs, x = candidate_features(f)
        rows = {(int(a), int(b)): k for k, (a, b) in enumerate(pairs)}
        assert (0, n - 1) in rows and (1, n - 2) in rows
        n_geom = (N_FEATURES - 2 * 4 - 2 - len(PAIR_TYPES)) // 2
        masks = x[:, n_geom:2 * n_geom]
        centre = 2 * 5 + 2  # window offsets (0, 0) of the first anchor (C1'), then per anchor
        per_anchor = n_geom // 4
        p_centre = per_anchor + centre  # P anchor, offsets (0, 0): the pair's own P-P distance
        assert masks[rows[(0, n - 1)], p_centre] == 0 and masks[rows[(1, n - 2)], p_centre] == 1


def _training_chains(rna_dev_dir, tmp_path, max_length: int) -> tuple[list[dict], object]:
    """12 training (not held-out) dev chains of 30..max_length nt copied into tmp_path/data."""
    rows = [r for r in _manifest(rna_dev_dir) if 30 <= int(r["length"]) <= max_length
            and not is_heldout(r["seq_md5"], int(r["length"]), 0.15, 0.3)][:12]
    data = tmp_path / "data"
    data.mkdir()
    for r in rows:
        (data / (r["seq_md5"] + ".pdb")).write_bytes((rna_dev_dir / r["clean_file"]).read_bytes())
    return rows, data


def test_training_learns_the_pairs_and_exports_a_loadable_classifier(rna_dev_dir, tmp_path):
    """A few epochs on 12 training chains recover their C1' pairs; the export loads and agrees."""
    rows, data = _training_chains(rna_dev_dir, tmp_path, 80)
    out = tmp_path / "clf"
    assert train_clf.main(["--data", str(data), "--out", str(out), "--epochs", "30", "--modes", "c1"]) == 0
    meta = json.loads((out / "config.json").read_text())
    from safetensors.numpy import load_file

    clf = PairClassifier.from_arrays(load_file(str(out / "model.safetensors")), meta["threshold"])
    records = [featurize(read_structure(data / (r["seq_md5"] + ".pdb"))) for r in rows]
    chains = []
    for feats in records:
        pairs, x = candidate_features(_reduced(feats, "c1"))
        truth = pair_set(canonical_pairs(feats.layout, feats["coords"].numpy(), feats["atom_present_mask"].numpy() > 0))
        chains.append((pairs, clf.probability(x), truth))
    assert train_clf.matched_inf(chains, clf.threshold) >= 0.85


def test_more_draws_add_differently_perturbed_examples_of_the_same_chains(rna_dev_dir, tmp_path):
    _, data = _training_chains(rna_dev_dir, tmp_path, 60)
    meta = {}
    for draws in (1, 2):
        out = tmp_path / f"clf{draws}"
        assert train_clf.main(["--data", str(data), "--out", str(out), "--epochs", "1", "--modes", "noisy",
                               "--draws", str(draws)]) == 0
        meta[draws] = json.loads((out / "config.json").read_text())["provenance"]
    assert meta[2]["draws"] == 2 and meta[2]["n_chains"] == meta[1]["n_chains"]
    # noisy inputs: each draw has its own noise (deterministic under --seed), so the second draw's
    # candidates are about as many as the first's but not a copy of them
    n1, n2 = meta[1]["n_candidates"], meta[2]["n_candidates"]
    assert 1.5 * n1 < n2 < 2.5 * n1 and n2 != 2 * n1


def test_wrong_weights_are_refused():
    with pytest.raises(ValueError, match="features"):
        PairClassifier([(np.zeros((4, 3)), np.zeros(4)), (np.zeros((1, 4)), np.zeros(1))], np.zeros(3), np.ones(3), 0.5)
