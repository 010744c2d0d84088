"""The OpenGL side of glsplat: a headless EGL context and the G-buffer passes.

This module is the only one that talks to OpenGL. It takes clip-space triangle corners as a
numpy array and returns G-buffers as a numpy array; everything differentiable lives in torch
modules elsewhere.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import math
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

# The bytes a pixel of a pass's targets costs: a 24-bit depth array, and a float32 RGBA array per
# target (two when peeling).
DEPTH_BYTES_PER_PIXEL, TARGET_BYTES_PER_PIXEL = 4, 16

# Pixels one pass may rasterize (views x H x W). The targets of a pass stay cached, so this bounds
# them to ~150 MB a size; batching more views than that saves nothing measurable.
PASS_PIXELS = 2**22

# Enums for the few calls moderngl has no wrapper for (it makes no depth texture arrays).
_GL_TEXTURE_2D_ARRAY = 0x8C1A
_GL_DEPTH_COMPONENT24, _GL_DEPTH_COMPONENT, _GL_FLOAT = 0x81A6, 0x1902, 0x1406
_GL_FRAMEBUFFER, _GL_DEPTH_ATTACHMENT = 0x8D40, 0x8D00
_GL_TEXTURE_MIN_FILTER, _GL_TEXTURE_MAG_FILTER, _GL_NEAREST = 0x2801, 0x2800, 0x2600


FORKED = (
    "glsplat.Context: {what} in process {pid}, forked from process {parent} after that one had created an "
    "OpenGL context. EGL driver state does not survive fork() (Mesa's llvmpipe hangs; other drivers may crash). "
    "Start worker processes with 'spawn' or 'forkserver' instead (with torch, forked processes are fragile "
    "anyway: they hang in torch's own ops once the parent has used its intra-op threads), e.g. "
    "torch.utils.data.DataLoader(..., multiprocessing_context='spawn'): a Context pickles as its settings "
    "and is re-created in each worker. Or create contexts only in the workers, never before forking."
)

RELEASED = "glsplat.Context: this context was released; create a new one"

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
    on the calling thread under a lock, so calls from several threads are serialized. A context
    cannot cross ``fork()``: using one in a forked child raises ``RuntimeError`` (see
    :meth:`current`); it pickles as its settings, so ``spawn`` workers re-create it.
    """

    def __init__(self, device: int | None = None):
        if device is not None and (isinstance(device, bool) or not isinstance(device, int) or device < 0):
            raise ValueError(f"device: expected None or an EGL device index >= 0, got {device!r}")
        if _EGL_PID not in (None, os.getpid()):
            raise RuntimeError(FORKED.format(what="cannot create a context", pid=os.getpid(), parent=_EGL_PID))
        kwargs = {} if device is None else {"device_index": device}
        self.gl = None
        # Objects that hold GL objects of this context for another API (the CUDA reader of
        # glsplat.cuda_gl), by name; see _helper. release() closes them: one owner, one release path.
        self._helpers: dict[str, object] = {}
        with _callers_context_kept():
            self._create(device, kwargs)

    def _create(self, device: int | None, kwargs: dict) -> None:
        """The rest of ``__init__``: creation makes the new context current, so it runs inside
        ``_callers_context_kept``."""
        global _EGL_PID
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
        self._targets: OrderedDict[tuple[int, int, int], tuple] = OrderedDict()
        self._raw = _RawGL()
        self.max_size = min(self.gl.info["GL_MAX_TEXTURE_SIZE"], *self.gl.info["GL_MAX_VIEWPORT_DIMS"])
        # Views one draw may rasterize, one per layer of the targets (see gbuffer.vert).
        layered = {"GL_ARB_shader_viewport_layer_array", "GL_AMD_vertex_shader_layer"} & self.gl.extensions
        self.max_views = self.gl.info["GL_MAX_ARRAY_TEXTURE_LAYERS"] if layered else 1
        self._renderer = self.gl.info["GL_RENDERER"]
        # Creation left the context current on this thread; _callers_context_kept unbinds it (and
        # makes current again what the caller had), so that any thread can take it.

    @property
    def renderer(self) -> str:
        """The OpenGL renderer string, e.g. ``llvmpipe (LLVM 15.0.6, 256 bits)``."""
        return self._renderer

    @contextlib.contextmanager
    def current(self):
        """Hold the context, current on the calling thread, for direct use of ``self.gl``.

        Raises ``RuntimeError`` in a forked child process (the driver state did not survive the
        fork, and GL calls would hang) and once the context was released (also when that happened
        while this thread waited for another's call); threads wait for each other. On exit, the
        OpenGL context that was current on the calling thread before (the caller's own, EGL or
        GLX) is current again, also on errors.
        """
        if os.getpid() != self._pid:
            raise RuntimeError(FORKED.format(what="this context cannot be used", pid=os.getpid(), parent=self._pid))
        with self._lock:
            if self.gl is None:  # checked under the lock: release() may have run while this thread waited
                raise RuntimeError(RELEASED)
            with _callers_context_kept(), self.gl:
                if not _egl().eglGetCurrentContext():
                    raise RuntimeError("glsplat.Context: EGL could not make this context current on this thread "
                                       "(another OpenGL API's context is current here?)")
                yield self.gl

    def release(self) -> None:
        """Destroy the EGL context and with it every GL object it holds. Also done on garbage collection.

        First the helpers that share its GL objects with other APIs are closed, with the context
        current (the CUDA reader unregisters its buffer from CUDA and frees it). A released context
        cannot be used again: every use raises ``RuntimeError`` (see :meth:`current`). Does nothing
        in a forked child, which does not own the driver state it inherited.
        """
        if getattr(self, "gl", None) is not None and getattr(self, "_pid", None) == os.getpid():
            with self._lock, _callers_context_kept():
                if self.gl is not None:
                    try:
                        self._close_helpers()
                    finally:
                        self.gl.release()
                        self.gl = None

    def _close_helpers(self) -> None:
        """Close every helper (newest first), with the context current; all are closed and
        forgotten even if one raises."""
        helpers = [helper for helper in self._helpers.values() if helper is not None]
        self._helpers.clear()
        if helpers:
            with self.gl, contextlib.ExitStack() as stack:
                for helper in helpers:  # an ExitStack closes last-in first, also past errors
                    stack.callback(helper.close)

    def _helper(self, name: str, make):
        """The helper ``name`` of this context, made by ``make(gl)`` on first use; call inside :meth:`current`.

        A helper holds GL objects of this context for another API (:mod:`glsplat.cuda_gl`'s
        reader: a pixel buffer registered with CUDA). The context owns it: :meth:`release` calls
        its ``close()`` (with the context current) before destroying the GL context. ``make`` may
        return ``None`` (the helper cannot work with this context), which is remembered too.
        """
        if name not in self._helpers:
            self._helpers[name] = make(self.gl)
        return self._helpers[name]

    __del__ = release

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __reduce__(self):
        # GL objects cannot be pickled; a copy in another process (a spawned worker) is a new context.
        return Context, (self.device,)

    def _framebuffers(self, views: int, height: int, width: int, count: int):
        """``count`` (1 or 2: ping-pong, for peeling) G-buffer target arrays of ``views`` layers
        sharing one depth array, for the last few shapes used. A shape's second target is made
        only when a render peels (one float RGBA target is 16 bytes a pixel)."""
        key = (views, height, width)
        if key in self._targets:
            self._targets.move_to_end(key)
        else:
            if len(self._targets) == CACHED_SIZES:
                _, (old_textures, old_fbos, old_depth) = self._targets.popitem(last=False)
                for obj in (*old_fbos, *old_textures):
                    obj.release()
                self._raw.delete_texture(old_depth)
            self._targets[key] = ([], [], self._raw.depth_array(width, height, views))
        textures, fbos, depth = self._targets[key]
        while len(textures) < count:
            texture = fbo = None
            try:
                texture = self.gl.texture_array((width, height, views), 4, dtype="f4")
                fbo = self.gl.framebuffer([texture])
                fbo.use()
                self._raw.attach_depth(depth)
                fbo.depth_mask = True  # moderngl turns depth writes off for a target it made without depth
            except BaseException as error:  # release what was made (also on KeyboardInterrupt)
                for obj in (fbo, texture):
                    if obj is not None:
                        obj.release()
                if not textures:  # nothing usable of this shape: its depth array goes too
                    del self._targets[key]
                    self._raw.delete_texture(depth)
                self._allocation_failed(error, views, height, width, count)
            textures.append(texture)
            fbos.append(fbo)
        return textures, fbos

    @staticmethod
    def _allocation_failed(error: BaseException, views: int, height: int, width: int, count: int):
        """Re-raise ``error``; GL's own (an incomplete framebuffer) as a ``RuntimeError`` saying why."""
        if not isinstance(error, moderngl.Error):
            raise error
        raise RuntimeError(
            f"glsplat.Context: could not allocate the G-buffers for {views} view(s) of {height} x {width} "
            f"pixels ({(DEPTH_BYTES_PER_PIXEL + count * TARGET_BYTES_PER_PIXEL) * views * height * width / 2**20:.0f} "
            f"MiB of OpenGL memory): "
            f"{error}. Most likely out of memory (GPU memory, or host memory and its limits for "
            "llvmpipe): render smaller images or fewer views per call") from error

    def _reserve_vertices(self, nbytes: int) -> None:
        """Grow the vertex buffer to at least ``nbytes``. The new buffer and its vertex array are
        made before the old ones are swapped out and released, so an interruption anywhere (a
        KeyboardInterrupt) leaves a working pair for the next call."""
        if self._vertices is None or self._vertices.size < nbytes:
            vertices = self.gl.buffer(reserve=nbytes)
            try:
                vao = self.gl.vertex_array(self._program, [(vertices, "4f", "in_clip")])
            except BaseException:
                vertices.release()
                raise
            old = (self._vao, self._vertices)
            self._vertices, self._vao = vertices, vao
            for obj in old:
                if obj is not None:
                    obj.release()

    def _pass_views(self, batch: int, height: int, width: int) -> int:
        """Views per draw for a batch: as even as the limits allow, so the last pass is not a sliver."""
        limit = max(1, min(self.max_views, PASS_PIXELS // (height * width)))
        passes = math.ceil(batch / limit)
        return math.ceil(batch / passes)

    @_exclusive
    def _draw_gbuffers(self, corners: np.ndarray, height: int, width: int, layers: int,
                       cull_backfaces: bool, read=None) -> np.ndarray | None:
        """Rasterize ``corners``, a chunk of :meth:`_pass_views` views per draw and per layer.

        Args:
            corners: float32 ``[B, F * 3, 4]``, the clip-space corners of each face in order.
            read: ``read(texture, layer, first)`` takes a pass's target array (its
                :meth:`_pass_views` layers, each float32 ``[height, width, 4]``) of depth layer
                ``layer`` for the views from ``first`` on; ``None`` reads into host memory.

        Returns:
            Without ``read``, float32 ``[layers, P, height, width, 4]``, P >= B a whole number of
            passes (views B.. are padding): (b0, b1, window depth, face index + 1) per pixel, row
            0 at the top. Layer-major, so that each pass reads a layer's views back in one piece.
        """
        batch, count, _ = corners.shape
        views = self._pass_views(batch, height, width)
        out = None
        if read is None:
            out = np.empty((layers, math.ceil(batch / views) * views, height, width, 4), dtype=np.float32)

            def read(texture, layer, first):
                texture.read_into(out[layer, first:first + views])
        if count:
            self._reserve_vertices(corners.nbytes)
            self._vertices.write(np.ascontiguousarray(corners, dtype=np.float32))
        self._program["vertices_per_view"].value = count
        textures, fbos = self._framebuffers(views, height, width, min(layers, 2))
        # All of this pass's GL state, set here: whatever was left on (blending, a caller's own
        # use of ``ctx.gl``) goes off.
        gl = self.gl
        gl.enable_only(moderngl.DEPTH_TEST | (moderngl.CULL_FACE if cull_backfaces else moderngl.NOTHING))
        gl.depth_func = "<"
        gl.front_face = "cw"  # counter-clockwise in clip space; see gbuffer.vert
        gl.cull_face = "back"
        for first in range(0, batch, views):
            drawn = min(views, batch - first)
            self._program["first_view"].value = first
            for layer in range(layers):
                fbo = fbos[layer % 2]
                fbo.use()
                fbo.clear(0.0, 0.0, 1.0, 0.0, depth=1.0)
                self._program["peel"].value = layer > 0
                if layer > 0:
                    textures[(layer - 1) % 2].use(location=0)
                if count:
                    self._vao.render(moderngl.TRIANGLES, vertices=drawn * count, first=first * count)
                read(textures[layer % 2], layer, first)
        return out


# EGL and GLX enums for saving the calling thread's current context.
_EGL_DRAW, _EGL_READ = 0x3059, 0x305A


@functools.cache
def _egl() -> ctypes.CDLL:
    """libEGL with the signatures of the calls that query and set the current context."""
    egl = ctypes.CDLL("libEGL.so.1")
    p = ctypes.c_void_p
    for name, restype, argtypes in [
        ("eglGetCurrentDisplay", p, []), ("eglGetCurrentSurface", p, [ctypes.c_int32]),
        ("eglGetCurrentContext", p, []), ("eglMakeCurrent", ctypes.c_uint, [p, p, p, p]),
        ("eglQueryAPI", ctypes.c_uint, []), ("eglBindAPI", ctypes.c_uint, [ctypes.c_uint]),
    ]:
        getattr(egl, name).restype, getattr(egl, name).argtypes = restype, argtypes
    return egl


_GLX: ctypes.CDLL | None = None


def _glx() -> ctypes.CDLL | None:
    """glvnd's libGLX if the process has loaded it (a GLX context can be current only then), else None."""
    global _GLX
    if _GLX is None:
        for library in ("libGLX.so.0", "libGL.so.1"):
            try:
                glx = ctypes.CDLL(library, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
            except OSError:
                continue
            p = ctypes.c_void_p
            for name, restype, argtypes in [
                ("glXGetCurrentDisplay", p, []), ("glXGetCurrentDrawable", ctypes.c_ulong, []),
                ("glXGetCurrentReadDrawable", ctypes.c_ulong, []), ("glXGetCurrentContext", p, []),
                ("glXMakeContextCurrent", ctypes.c_int, [p, ctypes.c_ulong, ctypes.c_ulong, p]),
            ]:
                getattr(glx, name).restype, getattr(glx, name).argtypes = restype, argtypes
            _GLX = glx
            break
    return _GLX


@contextlib.contextmanager
def _callers_context_kept():
    """Leave the calling thread's current OpenGL context as it was around a glsplat GL section.

    EGL: the bound API and the current display, surfaces and context are saved, and made current
    again on exit (or none, if none was), also on errors. GLX (a glfw or Qt window under X uses it):
    glvnd silently refuses to make an EGL context current while a GLX one is (GL calls would reach
    the caller's context), so a current GLX context is released for the section and made current
    again after it.
    """
    egl, glx = _egl(), _glx()
    api = egl.eglQueryAPI()
    saved = (egl.eglGetCurrentDisplay(), egl.eglGetCurrentSurface(_EGL_DRAW), egl.eglGetCurrentSurface(_EGL_READ),
             egl.eglGetCurrentContext())
    saved_glx = None
    if glx is not None and glx.glXGetCurrentContext():
        saved_glx = (glx.glXGetCurrentDisplay(), glx.glXGetCurrentDrawable(), glx.glXGetCurrentReadDrawable(),
                     glx.glXGetCurrentContext())
        glx.glXMakeContextCurrent(saved_glx[0], 0, 0, None)
    try:
        yield
    finally:
        egl.eglBindAPI(api)
        if egl.eglGetCurrentContext() != saved[3]:
            if saved[3]:
                egl.eglMakeCurrent(*saved)
            else:  # release what the section left current (ours)
                egl.eglMakeCurrent(egl.eglGetCurrentDisplay(), None, None, None)
        if saved_glx is not None:
            glx.glXMakeContextCurrent(*saved_glx)


class _RawGL:
    """The GL calls moderngl lacks, for the layered depth attachment, through EGL's loader."""

    def __init__(self):
        egl = ctypes.CDLL("libEGL.so.1")
        egl.eglGetProcAddress.restype = ctypes.c_void_p
        egl.eglGetProcAddress.argtypes = [ctypes.c_char_p]

        def load(name, *argtypes):
            address = egl.eglGetProcAddress(name.encode())
            if not address:
                raise RuntimeError(f"EGL gives no address for {name}")
            return ctypes.CFUNCTYPE(None, *argtypes)(address)

        u, i, p = ctypes.c_uint, ctypes.c_int, ctypes.c_void_p
        self._gen_textures = load("glGenTextures", i, ctypes.POINTER(u))
        self._delete_textures = load("glDeleteTextures", i, ctypes.POINTER(u))
        self._bind_texture = load("glBindTexture", u, u)
        self._tex_parameteri = load("glTexParameteri", u, u, i)
        self._tex_image_3d = load("glTexImage3D", u, i, i, i, i, i, i, u, u, p)
        self._framebuffer_texture = load("glFramebufferTexture", u, u, u, i)

    def depth_array(self, width: int, height: int, layers: int) -> int:
        """A 24-bit depth texture array; returns its GL name."""
        name = ctypes.c_uint()
        self._gen_textures(1, ctypes.byref(name))
        self._bind_texture(_GL_TEXTURE_2D_ARRAY, name)
        for parameter in (_GL_TEXTURE_MIN_FILTER, _GL_TEXTURE_MAG_FILTER):
            self._tex_parameteri(_GL_TEXTURE_2D_ARRAY, parameter, _GL_NEAREST)
        self._tex_image_3d(_GL_TEXTURE_2D_ARRAY, 0, _GL_DEPTH_COMPONENT24, width, height, layers, 0,
                           _GL_DEPTH_COMPONENT, _GL_FLOAT, None)
        # Unbound, so that no texture unit samples it while it is the depth target.
        self._bind_texture(_GL_TEXTURE_2D_ARRAY, 0)
        return name.value

    def attach_depth(self, texture: int) -> None:
        """Attach all layers of ``texture`` as the bound framebuffer's depth (a layered target)."""
        self._framebuffer_texture(_GL_FRAMEBUFFER, _GL_DEPTH_ATTACHMENT, texture, 0)

    def delete_texture(self, texture: int) -> None:
        self._delete_textures(1, ctypes.byref(ctypes.c_uint(texture)))
