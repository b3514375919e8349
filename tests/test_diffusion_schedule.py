import torch

from rnadiff.diffusion.schedule import DiffusionSchedule


def test_inference_sigmas_equal_protenix_golden(golden):
    sched = DiffusionSchedule()
    s8 = sched.inference_sigmas(8)
    s200 = sched.inference_sigmas()
    assert s8.shape == (9,) and s200.shape == (201,)
    torch.testing.assert_close(s8, golden["sampler"]["noise_schedule"], rtol=0, atol=0)
    torch.testing.assert_close(s200, golden["sampler"]["noise_schedule_200"], rtol=0, atol=0)
    assert s200[0] == 16.0 * 160.0 and s200[-1] == 0.0
    assert bool((s200[1:] < s200[:-1]).all())


def test_default_num_steps_follows_dt():
    assert DiffusionSchedule(dt=1 / 50).inference_sigmas().shape == (51,)
    s = DiffusionSchedule(s_max=80.0, sigma_data=8.0).inference_sigmas(10)
    assert abs(float(s[0]) - 640.0) < 1e-3 and float(s[-1]) == 0.0


def test_training_sigmas_lognormal_and_seeded():
    sched = DiffusionSchedule()
    a = sched.sample_training_sigmas((20000,), generator=torch.Generator().manual_seed(0))
    b = sched.sample_training_sigmas((20000,), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    log = torch.log(a / 16.0)
    assert abs(float(log.mean()) + 1.2) < 0.05 and abs(float(log.std()) - 1.5) < 0.05
    c = sched.sample_training_sigmas((3, 4), generator=torch.Generator().manual_seed(1))
    assert c.shape == (3, 4) and bool((c > 0).all())


def test_loss_weight_matches_golden_per_sample_scale(golden):
    sigma = golden["denoiser"]["cases"][0]["t_hat"]
    torch.testing.assert_close(DiffusionSchedule().loss_weight(sigma), golden["losses"]["per_sample_scale"])
