"""CoordinateConditioner / RefinementModel: invariance, padding equivalence, upstream trunk."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import rnadiff
from rnadiff.chem import collate_features, featurize
from rnadiff.diffusion.augmentation import uniform_random_rotation
from rnadiff.io import read_structure
from rnadiff.model.refinement_model import RefinementModel
from rnadiff.model.coordinate_conditioner import CoordinateConditioner

EXAMPLES = Path(rnadiff.__file__).parent / "examples"
TINY_DIFFUSION = dict(c_token=32, c_s=32, c_z=16, c_s_inputs=81, c_atom=16, c_atompair=8, c_noise_embedding=16,
                      atom_encoder=dict(n_blocks=1, n_heads=2), transformer=dict(n_blocks=1, n_heads=2),
                      atom_decoder=dict(n_blocks=1, n_heads=2))


def _features(name: str) -> dict[str, torch.Tensor]:
    return dict(featurize(read_structure(EXAMPLES / name)))


def _randomize(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


@pytest.fixture(scope="module")
def conditioner() -> CoordinateConditioner:
    torch.manual_seed(0)
    c = CoordinateConditioner(c_s_inputs=81, c_s=32, c_z=16, c_atom=8, n_blocks=2, n_heads=4).eval()
    _randomize(c, 1)
    return c


@pytest.mark.parametrize("name", ["4phy_A.pdb", "4phy_A_c1.pdb"])
def test_outputs_invariant_to_rigid_motion(conditioner, name):
    f = _features(name)
    rot = uniform_random_rotation(1, generator=torch.Generator().manual_seed(3))[0]
    moved = dict(f)
    given = f["atom_present_mask"][:, None] > 0
    moved["coords"] = torch.where(given, f["coords"] @ rot.T + torch.tensor([40.0, -7.0, 12.5]), f["coords"])
    with torch.no_grad():
        a, b = conditioner(f), conditioner(moved)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=2e-4, rtol=1e-4)


def test_outputs_depend_on_coordinates_and_given_atoms(conditioner):
    f = _features("4phy_A.pdb")
    stretched = dict(f, coords=f["coords"] * 1.5)
    c1 = _features("4phy_A_c1.pdb")
    with torch.no_grad():
        base, st, c1_out = conditioner(f), conditioner(stretched), conditioner(c1)
    assert not torch.allclose(base[2], st[2], atol=1e-3)  # distances reach the pair track
    assert not torch.allclose(base[0], c1_out[0], atol=1e-3)  # which atoms are given reaches s_inputs


def test_shapes_and_no_distance_bin_for_missing_anchor(conditioner):
    f = _features("4phy_A_c1.pdb")
    t = f["restype"].shape[0]
    s_inputs, s_trunk, z_trunk = conditioner(f)
    assert s_inputs.shape == (t, 81) and s_trunk.shape == (t, 32) and z_trunk.shape == (t, t, 16)
    pos, known = conditioner.anchors(f)
    assert known[:, 2].all() and not known[:, 0].any()  # C1' given everywhere, P nowhere
    bins = conditioner.distance_bins(pos, known) % conditioner.n_bins
    assert (bins[..., 0] == 0).all()  # P-P pairs: "unknown" bin
    assert (bins[..., 10] > 0).all()  # C1'-C1' pairs (anchor 2 x anchor 2 = 2*4+2) all known


def test_padded_batch_equals_unbatched():
    torch.manual_seed(0)
    model = RefinementModel(conditioner=dict(c_atom=8, n_blocks=1, n_heads=2), diffusion=TINY_DIFFUSION).eval()
    _randomize(model.conditioner, 5)
    full, c1 = _features("4phy_A.pdb"), _features("4phy_A_c1.pdb")
    # Make the second item shorter so that it is padded in atoms and tokens.
    small = dict(featurize(read_structure(EXAMPLES / "4phy_A.pdb")))
    keep_tok = 15
    keep_atom = int((small["atom_to_token_idx"] < keep_tok).sum())
    for k, v in list(small.items()):
        if v.dim() and v.shape[0] == full["atom_to_token_idx"].shape[0]:
            small[k] = v[:keep_atom]
        elif v.dim() and v.shape[0] == full["restype"].shape[0]:
            small[k] = v[:keep_tok]
    items = [c1, small]
    batch = collate_features(items)
    g = torch.Generator().manual_seed(2)
    n_atom = batch["atom_mask"].shape[1]
    x = torch.randn(2, 3, n_atom, 3, generator=g) * 10
    sigma = torch.tensor([[2.0, 5.0, 9.0], [1.0, 4.0, 20.0]])
    with torch.no_grad():
        s_b = model.conditioner(batch)
        out_b = model(x, sigma, batch)
        for i, item in enumerate(items):
            na, nt = item["atom_to_token_idx"].shape[0], item["restype"].shape[0]
            s_i = model.conditioner(item)
            torch.testing.assert_close(s_b[1][i, :nt], s_i[1], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(s_b[2][i, :nt, :nt], s_i[2], atol=1e-4, rtol=1e-4)
            out_i = model(x[i, :, :na], sigma[i], item)
            torch.testing.assert_close(out_b[i, :, :na], out_i, atol=1e-3, rtol=1e-4)


def test_upstream_trunk_replaces_conditioner():
    torch.manual_seed(0)
    model = RefinementModel(conditioner=dict(c_atom=8, n_blocks=1, n_heads=2), diffusion=TINY_DIFFUSION).eval()
    _randomize(model, 9)
    f = _features("4phy_A.pdb")
    t = f["restype"].shape[0]
    g = torch.Generator().manual_seed(4)
    trunk = {"s_inputs": torch.randn(t, 81, generator=g), "s_trunk": torch.randn(t, 32, generator=g),
             "z_trunk": torch.randn(t, t, 16, generator=g)}
    x = f["coords"][None] + torch.randn(1, *f["coords"].shape, generator=g)
    sigma = torch.tensor([3.0])
    with torch.no_grad():
        via_model = model(x, sigma, f, trunk)
        direct = model.diffusion_module(x, sigma, f, trunk["s_inputs"], trunk["s_trunk"], trunk["z_trunk"])
        own = model(x, sigma, f)
    torch.testing.assert_close(via_model, direct)
    assert not torch.allclose(via_model, own)
    assert model.config["diffusion"]["c_s"] == 32 and "c_atom" in model.config["conditioner"]
