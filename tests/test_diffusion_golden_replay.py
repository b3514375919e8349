"""Replay Protenix's recorded sampler run step by step through `sampler_step`."""
import torch

from rnadiff.diffusion.sampler import SamplerSettings, sampler_step

F32_ULP = 2.0**-23


def _tol(ref: torch.Tensor) -> float:
    # 1e-4 Å, or 4 float32 ulps of the largest coordinate: the first steps live at |x| ~ 10^4 Å
    # where one ulp is ~1e-3 Å (the golden run computed the same float32 ops).
    return max(1e-4, 4 * F32_ULP * float(ref.abs().max()))


def test_replay_golden_trace(golden):
    s = golden["sampler"]
    cfg = s["config"]
    settings = SamplerSettings(gamma0=cfg["gamma0"], gamma_min=cfg["gamma_min"],
                               noise_scale_lambda=cfg["noise_scale_lambda"], step_scale_eta=cfg["step_scale_eta"])
    trace = s["trace"]
    assert len(trace) == cfg["N_step"]
    for k, st in enumerate(trace):
        c_last, c = st["c_tau_last"], st["c_tau"]
        t_hat = c_last * (st["gamma"] + 1)
        delta = torch.sqrt(t_hat**2 - c_last**2)
        # The step noise is recoverable from the trace: x_noisy = x_aug + λ·δ·ε
        noise = (st["x_noisy"] - st["x_aug"]) / (cfg["noise_scale_lambda"] * delta) if delta > 0 else None
        res = sampler_step(st["x_l_in"], c_tau_last=c_last, c_tau=c, rot=st["rot"], trans=st["trans"], noise=noise,
                           denoise_fn=lambda x, t, st=st: st["x_denoised"], settings=settings)
        assert res.gamma == st["gamma"], f"step {k}: gamma"
        torch.testing.assert_close(res.t_hat, st["t_hat"], rtol=0, atol=0)
        assert (res.x_aug - st["x_aug"]).abs().max() <= _tol(st["x_aug"]), f"step {k}: x_aug"
        assert (res.x_noisy - st["x_noisy"]).abs().max() <= _tol(st["x_noisy"]), f"step {k}: x_noisy"
        nxt = trace[k + 1]["x_l_in"] if k + 1 < len(trace) else s["output"]
        # x_next = x_noisy + …: its rounding is that of x_noisy's magnitude
        assert (res.x_next - nxt).abs().max() <= _tol(st["x_noisy"]), f"step {k}: next x"
        if float(st["x_noisy"].abs().max()) < 800:  # where float32 allows it, the strict 1e-4 Å bound holds
            assert (res.x_next - nxt).abs().max() <= 1e-4


def test_rotation_convention_is_row_vectors_times_rot_transpose(golden):
    st = golden["sampler"]["trace"][3]
    x = st["x_l_in"] - st["x_l_in"].mean(-2, keepdim=True)
    right = x @ st["rot"].transpose(-1, -2) + st["trans"][:, None]
    wrong = x @ st["rot"] + st["trans"][:, None]
    assert (right - st["x_aug"]).abs().max() < 1e-3 < (wrong - st["x_aug"]).abs().max()
