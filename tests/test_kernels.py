"""The compiled CPU kernels equal the pure-torch reference paths, values and gradients; their first
build says so on stderr and survives a killed earlier build."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import glsplat
from glsplat.interpolate import interpolate_torch
from glsplat.kernels import cpu_kernels
from glsplat.splat import _splat, splat_layers_torch
from test_gradcheck import random_scene


def test_kernels_are_built():
    """This machine has a compiler: the fast path must be what users get, not the fallback."""
    assert cpu_kernels() is not None


# A render, as a user's first call would make it, in a fresh process.
FIRST_RENDER = """
import torch, glsplat
cam = glsplat.Camera.look_at(eye=(0.0, 0.0, 3.0), image_size=(8, 8), near=1.0, far=5.0)
tri = torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]])
assert glsplat.render(glsplat.Context(), tri, cam, faces=torch.tensor([[0, 1, 2]]))[..., 3].sum() > 0
assert glsplat.kernels.cpu_kernels() is not None
print("ok")
"""


def test_first_build_says_so_and_a_killed_build_does_not_block_the_next(tmp_path):
    """The one test that builds the kernels from scratch (about a minute on 2 cores), in a scratch
    TORCH_EXTENSIONS_DIR: a first build killed while torch holds its lock file (its whole process
    group, as a closed terminal or a job scheduler does), then a render that must clear that lock
    and build (saying so) instead of waiting forever, then one that finds the build and says nothing."""
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    first = subprocess.Popen([sys.executable, "-c", FIRST_RENDER], env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*/lock")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert list(tmp_path.glob("*/lock")), "the killed build left no lock: nothing to test"

    second = subprocess.run([sys.executable, "-c", FIRST_RENDER], env=env, capture_output=True, text=True,
                            timeout=900)
    assert second.stdout.strip() == "ok", second.stderr[-3000:]
    assert "left by a kernel build that was killed" in second.stderr
    assert "glsplat: compiling the CPU kernels (first use" in second.stderr and str(tmp_path) in second.stderr
    assert "glsplat: CPU kernels built in" in second.stderr

    third = subprocess.run([sys.executable, "-c", FIRST_RENDER], env=env, capture_output=True, text=True,
                           timeout=300)
    assert third.stdout.strip() == "ok", third.stderr[-3000:]
    assert "glsplat" not in third.stderr


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
    # Translucent colors, so that every buffer shows through the composite.
    colors = torch.rand(*rast.shape, 4, dtype=dtype, requires_grad=True)
    point = glsplat.interpolate(clip, rast, faces)
    fast = _splat(colors, clip, rast, faces, with_buffers=output != "image", silhouette="splat")
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


@pytest.mark.parametrize("layers", [1, 3])
def test_packed_colors_splat_as_full_frames(ctx, layers):
    """Colors [N, 4] in rast.index's order give the image of the full frames, and their gradient at those samples."""
    clip, faces, rast = random_scene(ctx, size=(21, 26), faces_n=10, layers=layers)
    clip.requires_grad_()
    full = torch.rand(*rast.shape, 4, dtype=clip.dtype, requires_grad=True)
    packed = full.detach().reshape(-1, 4)[rast.index].requires_grad_()
    assert 0 < packed.shape[0] < rast.tri_id.numel()
    image = glsplat.splat(full, clip, rast, faces, silhouette="splat")
    image_packed = glsplat.splat(packed, clip, rast, faces, silhouette="splat")
    assert torch.equal(image, image_packed)
    grad = torch.randn_like(image)
    g_clip, g_full = torch.autograd.grad(image, (clip, full), grad)
    g_clip_packed, g_packed = torch.autograd.grad(image_packed, (clip, packed), grad)
    # The vertices' gradient is summed over threads in the order they finish: equal up to rounding.
    torch.testing.assert_close(g_clip, g_clip_packed)
    assert torch.equal(g_full.reshape(-1, 4)[rast.index], g_packed)
    assert not g_full[~rast.mask].any()  # background colors are ignored


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
    with pytest.raises(ValueError, match=r"colors: expected \[N, 4\] for the N = "):
        _splat(colors.reshape(-1, 4), clip, rast, faces, with_buffers=False)
    packed = colors.reshape(-1, 4)[rast.index]
    with pytest.raises(ValueError, match=r"offset: expected \[\d+, 2\] for the \d+ covered samples"):
        glsplat.splat(packed, clip, rast, faces, offset=torch.zeros(packed.shape[0] - 1, 2))
    with pytest.raises(ValueError, match="offset: expected shape"):
        glsplat.splat(packed, clip, rast, faces, offset=torch.zeros(packed.shape[0], 3))
    args = [clip.view(-1, *clip.shape[-2:]).contiguous(), faces.long(), rast.bary, packed, rast.tri_id, rast.depth, torch.empty(0), 1.0, 0.5, False]
    kernels = cpu_kernels()
    kernels.splat_forward(*args)
    with pytest.raises(RuntimeError, match="covered samples of the raster"):  # the kernel checks too
        kernels.splat_forward(*args[:3], packed[1:], *args[4:])
    with pytest.raises(RuntimeError, match="bary must be"):
        kernels.splat_forward(*args[:2], rast.bary[:, :1], *args[3:])
    with pytest.raises(RuntimeError, match="offset must be"):
        kernels.splat_forward(*args[:6], torch.zeros(packed.shape[0] - 1, 2), *args[7:])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("shift", [0.7, 3.0, 10.0, 60.0])
def test_offsets_far_from_the_pixel_match_torch(ctx, dtype, layers, shift):
    """Samples moved off their pixel's center by `shift` pixels: the taps fade to zero, never blow
    up; image and gradients (clip, colors, offsets) equal the torch reference's."""
    clip, faces, rast = random_scene(ctx, size=(21, 26), faces_n=10, layers=layers)
    clip = clip.to(dtype).requires_grad_()
    count = rast.index.shape[0]
    gen = torch.Generator().manual_seed(layers)
    offset = (shift * (torch.rand(count, 2, generator=gen, dtype=dtype) * 2 - 1)).requires_grad_()
    colors = torch.rand(count, 4, generator=gen, dtype=dtype, requires_grad=True)
    fast = glsplat.splat(colors, clip, rast, faces, offset=offset, silhouette="splat")
    slow, _ = splat_layers_torch(glsplat.interpolate(clip, rast, faces), rast.scatter(colors), rast,
                                 rast.scatter(offset))
    assert torch.isfinite(fast).all()
    assert (fast - slow).abs().max() < (1e-12 if dtype == torch.float64 else 1e-5)
    probe = torch.randn_like(fast)
    g_fast = torch.autograd.grad(fast, (clip, colors, offset), probe)
    g_slow = torch.autograd.grad(slow, (clip, colors, offset), probe)
    for a, b in zip(g_fast, g_slow):
        assert torch.isfinite(a).all()
        assert (a - b).abs().max() < (1e-10 if dtype == torch.float64 else 1e-3) * max(1.0, b.abs().max().item())
