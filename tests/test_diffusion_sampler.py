"""Sampler properties with a toy denoiser: chunking, seeds, early stopping, alignment, guards."""
import pytest
import torch

from tests.test_diffusion_toys import ToyDenoiser, make_target
from rnadiff.diffusion.alignment import aligned_rmsd
from rnadiff.diffusion.augmentation import uniform_random_rotation
from rnadiff.diffusion.sampler import (
    EarlyStopping,
    NonFiniteCoordinatesError,
    SamplerSettings,
    sample_diffusion,
    sampler_step,
)
from rnadiff.diffusion.schedule import DiffusionSchedule

N_ATOM = 40


@pytest.fixture(scope="module")
def toy():
    return ToyDenoiser(make_target(N_ATOM))


def _run(toy, seed=0, **kw):
    kw.setdefault("noise_schedule", DiffusionSchedule().inference_sigmas(kw.pop("num_steps", 20)))
    return sample_diffusion(toy, n_atom=N_ATOM, generator=torch.Generator().manual_seed(seed), **kw)


def test_samples_converge_to_the_toy_structure(toy):
    out = _run(toy, n_sample=3)
    assert out.coordinates.shape == (3, N_ATOM, 3) and out.coordinates.dtype == torch.float32
    assert float(aligned_rmsd(out.coordinates, toy.target.expand(3, -1, -1)).max()) < 0.05


def test_chunked_equals_unchunked(toy):
    full = _run(toy, n_sample=5)
    for chunk in (1, 2, 5):
        part = _run(toy, n_sample=5, diffusion_chunk_size=chunk)
        torch.testing.assert_close(part.coordinates, full.coordinates, rtol=0, atol=0)


def test_same_seed_same_result_different_seed_differs(toy):
    a = _run(toy, seed=7, n_sample=2).coordinates.detach()
    b = _run(toy, seed=7, n_sample=2).coordinates.detach()
    c = _run(toy, seed=8, n_sample=2).coordinates.detach()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert float((a - c).abs().max()) > 1.0
    assert float((a[0] - a[1]).abs().max()) > 1.0  # samples of one run differ too


def test_batch_dims_and_one_batched_call_per_step(toy):
    toy.calls = 0
    out = _run(toy, n_sample=3, batch_shape=(2,), num_steps=6)
    assert out.coordinates.shape == (2, 3, N_ATOM, 3)
    assert toy.calls == 6  # all samples and batch items go through one call per step


def test_early_stopping_stops_and_reports_steps(toy):
    full = _run(toy, n_sample=2, num_steps=60)
    stopped = _run(toy, n_sample=2, num_steps=60, early_stopping=EarlyStopping(patience=2, min_delta=0.05),
                   return_trajectory=True)
    assert bool(stopped.stopped_early.all())
    assert int(stopped.steps_run.max()) < 60
    assert stopped.trajectory.shape[0] - 1 < 60
    assert float(aligned_rmsd(stopped.coordinates, toy.target.expand(2, -1, -1)).max()) < 0.5
    assert bool((full.steps_run == 60).all()) and not bool(full.stopped_early.any())
    # chunking cannot change which sample stops when
    chunked = _run(toy, n_sample=2, num_steps=60, early_stopping=EarlyStopping(patience=2, min_delta=0.05),
                   diffusion_chunk_size=1)
    torch.testing.assert_close(chunked.coordinates, stopped.coordinates, rtol=0, atol=0)
    torch.testing.assert_close(chunked.steps_run, stopped.steps_run)


def test_trajectory_shapes_and_endpoints(toy):
    out = _run(toy, n_sample=2, num_steps=5, return_trajectory=True)
    assert out.trajectory.shape == (6, 2, N_ATOM, 3) and out.denoised_trajectory.shape == (5, 2, N_ATOM, 3)
    torch.testing.assert_close(out.trajectory[-1], out.coordinates)
    assert float(out.trajectory[0].std()) > 1000  # starts as σ_0 = 2560 Å noise


def test_align_to_prediction_removes_rigid_component():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, N_ATOM, 3, generator=g) * 5
    rot = uniform_random_rotation(1, generator=g)
    # The denoiser "predicts" a rotated copy of its input: the Euler step should then not distort.
    spin = uniform_random_rotation(1, generator=g)[0]

    def rotating(x_noisy, t_hat):
        return x_noisy @ spin.T

    kw = dict(c_tau_last=torch.tensor(2.0), c_tau=torch.tensor(0.5), rot=rot, trans=torch.zeros(1, 3), noise=None,
              denoise_fn=rotating)
    plain = sampler_step(x, settings=SamplerSettings(), **kw)
    aligned = sampler_step(x, settings=SamplerSettings(align_to_prediction=True), **kw)
    def dist(y):  # exact pairwise distances (torch.cdist's matmul path loses ~1e-3 Å)
        return (y[..., :, None, :] - y[..., None, :, :]).norm(dim=-1)

    d0 = dist(x)
    assert float((dist(aligned.x_next) - d0).abs().max()) < 1e-3
    assert float((dist(plain.x_next) - d0).abs().max()) > 0.5


def test_non_finite_guard_names_sample_and_step(toy):
    calls = {"n": 0}

    def flaky(x_noisy, t_hat):
        calls["n"] += 1
        out = toy(x_noisy, t_hat)
        if calls["n"] == 3:
            out = out.clone()
            out[1, 7, 0] = float("nan")
        return out

    with pytest.raises(NonFiniteCoordinatesError, match=r"sample 1 at step 3 of 10"):
        _run(flaky, n_sample=2, num_steps=10)


def test_reduced_precision_denoiser_keeps_fp32_update(toy):
    lin = torch.nn.Linear(3, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(3))
        lin.bias.zero_()

    def half_denoiser(x_noisy, t_hat):
        out = lin(toy(x_noisy, t_hat))  # a Linear under autocast runs in bf16
        assert out.dtype == torch.bfloat16
        return out

    out = _run(half_denoiser, n_sample=2, autocast_dtype=torch.bfloat16)
    ref = _run(toy, n_sample=2)
    assert out.coordinates.dtype == torch.float32
    assert float(aligned_rmsd(out.coordinates, ref.coordinates).max()) < 0.5


def test_temperature_scales_step_noise(toy):
    hot = _run(toy, n_sample=1, num_steps=8, return_trajectory=True)
    cold = _run(toy, n_sample=1, num_steps=8, settings=SamplerSettings(temperature=0.0), return_trajectory=True)
    assert float((hot.trajectory[1] - cold.trajectory[1]).abs().max()) > 1.0


def test_refinement_start_and_de_novo_equivalence(toy):
    sig = DiffusionSchedule().inference_sigmas(20)
    x_init = toy.target + 0.0
    refined = _run(toy, n_sample=2, noise_schedule=sig, x_init=x_init, start_index=15, return_trajectory=True)
    assert refined.trajectory.shape[0] == 6  # 5 remaining steps + start
    # starts near x_init (σ_start ≈ few Å), not at 2560 Å noise
    start_rms = float((refined.trajectory[0] - x_init).pow(2).sum(-1).mean().sqrt())
    assert start_rms < 3 * float(sig[15]) * 1.8
    with pytest.raises(ValueError):
        _run(toy, noise_schedule=sig, start_index=5)  # refinement without coordinates
