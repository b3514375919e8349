"""Protenix's recorded sampler run, re-run end to end: our DiffusionModule (golden weights) inside
our `sampler_step`, chained from our own coordinates step after step. Only the random draws come
from the trace (rotation, translation and the step noise, recovered as (x_noisy − x_aug)/(λ·δ)),
so a wrong denoiser, update rule, γ schedule or augmentation drifts away from the recorded run."""
import torch

from rnadiff.diffusion.sampler import SamplerSettings, sampler_step
from rnadiff.model.diffusion_module import DiffusionModule
from tests.model_helpers import module_kwargs_from_golden


def test_sampler_and_denoiser_reproduce_the_recorded_run(golden):
    module = DiffusionModule(**module_kwargs_from_golden(golden["config"]))
    module.load_state_dict(golden["state_dict"])
    module.eval()
    inp, s = golden["inputs"], golden["sampler"]
    cfg = s["config"]
    settings = SamplerSettings(gamma0=cfg["gamma0"], gamma_min=cfg["gamma_min"],
                               noise_scale_lambda=cfg["noise_scale_lambda"], step_scale_eta=cfg["step_scale_eta"])

    def denoise(x_noisy, t_hat):
        return module(x_noisy, t_hat, inp["features"], inp["s_inputs"], inp["s_trunk"], inp["z_trunk"])

    trace = s["trace"]
    assert len(trace) == cfg["N_step"]
    x = trace[0]["x_l_in"]
    with torch.no_grad():
        for k, st in enumerate(trace):
            c_last, c = st["c_tau_last"], st["c_tau"]
            delta = torch.sqrt((c_last * (st["gamma"] + 1)) ** 2 - c_last**2)
            noise = (st["x_noisy"] - st["x_aug"]) / (cfg["noise_scale_lambda"] * delta) if delta > 0 else None
            res = sampler_step(x, c_tau_last=c_last, c_tau=c, rot=st["rot"], trans=st["trans"], noise=noise,
                               denoise_fn=denoise, settings=settings)
            assert res.gamma == st["gamma"], f"step {k}: gamma"
            torch.testing.assert_close(res.t_hat, st["t_hat"], rtol=0, atol=0)
            assert float((res.x_denoised - st["x_denoised"]).abs().max()) <= 1e-4, f"step {k}: denoised"
            x = res.x_next
    assert float((x - s["output"]).abs().max()) <= 1e-4


def test_rotation_convention_is_row_vectors_times_rot_transpose(golden):
    st = golden["sampler"]["trace"][3]
    x = st["x_l_in"] - st["x_l_in"].mean(-2, keepdim=True)
    right = x @ st["rot"].transpose(-1, -2) + st["trans"][:, None]
    wrong = x @ st["rot"] + st["trans"][:, None]
    assert (right - st["x_aug"]).abs().max() < 1e-3 < (wrong - st["x_aug"]).abs().max()
