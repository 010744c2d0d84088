"""The splat render, opened up: its S+/S0/S- buffers and a handle on each sample's position.

:func:`glsplat.render` returns only the composited image. The viewer also shows the three
accumulation buffers and the gradient of the loss with respect to where each sample was
splatted from (the quantity that carries every vertex gradient), so it runs the same steps with
:func:`glsplat.splat_buffers` and a zero ``offset`` on every sample's position: its gradient is
dLoss/d(position) in pixels, and in value it changes nothing.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..camera import Camera
from ..context import Context
from ..mesh import Mesh
from ..raster import Raster, rasterize
from ..shading import Fragments
from ..silhouette import GLUE_BORDER
from ..splat import SplatBuffers, composite, splat_buffers


class Probe(NamedTuple):
    """One probed render of a single view (batch 1)."""

    image: torch.Tensor  # [1, H, W, 4] premultiplied RGBA, as glsplat.render gives it
    buffers: SplatBuffers  # S+, S0, S-, each [1, H, W, 4]
    offset: torch.Tensor  # [N, 2] zeros, one per covered sample of rast (x right, y down, pixels); its .grad after backward
    rast: Raster  # with the guard band glsplat.render rasterizes (silhouette="edge": GLUE_BORDER pixels)

    def position_grad(self) -> torch.Tensor:
        """``[H, W, 2]`` dLoss/d(sample position) in pixels, summed over the layers (after backward)."""
        return self.rast.crop(self.rast.scatter(self.offset.grad)[0].sum(0))


def probed_render(ctx: Context, mesh: Mesh, camera: Camera, shader, layers: int) -> Probe:
    """Render ``mesh`` (verts ``[V, 3]``, may require grad) like :func:`glsplat.render`, keeping the pieces."""
    verts = mesh.verts[None]
    mesh = mesh.replace(verts=verts)
    clip = camera.project(verts)
    rast = rasterize(ctx, clip, mesh.faces, camera.image_size, layers=layers, border=GLUE_BORDER)
    colors = shader(Fragments(rast, mesh, camera))
    dtype = torch.promote_types(colors.dtype, clip.dtype)
    offset = torch.zeros((colors.shape[0], 2), dtype=dtype, requires_grad=True)
    buffers = splat_buffers(colors, clip, rast, mesh.faces, offset=offset)
    return Probe(composite(buffers), buffers, offset, rast)


def visible_vertices(rast: Raster, faces: torch.Tensor, vertex_count: int) -> torch.Tensor:
    """bool ``[V]``: corners of the faces seen in layer 0 of the (batch 1) raster."""
    ids = torch.unique(rast.tri_id[0, 0])
    seen = faces[(ids[ids > 0] - 1).long()].reshape(-1)
    visible = torch.zeros(vertex_count, dtype=torch.bool)
    visible[seen] = True
    return visible
