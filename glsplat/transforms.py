"""Rotations for pose fitting, differentiable."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` from axis-angle vectors ``[..., 3]`` (angle in radians).

    Rodrigues' formula, with its Taylor expansion near zero so the gradient at the identity is
    finite (optimizers usually start there).
    """
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]
    small = theta2 < 1e-8
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe2.sqrt()
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / safe2)
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*x.shape, 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a * cross + b * (cross @ cross)


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` from the 6D representation ``[..., 6]`` (Zhou et al. 2019),
    continuous and so suited to a network's output.

    Gram-Schmidt on the two 3-vectors ``d6[..., :3]`` and ``d6[..., 3:]``: they become the matrix's
    first two rows (normalized, the second made orthogonal to the first), and the third is their
    cross product. ``R[..., :2, :].reshape(..., 6)`` gives ``R`` back.
    """
    a = F.normalize(d6[..., :3], dim=-1)
    b = F.normalize(d6[..., 3:] - (a * d6[..., 3:]).sum(-1, keepdim=True) * a, dim=-1)
    return torch.stack([a, b, torch.cross(a, b, dim=-1)], -2)


def rotation_angle(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Angle in degrees of the rotation taking ``R2`` to ``R1`` (geodesic distance), ``[...]``."""
    cos = ((R1 @ R2.transpose(-1, -2)).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))
