"""Fitting with the renderer in the loop: reusable optimisation loops behind the demos and CLI."""
from .pose import PoseFit, fit_pose, posed

__all__ = ["PoseFit", "fit_pose", "posed"]
