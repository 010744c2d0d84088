"""Fit a mesh's shape (deform a template) to images of an object from several views.

The template's vertices move freely (its faces stay); the loss compares renders of the deformed
template with the target images, shaded color and silhouette (alpha) separately, plus
regularizers that keep the surface smooth and its triangles even (:mod:`.metrics`). Optionally
coarse to fine: the mesh is subdivided at given steps, so a few hundred vertices find the
overall shape before more are added for the detail.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import trimesh

from ..camera import Camera
from ..context import Context
from ..mesh import Mesh
from ..render import render
from ..shading import DirectionalLight, LambertShader
from .metrics import edge_length_loss, face_adjacency, face_normal_loss, laplacian_loss, mesh_edges


def icosphere(level: int = 3, radius: float = 0.5) -> Mesh:
    """An icosphere of ``radius`` centered at 0: ``10 * 4**level + 2`` vertices, ``20 * 4**level`` faces."""
    sphere = trimesh.creation.icosphere(subdivisions=level, radius=radius)
    return Mesh(torch.as_tensor(sphere.vertices, dtype=torch.float32), torch.as_tensor(sphere.faces, dtype=torch.int64))


def subdivide(mesh: Mesh) -> Mesh:
    """Split every triangle into four at its edge midpoints (the surface does not change)."""
    verts, faces = trimesh.remesh.subdivide(mesh.verts.detach().double().numpy(), mesh.faces.numpy())
    return Mesh(torch.as_tensor(verts, dtype=mesh.verts.dtype), torch.as_tensor(faces, dtype=torch.int64))


def view_cameras(count: int, image_size: tuple[int, int], distance: float = 2.5,
                 fov_y: float = 35.0) -> Camera:
    """``count`` cameras spread evenly over a sphere around the origin, looking at it.

    Directions follow a Fibonacci spiral between elevations of about +-60 degrees (views
    straight down the up axis would need another up vector, and add little for most objects).
    The default distance and field of view frame a mesh normalized to a longest side of 1.
    """
    index = torch.arange(count, dtype=torch.float64) + 0.5
    elevation = torch.rad2deg(torch.asin(math.sin(math.radians(60)) * (1 - 2 * index / count)))
    azimuth = 180.0 - torch.rad2deg(index * math.pi * (3 - math.sqrt(5)))  # the golden angle per view
    return orbit_cameras(azimuth, elevation, image_size, distance, fov_y)


def orbit_cameras(azimuths, elevation, image_size: tuple[int, int], distance: float = 2.5,
                  fov_y: float = 35.0) -> Camera:
    """The fitting's framing: :meth:`Camera.orbit` at ``azimuths`` (degrees; 0 looks from -z, 90 from
    +x) and ``elevation`` (degrees, one or one per azimuth), clipping from 0.1 to 2 ``distance``."""
    return Camera.orbit(torch.as_tensor(azimuths, dtype=torch.float32), torch.as_tensor(elevation, dtype=torch.float32),
                        distance, fov_y=fov_y, image_size=image_size, near=0.1 * distance)


def novel_views(image_size: tuple[int, int] = (128, 128)) -> Camera:
    """Four views for pictures of a fit, between the fitting ones: azimuths 30, 120, 210 and 300
    degrees, 20 degrees up."""
    return orbit_cameras((30.0, 120.0, 210.0, 300.0), 20.0, image_size)


def fitting_shader(albedo=(0.8, 0.8, 0.8)) -> LambertShader:
    """Gray Lambert shading under two fixed world-space lights, so shading reveals the normals.

    Targets and fits are rendered with the same shader: the fit recovers shape, not color.
    """
    lights = [DirectionalLight((0.5, 0.8, 0.6), (0.7, 0.7, 0.7)), DirectionalLight((-0.6, -0.3, -0.5), (0.4, 0.4, 0.4))]
    return LambertShader(lights, ambient=0.25, albedo=albedo)


@dataclass
class ShapeWeights:
    """Weights of the terms of the shape loss.

    Attributes:
        image: mean squared error of the premultiplied RGB.
        silhouette: mean squared error of alpha.
        laplacian: :func:`.metrics.laplacian_loss` (``laplacian_method``).
        edge: :func:`.metrics.edge_length_loss` towards the current mean edge length of the
            template at the start of each level (keeps triangles the same size).
        normal: :func:`.metrics.face_normal_loss` (adjacent faces' normals agree).
    """

    image: float = 1.0
    silhouette: float = 1.0
    laplacian: float = 0.1
    edge: float = 1.0
    normal: float = 0.05
    laplacian_method: str = "uniform"


@dataclass
class ShapeFit:
    """The result of :func:`fit_shape`.

    Attributes:
        mesh: the fitted mesh (``verts`` ``[V, 3]``, ``faces`` ``[F, 3]``; more of both than
            the template when subdivided).
        losses: per term (``"total"``, ``"image"``, ``"silhouette"``, ``"laplacian"``,
            ``"edge"``, ``"normal"``), the unweighted value at each step before its update.
    """

    mesh: Mesh
    losses: dict[str, list[float]] = field(default_factory=dict)


class Topology:
    """A mesh's edges ``[E, 2]``, adjacent face pairs ``[P, 2]`` and mean edge length, computed once."""

    def __init__(self, mesh: Mesh):
        self.faces = mesh.faces
        self.edges = mesh_edges(mesh.faces)
        self.pairs = face_adjacency(mesh.faces)
        verts = mesh.verts.detach()
        self.edge_length = (verts[self.edges[:, 0]] - verts[self.edges[:, 1]]).norm(dim=-1).mean().item()


def regularizers(verts: torch.Tensor, topology: Topology, weights: ShapeWeights) -> dict[str, torch.Tensor]:
    """The unweighted regularizer terms of :class:`ShapeWeights` for ``verts`` ``[V, 3]``."""
    faces, edges = topology.faces, topology.edges
    return {
        "laplacian": laplacian_loss(verts, faces, weights.laplacian_method, edges),
        "edge": edge_length_loss(verts, faces, topology.edge_length, edges),
        "normal": face_normal_loss(verts, faces, topology.pairs),
    }


def shape_losses(ctx: Context, verts: torch.Tensor, topology: Topology, targets: torch.Tensor,
                 cameras: Camera, shader, weights: ShapeWeights, layers: int = 1,
                 silhouette: str = "edge") -> dict[str, torch.Tensor]:
    """All loss terms for ``verts`` ``[V, 3]`` against ``targets`` ``[N, H, W, 4]``; ``"total"`` is weighted."""
    images = render(ctx, verts[None], cameras, faces=topology.faces, shader=shader, layers=layers,
                    silhouette=silhouette)
    terms = {
        "image": ((images[..., :3] - targets[..., :3]) ** 2).mean(),
        "silhouette": ((images[..., 3] - targets[..., 3]) ** 2).mean(),
        **regularizers(verts, topology, weights),
    }
    terms["total"] = sum(getattr(weights, name) * value for name, value in terms.items())
    return terms


def fit_shape(ctx: Context, template: Mesh, targets: torch.Tensor, cameras: Camera, *,
              shader=None, steps: int = 300, lr: float = 0.01, weights: ShapeWeights | None = None,
              layers: int = 1, subdivide_at: tuple[int, ...] = (), silhouette: str = "edge",
              callback: Callable[[int, Mesh, dict[str, float]], None] | None = None) -> ShapeFit:
    """Deform ``template`` so its renders match ``targets``.

    Args:
        ctx: the OpenGL context.
        template: the starting mesh (e.g. :func:`icosphere`), unbatched.
        targets: ``[N, H, W, 4]`` premultiplied RGBA, one per camera (e.g. renders of the true
            mesh with the same ``shader``).
        cameras: a batch of ``N`` cameras (e.g. :func:`view_cameras`).
        shader: the shader for the fit; default :func:`fitting_shader`.
        steps: Adam steps in all.
        lr: Adam's learning rate for the vertex positions (world units per step, roughly);
            decays to a tenth over the run, cosine-shaped.
        weights: the loss terms' weights, :class:`ShapeWeights` by default.
        layers: depth layers for the render (more gives occlusion gradients).
        subdivide_at: steps at which the current mesh is subdivided (coarse to fine).
        silhouette: ``"edge"`` or ``"splat"``, see :func:`glsplat.splat`.
        callback: called after every step as ``callback(step, mesh, losses)``, ``losses``
            the step's unweighted terms.

    Returns:
        A :class:`ShapeFit`.
    """
    weights = ShapeWeights() if weights is None else weights
    shader = fitting_shader() if shader is None else shader
    targets = targets.detach()
    mesh = Mesh(template.verts.detach().clone(), template.faces)
    history: dict[str, list[float]] = {}
    optimizer = topology = verts = None
    for step in range(steps):
        if step == 0 or step in subdivide_at:
            if step:
                mesh = subdivide(mesh.replace(verts=verts.detach()))
            verts = mesh.verts.clone().requires_grad_(True)
            optimizer = torch.optim.Adam([verts], lr=lr)
            topology = Topology(mesh)
        for group in optimizer.param_groups:
            group["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        terms = shape_losses(ctx, verts, topology, targets, cameras, shader, weights, layers, silhouette)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        values = {name: value.item() for name, value in terms.items()}
        for name, value in values.items():
            history.setdefault(name, []).append(value)
        if callback is not None:
            callback(step, mesh.replace(verts=verts.detach()), values)
    return ShapeFit(mesh.replace(verts=verts.detach().clone()), history)


@torch.no_grad()
def side_by_side(ctx: Context, meshes: list[Mesh], cameras: Camera, shader=None) -> torch.Tensor:
    """Renders of several meshes (rows) from several cameras (columns), over white.

    Returns ``[rows * H, columns * W, 3]`` floats in [0, 1], e.g. for target / before / after.
    """
    shader = fitting_shader() if shader is None else shader
    rows = []
    for mesh in meshes:
        images = render(ctx, mesh, camera=cameras, shader=shader, background=(1.0, 1.0, 1.0))
        rows.append(torch.cat(list(images[..., :3].clamp(0, 1)), dim=1))
    return torch.cat(rows, dim=0)
