"""Per-vertex gradient arrows: where gradient descent pushes each vertex, in screen pixels."""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..camera import Camera
from ..raster import clip_to_pixels

# Vertices whose gradient is below this fraction of the largest get no arrow: the loss is
# indifferent to them and a carpet of dots would hide the ones that matter.
MIN_FRACTION = 0.1
MAX_ARROWS = 300
# The longest arrow, as a fraction of the image's longer side.
MAX_LENGTH = 0.08


class Arrows(NamedTuple):
    """``N`` arrows in image pixels (x right, y down; pixel (i, j)'s center is (j + 0.5, i + 0.5))."""

    start: torch.Tensor  # [N, 2] the vertex on screen
    end: torch.Tensor  # [N, 2] start + the projected descent direction, scaled
    strength: torch.Tensor  # [N] gradient magnitude / the largest one, in (0, 1]
    vertex: torch.Tensor  # [N] vertex index


def to_pixels(camera: Camera, points: torch.Tensor) -> torch.Tensor:
    """World points ``[N, 3]`` to image pixels ``[N, 2]`` (x right, y down)."""
    return clip_to_pixels(camera.project(points.to(camera.R.dtype))[0], *camera.image_size)


def vertex_arrows(camera: Camera, verts: torch.Tensor, grad: torch.Tensor, visible: torch.Tensor,
                  max_arrows: int = MAX_ARROWS, min_fraction: float = MIN_FRACTION) -> Arrows:
    """Arrows along ``-grad`` (descent) from the visible vertices with the largest gradients.

    Each arrow is the screen image of the 3D descent direction (the projection's derivative
    along it, so foreshortening shows), with length proportional to the gradient's magnitude:
    the longest arrow on screen is ``MAX_LENGTH`` of the image's longer side.
    """
    magnitude = grad.norm(dim=-1)
    peak = magnitude[visible].max() if visible.any() else magnitude.new_zeros(())
    if peak <= 0:
        empty = torch.zeros((0, 2))
        return Arrows(empty, empty, torch.zeros(0), torch.zeros(0, dtype=torch.long))
    chosen = torch.nonzero(visible & (magnitude >= min_fraction * peak))[:, 0]
    chosen = chosen[magnitude[chosen].argsort(descending=True)[:max_arrows]]
    strength = magnitude[chosen] / peak
    direction = -grad[chosen] / magnitude[chosen, None]
    # A small step along the unit direction, in world units, linearises the projection.
    step = 1e-3
    start = to_pixels(camera, verts[chosen])
    per_unit = (to_pixels(camera, verts[chosen] + step * direction) - start) / step
    offset = per_unit * strength[:, None]
    longest = MAX_LENGTH * max(camera.image_size)
    end = start + offset * (longest / offset.norm(dim=-1).max().clamp(min=1e-12))
    return Arrows(start.float(), end.float(), strength.float(), chosen)
