import torch

from rnadiff.diffusion.alignment import aligned_rmsd, apply_rigid, weighted_kabsch, weighted_rigid_align
from rnadiff.diffusion.augmentation import centre_random_augmentation, uniform_random_rotation


def test_kabsch_recovers_a_rigid_motion_batched():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 30, 3, generator=g) * 5
    rot = uniform_random_rotation(4, generator=g)
    trans = torch.randn(4, 3, generator=g) * 10
    y = apply_rigid(x, rot, trans)
    r, t = weighted_kabsch(x, y, torch.ones(30))
    torch.testing.assert_close(r, rot, atol=1e-5, rtol=0)
    torch.testing.assert_close(t, trans, atol=1e-4, rtol=0)
    assert r.dtype == torch.float32


def test_kabsch_never_returns_a_reflection():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 3, generator=g)
    mirror = x * torch.tensor([-1.0, 1.0, 1.0])
    r, _ = weighted_kabsch(x, mirror, torch.ones(50))
    assert abs(float(torch.linalg.det(r)) - 1.0) < 1e-5


def test_zero_weight_atoms_do_not_influence_alignment():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, 3, generator=g)
    rot = uniform_random_rotation(1, generator=g)[0]
    y = x @ rot.T
    y_bad = y.clone()
    y_bad[3] += 100.0
    w = torch.ones(20)
    w[3] = 0
    out = weighted_rigid_align(x, y_bad, w)
    torch.testing.assert_close(out[w > 0], y[w > 0], atol=1e-4, rtol=0)


def test_alignment_runs_in_float32_under_autocast_and_blocks_gradient():
    x = torch.randn(10, 3, requires_grad=True)
    y = torch.randn(10, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = weighted_rigid_align(x.bfloat16(), y.bfloat16(), torch.ones(10))
    assert out.dtype == torch.float32 and not out.requires_grad
    assert float(aligned_rmsd(x.detach(), x.detach() @ uniform_random_rotation(1)[0].T + 3.0)) < 1e-4


def test_uniform_rotations_are_proper_and_unbiased():
    r = uniform_random_rotation(4000, generator=torch.Generator().manual_seed(3))
    eye = torch.eye(3).expand_as(r)
    torch.testing.assert_close(r @ r.transpose(-1, -2), eye, atol=1e-5, rtol=0)
    assert bool((torch.linalg.det(r) - 1).abs().max() < 1e-5)
    assert float(r.mean(0).abs().max()) < 0.05  # Haar measure: E[R] = 0


def test_centre_random_augmentation_uses_masked_centroid():
    x = torch.randn(2, 12, 3) + 50
    mask = torch.ones(2, 12)
    mask[:, -1] = 0
    x[:, -1] = 1e4  # a padded atom far away must not move the centre
    out = centre_random_augmentation(x, rot=torch.eye(3).expand(2, 3, 3), trans=torch.zeros(2, 3), mask=mask)
    assert float(out[:, :-1].mean(-2).abs().max()) < 1e-4
