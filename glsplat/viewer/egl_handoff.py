"""Step a thread's current EGL context aside while the viewer's window (GLX) uses the thread.

A :class:`glsplat.Context` stays current in the thread that made it. With an EGL context current,
Mesa's GLX refuses to make the window's context current (X error BadAccess, which kills the
process), so a program that rendered headlessly in its main thread and then opens a viewer there
would crash. The viewer releases that EGL context first and makes it current again on closing,
after which the program's ``glsplat.Context`` works as before.
"""
from __future__ import annotations

import ctypes
import ctypes.util

EGL_DRAW, EGL_READ = 0x3059, 0x305A


def _egl():
    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    for function in ("eglGetCurrentDisplay", "eglGetCurrentContext", "eglGetCurrentSurface"):
        getattr(lib, function).restype = ctypes.c_void_p
    lib.eglGetCurrentSurface.argtypes = [ctypes.c_int]
    lib.eglMakeCurrent.argtypes = [ctypes.c_void_p] * 4
    lib.eglMakeCurrent.restype = ctypes.c_uint
    return lib


def suspend_current_egl():
    """Release the calling thread's current EGL context; returns a token for :func:`resume_egl`."""
    lib = _egl()
    if lib is None or not lib.eglGetCurrentContext():
        return None
    saved = (lib.eglGetCurrentDisplay(), lib.eglGetCurrentSurface(EGL_DRAW), lib.eglGetCurrentSurface(EGL_READ),
             lib.eglGetCurrentContext())
    lib.eglMakeCurrent(saved[0], None, None, None)
    return lib, saved


def resume_egl(token) -> None:
    """Make the context :func:`suspend_current_egl` released current again (None: nothing to do)."""
    if token is not None:
        lib, saved = token
        lib.eglMakeCurrent(*saved)
