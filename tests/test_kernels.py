"""The compiled CPU kernels equal the pure-torch reference paths, values and gradients."""
import pytest
import torch

import glsplat
from glsplat.interpolate import interpolate_torch
from glsplat.kernels import cpu_kernels
from glsplat.splat import _splat, splat_layers_torch, splat_points
from test_gradcheck import random_scene


def test_kernels_are_built():
    """This machine has a compiler: the fast path must be what users get, not the fallback."""
    assert cpu_kernels() is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("attr_batch", [1, 2])
def test_interpolate_kernel_matches_torch(ctx, dtype, layers, attr_batch):
    clip, faces, rast = random_scene(ctx, size=(21, 26), faces_n=10, layers=layers)
    attr = torch.rand(attr_batch, clip.shape[1], 3, dtype=dtype, requires_grad=True)
    fast, slow = glsplat.interpolate(attr, rast, faces), interpolate_torch(attr, rast, faces)
    grad_out = torch.randn_like(fast)
    (g_fast,) = torch.autograd.grad(fast, attr, grad_out)
    (g_slow,) = torch.autograd.grad(slow, attr, grad_out)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert (fast - slow).abs().max() < tol
    assert (g_fast - g_slow).abs().max() < tol * 10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("output", ["image", "buffers", "both"])
def test_splat_kernel_matches_torch(ctx, dtype, layers, output):
    clip, faces, rast = random_scene(ctx, size=(21, 26), faces_n=10, layers=layers)
    clip = clip.to(dtype).requires_grad_()
    # Translucent colours, so that every buffer shows through the composite.
    colors = torch.rand(*rast.shape, 4, dtype=dtype, requires_grad=True)
    point = glsplat.interpolate(clip, rast, faces)
    fast = _splat(colors, clip, rast, faces, with_buffers=output != "image")
    slow = splat_layers_torch(point, colors, rast)
    if output == "image":  # the buffers are not computed at all
        assert fast[1].numel() == 0
        fast, slow = fast[:1], slow[:1]
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for a, b in zip(fast, slow):
        assert (a - b).abs().max() < tol
    picked = {"image": [0], "buffers": [1], "both": [0, 1]}[output]
    grads_out = [torch.randn_like(fast[i]) for i in picked]
    g_fast = torch.autograd.grad([fast[i] for i in picked], (clip, colors), grads_out)
    g_slow = torch.autograd.grad([slow[i] for i in picked], (clip, colors), grads_out)
    for a, b in zip(g_fast, g_slow):
        assert (a - b).abs().max() < tol * 100 * max(1.0, b.abs().max().item())


def test_out_of_range_indices_are_refused_before_the_kernel(ctx):
    clip, faces, rast = random_scene(ctx, size=(9, 11), faces_n=6, layers=2)
    attr = torch.rand(clip.shape[1], 3)
    with pytest.raises(ValueError, match="faces"):
        glsplat.interpolate(attr, rast, faces + clip.shape[1])
    with pytest.raises(ValueError, match="faces"):
        glsplat.interpolate(attr, rast, -faces - 1)
    with pytest.raises(ValueError, match="faces"):
        glsplat.interpolate(attr, rast, faces[:1])  # the raster shows faces 1..5 too


def test_splat_kernel_refuses_mismatched_shapes(ctx):
    clip, faces, rast = random_scene(ctx, size=(9, 11), faces_n=6, layers=2)
    colors = torch.rand(*rast.shape, 4, dtype=clip.dtype)
    with pytest.raises(ValueError, match="colors: expected shape"):  # the public entry checks first
        _splat(colors[:, :1], clip, rast, faces, with_buffers=False)
    point = glsplat.interpolate(clip, rast, faces)
    with pytest.raises(RuntimeError, match="matching the raster"):  # and the kernel too
        splat_points(colors[:, :1], point, rast)
