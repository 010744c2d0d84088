"""Every GL object belongs to its Context: one owner, one release path.

The CUDA reader of ``glsplat.cuda_gl`` (a pixel buffer registered with CUDA) is a helper the
context owns: ``Context.release`` unregisters and frees it, with the context current. Without a
GPU, the CUDA runtime is a fake that records the calls glsplat makes (the GL side is real). After
release, every use of the context raises its documented error. Each pass sets all of its GL state.
"""

import moderngl
import pytest
import torch

import glsplat
import glsplat.cuda_gl
from glsplat.context import RELEASED, _egl

TRI = torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]])
FACES = torch.tensor([[0, 1, 2]])
CAMERA = glsplat.Camera.look_at(eye=(0.0, 0.0, 3.0), image_size=(8, 8), near=1.0, far=5.0)


class FakeCudart:
    """The CUDA runtime calls CudaReadback makes, recorded: which GL buffers are registered now."""

    def __init__(self, refuse: bool = False):
        self.refuse = refuse
        self.registered: dict[int, int] = {}  # resource handle -> GL buffer name
        self.unregistered: list[int] = []
        self.current_at_unregister: list[bool] = []
        self._next = 1
        self.cudaGetErrorString = lambda status: b"not supported by the fake"

    def cudaGraphicsGLRegisterBuffer(self, resource, buffer, flags):
        if self.refuse:
            return 801  # cudaErrorNotSupported
        resource._obj.value = self._next
        self.registered[self._next] = buffer.value
        self._next += 1
        return 0

    def cudaGraphicsUnregisterResource(self, resource):
        self.current_at_unregister.append(bool(_egl().eglGetCurrentContext()))
        self.unregistered.append(self.registered.pop(resource.value))
        return 0


@pytest.fixture
def buffers(monkeypatch):
    """Every GL buffer a context makes from now on (the moderngl objects, to see them freed)."""
    made = []
    make = moderngl.Context.buffer

    def recording(self, *args, **kwargs):
        made.append(make(self, *args, **kwargs))
        return made[-1]

    monkeypatch.setattr(moderngl.Context, "buffer", recording)
    return made


def freed(buffer) -> bool:
    return type(buffer.mglo).__name__ == "InvalidObject"


def test_the_cuda_reader_is_the_contexts_and_release_unregisters_and_frees_it(monkeypatch, buffers):
    cudart = FakeCudart()
    monkeypatch.setattr(glsplat.cuda_gl, "_load_cudart", lambda: cudart)
    ctx = glsplat.Context()
    reader = glsplat.cuda_gl.cuda_readback(ctx)
    assert reader is not None and glsplat.cuda_gl.cuda_readback(ctx) is reader  # made once
    assert ctx._helpers == {"cuda_readback": reader}
    assert list(cudart.registered.values()) == [buffers[0].glo]
    with ctx.current():  # a larger copy: the old buffer is unregistered and freed, a new one registered
        reader._reserve(1 << 16)
    assert cudart.unregistered == [buffers[0].glo] and freed(buffers[0])
    assert list(cudart.registered.values()) == [buffers[1].glo] and not freed(buffers[1])
    ctx.release()
    assert cudart.registered == {} and all(freed(b) for b in buffers) and len(buffers) == 2
    assert cudart.current_at_unregister == [True, True]  # CUDA let go of the buffers while GL could still free them
    assert ctx._helpers == {} and reader._pbo is None
    ctx.release()  # again: nothing left to do
    assert len(cudart.unregistered) == 2


def test_a_context_cuda_cannot_share_warns_once_and_keeps_no_buffer(monkeypatch, buffers):
    monkeypatch.setattr(glsplat.cuda_gl, "_load_cudart", lambda: FakeCudart(refuse=True))
    with glsplat.Context() as ctx:
        with pytest.warns(RuntimeWarning, match="interop is unavailable.*not supported by the fake"):
            assert glsplat.cuda_gl.cuda_readback(ctx) is None
        assert len(buffers) == 1 and freed(buffers[0])  # the buffer CUDA refused is not left behind
        assert glsplat.cuda_gl.cuda_readback(ctx) is None  # remembered: no second try, no second warning
        assert len(buffers) == 1


class Helper:
    """A helper holding a GL buffer of its context, as the CUDA reader does."""

    def __init__(self, gl, log, fail=False):
        self.buffer, self.log, self.fail = gl.buffer(reserve=16), log, fail

    def close(self):
        self.log.append((self, bool(_egl().eglGetCurrentContext())))
        self.buffer.release()
        if self.fail:
            raise RuntimeError("closing failed")


def test_release_closes_every_helper_newest_first_with_the_context_current():
    log, made = [], []
    ctx = glsplat.Context()
    with ctx.current():
        first = ctx._helper("first", lambda gl: Helper(gl, log, fail=True))
        second = ctx._helper("second", lambda gl: Helper(gl, log))
        assert ctx._helper("none", lambda gl: made.append(gl)) is None
        assert ctx._helper("none", lambda gl: made.append(gl)) is None and len(made) == 1  # None is remembered
        assert ctx._helper("first", lambda gl: Helper(gl, log)) is first
    with pytest.raises(RuntimeError, match="closing failed"):  # the first helper's error, after all were closed
        ctx.release()
    assert log == [(second, True), (first, True)]
    assert freed(first.buffer) and freed(second.buffer)
    assert ctx.gl is None and ctx._helpers == {}  # released all the same
    with pytest.raises(RuntimeError, match=RELEASED):
        with ctx.current():
            pass


def test_after_release_every_use_raises_the_documented_error():
    ctx = glsplat.Context()
    glsplat.render(ctx, TRI, CAMERA, faces=FACES)
    ctx.release()
    uses = {
        "current": lambda: ctx.current().__enter__(),
        "rasterize": lambda: glsplat.rasterize(ctx, CAMERA.project(TRI), FACES, (8, 8)),
        "render": lambda: glsplat.render(ctx, TRI, CAMERA, faces=FACES),
        "hard render": lambda: glsplat.render(ctx, TRI, CAMERA, faces=FACES, hard=True),
        # The CUDA path's first step; once the released context's error became an interop warning.
        "cuda_readback": lambda: glsplat.cuda_gl.cuda_readback(ctx),
    }
    for name, use in uses.items():
        with pytest.raises(RuntimeError, match=RELEASED):
            use()
        assert name


def test_each_pass_sets_all_of_its_gl_state(ctx):
    """State left in the context (blending on, depth test off, as a user of ``ctx.gl`` might) does
    not reach the G-buffers: two faces, ids 1 and 2, come out as without it."""
    clip = torch.tensor([[-0.9, -0.5, 0.5, 1.0], [-0.1, -0.5, 0.5, 1.0], [-0.5, 0.5, 0.5, 1.0],
                         [0.1, -0.5, 0.0, 1.0], [0.9, -0.5, 0.0, 1.0], [0.5, 0.5, 0.0, 1.0]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    before = glsplat.rasterize(ctx, clip, faces, (16, 16), layers=2, cull_backfaces=False)
    assert set(before.tri_id.unique().tolist()) == {0, 1, 2}
    with ctx.current() as gl:
        gl.enable_only(moderngl.BLEND | moderngl.CULL_FACE)
        gl.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        gl.cull_face = "front_and_back"
    after = glsplat.rasterize(ctx, clip, faces, (16, 16), layers=2, cull_backfaces=False)
    for field in ("tri_id", "bary", "depth"):
        assert torch.equal(getattr(after, field), getattr(before, field)), field


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_real_cuda_reader_goes_with_its_context(spot):
    """On a GPU machine: the reader a CUDA render made is the context's, and release frees it;
    a new context then reads the same G-buffers."""
    ctx = glsplat.Context()
    if "NVIDIA" not in ctx.renderer:
        ctx.release()
        pytest.skip(f"CUDA-GL interop needs the GL context on the GPU, not {ctx.renderer}")
    clip = CAMERA.project(spot.verts[None]).cuda()
    first = glsplat.rasterize(ctx, clip, spot.faces.cuda(), (32, 32), layers=2)
    reader = ctx._helpers["cuda_readback"]
    assert reader is not None and reader._pbo is not None and first.tri_id.is_cuda
    ctx.release()
    assert reader._pbo is None and ctx._helpers == {}
    with glsplat.Context() as again:
        second = glsplat.rasterize(again, clip, spot.faces.cuda(), (32, 32), layers=2)
    assert torch.equal(first.tri_id, second.tri_id) and torch.equal(first.bary, second.bary)
