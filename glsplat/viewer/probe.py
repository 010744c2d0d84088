"""The splat render, opened up: its S+/S0/S- buffers and a handle on each sample's position.

:func:`glsplat.render` returns only the composited image. The viewer also shows the three
accumulation buffers and the gradient of the loss with respect to where each sample was
splatted from (the quantity that carries every vertex gradient), so it runs the same steps as
:func:`glsplat.splat_points` with a zero "nudge" added to each sample's image position: its gradient is
dLoss/d(position) in pixels, and in value it changes nothing.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..camera import Camera
from ..context import Context
from ..interpolate import interpolate
from ..mesh import Mesh
from ..raster import Raster, rasterize
from ..shading import Fragments
from ..splat import SplatBuffers, splat_points


class Probe(NamedTuple):
    """One probed render of a single view (batch 1)."""

    image: torch.Tensor  # [1, H, W, 4] premultiplied RGBA, as glsplat.render gives it
    buffers: SplatBuffers  # S+, S0, S-, each [1, H, W, 4]
    nudge: torch.Tensor  # [1, K, H + 2, W + 2, 2] zeros (x right, y down, pixels), guard band included; its .grad after backward
    rast: Raster  # with a guard band of one pixel, as glsplat.render rasterizes


def probed_render(ctx: Context, mesh: Mesh, camera: Camera, shader, layers: int) -> Probe:
    """Render ``mesh`` (verts ``[V, 3]``, may require grad) like :func:`glsplat.render`, keeping the pieces."""
    verts = mesh.verts[None]
    mesh = mesh.replace(verts=verts)
    height, width = camera.image_size
    clip = camera.project(verts)
    rast = rasterize(ctx, clip, mesh.faces, camera.image_size, layers=layers, border=1)
    frags = Fragments(rast, mesh, camera)
    colors = frags.scatter(shader(frags))
    dtype = torch.promote_types(colors.dtype, clip.dtype)
    point = interpolate(clip.to(dtype), rast, mesh.faces)
    nudge = torch.zeros((*point.shape[:-1], 2), dtype=dtype, requires_grad=True)
    # Pixels to clip units: x = (ndc_x + 1) W / 2 and y = (1 - ndc_y) H / 2, with ndc = clip / w.
    w = point[..., 3:]
    shift = torch.cat([nudge[..., :1] * (2 / width), -nudge[..., 1:] * (2 / height), torch.zeros_like(nudge)], -1) * w
    image, buffers = splat_points(colors.to(dtype), point + shift, rast)
    return Probe(image, buffers, nudge, rast)


def visible_vertices(rast: Raster, faces: torch.Tensor, vertex_count: int) -> torch.Tensor:
    """bool ``[V]``: corners of the faces seen in layer 0 of the (batch 1) raster."""
    ids = torch.unique(rast.tri_id[0, 0])
    seen = faces[(ids[ids > 0] - 1).long()].reshape(-1)
    visible = torch.zeros(vertex_count, dtype=torch.bool)
    visible[seen] = True
    return visible
