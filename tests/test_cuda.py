"""CUDA tensors: the CUDA splat kernel, G-buffers read straight into GPU memory, CUDA == CPU.

Skipped without a CUDA device; run on a GPU machine (NVIDIA EGL) with `pytest tests/test_cuda.py`.
"""
import math

import pytest
import torch

import glsplat
from glsplat.cuda_gl import cuda_readback
from glsplat.kernels import cuda_kernels
from glsplat.silhouette import find_glue, glue_offsets
from glsplat.splat import _splat, splat_layers_torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def camera(size, device):
    cam = glsplat.Camera.orbit(math.degrees(0.4), 15.0, fov_y=30.0, image_size=(size, size))
    return glsplat.Camera(cam.R.to(device), cam.t.to(device), cam.projection.to(device), cam.image_size)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("shift", [0.0, 0.7])
@pytest.mark.parametrize("silhouette", ["splat", "edge"])
def test_cuda_kernel_matches_torch(ctx, dtype, layers, shift, silhouette):
    """Image, buffers and the gradients w.r.t. clip, colors and offsets (samples moved by up to
    `shift` pixels) equal the pure-torch reference's; with the edge glue, whose part of the clip
    gradient the kernel adds itself, the reference takes the glue as offsets (glue_offsets)."""
    assert cuda_kernels() is not None
    gen = torch.Generator().manual_seed(layers)
    verts = torch.rand(1, 30, 4, generator=gen, dtype=dtype) * 2 - 1
    verts[..., 2] *= 0.5
    verts[..., 3] = 1.5
    faces = torch.arange(30).view(10, 3).cuda()
    clip = verts.cuda().requires_grad_()
    rast = glsplat.rasterize(ctx, clip, faces, (37, 41), layers=layers, cull_backfaces=False)
    colors = torch.rand(*rast.shape, 4, generator=gen, dtype=dtype).cuda().requires_grad_()
    count = rast.index.shape[0]
    offset = (shift * (torch.rand(count, 2, generator=gen, dtype=dtype) * 2 - 1)).cuda().requires_grad_()
    image, buffers = _splat(colors, clip, rast, faces, with_buffers=True, offset=offset, silhouette=silhouette)
    ref_offset = offset
    if silhouette == "edge":
        glue = find_glue(clip, faces, rast)
        assert len(glue.sample) > 0
        ref_offset = offset.index_add(0, glue.row, glue_offsets(clip, faces, rast, glue))
    ref_image, ref_buffers = splat_layers_torch(glsplat.interpolate(clip, rast, faces), colors, rast,
                                                rast.scatter(ref_offset))
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert (image - ref_image).abs().max() < tol
    assert (buffers - ref_buffers).abs().max() < tol
    grad = torch.randn_like(image)
    inputs = (clip, colors, offset)
    for a, b in zip(torch.autograd.grad(image, inputs, grad), torch.autograd.grad(ref_image, inputs, grad)):
        assert (a - b).abs().max() < tol * 100 * max(1.0, b.abs().max().item())


def test_gbuffers_stay_on_the_gpu(ctx, spot):
    if "NVIDIA" not in ctx.renderer:
        pytest.skip(f"CUDA-GL interop needs the GL context on the GPU, not {ctx.renderer}")
    assert cuda_readback(ctx) is not None
    clip = camera(96, "cuda").project(spot.verts.cuda()[None])
    on_gpu = glsplat.rasterize(ctx, clip, spot.faces.cuda(), (96, 96), layers=3)
    on_host = glsplat.rasterize(ctx, clip.cpu(), spot.faces, (96, 96), layers=3)
    assert on_gpu.bary.is_cuda
    assert torch.equal(on_gpu.tri_id.cpu(), on_host.tri_id)
    assert torch.equal(on_gpu.bary.cpu(), on_host.bary)


@pytest.mark.parametrize("layers", [1, 3])
def test_cuda_render_matches_cpu(ctx, spot, layers):
    out = {}
    for device in ("cpu", "cuda"):
        mesh = spot.to(device)
        verts = mesh.verts.clone().requires_grad_()
        image = glsplat.render(ctx, mesh.replace(verts=verts), camera=camera(64, device), shader=glsplat.PhongShader(),
                               layers=layers)
        (image * torch.linspace(0, 1, image.numel(), device=device).view_as(image)).sum().backward()
        out[device] = image.detach().cpu(), verts.grad.cpu()
    assert (out["cpu"][0] - out["cuda"][0]).abs().max() < 1e-4
    assert (out["cpu"][1] - out["cuda"][1]).norm() < 1e-4 * out["cpu"][1].norm()
