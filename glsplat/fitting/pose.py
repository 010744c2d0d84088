"""Fit the rigid pose (rotation + translation) of a known mesh to target images.

Conventions: a pose ``(R, t)`` maps the mesh's own coordinates to world space,
``p_world = R @ p_mesh + t``, so the rotation is about the mesh's origin (its center once
``Mesh.normalized()``). Rotations are ``[B, 3, 3]`` matrices; translations ``[B, 3]``.
A batch of ``B`` independent fits runs as one batched render: the loss is summed over the
batch, and Adam's per-element steps keep the fits from influencing each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..context import Context
from ..camera import Camera
from ..mesh import Mesh
from ..render import render
from ..transforms import axis_angle_to_matrix


@dataclass
class PoseFit:
    """The result of :func:`fit_pose`.

    Attributes:
        rotation: ``[B, 3, 3]`` fitted rotations.
        translation: ``[B, 3]`` fitted translations.
        losses: ``[steps, B]`` mean squared RGBA error of each fit at each step (before that
            step's update), without the blur, so curves are comparable across the schedule.
    """

    rotation: torch.Tensor
    translation: torch.Tensor
    losses: torch.Tensor


def posed(mesh: Mesh, rotation: torch.Tensor, translation: torch.Tensor) -> Mesh:
    """``mesh`` with vertices ``R @ v + t`` for each pose: verts ``[B, V, 3]``."""
    verts = mesh.verts if mesh.verts.dim() == 3 else mesh.verts[None]
    return mesh.replace(verts=verts @ rotation.transpose(-1, -2) + translation[:, None])


def blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[B, H, W, C]`` images (zero padding); ``sigma`` in pixels."""
    if sigma < 0.3:
        return image
    radius = int(3 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = image.shape[-1]
    out = image.permute(0, 3, 1, 2)
    out = F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), padding=(radius, 0), groups=channels)
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), padding=(0, radius), groups=channels)
    return out.permute(0, 2, 3, 1)


def blur_schedule(step: int, steps: int, start_sigma: float) -> float:
    """Coarse to fine: the blur falls linearly from ``start_sigma`` to 0 over the first half."""
    return max(0.0, start_sigma * (1 - 2 * step / steps))


def fit_pose(ctx: Context, mesh: Mesh, target: torch.Tensor, camera: Camera,
             init_rotation: torch.Tensor, init_translation: torch.Tensor, *, steps: int = 150,
             lr: float = 0.03, layers: int = 1, hard: bool = False, shader=None,
             background=None, start_sigma: float = 2.0, silhouette: str = "edge",
             callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None) -> PoseFit:
    """Fit rotations and translations so that renders of ``mesh`` match ``target``.

    The loss is the mean squared difference of premultiplied RGBA (color and coverage), both
    images blurred with a Gaussian whose width shrinks to zero over the first half of the steps
    (:func:`blur_schedule`): blurred silhouettes overlap even when far apart, which widens the
    basin of convergence. The rotation is parametrized as an axis-angle update applied on the
    left of the initial rotation (``R = exp(w) @ R0``, ``w`` starts at 0, away from the
    axis-angle singularity at 180 degrees). Adam with a cosine-decayed learning rate.

    Args:
        ctx: the OpenGL context.
        mesh: the mesh in its own frame (verts ``[V, 3]``).
        target: ``[B, H, W, 4]`` premultiplied RGBA, as :func:`glsplat.render` returns (with
            the same ``background``).
        camera: the camera that saw the target (one, or a batch of ``B``).
        init_rotation: ``[B, 3, 3]`` (or ``[3, 3]``) starting rotations.
        init_translation: ``[B, 3]`` (or ``[3]``) starting translations.
        steps: optimization steps.
        lr: Adam's initial learning rate (radians for the rotation, scene units for ``t``).
        layers: depth layers rendered (more give occlusion gradients).
        hard: render the plain rasterized image instead of the splat (the baseline with no
            silhouette gradients).
        shader: the shader used for both the target and the fit (default: Lambert headlight).
        background: ``None`` compares premultiplied RGBA; a color ``[C]`` composites the renders
            over it first (for opaque targets, e.g. a photo-like RGB image with alpha 1).
        start_sigma: blur at step 0 in pixels (0 disables the coarse-to-fine schedule).
        silhouette: ``"edge"`` or ``"splat"``, see :func:`glsplat.splat`.
        callback: called as ``callback(step, image, losses)`` with the current render
            ``[B, H, W, 4]`` (detached) and the per-fit unblurred loss ``[B]``, before each update.

    Returns:
        A :class:`PoseFit`.
    """
    target = target.detach()
    batch = target.shape[0]
    rotation0 = init_rotation.detach().to(target.dtype).expand(batch, 3, 3)
    omega = torch.zeros(batch, 3, dtype=target.dtype, device=target.device, requires_grad=True)
    translation = init_translation.detach().to(target.dtype).expand(batch, 3).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([omega, translation], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    history = []
    for step in range(steps):
        optimizer.zero_grad()
        rotation = axis_angle_to_matrix(omega) @ rotation0
        image = render(ctx, posed(mesh, rotation, translation), camera=camera, shader=shader,
                       layers=layers, hard=hard, background=background, silhouette=silhouette)
        sharp = ((image.detach() - target) ** 2).mean((1, 2, 3))
        history.append(sharp)
        if callback is not None:
            callback(step, image.detach(), sharp)
        sigma = blur_schedule(step, steps, start_sigma)
        ((blur(image, sigma) - blur(target, sigma)) ** 2).mean((1, 2, 3)).sum().backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        rotation = axis_angle_to_matrix(omega) @ rotation0
    return PoseFit(rotation.detach(), translation.detach(), torch.stack(history))
