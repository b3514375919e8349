"""The diffusion sampler: Algorithm 18 of AF3 (SampleDiffusion), as Protenix runs it.

Two layers:
- `sampler_step`: one pure iteration (centre + rigid augmentation, noise injection to t̂, one
  denoiser call, Euler step). All random draws are arguments, so a recorded trace can be replayed.
- `sample_diffusion`: the loop over the noise schedule, N_sample ensembles through one batched
  denoiser call, optional chunking over samples, refinement from given coordinates, per-sample
  early stopping, an optional trajectory and a non-finite guard.

Randomness: every (batch item, sample) pair owns a torch.Generator seeded from the caller's
generator. A sample's stream (initial noise, then per step: rotation, translation, step noise)
therefore does not depend on how samples are chunked, and chunked == unchunked exactly.

Precision: the denoiser may run under bf16/fp16 autocast; its output is cast to float32 and the
augmentation, the update and the alignment (SVD) always run in float32 (docs/design.md §3).
"""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch

from rnadiff.diffusion.alignment import aligned_rmsd, weighted_rigid_align
from rnadiff.diffusion.augmentation import centre_random_augmentation, uniform_random_rotation

# denoise_fn(x_noisy [..., S, N_atom, 3], t_hat [..., S]) -> x_denoised [..., S, N_atom, 3]
DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# guide_fn(x_denoised [..., S, N_atom, 3], t_hat [..., S]) -> corrected x_denoised (same shape)
GuideFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class SamplerGuidance(Protocol):
    """What `sample_diffusion(guidance=...)` calls (e.g. rnadiff.diffusion.guidance.RNAGuidance).

    start(generator): once per run, before any step. guide(x_denoised, t_hat, step=, key=): on
    each denoised prediction before the Euler update. resample(x_next, x_denoised, t_hat, step=,
    n_steps=, key=) -> (x_next, ancestors or None): after the update (particle steering).
    `key` names the chunk of samples, so per-chunk state (neighbour lists) is not mixed.
    """

    steering_enabled: bool

    def start(self, generator: torch.Generator | None) -> None: ...

    def guide(self, x_denoised: torch.Tensor, t_hat: torch.Tensor, *, step: int, key: Any) -> torch.Tensor: ...

    def resample(self, x_next: torch.Tensor, x_denoised: torch.Tensor, t_hat: torch.Tensor, *, step: int,
                 n_steps: int, key: Any) -> tuple[torch.Tensor, torch.Tensor | None]: ...


class NonFiniteCoordinatesError(FloatingPointError):
    """A NaN or Inf appeared in the sampler; the message names the sample and the step."""


@dataclass(frozen=True)
class SamplerSettings:
    """Constants of Algorithm 18 (Protenix defaults) and the sampler's options."""

    gamma0: float = 0.8
    gamma_min: float = 1.0
    noise_scale_lambda: float = 1.003
    step_scale_eta: float = 1.5
    # Multiplies the noise injected at each step (1 = Algorithm 18; 0 = no churn noise).
    temperature: float = 1.0
    # Boltz's option: Kabsch-align x_noisy onto the denoised prediction before the Euler step, so
    # that the update carries no spurious rigid-body component.
    align_to_prediction: bool = False


@dataclass(frozen=True)
class EarlyStopping:
    """Stop a sample once its denoised prediction moves less than `min_delta` Å (RMSD after
    superposition) between consecutive steps for `patience` consecutive steps."""

    patience: int = 5
    min_delta: float = 0.01

    def __post_init__(self):
        if self.patience < 1 or self.min_delta < 0:
            raise ValueError(f"early stopping needs patience >= 1 and min_delta >= 0, got {self}")


@dataclass
class StepResult:
    """Everything one iteration produced (shapes [..., S, N_atom, 3] unless noted)."""

    x_next: torch.Tensor
    x_aug: torch.Tensor
    x_noisy: torch.Tensor
    t_hat: torch.Tensor  # [..., S]
    x_denoised: torch.Tensor
    gamma: float


@dataclass
class SamplerOutput:
    coordinates: torch.Tensor  # [..., S, N_atom, 3]
    steps_run: torch.Tensor  # [..., S] number of steps each sample ran before finishing
    trajectory: torch.Tensor | None = None  # [T + 1, ..., S, N_atom, 3]: x before the first step and after each
    denoised_trajectory: torch.Tensor | None = None  # [T, ..., S, N_atom, 3]
    stopped_early: torch.Tensor | None = field(default=None)  # [..., S] bool


def _autocast(device_type: str, dtype: torch.dtype | None):
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


def step_levels(c_tau_last: torch.Tensor, c_tau: torch.Tensor, settings: SamplerSettings):
    """γ and t̂ of one step: γ = γ0 when the target level c_tau exceeds γ_min (Protenix compares the
    target level, as the golden trace confirms), t̂ = c_tau_last·(γ + 1)."""
    gamma = float(settings.gamma0) if float(c_tau) > settings.gamma_min else 0.0
    t_hat = c_tau_last * (gamma + 1)
    return gamma, t_hat


def sampler_step(
    x_l: torch.Tensor,
    *,
    c_tau_last: torch.Tensor | float,
    c_tau: torch.Tensor | float,
    rot: torch.Tensor,
    trans: torch.Tensor,
    noise: torch.Tensor | None,
    denoise_fn: DenoiseFn,
    settings: SamplerSettings = SamplerSettings(),
    atom_mask: torch.Tensor | None = None,
    autocast_dtype: torch.dtype | None = None,
    guide_fn: GuideFn | None = None,
) -> StepResult:
    """Implements one iteration of Algorithm 18 with the random draws given.

    x_l [..., S, N, 3]; rot [..., S, 3, 3]; trans [..., S, 3]; noise [..., S, N, 3] standard normal
    (may be None when γ = 0); atom_mask [..., N] (1 real, 0 padding) or None. guide_fn (guidance,
    off when None) corrects the float32 denoised prediction before the Euler step; x_denoised in
    the result is the corrected one.
    """
    device = x_l.device
    c_tau_last = torch.as_tensor(c_tau_last, dtype=torch.float32, device=device)
    c_tau = torch.as_tensor(c_tau, dtype=torch.float32, device=device)
    mask_s = None if atom_mask is None else atom_mask.to(torch.float32).unsqueeze(-2)  # [..., 1, N]

    # 1. Centre and apply a random rigid motion (Alg. 19) [..., S, N, 3]
    x_aug = centre_random_augmentation(x_l, rot=rot, trans=trans, mask=mask_s)

    # 2. Move from level c_tau_last up to t̂ by adding fresh noise
    gamma, t_hat = step_levels(c_tau_last, c_tau, settings)
    delta_noise_level = torch.sqrt(t_hat**2 - c_tau_last**2)
    if noise is None or gamma == 0.0:
        x_noisy = x_aug
    else:
        scale = settings.noise_scale_lambda * settings.temperature
        x_noisy = x_aug + scale * delta_noise_level * noise.to(torch.float32)
    if mask_s is not None:
        x_noisy = x_noisy * mask_s.unsqueeze(-1)

    # 3. Denoise (the only call that may run in reduced precision)
    t_hat_s = t_hat.reshape((1,) * (x_l.dim() - 2)).expand(x_l.shape[:-2])  # [..., S]
    with _autocast(device.type, autocast_dtype):
        x_denoised = denoise_fn(x_noisy, t_hat_s)
    x_denoised = x_denoised.to(torch.float32)
    if guide_fn is not None:
        # 3b. Guidance acts on the prediction, so the Euler direction (x - x̂)/t̂ carries it.
        x_denoised = guide_fn(x_denoised, t_hat_s)

    # 4. Euler step from t̂ to c_tau, in float32
    with torch.autocast(device_type=device.type, enabled=False):
        x_base = x_noisy
        if settings.align_to_prediction:
            weight = mask_s if mask_s is not None else torch.ones(x_noisy.shape[:-1], device=device)
            x_base = weighted_rigid_align(x_noisy, x_denoised, weight.expand(x_noisy.shape[:-1]))
        delta = (x_base - x_denoised) / t_hat_s[..., None, None]
        dt = c_tau - t_hat_s
        x_next = x_base + settings.step_scale_eta * dt[..., None, None] * delta
        if mask_s is not None:
            x_next = x_next * mask_s.unsqueeze(-1)
    return StepResult(x_next=x_next, x_aug=x_aug, x_noisy=x_noisy, t_hat=t_hat_s, x_denoised=x_denoised, gamma=gamma)


class _SampleStreams:
    """One torch.Generator per (batch item, sample): the draws of a sample do not depend on chunking."""

    def __init__(self, n_streams: int, generator: torch.Generator | None):
        seeds = torch.randint(0, 2**62, (n_streams,), generator=generator, device="cpu")
        self.generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]

    def normal(self, idx: list[int], shape: tuple[int, ...]) -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=self.generators[i]) for i in idx])

    def rotation(self, idx: list[int]) -> torch.Tensor:
        return torch.stack([uniform_random_rotation(1, generator=self.generators[i])[0] for i in idx])


def _check_finite(x: torch.Tensor, *, what: str, step: int, n_steps: int, t_hat: float,
                  sample_offset: int, batch_shape: tuple[int, ...]) -> None:
    bad = ~torch.isfinite(x).flatten(-2).all(-1)  # [..., s]
    if bool(bad.any()):
        first = torch.nonzero(bad)[0].tolist()
        sample = first[-1] + sample_offset
        where = f"sample {sample}" + (f" of batch item {tuple(first[:-1])}" if batch_shape else "")
        raise NonFiniteCoordinatesError(
            f"{what} contains NaN/Inf for {where} at step {step + 1} of {n_steps} "
            f"(t_hat = {t_hat:.4g} Å); try float32 (mixed_precision: fp32) or check the inputs"
        )


def sample_diffusion(
    denoise_fn: DenoiseFn,
    *,
    noise_schedule: torch.Tensor,
    n_atom: int,
    n_sample: int = 1,
    batch_shape: tuple[int, ...] = (),
    settings: SamplerSettings = SamplerSettings(),
    generator: torch.Generator | None = None,
    x_init: torch.Tensor | None = None,
    start_index: int = 0,
    atom_mask: torch.Tensor | None = None,
    diffusion_chunk_size: int | None = None,
    early_stopping: EarlyStopping | None = None,
    return_trajectory: bool = False,
    autocast_dtype: torch.dtype | None = None,
    check_finite: bool = True,
    device: torch.device | str | None = None,
    guidance: SamplerGuidance | None = None,
) -> SamplerOutput:
    """Implements Algorithm 18 (SampleDiffusion) over `noise_schedule[start_index:]`.

    De novo (start_index 0): x starts as σ_0·ε. Refinement (start_index > 0): x starts as
    x_init + σ_start·ε, with x_init [..., N, 3] or [..., S, N, 3] already complete (missing atoms
    placed, see `rnadiff.diffusion.starts`). Returns coordinates [..., S, N, 3] in float32.

    guidance (None = off, the plain Algorithm 18): corrects each denoised prediction and, with
    steering, resamples the samples within each chunk. Steering is refused with early stopping
    (a resampled particle inherits another's history). Trajectories are not re-indexed.
    """
    device = torch.device(device) if device is not None else noise_schedule.device
    batch_shape = tuple(batch_shape)
    sigmas = noise_schedule.to(device=device, dtype=torch.float32)
    _check_sampling_options(sigmas.shape[0], start_index, x_init, diffusion_chunk_size, guidance, early_stopping)
    n_batch = math.prod(batch_shape)
    streams = _SampleStreams(n_batch * n_sample, generator)
    if guidance is not None:
        # After the streams are seeded, so that the samples' draws do not depend on guidance.
        guidance.start(generator)
    chunk = n_sample if diffusion_chunk_size is None else diffusion_chunk_size

    outputs = []
    for c0 in range(0, n_sample, chunk):
        c1 = min(n_sample, c0 + chunk)
        outputs.append(
            _sample_chunk(
                denoise_fn, sigmas=sigmas[start_index:], streams=streams, samples=(c0, c1),
                n_sample=n_sample, n_atom=n_atom, batch_shape=batch_shape, settings=settings,
                x_init=x_init, refine=start_index > 0, atom_mask=atom_mask,
                early_stopping=early_stopping, return_trajectory=return_trajectory,
                autocast_dtype=autocast_dtype, check_finite=check_finite, device=device, guidance=guidance,
            )
        )
    return _join_chunks(outputs, len(batch_shape), return_trajectory)


def _check_sampling_options(n_levels: int, start_index: int, x_init, diffusion_chunk_size, guidance,
                            early_stopping) -> None:
    if not 0 <= start_index < n_levels - 1:
        raise ValueError(f"start_index must lie in [0, {n_levels - 2}], got {start_index}")
    if start_index > 0 and x_init is None:
        raise ValueError("starting below the top of the schedule needs x_init (coordinates to refine)")
    if diffusion_chunk_size is not None and diffusion_chunk_size < 1:
        raise ValueError(f"diffusion_chunk_size must be >= 1 or None, got {diffusion_chunk_size}")
    if guidance is not None and guidance.steering_enabled and early_stopping is not None:
        raise ValueError("particle steering cannot be combined with early stopping")


def _join_chunks(outputs: list[SamplerOutput], dim: int, return_trajectory: bool) -> SamplerOutput:
    """The sample chunks' outputs concatenated along the sample axis `dim`."""
    coords = torch.cat([o.coordinates for o in outputs], dim=dim)
    steps = torch.cat([o.steps_run for o in outputs], dim=dim)
    stopped = torch.cat([o.stopped_early for o in outputs], dim=dim)
    traj = den = None
    if return_trajectory:
        traj = _cat_padded([o.trajectory for o in outputs], dim=dim + 1)
        den = _cat_padded([o.denoised_trajectory for o in outputs], dim=dim + 1)
    return SamplerOutput(coordinates=coords, steps_run=steps, trajectory=traj,
                         denoised_trajectory=den, stopped_early=stopped)


def _cat_padded(parts: list[torch.Tensor], dim: int) -> torch.Tensor:
    """Concatenate trajectories of chunks that ran different numbers of steps (early stopping):
    shorter ones repeat their last frame."""
    t_max = max(p.shape[0] for p in parts)
    padded = [torch.cat([p, p[-1:].expand(t_max - p.shape[0], *p.shape[1:])]) for p in parts]
    return torch.cat(padded, dim=dim)


def _start(eps0: torch.Tensor, sigma0: torch.Tensor, x_init: torch.Tensor | None, batch_shape: tuple[int, ...],
           samples: tuple[int, int], device) -> torch.Tensor:
    """The chunk's first x: σ_0·ε (de novo) or x_init + σ_0·ε (from given coordinates)."""
    if x_init is None:
        return sigma0 * eps0
    x0 = x_init.to(device=device, dtype=torch.float32)
    if x0.dim() == len(batch_shape) + 2:  # [..., N, 3] -> [..., S, N, 3]
        x0 = x0.unsqueeze(-3)
    else:
        x0 = x0[..., samples[0]:samples[1], :, :]
    return x0 + sigma0 * eps0


def _early_stop_update(rule: EarlyStopping, prev: torch.Tensor, now: torch.Tensor, mask_s, calm, frozen, final,
                       steps_run, step: int):
    """One step of per-sample early stopping; returns (calm, frozen, final, steps_run)."""
    # Consecutive predictions live in different random frames: compare after superposition.
    change = aligned_rmsd(prev, now, mask_s)
    calm = torch.where(change < rule.min_delta, calm + 1, torch.zeros_like(calm))
    newly = (calm >= rule.patience) & ~frozen
    final = torch.where(newly[..., None, None], now, final)
    steps_run = torch.where(newly, torch.full_like(steps_run, step + 1), steps_run)
    return calm, frozen | newly, final, steps_run


def _check_step_finite(res, *, step: int, n_steps: int, sample_offset: int, batch_shape) -> None:
    t_hat = float(res.t_hat.flatten()[0])
    _check_finite(res.x_denoised, what="the denoised prediction", step=step, n_steps=n_steps,
                  t_hat=t_hat, sample_offset=sample_offset, batch_shape=batch_shape)
    _check_finite(res.x_next, what="the updated coordinates", step=step, n_steps=n_steps,
                  t_hat=t_hat, sample_offset=sample_offset, batch_shape=batch_shape)


def _sample_chunk(denoise_fn, *, sigmas, streams, samples, n_sample, n_atom, batch_shape, settings,
                  x_init, refine, atom_mask, early_stopping, return_trajectory, autocast_dtype,
                  check_finite, device, guidance=None) -> SamplerOutput:
    c0, c1 = samples
    s = c1 - c0
    n_batch = math.prod(batch_shape)
    # stream index of (b, k) is b * n_sample + k, with b the row-major batch position
    idx = [b * n_sample + k for b in range(n_batch) for k in range(c0, c1)]
    shape = (*batch_shape, s)

    def normal(*tail):
        return streams.normal(idx, tail).reshape(*shape, *tail).to(device)

    mask_s = None if atom_mask is None else atom_mask.to(device=device, dtype=torch.float32).unsqueeze(-2)
    x_l = _start(normal(n_atom, 3), sigmas[0], x_init if refine else None, batch_shape, (c0, c1), device)
    if mask_s is not None:
        x_l = x_l * mask_s.unsqueeze(-1)

    n_steps = sigmas.shape[0] - 1
    steps_run = torch.full(shape, n_steps, dtype=torch.long, device=device)
    frozen = torch.zeros(shape, dtype=torch.bool, device=device)
    final = torch.zeros_like(x_l)
    calm = torch.zeros(shape, dtype=torch.long, device=device)
    prev_denoised = None
    traj = [x_l] if return_trajectory else None
    den_traj = [] if return_trajectory else None

    for i in range(n_steps):
        c_tau_last, c_tau = sigmas[i], sigmas[i + 1]
        rot = streams.rotation(idx).reshape(*shape, 3, 3).to(device)
        trans = normal(3)
        gamma, _ = step_levels(c_tau_last, c_tau, settings)
        noise = normal(n_atom, 3) if gamma > 0 else None
        guide_fn = None if guidance is None else functools.partial(guidance.guide, step=i, key=c0)
        res = sampler_step(
            x_l, c_tau_last=c_tau_last, c_tau=c_tau, rot=rot, trans=trans, noise=noise,
            denoise_fn=denoise_fn, settings=settings, atom_mask=atom_mask, autocast_dtype=autocast_dtype,
            guide_fn=guide_fn,
        )
        if guidance is not None and guidance.steering_enabled:
            res.x_next, _ = guidance.resample(res.x_next, res.x_denoised, res.t_hat, step=i, n_steps=n_steps, key=c0)
        if check_finite:
            _check_step_finite(res, step=i, n_steps=n_steps, sample_offset=c0, batch_shape=batch_shape)
        x_l = res.x_next
        if return_trajectory:
            traj.append(x_l)
            den_traj.append(res.x_denoised)

        if early_stopping is not None:
            if prev_denoised is not None:
                calm, frozen, final, steps_run = _early_stop_update(
                    early_stopping, prev_denoised, res.x_denoised, mask_s, calm, frozen, final, steps_run, i)
                if bool(frozen.all()):
                    break
            prev_denoised = res.x_denoised

    coords = torch.where(frozen[..., None, None], final, x_l)
    return SamplerOutput(
        coordinates=coords, steps_run=steps_run,
        trajectory=torch.stack(traj) if return_trajectory else None,
        denoised_trajectory=torch.stack(den_traj) if return_trajectory else None,
        stopped_early=frozen,
    )
