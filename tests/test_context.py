"""The GL context keeps a bounded set of G-buffers and gives the same results after eviction; it
leaves the caller's own current OpenGL context (EGL or GLX) as it found it; releases, interrupts
and failed allocations leave it in a clear state."""
import subprocess
import sys
import textwrap
import threading
import time

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
    reference = glsplat.render(ctx, TRI, CAMERA, faces=FACES)
    yield "render"
    torch.testing.assert_close(glsplat.render(other, TRI, CAMERA, faces=FACES), reference)
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


def test_release_while_a_render_waits_raises_the_released_error():
    """A render waiting for the context while another thread releases it gets the documented
    RuntimeError, not a TypeError from a context that vanished between its check and the lock."""
    ctx = glsplat.Context()
    waiting, errors = threading.Event(), []

    def render():
        waiting.set()
        try:
            glsplat.render(ctx, TRI, CAMERA, faces=FACES)
        except Exception as error:  # checked below, in the test's thread
            errors.append(error)

    with ctx._lock:  # a call in progress in this thread
        thread = threading.Thread(target=render)
        thread.start()
        waiting.wait()
        time.sleep(0.3)  # the render is now blocked on the lock
        ctx.release()
    thread.join(timeout=60)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError), errors
    assert "this context was released" in str(errors[0])


def test_interrupt_while_the_vertex_buffer_grows_leaves_a_working_context(monkeypatch):
    """A KeyboardInterrupt while the vertex buffer is replaced by a larger one: the next call works."""
    ctx = glsplat.Context()
    many = torch.cat([TRI + torch.tensor([0.01 * i, 0.0, 0.0]) for i in range(50)])
    many_faces = torch.arange(150).reshape(50, 3)
    expected = glsplat.render(glsplat.Context(), many, CAMERA, faces=many_faces)
    glsplat.render(ctx, TRI, CAMERA, faces=FACES)  # a small vertex buffer
    buffer = ctx.gl.buffer

    def interrupted_once(*args, **kwargs):
        monkeypatch.setattr(ctx.gl, "buffer", buffer)
        raise KeyboardInterrupt

    monkeypatch.setattr(ctx.gl, "buffer", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        glsplat.render(ctx, many, CAMERA, faces=many_faces)
    torch.testing.assert_close(glsplat.render(ctx, many, CAMERA, faces=many_faces), expected)
    ctx.release()


def test_gbuffers_that_do_not_fit_name_size_and_memory_and_leak_nothing():
    """Under a memory limit, a G-buffer too large for it gives an error naming the size and memory
    (not 'framebuffer is not complete'), releases what it made, and smaller renders still work.
    In a subprocess: the limit (RLIMIT_AS) is for the whole process."""
    script = textwrap.dedent("""
        import gc, resource, sys
        import moderngl, pytest, torch
        import glsplat

        def live_gl_objects():
            return sum(isinstance(o, (moderngl.Texture, moderngl.TextureArray, moderngl.Framebuffer))
                       and type(o.mglo).__name__ != "InvalidObject" for o in gc.get_objects())

        ctx = glsplat.Context()
        clip = torch.tensor([[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]])
        faces = torch.tensor([[0, 1, 2]])
        glsplat.rasterize(ctx, clip, faces, (8, 8))
        before = live_gl_objects()
        vm = int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + 1536 * 2**20, resource.RLIM_INFINITY))
        for _ in range(3):  # 1.3 GB of G-buffers (and the 1 GB array they would be read into)
            with pytest.raises(RuntimeError, match=r"G-buffers for 1 view\\(s\\) of 8192 x 8192 pixels "
                                                   r"\\(1280 MiB .*Most likely out of memory"):
                glsplat.rasterize(ctx, clip, faces, (8192, 8192))
        assert live_gl_objects() == before
        assert glsplat.rasterize(ctx, clip, faces, (4096, 4096)).mask.any()
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().endswith("ok"), result.stderr[-3000:]
