"""Training with base pairs: 3-bead inputs, the long-chain hold-out, length-balanced draws, the pair
loss and the prior's projection in the conditioner (zero at start: old checkpoints unchanged)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from rnadiff.chem.features import atom_name_code, atom_name_codes
from rnadiff.diffusion.training import LossWeights, diffusion_loss
from rnadiff.model.refinement_model import RefinementModel
from rnadiff.train.data import load_records
from rnadiff.train.examples import TrainStream, base_pair_atoms, build_example, length_bin
from rnadiff.train.partial import PartialSettings, mode_mask
from rnadiff.train.split import is_heldout, is_validation

from .train_helpers import EXAMPLES

TINY = dict(conditioner=dict(c_atom=8, n_blocks=1, n_heads=2),
            diffusion=dict(c_token=32, c_s=32, c_z=16, c_s_inputs=81, c_atom=16, c_atompair=8, c_noise_embedding=16,
                           transformer={"n_blocks": 1, "n_heads": 2}, atom_encoder={"n_blocks": 1, "n_heads": 2},
                           atom_decoder={"n_blocks": 1, "n_heads": 2}))


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    folder = tmp_path_factory.mktemp("one_chain")
    (folder / "4phy_A.pdb").write_bytes((EXAMPLES / "4phy_A.pdb").read_bytes())
    records, _ = load_records(folder)
    rec = records[0]
    if len(rec.pairs) == 0:  # 4phy A pairs only with other chains: give it two pairs for the loss tests
        rec.pairs = np.array([[2, 20], [3, 19]], np.int64)
    return rec


def test_three_bead_mode_gives_p_c4_and_glycosidic_n(record):
    f = record.features
    given = mode_mask("three_bead", f, torch.Generator().manual_seed(0))
    codes = atom_name_codes(f["ref_atom_name_chars"])
    names = {atom_name_code(n): n for n in ("P", "C4'", "N1", "N9")}
    tok = f["atom_to_token_idx"]
    for t, parent in enumerate(record.sequence):
        got = sorted(names[int(c)] for c in codes[given & (tok == t)])
        glyco = "N9" if parent in "AG" else "N1"
        assert got == sorted(({"P"} if "P" in record.layout.atom_names[record.layout.token_atoms(t)] else set())
                             | {"C4'", glyco})


def test_long_chains_are_held_out_in_addition_to_the_plain_split():
    md5s = [f"{i:012x}" for i in range(3000)]
    assert all(is_heldout(m, 40, 0.15, 0.3) == is_validation(m, 0.15) for m in md5s)
    long_held = np.mean([is_heldout(m, 150, 0.15, 0.3) for m in md5s])
    assert all(is_heldout(m, 150, 0.15, 0.3) for m in md5s if is_validation(m, 0.15))
    assert 0.35 < long_held < 0.45  # 0.15 + 0.85 * 0.3


def test_length_balanced_stream_draws_every_bin_alike(record):
    import copy

    recs = []
    for n, count in ((20, 30), (70, 5), (150, 1)):  # a short-heavy set, as real data is
        for k in range(count):
            r = copy.copy(record)
            r.name = f"{n}_{k}"
            r.features = dict(record.features, restype=torch.zeros(n, 32))
            recs.append(r)
    stream = TrainStream(recs, batch_size=1, crop_size=32, spatial_prob=0.0, partial=PartialSettings(), seed=0,
                         length_balanced=True)
    bins = Counter(length_bin(stream.record_for(k).n_token) for k in range(600))
    assert set(bins) == {0, 1, 2} and min(bins.values()) > 150
    plain = TrainStream(recs, batch_size=1, crop_size=32, spatial_prob=0.0, partial=PartialSettings(), seed=0)
    assert Counter(length_bin(plain.record_for(k).n_token) for k in range(36))[2] == 1


def test_example_carries_the_prior_and_pair_atoms(record):
    ex = build_example(record, crop_size=64, spatial_prob=0.0, partial=PartialSettings(),
                       generator=torch.Generator().manual_seed(1), mode="c1", ss_prob=1.0)
    t = record.n_token
    assert ex.features["pair_prior"].shape == (t, t, 4)
    assert ex.features["pair_prior"][2, 20, 2] == 1 and torch.all(ex.features["pair_prior"][..., 3] == 1)
    tok = ex.features["atom_to_token_idx"][ex.pair_atoms]
    assert set(map(tuple, tok.tolist())) == {(2, 20), (3, 19)}


def test_pair_loss_is_zero_at_the_truth_and_grows_when_a_pair_opens(record):
    f = record.features
    x = f["coords"].float()
    mask = f["atom_present_mask"].float()
    is_rna = torch.ones_like(mask)
    pairs = base_pair_atoms(f, [(2, 20)])
    w = LossWeights(alpha_base_pair=1.0)
    _, exact = diffusion_loss(x[None], x, torch.tensor([1.0]), coordinate_mask=mask, is_rna=is_rna,
                              pair_atom_index=pairs, weights=w)
    opened = x.clone()
    opened[f["atom_to_token_idx"] == 20] += torch.tensor([0.0, 0.0, 4.0])
    _, broken = diffusion_loss(opened[None], x, torch.tensor([1.0]), coordinate_mask=mask, is_rna=is_rna,
                               pair_atom_index=pairs, weights=w)
    assert float(exact["base_pair_loss"]) < 1e-8 < float(broken["base_pair_loss"])
    total_off, _ = diffusion_loss(opened[None], x, torch.tensor([1.0]), coordinate_mask=mask, is_rna=is_rna,
                                  pair_atom_index=pairs, weights=LossWeights())
    total_on, _ = diffusion_loss(opened[None], x, torch.tensor([1.0]), coordinate_mask=mask, is_rna=is_rna,
                                 pair_atom_index=pairs, weights=w)
    assert float(total_on) > float(total_off)


def test_prior_projection_starts_at_zero_and_then_conditions(record):
    torch.manual_seed(0)
    model = RefinementModel(**TINY).eval()
    f = dict(record.features)
    t = record.n_token
    with_prior = dict(f, pair_prior=torch.rand(t, t, 4))
    without = dict(f, pair_prior=torch.zeros(t, t, 4))
    z1, z0 = model.condition(with_prior)[2], model.condition(without)[2]
    assert torch.equal(z1, z0)  # zero-initialised: a fresh (or v1) model ignores the prior
    torch.nn.init.normal_(model.conditioner.pair_prior_proj.weight)
    assert not torch.allclose(model.condition(with_prior)[2], model.condition(without)[2])
    with pytest.raises(ValueError, match="pair_prior"):
        model.condition(dict(f, pair_prior=torch.zeros(t, t, 3)))


def test_v1_state_dict_upgrades_with_only_the_prior_projection():
    model = RefinementModel(**TINY)
    v1 = {k: v for k, v in model.state_dict().items() if k != "conditioner.pair_prior_proj.weight"}
    upgraded = model.upgrade_state_dict(v1)
    assert set(upgraded) == set(model.state_dict())
    assert torch.count_nonzero(upgraded["conditioner.pair_prior_proj.weight"]) == 0
    broken = {k: v for k, v in v1.items() if not k.endswith("single_in.weight")}
    assert set(model.upgrade_state_dict(broken)) != set(model.state_dict())
