"""Rigid superposition (Kabsch; AF3 Algorithm 28 in its weighted form), in numpy and in torch.

One covariance-to-rotation step serves both: the optimal proper rotation from the 3×3 covariance
H = Σ w (x − x̄)ᵀ (y − ȳ), with the axis of the smallest singular value flipped when the optimum
would be a reflection (a mirror image never superposes onto its original). The torch form runs
in float32 with autocast off whatever the input dtype: a bf16 SVD of a 3×3 covariance is both
unsupported on some backends and too inaccurate for coordinates of tens of Å.
"""
from __future__ import annotations

import numpy as np
import torch


def kabsch(mobile: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t minimising Σ w |R x + t − y|² (x = mobile [n, 3], y = target).

    Apply as `mobile @ R.T + t`. No atoms (or zero weight): the identity.
    """
    x = np.asarray(mobile, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    wsum = w.sum()
    if len(x) == 0 or wsum <= 0:
        return np.eye(3), np.zeros(3)
    cx = (w[:, None] * x).sum(0) / wsum
    cy = (w[:, None] * y).sum(0) / wsum
    h = ((x - cx) * w[:, None]).T @ (y - cy)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, cy - cx @ rot.T


def superpose(mobile: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """`mobile` moved onto `target` (same shape)."""
    rot, t = kabsch(mobile, target, weights)
    return np.asarray(mobile, dtype=np.float64) @ rot.T + t


def rotation_from_covariance(h: torch.Tensor) -> torch.Tensor:
    """Proper rotations [..., 3, 3] maximising tr(R H) for covariances h [..., 3, 3] (float32)."""
    with torch.autocast(device_type=h.device.type, enabled=False):
        u, _, vh = torch.linalg.svd(h.float())
        v = vh.transpose(-1, -2)
        det = torch.linalg.det(v @ u.transpose(-1, -2))
        diag = torch.stack([torch.ones_like(det), torch.ones_like(det), torch.sign(det) + (det == 0)], dim=-1)
        return v @ torch.diag_embed(diag) @ u.transpose(-1, -2)


def weighted_kabsch(x: torch.Tensor, x_target: torch.Tensor, weight: torch.Tensor, *, eps: float = 1e-12
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Best proper rotation and translation moving `x` onto `x_target` under per-atom weights.

    x, x_target: [..., N, 3]; weight: [..., N] or [N] (zero for atoms to ignore). Returns rot
    [..., 3, 3] and trans [..., 3] with x_aligned = x @ rot^T + trans, in float32.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        x_target = x_target.float()
        w = weight.to(torch.float32).expand(x.shape[:-1]).unsqueeze(-1)  # [..., N, 1]
        w_sum = w.sum(dim=-2, keepdim=True).clamp_min(eps)  # [..., 1, 1]
        mu = (x * w).sum(dim=-2, keepdim=True) / w_sum  # [..., 1, 3]
        mu_t = (x_target * w).sum(dim=-2, keepdim=True) / w_sum  # [..., 1, 3]
        h = ((x - mu) * w).transpose(-1, -2) @ (x_target - mu_t)  # [..., 3, 3]
        rot = rotation_from_covariance(h)
        trans = mu_t.squeeze(-2) - (mu @ rot.transpose(-1, -2)).squeeze(-2)  # [..., 3]
    return rot, trans


def apply_rigid(x: torch.Tensor, rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """x [..., N, 3] -> x @ rot^T + trans (rot [..., 3, 3], trans [..., 3])."""
    return x @ rot.transpose(-1, -2) + trans.unsqueeze(-2)
