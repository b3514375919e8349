import pytest
import torch

from rnadiff.diffusion.augmentation import uniform_random_rotation
from rnadiff.diffusion.starts import place_missing_atoms, start_index_for
from rnadiff.diffusion.schedule import DiffusionSchedule


def test_start_index_from_sigma_or_fraction():
    sig = DiffusionSchedule().inference_sigmas(200)
    i = start_index_for(sig, start_sigma=10.0)
    assert sig[i] <= 10.0 < sig[i - 1]
    assert start_index_for(sig, start_fraction=1.0) == 0  # whole schedule = de novo
    assert start_index_for(sig, start_fraction=0.25) == 150
    assert start_index_for(sig) == 0
    with pytest.raises(ValueError):
        start_index_for(sig, start_sigma=1.0, start_fraction=0.5)
    with pytest.raises(ValueError):
        start_index_for(sig, start_fraction=0.0)


def test_missing_atoms_take_fitted_ideal_positions(golden):
    f = golden["inputs"]["features"]
    ref, idx = f["ref_pos"], f["atom_to_token_idx"]
    g = torch.Generator().manual_seed(0)
    # a structure whose residues are rigid copies of the ideal conformer, each differently oriented
    rots = uniform_random_rotation(12, generator=g)
    shifts = torch.randn(12, 3, generator=g) * 20
    x = (rots[idx] @ ref[:, :, None]).squeeze(-1) + shifts[idx]
    given = (torch.rand(250, generator=g) > 0.6).float()
    counts = torch.zeros(12).scatter_add_(0, idx, given)
    assert bool((counts >= 3).all())
    placed = place_missing_atoms(torch.where(given[:, None] > 0, x, torch.nan), given, ref_pos=ref,
                                 atom_to_token_idx=idx)
    torch.testing.assert_close(placed, x, atol=1e-4, rtol=0)


def test_residue_without_atoms_is_put_between_its_neighbours(golden):
    f = golden["inputs"]["features"]
    ref, idx = f["ref_pos"], f["atom_to_token_idx"]
    x = ref + idx[:, None].float() * torch.tensor([6.0, 0, 0])  # residues 6 Å apart along x
    given = (idx != 3).float()
    placed = place_missing_atoms(x * given[:, None], given, ref_pos=ref, atom_to_token_idx=idx)
    centre3 = placed[idx == 3].mean(0)
    assert abs(float(centre3[0]) - float(x[idx == 3].mean(0)[0])) < 1.5
    torch.testing.assert_close(placed[given > 0], x[given > 0])
    assert bool(torch.isfinite(placed).all())
