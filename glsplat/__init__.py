"""glsplat: differentiable mesh rendering with OpenGL rasterization and a torch splat pass."""
__version__ = "0.1.0"  # the package's version (pyproject.toml reads it from here)

from .camera import Camera
from .context import Context
from .interpolate import interpolate
from .memory import keep_freed_memory
from .mesh import Mesh, load_example, load_mesh, load_texture, vertex_normals
from .raster import Raster, rasterize
from .render import Renderer, over_background, render
from .shading import (DirectionalLight, Fragments, LambertShader, PhongShader, PointLight,
                      UnlitShader, sample_texture)
from .splat import SplatBuffers, splat, splat_buffers
from .transforms import axis_angle_to_matrix, rotation_angle

__all__ = [
    "Camera", "Context", "DirectionalLight", "Fragments", "LambertShader", "Mesh", "PhongShader",
    "PointLight", "Raster", "Renderer", "SplatBuffers", "UnlitShader", "axis_angle_to_matrix", "interpolate",
    "keep_freed_memory",
    "load_example", "load_mesh", "load_texture", "over_background", "rasterize", "render",
    "rotation_angle", "sample_texture", "splat", "splat_buffers", "vertex_normals",
]
