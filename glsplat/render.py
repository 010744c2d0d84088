"""The whole pipeline in one call, and as a module: project, rasterize, shade, splat."""
from __future__ import annotations

import torch

from . import checks
from .camera import Camera
from .context import Context
from .memory import check_render_fits
from .mesh import Mesh
from .raster import _checked_arguments, _rasterize
from .shading import Fragments, LambertShader
from .silhouette import GLUE_BORDER
from .splat import _splat


def over_background(rgba: torch.Tensor, background) -> torch.Tensor:
    """Composite premultiplied ``[B, H, W, 4]`` over a color ``[C]`` or an image ``[(B,) H, W, C]``.

    The result is opaque (alpha 1).
    """
    background = torch.as_tensor(background, dtype=rgba.dtype, device=rgba.device)
    rgb = rgba[..., :3] + (1 - rgba[..., 3:]) * background[..., :3]
    return torch.cat([rgb, torch.ones_like(rgba[..., 3:])], -1)


def render(ctx: Context, mesh: Mesh | torch.Tensor, camera: Camera, *, faces: torch.Tensor | None = None,
           shader=None, layers: int = 1, background=None, cull_backfaces: bool = True,
           hard: bool = False, silhouette: str = "edge") -> torch.Tensor:
    """Render a mesh differentiably.

    Args:
        ctx: the OpenGL :class:`Context`.
        mesh: a :class:`Mesh`, or vertex positions ``[V, 3]`` / ``[B, V, 3]`` (then ``faces``
            is required). Batches of meshes and of cameras broadcast (1 against B).
        camera: the :class:`Camera` (also gives the image size).
        faces: int ``[F, 3]`` when ``mesh`` is a tensor; ignored for a :class:`Mesh`.
        shader: callable ``Fragments -> [N, 4]`` straight RGBA of the covered samples; default
            :class:`LambertShader` with a headlight. Unless ``hard``, the fragments' raster has a
            guard band around the image (``frags.rast.border``, see :class:`Raster`): one pixel
            with ``silhouette="splat"``, ``glsplat.silhouette.GLUE_BORDER`` (5) with ``"edge"``.
        layers: depth layers ``K`` to peel; more layers give occlusion gradients (a surface
            moving out from behind another) at ``K`` times the cost.
        background: ``None`` keeps alpha (premultiplied RGBA out); a color ``[C]`` or an image
            ``[(B,) H, W, C]`` is composited under the render (alpha becomes 1).
        cull_backfaces: see :func:`glsplat.rasterize`.
        hard: return the plain rasterized layer 0 instead of the splat: the same shading, but
            no gradients from visibility (silhouettes, occlusions). A baseline, and cheaper.
        silhouette: ``"edge"`` (default) or ``"splat"``: how silhouette samples move in the
            backward pass (see :func:`glsplat.splat`).

    Returns:
        ``[B, H, W, 4]`` premultiplied RGBA, row 0 at the top.
    """
    if not isinstance(camera, Camera):
        hint = (" (faces go by keyword: render(ctx, verts, camera, faces=faces))"
                if isinstance(camera, torch.Tensor) and not camera.is_floating_point() else "")
        raise TypeError(f"camera: a glsplat.Camera is required, got {type(camera).__name__}{hint}")
    if not isinstance(mesh, Mesh):
        if faces is None:
            raise TypeError("faces: required when mesh is a tensor of vertices")
        mesh = Mesh(mesh, faces)
    checks.mesh(mesh)
    checks.positive_int(layers, "layers")
    checks.camera_for(camera, mesh.verts)
    verts = mesh.verts if mesh.verts.dim() == 3 else mesh.verts[None]
    clip = camera.project(verts)
    batch = clip.shape[0]
    mesh = mesh.replace(verts=verts.expand(batch, -1, -1))
    # The splat gets a guard band of one pixel (its reach) around the image, so that the edge
    # pixels receive the taps of the samples just outside the frame; the plain raster needs none.
    # The silhouette glue looks up to GLUE_BORDER pixels around those samples.
    border, layers = (0, 1) if hard else (GLUE_BORDER if silhouette == "edge" else 1, layers)
    check_render_fits(batch, camera.image_size, layers, border)
    # Checked once, here at the door (checks.mesh found the faces' range); the steps inside do not
    # check again, and the shader's interpolations find that range remembered (checks.index_range).
    size, layers, border = _checked_arguments(ctx, camera.image_size, layers, border, mesh.faces)
    rast = _rasterize(ctx, clip, mesh.faces, size, layers, cull_backfaces, border)
    frags = Fragments(rast, mesh, camera)
    colors = (LambertShader() if shader is None else shader)(frags)
    if not isinstance(colors, torch.Tensor) or tuple(colors.shape) != (frags.index.shape[0], 4):
        raise ValueError(f"shader: expected straight RGBA [N, 4] for the N = {frags.index.shape[0]} covered samples, "
                         f"got {list(colors.shape) if isinstance(colors, torch.Tensor) else type(colors).__name__}")
    if hard:
        rgba = frags.scatter(colors)[:, 0]
        rgba = torch.cat([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], -1)
    else:
        rgba = _splat(colors, clip, rast, mesh.faces, with_buffers=False, rasterized=True, silhouette=silhouette)[0]
    return rgba if background is None else over_background(rgba, background)


class Renderer(torch.nn.Module):
    """:func:`render` with its settings held, as a module for training loops.

    ``Renderer(camera, shader=..., layers=...)(mesh)`` renders ``mesh``: ``forward(mesh, faces=None)``
    takes what :func:`render` takes as ``mesh`` and ``faces`` and returns its ``[B, H, W, 4]``
    premultiplied RGBA. The module has no parameters of its own; change the attributes (the
    arguments, by the same names) between calls to move the camera or change the shading.

    Args:
        camera, shader, layers, background, cull_backfaces, silhouette: as in :func:`render`.
        ctx: the OpenGL :class:`Context`; ``None`` creates one on the first call (in the calling
            thread; a process should hold one context, so pass it where one exists).
    """

    def __init__(self, camera: Camera, shader=None, layers: int = 1, background=None,
                 ctx: Context | None = None, cull_backfaces: bool = True, silhouette: str = "edge"):
        super().__init__()
        self.camera = camera
        self.shader = shader
        self.layers = layers
        self.background = background
        self.ctx = ctx
        self.cull_backfaces = cull_backfaces
        self.silhouette = silhouette

    def forward(self, mesh: Mesh | torch.Tensor, faces: torch.Tensor | None = None) -> torch.Tensor:
        if self.ctx is None:
            self.ctx = Context()
        return render(self.ctx, mesh, self.camera, faces=faces, shader=self.shader, layers=self.layers,
                      background=self.background, cull_backfaces=self.cull_backfaces, silhouette=self.silhouette)
