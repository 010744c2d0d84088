"""The OpenGL side of glsplat: a headless EGL context and the G-buffer passes.

This module is the only one that talks to OpenGL. It takes clip-space triangle corners as a
numpy array and returns G-buffers as a numpy array; everything differentiable lives in torch
modules elsewhere.
"""
from __future__ import annotations

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

    One context per process is the intended use; a context is bound to the thread that made it.
    """

    def __init__(self, device: int | None = None):
        kwargs = {} if device is None else {"device_index": device}
        try:
            self.gl = moderngl.create_standalone_context(backend="egl", require=330, **kwargs)
        except Exception as error:  # glcontext raises bare Exceptions for every EGL failure
            raise RuntimeError(MISSING_EGL.format(error=error)) from error
        shaders = _shader_dir()
        self._program = self.gl.program(
            vertex_shader=(shaders / "gbuffer.vert").read_text(),
            fragment_shader=(shaders / "gbuffer.frag").read_text(),
        )
        self._program["prev_layer"].value = 0
        self._vertices = self._vao = None
        self._targets: OrderedDict[tuple[int, int], tuple] = OrderedDict()
        self.max_size = min(self.gl.info["GL_MAX_TEXTURE_SIZE"], *self.gl.info["GL_MAX_VIEWPORT_DIMS"])

    @property
    def renderer(self) -> str:
        """The OpenGL renderer string, e.g. ``llvmpipe (LLVM 15.0.6, 256 bits)``."""
        return self.gl.info["GL_RENDERER"]

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
