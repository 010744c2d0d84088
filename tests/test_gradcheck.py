"""torch.autograd.gradcheck, float64, of the differentiable stages with the raster held fixed."""
import pytest
import torch
from torch.autograd import gradcheck

import glsplat


def random_scene(ctx, batch=2, faces_n=6, size=(9, 11), layers=3, seed=0):
    """Random overlapping perspective triangles (vertices not shared), float64 clip coordinates."""
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, faces_n, 1, 2, generator=gen) - 0.5 + (torch.rand(batch, faces_n, 3, 2, generator=gen) - 0.5) * 1.5
    w = 1 + torch.rand(batch, faces_n, 3, 1, generator=gen)
    z = torch.rand(batch, faces_n, 3, 1, generator=gen) - 0.5
    clip = torch.cat([xy * w, z * w, w], -1).reshape(batch, -1, 4).double()
    faces = torch.arange(faces_n * 3).reshape(-1, 3)
    rast = glsplat.rasterize(ctx, clip, faces, size, layers=layers, cull_backfaces=False)
    assert layers == 1 or rast.mask[:, 1].any(), "the scene should have a second layer"
    return clip, faces, rast


def test_interpolate(ctx):
    clip, faces, rast = random_scene(ctx)
    attr = torch.rand(2, clip.shape[1], 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a: glsplat.interpolate(a, rast, faces), (attr,))
    shared = torch.rand(clip.shape[1], 2, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a: glsplat.interpolate(a, rast, faces), (shared,))


@pytest.mark.parametrize("layers", [1, 3])
def test_splat(ctx, layers):
    """Full Jacobian in the clip coordinates (the vertex-gradient path), random projections in color."""
    clip, faces, rast = random_scene(ctx, size=(6, 7), layers=layers)
    colors = torch.rand(*rast.shape, 4, dtype=torch.float64)
    colors[..., 3] = rast.mask  # straight RGBA, opaque where covered
    clip.requires_grad_()
    colors.requires_grad_()
    assert gradcheck(lambda x: glsplat.splat(colors, x, rast, faces, silhouette="splat"), (clip,))
    assert gradcheck(lambda c, x: glsplat.splat(c, x, rast, faces, silhouette="splat"), (colors, clip), fast_mode=True)
    packed = colors.detach().reshape(-1, 4)[rast.index].requires_grad_()  # [N, 4], as a shader returns them
    assert gradcheck(lambda c, x: glsplat.splat(c, x, rast, faces, silhouette="splat"), (packed, clip), fast_mode=True)


@pytest.mark.parametrize("layers", [1, 3])
def test_splat_offset(ctx, layers):
    """Full Jacobian in the per-sample offsets (zero in value, as the viewer's probe uses them, and
    off the pixel center), with the clip-space vertices alongside: the two gradient paths agree
    with finite differences together."""
    clip, faces, rast = random_scene(ctx, size=(6, 7), layers=layers)
    count = rast.index.shape[0]
    colors = torch.rand(count, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    zero = torch.zeros(count, 2, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda o: glsplat.splat(colors, clip, rast, faces, offset=o, silhouette="splat"), (zero,))
    moved = (torch.rand(count, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) - 0.5)
    clip.requires_grad_()
    assert gradcheck(lambda o, x: glsplat.splat(colors, x, rast, faces, offset=o, silhouette="splat"),
                     (moved.requires_grad_(), clip), fast_mode=True)


def test_splat_with_translucent_colors(ctx):
    clip, faces, rast = random_scene(ctx, layers=2, seed=3)
    colors = torch.rand(*rast.shape, 4, dtype=torch.float64, requires_grad=True)
    clip.requires_grad_()
    assert gradcheck(lambda c, x: glsplat.splat(c, x, rast, faces, silhouette="splat"), (colors, clip), fast_mode=True)


def test_sample_texture():
    gen = torch.Generator().manual_seed(0)
    texture = torch.rand(5, 7, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    uv = torch.rand(2, 4, 6, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    assert gradcheck(glsplat.sample_texture, (texture, uv))


def test_textured_pipeline_through_camera(ctx, spot):
    """Vertices, camera pose, UVs and texture all get correct gradients through the pipeline."""
    verts = spot.verts.double()
    size = (14, 12)
    R0 = torch.eye(3, dtype=torch.float64)
    K = torch.tensor([[16.0, 0, 5.5], [0, 16.0, 6.5], [0, 0, 1]], dtype=torch.float64)
    t = torch.tensor([0.02, -0.01, 1.6], dtype=torch.float64, requires_grad=True)
    camera = glsplat.Camera.from_intrinsics(K, size, R0, t)
    clip0 = camera.project(verts)
    rast = glsplat.rasterize(ctx, clip0, spot.faces, size, layers=2)
    assert rast.mask[:, 1].any()
    texture = torch.rand(6, 5, 3, dtype=torch.float64, requires_grad=True)
    uvs = spot.uvs.double().requires_grad_()
    delta = torch.zeros_like(verts, requires_grad=True)

    def image(delta, t, uvs, texture):
        cam = glsplat.Camera.from_intrinsics(K, size, R0, t)
        clip = cam.project(verts + delta)
        uv = glsplat.interpolate(uvs, rast, spot.uv_faces)
        mask = rast.mask[..., None].double()
        colors = torch.cat([glsplat.sample_texture(texture, uv) * mask, mask], -1)
        return glsplat.splat(colors, clip, rast, spot.faces, silhouette="splat")

    assert gradcheck(image, (delta, t, uvs, texture), fast_mode=True)
