"""EDM preconditioning (Karras et al. 2022) as AF3 / Protenix use it, kept apart from the network.

D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, c_noise(σ)), with
c_in = 1/√(σ²+σd²), c_skip = σd²/(σ²+σd²), c_out = σ·σd/√(σ²+σd²), c_noise = ¼·ln(σ/σd).
The forms below are the algebraically equal ones Protenix evaluates, so float32 results match it.
"""
from __future__ import annotations

import torch


def c_in(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    return 1.0 / torch.sqrt(sigma_data**2 + sigma**2)


def c_skip(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    return 1.0 / (1.0 + (sigma / sigma_data) ** 2)


def c_out(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    return sigma / torch.sqrt(1.0 + (sigma / sigma_data) ** 2)


def c_noise(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    return torch.log(sigma / sigma_data) / 4.0


def loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """EDM's λ(σ) = (σ² + σd²)/(σ·σd)², the per-sample weight of the denoising MSE."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def precondition_input(x_noisy: torch.Tensor, sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """x [..., S, N, 3], σ [..., S] -> c_in·x."""
    return x_noisy * c_in(sigma, sigma_data)[..., None, None]


def combine(x_noisy: torch.Tensor, r_update: torch.Tensor, sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """c_skip·x + c_out·F for x, F [..., S, N, 3] and σ [..., S]."""
    sigma = sigma.to(r_update.dtype)
    return c_skip(sigma, sigma_data)[..., None, None] * x_noisy + c_out(sigma, sigma_data)[..., None, None] * r_update
