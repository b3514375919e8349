"""Random rigid augmentation of coordinates (AF3 Algorithm 19, CentreRandomAugmentation).

Rotations are uniform on SO(3) (normalised Gaussian quaternions), drawn in float32 from an
explicit `torch.Generator` so that sampling is reproducible. The convention is Protenix's
(`rot_vec_mul`): x_aug = (x − centroid) @ rotᵀ + trans, i.e. each coordinate row is multiplied
by rot from the left; verified against the golden sampler trace.
"""
from __future__ import annotations

import torch


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions [..., 4] (w, x, y, z) -> rotation matrices [..., 3, 3]."""
    w, x, y, z = torch.unbind(q, dim=-1)
    two = 2.0 / (q * q).sum(-1)
    rows = [
        1 - two * (y * y + z * z), two * (x * y - z * w), two * (x * z + y * w),
        two * (x * y + z * w), 1 - two * (x * x + z * z), two * (y * z - x * w),
        two * (x * z - y * w), two * (y * z + x * w), 1 - two * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def uniform_random_rotation(
    n: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """n rotations [n, 3, 3], uniform (Haar) on SO(3), float32.

    A standard-normal 4-vector normalised to the unit sphere is a uniform unit quaternion, and
    the quaternion → matrix map pushes that forward to the Haar measure on SO(3).
    """
    gen_device = generator.device if generator is not None else device
    q = torch.randn((n, 4), generator=generator, device=gen_device, dtype=torch.float32)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    rot = quaternion_to_matrix(q)
    return rot if device is None else rot.to(device)


def rot_vec_mul(rot: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """rot [..., 3, 3] applied to vectors x [..., 3], written out element-wise.

    Written out rather than a matmul so that autocast never downcasts it, and so that the
    arithmetic (and therefore the rounding) is the same as Protenix's `rot_vec_mul`.
    """
    x0, x1, x2 = torch.unbind(x, dim=-1)
    return torch.stack(
        [
            rot[..., 0, 0] * x0 + rot[..., 0, 1] * x1 + rot[..., 0, 2] * x2,
            rot[..., 1, 0] * x0 + rot[..., 1, 1] * x1 + rot[..., 1, 2] * x2,
            rot[..., 2, 0] * x0 + rot[..., 2, 1] * x1 + rot[..., 2, 2] * x2,
        ],
        dim=-1,
    )


def centre(x: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-12) -> torch.Tensor:
    """Move the (masked) centroid of x [..., N, 3] to the origin."""
    if mask is None:
        return x - torch.mean(x, dim=-2, keepdim=True)
    m = mask.to(x.dtype).expand(x.shape[:-1]).unsqueeze(-1)  # [..., N, 1]
    c = (x * m).sum(dim=-2, keepdim=True) / (m.sum(dim=-2, keepdim=True) + eps)
    return x - c


def centre_random_augmentation(
    x: torch.Tensor,
    *,
    rot: torch.Tensor,
    trans: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Implements Algorithm 19 with given draws: (x − centroid) rotated by rot, then shifted by trans.

    x: [..., N, 3]; rot: [..., 3, 3]; trans: [..., 3]; mask [..., N] restricts the centroid to
    real atoms (padding and missing atoms must not move it). Computed in float32.
    """
    xc = centre(x.float(), mask)
    return rot_vec_mul(rot.float().unsqueeze(-3), xc) + trans.float().unsqueeze(-2)
