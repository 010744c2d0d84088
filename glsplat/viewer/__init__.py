"""Interactive viewer: orbit a mesh and watch the loss, its gradients and an optimization live.

The window-free parts (camera control, the fitting problem, panels and frame composition, the
worker thread) import without a display; :class:`Viewer` opens a glfw window on first use.
``glsplat view MESH`` is the command-line entry point.
"""
from .arrows import Arrows, vertex_arrows
from .compose import compose
from .keys import help_text
from .orbit import OrbitController, OrbitView
from .panels import PANELS
from .problem import MODES, FitProblem, Snapshot
from .targets import ImageTarget, PoseTarget
from .worker import Request, Worker


def __getattr__(name):
    # glfw is imported only when a window is wanted.
    if name in ("Viewer", "NoDisplayError"):
        from . import app
        return getattr(app, name)
    raise AttributeError(name)


__all__ = ["Arrows", "FitProblem", "ImageTarget", "MODES", "NoDisplayError", "OrbitController", "OrbitView",
           "PANELS", "PoseTarget", "Request", "Snapshot", "Viewer", "Worker", "compose",
           "help_text", "vertex_arrows"]
