"""Losses against Protenix's golden values, and the sparse forms against the dense ones."""
import pytest
import torch

from rnadiff.diffusion.losses import (
    bond_loss_dense,
    bond_loss_sparse,
    lddt_pair_index,
    lddt_pair_mask_dense,
    mse_atom_weight,
    smooth_lddt_loss_dense,
    smooth_lddt_loss_sparse,
    weighted_mse_loss,
)
from rnadiff.model.edm import loss_weight


@pytest.fixture(scope="module")
def case(golden):
    L = golden["losses"]
    f = golden["inputs"]["features"]
    c0 = golden["denoiser"]["cases"][0]
    return dict(L=L, f=f, pred=c0["x_denoised"], sigma=c0["t_hat"], true=golden["inputs"]["x_true"])


def test_mse_loss_matches_golden(case):
    L, f = case["L"], case["f"]
    w = mse_atom_weight(is_rna=f["is_rna"], is_dna=f["is_dna"], is_ligand=f["is_ligand"],
                        coordinate_mask=L["coordinate_mask"])
    torch.testing.assert_close(w, L["mse_atom_weight"])
    scale = loss_weight(case["sigma"], 16.0)
    torch.testing.assert_close(scale, L["per_sample_scale"])
    scaled, aligned = weighted_mse_loss(case["pred"], case["true"], coordinate_mask=L["coordinate_mask"],
                                        atom_weight=w, per_sample_scale=scale)
    unscaled, _ = weighted_mse_loss(case["pred"], case["true"], coordinate_mask=L["coordinate_mask"], atom_weight=w)
    torch.testing.assert_close(aligned, L["aligned_true_for_mse"], atol=1e-4, rtol=0)
    torch.testing.assert_close(scaled, L["mse_loss_scaled"], atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(unscaled, L["mse_loss_unscaled"], atol=1e-4, rtol=1e-6)


def test_mse_gradient_does_not_flow_through_alignment(case):
    L, f = case["L"], case["f"]
    pred = case["pred"].clone().requires_grad_(True)
    w = mse_atom_weight(is_rna=f["is_rna"], coordinate_mask=L["coordinate_mask"])
    loss, aligned = weighted_mse_loss(pred, case["true"], coordinate_mask=L["coordinate_mask"], atom_weight=w)
    loss.backward()
    assert not aligned.requires_grad
    # d/dpred of (1/3)·mean_s Σ w|pred − aligned|² / Σmask with aligned held fixed
    expected = (2 / 3) * w[None, :, None] * (case["pred"] - aligned) / (L["coordinate_mask"].sum() + 1e-6) / 2
    torch.testing.assert_close(pred.grad, expected, atol=1e-5, rtol=1e-4)


def test_lddt_mask_and_smooth_lddt_match_golden(case):
    L, f = case["L"], case["f"]
    is_nuc = f["is_rna"].bool() | f["is_dna"].bool()
    mask = lddt_pair_mask_dense(case["true"], coordinate_mask=L["coordinate_mask"], is_nucleotide=is_nuc)
    torch.testing.assert_close(mask, L["lddt_mask"])
    dense = smooth_lddt_loss_dense(case["pred"], case["true"], lddt_mask=L["lddt_mask"])
    torch.testing.assert_close(dense, L["smooth_lddt_dense"], atol=1e-6, rtol=0)
    pairs = lddt_pair_index(case["true"], coordinate_mask=L["coordinate_mask"], is_nucleotide=is_nuc, block_size=37)
    torch.testing.assert_close(pairs, torch.nonzero(L["lddt_mask"]))
    sparse = smooth_lddt_loss_sparse(case["pred"], case["true"], pair_index=pairs)
    torch.testing.assert_close(sparse, L["smooth_lddt_sparse"], atol=1e-6, rtol=0)


def test_lddt_pair_index_respects_radius_and_mask():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 3, generator=g) * 80
    mask = torch.ones(300)
    mask[5] = 0
    nuc = torch.ones(300, dtype=torch.bool)
    nuc[:50] = False
    pairs = lddt_pair_index(x, coordinate_mask=mask, is_nucleotide=nuc, block_size=64)
    d = (x[pairs[:, 0]] - x[pairs[:, 1]]).norm(dim=-1)
    radius = torch.where(nuc[pairs[:, 0]], 30.0, 15.0)
    assert bool((d < radius).all()) and bool((pairs[:, 0] != pairs[:, 1]).all())
    assert not bool(((pairs == 5).any(-1)).any())
    dense = lddt_pair_mask_dense(x, coordinate_mask=mask, is_nucleotide=nuc)
    assert pairs.shape[0] == int(dense.sum())


def test_bond_loss_matches_golden(case):
    L = case["L"]
    dense = bond_loss_dense(case["pred"], case["true"], bond_mask=L["bond_mask"],
                            coordinate_mask=L["coordinate_mask"], per_sample_scale=L["per_sample_scale"])
    torch.testing.assert_close(dense, L["bond_loss_dense_scaled"], atol=1e-4, rtol=1e-6)
    # The sparse form takes bond index pairs (here: the mask's, both directions, as Protenix lists them)
    m = L["coordinate_mask"]
    bond_index = torch.nonzero(L["bond_mask"] * m[:, None] * m[None, :])
    sparse = bond_loss_sparse(case["pred"], bond_index=bond_index, true=case["true"],
                              coordinate_mask=m, per_sample_scale=L["per_sample_scale"])
    torch.testing.assert_close(sparse, L["bond_loss_sparse_scaled"], atol=1e-4, rtol=1e-6)
    # each bond listed once gives the same mean; masked atoms drop out
    once = bond_index[bond_index[:, 0] < bond_index[:, 1]]
    sparse_once = bond_loss_sparse(case["pred"], bond_index=once, true=case["true"], coordinate_mask=m,
                                   per_sample_scale=L["per_sample_scale"])
    torch.testing.assert_close(sparse_once, sparse)


def test_bond_loss_with_target_lengths():
    x = torch.tensor([[[0.0, 0, 0], [1.5, 0, 0], [1.5, 2.0, 0]]])  # [S=1, 3, 3]
    idx = torch.tensor([[0, 1], [1, 2]])
    loss = bond_loss_sparse(x, bond_index=idx, target_length=torch.tensor([1.607, 1.5]))
    expected = ((1.5 - 1.607) ** 2 + (2.0 - 1.5) ** 2) / 2
    assert abs(float(loss) - expected) < 1e-6
    assert float(bond_loss_sparse(x, bond_index=torch.zeros((0, 2), dtype=torch.long), true=x[0])) == 0.0
