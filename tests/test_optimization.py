"""Optimization through the renderer converges: a triangle's translation, and Spot's pose."""
import math

import torch

import glsplat
from glsplat.transforms import axis_angle_to_matrix, rotation_angle


def test_triangle_translation_plain_gradient_descent(ctx):
    """15 steps of plain gradient descent at least halve the loss, and move the right way."""
    size = (32, 32)
    base = torch.tensor([[-0.4, -0.35, 0.0, 1.0], [0.4, -0.4, 0.0, 1.0], [0.0, 0.45, 0.0, 1.0]])
    faces = torch.tensor([[0, 1, 2]])
    true_t = torch.tensor([0.25, -0.15])

    def image(t):
        clip = base + torch.nn.functional.pad(t, (0, 2))
        rast = glsplat.rasterize(ctx, clip, faces, size)
        mask = rast.mask[..., None].float()
        colors = torch.cat([torch.tensor([0.9, 0.6, 0.2]) * mask, mask], -1)
        return glsplat.splat(colors, clip, rast, faces)

    target = image(true_t).detach()
    t = torch.zeros(2, requires_grad=True)
    losses = []
    for _ in range(15):
        loss = ((image(t) - target) ** 2).sum()
        losses.append(loss.item())
        (grad,) = torch.autograd.grad(loss, t)
        with torch.no_grad():
            t -= 2e-4 * grad
    final = ((image(t) - target) ** 2).sum().item()
    assert final < 0.5 * losses[0]
    assert (t.detach() - true_t).norm() < 0.5 * true_t.norm()


def test_spot_pose(ctx, spot):
    """From 20 degrees of rotation and a small translation error to below 2 degrees, 128x128."""
    camera = glsplat.Camera.look_at((1.5, 0.5, 1.2), fov_y=40, image_size=(128, 128))
    shader = glsplat.LambertShader([glsplat.DirectionalLight((1.0, 1.0, 1.0))], ambient=0.4)

    def image(axis_angle, t):
        R = axis_angle_to_matrix(axis_angle)
        return glsplat.render(ctx, spot.replace(verts=spot.verts @ R.T + t), camera=camera, shader=shader)

    with torch.no_grad():
        target = image(torch.zeros(3), torch.zeros(3))
    axis = torch.nn.functional.normalize(torch.tensor([0.3, -1.0, 0.5]), dim=0)
    axis_angle = (axis * math.radians(20)).requires_grad_()
    t = torch.tensor([0.05, -0.03, 0.04], requires_grad=True)
    optimizer = torch.optim.Adam([axis_angle, t], lr=0.02)
    for _ in range(300):
        optimizer.zero_grad()
        loss = ((image(axis_angle, t) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
    error = rotation_angle(axis_angle_to_matrix(axis_angle.detach()), torch.eye(3))
    assert error < 2.0
    assert t.detach().norm() < 0.01
