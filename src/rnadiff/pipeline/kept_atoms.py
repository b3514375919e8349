"""Given atoms through the sampler's one guidance protocol (`rnadiff.diffusion.sampler.SamplerGuidance`).

`GivenAtomsGuidance` is inpainting: after each denoiser call with σ >= `until_sigma`, the
prediction of the given atoms is pulled towards the input (the input rigidly aligned onto the
prediction, so the sampler's random frames do not matter) by `strength` (1 = replaced). The last
low-σ steps are free so local geometry can settle; the exact input positions are restored after
sampling (`rnadiff.pipeline.finish`). `GuidanceChain` runs several guidances as one, in order, so
the sampler sees a single object: given atoms first, then the chemistry guidance (which then
corrects the prediction that already holds the input's atoms).
"""
from __future__ import annotations

from typing import Any

import torch

from rnadiff.diffusion.alignment import weighted_rigid_align


class GivenAtomsGuidance:
    """Pull the given atoms of each denoised prediction [..., S, N, 3] towards `anchor` [G, 3]."""

    steering_enabled = False

    def __init__(self, given: torch.Tensor, anchor: torch.Tensor, *, strength: float = 1.0,
                 until_sigma: float = 1.0):
        if not 0 <= strength <= 1:
            raise ValueError(f"given-atom strength must lie in [0, 1], got {strength}")
        if int(given.sum()) != anchor.shape[0]:
            raise ValueError(f"anchor has {anchor.shape[0]} atoms but the mask gives {int(given.sum())}")
        self.given = given.bool()
        self.anchor = anchor.float()
        self.strength = float(strength)
        self.until_sigma = float(until_sigma)

    def start(self, generator: torch.Generator | None) -> None:
        """Stateless: nothing to reset, and no random draw (the samples' streams stay as they are)."""

    def guide(self, x_denoised: torch.Tensor, t_hat: torch.Tensor, *, step: int = 0, key: Any = None) -> torch.Tensor:
        pred = x_denoised[..., self.given, :]  # [..., S, G, 3]
        target = self.anchor.to(pred).expand_as(pred)
        aligned = weighted_rigid_align(target, pred, torch.ones(pred.shape[:-1], dtype=pred.dtype))
        on = (torch.as_tensor(t_hat, dtype=pred.dtype).expand(pred.shape[:-2]) >= self.until_sigma).to(pred.dtype)
        out = x_denoised.clone()
        out[..., self.given, :] = pred + (self.strength * on)[..., None, None] * (aligned - pred)
        return out

    def resample(self, x_next, x_denoised, t_hat, *, step, n_steps, key):
        return x_next, None


class GuidanceChain:
    """Several guidances as one `SamplerGuidance`: `guide` applies them in order; steering (at most
    one member may steer) and its resampling come from the steering member."""

    def __init__(self, members: list[Any]):
        self.members = [m for m in members if m is not None]
        steering = [m for m in self.members if m.steering_enabled]
        if len(steering) > 1:
            raise ValueError("at most one guidance may resample the samples (particle steering)")
        self._steering = steering[0] if steering else None

    @property
    def steering_enabled(self) -> bool:
        return self._steering is not None

    def start(self, generator: torch.Generator | None) -> None:
        for m in self.members:
            m.start(generator)

    def guide(self, x_denoised: torch.Tensor, t_hat: torch.Tensor, *, step: int, key: Any) -> torch.Tensor:
        for m in self.members:
            x_denoised = m.guide(x_denoised, t_hat, step=step, key=key)
        return x_denoised

    def resample(self, x_next, x_denoised, t_hat, *, step, n_steps, key):
        if self._steering is None:
            return x_next, None
        return self._steering.resample(x_next, x_denoised, t_hat, step=step, n_steps=n_steps, key=key)


def chain(*members: Any) -> Any:
    """One guidance for the sampler: None when there is none, the member itself when there is one."""
    present = [m for m in members if m is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else GuidanceChain(present)
