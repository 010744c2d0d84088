"""G-buffers from OpenGL straight into CUDA tensors (CUDA-OpenGL interop): no host round trip.

The G-buffer texture is copied on the GPU into a pixel-buffer object that CUDA has registered,
then from there into the tensor, all on the GPU. This needs the EGL context to run on the NVIDIA
GPU that holds the tensors (``Context(device=i)``; see the README on device indices); where it
cannot work (Mesa's software GL, a CUDA runtime without GL interop) glsplat warns once and reads
through host memory instead.
"""
from __future__ import annotations

import ctypes
import warnings

import torch

from .context import Context

_REGISTER_READ_ONLY = 1  # cudaGraphicsRegisterFlagsReadOnly
_DEVICE_TO_DEVICE = 3  # cudaMemcpyDeviceToDevice


def _load_cudart() -> ctypes.CDLL:
    """The CUDA runtime library torch itself loaded (so both agree on the CUDA context)."""
    torch.cuda.init()
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "libcudart" in line}
    for name in sorted(paths) + ["libcudart.so"]:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise OSError("libcudart is not loaded and cannot be found")


class CudaReadback:
    """Copies G-buffer textures into CUDA tensors through a pixel buffer registered with CUDA.

    A helper of one :class:`Context` (see ``Context._helper``): made, used and closed only with
    that context current, and closed by ``Context.release``, which owns it. Made by
    :func:`cuda_readback`; registering its first buffer is the test that CUDA and the GL context
    can share memory, so the constructor raises where they cannot.
    """

    def __init__(self, gl, cudart: ctypes.CDLL | None = None):
        self.gl = gl
        self.cudart = _load_cudart() if cudart is None else cudart
        self.cudart.cudaGetErrorString.restype = ctypes.c_char_p
        self._pbo = None
        self._resource = ctypes.c_void_p()
        self._reserve(4)

    def _check(self, status: int, call: str) -> None:
        if status != 0:
            raise RuntimeError(f"{call} failed: {self.cudart.cudaGetErrorString(status).decode()} ({status})")

    def _reserve(self, nbytes: int) -> None:
        """A registered pixel buffer of at least ``nbytes``; a buffer that CUDA refuses is freed again."""
        if self._pbo is not None and self._pbo.size >= nbytes:
            return
        self.close()
        pbo = self.gl.buffer(reserve=nbytes)
        try:
            self._check(self.cudart.cudaGraphicsGLRegisterBuffer(ctypes.byref(self._resource), ctypes.c_uint(pbo.glo),
                                                                 ctypes.c_uint(_REGISTER_READ_ONLY)),
                        "cudaGraphicsGLRegisterBuffer")
        except BaseException:
            pbo.release()
            raise
        self._pbo = pbo

    def copy(self, texture, dst: torch.Tensor) -> None:
        """Copy all of ``texture`` (float32 RGBA, every layer) into the contiguous CUDA tensor ``dst``."""
        nbytes = dst.numel() * dst.element_size()
        self._reserve(nbytes)
        texture.read_into(self._pbo)  # a copy on the GPU
        stream = ctypes.c_void_p(torch.cuda.current_stream(dst.device).cuda_stream)
        # Mapping orders the GL work before CUDA's use of the buffer on this stream.
        self._check(self.cudart.cudaGraphicsMapResources(1, ctypes.byref(self._resource), stream),
                    "cudaGraphicsMapResources")
        try:
            pointer, size = ctypes.c_void_p(), ctypes.c_size_t()
            self._check(self.cudart.cudaGraphicsResourceGetMappedPointer(ctypes.byref(pointer), ctypes.byref(size),
                                                                         self._resource),
                        "cudaGraphicsResourceGetMappedPointer")
            self._check(self.cudart.cudaMemcpyAsync(ctypes.c_void_p(dst.data_ptr()), pointer, ctypes.c_size_t(nbytes),
                                                    _DEVICE_TO_DEVICE, stream), "cudaMemcpyAsync")
        finally:
            self._check(self.cudart.cudaGraphicsUnmapResources(1, ctypes.byref(self._resource), stream),
                        "cudaGraphicsUnmapResources")

    def close(self) -> None:
        """Unregister the pixel buffer from CUDA and free it (with the context current)."""
        if self._pbo is not None:
            pbo, self._pbo = self._pbo, None
            try:
                self.cudart.cudaGraphicsUnregisterResource(self._resource)
            finally:
                pbo.release()


def cuda_readback(ctx: Context) -> CudaReadback | None:
    """The context's CUDA reader, or ``None`` (with one warning per context) where interop does not work.

    Raises the context's own ``RuntimeError`` when it was released (or crossed a fork).
    """
    refused = []

    def make(gl):
        try:
            return CudaReadback(gl)
        except (OSError, RuntimeError, AttributeError) as error:  # AttributeError: a cudart without GL interop
            refused.append(error)
            return None

    with ctx.current():  # the context's helpers are made and used only with it current
        reader = ctx._helper("cuda_readback", make)
    if refused:
        warnings.warn(f"glsplat: CUDA-OpenGL interop is unavailable with the {ctx.renderer!r} context ({refused[0]}); "
                      "G-buffers go through host memory", RuntimeWarning,
                      stacklevel=4)  # the caller of rasterize or render (-> _rasterize -> here)
    return reader
