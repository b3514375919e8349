"""Noise levels for sampling (EDM / AF3 Alg. 18 schedule) and for training (AF3 §3.7.1).

Inference levels: σ_i = σd·(s_max^{1/p} + i/N·(s_min^{1/p} − s_max^{1/p}))^p for i = 0..N, with the
last level replaced by exactly 0. The arithmetic follows Protenix's `InferenceNoiseScheduler`
operation by operation (float32 arange, python-float step size) so the levels match bit for bit.
Training levels: σ = σd·exp(p_mean + p_std·N(0,1)).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from rnadiff.model import edm


@dataclass(frozen=True)
class DiffusionSchedule:
    """Noise schedules of the diffusion model (σd = sigma_data, in Å)."""

    sigma_data: float = 16.0
    s_max: float = 160.0
    s_min: float = 4e-4
    p: float = 7.0
    dt: float = 1 / 200
    p_mean: float = -1.2
    p_std: float = 1.5

    def __post_init__(self):
        if not (self.s_max > self.s_min > 0):
            raise ValueError(f"need s_max > s_min > 0, got s_max={self.s_max}, s_min={self.s_min}")
        if not (0 < self.dt <= 1):
            raise ValueError(f"dt must lie in (0, 1], got {self.dt}")
        if self.sigma_data <= 0 or self.p <= 0 or self.p_std < 0:
            raise ValueError("sigma_data and p must be positive and p_std non-negative")

    @property
    def default_num_steps(self) -> int:
        return max(1, round(1 / self.dt))

    def inference_sigmas(
        self,
        num_steps: int | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Implements the noise schedule of Algorithm 18: [num_steps + 1] levels, first σd·s_max, last 0."""
        n = self.default_num_steps if num_steps is None else int(num_steps)
        if n < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        step_size = 1 / n
        step_indices = torch.arange(n + 1, device=device, dtype=dtype)  # [n+1]
        hi = self.s_max ** (1 / self.p)
        lo = self.s_min ** (1 / self.p)
        sigmas = self.sigma_data * (hi + step_indices * step_size * (lo - hi)) ** self.p
        sigmas[..., -1] = 0  # t_N = 0: the last step lands on the clean structure
        return sigmas

    def sample_training_sigmas(
        self,
        shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """σ = σd·exp(p_mean + p_std·N(0,1)) of the given shape (AF3 §3.7.1, log-normal)."""
        gen_device = generator.device if generator is not None else device
        rnd = torch.randn(tuple(shape), generator=generator, device=gen_device, dtype=torch.float32)
        sigma = (rnd * self.p_std + self.p_mean).exp() * self.sigma_data
        return sigma.to(device=device if device is not None else sigma.device, dtype=dtype)

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """EDM loss weight (σ² + σd²)/(σ·σd)² (AF3 eq. 6) at this schedule's σ_data."""
        return edm.loss_weight(sigma, self.sigma_data)
