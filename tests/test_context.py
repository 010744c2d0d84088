"""The GL context keeps a bounded set of G-buffers and gives the same results after eviction; it
leaves the caller's own current OpenGL context (EGL or GLX) as it found it."""
import moderngl
import pytest
import torch

import glsplat
from glsplat.context import CACHED_SIZES
from glsplat.viewer.virtual_display import virtual_display, xvfb_path


def test_framebuffer_cache_is_bounded(ctx):
    clip = torch.tensor([[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]])
    faces = torch.tensor([[0, 1, 2]])
    sizes = [(8, 8), (16, 12), (9, 31), (40, 40), (7, 5), (33, 6)]
    first = {size: glsplat.rasterize(ctx, clip, faces, size, layers=2) for size in sizes}
    assert len(ctx._targets) <= CACHED_SIZES
    for size in sizes:  # the early sizes were evicted and are made again
        again = glsplat.rasterize(ctx, clip, faces, size, layers=2)
        assert torch.equal(again.tri_id, first[size].tri_id)
        assert torch.equal(again.bary, first[size].bary)
        assert again.mask[:, 0].any()


def test_cache_keys_on_views_per_pass(ctx, monkeypatch):
    """Batches of different sizes need target arrays of different depths; the cache stays
    bounded and a batch rendered after its arrays were evicted comes out the same."""
    clip = torch.tensor([[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]])
    shifts = torch.linspace(-0.4, 0.4, 6)[:, None, None] * torch.tensor([1.0, 0.0, 0.0, 0.0])
    faces = torch.tensor([[0, 1, 2]])
    monkeypatch.setattr(ctx, "max_views", 8)
    first = {b: glsplat.rasterize(ctx, clip + shifts[:b], faces, (10, 14), layers=2) for b in range(1, 7)}
    assert len(ctx._targets) <= CACHED_SIZES < 6
    for b, rast in first.items():
        again = glsplat.rasterize(ctx, clip + shifts[:b], faces, (10, 14), layers=2)
        assert torch.equal(again.tri_id, rast.tri_id) and torch.equal(again.bary, rast.bary)
        assert not torch.equal(rast.tri_id[0], rast.tri_id[-1]) or b == 1


TRI = torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]])
FACES = torch.tensor([[0, 1, 2]])
CAMERA = glsplat.Camera.look_at(eye=(0.0, 0.0, 3.0), image_size=(8, 8), near=1.0, far=5.0)


def draws_red(gl: moderngl.Context) -> bool:
    """The caller's own GL work between glsplat calls: clear a framebuffer of its own and read it."""
    fbo = gl.simple_framebuffer((2, 2))
    fbo.use()
    fbo.clear(1.0, 0.0, 0.0, 1.0)
    red = fbo.read(components=3) == b"\xff\x00\x00" * 4
    fbo.release()
    return red


def glsplat_calls(ctx):
    """Each way a caller enters glsplat's GL: creation, renders, direct use, errors, release."""
    other = glsplat.Context()
    yield "Context()"
    reference = glsplat.render(ctx, TRI, FACES, CAMERA)
    yield "render"
    torch.testing.assert_close(glsplat.render(other, TRI, FACES, CAMERA), reference)
    yield "render with another context"
    with other.current():
        pass
    yield "ctx.current()"
    with pytest.raises(KeyError), other.current():
        raise KeyError("an error inside a glsplat GL section")
    yield "an error in ctx.current()"
    other.release()
    yield "release"


def test_callers_egl_context_stays_current(ctx):
    """A moderngl standalone (EGL) context the caller made current is still current after each call."""
    mine = moderngl.create_context(standalone=True, backend="egl")
    try:
        with mine:
            assert draws_red(mine)
            for call in glsplat_calls(ctx):
                assert draws_red(mine), f"the caller's context is no longer current after {call}"
    finally:
        mine.release()


@pytest.mark.skipif(xvfb_path() is None, reason="Xvfb is not installed (make setup installs it: apt-get install xvfb)")
def test_callers_glfw_window_context_stays_current(ctx):
    """The context of a glfw window (GLX under X) is still current after each call, and glsplat's
    own calls do not reach it (glvnd will not make an EGL context current while a GLX one is)."""
    glfw = pytest.importorskip("glfw")
    with virtual_display():
        assert glfw.init()
        try:
            glfw.window_hint(glfw.VISIBLE, False)
            glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
            glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
            glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
            window = glfw.create_window(16, 16, "caller", None, None)
            glfw.make_context_current(window)
            mine = moderngl.create_context()
            assert draws_red(mine)
            for call in glsplat_calls(ctx):
                assert glfw.get_current_context() is not None and draws_red(mine), \
                    f"the window's context is no longer current after {call}"
            glfw.make_context_current(None)
            mine.release()
            glfw.destroy_window(window)
        finally:
            glfw.terminate()
