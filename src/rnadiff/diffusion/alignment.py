"""Weighted rigid alignment (AF3 Algorithm 28) for the sampler and the loss, on the one Kabsch
kernel of `rnadiff.geometry.superpose` (float32 SVD with autocast off, reflection-safe)."""
from __future__ import annotations

import torch

from rnadiff.geometry.superpose import apply_rigid, weighted_kabsch

__all__ = ["aligned_rmsd", "apply_rigid", "weighted_kabsch", "weighted_rigid_align"]


def weighted_rigid_align(
    x: torch.Tensor,
    x_target: torch.Tensor,
    weight: torch.Tensor,
    *,
    stop_gradient: bool = True,
) -> torch.Tensor:
    """Implements Algorithm 28: `x` rigidly superposed onto `x_target` (returned in float32).

    x, x_target: [..., N, 3]; weight [..., N] or [N]. With stop_gradient no gradient flows through
    the alignment (AF3 aligns the ground truth onto the prediction without gradient).
    """
    if stop_gradient:
        with torch.no_grad():
            rot, trans = weighted_kabsch(x, x_target, weight)
            return apply_rigid(x.float(), rot, trans).detach()
    rot, trans = weighted_kabsch(x, x_target, weight)
    return apply_rigid(x.float(), rot, trans)


def aligned_rmsd(
    x: torch.Tensor, x_target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """RMSD [...] between x and x_target [..., N, 3] after optimal superposition on `mask` atoms."""
    if mask is None:
        mask = torch.ones(x.shape[:-1], device=x.device, dtype=torch.float32)
    mask = mask.to(torch.float32).expand(x.shape[:-1])
    with torch.no_grad():
        moved = weighted_rigid_align(x, x_target, mask)
        sq = ((moved - x_target.float()) ** 2).sum(-1)  # [..., N]
        return (sq * mask).sum(-1).div(mask.sum(-1).clamp_min(1.0)).sqrt()
