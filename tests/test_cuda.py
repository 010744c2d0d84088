"""CUDA tensors: the CUDA splat and edge glue kernels, G-buffers read straight into GPU memory, CUDA == CPU.

Skipped without a CUDA device; run on a GPU machine (NVIDIA EGL) with `pytest tests/test_cuda.py`.
"""
import math

import numpy as np
import pytest
import torch
import trimesh

import glsplat
from glsplat.cuda_gl import cuda_readback
from glsplat.kernels import cpu_kernels, cuda_kernels
from glsplat.raster import Raster
from glsplat.silhouette import (Glue, contour_edges, contour_edges_torch, find_glue, find_glue_torch,
                                glue_offsets)
from glsplat.transforms import axis_angle_to_matrix
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


# ---------------------------------------------------------------------------------------------
# The edge glue's kernels (csrc/edges_cuda.cu) against the torch reference (glsplat/silhouette.py)


def _glue_raster(ctx, spot, case, layers, size=48, border=1):
    """(clip [Bc, V, 4] float64 in the raster's frame, faces, raster), all on the GPU: Spot (turned
    two ways for "spot-batch", one clip per image), or a sphere in front of a plane ("occlusion").
    (With no guard band, the raster's frame is the image's.)"""
    verts, faces = spot.verts.double(), spot.faces
    if case == "occlusion":  # a sphere 0.6 in front of a plane that fills the view: an occlusion contour
        sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
        plane = trimesh.creation.box(extents=(4.0, 4.0, 0.01))
        plane.vertices[:, 2] -= 0.6
        verts = torch.as_tensor(np.concatenate([sphere.vertices, plane.vertices]), dtype=torch.float64)
        faces = torch.as_tensor(np.concatenate([sphere.faces, plane.faces + len(sphere.vertices)]))
    poses = [(0.3, 0.5, 0.1), (-0.5, 1.0, 0.2)] if case == "spot-batch" else [(0.3, 0.5, 0.1)]
    eye = torch.tensor([0.0, 0.0, 2.6], dtype=torch.float64)
    cam = glsplat.Camera.look_at(eye, fov_y=30.0, image_size=(size, size))
    turned = [verts @ axis_angle_to_matrix(torch.tensor(pose, dtype=torch.float64)).T for pose in poses]
    clip, faces = torch.cat([cam.project(v[None]) for v in turned]).cuda(), faces.cuda()
    rast = glsplat.rasterize(ctx, clip, faces, (size, size), layers=layers, border=border)
    return rast.framed(clip).detach(), faces, rast


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("case", ["spot", "occlusion", "spot-batch"])
def test_cuda_glue_matches_torch(ctx, spot, case, layers):
    """find_glue's CUDA kernel gives exactly find_glue_torch's samples, edges, parameters and rows (on
    the GPU), and the CPU kernel's on the same raster read back."""
    kernels = cuda_kernels()
    assert kernels is not None and hasattr(kernels, "find_glue")
    clip, faces, rast = _glue_raster(ctx, spot, case, layers)
    batch = rast.tri_id.shape[0]
    edges = contour_edges(clip, faces, batch)
    assert edges.is_cuda and torch.equal(edges, contour_edges_torch(clip, faces, batch))
    glue = find_glue(clip, faces, rast)
    reference = find_glue_torch(clip, edges, rast)
    assert glue.sample.is_cuda and len(glue.sample) > 50 * batch
    for name, a, b in zip(Glue._fields, glue, reference):
        assert torch.equal(a, b), name
    assert torch.equal(rast.index[glue.row], glue.sample)
    if layers > 1 and case != "occlusion":  # (behind the sphere, layer 1 is the plane: nothing glued there)
        height, width = rast.tri_id.shape[-2:]
        assert (glue.sample // (height * width) % layers > 0).any()  # glued samples in deeper layers too
    if cpu_kernels() is not None:
        cpu = Raster(rast.tri_id.cpu(), rast.bary.cpu(), rast.depth.cpu(), rast.border)
        for name, a, b in zip(Glue._fields, glue, find_glue(clip.cpu(), faces.cpu(), cpu)):
            assert torch.equal(a.cpu(), b), name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layers", [1, 3])
def test_cuda_splat_adds_the_glue_gradient(ctx, spot, dtype, layers):
    """The CUDA splat's backward pass adds the glue's part of the clip gradient: glue_offsets'
    autograd through the torch splat gives the same (Spot turned two ways, one clip per image)."""
    clip, faces, rast = _glue_raster(ctx, spot, "spot-batch", layers, border=0)
    clip = clip.to(dtype)
    glue = find_glue(clip, faces, rast)
    assert len(glue.sample) > 100
    generator = torch.Generator().manual_seed(layers)
    colors = torch.rand(rast.index.shape[0], 4, dtype=dtype, generator=generator).cuda()
    grad = torch.randn(2, 48, 48, 4, dtype=dtype, generator=generator).cuda()
    c = clip.clone().requires_grad_(True)
    image, _ = _splat(colors, c, rast, faces, with_buffers=False, rasterized=True)
    (compiled,) = torch.autograd.grad(image, c, grad)
    c2 = clip.clone().requires_grad_(True)
    offset = c2.new_zeros(rast.index.shape[0], 2).index_add(0, glue.row, glue_offsets(c2, faces, rast, glue))
    reference, _ = splat_layers_torch(glsplat.interpolate(c2, rast, faces), rast.scatter(colors), rast,
                                      rast.scatter(offset))
    (expected,) = torch.autograd.grad(reference, c2, grad)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert torch.allclose(compiled, expected, rtol=tol, atol=tol * float(expected.abs().max()))
