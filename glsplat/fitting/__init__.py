"""Fitting with the renderer in the loop: reusable optimization loops behind the demos and CLI,
and the pieces for writing your own (regularizers that keep a deforming mesh smooth, metrics)."""
from .metrics import chamfer_distance, edge_length_loss, face_normal_loss, laplacian_loss, normal_consistency
from .pose import PoseFit, fit_pose, posed
from .shape import ShapeFit, ShapeWeights, Topology, fit_shape, fitting_shader, icosphere, regularizers, view_cameras

__all__ = ["PoseFit", "ShapeFit", "ShapeWeights", "Topology", "chamfer_distance", "edge_length_loss",
           "face_normal_loss", "fit_pose", "fit_shape", "fitting_shader", "icosphere", "laplacian_loss",
           "normal_consistency", "posed", "regularizers", "view_cameras"]
