"""Silhouette gradients: the splat's gradient against finite differences of a supersampled render.

The reference is a hard render at 4x4 samples per pixel (16x supersampling) averaged down: its
loss is a smooth function of the translation, which a plain raster's is not (and whose gradient
is exactly zero).
"""
import pytest
import torch
import torch.nn.functional as F

import glsplat

SUPER = 4  # samples per pixel along each axis


def downsample(img: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(img.permute(0, 3, 1, 2), SUPER).permute(0, 2, 3, 1)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / (a.norm() * b.norm()))


def check_translation_gradient(render, t_target: torch.Tensor, step: float):
    """render(t, hard, supersample) -> image. Returns (splat gradient, FD gradient, hard gradient)."""
    target = downsample(render(t_target, True, True))

    def loss(img):
        return ((img - target) ** 2).sum()

    t = torch.zeros_like(t_target, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(render(t, False, False)), t)
    hard_loss = loss(render(t, True, False))
    hard = (torch.autograd.grad(hard_loss, t, allow_unused=True)[0] if hard_loss.requires_grad else None)
    hard = torch.zeros_like(t) if hard is None else hard
    with torch.no_grad():
        fd = torch.stack([
            (loss(downsample(render(step * e, True, True))) - loss(downsample(render(-step * e, True, True)))) / (2 * step)
            for e in torch.eye(len(t), dtype=t.dtype)])
    return grad, fd, hard


@pytest.mark.parametrize("t_target", [(0.15, -0.1), (-0.2, 0.05), (0.05, 0.2)])
def test_triangle(ctx, t_target):
    size = (32, 32)
    base = torch.tensor([[-0.5, -0.4, 0, 1], [0.45, -0.5, 0, 1], [0.0, 0.55, 0, 1]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    rgb = torch.tensor([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.2, 1.0]], dtype=torch.float64)

    def render(t, hard, supersample):
        clip = base + F.pad(t, (0, 2))
        height, width = size if not supersample else (size[0] * SUPER, size[1] * SUPER)
        rast = glsplat.rasterize(ctx, clip, faces, (height, width))
        mask = rast.mask[..., None].double()
        colors = torch.cat([glsplat.interpolate(rgb, rast, faces) * mask, mask], -1)
        if hard:
            return torch.cat([colors[:, 0, ..., :3], colors[:, 0, ..., 3:]], -1)
        return glsplat.splat(colors, clip, rast, faces)

    grad, fd, hard = check_translation_gradient(render, torch.tensor(t_target, dtype=torch.float64), step=1 / 32)
    assert cosine(grad, fd) > 0.9
    assert torch.allclose(grad, fd, rtol=0.3)  # magnitudes agree too, not just direction
    assert torch.count_nonzero(hard) == 0


@pytest.mark.parametrize("t_target", [(0.04, -0.03, 0.0), (-0.03, 0.0, 0.08)])
def test_spot(ctx, spot, t_target):
    """Textured Spot, translated in 3D (x, y and towards the camera)."""
    size = (48, 48)
    verts = spot.verts.double()
    mesh = spot.replace(verts=verts, uvs=spot.uvs.double(), texture=spot.texture.double())
    shader = glsplat.UnlitShader()
    cameras = {ss: glsplat.Camera.look_at(torch.tensor([1.6, 0.4, 1.0], dtype=torch.float64), fov_y=35,
                                          image_size=(size[0] * (SUPER if ss else 1), size[1] * (SUPER if ss else 1)))
               for ss in (False, True)}

    def render(t, hard, supersample):
        return glsplat.render(ctx, mesh.replace(verts=verts + t), camera=cameras[supersample], shader=shader, hard=hard)

    grad, fd, hard = check_translation_gradient(render, torch.tensor(t_target, dtype=torch.float64), step=0.01)
    assert cosine(grad, fd) > 0.9
    assert torch.count_nonzero(hard) == 0
