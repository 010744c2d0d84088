"""Fitting with the renderer in the loop: reusable optimisation loops behind the demos and CLI."""
from .pose import PoseFit, fit_pose, posed
from .shape import ShapeFit, ShapeWeights, fit_shape, icosphere

__all__ = ["PoseFit", "ShapeFit", "ShapeWeights", "fit_pose", "fit_shape", "icosphere", "posed"]
