"""Feynman–Kac steering (Boltz-1x): resample the particles (samples) by their energy.

At a resampling step every particle k gets the potential G_k = exp(-λ·(E_k - E_k^prev)), where
E^prev is its energy at the previous resampling step (0 at the first): a telescoping product, so
the particles finally carry weight ∝ exp(-λ·E). Particles are drawn with replacement from the
normalised weights (multinomial, with the caller's torch.Generator, hence deterministic), and the
chosen ancestors' coordinates and energies are copied.
"""
from __future__ import annotations

import torch


def resample_indices(log_weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Ancestor indices [B, S] drawn from softmax(log_weights [B, S]) with replacement.

    Drawn on the CPU so that the draw does not depend on the device.
    """
    probs = torch.softmax(log_weights.detach().to("cpu", torch.float64), dim=-1)
    idx = torch.multinomial(probs, probs.shape[-1], replacement=True, generator=generator)
    return idx.to(log_weights.device)


def gather_samples(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [B, S, ...] rows picked by idx [B, S] along the sample dimension."""
    expand = idx.reshape(*idx.shape, *([1] * (x.dim() - 2))).expand(*idx.shape, *x.shape[2:])
    return torch.gather(x, 1, expand)


class FKSteering:
    """Holds the previous energies of one chunk of particles between resampling steps."""

    def __init__(self, fk_lambda: float, generator: torch.Generator | None):
        self.fk_lambda = float(fk_lambda)
        self.generator = generator
        self.prev_energy: dict[int, torch.Tensor] = {}

    def step(self, x: torch.Tensor, energy: torch.Tensor, *, key: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Resample x [B, S, N, 3] with energies [B, S]; returns (x resampled, ancestors [B, S])."""
        prev = self.prev_energy.get(key)
        delta = energy - (prev if prev is not None else torch.zeros_like(energy))
        idx = resample_indices(-self.fk_lambda * delta, self.generator)
        self.prev_energy[key] = gather_samples(energy, idx)
        return gather_samples(x, idx), idx


__all__ = ["FKSteering", "gather_samples", "resample_indices"]
