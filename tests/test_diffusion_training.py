import torch

from rnadiff.diffusion.alignment import aligned_rmsd
from rnadiff.diffusion.schedule import DiffusionSchedule
from rnadiff.diffusion.training import (
    ExponentialMovingAverage,
    LossWeights,
    build_lr_scheduler,
    build_optimizer,
    clip_gradients,
    diffusion_loss,
    make_noisy_copies,
    training_forward,
)
from tests.test_diffusion_toys import ToyDenoiser


def test_golden_training_draw_is_augmented_truth_plus_sigma_noise(golden):
    """Protenix's training draw: x_gt_augment is a rigid copy of x_true, x_noisy − x_gt_augment ~ σ·N(0,1)."""
    t = golden["sampler_training"]
    x_true = golden["inputs"]["x_true"]
    resolved = golden["losses"]["coordinate_mask"]
    assert float(resolved[100]) == 0.0
    for s in range(2):
        assert float(aligned_rmsd(t["x_gt_augment"][s], x_true, resolved)) < 1e-3
        assert float(t["x_gt_augment"][s][100].abs().max()) == 0.0  # unresolved atom sits at the origin
        resid = (t["x_noisy"][s] - t["x_gt_augment"][s]) / t["sigma"][s]
        assert abs(float(resid.std()) - 1.0) < 0.1 and abs(float(resid.mean())) < 0.1


def test_noisy_copies_match_that_recipe():
    x = torch.randn(60, 3) * 8
    mask = torch.ones(60)
    mask[0] = 0
    nb = make_noisy_copies(x, coordinate_mask=mask, schedule=DiffusionSchedule(), n_sample=6,
                           generator=torch.Generator().manual_seed(0))
    assert nb.x_gt_augment.shape == (6, 60, 3) and nb.sigma.shape == (6,)
    assert float(aligned_rmsd(nb.x_gt_augment, x.expand(6, -1, -1), mask).max()) < 1e-3
    assert float(nb.x_gt_augment[:, 0].abs().max()) == 0.0
    # centred on resolved atoms up to the unit translation
    assert float(nb.x_gt_augment[:, 1:].mean(-2).norm(dim=-1).max()) < 5.0
    noise = (nb.x_noisy - nb.x_gt_augment) / nb.sigma[:, None, None]
    assert abs(float(noise.std()) - 1.0) < 0.1
    again = make_noisy_copies(x, coordinate_mask=mask, schedule=DiffusionSchedule(), n_sample=6,
                              generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.x_noisy, nb.x_noisy)


def test_loss_total_is_protenix_weighting_and_frame_invariant(golden):
    f = golden["inputs"]["features"]
    c0 = golden["denoiser"]["cases"][0]
    L = golden["losses"]
    m = L["coordinate_mask"]
    bond_index = torch.nonzero(L["bond_mask"] * m[:, None] * m[None, :])
    w = LossWeights(alpha_bond=1.0)
    total, metrics = diffusion_loss(c0["x_denoised"], golden["inputs"]["x_true"], c0["t_hat"], coordinate_mask=m,
                                    is_rna=f["is_rna"], is_dna=f["is_dna"], is_ligand=f["is_ligand"],
                                    bond_index=bond_index, weights=w)
    torch.testing.assert_close(metrics["mse_loss"], L["mse_loss_scaled"], atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(metrics["smooth_lddt_loss"], L["smooth_lddt_sparse"], atol=1e-6, rtol=0)
    torch.testing.assert_close(metrics["bond_loss"], L["bond_loss_sparse_scaled"], atol=1e-4, rtol=1e-6)
    expected = 4.0 * (L["mse_loss_scaled"] + L["smooth_lddt_sparse"] + L["bond_loss_sparse_scaled"])
    torch.testing.assert_close(total, expected, atol=1e-3, rtol=1e-6)
    # the ground truth may sit in any frame
    moved = golden["inputs"]["x_true"] @ torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]).T + 40.0
    total2, _ = diffusion_loss(c0["x_denoised"], moved, c0["t_hat"], coordinate_mask=m, is_rna=f["is_rna"],
                               is_dna=f["is_dna"], is_ligand=f["is_ligand"], bond_index=bond_index, weights=w)
    torch.testing.assert_close(total2, total, atol=1e-3, rtol=1e-5)


def test_training_forward_chunks_identically_and_trains():
    target = torch.randn(30, 3) * 5
    toy = ToyDenoiser(target)
    with torch.no_grad():
        toy.scale.fill_(0.5)
    kw = dict(x_true=target, coordinate_mask=torch.ones(30), schedule=DiffusionSchedule(), n_sample=4)
    a_noisy, a = training_forward(toy, generator=torch.Generator().manual_seed(0), **kw)
    b_noisy, b = training_forward(toy, generator=torch.Generator().manual_seed(0), diffusion_chunk_size=3, **kw)
    torch.testing.assert_close(a, b)
    opt = build_optimizer(toy.parameters(), lr=0.05)
    losses = []
    for step in range(30):
        noisy, den = training_forward(toy, generator=torch.Generator().manual_seed(step), **kw)
        loss, _ = diffusion_loss(den, target, noisy.sigma, coordinate_mask=torch.ones(30), is_rna=torch.ones(30))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert abs(float(toy.scale) - 1.0) < 0.1 and losses[-1] < losses[0]


def test_lr_schedule_clipping_and_ema():
    p = torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer([p], lr=1.0)
    sched = build_lr_scheduler(opt, warmup_steps=4, decay_every_n_steps=2, decay_factor=0.5)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 0.5, 0.5]
    p.grad = torch.full((3,), 10.0)
    norm = clip_gradients([p], 1.0)
    assert abs(float(norm) - 10 * 3**0.5) < 1e-4 and abs(float(p.grad.norm()) - 1.0) < 1e-5
    assert clip_gradients([p], None) is None
    m = torch.nn.Linear(2, 2)
    ema = ExponentialMovingAverage(m, decay=0.5)
    with torch.no_grad():
        m.weight.add_(2.0)
    ema.update(m)
    torch.testing.assert_close(ema.shadow["weight"], m.weight.detach() - 1.0)
