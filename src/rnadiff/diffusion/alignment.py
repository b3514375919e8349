"""Weighted rigid alignment (weighted Kabsch), batched and reflection-safe.

Implements Algorithm 28 of AF3 (weighted rigid align). The SVD always runs in float32 with autocast
disabled (DESIGN §3): a bf16 SVD of a 3×3 covariance is both unsupported on some backends and too
inaccurate to superpose coordinates of tens of Å.
"""
from __future__ import annotations

import torch


def _autocast_off(device_type: str):
    return torch.autocast(device_type=device_type, enabled=False)


def weighted_kabsch(
    x: torch.Tensor,
    x_target: torch.Tensor,
    weight: torch.Tensor,
    *,
    eps: float = 1e-12,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best proper rotation and translation moving `x` onto `x_target` under per-atom weights.

    x, x_target: [..., N, 3]; weight: [..., N] or [N] (zero for atoms to ignore).
    Returns rot [..., 3, 3] and trans [..., 3] with  x_aligned = x @ rot^T + trans.
    Float32 throughout, whatever the input dtype; a reflection is never returned (det(rot) = +1).
    """
    with _autocast_off(x.device.type):
        x = x.float()
        x_target = x_target.float()
        w = weight.to(torch.float32).expand(x.shape[:-1]).unsqueeze(-1)  # [..., N, 1]
        w_sum = w.sum(dim=-2, keepdim=True).clamp_min(eps)  # [..., 1, 1]
        mu = (x * w).sum(dim=-2, keepdim=True) / w_sum  # [..., 1, 3]
        mu_t = (x_target * w).sum(dim=-2, keepdim=True) / w_sum  # [..., 1, 3]
        # H = Σ w (x − μ)ᵀ (y − μ_t): [..., 3, 3]
        h = ((x - mu) * w).transpose(-1, -2) @ (x_target - mu_t)
        u, _, vh = torch.linalg.svd(h)
        v = vh.transpose(-1, -2)
        # Flip the axis of the smallest singular value when the optimum would be a reflection.
        det = torch.linalg.det(v @ u.transpose(-1, -2))
        diag = torch.stack([torch.ones_like(det), torch.ones_like(det), torch.sign(det) + (det == 0)], dim=-1)
        rot = v @ torch.diag_embed(diag) @ u.transpose(-1, -2)  # [..., 3, 3]
        trans = mu_t.squeeze(-2) - (mu @ rot.transpose(-1, -2)).squeeze(-2)  # [..., 3]
    return rot, trans


def apply_rigid(x: torch.Tensor, rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """x [..., N, 3] -> x @ rot^T + trans (rot [..., 3, 3], trans [..., 3])."""
    return x @ rot.transpose(-1, -2) + trans.unsqueeze(-2)


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
