"""The OpenGL side of glsplat: a headless EGL context and the G-buffer passes.

This module is the only one that talks to OpenGL. It takes clip-space triangle corners as a
numpy array and returns G-buffers as a numpy array; everything differentiable lives in torch
modules elsewhere.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections import OrderedDict
from pathlib import Path

import moderngl
import numpy as np

MISSING_EGL = (
    "glsplat could not create a headless OpenGL 3.3+ context through EGL ({error}). "
    "On Debian/Ubuntu install the EGL loader and Mesa's drivers: "
    "`apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri` "
    "(on NVIDIA machines the driver's libEGL_nvidia provides EGL instead of Mesa)."
)

# G-buffer sizes kept allocated at once (e.g. a render and its supersampled reference).
CACHED_SIZES = 4

# Face ids travel through the G-buffer as float32, which holds integers exactly up to 2**24.
MAX_FACES = 2**24 - 1


FORKED = (
    "glsplat.Context: {what} in process {pid}, forked from process {parent} after that one had created an "
    "OpenGL context. EGL driver state does not survive fork() (Mesa's llvmpipe hangs; other drivers may crash). "
    "Start worker processes with 'spawn' or 'forkserver' instead, e.g. "
    "torch.utils.data.DataLoader(..., multiprocessing_context='spawn'): a Context pickles as its settings "
    "and is re-created in each worker. Or create contexts only in the workers, never before forking."
)

# The process that first created an EGL context. A fork of it inherits that driver state (and can use
# neither the inherited contexts nor new ones), so contexts there are refused instead of hanging.
_EGL_PID: int | None = None


def _exclusive(method):
    """Run a GL method with the context current on the calling thread, one thread at a time."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self.current():
            return method(self, *args, **kwargs)
    return locked


def _shader_dir() -> Path:
    """GLSL sources: inside the installed wheel, or the repository's shaders/ in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "glsl", here.parent / "shaders"):
        if (candidate / "gbuffer.vert").is_file():
            return candidate
    raise FileNotFoundError(f"glsplat's GLSL shaders are missing (looked in {here / 'glsl'} and {here.parent / 'shaders'})")


class Context:
    """A headless OpenGL context (EGL) that rasterizes G-buffers.

    Args:
        device: EGL device index (``None`` = the default display). With several GPUs, EGL
            enumerates devices in the driver's order, which need not match CUDA's; on Mesa
            without a GPU there is one software device (llvmpipe).

    One context per process is the intended use. Any thread may use it: each call makes it current
    on the calling thread under a lock, so calls from several threads are serialised. A context
    cannot cross ``fork()``: using one in a forked child raises ``RuntimeError`` (see
    :meth:`current`); it pickles as its settings, so ``spawn`` workers re-create it.
    """

    def __init__(self, device: int | None = None):
        global _EGL_PID
        if device is not None and (isinstance(device, bool) or not isinstance(device, int) or device < 0):
            raise ValueError(f"device: expected None or an EGL device index >= 0, got {device!r}")
        if _EGL_PID not in (None, os.getpid()):
            raise RuntimeError(FORKED.format(what="cannot create a context", pid=os.getpid(), parent=_EGL_PID))
        kwargs = {} if device is None else {"device_index": device}
        try:
            self.gl = moderngl.create_standalone_context(backend="egl", require=330, **kwargs)
        except Exception as error:  # glcontext raises bare Exceptions for every EGL failure
            raise RuntimeError(MISSING_EGL.format(error=error)) from error
        _EGL_PID = _EGL_PID or os.getpid()
        self.device = device
        self._pid = os.getpid()
        self._lock = threading.RLock()
        shaders = _shader_dir()
        self._program = self.gl.program(
            vertex_shader=(shaders / "gbuffer.vert").read_text(),
            fragment_shader=(shaders / "gbuffer.frag").read_text(),
        )
        self._program["prev_layer"].value = 0
        self._vertices = self._vao = None
        self._targets: OrderedDict[tuple[int, int], tuple] = OrderedDict()
        self.max_size = min(self.gl.info["GL_MAX_TEXTURE_SIZE"], *self.gl.info["GL_MAX_VIEWPORT_DIMS"])
        self._renderer = self.gl.info["GL_RENDERER"]
        # Creation left the context current on this thread; unbind it so that any thread can take it.
        self.gl.__exit__(None, None, None)

    @property
    def renderer(self) -> str:
        """The OpenGL renderer string, e.g. ``llvmpipe (LLVM 15.0.6, 256 bits)``."""
        return self._renderer

    @contextlib.contextmanager
    def current(self):
        """Hold the context, current on the calling thread, for direct use of ``self.gl``.

        Raises ``RuntimeError`` in a forked child process (the driver state did not survive the
        fork, and GL calls would hang); threads wait for each other.
        """
        if os.getpid() != self._pid:
            raise RuntimeError(FORKED.format(what="this context cannot be used", pid=os.getpid(), parent=self._pid))
        if self.gl is None:
            raise RuntimeError("glsplat.Context: this context was released; create a new one")
        with self._lock, self.gl:
            yield self.gl

    def release(self) -> None:
        """Destroy the EGL context and with it every GL object it holds. Also done on garbage collection.

        A released context cannot be used again. Does nothing in a forked child, which does not
        own the driver state it inherited.
        """
        gl = getattr(self, "gl", None)
        if gl is not None and getattr(self, "_pid", None) == os.getpid():
            with self._lock:
                gl.release()
                self.gl = None

    __del__ = release

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __reduce__(self):
        # GL objects cannot be pickled; a copy in another process (a spawned worker) is a new context.
        return Context, (self.device,)

    def _framebuffers(self, height: int, width: int):
        """Two ping-pong G-buffer targets sharing one depth buffer, for the last few sizes used."""
        key = (height, width)
        if key in self._targets:
            self._targets.move_to_end(key)
        else:
            if len(self._targets) == CACHED_SIZES:
                _, (old_textures, old_fbos, old_depth) = self._targets.popitem(last=False)
                for obj in (*old_fbos, *old_textures, old_depth):
                    obj.release()
            depth = self.gl.depth_renderbuffer((width, height))
            textures = [self.gl.texture((width, height), 4, dtype="f4") for _ in range(2)]
            fbos = [self.gl.framebuffer([texture], depth) for texture in textures]
            self._targets[key] = (textures, fbos, depth)
        return self._targets[key][:2]

    def _reserve_vertices(self, nbytes: int) -> None:
        if self._vertices is None or self._vertices.size < nbytes:
            if self._vertices is not None:
                self._vao.release()
                self._vertices.release()
            self._vertices = self.gl.buffer(reserve=nbytes)
            self._vao = self.gl.vertex_array(self._program, [(self._vertices, "4f", "in_clip")])

    @_exclusive
    def draw_gbuffers(self, corners: np.ndarray, height: int, width: int, layers: int,
                      cull_backfaces: bool, out: np.ndarray) -> np.ndarray:
        """Rasterize ``corners`` into ``out``.

        Args:
            corners: float32 ``[B, F * 3, 4]``, the clip-space corners of each face in order.
            out: float32 ``[B, layers, height, width, 4]``, C-contiguous; receives
                (b0, b1, window depth, face index + 1) per pixel, row 0 at the top.
        """
        batch, count, _ = corners.shape
        if count:
            self._reserve_vertices(corners.nbytes)
            self._vertices.write(np.ascontiguousarray(corners, dtype=np.float32))
        textures, fbos = self._framebuffers(height, width)
        gl = self.gl
        gl.enable(moderngl.DEPTH_TEST)
        gl.depth_func = "<"
        if cull_backfaces:
            gl.enable(moderngl.CULL_FACE)
            gl.front_face = "cw"  # counter-clockwise in clip space; see gbuffer.vert
            gl.cull_face = "back"
        else:
            gl.disable(moderngl.CULL_FACE)
        for b in range(batch):
            for layer in range(layers):
                fbo = fbos[layer % 2]
                fbo.use()
                fbo.clear(0.0, 0.0, 1.0, 0.0, depth=1.0)
                self._program["peel"].value = layer > 0
                if layer > 0:
                    textures[(layer - 1) % 2].use(location=0)
                if count:
                    self._vao.render(moderngl.TRIANGLES, vertices=count, first=b * count)
                textures[layer % 2].read_into(out[b, layer])
        return out
