"""Pose gradients of silhouettes against finite differences of a supersampled hard render.

The loss is L = sum(W * alpha), W a smooth random weight image; the pose is a rotation (axis-angle,
about the mesh's center at the origin) and a translation. The reference is the central finite
difference of L on an 8 x 8 supersampled hard render averaged down. Shared by tests/test_edge_glue.py
and benchmarks/edge_glue.py (the README's numbers).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
import trimesh

import glsplat
from glsplat.transforms import axis_angle_to_matrix

SUPER = 8
DISTANCE = 2.6


def weights(size: int, seed: int = 0) -> torch.Tensor:
    """``[size, size]`` a smooth random positive weight image (a few low-frequency waves)."""
    gen = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size, dtype=torch.float64), torch.linspace(0, 1, size, dtype=torch.float64),
                          indexing="ij")
    w = torch.ones_like(x)
    for _ in range(4):
        fx, fy, phase = (torch.rand(3, generator=gen, dtype=torch.float64) * torch.tensor([4.0, 4.0, 6.3], dtype=torch.float64))
        w = w + 0.5 * torch.cos(2 * math.pi * (fx * x + fy * y) + phase)
    return w


def shapes() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Test meshes (float64 vertices centered at the origin, faces), about 1 across."""
    def mesh(m):
        return torch.as_tensor(np.asarray(m.vertices), dtype=torch.float64), torch.as_tensor(np.asarray(m.faces))
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    ellipsoid = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    ellipsoid.vertices *= np.array([0.55, 0.35, 0.3])
    coarse = trimesh.creation.icosphere(subdivisions=1, radius=1.0)  # 80 faces
    coarse.vertices *= np.array([0.55, 0.35, 0.3])
    box = trimesh.creation.box(extents=(0.7, 0.5, 0.4))
    spot = glsplat.load_example("spot", dtype=torch.float64).normalized()
    spot_verts = spot.verts - (spot.verts.amax(0) + spot.verts.amin(0)) / 2
    return {"sphere": mesh(sphere), "ellipsoid": mesh(ellipsoid), "ellipsoid80": mesh(coarse), "box": mesh(box),
            "spot": (spot_verts.double(), spot.faces)}


def _alpha(frags):
    return torch.ones(frags.index.shape[0], 4, dtype=torch.float64)


class PoseLoss:
    """L(rotation, translation) of a mesh seen from ``DISTANCE`` away along +z, ``size`` x ``size`` pixels."""

    def __init__(self, ctx, verts, faces, size, base_rotation=(0.0, 0.0, 0.0), seed=0, fov=30.0):
        self.ctx, self.verts, self.faces, self.size = ctx, verts, faces, size
        self.base = axis_angle_to_matrix(torch.tensor(base_rotation, dtype=torch.float64))
        self.w = weights(size, seed)
        eye = torch.tensor([0.0, 0.0, DISTANCE], dtype=torch.float64)
        self.camera = glsplat.Camera.look_at(eye, fov_y=fov, image_size=(size, size))
        self.camera_fine = glsplat.Camera.look_at(eye, fov_y=fov, image_size=(size * SUPER, size * SUPER))

    def posed(self, pose):
        rotation = axis_angle_to_matrix(pose[:3]) @ self.base
        return self.verts @ rotation.T + pose[3:]

    def splat_gradient(self, silhouette, pose=None):
        pose = torch.zeros(6, dtype=torch.float64) if pose is None else pose
        pose = pose.clone().requires_grad_(True)
        image = glsplat.render(self.ctx, self.posed(pose), self.camera, faces=self.faces, shader=_alpha,
                               silhouette=silhouette)
        loss = (image[0, ..., 3] * self.w).sum()
        return torch.autograd.grad(loss, pose)[0]

    def hard_loss(self, pose):
        image = glsplat.render(self.ctx, self.posed(pose), self.camera_fine, faces=self.faces, shader=_alpha, hard=True)
        alpha = F.avg_pool2d(image[:, None, ..., 3], SUPER)[0, 0]
        return float((alpha * self.w).sum())

    def fd_gradient(self, step_rotation, step_translation):
        steps = [step_rotation] * 3 + [step_translation] * 3
        grad = []
        for i, h in enumerate(steps):
            e = torch.zeros(6, dtype=torch.float64)
            e[i] = h
            grad.append((self.hard_loss(e) - self.hard_loss(-e)) / (2 * h))
        return torch.tensor(grad, dtype=torch.float64)


def cosine(a, b):
    return float((a * b).sum() / (a.norm() * b.norm()))


def gain(grad, reference):
    """Least-squares slope of ``grad`` against ``reference``: the c minimizing |grad - c reference|."""
    return float((grad * reference).sum() / (reference * reference).sum())


def score(grads, fds):
    """Stacked ``[P, 6]`` gradients and FD references: rotation and translation cosines and gains."""
    rot, trans = grads[:, :3].reshape(-1), grads[:, 3:].reshape(-1)
    rot_fd, trans_fd = fds[:, :3].reshape(-1), fds[:, 3:].reshape(-1)
    return {"rot_cos": cosine(rot, rot_fd), "trans_cos": cosine(trans, trans_fd),
            "rot_gain": gain(rot, rot_fd), "trans_gain": gain(trans, trans_fd),
            "ratio": gain(rot, rot_fd) / gain(trans, trans_fd)}
